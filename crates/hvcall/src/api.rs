//! The API socket of `hvcall run --api-socket PATH`: a Unix socket on which
//! the VMM answers HvCallGetVpRegisters and HvCallSetVpRegisters inputs as
//! calls from the root partition (the VM's parent), through the typed host
//! entry points ([`hvcall_vmm::Inspector`]): the checks a guest's call
//! gets, one consistent snapshot per read, one batch per write.
//!
//! # Protocol
//!
//! Every message is a frame: a little-endian u32 length, then that many
//! bytes of body. A client sends requests and reads one reply per request,
//! in order, on one connection.
//!
//! Request body ([`Request`]), at most [`MAX_REQUEST`] bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `HVC1` |
//! | 4 | 2 | call code: 0x0050 (GetVpRegisters) or 0x0051 (SetVpRegisters) |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 16 | the TLFS input header: partition id u64, VP index u32, input VTL u8, 3 reserved bytes |
//! | 24 | 4n or 32n | n names (u32), or n SetVpRegisters elements (32 bytes: name u32, 12 reserved bytes, value u128) |
//!
//! n is 1 to [`MAX_NAMES`] names (one page of TLFS input) or 1 to
//! [`MAX_ELEMENTS`] elements.
//!
//! Reply body ([`Reply`]):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `HVR1` |
//! | 4 | 1 | kind: 0 = the call's result, 1 = the request was refused |
//! | 5 | 1 | 0 |
//! | 6 | 2 | kind 0: the status (HV_STATUS) |
//! | 8 | 4 | kind 0: reps completed |
//! | 12 | 16k | kind 0: the k values read (0x0050: one per name before a failing one) |
//! | 5 | .. | kind 1: a UTF-8 message (a malformed, truncated or oversized request; the VM ended) |
//!
//! A refused request changes nothing. A frame longer than [`MAX_REQUEST`]
//! is refused without being read, and the connection is closed (what
//! follows cannot be framed); so is a connection that sends nothing for
//! [`IDLE`] or stops mid-frame for as long. Up to [`MAX_CLIENTS`]
//! connections are served at once, each on a thread of its own, so a slow
//! or silent client never holds up the VM or another client.

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hvcall_abi::call_code::{GET_VP_REGISTERS, SET_VP_REGISTERS};
use hvcall_abi::{HvInputVtl, HvRegisterName, HvRegisterValue, HvStatus, SetVpRegistersElement};
use hvcall_dispatch::HostTarget;
use hvcall_vmm::VM_PARTITION_ID;
use hvcall_vmm::{Inspector, ReadError};

/// Largest request body: the 8-byte API header and one page of TLFS input.
pub const MAX_REQUEST: usize = 8 + 4096;
/// Most names in one read (16 + 4n bytes in a page).
pub const MAX_NAMES: usize = (4096 - 16) / 4;
/// Most elements in one write (16 + 32n bytes in a page).
pub const MAX_ELEMENTS: usize = (4096 - 16) / 32;
/// Largest reply body (a value per name).
pub const MAX_REPLY: usize = 12 + 16 * MAX_NAMES;
/// Connections served at once; more are refused.
pub const MAX_CLIENTS: usize = 32;
/// How long a connection may stay silent (between or inside requests).
pub const IDLE: Duration = Duration::from_secs(30);

const REQUEST_MAGIC: &[u8; 4] = b"HVC1";
const REPLY_MAGIC: &[u8; 4] = b"HVR1";

/// A request: which call, and its TLFS input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The target of the call (the header's partition, VP and VTL).
    pub target: HostTarget,
    /// What to do.
    pub call: Call,
}

/// The call of a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// HvCallGetVpRegisters of these names.
    Get(Vec<HvRegisterName>),
    /// HvCallSetVpRegisters of these elements.
    Set(Vec<SetVpRegistersElement>),
}

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The call's result.
    Result {
        /// Its status.
        status: HvStatus,
        /// Reps completed: names read or elements written.
        reps: u32,
        /// The values read, one per completed name (none for a write).
        values: Vec<HvRegisterValue>,
    },
    /// The request was refused (see the module doc).
    Refused(String),
}

/// Why a request body is not a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Shorter than the API header and the TLFS header.
    #[error("truncated request: {0} bytes, at least 24 needed")]
    Truncated(usize),
    /// Not `HVC1`.
    #[error("not an hvcall API request (bad magic)")]
    Magic,
    /// Not 0x0050 or 0x0051, or reserved bits set.
    #[error("call code {0:#06x} is not served (0x0050 or 0x0051, reserved 0)")]
    Code(u32),
    /// The list is empty, too long, or not a whole number of entries.
    #[error("{0} bytes of names or elements: not 1 to {1} whole entries")]
    List(usize, usize),
    /// The TLFS header's reserved bytes 13–15 are not zero: the call's
    /// own step 6a, answered as the call would be (INVALID_PARAMETER).
    #[error("reserved header bytes not zero (step 6a)")]
    HeaderReserved,
}

impl Request {
    /// A read of `names` of VP `vp` of the VM (partition 2).
    pub fn get(vp: u32, names: &[HvRegisterName]) -> Self {
        Self {
            target: HostTarget::new(VM_PARTITION_ID, vp),
            call: Call::Get(names.to_vec()),
        }
    }

    /// A write of `elements` to VP `vp` of the VM (partition 2).
    pub fn set(vp: u32, elements: &[SetVpRegistersElement]) -> Self {
        Self {
            target: HostTarget::new(VM_PARTITION_ID, vp),
            call: Call::Set(elements.to_vec()),
        }
    }

    /// The request body.
    pub fn encode(&self) -> Vec<u8> {
        let code = match self.call {
            Call::Get(_) => GET_VP_REGISTERS,
            Call::Set(_) => SET_VP_REGISTERS,
        };
        let mut b = Vec::with_capacity(MAX_REQUEST);
        b.extend_from_slice(REQUEST_MAGIC);
        b.extend_from_slice(&code.to_le_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&self.target.partition_id.to_le_bytes());
        b.extend_from_slice(&self.target.vp_index.to_le_bytes());
        b.push(self.target.input_vtl.into_bits());
        b.extend_from_slice(&[0; 3]);
        match &self.call {
            Call::Get(names) => names
                .iter()
                .for_each(|n| b.extend_from_slice(&n.0.to_le_bytes())),
            Call::Set(elements) => elements.iter().for_each(|e| {
                b.extend_from_slice(&e.name.0.to_le_bytes());
                b.extend_from_slice(&e.reserved);
                b.extend_from_slice(&e.value.0);
            }),
        }
        b
    }

    /// Parses a request body. The header's reserved bytes and VTL are
    /// passed on as they are: the call's own checks judge them (step 6).
    pub fn decode(body: &[u8]) -> Result<Self, RequestError> {
        if body.len() < 24 {
            return Err(RequestError::Truncated(body.len()));
        }
        if &body[..4] != REQUEST_MAGIC {
            return Err(RequestError::Magic);
        }
        let word =
            |at: usize| u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        let code = word(4);
        let qword = |at: usize| u64::from(word(at)) | u64::from(word(at + 4)) << 32;
        if code >> 16 != 0 {
            return Err(RequestError::Code(code));
        }
        let target =
            HostTarget::new(qword(8), word(16)).with_input_vtl(HvInputVtl::from_bits(body[20]));
        let list = &body[24..];
        let call = match code {
            c if c == u32::from(GET_VP_REGISTERS) => {
                if list.is_empty() || !list.len().is_multiple_of(4) || list.len() / 4 > MAX_NAMES {
                    return Err(RequestError::List(list.len(), MAX_NAMES));
                }
                Call::Get(
                    list.chunks_exact(4)
                        .map(|c| HvRegisterName(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                        .collect(),
                )
            }
            c if c == u32::from(SET_VP_REGISTERS) => {
                if list.is_empty()
                    || !list.len().is_multiple_of(32)
                    || list.len() / 32 > MAX_ELEMENTS
                {
                    return Err(RequestError::List(list.len(), MAX_ELEMENTS));
                }
                Call::Set(
                    list.chunks_exact(32)
                        .map(|c| {
                            let mut e = SetVpRegistersElement::new(
                                HvRegisterName(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                                HvRegisterValue::default(),
                            );
                            e.reserved.copy_from_slice(&c[4..16]);
                            e.value.0.copy_from_slice(&c[16..32]);
                            e
                        })
                        .collect(),
                )
            }
            other => return Err(RequestError::Code(other)),
        };
        // After the code and list checks, as the call checks the header
        // after the input list (steps 5 before 6).
        if body[21..24] != [0; 3] {
            return Err(RequestError::HeaderReserved);
        }
        Ok(Self { target, call })
    }
}

impl Reply {
    /// The reply body.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(REPLY_MAGIC);
        match self {
            Reply::Result {
                status,
                reps,
                values,
            } => {
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(&status.0.to_le_bytes());
                b.extend_from_slice(&reps.to_le_bytes());
                values.iter().for_each(|v| b.extend_from_slice(&v.0));
            }
            Reply::Refused(message) => {
                b.push(1);
                b.extend_from_slice(message.as_bytes());
            }
        }
        b
    }

    /// Parses a reply body.
    pub fn decode(body: &[u8]) -> Result<Self, String> {
        if body.len() < 5 || &body[..4] != REPLY_MAGIC {
            return Err("not an hvcall API reply".into());
        }
        match body[4] {
            0 if body.len() >= 12 && (body.len() - 12).is_multiple_of(16) => Ok(Reply::Result {
                status: HvStatus(u16::from_le_bytes([body[6], body[7]])),
                reps: u32::from_le_bytes([body[8], body[9], body[10], body[11]]),
                values: body[12..]
                    .chunks_exact(16)
                    .map(|c| {
                        let mut v = HvRegisterValue::default();
                        v.0.copy_from_slice(c);
                        v
                    })
                    .collect(),
            }),
            1 => Ok(Reply::Refused(
                String::from_utf8_lossy(&body[5..]).into_owned(),
            )),
            _ => Err("malformed hvcall API reply".into()),
        }
    }
}

/// Serves `request` through the inspector: the root partition's call.
pub fn answer(inspector: &Inspector<'_>, request: &Request) -> Reply {
    let result = |e: ReadError, values: Vec<HvRegisterValue>| match e {
        ReadError::Call { status, index } => Reply::Result {
            status,
            reps: u32::try_from(index).unwrap_or(u32::MAX),
            values,
        },
        other => Reply::Refused(other.to_string()),
    };
    match &request.call {
        Call::Get(names) => match inspector.read(&request.target, names) {
            Ok(values) => Reply::Result {
                status: HvStatus::SUCCESS,
                reps: names.len() as u32,
                values,
            },
            // The values before the failing name are not kept by the
            // entry point's error; the reply carries none.
            Err(e) => result(e, Vec::new()),
        },
        Call::Set(elements) => match inspector.write(&request.target, elements) {
            Ok(()) => Reply::Result {
                status: HvStatus::SUCCESS,
                reps: elements.len() as u32,
                values: Vec::new(),
            },
            Err(e) => result(e, Vec::new()),
        },
    }
}

/// Why the socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The path exists (it is never replaced).
    #[error("{0} already exists: remove it or choose another path")]
    Exists(PathBuf),
    /// Creating the socket failed.
    #[error("cannot create the API socket {path}: {source}")]
    Bind {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The API socket, bound and private to this user (mode 0600, created
/// so); the path is removed when this is dropped.
#[derive(Debug)]
pub struct ApiSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ApiSocket {
    /// Creates the socket at `path`, which must not exist.
    ///
    /// The mode is 0600 from the start: the socket is created under a
    /// process umask of 0177 (this runs before any other thread exists
    /// that could create files), then the umask is put back.
    pub fn bind(path: &Path) -> Result<Self, ServeError> {
        if path.symlink_metadata().is_ok() {
            return Err(ServeError::Exists(path.to_owned()));
        }
        // SAFETY: umask has no memory effects; it is process-wide, which
        // is why this runs while `hvcall run` has one thread.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let listener = bound.map_err(|source| {
            if source.kind() == io::ErrorKind::AddrInUse {
                ServeError::Exists(path.to_owned())
            } else {
                ServeError::Bind {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        let socket = Self {
            listener,
            path: path.to_owned(),
        };
        // Belt and braces: the mode a client sees is 0600 whatever the
        // umask did.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| ServeError::Bind {
                path: path.to_owned(),
                source,
            },
        )?;
        Ok(socket)
    }

    /// Serves clients until the VM ends: each connection on a thread of
    /// its own (at most [`MAX_CLIENTS`]). Once `stop()` returns true the
    /// VM is stopped ([`Inspector::stop`]).
    pub fn serve(&self, inspector: &Inspector<'_>, stop: &(dyn Fn() -> bool + Sync)) {
        if self.listener.set_nonblocking(true).is_err() {
            tracing::warn!("API socket: cannot poll for connections; not served");
            return;
        }
        let clients = AtomicUsize::new(0);
        std::thread::scope(|s| {
            while inspector.is_running() {
                if stop() {
                    inspector.stop();
                    break;
                }
                match self.listener.accept() {
                    Ok((stream, _)) => {
                        if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
                            clients.fetch_sub(1, Ordering::AcqRel);
                            let mut stream = stream;
                            let busy = Reply::Refused(format!(
                                "busy: {MAX_CLIENTS} connections are being served"
                            ));
                            let _ = write_frame(&mut stream, &busy.encode());
                            continue;
                        }
                        let clients = &clients;
                        s.spawn(move || {
                            client(inspector, stream);
                            clients.fetch_sub(1, Ordering::AcqRel);
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => {
                        tracing::debug!("API socket accept: {e}");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        });
    }
}

impl Drop for ApiSocket {
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

/// Serves one connection until it closes, misbehaves, idles or the VM
/// ends.
fn client(inspector: &Inspector<'_>, mut stream: UnixStream) {
    // Short reads so the VM's end is noticed; IDLE counts the silence.
    if stream.set_nonblocking(false).is_err()
        || stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .is_err()
        || stream.set_write_timeout(Some(IDLE)).is_err()
    {
        return;
    }
    loop {
        let body = match read_request(inspector, &mut stream) {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(refused) => {
                let _ = write_frame(&mut stream, &Reply::Refused(refused).encode());
                return;
            }
        };
        let reply = match Request::decode(&body) {
            Ok(request) => answer(inspector, &request),
            Err(RequestError::HeaderReserved) => Reply::Result {
                status: HvStatus::INVALID_PARAMETER,
                reps: 0,
                values: Vec::new(),
            },
            Err(e) => Reply::Refused(e.to_string()),
        };
        if write_frame(&mut stream, &reply.encode()).is_err() {
            return;
        }
    }
}

/// One request frame: `Ok(None)` at a clean end (EOF between frames, the
/// VM ended, silence), `Err` with a message for a frame that cannot be
/// read (after which the connection closes).
fn read_request(
    inspector: &Inspector<'_>,
    stream: &mut UnixStream,
) -> Result<Option<Vec<u8>>, String> {
    let mut len = [0u8; 4];
    match read_full(inspector, stream, &mut len)? {
        Filled::All => {}
        Filled::None => return Ok(None),
        Filled::Part => return Err("truncated frame length".into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_REQUEST {
        return Err(format!(
            "request of {len} bytes refused: at most {MAX_REQUEST}"
        ));
    }
    let mut body = vec![0u8; len];
    match read_full(inspector, stream, &mut body)? {
        Filled::All => Ok(Some(body)),
        Filled::None if len == 0 => Ok(Some(body)),
        _ => Err("truncated request".into()),
    }
}

/// How much of a buffer a read filled.
enum Filled {
    All,
    None,
    Part,
}

fn read_full(
    inspector: &Inspector<'_>,
    stream: &mut UnixStream,
    buf: &mut [u8],
) -> Result<Filled, String> {
    let mut at = 0;
    let mut last = Instant::now();
    while at < buf.len() {
        match stream.read(&mut buf[at..]) {
            Ok(0) => return Ok(if at == 0 { Filled::None } else { Filled::Part }),
            Ok(n) => {
                at += n;
                last = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if !inspector.is_running() {
                    return Ok(if at == 0 { Filled::None } else { Filled::Part });
                }
                if last.elapsed() >= IDLE {
                    return if at == 0 {
                        Ok(Filled::None)
                    } else {
                        Err(format!("no data for {} s inside a frame", IDLE.as_secs()))
                    };
                }
            }
            Err(_) => return Ok(if at == 0 { Filled::None } else { Filled::Part }),
        }
    }
    Ok(Filled::All)
}

/// Writes one frame.
pub fn write_frame(stream: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| io::Error::other("frame too long"))?;
    stream.write_all(&len.to_le_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// Reads one frame of at most `max` bytes.
pub fn read_frame(stream: &mut impl Read, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(io::Error::other(format!(
            "frame of {len} bytes: at most {max}"
        )));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok(body)
}

/// A client of the API socket.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> io::Result<Self> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Self { stream })
    }

    /// Sends `request` and waits for its reply.
    pub fn call(&mut self, request: &Request) -> io::Result<Reply> {
        write_frame(&mut self.stream, &request.encode())?;
        let body = read_frame(&mut self.stream, MAX_REPLY)?;
        Reply::decode(&body).map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hvcall_abi::name::x64;

    #[test]
    fn requests_round_trip() {
        let get = Request::get(1, &[x64::RIP, x64::CS]);
        assert_eq!(Request::decode(&get.encode()), Ok(get.clone()));
        let mut e = SetVpRegistersElement::new(x64::RBX, HvRegisterValue::from(7u64));
        e.reserved[3] = 9; // passed on: step 8a judges it
        let set = Request::set(0, &[e]);
        assert_eq!(Request::decode(&set.encode()), Ok(set));
        assert_eq!(get.encode().len(), 24 + 8);
    }

    #[test]
    fn malformed_requests_are_refused() {
        let good = Request::get(0, &[x64::RIP]).encode();
        assert_eq!(
            Request::decode(&good[..23]),
            Err(RequestError::Truncated(23))
        );
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(Request::decode(&bad), Err(RequestError::Magic));
        let mut bad = good.clone();
        bad[21] = 1;
        assert_eq!(Request::decode(&bad), Err(RequestError::HeaderReserved));
        let mut bad = good.clone();
        bad[4] = 0x52;
        assert!(matches!(
            Request::decode(&bad),
            Err(RequestError::Code(0x52))
        ));
        let mut bad = good.clone();
        bad.push(1); // a name and a byte
        assert!(matches!(
            Request::decode(&bad),
            Err(RequestError::List(5, _))
        ));
        assert!(matches!(
            Request::decode(&good[..24]),
            Err(RequestError::List(0, _))
        ));
        let mut bad = Request::set(0, &[]).encode();
        bad.extend_from_slice(&[0; 31]);
        assert!(matches!(
            Request::decode(&bad),
            Err(RequestError::List(31, _))
        ));
        let mut long = Request::get(0, &[]).encode();
        long.extend(std::iter::repeat_n(0u8, 4 * (MAX_NAMES + 1)));
        assert!(matches!(
            Request::decode(&long),
            Err(RequestError::List(..))
        ));
    }

    #[test]
    fn replies_round_trip() {
        let r = Reply::Result {
            status: HvStatus::INVALID_PARAMETER,
            reps: 3,
            values: vec![HvRegisterValue::from(5u64); 2],
        };
        assert_eq!(Reply::decode(&r.encode()), Ok(r));
        let r = Reply::Refused("no".into());
        assert_eq!(Reply::decode(&r.encode()), Ok(r));
        assert!(Reply::decode(b"HVR1\x00\x00").is_err());
    }
}
