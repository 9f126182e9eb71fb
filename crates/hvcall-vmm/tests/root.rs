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

/// Contract §8 for the host's writes to a stopped VM: each group's
/// registers land in KVM (read back through the same path), refused names
/// and values stop the batch at their index and leave the register as it
/// was.
#[test]
fn section_8_root_writes_reach_kvm_and_refusals_stop_at_their_element() {
    use hvcall_abi::{HvRegisterValue, SetVpRegistersElement};
    let test = "section_8_root_writes_reach_kvm_and_refusals_stop_at_their_element";
    if !kvm_available(test) {
        return;
    }
    let mut vm = Vm::new(&config(2)).unwrap();
    vm.load_elf(&loader::flat_elf(0x10_0000, guests::EXIT42, 0))
        .unwrap();
    let value = |v: u128| HvRegisterValue::from(v);
    let set = |n, v: u128| SetVpRegistersElement::new(n, value(v));
    let writes = [
        set(x64::RBX, 0x1234_5678_9ABC_DEF0),
        set(x64::RIP, 0x10_0010),
        set(x64::CR2, 0xDEAD_B000),
        set(x64::LSTAR, 0xFFFF_8000_0000_1000),
        set(x64::XMM3, 0x0102_0304_0506_0708_090A_0B0C_0D0E_0F10),
        set(x64::DR0, 0x40_1000),
        set(x64::GDTR, (0x2000u128 << 64) | (0x3F << 48)),
    ];
    vm.set_vp_registers(1, &writes).unwrap();
    let names: Vec<HvRegisterName> = writes.iter().map(|w| w.name).collect();
    let back = vm.get_vp_registers(1, &names).unwrap();
    for (w, got) in writes.iter().zip(&back) {
        assert_eq!(*got, w.value, "{:?}", w.name);
    }
    // VP 0 is untouched.
    assert_ne!(
        vm.get_vp_registers(0, &[x64::RBX]).unwrap()[0],
        writes[0].value
    );

    // 8b: a read-only register; 8c: reserved segment attribute bits, a CR0
    // KVM refuses (paging without protection), a value wider than the
    // register.
    let mut bad_cs = vm.get_vp_registers(1, &[x64::CS]).unwrap()[0];
    bad_cs.0[15] |= 0x0F; // attribute bits 11:8
    let cases = [
        (set(x64::VP_INDEX, 5), HvStatus::INVALID_PARAMETER),
        (
            SetVpRegistersElement::new(x64::CS, bad_cs),
            HvStatus::INVALID_REGISTER_VALUE,
        ),
        (set(x64::CR0, 0x8000_0000), HvStatus::INVALID_REGISTER_VALUE),
        (set(x64::RCX, 1u128 << 64), HvStatus::INVALID_REGISTER_VALUE),
    ];
    for (refused, status) in cases {
        let before = vm.get_vp_registers(1, &[refused.name]).unwrap()[0];
        let batch = [set(x64::R9, 0x99), refused, set(x64::R10, 0x10)];
        let err = vm.set_vp_registers(1, &batch).unwrap_err();
        assert_eq!(
            err,
            ReadError::Call { status, index: 1 },
            "{:?}",
            refused.name
        );
        let after = vm
            .get_vp_registers(1, &[refused.name, x64::R9, x64::R10])
            .unwrap();
        assert_eq!(after[0], before, "{:?} changed", refused.name);
        assert_eq!(after[1], value(0x99), "the element before stays written");
        assert_ne!(after[2], value(0x10), "the element after is not written");
    }
    // A batch goes to KVM one ioctl per group (control registers, MSRs,
    // FPU, then debug registers); when KVM refuses one (DR6 with bits
    // 63:32 set), the groups already set are put back and the batch is
    // applied element by element: the elements before the refused one stay
    // written, in its group (DR1) and others (CR2, LSTAR), the ones after
    // it (XMM4, whose group was set and put back) are not.
    let before = vm.get_vp_registers(1, &[x64::DR6, x64::XMM4]).unwrap();
    let batch = [
        set(x64::CR2, 0xAB_C000),
        set(x64::LSTAR, 0xFFFF_8000_0000_2000),
        set(x64::DR1, 0x77),
        set(x64::DR6, 1 << 40),
        set(x64::XMM4, 0x44),
    ];
    let err = vm.set_vp_registers(1, &batch).unwrap_err();
    assert_eq!(
        err,
        ReadError::Call {
            status: HvStatus::INVALID_REGISTER_VALUE,
            index: 3
        }
    );
    let after = vm
        .get_vp_registers(1, &[x64::CR2, x64::LSTAR, x64::DR1, x64::DR6, x64::XMM4])
        .unwrap();
    assert_eq!(after[0], value(0xAB_C000), "CR2, before the refused DR6");
    assert_eq!(after[1], value(0xFFFF_8000_0000_2000), "LSTAR");
    assert_eq!(after[2], value(0x77), "DR1");
    assert_eq!(&after[3..], &before[..], "DR6 and XMM4 unchanged");

    // The target checks of a guest's call apply.
    let err = vm.set_vp_registers(2, &writes[..1]).unwrap_err();
    assert_eq!(
        err,
        ReadError::Call {
            status: HvStatus::INVALID_VP_INDEX,
            index: 0
        }
    );
}

/// A register the host wrote before the first run is what the VP runs
/// with: R12, which the guest never touches, still holds the write after
/// a run.
#[test]
fn section_8_root_writes_before_the_run_are_what_the_vp_runs_with() {
    use hvcall_abi::{HvRegisterValue, SetVpRegistersElement};
    let test = "section_8_root_writes_before_the_run_are_what_the_vp_runs_with";
    if !kvm_available(test) {
        return;
    }
    let mut vm = Vm::new(&config(2)).unwrap();
    vm.load_elf(&loader::flat_elf(0x10_0000, guests::EXIT42, 0))
        .unwrap();
    let r12 = SetVpRegistersElement::new(x64::R12, HvRegisterValue::from(0xC0FFEEu64));
    vm.set_vp_registers(0, &[r12]).unwrap();
    assert_eq!(vm.run().unwrap(), VmExit::Exited(42));
    // The guest does not touch R12: after the run it still holds the write.
    let v = vm.get_vp_registers(0, &[x64::R12]).unwrap();
    assert_eq!(v[0].as_u64(), 0xC0FFEE);
}
