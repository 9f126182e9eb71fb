//! A Unix socket only this user can reach, for the host tools' servers
//! (`--api-socket PATH`, `--gdb PATH`): created with mode 0600, never over
//! an existing path, and removed when dropped.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// Why the socket could not be created.
#[derive(Debug, thiserror::Error)]
pub enum PrivateSocketError {
    /// The path exists (it is never replaced).
    #[error("{0} already exists: remove it or choose another path")]
    Exists(PathBuf),
    /// Creating the socket failed.
    #[error("cannot create the socket {path}: {source}")]
    Bind {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// A listening Unix socket private to this user; its path is removed when
/// this is dropped (if it is still a socket).
#[derive(Debug)]
pub struct PrivateSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl PrivateSocket {
    /// Creates the socket at `path`, which must not exist.
    ///
    /// The mode is 0600 from the start: the socket is created under a
    /// process umask of 0177, then the umask is put back. The umask is
    /// process-wide, so this must run before other threads that create
    /// files exist (`hvcall run` binds its sockets before the VM runs).
    pub fn bind(path: &Path) -> Result<Self, PrivateSocketError> {
        let failed = |source| PrivateSocketError::Bind {
            path: path.to_owned(),
            source,
        };
        if path.symlink_metadata().is_ok() {
            return Err(PrivateSocketError::Exists(path.to_owned()));
        }
        // SAFETY: umask has no memory effects; see the doc above for why
        // changing it here is safe for the process.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let listener = bound.map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => PrivateSocketError::Exists(path.to_owned()),
            _ => failed(source),
        })?;
        let socket = Self {
            listener,
            path: path.to_owned(),
        };
        // The mode a client sees is 0600 whatever the umask did.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
        Ok(socket)
    }

    /// The listening socket.
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateSocket {
    fn drop(&mut self) {
        // Remove what we created, and only a socket (never a file someone
        // put there after us).
        let ours = self
            .path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_socket());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_from_creation_never_over_a_path_and_removed_on_drop() {
        let dir = std::env::temp_dir().join(format!("hvcall-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let socket = PrivateSocket::bind(&path).unwrap();
        let mode = path.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            PrivateSocket::bind(&path),
            Err(PrivateSocketError::Exists(_))
        ));
        drop(socket);
        assert!(!path.exists());
        // A regular file put at the path is neither replaced nor removed.
        std::fs::write(&path, b"x").unwrap();
        assert!(matches!(
            PrivateSocket::bind(&path),
            Err(PrivateSocketError::Exists(_))
        ));
        assert!(path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
