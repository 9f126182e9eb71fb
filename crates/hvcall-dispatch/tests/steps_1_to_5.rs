//! docs/contract.md §1 steps 1–5f, each in every ABI and in memory and fast
//! form where the row applies.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use hvcall_abi::HvStatus;
use hvcall_dispatch::Convention;

/// A valid self read of `k` standard names.
fn valid(conv: Convention, form: Form, k: usize) -> Case {
    let mut case = Case::new(conv, form);
    let names = names(conv, k);
    case.get(0, header(SELF_PARTITION, SELF_VP, 0), &names);
    case
}

#[test]
fn step_1_unprivileged_caller_gets_ud_and_nothing_changes() {
    for (conv, form) in combos(2) {
        let mut case = valid(conv, form, 2);
        case.ctx.privileged = false;
        let out = case.entry();
        case.expect_undefined(out);
        assert!(!case.state.is_pending());
    }
}

#[test]
fn step_1_comes_before_every_other_check() {
    for conv in CONVENTIONS {
        let mut case = Case::new(conv, Form::Memory);
        case.raw(u64::MAX, &[]);
        case.ctx.privileged = false;
        let out = case.entry();
        case.expect_undefined(out);
    }
}

#[test]
fn step_2_reserved_control_bit_is_invalid_hypercall_input() {
    let bits = (27..=30).chain(44..=47).chain(60..=63);
    for bit in bits {
        for (conv, form) in combos(1) {
            let mut case = valid(conv, form, 1);
            // Also an unimplemented code: step 2 comes before step 4.
            let c = (control(form == Form::Fast, 1, 0) | (1 << bit)) & !0xFFFF | 0x51;
            let input = input_bytes(&header(SELF_PARTITION, SELF_VP, 0), &names(conv, 1));
            case.raw(c, &input);
            let out = case.entry();
            case.expect_error(out, HvStatus::INVALID_HYPERCALL_INPUT, 0);
        }
    }
}

#[test]
fn step_3_nested_bit_is_invalid_hypercall_input() {
    for (conv, form) in combos(1) {
        let mut case = valid(conv, form, 1);
        let c = (control(form == Form::Fast, 1, 0) | (1 << 31)) & !0xFFFF | 0x8001;
        let input = input_bytes(&header(SELF_PARTITION, SELF_VP, 0), &names(conv, 1));
        case.raw(c, &input);
        let out = case.entry();
        case.expect_error(out, HvStatus::INVALID_HYPERCALL_INPUT, 0);
    }
}

#[test]
fn step_4_unimplemented_code_is_invalid_hypercall_code() {
    for code in [0x0000u64, 0x0001, 0x0052, 0x004F, 0x0150, 0x8001, 0xFFFF] {
        for (conv, form) in combos(1) {
            let mut case = valid(conv, form, 1);
            // Everything else is a valid GetVpRegisters call, with rep
            // fields that 5a would reject: step 4 comes first.
            let c = (control(form == Form::Fast, 0, 3) & !0xFFFF) | code;
            let input = input_bytes(&header(SELF_PARTITION, SELF_VP, 0), &names(conv, 1));
            case.raw(c, &input);
            let out = case.entry();
            case.expect_error(out, HvStatus::INVALID_HYPERCALL_CODE, 0);
        }
    }
}

#[test]
fn step_5a_zero_rep_count_is_invalid_hypercall_input() {
    for (conv, form) in combos(1) {
        let mut case = Case::new(conv, form);
        case.get(0, header(SELF_PARTITION, SELF_VP, 0), &[]);
        let out = case.entry();
        case.expect_error(out, HvStatus::INVALID_HYPERCALL_INPUT, 0);
    }
}

#[test]
fn step_5a_rep_start_not_below_count_is_invalid_hypercall_input() {
    for (conv, form) in combos(2) {
        for start in [2u16, 3, 0xFFF] {
            let mut case = Case::new(conv, form);
            case.get(start, header(SELF_PARTITION, SELF_VP, 0), &names(conv, 2));
            let out = case.entry();
            case.expect_error(out, HvStatus::INVALID_HYPERCALL_INPUT, 0);
        }
    }
}

#[test]
fn step_5a_variable_header_size_is_invalid_hypercall_input() {
    for (conv, form) in combos(1) {
        for size in [1u64, 0x3FF] {
            let mut case = valid(conv, form, 1);
            let c = control(form == Form::Fast, 1, 0) | (size << 17);
            let input = input_bytes(&header(SELF_PARTITION, SELF_VP, 0), &names(conv, 1));
            // Also misalign the output GPA: 5a comes before 5d.
            case.out_gpa = OUT_GPA + 4;
            case.raw(c, &input);
            let out = case.entry();
            case.expect_error(out, HvStatus::INVALID_HYPERCALL_INPUT, 0);
        }
    }
}

#[test]
fn step_5b_xmm_fast_input_without_cpuid_bit_is_ud() {
    let mut case = Case::new(Convention::X64, Form::Fast);
    case.model.partition_mut(2).unwrap().xmm_fast_input = false;
    case.get(
        0,
        header(SELF_PARTITION, SELF_VP, 0),
        &names(Convention::X64, 1),
    );
    let out = case.entry();
    case.expect_undefined(out);
}

#[test]
fn step_5b_xmm_fast_output_without_cpuid_bit_is_ud() {
    // Even for a call too large for the register file: 5b comes before 5c.
    for n in [1usize, 4, 5] {
        let mut case = Case::new(Convention::X64, Form::Fast);
        case.model.partition_mut(2).unwrap().xmm_fast_output = false;
        case.get(
            0,
            header(SELF_PARTITION, SELF_VP, 0),
            &names(Convention::X64, n),
        );
        let out = case.entry();
        case.expect_undefined(out);
    }
}

#[test]
fn step_5b_does_not_apply_to_the_memory_form_or_arm64() {
    for (conv, form) in combos(1) {
        if conv == Convention::X64 && form == Form::Fast {
            continue;
        }
        let mut case = valid(conv, form, 1);
        let p = case.model.partition_mut(2).unwrap();
        p.xmm_fast_input = false;
        p.xmm_fast_output = false;
        let out = case.entry();
        let v = case.model_value(2, 0, 0, names(conv, 1)[0]);
        case.expect(out, HvStatus::SUCCESS, 1, &[(0, v)]);
    }
}

#[test]
fn step_5c_fast_call_too_large_is_invalid_hypercall_input() {
    // x64 holds 4 values, ARM64 5, a 32-bit caller none.
    for (conv, too_many) in [
        (Convention::X64, 5usize),
        (Convention::X86, 1),
        (Convention::Arm64Hvc1, 6),
        (Convention::Arm64Smccc, 6),
    ] {
        let mut case = Case::new(conv, Form::Fast);
        let mut list = names(conv, too_many);
        list.resize(too_many, names(conv, 1)[0]);
        case.get(0, header(SELF_PARTITION, SELF_VP, 0), &list);
        let out = case.entry();
        case.expect_error(out, HvStatus::INVALID_HYPERCALL_INPUT, 0);
    }
}

#[test]
fn step_5c_largest_fast_call_fits() {
    for (conv, most) in [
        (Convention::X64, 4usize),
        (Convention::Arm64Hvc1, 5),
        (Convention::Arm64Smccc, 5),
    ] {
        let mut case = Case::new(conv, Form::Fast);
        let list = names(conv, most);
        case.get(0, header(SELF_PARTITION, SELF_VP, 0), &list);
        let out = case.entry();
        let values: Vec<_> = list
            .iter()
            .enumerate()
            .map(|(i, &n)| (i as u16, case.model_value(2, 0, 0, n)))
            .collect();
        case.expect(out, HvStatus::SUCCESS, most as u16, &values);
    }
}

fn memory_case_at(conv: Convention, in_gpa: u64, out_gpa: u64, k: usize) -> Case {
    let mut case = Case::new(conv, Form::Memory);
    case.in_gpa = in_gpa;
    case.out_gpa = out_gpa;
    case.get(0, header(SELF_PARTITION, SELF_VP, 0), &names(conv, k));
    case
}

#[test]
fn step_5d_misaligned_gpa_is_invalid_alignment() {
    for conv in CONVENTIONS {
        for (i, o) in [
            (IN_GPA + 4, OUT_GPA),
            (IN_GPA, OUT_GPA + 4),
            (IN_GPA + 1, OUT_GPA + 7),
        ] {
            let mut case = memory_case_at(conv, i, o, 2);
            let out = case.entry();
            case.expect_error(out, HvStatus::INVALID_ALIGNMENT, 0);
        }
    }
}

#[test]
fn step_5e_list_crossing_a_page_is_invalid_alignment() {
    for conv in CONVENTIONS {
        // Input of 2 names = 24 bytes from 0x3FF0 crosses; output 32 bytes
        // from 0x5FF0 crosses.
        for (i, o) in [(0x3FF0, OUT_GPA), (IN_GPA, 0x5FF0)] {
            let mut case = memory_case_at(conv, i, o, 2);
            let out = case.entry();
            case.expect_error(out, HvStatus::INVALID_ALIGNMENT, 0);
        }
        // Exactly filling the rest of the page is fine.
        let mut case = memory_case_at(conv, 0x3FE8, 0x5FE0, 2);
        let out = case.entry();
        let list = names(conv, 2);
        let values = [
            (0, case.model_value(2, 0, 0, list[0])),
            (1, case.model_value(2, 0, 0, list[1])),
        ];
        case.expect(out, HvStatus::SUCCESS, 2, &values);
    }
}

#[test]
fn step_5e_more_than_256_values_never_fit() {
    for conv in CONVENTIONS {
        let mut case = Case::new(conv, Form::Memory);
        case.out_gpa = 0x20000;
        let list = vec![names(conv, 1)[0]; 257];
        case.get(0, header(SELF_PARTITION, SELF_VP, 0), &list);
        let out = case.entry();
        case.expect_error(out, HvStatus::INVALID_ALIGNMENT, 0);
    }
}

#[test]
fn step_5f_list_outside_ram_is_invalid_alignment() {
    for conv in CONVENTIONS {
        let cases = [
            (HOLE_GPA, OUT_GPA),             // input in a hole
            (IN_GPA, HOLE_GPA + 0x1000),     // output in a hole
            (OVERLAY_GPA, OUT_GPA),          // input on the overlay page
            (IN_GPA, OVERLAY_GPA + 0x10),    // output on the overlay page
            (IN_GPA, 0xFFFF_FFFF_FFFF_FFE0), // beyond the GPA space
            (0x0000_0100_0000_0000, OUT_GPA),
        ];
        for (i, o) in cases {
            // (`get` puts the input bytes there even on the overlay page.)
            let mut case = memory_case_at(conv, i, o, 2);
            let out = case.entry();
            case.expect_error(out, HvStatus::INVALID_ALIGNMENT, 0);
        }
    }
}

#[test]
fn step_5f_x86_uses_the_high_halves_of_the_gpa_pairs() {
    // EBX:ECX = 1:0x3000 is 0x1_0000_3000, beyond RAM, although ECX alone
    // would be valid.
    let mut case = memory_case_at(Convention::X86, 0x1_0000_3000, OUT_GPA, 1);
    let out = case.entry();
    case.expect_error(out, HvStatus::INVALID_ALIGNMENT, 0);
}

#[test]
fn step_5c_32_bit_fast_call_is_invalid_input_even_without_xmm_bits() {
    // 32-bit callers have no XMM register file, so 5b (#UD) does not apply
    // to them; their fast call always fails 5c.
    for (xin, xout) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut case = Case::new(Convention::X86, Form::Fast);
        let p = case.model.partition_mut(2).unwrap();
        p.xmm_fast_input = xin;
        p.xmm_fast_output = xout;
        case.get(
            0,
            header(SELF_PARTITION, SELF_VP, 0),
            &names(Convention::X86, 1),
        );
        let out = case.entry();
        case.expect_error(out, HvStatus::INVALID_HYPERCALL_INPUT, 0);
    }
}
