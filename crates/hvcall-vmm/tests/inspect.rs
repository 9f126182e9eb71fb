//! The host inspector: root-partition reads of a RUNNING VM through the
//! dispatcher (`Vm::run_inspected`), one consistent snapshot per call
//! (docs/contract.md §5), ended cleanly by the VM's end.

mod common;

use std::time::Duration;

use common::{config, guests, kvm_available};
use hvcall_abi::name::x64;
use hvcall_abi::{HvRegisterName, HvStatus};
use hvcall_vmm::{loader, ReadError, Vm, VmExit};

/// Reads of the running VP1.
const SAMPLES: usize = 2_000;
/// Where tests/guests/inspect.S's VP0 waits for the host's go.
const GO: u64 = 0x20_0000;

/// The guest address of `pattern` (once in `code`, linked at 0x100000).
fn address_of(code: &[u8], pattern: &[u8]) -> u64 {
    let at = code
        .windows(pattern.len())
        .position(|w| w == pattern)
        .expect("pattern in the guest");
    0x10_0000 + at as u64
}

/// VP1's loop: `inc rbx; mov dr0, rbx; mov r12, rbx; jmp` (11 bytes).
fn vp1_loop() -> std::ops::Range<u64> {
    let start = address_of(guests::INSPECT, &[0x48, 0xFF, 0xC3, 0x0F, 0x23, 0xC3]);
    start..start + 11
}

/// What the inspector saw, checked after the run.
#[derive(Default)]
struct Seen {
    samples: Vec<[u64; 4]>,
    unknown_name: Option<ReadError>,
    no_such_vp: Option<ReadError>,
    halted_rip: Option<Result<u64, ReadError>>,
    ended: bool,
    after_end: Option<ReadError>,
}

#[test]
fn inspector_reads_a_running_vp_never_torn_and_ends_cleanly() {
    if !kvm_available("inspector_reads_a_running_vp_never_torn_and_ends_cleanly") {
        return;
    }
    let mut vm = Vm::new(&config(3)).unwrap();
    vm.load_elf(&loader::flat_elf(0x10_0000, guests::INSPECT, 0))
        .unwrap();
    let halted_at = address_of(guests::INSPECT, &[0xFA, 0xF4]) + 2;
    let mut seen = Seen::default();
    let exit = vm
        .run_inspected(|insp| {
            assert!(insp.is_running());
            assert_eq!(insp.vp_count(), 3);
            let names = [x64::RBX, x64::DR0, x64::R12, x64::RIP];
            for _ in 0..SAMPLES {
                match insp.get_vp_registers(1, &names) {
                    Ok(v) => seen.samples.push([0, 1, 2, 3].map(|i| v[i].as_u64())),
                    Err(e) => panic!("read of the running VP1: {e}"),
                }
            }
            // 300 names: two calls (256 + 44); the failing one is named
            // by its index in the whole list.
            let mut many = vec![x64::RAX; 300];
            many[270] = HvRegisterName(0x0002_0012);
            seen.unknown_name = insp.get_vp_registers(1, &many).err();
            seen.no_such_vp = insp.get_vp_registers(3, &[x64::RIP]).err();
            // VP2 halts once; a halted VP still answers.
            seen.halted_rip = Some(loop {
                match insp.get_vp_registers(2, &[x64::RIP]) {
                    Ok(v) if v[0].as_u64() == halted_at => break Ok(halted_at),
                    Ok(_) => std::thread::yield_now(),
                    Err(e) => break Err(e),
                }
            });
            insp.ram().write(GO, &1u64.to_le_bytes()).unwrap();
            seen.ended = insp.wait_end(Duration::from_secs(60));
            assert!(!insp.is_running());
            seen.after_end = insp.get_vp_registers(1, &[x64::RIP]).err();
        })
        .unwrap();
    assert_eq!(exit, VmExit::Exited(7), "the guest's own exit");

    let lp = vp1_loop();
    assert_eq!(seen.samples.len(), SAMPLES);
    for (i, &[rbx, dr0, r12, rip]) in seen.samples.iter().enumerate() {
        assert!(
            r12 <= dr0 && dr0 <= rbx && rbx <= r12 + 1,
            "sample {i} torn: rbx={rbx} dr0={dr0} r12={r12} rip={rip:#x}"
        );
        // VP1 may not have reached its loop at the first samples.
        assert!(rip < lp.end, "sample {i}: rip {rip:#x} outside VP1's code");
    }
    for (i, pair) in seen.samples.windows(2).enumerate() {
        assert!(
            pair[0][0] <= pair[1][0],
            "RBX went back at sample {}",
            i + 1
        );
    }
    let (first, last) = (seen.samples[0][0], seen.samples[SAMPLES - 1][0]);
    assert!(
        last > first,
        "VP1 did not run between reads: rbx {first}..{last}"
    );
    assert!(
        seen.samples.iter().any(|s| lp.contains(&s[3])),
        "no sample inside VP1's loop"
    );

    let call_error = |e: Option<ReadError>| match e {
        Some(ReadError::Call { status, index }) => (status, index),
        other => panic!("expected a call error, got {other:?}"),
    };
    assert_eq!(
        call_error(seen.unknown_name),
        (HvStatus::INVALID_PARAMETER, 270)
    );
    assert_eq!(call_error(seen.no_such_vp).0, HvStatus::INVALID_VP_INDEX);
    assert_eq!(seen.halted_rip, Some(Ok(halted_at)), "halted VP2");
    assert!(seen.ended, "the VM did not end after the go");
    assert_eq!(seen.after_end, Some(ReadError::Ended));
}

#[test]
fn reads_racing_the_vm_end_fail_with_ended_not_a_hang() {
    if !kvm_available("reads_racing_the_vm_end_fail_with_ended_not_a_hang") {
        return;
    }
    // guests/exit42.S exits at once: reads in flight when it does are
    // woken by the end.
    let mut vm = Vm::new(&config(1)).unwrap();
    vm.load_elf(&loader::flat_elf(0x10_0000, guests::EXIT42, 0))
        .unwrap();
    let mut last = None;
    let exit = vm
        .run_inspected(|insp| {
            last = loop {
                if let Err(e) = insp.get_vp_registers(0, &[x64::RIP, x64::DR7, x64::XMM0]) {
                    break Some(e);
                }
            };
        })
        .unwrap();
    assert_eq!(exit, VmExit::Exited(42));
    assert_eq!(last, Some(ReadError::Ended));
}

#[test]
fn run_inspected_keeps_the_end_of_a_run_without_reads() {
    if !kvm_available("run_inspected_keeps_the_end_of_a_run_without_reads") {
        return;
    }
    let mut vm = Vm::new(&config(2)).unwrap();
    vm.load_elf(&loader::flat_elf(0x10_0000, guests::HALT, 0))
        .unwrap();
    let exit = vm
        .run_inspected(|insp| assert!(insp.wait_end(Duration::from_secs(60))))
        .unwrap();
    assert_eq!(exit, VmExit::AllHalted);
    // The stopped VM still answers the root's ordinary reads.
    let rip = vm.get_vp_registers(1, &[x64::RIP]).unwrap()[0].as_u64();
    assert_eq!(rip, address_of(guests::HALT, &[0xFA, 0xF4]) + 2);
}

/// One element writing `value` into `name`.
fn set(name: HvRegisterName, value: u64) -> hvcall_abi::SetVpRegistersElement {
    hvcall_abi::SetVpRegistersElement::new(name, hvcall_abi::HvRegisterValue::from(value))
}

#[test]
fn section_8_host_writes_reach_a_running_vp_and_a_halted_one() {
    if !kvm_available("section_8_host_writes_reach_a_running_vp_and_a_halted_one") {
        return;
    }
    let mut vm = Vm::new(&config(3)).unwrap();
    vm.load_elf(&loader::flat_elf(0x10_0000, guests::INSPECT, 0))
        .unwrap();
    let halted_at = address_of(guests::INSPECT, &[0xFA, 0xF4]) + 2;
    let mut seen = Vec::new();
    let exit = vm
        .run_inspected(|insp| {
            // VP1 counts RBX up in its loop: after the write it counts on
            // from the written value (its loop runs with what was written).
            const FAR: u64 = 1 << 40;
            // Once VP1 is in its loop (RBX moves); a write before would be
            // undone by the guest's own set-up.
            let rbx = || insp.get_vp_registers(1, &[x64::RBX]).unwrap()[0].as_u64();
            let first = rbx();
            while rbx() == first {
                std::thread::yield_now();
            }
            let before = rbx();
            insp.set_vp_registers(1, &[set(x64::RBX, FAR), set(x64::DR1, 0x1234)])
                .unwrap();
            let after = insp.get_vp_registers(1, &[x64::RBX, x64::DR1]);
            seen.push(("running VP1", before, after));
            // A refused element stops the batch at its index.
            let refused = insp.set_vp_registers(1, &[set(x64::DR2, 0x22), set(x64::CR8, 16)]);
            let dr2 = insp.get_vp_registers(1, &[x64::DR2]).unwrap()[0].as_u64();
            // VP2 halts for good: a write reaches its parked state too.
            while insp.get_vp_registers(2, &[x64::RIP]).unwrap()[0].as_u64() != halted_at {
                std::thread::yield_now();
            }
            insp.set_vp_registers(2, &[set(x64::DR1, 0x55), set(x64::RSI, 0x66)])
                .unwrap();
            let parked = insp.get_vp_registers(2, &[x64::DR1, x64::RSI]);
            seen.push(("halted VP2", 0, parked));
            insp.ram().write(GO, &1u64.to_le_bytes()).unwrap();
            assert!(insp.wait_end(Duration::from_secs(60)));
            assert_eq!(
                refused.unwrap_err(),
                ReadError::Call {
                    status: HvStatus::INVALID_REGISTER_VALUE,
                    index: 1
                }
            );
            assert_eq!(dr2, 0x22, "the element before the refused one");
        })
        .unwrap();
    assert_eq!(exit, VmExit::Exited(7));
    let (_, before, after) = &seen[0];
    let after = after.as_ref().expect("read after the write");
    let (rbx, dr1) = (after[0].as_u64(), after[1].as_u64());
    assert!(*before < 1 << 40, "VP1 started far below the value written");
    assert!(rbx >= 1 << 40, "RBX {rbx:#x}: the write did not reach VP1");
    assert_eq!(dr1, 0x1234);
    let parked = seen[1].2.as_ref().expect("read of halted VP2");
    assert_eq!((parked[0].as_u64(), parked[1].as_u64()), (0x55, 0x66));
}
