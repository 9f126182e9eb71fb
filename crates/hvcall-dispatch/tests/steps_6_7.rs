//! docs/contract.md §1 steps 6a–7 and the rules under the table, each in every
//! ABI and in memory and fast form where the row applies.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use hvcall_abi::{HvRegisterName, HvRegisterValue, HvStatus};
use hvcall_dispatch::Outcome;
use hvcall_model::{Model, ROOT_PARTITION, VM_PARTITION};

/// Run a call of `names` from `start` with `header` in every combination,
/// after `setup`, and check it with `check(case, outcome)`.
fn each(
    n: usize,
    start: u16,
    header: [u8; 16],
    setup: impl Fn(&mut Case),
    check: impl Fn(&Case, Outcome),
) {
    for (conv, form) in combos(n as u16) {
        let mut case = Case::new(conv, form);
        setup(&mut case);
        let list = names(conv, n);
        case.get(start, header, &list);
        let out = case.entry();
        check(&case, out);
    }
}

/// [`each`] for a call that fails before step 7: `status`, reps completed
/// = the rep start, nothing written but the result.
fn rejected(n: usize, start: u16, header: [u8; 16], setup: impl Fn(&mut Case), status: HvStatus) {
    each(n, start, header, setup, |case, out| {
        case.expect_error(out, status, start)
    });
}

/// The values the call reads from (partition, VP, VTL), for slots
/// `start..n` of the standard names.
fn values_of(
    case: &Case,
    partition: u64,
    vp: u32,
    vtl: u8,
    start: u16,
    n: usize,
) -> Vec<(u16, u128)> {
    let list = names(case.conv, n);
    (start as usize..n)
        .map(|i| (i as u16, case.model_value(partition, vp, vtl, list[i])))
        .collect()
}

fn root_calls(case: &mut Case) {
    case.model.set_caller(ROOT_PARTITION, 0);
}

#[test]
fn step_6a_reserved_header_bytes_are_invalid_parameter() {
    for byte in 13..16 {
        // Partition 0 would fail 6c: 6a comes first. Reps completed = s.
        let mut h = header(0, SELF_VP, 0);
        h[byte] = 1;
        rejected(3, 1, h, |_| {}, HvStatus::INVALID_PARAMETER);
    }
}

#[test]
fn step_6b_input_vtl_reserved_bits_are_invalid_parameter() {
    for vtl in [0x20u8, 0x40, 0x80, 0xF1] {
        rejected(
            3,
            2,
            header(0, SELF_VP, vtl),
            |_| {},
            HvStatus::INVALID_PARAMETER,
        );
    }
}

#[test]
fn step_6c_unknown_partition_is_invalid_partition_id() {
    for pid in [0u64, 3, 0x1234, u64::MAX - 1] {
        // A VP index that 6g would reject: 6c comes first.
        rejected(
            2,
            1,
            header(pid, 99, 0),
            |_| {},
            HvStatus::INVALID_PARTITION_ID,
        );
        rejected(
            2,
            0,
            header(pid, 0, 0),
            root_calls,
            HvStatus::INVALID_PARTITION_ID,
        );
    }
}

#[test]
fn step_6d_partition_that_is_not_a_child_is_access_denied() {
    // The VM names the root, and a sibling partition 3.
    let sibling = |case: &mut Case| {
        case.model = Model::builder(case.arch())
            .partition(VM_PARTITION, ROOT_PARTITION, 2)
            .partition(3, ROOT_PARTITION, 1)
            .caller(VM_PARTITION, 0)
            .build();
    };
    rejected(
        2,
        0,
        header(ROOT_PARTITION, 0, 0),
        |_| {},
        HvStatus::ACCESS_DENIED,
    );
    rejected(2, 1, header(3, 0, 0), sibling, HvStatus::ACCESS_DENIED);
}

#[test]
fn step_6e_self_access_without_privilege_is_access_denied() {
    let no_privilege =
        |case: &mut Case| case.model.partition_mut(VM_PARTITION).unwrap().privileges = 0;
    for pid in [SELF_PARTITION, VM_PARTITION] {
        rejected(
            2,
            1,
            header(pid, 0, 0),
            no_privilege,
            HvStatus::ACCESS_DENIED,
        );
    }
}

#[test]
fn step_6e_parent_needs_no_privilege_for_its_child() {
    let root_without = |case: &mut Case| {
        root_calls(case);
        case.model.partition_mut(ROOT_PARTITION).unwrap().privileges = 0;
    };
    each(
        2,
        0,
        header(VM_PARTITION, 1, 0),
        root_without,
        |case, out| {
            case.expect(
                out,
                HvStatus::SUCCESS,
                2,
                &values_of(case, VM_PARTITION, 1, 0, 0, 2),
            )
        },
    );
}

#[test]
fn step_6f_vp_self_in_another_partition_is_invalid_vp_index() {
    rejected(
        2,
        1,
        header(VM_PARTITION, SELF_VP, 0),
        root_calls,
        HvStatus::INVALID_VP_INDEX,
    );
}

#[test]
fn step_6g_vp_index_out_of_range_is_invalid_vp_index() {
    for vp in [2u32, 3, 0xFFFF_FFFF, 0xFFFF_FFFD] {
        rejected(
            2,
            0,
            header(SELF_PARTITION, vp, 0),
            |_| {},
            HvStatus::INVALID_VP_INDEX,
        );
        rejected(
            2,
            1,
            header(VM_PARTITION, vp, 0),
            root_calls,
            HvStatus::INVALID_VP_INDEX,
        );
    }
}

#[test]
fn step_6h_higher_target_vtl_on_self_is_access_denied() {
    // VTL 1 is not enabled either: 6h comes before 6i.
    for vtl in [0x11u8, 0x1F] {
        rejected(
            2,
            1,
            header(SELF_PARTITION, SELF_VP, vtl),
            |_| {},
            HvStatus::ACCESS_DENIED,
        );
    }
}

#[test]
fn step_6h_parent_may_name_any_vtl() {
    let child_vtl1 = |case: &mut Case| {
        root_calls(case);
        let arch = case.arch();
        let vp = case.model.vp_mut(VM_PARTITION, 1).unwrap();
        vp.enabled_vtls = 0b11;
        for (i, &n) in hvcall_model::standard_names(arch).iter().enumerate() {
            vp.set_register(arch, 1, n, HvRegisterValue::from(0x1_0000u64 + i as u64));
        }
    };
    each(
        3,
        0,
        header(VM_PARTITION, 1, 0x11),
        child_vtl1,
        |case, out| {
            case.expect(
                out,
                HvStatus::SUCCESS,
                3,
                &values_of(case, VM_PARTITION, 1, 1, 0, 3),
            )
        },
    );
}

#[test]
fn step_6i_vtl_not_enabled_on_target_vp_is_invalid_vtl_state() {
    // The parent names VTL 1 of a child VP that has only VTL 0.
    rejected(
        2,
        1,
        header(VM_PARTITION, 1, 0x11),
        root_calls,
        HvStatus::INVALID_VTL_STATE,
    );
    // The caller runs in VTL 1 (enabled on its own VP but not on VP 1) and
    // names VP 1 with UseTargetVtl = 0: the target VTL is its own, 1.
    let caller_in_vtl1 = |case: &mut Case| {
        let vp = case.model.vp_mut(VM_PARTITION, 0).unwrap();
        vp.enabled_vtls = 0b11;
        vp.active_vtl = 1;
    };
    rejected(
        2,
        0,
        header(SELF_PARTITION, 1, 0),
        caller_in_vtl1,
        HvStatus::INVALID_VTL_STATE,
    );
    // A VTL beyond 15 cannot be named, but a caller's own VTL may be
    // anything: the dispatcher must not overflow.
    let caller_in_vtl200 =
        |case: &mut Case| case.model.vp_mut(VM_PARTITION, 0).unwrap().active_vtl = 200;
    rejected(
        1,
        0,
        header(SELF_PARTITION, SELF_VP, 0),
        caller_in_vtl200,
        HvStatus::INVALID_VTL_STATE,
    );
}

#[test]
fn step_7_unreadable_name_is_invalid_parameter_at_its_index() {
    for (conv, form) in combos(4) {
        for start in [0u16, 1, 2] {
            let mut case = Case::new(conv, form);
            let mut list = names(conv, 4);
            list[2] = UNKNOWN_NAME;
            case.get(start, header(SELF_PARTITION, SELF_VP, 0), &list);
            let out = case.entry();
            // Completed elements start..2 are written; slots before start
            // and from 2 on are untouched.
            let values: Vec<_> = (start..2)
                .map(|i| (i, case.model_value(2, 0, 0, list[i as usize])))
                .collect();
            case.expect(out, HvStatus::INVALID_PARAMETER, 2, &values);
        }
    }
}

#[test]
fn step_7_a_name_of_the_other_architecture_is_unknown() {
    // 0x00020022 is PC on ARM64 and names nothing on x64; 0x00080001 is
    // EFER on x64 and names nothing on ARM64.
    for (conv, form) in combos(1) {
        let mut case = Case::new(conv, form);
        let name = match arch(conv) {
            hvcall_abi::Arch::X64 => 0x0002_0022,
            hvcall_abi::Arch::Arm64 => 0x0008_0001,
        };
        case.get(0, header(SELF_PARTITION, SELF_VP, 0), &[name]);
        let out = case.entry();
        case.expect_error(out, HvStatus::INVALID_PARAMETER, 0);
    }
}

#[test]
fn rule_partition_ids_2_is_self_1_is_denied_0_is_invalid() {
    each(
        2,
        0,
        header(VM_PARTITION, SELF_VP, 0),
        |_| {},
        |case, out| {
            case.expect(
                out,
                HvStatus::SUCCESS,
                2,
                &values_of(case, VM_PARTITION, 0, 0, 0, 2),
            )
        },
    );
    rejected(
        2,
        0,
        header(ROOT_PARTITION, 0, 0),
        |_| {},
        HvStatus::ACCESS_DENIED,
    );
    rejected(
        2,
        0,
        header(0, 0, 0),
        |_| {},
        HvStatus::INVALID_PARTITION_ID,
    );
}

#[test]
fn rule_use_target_vtl_0_ignores_the_target_vtl_bits() {
    for vtl in [0x01u8, 0x0F] {
        each(
            2,
            0,
            header(SELF_PARTITION, SELF_VP, vtl),
            |_| {},
            |case, out| {
                case.expect(
                    out,
                    HvStatus::SUCCESS,
                    2,
                    &values_of(case, VM_PARTITION, 0, 0, 0, 2),
                )
            },
        );
    }
}

#[test]
fn rule_overlapping_lists_read_the_whole_input_first() {
    for conv in CONVENTIONS {
        for (out_offset, start) in [(0u64, 0u16), (0, 3), (16, 0), (8, 1), (24, 2)] {
            let mut case = Case::new(conv, Form::Memory);
            case.out_gpa = IN_GPA + out_offset;
            let list = names(conv, 6);
            case.get(start, header(SELF_PARTITION, SELF_VP, 0), &list);
            let out = case.entry();
            case.expect(
                out,
                HvStatus::SUCCESS,
                6,
                &values_of(&case, VM_PARTITION, 0, 0, start, 6),
            );
        }
    }
}

#[test]
fn rule_only_slots_s_to_n_minus_1_are_touched() {
    for (conv, form) in combos(4) {
        let mut case = Case::new(conv, form);
        let list = names(conv, 4);
        case.get(2, header(SELF_PARTITION, SELF_VP, 0), &list);
        let out = case.entry();
        // `expect` checks every other register and byte is unchanged.
        case.expect(
            out,
            HvStatus::SUCCESS,
            4,
            &values_of(&case, VM_PARTITION, 0, 0, 2, 4),
        );
    }
}

#[test]
fn rule_success_is_status_0_reps_n() {
    for n in [1usize, 2, 4] {
        each(
            n,
            0,
            header(SELF_PARTITION, SELF_VP, 0),
            |_| {},
            |case, out| {
                case.expect(
                    out,
                    HvStatus::SUCCESS,
                    n as u16,
                    &values_of(case, VM_PARTITION, 0, 0, 0, n),
                )
            },
        );
    }
    // The largest memory-form call: 256 values, a full output page.
    for conv in CONVENTIONS {
        let mut case = Case::new(conv, Form::Memory);
        case.out_gpa = 0x20000;
        let base = names(conv, 8);
        let list: Vec<u32> = (0..256).map(|i| base[i % 8]).collect();
        case.get(0, header(SELF_PARTITION, SELF_VP, 0), &list);
        let out = case.entry();
        let values: Vec<_> = (0..256u16)
            .map(|i| (i, case.model_value(2, 0, 0, list[i as usize])))
            .collect();
        case.expect(out, HvStatus::SUCCESS, 256, &values);
    }
}

#[test]
fn rule_a_parent_reads_its_childs_other_vp() {
    each(3, 0, header(VM_PARTITION, 1, 0), root_calls, |case, out| {
        case.expect(
            out,
            HvStatus::SUCCESS,
            3,
            &values_of(case, VM_PARTITION, 1, 0, 0, 3),
        )
    });
}

#[test]
fn section_5_shared_registers_read_the_same_for_every_vtl() {
    for (conv, form) in combos(2) {
        let mut case = Case::new(conv, form);
        root_calls(&mut case);
        let arch = case.arch();
        // RAX/X0 is shared, RIP/PC private.
        let (shared, private) = match arch {
            hvcall_abi::Arch::X64 => (0x0002_0000u32, 0x0002_0010u32),
            hvcall_abi::Arch::Arm64 => (0x0002_0000, 0x0002_0022),
        };
        let vp = case.model.vp_mut(VM_PARTITION, 1).unwrap();
        vp.enabled_vtls = 0b11;
        vp.set_register(
            arch,
            1,
            HvRegisterName(private),
            HvRegisterValue::from(0xAB_u64),
        );
        case.get(0, header(VM_PARTITION, 1, 0x11), &[shared, private]);
        let out = case.entry();
        let rax_vtl0 = case.model_value(VM_PARTITION, 1, 0, shared);
        case.expect(out, HvStatus::SUCCESS, 2, &[(0, rax_vtl0), (1, 0xAB)]);
    }
}

#[test]
fn order_first_failure_decides() {
    // 6b and 6c and 7 all fail: 6b wins.
    rejected(
        2,
        0,
        header(0, 99, 0x20),
        |_| {},
        HvStatus::INVALID_PARAMETER,
    );
    // 6e and 6g fail: 6e wins.
    let no_privilege =
        |case: &mut Case| case.model.partition_mut(VM_PARTITION).unwrap().privileges = 0;
    rejected(
        2,
        0,
        header(SELF_PARTITION, 99, 0),
        no_privilege,
        HvStatus::ACCESS_DENIED,
    );
    // 6g and 6i fail: 6g wins.
    rejected(
        2,
        1,
        header(VM_PARTITION, 7, 0x13),
        root_calls,
        HvStatus::INVALID_VP_INDEX,
    );
}
