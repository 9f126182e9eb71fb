//! The API socket (`hvcall run --api-socket`) and `hvcall regs` against a
//! running `--guest spin`: values checked against the guest's known
//! pattern, table and JSON, a write the guest reports, and the socket's
//! rules (mode 0600, existing paths refused, removed on exit; malformed,
//! truncated, oversized, concurrent requests and clients that hang up or
//! never send; SIGTERM ends the VM within 2 s whatever clients do).

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hvcall::api::{read_frame, write_frame, Client, Reply, Request, MAX_REPLY, MAX_REQUEST};
use hvcall_abi::name::x64;
use hvcall_abi::{HvRegisterValue, HvStatus, SetVpRegistersElement};

use support::{kvm_available, TempDir};

/// A running `hvcall run --guest spin --api-socket PATH`, stopped with
/// SIGTERM when dropped.
struct Spin {
    child: Child,
    socket: PathBuf,
    _dir: TempDir,
}

impl Spin {
    /// Starts the VM (2 VPs) and waits for its socket.
    fn start(test: &str) -> Option<Self> {
        if !kvm_available(test) {
            return None;
        }
        let dir = TempDir::new(test);
        let socket = dir.0.join("api.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_hvcall"))
            .args(["run", "--guest", "spin", "--cpus", "2", "--api-socket"])
            .arg(&socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hvcall");
        let spin = Self {
            child,
            socket,
            _dir: dir,
        };
        let start = Instant::now();
        while !spin.socket.exists() {
            assert!(start.elapsed() < Duration::from_secs(30), "no socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Every VP is in its loop once its R12 holds the first value (only
        // the loop loads R12).
        let mut client = Client::connect(&spin.socket).expect("connect");
        for vp in 0..2u32 {
            loop {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "VP {vp} never spun"
                );
                if let Ok(Reply::Result { values, .. }) =
                    client.call(&Request::get(vp, &[x64::R12]))
                {
                    if values.first().map(|v| v.as_u64())
                        == Some(0x1212_0000_0000_0000 | u64::from(vp))
                    {
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Some(spin)
    }

    /// `hvcall regs --api-socket PATH ARGS`: (exit status, stdout, stderr).
    fn regs(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_hvcall"))
            .arg("regs")
            .arg("--api-socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run hvcall regs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Stops the VM (SIGTERM) and returns its exit status and stdout.
    fn stop(mut self) -> (Option<i32>, String) {
        // SAFETY: kill() with a child's pid has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        let status = self.child.wait().expect("wait for hvcall").code();
        (status, stdout)
    }
}

impl Drop for Spin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value pattern register `index` (x86 numbering) holds on `vp`
/// (guests/rt/src/pattern.rs).
fn pattern(index: usize, vp: u64) -> u64 {
    match index {
        15 => 0xF0F0_0000_0000_0000 | vp,
        _ => 0x1111_1111_1111_1111 * index as u64,
    }
}

#[test]
fn regs_reads_every_vp_as_a_table_and_as_json() {
    let Some(spin) = Spin::start("regs_reads_every_vp_as_a_table_and_as_json") else {
        return;
    };
    let (status, table, err) = spin.regs(&["--vp", "all", "rip", "rsp", "cr3", "cs", "rbx", "r12"]);
    assert_eq!(status, Some(0), "{err}");
    assert!(table.starts_with("VP 0\n"), "{table}");
    assert!(table.contains("\nVP 1\n"), "{table}");
    assert!(!table.contains("VP 2"), "{table}");
    assert!(table.contains("selector 0x0008"), "{table}");
    assert!(
        table.contains(&format!("{:#018x}", pattern(3, 0))),
        "rbx\n{table}"
    );

    let (status, json, err) = spin.regs(&["--vp", "all", "--json", "gpr", "xmm", "seg"]);
    assert_eq!(status, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let vps = v["vps"].as_array().expect("vps");
    assert_eq!(vps.len(), 2);
    for (vp, entry) in vps.iter().enumerate() {
        let regs = &entry["registers"];
        assert_eq!(entry["vp"], vp);
        let hex = |name: &str| {
            let text = regs[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: {regs}"));
            u128::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
        };
        // The pattern while spinning (the loop never changes it).
        for (name, index) in [("rcx", 1), ("rdx", 2), ("rbx", 3), ("r9", 9), ("r15", 15)] {
            assert_eq!(
                hex(name),
                u128::from(pattern(index, vp as u64)),
                "{name} of VP {vp}"
            );
        }
        assert_eq!(hex("r12"), u128::from(0x1212_0000_0000_0000 | vp as u64));
        assert_eq!(hex("xmm15"), 0xF0F0_F0F0_F0F0_F0F0_0F0F_0F0F_0F0F_0F0F);
        assert_eq!(regs["cs"]["selector"], "0x8");
        assert!(regs["gdtr"]["base"].is_string());
    }
    let (status, _, err) = spin.regs(&["--vp", "5", "rip"]);
    assert_eq!(status, Some(1));
    assert!(err.contains("VP 5: HV_STATUS_INVALID_VP_INDEX"), "{err}");
    let (status, _, err) = spin.regs(&["bogus"]);
    assert_eq!(status, Some(1));
    assert!(err.contains("unknown x64 register"), "{err}");

    let (status, stdout) = spin.stop();
    assert_eq!(status, Some(130), "SIGTERM stops the VM");
    assert!(
        stdout.contains("spin: 2 VPs holding their pattern"),
        "{stdout}"
    );
}

#[test]
fn regs_set_reaches_the_guest_which_reports_it() {
    let Some(spin) = Spin::start("regs_set_reaches_the_guest_which_reports_it") else {
        return;
    };
    let (status, out, err) = spin.regs(&[
        "--vp",
        "1",
        "--set",
        "r12=0x4242",
        "--set",
        "dr1=0x99",
        "dr1",
    ]);
    assert_eq!(status, Some(0), "{err}");
    assert!(out.contains("0x0000000000000099"), "{out}");
    // The guest prints the change on COM1; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let socket = spin.socket.clone();
    let (status, stdout) = spin.stop();
    assert_eq!(status, Some(130));
    assert!(
        stdout.contains("spin: VP1: r12 changed from 0x1212000000000001 to 0x0000000000004242"),
        "{stdout}"
    );
    assert!(!socket.exists(), "the socket is removed on exit");
}

fn raw(socket: &Path) -> UnixStream {
    let s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn refused(stream: &mut UnixStream) -> String {
    match Reply::decode(&read_frame(stream, MAX_REPLY).expect("a reply")) {
        Ok(Reply::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_socket_is_private_refuses_bad_requests_and_serves_many_clients() {
    let test = "the_socket_is_private_refuses_bad_requests_and_serves_many_clients";
    let Some(spin) = Spin::start(test) else {
        return;
    };
    let meta = std::fs::symlink_metadata(&spin.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // An existing path is refused, not replaced.
    let again = Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .args(["run", "--guest", "demo", "--api-socket"])
        .arg(&spin.socket)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert!(spin.socket.exists());

    // A client that connects and never sends, and one that hangs up in
    // the middle of a frame, hold nothing up.
    let _silent = raw(&spin.socket);
    {
        let mut s = raw(&spin.socket);
        s.write_all(&100u32.to_le_bytes()).unwrap();
        s.write_all(b"HVC1").unwrap();
    }
    // Malformed: bad magic, unknown code, a list that is not whole names.
    let good = Request::get(0, &[x64::RIP]).encode();
    let mut s = raw(&spin.socket);
    let mut bad = good.clone();
    bad[0] = b'X';
    write_frame(&mut s, &bad).unwrap();
    assert!(refused(&mut s).contains("bad magic"));
    let mut bad = good.clone();
    bad[4] = 0x52;
    write_frame(&mut s, &bad).unwrap();
    assert!(refused(&mut s).contains("0x0052"));
    let mut bad = good.clone();
    bad.push(0);
    write_frame(&mut s, &bad).unwrap();
    assert!(refused(&mut s).contains("whole entries"));
    // The same connection still serves a good request.
    write_frame(&mut s, &good).unwrap();
    let reply = Reply::decode(&read_frame(&mut s, MAX_REPLY).unwrap()).unwrap();
    assert!(
        matches!(
            reply,
            Reply::Result {
                status: HvStatus::SUCCESS,
                reps: 1,
                ..
            }
        ),
        "{reply:?}"
    );
    // Oversized: refused without reading it, and the connection closes.
    s.write_all(&((MAX_REQUEST + 1) as u32).to_le_bytes())
        .unwrap();
    assert!(refused(&mut s).contains("at most"));
    assert!(read_frame(&mut s, MAX_REPLY).is_err(), "closed");
    // Truncated: a frame shorter than its header.
    let mut s = raw(&spin.socket);
    write_frame(&mut s, &good[..10]).unwrap();
    assert!(refused(&mut s).contains("truncated"));
    // A refused write (step 8a, reserved bytes) changes nothing.
    let mut client = Client::connect(&spin.socket).unwrap();
    let before = client.call(&Request::get(1, &[x64::DR2])).unwrap();
    let mut e = SetVpRegistersElement::new(x64::DR2, HvRegisterValue::from(0x77u64));
    e.reserved[0] = 1;
    let reply = client.call(&Request::set(1, &[e])).unwrap();
    assert!(
        matches!(
            reply,
            Reply::Result {
                status: HvStatus::INVALID_PARAMETER,
                reps: 0,
                ..
            }
        ),
        "{reply:?}"
    );
    assert_eq!(client.call(&Request::get(1, &[x64::DR2])).unwrap(), before);

    // Many clients at once, each writing and reading back its own value.
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let socket = &spin.socket;
            s.spawn(move || {
                let mut c = Client::connect(socket).unwrap();
                for i in 0..40u64 {
                    let vp = (t % 2) as u32;
                    let names = [x64::RBX, x64::VP_INDEX];
                    match c.call(&Request::get(vp, &names)).unwrap() {
                        Reply::Result { status, values, .. } => {
                            assert_eq!(status, HvStatus::SUCCESS);
                            assert_eq!(values[0].as_u64(), pattern(3, u64::from(vp)));
                            assert_eq!(values[1].as_u64(), u64::from(vp));
                        }
                        other => panic!("{other:?}"),
                    }
                    let xmm = 8 + t as u32 % 4; // XMM8..11: the spin loop's spare
                    let name = hvcall_abi::HvRegisterName(x64::XMM0.0 + xmm);
                    let v = HvRegisterValue::from((t << 32 | i) as u128);
                    let set = SetVpRegistersElement::new(name, v);
                    let r = c.call(&Request::set(vp, &[set])).unwrap();
                    assert!(matches!(
                        r,
                        Reply::Result {
                            status: HvStatus::SUCCESS,
                            ..
                        }
                    ));
                }
            });
        }
    });
    let socket = spin.socket.clone();
    let (status, _) = spin.stop();
    assert_eq!(status, Some(130));
    assert!(!socket.exists(), "removed on exit");
}

/// Sends requests on `stream` without reading a reply until the server
/// stops taking them (it is then stuck writing replies nobody reads).
fn flood(stream: &mut UnixStream) {
    stream.set_nonblocking(true).unwrap();
    let mut request = Vec::new();
    write_frame(&mut request, &Request::get(0, &[x64::RIP]).encode()).unwrap();
    let mut stuck: Option<Instant> = None;
    let start = Instant::now();
    while stuck.is_none_or(|t| t.elapsed() < Duration::from_millis(500)) {
        assert!(start.elapsed() < Duration::from_secs(30), "never stuck");
        match stream.write(&request) {
            Ok(_) => stuck = None,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                stuck.get_or_insert_with(Instant::now);
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("flood: {e}"),
        }
    }
}

/// Issue 16 item 2 (and its "done when"): with a client that floods
/// requests and never reads, a silent client and 32 clients trickling a
/// byte every 300 ms attached, SIGTERM ends hvcall within 2 s and the
/// socket is gone. (A never-reading client used to delay the exit by one
/// 30 s write timeout per reply.)
#[test]
fn sigterm_ends_hvcall_within_2_s_whatever_the_api_clients_do() {
    let test = "sigterm_ends_hvcall_within_2_s_whatever_the_api_clients_do";
    let Some(mut spin) = Spin::start(test) else {
        return;
    };
    let mut flooder = raw(&spin.socket);
    flood(&mut flooder);
    let _silent = raw(&spin.socket);
    let mut tricklers: Vec<UnixStream> = (0..32).map(|_| raw(&spin.socket)).collect();
    for t in &mut tricklers {
        // 34 connections for 32 slots: the server may already have
        // refused and closed the last ones, whose writes then fail.
        let _ = t.write_all(&100u32.to_le_bytes());
    }
    let trickling = std::sync::atomic::AtomicBool::new(true);
    let socket = spin.socket.clone();
    std::thread::scope(|s| {
        s.spawn(|| {
            while trickling.load(std::sync::atomic::Ordering::Relaxed) {
                for t in &mut tricklers {
                    // Slots beyond the server's limit were refused and
                    // closed: their writes fail, which is fine.
                    let _ = t.write_all(b"H");
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        std::thread::sleep(Duration::from_secs(1));
        let start = Instant::now();
        // SAFETY: kill() with a child's pid has no memory effects.
        unsafe { libc::kill(spin.child.id() as i32, libc::SIGTERM) };
        let status = loop {
            if let Some(status) = spin.child.try_wait().expect("wait") {
                break Some(status);
            }
            if start.elapsed() > Duration::from_secs(60) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = start.elapsed();
        trickling.store(false, std::sync::atomic::Ordering::Relaxed);
        let status = status.expect("hvcall still running 60 s after SIGTERM");
        assert!(took < Duration::from_secs(2), "exit took {took:?}");
        assert_eq!(status.code(), Some(130));
        assert!(!socket.exists(), "the socket is removed on exit");
    });
}

/// `hvcall regs ARGS` against a fake server that answers its first
/// request with `reply`: (exit status, stdout, stderr). Needs no KVM.
fn regs_against(test: &str, reply: &Reply, args: &[&str]) -> (Option<i32>, String, String) {
    let dir = TempDir::new(test);
    let socket = dir.0.join("fake.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let (mut stream, _) = listener.accept().unwrap();
            read_frame(&mut stream, MAX_REQUEST).unwrap();
            write_frame(&mut stream, &reply.encode()).unwrap();
        });
        let out = Command::new(env!("CARGO_BIN_EXE_hvcall"))
            .arg("regs")
            .arg("--api-socket")
            .arg(&socket)
            .args(args)
            .output()
            .expect("run hvcall regs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
}

/// Issue 16 item 10: a server's text reaches the terminal with its
/// control characters (escape sequences) escaped.
#[test]
fn regs_escapes_a_servers_refusal_text() {
    let reply = Reply::Refused("no\x1b]0;owned\x07\x1b[2J\r".into());
    let (status, _, err) = regs_against("regs_escapes_a_servers_refusal_text", &reply, &["rip"]);
    assert_eq!(status, Some(1));
    assert!(
        err.contains(r"refused: no\u{1b}]0;owned\u{7}\u{1b}[2J\r"),
        "{err:?}"
    );
    assert!(!err.trim_end().chars().any(|c| c.is_control()), "{err:?}");
}

/// Issue 16 item 10: a SUCCESS reply to a read without a value per name
/// is refused as malformed, not printed as an empty table.
#[test]
fn regs_refuses_a_success_reply_without_a_value_per_name() {
    let reply = Reply::Result {
        status: HvStatus::SUCCESS,
        reps: 2,
        values: Vec::new(),
    };
    let (status, out, err) = regs_against(
        "regs_refuses_a_success_reply_without_a_value_per_name",
        &reply,
        &["rip", "rsp"],
    );
    assert_eq!(status, Some(1), "{out}");
    assert!(err.contains("malformed reply"), "{err}");
    assert!(out.is_empty(), "{out}");
}

/// Issue 16 item 10: a failure at a rep count past the names asked for is
/// the server's inconsistency, not some register's failure.
#[test]
fn regs_reports_a_failure_at_an_element_not_asked_for_as_inconsistent() {
    let reply = Reply::Result {
        status: HvStatus::INVALID_PARAMETER,
        reps: 7,
        values: Vec::new(),
    };
    let (status, _, err) = regs_against(
        "regs_reports_a_failure_at_an_element_not_asked_for_as_inconsistent",
        &reply,
        &["rip", "rsp"],
    );
    assert_eq!(status, Some(1));
    assert!(err.contains("inconsistent"), "{err}");
    assert!(!err.contains("reading"), "no register is blamed: {err}");
}
