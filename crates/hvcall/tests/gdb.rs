//! A real gdb (Debian's `gdb`, batch mode) against `hvcall run --guest
//! spin --gdb PORT`: attach, registers of both VPs (the spin guest's
//! known pattern), a register write the guest reports on COM1, single
//! steps, a software breakpoint, guest memory.
//!
//! Without gdb the test prints SKIP, unless HVCALL_REQUIRE_GDB=1 (as
//! `.ci/run` sets after installing it), which makes that a failure.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::kvm_available;

fn gdb_available(test: &str) -> bool {
    let found = Command::new("gdb")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("HVCALL_REQUIRE_GDB").as_deref() != Ok("1"),
            "{test}: gdb is missing and HVCALL_REQUIRE_GDB=1"
        );
        eprintln!("SKIP {test}: gdb is missing");
    }
    found
}

/// A TCP port nobody listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The value of register `name` in gdb's `info registers` output after
/// the line `marker` (the first such register line).
fn reg_after(out: &str, marker: &str, name: &str) -> Option<u64> {
    let tail = &out[out.find(marker)? + marker.len()..];
    let line = tail
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))?;
    let hex = line.split_whitespace().nth(1)?;
    u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok()
}

#[test]
fn gdb_attaches_reads_writes_steps_and_breaks_on_a_running_vm() {
    let test = "gdb_attaches_reads_writes_steps_and_breaks_on_a_running_vm";
    if !kvm_available(test) || !gdb_available(test) {
        return;
    }
    let port = free_port();
    let mut vm = Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .args(["run", "--guest", "spin", "--cpus", "2", "--gdb"])
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the stub.
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "no gdb stub");
        std::thread::sleep(Duration::from_millis(20));
    }
    // That probe connection was a session of its own (attach, then a
    // hang-up): the stub serves the next one. Let the guest reach its loop.
    std::thread::sleep(Duration::from_millis(500));
    let script = [
        "set pagination off".to_owned(),
        format!("target remote 127.0.0.1:{port}"),
        "echo @@vp0\\n".into(),
        "info registers".into(),
        "thread 2".into(),
        "echo @@vp1\\n".into(),
        "info registers rip r12 rbx r15 rax".into(),
        "echo @@table\\n".into(),
        "x/2gx $rax".into(),
        "set $ds = 0x30".into(),
        "echo @@ds\\n".into(),
        "info registers ds".into(),
        "set $r12 = 0x5151".into(),
        "echo @@step0\\n".into(),
        "info registers rip".into(),
        "stepi".into(),
        "echo @@step1\\n".into(),
        "info registers rip".into(),
        "thread 1".into(),
        "echo @@vp0again\\n".into(),
        "info registers rip".into(),
        "break *$pc".into(),
        "continue".into(),
        "echo @@hit\\n".into(),
        "info registers rip".into(),
        "delete".into(),
        "echo @@bytes\\n".into(),
        "x/1xb $pc".into(),
        "detach".into(),
    ];
    let mut gdb = Command::new("gdb");
    gdb.args(["-batch", "-nx"]);
    for line in &script {
        gdb.arg("-ex").arg(line);
    }
    let out = gdb.output().expect("run gdb");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // The VM runs on after the detach, and the stub serves the next gdb:
    // `continue`, then Ctrl-C (SIGINT to gdb, which sends the interrupt).
    let mut second = Command::new("gdb")
        .args(["-batch", "-nx", "-ex"])
        .arg(format!("target remote 127.0.0.1:{port}"))
        .args([
            "-ex",
            "continue",
            "-ex",
            "echo @@interrupted\\n",
            "-ex",
            "info threads",
            "-ex",
            "detach",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gdb");
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: kill() with a child's pid has no memory effects.
    unsafe { libc::kill(second.id() as i32, libc::SIGINT) };
    let mut interrupted = String::new();
    second
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut interrupted)
        .unwrap();
    second.wait().expect("gdb ends");
    assert!(
        interrupted.contains("received signal SIGINT"),
        "{interrupted}"
    );
    assert!(interrupted.contains("@@interrupted"), "{interrupted}");
    assert!(interrupted.contains("Thread 1.2"), "{interrupted}");
    // SAFETY: kill() with a child's pid has no memory effects.
    unsafe { libc::kill(vm.id() as i32, libc::SIGTERM) };
    let mut console = String::new();
    vm.stdout
        .take()
        .unwrap()
        .read_to_string(&mut console)
        .unwrap();
    let status = vm.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{console}");

    // VP0's pattern (guests/spin): RBX..R15 as rt::pattern, R12 its own.
    let vp0 = |name| reg_after(&text, "@@vp0\n", name);
    assert_eq!(vp0("rbx"), Some(0x3333_3333_3333_3333), "{text}");
    assert_eq!(vp0("rcx"), Some(0x1111_1111_1111_1111), "{text}");
    assert_eq!(vp0("r12"), Some(0x1212_0000_0000_0000), "{text}");
    assert_eq!(vp0("r15"), Some(0xF0F0_0000_0000_0000), "{text}");
    assert!(text.contains("eflags"), "{text}");
    assert!(text.contains("cs             0x8"), "{text}");
    // Thread 2 is VP1.
    let vp1 = |name| reg_after(&text, "@@vp1\n", name);
    assert_eq!(vp1("r12"), Some(0x1212_0000_0000_0001), "{text}");
    assert_eq!(vp1("r15"), Some(0xF0F0_0000_0000_0001), "{text}");
    // Guest memory: RAX holds the VP's table (slot 0: 0, slot 1: RCX).
    let table = &text[text.find("@@table\n").expect("table")..];
    assert!(
        table.contains("0x0000000000000000\t0x1111111111111111"),
        "{text}"
    );
    // A selector write is refused (the stub does not write segments).
    assert!(text.contains("Could not write registers"), "{text}");
    assert_eq!(reg_after(&text, "@@ds\n", "ds"), Some(0x10), "{text}");
    // The write reached VP1, which reported it.
    assert!(
        console.contains("spin: VP1: r12 changed from 0x1212000000000001 to 0x0000000000005151"),
        "{console}\n{text}"
    );
    // One instruction of VP1's loop (pause 2 bytes, cmp 4, je 2 back).
    let (before, after) = (
        reg_after(&text, "@@step0\n", "rip").expect("rip"),
        reg_after(&text, "@@step1\n", "rip").expect("rip"),
    );
    assert_ne!(before, after, "stepi did not move VP1\n{text}");
    assert!(
        after.abs_diff(before) <= 8,
        "{before:#x} -> {after:#x}\n{text}"
    );
    // The breakpoint at VP0's spin loop is hit again (by either VP).
    let pc = reg_after(&text, "@@vp0again\n", "rip").expect("rip");
    assert!(text.contains("hit Breakpoint 1"), "{text}");
    assert_eq!(reg_after(&text, "@@hit\n", "rip"), Some(pc), "{text}");
    // After `delete`, memory shows the instruction byte again, not int3.
    let bytes = &text[text.find("@@bytes\n").expect("bytes")..];
    assert!(
        !bytes.lines().nth(1).unwrap_or("").contains("0xcc"),
        "{text}"
    );
}
