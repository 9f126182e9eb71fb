//! Contract §8 step 8c through the API socket (`hvcall run --guest spin
//! --api-socket`): writes to running VP 1 of values the architecture
//! refuses answer HV_STATUS_INVALID_REGISTER_VALUE at that element and
//! change nothing; edge values it takes read back as written; and the
//! spin guest, whose registers these are not, holds its pattern to the
//! end.

mod support;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hvcall::api::{Client, Reply, Request};
use hvcall_abi::name::x64;
use hvcall_abi::{HvRegisterName, HvRegisterValue, HvStatus, SetVpRegistersElement};

use support::kvm_available;

/// The VP written: running its spin loop.
const VP: u32 = 1;

/// A running `hvcall run --guest spin --cpus 2 --api-socket PATH`, killed
/// if still running when dropped.
struct Spin {
    child: Child,
    dir: PathBuf,
}

impl Spin {
    fn start(test: &str) -> Option<(Self, Client)> {
        if !kvm_available(test) {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("hvcall-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("api.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_hvcall"))
            .args(["run", "--guest", "spin", "--cpus", "2", "--api-socket"])
            .arg(&socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run hvcall");
        let spin = Self { child, dir };
        let start = Instant::now();
        while !socket.exists() {
            assert!(start.elapsed() < Duration::from_secs(30), "no socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut client = Client::connect(&socket).expect("connect");
        // VP 1 is in its loop once its R12 holds the first value.
        loop {
            assert!(start.elapsed() < Duration::from_secs(30), "VP 1 never spun");
            if let Ok(Reply::Result { values, .. }) = client.call(&Request::get(VP, &[x64::R12])) {
                if values.first().map(|v| v.as_u64()) == Some(0x1212_0000_0000_0001) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some((spin, client))
    }

    /// Stops the VM (SIGTERM): its exit status and stdout.
    fn stop(mut self) -> (Option<i32>, String) {
        // SAFETY: kill() with a child's pid has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        (self.child.wait().expect("wait").code(), stdout)
    }
}

impl Drop for Spin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read(client: &mut Client, name: HvRegisterName) -> u128 {
    match client.call(&Request::get(VP, &[name])).expect("get") {
        Reply::Result {
            status: HvStatus::SUCCESS,
            values,
            ..
        } if values.len() == 1 => values[0].as_u128(),
        other => panic!("reading {name:?}: {other:?}"),
    }
}

fn set(name: HvRegisterName, v: u128) -> SetVpRegistersElement {
    SetVpRegistersElement::new(name, HvRegisterValue::from(v))
}

fn write_all(client: &mut Client, elements: &[SetVpRegistersElement]) -> Reply {
    client.call(&Request::set(VP, elements)).expect("set")
}

/// What one write did.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Taken,
    Refused,
}

/// Writes `name = v` as element 1 of [DR2, it, DR3] to running VP 1 (the
/// spin loop never touches the debug registers): refused means
/// INVALID_REGISTER_VALUE with 1 rep completed, DR2 written, DR3 and the
/// register unchanged; taken means it reads back as `v` (and it is put
/// back).
fn write(client: &mut Client, name: HvRegisterName, v: u128) -> Outcome {
    let before = read(client, name);
    let marks = [set(x64::DR2, 0), set(x64::DR3, 0)];
    assert!(matches!(
        write_all(client, &marks),
        Reply::Result {
            status: HvStatus::SUCCESS,
            ..
        }
    ));
    let reply = write_all(
        client,
        &[set(x64::DR2, 0xD2), set(name, v), set(x64::DR3, 0xD3)],
    );
    match reply {
        Reply::Result {
            status: HvStatus::SUCCESS,
            reps: 3,
            ..
        } => {
            assert_eq!(read(client, name), v, "{name:?} = {v:#x}: reads back");
            let back = write_all(client, &[set(name, before)]);
            assert!(
                matches!(
                    back,
                    Reply::Result {
                        status: HvStatus::SUCCESS,
                        ..
                    }
                ),
                "{back:?}"
            );
            Outcome::Taken
        }
        Reply::Result {
            status: HvStatus::INVALID_REGISTER_VALUE,
            reps: 1,
            ..
        } => {
            assert_eq!(read(client, name), before, "{name:?} = {v:#x} changed");
            assert_eq!(read(client, x64::DR2), 0xD2, "the element before");
            assert_eq!(read(client, x64::DR3), 0, "the element after");
            Outcome::Refused
        }
        other => panic!("{name:?} = {v:#x}: {other:?}"),
    }
}

/// `current` (a segment or table register) with base `base`.
fn with_base(name: HvRegisterName, current: u128, base: u64) -> u128 {
    let low = u128::from(u64::MAX);
    if matches!(name, x64::GDTR | x64::IDTR) {
        (current & low) | u128::from(base) << 64
    } else {
        (current & !low) | u128::from(base)
    }
}

/// Whether the host processor has SVM (without it the guest cannot).
fn host_has_svm() -> bool {
    let leaf = std::arch::x86_64::__cpuid(0x8000_0001);
    leaf.ecx & 1 << 2 != 0
}

#[test]
fn step_8c_api_writes_refuse_what_the_architecture_refuses_and_read_back_the_rest() {
    let test = "step_8c_api_writes_refuse_what_the_architecture_refuses_and_read_back_the_rest";
    let Some((spin, mut client)) = Spin::start(test) else {
        return;
    };
    let c = &mut client;
    const ALL: u128 = u64::MAX as u128;
    let efer = read(c, x64::EFER);
    let mut refused = vec![
        (x64::EFER, ALL),
        (x64::PAT, ALL),
        (x64::PAT, 0x0007_0406_0007_0403), // memory type 3
        (x64::TSC_AUX, ALL),
        (x64::SYSENTER_EIP, 0x0000_8000_0000_0000),
        (x64::SYSENTER_ESP, 0xFFFF_7FFF_FFFF_FFFF),
        (x64::LSTAR, 0x0000_8000_0000_0000),
        (x64::CSTAR, 0xFFFF_7FFF_FFFF_FFFF),
        (x64::KERNEL_GS_BASE, 0x0000_8000_0000_0000),
        (x64::SFMASK, 1 << 32),
        (x64::CR4, ALL),
        (x64::DR6, ALL),
        (x64::DR7, ALL),
        (x64::RFLAGS, 0),
    ];
    if !host_has_svm() {
        refused.push((x64::EFER, efer | 1 << 12));
    }
    for name in [x64::FS, x64::GS, x64::GDTR, x64::IDTR] {
        let current = read(c, name);
        for bad in [0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_FFFF] {
            refused.push((name, with_base(name, current, bad)));
        }
    }
    for (name, v) in refused {
        assert_eq!(write(c, name, v), Outcome::Refused, "{name:?} = {v:#x}");
    }

    let mut taken = vec![
        (x64::PAT, 0x0706_0504_0100_0106),
        (x64::TSC_AUX, 0xFFFF_FFFF),
        (x64::SYSENTER_CS, 0xFFFF),
        (x64::SYSENTER_EIP, 0x0000_7FFF_FFFF_FFFF),
        (x64::SYSENTER_ESP, 0xFFFF_8000_0000_0000),
        (x64::STAR, ALL),
        (x64::LSTAR, 0xFFFF_8000_0000_0000),
        (x64::CSTAR, 0x0000_7FFF_FFFF_FFFF),
        (x64::SFMASK, 0xFFFF_FFFF),
        (x64::KERNEL_GS_BASE, ALL),
        (x64::DR0, ALL),
        (x64::DR6, 0xFFFF_0FF0),
    ];
    for name in [x64::FS, x64::GS] {
        let current = read(c, name);
        for good in [0x0000_7FFF_FFFF_FFFF, 0xFFFF_8000_0000_0000] {
            taken.push((name, with_base(name, current, good)));
        }
    }
    for (name, v) in taken {
        assert_eq!(write(c, name, v), Outcome::Taken, "{name:?} = {v:#x}");
    }

    // Whatever the value, the harmless MSRs and debug registers either
    // refuse it or read it back: all ones, zero, the canonical boundary
    // and each bit alone.
    let harmless = [
        x64::PAT,
        x64::TSC_AUX,
        x64::SYSENTER_CS,
        x64::SYSENTER_EIP,
        x64::SYSENTER_ESP,
        x64::STAR,
        x64::LSTAR,
        x64::CSTAR,
        x64::SFMASK,
        x64::KERNEL_GS_BASE,
        x64::DR1,
        x64::DR6,
    ];
    let mut edges = vec![u64::MAX, 0, 0x0000_7FFF_FFFF_FFFF, 0x0000_8000_0000_0000];
    edges.extend([0xFFFF_7FFF_FFFF_FFFF, 0xFFFF_8000_0000_0000]);
    edges.extend((0..64).map(|b| 1u64 << b));
    for name in harmless {
        for &v in &edges {
            write(c, name, u128::from(v));
        }
    }

    drop(client);
    let (status, stdout) = spin.stop();
    assert_eq!(status, Some(130), "SIGTERM stops the VM");
    assert!(
        stdout.contains("spin: 2 VPs holding their pattern"),
        "{stdout}"
    );
}
