//! Host-side reads as the root partition (the VM's parent) through the
//! dispatcher: they see what the guest sees.

mod common;

use common::{config, guests, kvm_available, read_u128, run};
use hvcall_abi::name::x64;
use hvcall_abi::{HvRegisterName, HvStatus};
use hvcall_vmm::{loader, ReadError, Vm, VmConfig, VmExit};

#[test]
fn root_reads_the_boot_state_before_the_first_run() {
    if !kvm_available("root_reads_the_boot_state_before_the_first_run") {
        return;
    }
    let cfg = config(2);
    let mut vm = Vm::new(&cfg).unwrap();
    vm.load_elf(&loader::flat_elf(0x10_0000, guests::EXIT42, 0))
        .unwrap();
    let names = [
        x64::RIP,
        x64::RDI,
        x64::RSI,
        x64::RSP,
        x64::RFLAGS,
        x64::CR3,
        x64::VP_INDEX,
    ];
    let v = vm.get_vp_registers(1, &names).unwrap();
    let v: Vec<u128> = v.iter().map(|x| x.as_u128()).collect();
    let ram_end = u128::from(cfg.memory_mib) << 20;
    assert_eq!(v, [0x10_0000, 1, 2, ram_end - 0x1_0000, 2, 0x2000, 1]);
}

#[test]
fn root_read_errors_name_the_failing_element() {
    if !kvm_available("root_read_errors_name_the_failing_element") {
        return;
    }
    let mut vm = Vm::new(&config(1)).unwrap();
    let mut names = vec![x64::RAX; 300];
    names[270] = HvRegisterName(0x0002_0012);
    let err = vm.get_vp_registers(0, &names).unwrap_err();
    assert_eq!(
        err,
        ReadError::Call {
            status: HvStatus::INVALID_PARAMETER,
            index: 270
        }
    );
    let err = vm.get_vp_registers(1, &[x64::RAX]).unwrap_err();
    assert_eq!(
        err,
        ReadError::Call {
            status: HvStatus::INVALID_VP_INDEX,
            index: 0
        }
    );
}

#[test]
fn root_and_guest_reads_agree_after_a_run() {
    if !kvm_available("root_and_guest_reads_agree_after_a_run") {
        return;
    }
    // guests/groups.S: VP 0 read 18 names of itself and of VP 1; VP 1 was
    // spinning, VP 0 stopped at its exit. Registers neither VP changed
    // after its read must read the same from the host.
    let cfg = VmConfig {
        max_reps_per_entry: 5,
        ..config(2)
    };
    let (mut vm, exit) = run(&cfg, guests::GROUPS);
    assert_eq!(exit, VmExit::Exited(0));
    let stable = [
        (0, x64::LSTAR),
        (1, x64::PAT),
        (2, x64::DR0),
        (3, x64::XMM3),
        (4, x64::XFEM),
        (6, x64::CR3),
        (7, x64::GDTR),
        (8, x64::TR),
        (12, x64::R12),
        (13, x64::VP_INDEX),
        (14, x64::GUEST_OS_ID),
        (15, x64::PRIVILEGES_AND_FEATURES_INFO),
        (17, x64::SYSENTER_CS),
    ];
    let names: Vec<_> = stable.iter().map(|(_, n)| *n).collect();
    for vp in 0..2u32 {
        let host = vm.get_vp_registers(vp, &names).unwrap();
        for ((i, name), value) in stable.iter().zip(&host) {
            let guest = read_u128(&vm, 0x22_1000 + 0x1000 * u64::from(vp) + 16 * i);
            assert_eq!(value.as_u128(), guest, "VP {vp} {name:?}");
        }
    }
}
