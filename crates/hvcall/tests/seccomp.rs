//! seccomp (`hvcall run --seccomp on|off|log`, `hvcall_vmm::seccomp`):
//! every thread of a running VM is filtered, and a system call outside a
//! thread's list ends hvcall with status 159 and a line naming both.

mod support;

use std::path::Path;
use std::time::Duration;

use hvcall::api::{Client, Request};
use hvcall_abi::name::x64;
use support::{kvm_available, signal_and_wait, spawn_until_exists, TempDir};

/// Each thread of process `pid`: (name, its `Seccomp:` mode).
fn thread_modes(pid: u32) -> Vec<(String, u32)> {
    let mut threads = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("list the threads");
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_string())
        };
        if let (Some(name), Some(mode)) = (field("Name:"), field("Seccomp:")) {
            threads.push((name, mode.parse().unwrap_or(u32::MAX)));
        }
    }
    threads
}

/// Starts the spin guest with an API socket and a connected client (so
/// that a client thread exists); the process, the client and the threads'
/// modes.
fn spin_threads(test: &str, dir: &Path, mode: &str) -> Vec<(String, u32)> {
    let socket = dir.join("api.sock");
    let mut child = spawn_until_exists(
        &[
            "--guest",
            "spin",
            "--seccomp",
            mode,
            "--inspect",
            "1",
            "--names",
            "rip",
            "--interval-ms",
            "200",
            "--gdb",
            &dir.join("gdb.sock").to_string_lossy(),
            "--api-socket",
            &socket.to_string_lossy(),
        ],
        &socket,
    );
    let mut client = Client::connect(&socket).expect("connect");
    client
        .call(&Request::get(1, &[x64::R12]))
        .expect("a read through the API");
    let threads = thread_modes(child.id());
    let (status, _, stderr) = signal_and_wait(&mut child, libc::SIGTERM, Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(130), "{test}: {stderr}");
    threads
}

#[test]
fn every_thread_of_a_running_vm_is_under_seccomp() {
    let test = "every_thread_of_a_running_vm_is_under_seccomp";
    if !kvm_available(test) {
        return;
    }
    let dir = TempDir::new(test);
    let threads = spin_threads(test, &dir.0, "on");
    let names: Vec<&str> = threads.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "hvcall",
        "vcpu0",
        "vcpu1",
        "hvcall-stdout",
        "inspector",
        "api",
        "sampler",
    ] {
        assert!(names.contains(&expected), "no {expected} thread: {names:?}");
    }
    assert!(threads.len() >= 9, "no client thread: {names:?}");
    for (name, mode) in &threads {
        assert_eq!(*mode, 2, "thread {name} is not filtered: {threads:?}");
    }
    // And the check can fail: without filters no thread is in mode 2.
    let off = spin_threads(test, &dir.0, "off");
    assert!(off.iter().all(|(_, mode)| *mode == 0), "{off:?}");
}

/// `hvcall run ARGS` to its end: status and stderr.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .arg("run")
        .args(args)
        .output()
        .expect("run the hvcall binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_call_outside_a_threads_list_ends_hvcall_with_status_159_naming_both() {
    let test = "a_call_outside_a_threads_list_ends_hvcall_with_status_159";
    if !kvm_available(test) {
        return;
    }
    let (status, stderr) = run(&["--seccomp-probe", "host"]);
    assert_eq!(status, Some(159), "{stderr}");
    assert!(
        stderr.contains("the host thread made system call getppid (110)"),
        "{stderr}"
    );
    let dir = TempDir::new(test);
    let socket = dir.0.join("api.sock");
    let (status, stderr) = run(&[
        "--guest",
        "spin",
        "--seccomp-probe",
        "api",
        "--api-socket",
        &socket.to_string_lossy(),
    ]);
    assert_eq!(status, Some(159), "{stderr}");
    assert!(
        stderr.contains("the api thread made system call getppid"),
        "{stderr}"
    );
    // In log mode the call goes through (the kernel logs it) and the run
    // ends as the guest decides.
    let (status, stderr) = run(&["--seccomp", "log", "--seccomp-probe", "host"]);
    assert_eq!(status, Some(0), "{stderr}");
}
