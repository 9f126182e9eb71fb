//! The boot protocol and the basic exits (README, "Boot protocol").

mod common;

use std::time::Duration;

use common::{config, guests, kvm_available, read_u64, run};
use hvcall_abi::name::x64;
use hvcall_vmm::{Console, VmConfig, VmExit};

#[test]
fn port_f4_ends_the_vm_with_its_value() {
    if !kvm_available("port_f4_ends_the_vm_with_its_value") {
        return;
    }
    let (_, exit) = run(&config(1), guests::EXIT42);
    assert_eq!(exit, VmExit::Exited(42));
    assert_eq!(exit.status(), 42);
}

#[test]
fn com1_bytes_reach_the_console_and_lsr_reports_empty() {
    if !kvm_available("com1_bytes_reach_the_console_and_lsr_reports_empty") {
        return;
    }
    let (console, buffer) = Console::buffer();
    let cfg = VmConfig {
        console,
        ..config(1)
    };
    let (_, exit) = run(&cfg, guests::COM1);
    assert_eq!(exit, VmExit::Exited(0));
    assert_eq!(buffer.lock().unwrap().as_slice(), b"hi\n");
}

#[test]
fn all_vps_halted_with_interrupts_off_is_status_0() {
    if !kvm_available("all_vps_halted_with_interrupts_off_is_status_0") {
        return;
    }
    let (mut vm, exit) = run(&config(3), guests::HALT);
    assert_eq!(exit, VmExit::AllHalted);
    assert_eq!(exit.status(), 0);
    for vp in 0..3 {
        let rip = vm.get_vp_registers(vp, &[x64::RIP]).unwrap()[0].as_u64();
        assert_eq!(rip, 0x10_0002, "VP {vp} stopped just past its HLT");
    }
}

#[test]
fn stray_vmcall_is_stopped_by_the_watchdog() {
    if !kvm_available("stray_vmcall_is_stopped_by_the_watchdog") {
        return;
    }
    let cfg = VmConfig {
        watchdog: Duration::from_millis(300),
        ..config(2)
    };
    let (_, exit) = run(&cfg, guests::VMCALL);
    assert_eq!(exit, VmExit::Watchdog);
    assert_ne!(exit.status(), 0);
}

#[test]
fn triple_fault_is_a_fault_with_status_125() {
    if !kvm_available("triple_fault_is_a_fault_with_status_125") {
        return;
    }
    let (_, exit) = run(&config(1), guests::UD2);
    assert!(matches!(exit, VmExit::Fault { vp: 0, .. }), "{exit:?}");
    assert_eq!(exit.status(), 125);
}

#[test]
fn every_vp_starts_per_the_boot_protocol() {
    if !kvm_available("every_vp_starts_per_the_boot_protocol") {
        return;
    }
    let cfg = config(2);
    let (vm, exit) = run(&cfg, guests::BOOT);
    assert_eq!(exit, VmExit::AllHalted);
    let ram_end = cfg.memory_mib << 20;
    for vp in 0..2u64 {
        let at = |i: u64| read_u64(&vm, 0x20_0000 + 64 * vp + 8 * i);
        assert_eq!(at(0), vp, "RDI = VP index");
        assert_eq!(at(1), 2, "RSI = VP count");
        assert_eq!(
            at(2),
            ram_end - vp * 64 * 1024,
            "RSP = RAM end - i * 64 KiB"
        );
        let cr0 = at(3);
        assert_eq!(cr0 & 0x8000_0031, 0x8000_0031, "CR0 PE|ET|NE|PG: {cr0:#x}");
        assert_eq!(at(4) & 0x620, 0x620, "CR4 PAE|OSFXSR|OSXMMEXCPT");
        assert_eq!(at(5) & 0xD00, 0xD00, "EFER LME|LMA|NXE");
        assert_eq!(at(6) & 0x200, 0, "interrupts disabled");
        assert_eq!(at(7) & 3, 0, "CPL 0");
    }
}

#[test]
fn images_below_1mib_are_rejected() {
    if !kvm_available("images_below_1mib_are_rejected") {
        return;
    }
    let elf = hvcall_vmm::loader::flat_elf(0x8000, guests::EXIT42, 0);
    let err = hvcall_vmm::run_elf(&config(1), &elf).unwrap_err();
    assert!(err.to_string().contains("1 MiB"), "{err}");
}

/// The loader relies on fresh RAM (a `.bss` is not written), so a VM
/// takes one image.
#[test]
fn a_second_image_is_refused() {
    if !kvm_available("a_second_image_is_refused") {
        return;
    }
    let mut vm = hvcall_vmm::Vm::new(&config(1)).unwrap();
    let elf = hvcall_vmm::loader::flat_elf(0x10_0000, guests::EXIT42, 0);
    vm.load_elf(&elf).unwrap();
    let err = vm.load_elf(&elf).unwrap_err();
    assert!(err.to_string().contains("already loaded"), "{err}");
}

/// An instruction this host's emulator cannot run ends the VM with a
/// fault that names the instruction's bytes (on a hardware KVM `xorps`
/// just runs, and the guest exits 42).
#[test]
fn an_emulation_failure_names_the_instruction_bytes() {
    if !kvm_available("an_emulation_failure_names_the_instruction_bytes") {
        return;
    }
    // xorps xmm0, xmm0; mov al, 42; out 0xF4, al
    let code = [0x0F, 0x57, 0xC0, 0xB0, 0x2A, 0xE6, 0xF4];
    let (_, exit) = run(&config(1), &code);
    match exit {
        VmExit::Exited(42) => {}
        VmExit::Fault { reason, .. } => {
            assert!(
                reason.contains("code at RIP: 0f 57 c0 b0 2a e6 f4"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// A load that failed may have written part of its image: the VM takes no
/// second try.
#[test]
fn a_failed_load_leaves_the_vm_unusable_for_another_image() {
    if !kvm_available("a_failed_load_leaves_the_vm_unusable_for_another_image") {
        return;
    }
    let mut vm = hvcall_vmm::Vm::new(&config(1)).unwrap();
    assert!(vm.load_elf(b"not an ELF").is_err());
    let elf = hvcall_vmm::loader::flat_elf(0x10_0000, guests::EXIT42, 0);
    let err = vm.load_elf(&elf).unwrap_err();
    assert!(err.to_string().contains("build a new VM"), "{err}");
}
