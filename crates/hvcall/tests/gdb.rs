//! A real gdb (Debian's `gdb`, batch mode) and raw remote-protocol
//! clients against `hvcall run --guest spin --gdb PATH` (and one
//! `--gdb-port PORT`): attach, registers of both VPs (the spin guest's
//! known pattern), a register write the guest reports on COM1, single
//! steps, software breakpoints (aliased ones too), guest memory; who may
//! connect; and that hvcall ends on SIGTERM or its watchdog whatever the
//! gdb client does.
//!
//! Without gdb the tests that drive it print SKIP, unless
//! HVCALL_REQUIRE_GDB=1 (as `.ci/run` sets after installing it), which
//! makes that a failure.

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{kvm_available, TempDir};

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

/// `hvcall run --guest spin --cpus 2 ARGS`, killed if still running when
/// dropped.
struct Spin {
    child: Child,
}

impl Spin {
    fn start(args: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_hvcall"))
            .args(["run", "--guest", "spin", "--cpus", "2"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hvcall");
        Self { child }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill() with a child's pid has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits at most `limit` for the end: (exit status, stdout, stderr);
    /// None if it still runs then.
    fn wait_within(&mut self, limit: Duration) -> Option<(Option<i32>, String, String)> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut out = String::new();
                let mut err = String::new();
                self.child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .unwrap();
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return Some((status.code(), out, err));
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Spin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the stub at `path` and lets the guest reach its loop. The
/// probe connection is a session of its own (attach, then a hang-up);
/// the stub serves the next one.
fn wait_unix(path: &Path) {
    let start = Instant::now();
    while UnixStream::connect(path).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "no gdb stub");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
}

/// As [`wait_unix`], on 127.0.0.1:`port`.
fn wait_tcp(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "no gdb stub");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
}

/// Runs gdb in batch mode with `script` (one command per line); stdout
/// and stderr together.
fn gdb(script: &[String]) -> String {
    let mut gdb = Command::new("gdb");
    gdb.args(["-batch", "-nx"]);
    for line in script {
        gdb.arg("-ex").arg(line);
    }
    let out = gdb.output().expect("run gdb");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A remote-protocol packet: `$body#checksum`.
fn packet(body: &str) -> Vec<u8> {
    let sum = body.bytes().fold(0u8, |s, b| s.wrapping_add(b));
    format!("${body}#{sum:02x}").into_bytes()
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
    let dir = TempDir::new(test);
    let sock = dir.0.join("gdb.sock");
    let mut vm = Spin::start(&["--gdb", sock.to_str().unwrap()]);
    wait_unix(&sock);
    let mode = std::fs::symlink_metadata(&sock)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let target = format!("target remote {}", sock.display());
    let script = [
        "set pagination off".to_owned(),
        target.clone(),
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
    let text = gdb(&script);
    // The VM runs on after the detach, and the stub serves the next gdb:
    // `continue`, then Ctrl-C (SIGINT to gdb, which sends the interrupt).
    let mut second = Command::new("gdb")
        .args(["-batch", "-nx", "-ex", &target])
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
    vm.signal(libc::SIGTERM);
    let (status, console, _) = vm.wait_within(Duration::from_secs(10)).expect("ends");
    assert_eq!(status, Some(130), "{console}");
    assert!(!sock.exists(), "the socket is removed");

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

#[test]
fn gdb_port_serves_our_own_uid_over_tcp() {
    let test = "gdb_port_serves_our_own_uid_over_tcp";
    if !kvm_available(test) || !gdb_available(test) {
        return;
    }
    let port = free_port();
    let mut vm = Spin::start(&["--gdb-port", &port.to_string()]);
    wait_tcp(port);
    let text = gdb(&[
        format!("target remote 127.0.0.1:{port}"),
        "echo @@vp0\\n".into(),
        "info registers r12".into(),
        "detach".into(),
    ]);
    assert_eq!(
        reg_after(&text, "@@vp0\n", "r12"),
        Some(0x1212_0000_0000_0000),
        "{text}"
    );
    vm.signal(libc::SIGTERM);
    let (status, _, err) = vm.wait_within(Duration::from_secs(10)).expect("ends");
    assert_eq!(status, Some(130), "{err}");
    assert!(!err.contains("refused"), "{err}");
}

/// `setpriv` as nobody (uid and gid 65534, no groups) with `args`; None
/// if this process cannot switch users.
fn as_nobody(program: &str, args: &[String]) -> Option<Output> {
    let probe = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return None;
    }
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", program])
        .args(args)
        .env("HOME", "/")
        .output()
        .ok()
}

#[test]
fn another_uid_is_refused_on_the_gdb_port_and_cannot_open_the_gdb_socket() {
    let test = "another_uid_is_refused_on_the_gdb_port_and_cannot_open_the_gdb_socket";
    if !kvm_available(test) || !gdb_available(test) {
        return;
    }
    let dir = TempDir::new(test);
    // nobody may reach the directory; the socket's mode is what keeps
    // it out.
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.0.join("gdb.sock");
    let port = free_port();
    let mut unix_vm = Spin::start(&["--gdb", sock.to_str().unwrap()]);
    let mut tcp_vm = Spin::start(&["--gdb-port", &port.to_string()]);
    wait_unix(&sock);
    wait_tcp(port);
    let script = |target: String| {
        [
            "-batch",
            "-nx",
            "-ex",
            &target,
            "-ex",
            "echo @@regs\\n",
            "-ex",
            "info registers r12",
            "-ex",
            "x/2gx 0x2000",
        ]
        .map(String::from)
        .to_vec()
    };
    let Some(tcp) = as_nobody("gdb", &script(format!("target remote 127.0.0.1:{port}"))) else {
        eprintln!(
            "SKIP {test}: cannot run a process as nobody (setpriv failed); \
             the uid check is covered by the unit tests only"
        );
        return;
    };
    let unix = as_nobody("gdb", &script(format!("target remote {}", sock.display())))
        .expect("ran once already");
    let text = |o: &Output| {
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let (tcp, unix) = (text(&tcp), text(&unix));
    for (what, out) in [("TCP", &tcp), ("Unix", &unix)] {
        assert_eq!(reg_after(out, "@@regs\n", "r12"), None, "{what}: {out}");
        assert!(!out.contains("0x2000:\t0x"), "{what}: {out}");
    }
    assert!(unix.contains("Permission denied"), "{unix}");
    // Our own gdb still gets in, and the VMs ran on.
    let ours = gdb(&[
        format!("target remote 127.0.0.1:{port}"),
        "echo @@regs\\n".into(),
        "info registers r12".into(),
        "detach".into(),
    ]);
    assert_eq!(
        reg_after(&ours, "@@regs\n", "r12"),
        Some(0x1212_0000_0000_0000),
        "{ours}"
    );
    for vm in [&mut unix_vm, &mut tcp_vm] {
        vm.signal(libc::SIGTERM);
    }
    let (status, _, err) = tcp_vm.wait_within(Duration::from_secs(10)).expect("ends");
    assert_eq!(status, Some(130), "{err}");
    assert!(err.contains("refused 127.0.0.1:"), "{err}");
    assert!(err.contains("is not ours"), "{err}");
    let (status, _, err) = unix_vm.wait_within(Duration::from_secs(10)).expect("ends");
    assert_eq!(status, Some(130), "{err}");
}

/// What a client does before it goes silent.
#[derive(Debug, Clone, Copy)]
enum Client {
    /// Attaches (the VM is held) and asks for the stop reason.
    Attached,
    /// Attaches, then `continue` (the VM runs).
    Continued,
    /// Asks for 4 GiB of memory and never reads the reply.
    HugeRead,
    /// Keeps asking for the registers and reading the replies.
    Flooding,
}

/// With gdb attached and doing `client`, SIGTERM (or the watchdog) ends
/// hvcall within 2 s and removes its sockets.
fn ends_within_2s_with(test: &str, client: Client, watchdog: bool) {
    let dir = TempDir::new(test);
    let sock = dir.0.join("gdb.sock");
    let api = dir.0.join("api.sock");
    let mut args = vec![
        "--gdb",
        sock.to_str().unwrap(),
        "--api-socket",
        api.to_str().unwrap(),
    ];
    if watchdog {
        args.extend(["--watchdog", "3"]);
    }
    let mut vm = Spin::start(&args);
    wait_unix(&sock);
    let mut gdb = UnixStream::connect(&sock).unwrap();
    gdb.write_all(&packet("qSupported:swbreak+")).unwrap();
    match client {
        Client::Attached => gdb.write_all(&packet("?")).unwrap(),
        Client::Continued => gdb.write_all(&packet("vCont;c")).unwrap(),
        Client::HugeRead => gdb.write_all(&packet("m0,ffffffff")).unwrap(),
        Client::Flooding => {
            let mut reader = gdb.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while reader.read(&mut buf).is_ok_and(|n| n > 0) {}
            });
            let mut writer = gdb.try_clone().unwrap();
            std::thread::spawn(move || while writer.write_all(&packet("g")).is_ok() {});
        }
    }
    // Let the stub take it in (and, for the read, fill the socket).
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let limit = if watchdog {
        // Ends about 3 s after its start.
        Duration::from_secs(5)
    } else {
        vm.signal(libc::SIGTERM);
        Duration::from_secs(2)
    };
    let ended = vm.wait_within(limit);
    let (status, _, err) = ended
        .unwrap_or_else(|| panic!("{client:?}: hvcall still runs {:?} later", start.elapsed()));
    assert_eq!(
        status,
        Some(if watchdog { 124 } else { 130 }),
        "{client:?}: {err}"
    );
    assert!(!sock.exists(), "{client:?}: the gdb socket is left");
    assert!(!api.exists(), "{client:?}: the API socket is left");
    drop(gdb);
}

#[test]
fn sigterm_ends_hvcall_within_2s_while_gdb_is_attached_and_silent() {
    let test = "sigterm_ends_hvcall_within_2s_while_gdb_is_attached_and_silent";
    if !kvm_available(test) {
        return;
    }
    ends_within_2s_with(test, Client::Attached, false);
}

#[test]
fn sigterm_ends_hvcall_within_2s_while_gdb_continued_and_is_silent() {
    let test = "sigterm_ends_hvcall_within_2s_while_gdb_continued_and_is_silent";
    if !kvm_available(test) {
        return;
    }
    ends_within_2s_with(test, Client::Continued, false);
}

#[test]
fn sigterm_ends_hvcall_within_2s_while_gdb_does_not_read_a_huge_memory_read() {
    let test = "sigterm_ends_hvcall_within_2s_while_gdb_does_not_read_a_huge_memory_read";
    if !kvm_available(test) {
        return;
    }
    ends_within_2s_with(test, Client::HugeRead, false);
}

#[test]
fn sigterm_ends_hvcall_within_2s_while_gdb_floods_it_with_requests() {
    let test = "sigterm_ends_hvcall_within_2s_while_gdb_floods_it_with_requests";
    if !kvm_available(test) {
        return;
    }
    ends_within_2s_with(test, Client::Flooding, false);
}

#[test]
fn the_watchdog_ends_hvcall_while_gdb_is_attached_and_silent() {
    let test = "the_watchdog_ends_hvcall_while_gdb_is_attached_and_silent";
    if !kvm_available(test) {
        return;
    }
    ends_within_2s_with(test, Client::Attached, true);
}

#[test]
fn a_huge_memory_read_is_bounded() {
    let test = "a_huge_memory_read_is_bounded";
    if !kvm_available(test) {
        return;
    }
    let dir = TempDir::new(test);
    let sock = dir.0.join("gdb.sock");
    let mut vm = Spin::start(&["--gdb", sock.to_str().unwrap()]);
    wait_unix(&sock);
    let mut gdb = UnixStream::connect(&sock).unwrap();
    gdb.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    gdb.write_all(&packet("m0,ffffffff")).unwrap();
    // The reply: `+`, `$`, at most 64 KiB as hex, an error, `#xx`.
    let mut reply = Vec::new();
    let mut buf = [0u8; 65536];
    while !reply.contains(&b'#') {
        let n = gdb.read(&mut buf).expect("a reply");
        assert!(n > 0, "hung up");
        reply.extend_from_slice(&buf[..n]);
        assert!(reply.len() < 4 * 65536, "unbounded: {} bytes", reply.len());
    }
    let body = &reply[reply.iter().position(|&b| b == b'$').unwrap() + 1..];
    // Undo the run-length encoding (`X*N`: N - 29 more of X).
    let mut plain = Vec::new();
    let mut bytes = body.iter();
    while let Some(&b) = bytes.next() {
        match (b, plain.last().copied()) {
            (b'*', Some(last)) => {
                let n = bytes.next().expect("a count") - 29;
                plain.extend(std::iter::repeat_n(last, n.into()));
            }
            _ => plain.push(b),
        }
    }
    let hex = plain
        .iter()
        .take_while(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        .count();
    assert_eq!(
        hex,
        2 * 64 * 1024,
        "{}",
        String::from_utf8_lossy(&plain[hex..])
    );
    assert_eq!(
        plain[hex],
        b'E',
        "{}",
        String::from_utf8_lossy(&plain[hex..])
    );
    drop(gdb);
    vm.signal(libc::SIGTERM);
    let (status, _, err) = vm.wait_within(Duration::from_secs(10)).expect("ends");
    assert_eq!(status, Some(130), "{err}");
}

#[test]
fn aliased_and_non_canonical_breakpoints_leave_the_guest_its_bytes() {
    let test = "aliased_and_non_canonical_breakpoints_leave_the_guest_its_bytes";
    if !kvm_available(test) || !gdb_available(test) {
        return;
    }
    let dir = TempDir::new(test);
    let sock = dir.0.join("gdb.sock");
    let mut vm = Spin::start(&["--gdb", sock.to_str().unwrap()]);
    wait_unix(&sock);
    // The boot page tables (crates/hvcall-vmm/src/boot/mod.rs) map RAM once,
    // at 0; PML4 entry 1 pointing at the same PDPT (0x3000) maps it again
    // at 512 GiB: a real alias of every code byte.
    const ALIAS: &str = "0x8000000000";
    let text = gdb(&[
        "set pagination off".into(),
        format!("target remote {}", sock.display()),
        "set *(unsigned long *)0x2008 = 0x3003".into(),
        "echo @@orig\\n".into(),
        "x/1xb $pc".into(),
        "echo @@alias\\n".into(),
        format!("x/1xb (unsigned long)$pc + {ALIAS}"),
        "echo @@noncanonical\\n".into(),
        "x/1xb (unsigned long)$pc | 0x8000000000000000".into(),
        "break *$pc".into(),
        format!("break *((unsigned long)$pc + {ALIAS})"),
        "continue".into(),
        "echo @@hit\\n".into(),
        "delete".into(),
        "break *((unsigned long)$pc | 0x8000000000000000)".into(),
        "continue".into(),
        "echo @@refused\\n".into(),
        "delete".into(),
        "set *(unsigned long *)0x2008 = 0".into(),
        "echo @@after\\n".into(),
        "x/1xb $pc".into(),
        "detach".into(),
    ]);
    let byte_after = |marker: &str| {
        let tail = &text[text
            .find(marker)
            .unwrap_or_else(|| panic!("{marker}\n{text}"))..];
        tail.lines().nth(1).unwrap_or("").to_owned()
    };
    let orig = byte_after("@@orig\n");
    let value = orig.split_whitespace().last().unwrap_or("").to_owned();
    assert!(value.starts_with("0x") && value != "0xcc", "{text}");
    assert!(byte_after("@@alias\n").ends_with(&value), "{text}");
    // The non-canonical alias is refused (gdb's errors come on stderr,
    // after the output).
    assert!(!byte_after("@@noncanonical\n").contains(&value), "{text}");
    assert!(
        text.contains("Cannot access memory at address 0x8000000000"),
        "{text}"
    );
    assert!(text.contains("hit Breakpoint"), "{text}");
    assert!(text.contains("Cannot insert breakpoint 3"), "{text}");
    assert!(byte_after("@@after\n").ends_with(&value), "{text}");
    // The VM runs on without a stray int3 (a #BP would fault it).
    std::thread::sleep(Duration::from_secs(2));
    vm.signal(libc::SIGTERM);
    let (status, out, err) = vm.wait_within(Duration::from_secs(10)).expect("ends");
    assert_eq!(status, Some(130), "{out}\n{err}\n{text}");
}

#[test]
fn gdb_kill_is_reported_as_gdbs_kill_request() {
    let test = "gdb_kill_is_reported_as_gdbs_kill_request";
    if !kvm_available(test) || !gdb_available(test) {
        return;
    }
    let dir = TempDir::new(test);
    let sock = dir.0.join("gdb.sock");
    let mut vm = Spin::start(&["--gdb", sock.to_str().unwrap()]);
    wait_unix(&sock);
    let text = gdb(&[format!("target remote {}", sock.display()), "kill".into()]);
    let (status, _, err) = vm.wait_within(Duration::from_secs(10)).expect("ends");
    assert_eq!(status, Some(130), "{err}\n{text}");
    assert!(err.contains("stopped by gdb's kill request"), "{err}");
    assert!(!err.contains("SIGINT"), "{err}");
    assert!(!sock.exists());
}

#[test]
fn gdb_with_a_port_number_points_to_gdb_port() {
    let out = Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .args(["run", "--guest", "spin", "--gdb", "1234"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--gdb-port 1234"), "{err}");
}
