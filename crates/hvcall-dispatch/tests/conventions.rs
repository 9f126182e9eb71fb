//! docs/contract.md §3 (fast forms) and §4 (calling conventions): each ABI's
//! registers written out by hand, and "every other register keeps its
//! value".
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use hvcall_dispatch::registers::RegisterFile;
use hvcall_dispatch::{dispatch, CallContext, Convention, DispatchConfig, Outcome, VpState};
use hvcall_model::{GuestRam, Model, ModelSnapshot, VM_PARTITION};

const RIP_NAME: u32 = 0x0002_0010;
const RFLAGS_NAME: u32 = 0x0002_0011;
const PC_NAME: u32 = 0x0002_0022;
const X5_NAME: u32 = 0x0002_0005;

struct Run {
    regs: RegisterFile,
    outcome: Outcome,
    ram: GuestRam,
    model: Model,
}

/// One dispatch with hand-made registers (everything else junk).
fn run(conv: Convention, regs: RegisterFile, budget: u16) -> (Run, VpState<ModelSnapshot>) {
    let mut model = Model::standard(arch(conv));
    let mut ram = standard_ram();
    let input = input_bytes(&header(SELF_PARTITION, SELF_VP, 0), &names(conv, 3));
    ram.poke(IN_GPA, &input).unwrap();
    let mut state = VpState::new();
    let mut r = regs;
    let ctx = CallContext::new(conv, true, IP);
    let config = DispatchConfig::default().with_max_reps_per_entry(budget);
    let outcome = dispatch(&ctx, &mut r, &mut ram, &mut model, &mut state, &config)
        .unwrap_or_else(|never| match never {});
    (
        Run {
            regs: r,
            outcome,
            ram,
            model,
        },
        state,
    )
}

fn value(model: &Model, conv: Convention, name: u32) -> u128 {
    model
        .vp(VM_PARTITION, 0)
        .unwrap()
        .register(arch(conv), 0, hvcall_abi::HvRegisterName(name))
        .unwrap()
        .as_u128()
}

fn out_slot(ram: &GuestRam, i: u64) -> u128 {
    u128::from_le_bytes(ram.peek(OUT_GPA + 16 * i, 16).unwrap().try_into().unwrap())
}

#[test]
fn section_4_x64_control_rcx_input_rdx_output_r8_result_rax() {
    let conv = Convention::X64;
    let mut regs = junk_regs();
    regs.gprs[RCX] = 0x50 | (3 << 32);
    regs.gprs[RDX] = IN_GPA;
    regs.gprs[R8] = OUT_GPA;
    let before = regs.clone();
    let (r, _) = run(conv, regs.clone(), 256);
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(r.regs.gprs[RAX], 3 << 32);
    assert_regs_only(&before, &r.regs, &[Reg::Gpr(RAX)], "x64");
    assert_eq!(
        out_slot(&r.ram, 2),
        value(&r.model, conv, names(conv, 3)[2])
    );
    // Continuation writes RCX only.
    let (r, _) = run(conv, regs, 1);
    assert_eq!(r.outcome, Outcome::Continue);
    assert_eq!(r.regs.gprs[RCX], 0x50 | (3 << 32) | (1 << 48));
    assert_regs_only(&before, &r.regs, &[Reg::Gpr(RCX)], "x64 continuation");
}

#[test]
fn section_4_x86_control_edx_eax_input_ebx_ecx_output_edi_esi_result_edx_eax() {
    let conv = Convention::X86;
    let mut regs = junk_regs();
    // Upper halves of the 64-bit registers hold junk: a 32-bit caller's
    // values are the low halves only.
    regs.gprs[RDX] = 0xAAAA_AAAA_0000_0003; // control high: rep count 3
    regs.gprs[RAX] = 0xBBBB_BBBB_0000_0050; // control low: code 0x50
    regs.gprs[RBX] = 0xCCCC_CCCC_0000_0000;
    regs.gprs[RCX] = 0xDDDD_DDDD_0000_0000 | IN_GPA;
    regs.gprs[RDI] = 0xEEEE_EEEE_0000_0000;
    regs.gprs[RSI] = 0xFFFF_FFFF_0000_0000 | OUT_GPA;
    let before = regs.clone();
    let (r, _) = run(conv, regs.clone(), 256);
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!((r.regs.gprs[RDX], r.regs.gprs[RAX]), (3, 0));
    assert_regs_only(&before, &r.regs, &[Reg::Gpr(RDX), Reg::Gpr(RAX)], "x86");
    assert_eq!(
        out_slot(&r.ram, 0),
        value(&r.model, conv, names(conv, 3)[0])
    );
    // Continuation writes EDX:EAX with rep start 1.
    let (r, _) = run(conv, regs, 1);
    assert_eq!(r.outcome, Outcome::Continue);
    assert_eq!((r.regs.gprs[RDX], r.regs.gprs[RAX]), (0x0001_0003, 0x50));
    assert_regs_only(
        &before,
        &r.regs,
        &[Reg::Gpr(RDX), Reg::Gpr(RAX)],
        "x86 continuation",
    );
}

#[test]
fn section_4_compat_mode_uses_the_x86_row() {
    assert_eq!(Convention::for_x86_mode(true, true), Convention::X64);
    assert_eq!(Convention::for_x86_mode(true, false), Convention::X86);
    assert_eq!(Convention::for_x86_mode(false, false), Convention::X86);
    assert_eq!(Convention::for_x86_mode(false, true), Convention::X86);
}

#[test]
fn section_4_arm64_hvc1_control_x0_input_x1_output_x2_result_x0() {
    let conv = Convention::Arm64Hvc1;
    let mut regs = junk_regs();
    regs.gprs[0] = 0x50 | (3 << 32);
    regs.gprs[1] = IN_GPA;
    regs.gprs[2] = OUT_GPA;
    let before = regs.clone();
    let (r, _) = run(conv, regs.clone(), 256);
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(r.regs.gprs[0], 3 << 32);
    assert_regs_only(&before, &r.regs, &[Reg::Gpr(0)], "hvc1");
    assert_eq!(
        out_slot(&r.ram, 1),
        value(&r.model, conv, names(conv, 3)[1])
    );
    let (r, _) = run(conv, regs, 2);
    assert_eq!(r.outcome, Outcome::Continue);
    assert_eq!(r.regs.gprs[0], 0x50 | (3 << 32) | (2 << 48));
    assert_regs_only(&before, &r.regs, &[Reg::Gpr(0)], "hvc1 continuation");
}

#[test]
fn section_4_arm64_smccc_control_x1_input_x2_output_x3_result_x0() {
    let conv = Convention::Arm64Smccc;
    let mut regs = junk_regs();
    regs.gprs[0] = 0x4600_0001;
    regs.gprs[1] = 0x50 | (3 << 32);
    regs.gprs[2] = IN_GPA;
    regs.gprs[3] = OUT_GPA;
    let before = regs.clone();
    let (r, _) = run(conv, regs.clone(), 256);
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(r.regs.gprs[0], 3 << 32);
    assert_regs_only(&before, &r.regs, &[Reg::Gpr(0)], "smccc");
    let (r, _) = run(conv, regs, 1);
    assert_eq!(r.outcome, Outcome::Continue);
    assert_eq!(r.regs.gprs[1], 0x50 | (3 << 32) | (1 << 48));
    assert_regs_only(&before, &r.regs, &[Reg::Gpr(1)], "smccc continuation");
}

#[test]
fn section_4_smccc_other_function_id_is_not_supported() {
    // Decision (documented on `dispatch`): X0 = -1 (SMCCC NOT_SUPPORTED),
    // nothing else changes, the call is complete.
    for x0 in [
        0u64,
        0x4600_0000,
        0xC600_0001,
        0x8600_FF01,
        0x0000_0001_4600_0001,
    ] {
        let mut regs = junk_regs();
        regs.gprs[0] = x0;
        regs.gprs[1] = 0x50 | (3 << 32);
        regs.gprs[2] = IN_GPA;
        regs.gprs[3] = OUT_GPA;
        let before = regs.clone();
        let (r, state) = run(Convention::Arm64Smccc, regs, 256);
        assert_eq!(r.outcome, Outcome::Complete);
        assert_eq!(r.regs.gprs[0], u64::MAX);
        assert_regs_only(&before, &r.regs, &[Reg::Gpr(0)], "smccc other id");
        assert_eq!(out_slot(&r.ram, 0), u128::from_le_bytes([GUARD; 16]));
        assert!(!state.is_pending());
    }
}

#[test]
fn section_3_simple_fast_form_cannot_carry_a_get() {
    // Only XMM output advertised: the 16 + 4n bytes of input need XMM0.
    let mut case = Case::new(Convention::X64, Form::Fast);
    case.model
        .partition_mut(VM_PARTITION)
        .unwrap()
        .xmm_fast_input = false;
    case.get(0, header(SELF_PARTITION, SELF_VP, 0), &[RIP_NAME]);
    let out = case.entry();
    case.expect_undefined(out);
}

#[test]
fn section_3_x64_register_file_pairs() {
    // Input: pair 0 = RDX (partition) / R8 (VP, VTL), pair 1 = XMM0 (names);
    // output from pair 2 = XMM1, one value per pair.
    for n in 1..=4u32 {
        let list: Vec<u32> =
            [RIP_NAME, RFLAGS_NAME, 0x0002_0000, 0x0002_0003][..n as usize].to_vec();
        let mut regs = junk_regs();
        regs.gprs[RCX] = 0x50 | (1 << 16) | (u64::from(n) << 32);
        regs.gprs[RDX] = SELF_PARTITION;
        regs.gprs[R8] = u64::from(SELF_VP);
        let mut xmm0: u128 = 0xFFFF_FFFF_FFFF_FFFF_FFFF_FFFF_FFFF_FFFF; // padding is ignored
        for (i, name) in list.iter().enumerate() {
            xmm0 &= !(0xFFFF_FFFFu128 << (32 * i));
            xmm0 |= u128::from(*name) << (32 * i);
        }
        regs.vectors[0] = xmm0;
        let before = regs.clone();
        let (r, _) = run(Convention::X64, regs, 256);
        assert_eq!(r.outcome, Outcome::Complete);
        assert_eq!(r.regs.gprs[RAX], u64::from(n) << 32, "n = {n}");
        let mut allowed = vec![Reg::Gpr(RAX)];
        for (i, name) in list.iter().enumerate() {
            assert_eq!(
                r.regs.vectors[1 + i],
                value(&r.model, Convention::X64, *name),
                "n = {n} XMM{}",
                i + 1
            );
            allowed.push(Reg::Vector(1 + i));
        }
        assert_regs_only(&before, &r.regs, &allowed, "x64 fast");
    }
}

#[test]
fn section_3_only_pairs_of_completed_values_are_written() {
    // rep start 1, element 2 unknown: only XMM2 (value 1) is written.
    let mut regs = junk_regs();
    regs.gprs[RCX] = 0x50 | (1 << 16) | (4 << 32) | (1 << 48);
    regs.gprs[RDX] = SELF_PARTITION;
    regs.gprs[R8] = u64::from(SELF_VP);
    regs.vectors[0] = u128::from(RIP_NAME)
        | (u128::from(RFLAGS_NAME) << 32)
        | (u128::from(UNKNOWN_NAME) << 64)
        | (u128::from(RIP_NAME) << 96);
    let before = regs.clone();
    let (r, _) = run(Convention::X64, regs, 256);
    assert_eq!(r.regs.gprs[RAX], (2 << 32) | 5);
    assert_eq!(
        r.regs.vectors[2],
        value(&r.model, Convention::X64, RFLAGS_NAME)
    );
    assert_regs_only(
        &before,
        &r.regs,
        &[Reg::Gpr(RAX), Reg::Vector(2)],
        "x64 fast error",
    );
}

#[test]
fn section_4_arm64_smccc_fast_one_value_in_x6_x7() {
    // The Linux hv_get_vpreg_128() shape: X1 = code | fast | 1 rep,
    // X2 = SELF, X3 = VP SELF (VTL byte in bits 39:32 = 0), X4 = name.
    let mut regs = junk_regs();
    regs.gprs[0] = 0x4600_0001;
    regs.gprs[1] = 0x50 | (1 << 16) | (1 << 32);
    regs.gprs[2] = SELF_PARTITION;
    regs.gprs[3] = u64::from(SELF_VP);
    regs.gprs[4] = u64::from(PC_NAME) | 0xFFFF_FFFF_0000_0000; // padding ignored
    let before = regs.clone();
    let (r, _) = run(Convention::Arm64Smccc, regs, 256);
    assert_eq!(r.regs.gprs[0], 1 << 32);
    let v = value(&r.model, Convention::Arm64Smccc, PC_NAME);
    assert_eq!(r.regs.gprs[6], v as u64);
    assert_eq!(r.regs.gprs[7], (v >> 64) as u64);
    assert_regs_only(
        &before,
        &r.regs,
        &[Reg::Gpr(0), Reg::Gpr(6), Reg::Gpr(7)],
        "smccc fast",
    );
}

#[test]
fn section_4_arm64_hvc1_fast_one_value_in_x5_x6() {
    // X0 = control, input from X1; the 20 input bytes round up to 32, so
    // the value goes to X5 (low) and X6 (high).
    let mut regs = junk_regs();
    regs.gprs[0] = 0x50 | (1 << 16) | (2 << 32);
    regs.gprs[1] = SELF_PARTITION;
    regs.gprs[2] = u64::from(SELF_VP);
    regs.gprs[3] = u64::from(PC_NAME) | (u64::from(X5_NAME) << 32);
    let before = regs.clone();
    let (r, _) = run(Convention::Arm64Hvc1, regs, 256);
    assert_eq!(r.regs.gprs[0], 2 << 32);
    let pc = value(&r.model, Convention::Arm64Hvc1, PC_NAME);
    let x5 = value(&r.model, Convention::Arm64Hvc1, X5_NAME);
    assert_eq!(
        (r.regs.gprs[5], r.regs.gprs[6]),
        (pc as u64, (pc >> 64) as u64)
    );
    assert_eq!(
        (r.regs.gprs[7], r.regs.gprs[8]),
        (x5 as u64, (x5 >> 64) as u64)
    );
    let allowed = [0, 5, 6, 7, 8].map(Reg::Gpr);
    assert_regs_only(&before, &r.regs, &allowed, "hvc1 fast");
}
