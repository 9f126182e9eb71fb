//! HvCallGetVpRegisters through the hypercall page, answered from real
//! vCPU state: self reads, continuation, the XMM fast form, reads of a
//! running VP (with only the register groups the call names) and mutual
//! reads.

mod common;

use common::{config, guests, kvm_available, read_u128, read_u64, run};
use hvcall_vmm::{GroupFetches, RunStats, VmConfig, VmExit};

/// Checks the results of guests/self_read.S; returns the VM's counters.
fn check_self_read(cfg: &VmConfig) -> RunStats {
    let (vm, exit) = run(cfg, guests::SELF_READ);
    assert_eq!(exit, VmExit::Exited(0));
    let control = 0x50 | (8u64 << 32);
    assert_eq!(
        read_u64(&vm, 0x20_0000),
        8 << 32,
        "SUCCESS, 8 reps completed"
    );
    assert_eq!(
        read_u64(&vm, 0x20_0008) & 0xFFFF_FFFF_FFFF,
        control,
        "RCX after the call"
    );
    let value = |i: u64| read_u128(&vm, 0x22_1000 + 16 * i);
    assert_eq!(value(0), 0, "VpIndex");
    assert_eq!(
        value(1),
        0x30_0000,
        "RIP = the hypercall instruction (page offset 0)"
    );
    assert_eq!(value(2), u128::from(control), "RCX at the call (§5)");
    assert_eq!(value(3), 0x5555, "RAX before the result is written (§5)");
    assert_eq!(value(4), 0xAB_CDEF, "R12");
    let cs = value(5);
    assert_eq!((cs >> 96) as u16, 0x08, "CS selector");
    assert_eq!(
        (cs >> 112) as u16,
        0xB | 0x10 | 0x80 | 0x2000 | 0x8000,
        "CS attributes (§5)"
    );
    assert_eq!(value(6) & 0xD00, 0xD00, "EFER");
    assert_eq!(value(7) & 0x8000_0001, 0x8000_0001, "CR0");
    vm.stats()
}

#[test]
fn self_read_through_the_page_returns_state_at_the_call() {
    if !kvm_available("self_read_through_the_page_returns_state_at_the_call") {
        return;
    }
    let stats = check_self_read(&config(1));
    assert_eq!((stats.hypercalls, stats.continuations), (1, 0));
}

#[test]
fn section_2_continuation_with_one_rep_per_entry_gives_the_same_results() {
    if !kvm_available("section_2_continuation_with_one_rep_per_entry_gives_the_same_results") {
        return;
    }
    let stats = check_self_read(&VmConfig {
        max_reps_per_entry: 1,
        ..config(1)
    });
    assert_eq!(
        (stats.hypercalls, stats.continuations),
        (8, 7),
        "one entry per element"
    );
}

#[test]
fn section_3_xmm_fast_input_and_output() {
    if !kvm_available("section_3_xmm_fast_input_and_output") {
        return;
    }
    let (vm, exit) = run(&config(1), guests::FAST_READ);
    assert_eq!(exit, VmExit::Exited(0));
    assert_eq!(read_u64(&vm, 0x20_0000), 2 << 32, "SUCCESS, 2 reps");
    assert_eq!(read_u128(&vm, 0x20_0010), 0, "XMM1 = VpIndex");
    assert_eq!(read_u128(&vm, 0x20_0020), 0x7777, "XMM2 = R12");
    assert_eq!(read_u64(&vm, 0x20_1030), 0, "no #UD");
    // Writing XMM1-2 back (KVM_SET_FPU) must not disturb the rest of the
    // SSE state: MXCSR keeps its reset value.
    let mut vm = vm;
    let csr = vm
        .get_vp_registers(0, &[hvcall_abi::name::x64::XMM_CONTROL_STATUS])
        .unwrap();
    assert_eq!((csr[0].as_u128() >> 64) as u32 & 0xFFFF, 0x1F80, "MXCSR");
}

#[test]
fn step_5b_xmm_fast_without_the_cpuid_bits_injects_ud() {
    if !kvm_available("step_5b_xmm_fast_without_the_cpuid_bits_injects_ud") {
        return;
    }
    let cfg = VmConfig {
        xmm_fast: false,
        ..config(1)
    };
    let (vm, exit) = run(&cfg, guests::FAST_READ);
    assert_eq!(exit, VmExit::Exited(0));
    assert_eq!(
        read_u64(&vm, 0x20_1030),
        1,
        "one #UD reached the guest's IDT"
    );
    assert_eq!(
        read_u64(&vm, 0x20_0000),
        0x5555,
        "RAX unchanged: no result written"
    );
}

/// The guest-physical addresses of "inc r12" and "inc r13" in VP 1's loop.
fn cross_read_loop() -> (u64, u64) {
    let pattern = [0x49, 0xFF, 0xC4, 0x49, 0xFF, 0xC5];
    let at = guests::CROSS_READ
        .windows(pattern.len())
        .position(|w| w == pattern)
        .expect("VP 1 loop in cross_read.S") as u64;
    (0x10_0000 + at, 0x10_0000 + at + 3)
}

#[test]
fn section_5_reads_of_a_running_vp_are_consistent_snapshots() {
    if !kvm_available("section_5_reads_of_a_running_vp_are_consistent_snapshots") {
        return;
    }
    let (vm, exit) = run(&config(2), guests::CROSS_READ);
    assert_eq!(exit, VmExit::Exited(0));
    assert_eq!(
        read_u64(&vm, 0x20_0000),
        3 << 32,
        "every call: SUCCESS, 3 reps"
    );
    let (inc_r12, inc_r13) = cross_read_loop();
    let mut last = 0;
    for i in 0..200 {
        let base = 0x23_0000 + 64 * i;
        let rip = read_u128(&vm, base) as u64;
        let r12 = read_u128(&vm, base + 16) as u64;
        let r13 = read_u128(&vm, base + 32) as u64;
        let expected = if rip == inc_r13 { r13 + 1 } else { r13 };
        assert!(
            rip >= inc_r12 && rip <= inc_r13 + 3,
            "sample {i}: RIP {rip:#x} outside VP 1's loop"
        );
        assert_eq!(
            r12, expected,
            "sample {i}: torn snapshot RIP {rip:#x} R12 {r12} R13 {r13}"
        );
        assert!(r12 >= last, "sample {i}: time went backwards");
        last = r12;
    }
    assert!(last > 0, "VP 1 ran while it was read");
    assert!(
        vm.stats().snapshots_served >= 200,
        "every read was a snapshot taken by VP 1"
    );
    assert_eq!(
        vm.stats().served_fetches,
        GroupFetches::default(),
        "Rip, R12, R13 need no ioctl beyond the sync regs"
    );
}

#[test]
fn section_4_a_32_bit_caller_uses_the_register_pairs() {
    if !kvm_available("section_4_a_32_bit_caller_uses_the_register_pairs") {
        return;
    }
    let (vm, exit) = run(&config(1), guests::COMPAT_READ);
    assert_eq!(exit, VmExit::Exited(0));
    assert_eq!(
        read_u64(&vm, 0x20_0000),
        3 << 32,
        "EDX:EAX = SUCCESS, 3 reps"
    );
    assert_eq!(read_u128(&vm, 0x22_1000), 0, "VpIndex");
    let cs = read_u128(&vm, 0x22_1010);
    assert_eq!((cs >> 96) as u16, 0x18, "CS selector of the 32-bit code");
    assert_eq!((cs >> 112) as u16 & 0x6000, 0x4000, "CS: L = 0, D = 1");
    assert_eq!(
        read_u128(&vm, 0x22_1020),
        0x30_0000,
        "RIP = the hypercall instruction"
    );
}

#[test]
fn two_vps_reading_each_other_at_once_both_finish() {
    if !kvm_available("two_vps_reading_each_other_at_once_both_finish") {
        return;
    }
    let (vm, exit) = run(&config(2), guests::MUTUAL_READ);
    assert_eq!(exit, VmExit::AllHalted, "no deadlock, no watchdog");
    for vp in 0..2u64 {
        assert_eq!(
            read_u64(&vm, 0x20_0000 + 8 * vp),
            2 << 32,
            "VP {vp}: every call succeeded"
        );
        let other = 1 - vp;
        let out = 0x24_0000 + 0x1000 * vp;
        assert_eq!(
            read_u128(&vm, out),
            u128::from(other),
            "VP {vp} read the other's VpIndex"
        );
        assert_eq!(
            read_u128(&vm, out + 16),
            u128::from(0x1000 + other),
            "VP {vp} read the other's R12"
        );
    }
}

#[test]
fn every_register_group_from_self_and_from_a_running_vp() {
    if !kvm_available("every_register_group_from_self_and_from_a_running_vp") {
        return;
    }
    let (vm, exit) = run(&config(2), guests::GROUPS);
    assert_eq!(exit, VmExit::Exited(0));
    assert_eq!(
        read_u64(&vm, 0x20_0000),
        18 << 32,
        "both calls: SUCCESS, 18 reps"
    );
    let patterns: [u128; 2] = [
        0xFEDC_BA98_7654_3210_0123_4567_89AB_CDEF,
        0x5555_6666_7777_8888_1111_2222_3333_4444,
    ];
    for vp in 0..2u64 {
        let v = |i: u64| read_u128(&vm, 0x22_1000 + 0x1000 * vp + 16 * i);
        let who = format!("VP {vp}");
        assert_eq!(v(0), 0x3333_1111_2222 + u128::from(vp), "{who} Lstar");
        assert_eq!(
            v(1),
            0x0007_0106_0007_0406 + (u128::from(vp) << 32),
            "{who} Pat"
        );
        assert_eq!(v(2), 0x4000 + 0x1000 * u128::from(vp), "{who} Dr0");
        assert_eq!(v(3), patterns[vp as usize], "{who} Xmm3");
        assert_eq!(v(4) & 1, 1, "{who} Xfem has x87");
        assert_ne!(v(5), 0, "{who} Tsc");
        assert_eq!(v(6), 0x2000, "{who} Cr3");
        assert_eq!(v(7), (0x1000 << 64) | (0x2F << 48), "{who} Gdtr");
        assert_eq!((v(8) >> 96) as u16, 0x20, "{who} Tr selector");
        assert_eq!(v(9) & 0xFFFF, 0x37F, "{who} FCW at reset");
        assert_eq!(
            (v(10) >> 64) as u32 & 0xFFFF,
            0x1F80,
            "{who} MXCSR at reset"
        );
        assert_eq!(v(11) & 0xFFFF_0000, 0, "{who} Dr7: no breakpoints");
        assert_eq!(v(12), 0x1212 + u128::from(vp), "{who} R12");
        assert_eq!(v(13), u128::from(vp), "{who} VpIndex");
        assert_eq!(v(14), 0x8000_0000_0000_1234, "{who} GuestOsId");
        assert_ne!(
            (v(15) >> 32) as u32 & (1 << 17),
            0,
            "{who} PrivilegesAndFeaturesInfo"
        );
        assert_eq!(v(16), 0, "{who} InterruptState");
        assert_eq!(v(17), 0, "{who} SysenterCs");
    }
}

/// Runs guests/partial_read.S, checks the values VP 0 read from the
/// running VP 1 and returns the VM's counters.
fn check_partial_read(cfg: &VmConfig) -> RunStats {
    let (vm, exit) = run(cfg, guests::PARTIAL_READ);
    assert_eq!(exit, VmExit::Exited(0));
    assert_eq!(read_u64(&vm, 0x20_0000), 5 << 32, "SUCCESS, 5 | 4 reps");
    let spin = guests::PARTIAL_READ
        .windows(4)
        .rposition(|w| w == [0xF3, 0x90, 0xEB, 0xFC])
        .expect("VP 1 spin loop") as u128
        + 0x10_0000;
    let free = |i: u64| read_u128(&vm, 0x22_1000 + 16 * i);
    assert_eq!(free(0), 0xC12, "R12");
    assert!(free(1) == spin || free(1) == spin + 2, "Rip {:#x}", free(1));
    assert_eq!(free(2), 0x2000, "Cr3");
    assert_eq!((free(3) >> 96) as u16, 0x08, "Cs selector");
    assert_eq!(free(4), 1, "VpIndex");
    let groups = |i: u64| read_u128(&vm, 0x22_2000 + 16 * i);
    assert_eq!(groups(0), 0x4444_0000_1111, "Lstar");
    assert_eq!(groups(1), 0x0706_0504_0302_0100_0F0E_0D0C_0B0A_0908, "Xmm0");
    assert_eq!(groups(2), 0x7000, "Dr0");
    assert_eq!(groups(3), 0xC12, "R12");
    vm.stats()
}

/// What the two calls of guests/partial_read.S may fetch: nothing for the
/// call naming only sync and synthetic registers, one ioctl each for Msrs,
/// Fpu and Debug for the other, never Xcrs or Activity.
const PARTIAL_READ_FETCHES: GroupFetches = GroupFetches {
    msrs: 1,
    fpu: 1,
    debug: 1,
    xcrs: 0,
    activity: 0,
};

#[test]
fn section_5_a_snapshot_of_a_running_vp_fetches_only_the_groups_its_names_need() {
    if !kvm_available("section_5_a_snapshot_of_a_running_vp_fetches_only_the_groups_its_names_need")
    {
        return;
    }
    let stats = check_partial_read(&config(2));
    assert_eq!(stats.snapshots_served, 2, "one snapshot per call");
    assert_eq!(stats.served_fetches, PARTIAL_READ_FETCHES);
}

#[test]
fn section_2_a_continued_read_of_a_running_vp_keeps_its_one_snapshot() {
    if !kvm_available("section_2_a_continued_read_of_a_running_vp_keeps_its_one_snapshot") {
        return;
    }
    let stats = check_partial_read(&VmConfig {
        max_reps_per_entry: 1,
        ..config(2)
    });
    assert_eq!(
        (stats.hypercalls, stats.continuations),
        (9, 7),
        "one entry per element"
    );
    assert_eq!(
        stats.snapshots_served, 2,
        "one snapshot per call, not per entry"
    );
    assert_eq!(stats.served_fetches, PARTIAL_READ_FETCHES);
}

/// Regression: any write to port 0xE8 used to be taken as a
/// hypercall (its result written to RAX, RIP rewound by 2 on a
/// continuation). Only the page's own `out` is one: with the page enabled,
/// `out dx, al`, `out 0xE8, ax` and a copy of the page's `out 0xE8, al`
/// elsewhere, with a GetVpRegisters control word in RCX, change no
/// register; a call into the page still gets a result in RAX.
#[test]
fn writes_to_the_hypercall_port_outside_the_page_change_nothing() {
    if !kvm_available("writes_to_the_hypercall_port_outside_the_page_change_nothing") {
        return;
    }
    let mut code = vec![
        0xB9, 0x00, 0x00, 0x00, 0x40, // mov ecx, 0x40000000 (guest OS ID)
        0xB8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
        0x31, 0xD2, // xor edx, edx
        0x0F, 0x30, // wrmsr
        0xB9, 0x01, 0x00, 0x00, 0x40, // mov ecx, 0x40000001 (hypercall)
        0xB8, 0x01, 0x00, 0x20, 0x00, // mov eax, 0x200001: the page at 2 MiB
        0x0F, 0x30, // wrmsr
        0x48, 0xB9, // mov rcx, 0x0000_0001_0000_0050
    ];
    code.extend_from_slice(&0x0000_0001_0000_0050u64.to_le_bytes());
    code.extend_from_slice(&[0x48, 0xB8]); // mov rax, 0x1234
    code.extend_from_slice(&0x1234u64.to_le_bytes());
    code.extend_from_slice(&[
        0xBA, 0xE8, 0x00, 0x00, 0x00, // mov edx, 0xE8
        0xEE, // out dx, al
        0x66, 0xE7, 0xE8, // out 0xE8, ax
        0xE6, 0xE8, // out 0xE8, al: the page's bytes, not in the page
        0x48, 0x3D, 0x34, 0x12, 0x00, 0x00, // cmp rax, 0x1234
        0x75, 0x1C, // jne fail
        0xBA, 0x01, 0x10, 0x00, 0x00, // mov edx, 0x1001 (a misaligned input)
        0x45, 0x31, 0xC0, // xor r8d, r8d
        0xBB, 0x00, 0x00, 0x20, 0x00, // mov ebx, 0x200000
        0xFF, 0xD3, // call rbx: the page
        0x48, 0x3D, 0x34, 0x12, 0x00, 0x00, // cmp rax, 0x1234
        0x74, 0x05, // je fail
        0xB0, 0x2A, 0xE6, 0xF4, 0xF4, // mov al, 42; out 0xF4, al; hlt
        0xB0, 0x01, 0xE6, 0xF4, 0xF4, // fail: mov al, 1; out 0xF4, al; hlt
    ]);
    let (vm, exit) = run(&config(1), &code);
    assert_eq!(exit, VmExit::Exited(42));
    assert_eq!(vm.stats().hypercalls, 1, "only the call into the page");
}
