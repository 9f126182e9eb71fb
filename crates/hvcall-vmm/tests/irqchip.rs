//! The PC platform a Linux guest gets (`VmConfig::irqchip`): KVM's
//! in-kernel interrupt controllers, VPs other than 0 waiting for their
//! startup IPI, and how such a VM ends; and `int3` and `fwait` in CPL-0
//! code, which this host's instruction emulator cannot run by itself.

mod common;

use std::time::Duration;

use common::{config, kvm_available, run};
use hvcall_abi::name::x64;
use hvcall_abi::value::InternalActivity;
use hvcall_vmm::VmExit;

fn irqchip_config(cpus: u32) -> hvcall_vmm::VmConfig {
    hvcall_vmm::VmConfig {
        irqchip: true,
        ..config(cpus)
    }
}

#[test]
fn irqchip_vm_ends_when_vp0_halts_with_interrupts_off_and_the_others_wait_for_sipi() {
    if !kvm_available("irqchip_vm_ends_when_vp0_halts_with_interrupts_off") {
        return;
    }
    let (mut vm, exit) = run(&irqchip_config(2), &[0xFA, 0xF4]); // cli; hlt
    assert_eq!(exit, VmExit::AllHalted);
    let activity = |vm: &mut hvcall_vmm::Vm, vp| {
        let v = vm
            .get_vp_registers(vp, &[x64::INTERNAL_ACTIVITY_STATE])
            .expect("root read");
        InternalActivity::from_bits(v[0].as_u64())
    };
    assert!(activity(&mut vm, 0).halt_suspend(), "VP0 halted");
    let vp1 = activity(&mut vm, 1);
    assert!(
        vp1.startup_suspend() && !vp1.halt_suspend(),
        "VP1 never got a SIPI"
    );
}

#[test]
fn irqchip_vm_with_a_vp_halted_with_interrupts_on_keeps_running() {
    if !kvm_available("irqchip_vm_with_a_vp_halted_with_interrupts_on_keeps_running") {
        return;
    }
    let cfg = hvcall_vmm::VmConfig {
        watchdog: Duration::from_millis(1500),
        ..irqchip_config(1)
    };
    // sti; hlt; jmp back to hlt: an idle loop an interrupt could wake.
    let (_, exit) = run(&cfg, &[0xFB, 0xF4, 0xEB, 0xFD]);
    assert_eq!(exit, VmExit::Watchdog);
}

/// A guest that installs an IDT whose #BP handler writes 0x42 to the exit
/// port, then executes `int3` at CPL 0.
#[test]
fn int3_at_cpl0_reaches_the_guests_breakpoint_handler() {
    if !kvm_available("int3_at_cpl0_reaches_the_guests_breakpoint_handler") {
        return;
    }
    const BASE: u64 = 0x10_0000;
    const HANDLER: u64 = BASE + 0x80;
    const IDT: u64 = BASE + 0x100;
    const IDTR: u64 = BASE + 0x200;
    let mut image = vec![0x90u8; 0x210];
    // lidt [IDTR]; int3; hlt
    let lidt = [0x0F, 0x01, 0x1C, 0x25];
    image[..4].copy_from_slice(&lidt);
    image[4..8].copy_from_slice(&(IDTR as u32).to_le_bytes());
    image[8] = 0xCC;
    image[9] = 0xF4;
    // Handler: mov al, 0x42; out 0xF4, al; hlt
    let h = (HANDLER - BASE) as usize;
    image[h..h + 5].copy_from_slice(&[0xB0, 0x42, 0xE6, 0xF4, 0xF4]);
    // IDT entry 3: a present 64-bit interrupt gate, code selector 0x08.
    let gate = (IDT - BASE) as usize + 3 * 16;
    image[gate..gate + 2].copy_from_slice(&((HANDLER & 0xFFFF) as u16).to_le_bytes());
    image[gate + 2..gate + 4].copy_from_slice(&0x08u16.to_le_bytes());
    image[gate + 4] = 0;
    image[gate + 5] = 0x8E;
    image[gate + 6..gate + 8].copy_from_slice(&(((HANDLER >> 16) & 0xFFFF) as u16).to_le_bytes());
    image[gate + 8..gate + 16].fill(0);
    let d = (IDTR - BASE) as usize;
    image[d..d + 2].copy_from_slice(&(4u16 * 16 - 1).to_le_bytes());
    image[d + 2..d + 10].copy_from_slice(&IDT.to_le_bytes());
    let (_, exit) = run(&config(1), &image);
    assert_eq!(exit, VmExit::Exited(0x42));
}

/// `fwait` at CPL 0 with no x87 exception pending runs on (this host's
/// emulator fails on it; Debian's distribution kernel executes one).
#[test]
fn fwait_at_cpl0_runs_on() {
    if !kvm_available("fwait_at_cpl0_runs_on") {
        return;
    }
    // fwait; mov al, 42; out 0xF4, al; hlt
    let (_, exit) = run(&config(1), &[0x9B, 0xB0, 0x2A, 0xE6, 0xF4, 0xF4]);
    assert_eq!(exit, VmExit::Exited(42));
}
