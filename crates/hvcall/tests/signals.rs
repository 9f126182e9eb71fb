//! Every terminating signal `hvcall run` can catch ends it the same clean
//! way (crate `hvcall`'s `signals` module): the VM stops, the process
//! exits with status 130 within 2 s and its API socket is removed.

mod support;

use std::time::Duration;

use support::{kvm_available, signal_and_wait, spawn_until_exists, TempDir};

#[test]
fn every_catchable_terminating_signal_stops_the_vm_and_removes_the_socket() {
    let test = "every_catchable_terminating_signal_stops_the_vm";
    if !kvm_available(test) {
        return;
    }
    let dir = TempDir::new(test);
    for (signal, name) in [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGRTMAX(), "SIGRTMIN+"),
    ] {
        let socket = dir.0.join(format!("{signal}.sock"));
        let mut child = spawn_until_exists(
            &["--guest", "spin", "--api-socket", &socket.to_string_lossy()],
            &socket,
        );
        let (status, took, stderr) = signal_and_wait(&mut child, signal, Duration::from_secs(10));
        let status = status.unwrap_or_else(|| panic!("{name}: still running after 10 s"));
        assert_eq!(status.code(), Some(130), "{name}: {status}\n{stderr}");
        assert!(took <= Duration::from_secs(2), "{name}: took {took:?}");
        assert!(!socket.exists(), "{name}: the socket is left behind");
        assert!(
            stderr.contains(&format!("stopped by {name}")),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn a_run_without_sockets_stops_cleanly_on_sigterm() {
    let test = "a_run_without_sockets_stops_cleanly_on_sigterm";
    if !kvm_available(test) {
        return;
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .args(["run", "--guest", "spin"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the hvcall binary");
    // Long enough for the VM to run.
    std::thread::sleep(Duration::from_millis(500));
    let (status, _, stderr) = signal_and_wait(&mut child, libc::SIGTERM, Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(130), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
}
