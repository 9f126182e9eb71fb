#![allow(dead_code)] // each test crate uses a part of the helpers
//! Shared by the KVM integration tests: run `hvcall run ...` and decide
//! whether KVM is there. Without /dev/kvm a test prints a SKIP line and
//! passes, unless HVCALL_REQUIRE_KVM=1, which turns that into a failure.

use std::path::Path;
use std::process::{Command, Output};

/// The captured result of one `hvcall run`.
pub struct Run {
    /// Exit status (None if killed by a signal).
    pub status: Option<i32>,
    /// Guest console output.
    pub stdout: String,
    /// Diagnostics.
    pub stderr: String,
}

impl Run {
    /// Panics with the full output unless the exit status is `want`.
    pub fn expect_status(&self, want: i32) -> &Self {
        assert_eq!(
            self.status,
            Some(want),
            "unexpected exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics with the full output unless stdout contains `needle`.
    pub fn expect_stdout(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Whether KVM tests can run; prints SKIP (or panics when
/// HVCALL_REQUIRE_KVM=1) when /dev/kvm is missing.
pub fn kvm_available(test: &str) -> bool {
    if Path::new("/dev/kvm").exists() {
        return true;
    }
    if std::env::var("HVCALL_REQUIRE_KVM").as_deref() == Ok("1") {
        panic!("{test}: /dev/kvm is missing and HVCALL_REQUIRE_KVM=1");
    }
    eprintln!("SKIP {test}: /dev/kvm is missing");
    false
}

/// Runs `hvcall run ARGS` (with a generous watchdog unless ARGS set one,
/// so a loaded CI machine cannot turn a slow run into a failure) and
/// captures it; `None` when KVM is unavailable (see [`kvm_available`]).
pub fn hvcall_run(test: &str, args: &[&str]) -> Option<Run> {
    if !kvm_available(test) {
        return None;
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hvcall"));
    cmd.arg("run").args(args);
    if !args.contains(&"--watchdog") {
        cmd.args(["--watchdog", "120"]);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run the hvcall binary");
    Some(Run {
        status: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// The `key=value` fields of each `hypercall ...` line of `stderr`
/// (`hvcall run --trace-hypercalls`).
pub fn trace_lines(stderr: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    stderr
        .lines()
        .filter(|l| l.starts_with("hypercall "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// Waits for `child` at most `limit`; kills it and returns None if it is
/// still running then.
pub fn wait_within(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A directory of a test's own under the system's temp dir, removed on
/// drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// `hvcall-TEST-PID`, empty.
    pub fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hvcall-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test's temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `hvcall run ARGS` with stdout and stderr piped and waits (30 s
/// at most) until `path` exists: a socket the run creates.
pub fn spawn_until_exists(args: &[&str], path: &Path) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .arg("run")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the hvcall binary");
    let start = std::time::Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("hvcall ended ({status}) before creating {}", path.display());
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{} not created in 30 s",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child
}

/// Sends `signal` to `child`, then waits for it at most `limit`; its exit
/// status (None if it was still running and had to be killed), and its
/// stderr.
pub fn signal_and_wait(
    child: &mut std::process::Child,
    signal: i32,
    limit: std::time::Duration,
) -> (
    Option<std::process::ExitStatus>,
    std::time::Duration,
    String,
) {
    let pid = i32::try_from(child.id()).expect("a pid fits i32");
    // SAFETY: kill(2) has no memory effects; the pid is our own child's,
    // not yet reaped.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal})");
    let start = std::time::Instant::now();
    let status = wait_within(child, limit);
    let took = start.elapsed();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    (status, took, stderr)
}
