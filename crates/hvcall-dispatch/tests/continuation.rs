//! docs/contract.md §2: continuation of a rep call under a work budget, in
//! every ABI and in memory and fast form.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use hvcall_abi::{HvRegisterName, HvRegisterValue, HvStatus};
use hvcall_dispatch::{DispatchConfig, Outcome};
use hvcall_model::VM_PARTITION;

fn call(
    conv: hvcall_dispatch::Convention,
    form: Form,
    start: u16,
    list: &[u32],
    budget: u16,
) -> Case {
    let mut case = Case::new(conv, form);
    case.config = DispatchConfig::default().with_max_reps_per_entry(budget);
    case.get(start, header(SELF_PARTITION, SELF_VP, 0), list);
    case
}

#[test]
fn section_2_split_at_every_point_matches_one_uninterrupted_call() {
    for (conv, form) in combos(4) {
        let n = if form == Form::Fast { 4 } else { 9 };
        let list: Vec<u32> = (0..n).map(|i| names(conv, 9)[i % 9]).collect();
        for start in [0u16, 1, 3] {
            let mut whole = call(conv, form, start, &list, 256);
            let (out, entries) = whole.run();
            assert_eq!((out, entries), (Outcome::Complete, 1));
            for budget in 0..=n as u16 {
                let mut split = call(conv, form, start, &list, budget);
                let (out, entries) = split.run();
                let per_entry = budget.max(1) as usize;
                let expected_entries = (n - start as usize).div_ceil(per_entry);
                assert_eq!(out, Outcome::Complete);
                assert_eq!(
                    entries, expected_entries,
                    "{conv:?} {form:?} budget {budget}"
                );
                assert_eq!(split.regs, whole.regs, "{conv:?} {form:?} budget {budget}");
                assert!(ram_image(&split.ram) == ram_image(&whole.ram));
                assert!(!split.state.is_pending());
                assert_eq!(split.model.snapshots_taken(), 1);
            }
        }
    }
}

#[test]
fn section_2_continuation_writes_the_next_index_into_rep_start_only() {
    for (conv, form) in combos(3) {
        let list = names(conv, 3);
        let mut case = call(conv, form, 1, &list, 1);
        let control_before = control_of(conv, &case.regs);
        let out = case.entry();
        assert_eq!(out, Outcome::Continue);
        assert!(case.state.is_pending());
        let expected_control = (control_before & !(0xFFF << 48)) | (2 << 48);
        assert_eq!(
            control_of(conv, &case.regs),
            expected_control,
            "{conv:?} {form:?}"
        );
        // Element 1 is written; nothing else but the control register.
        let mut allowed = control_regs(conv);
        let value = case.model_value(VM_PARTITION, 0, 0, list[1]);
        match form {
            Form::Fast => {
                let regs = fast_output_regs(conv, 3, 1);
                let got: Vec<u128> = regs.iter().map(|&r| get_reg(&case.regs, r)).collect();
                let want = if regs.len() == 1 {
                    vec![value]
                } else {
                    vec![value & u128::from(u64::MAX), value >> 64]
                };
                assert_eq!(got, want);
                allowed.extend(regs);
            }
            Form::Memory => {
                let written = case.ram.peek(OUT_GPA + 16, 16).unwrap();
                assert_eq!(written, value.to_le_bytes());
                assert_eq!(case.ram.peek(OUT_GPA, 16).unwrap(), [GUARD; 16]);
                assert_eq!(case.ram.peek(OUT_GPA + 32, 16).unwrap(), [GUARD; 16]);
            }
        }
        assert_regs_only(&case.regs_before, &case.regs, &allowed, "continuation");
        // The re-entry completes the call.
        let out = case.entry();
        assert_eq!(out, Outcome::Complete);
        assert_eq!((case.status(), case.reps()), (HvStatus::SUCCESS, 3));
        assert!(!case.state.is_pending());
    }
}

#[test]
fn section_2_continued_call_keeps_its_first_snapshot() {
    for (conv, form) in combos(3) {
        let list = names(conv, 3);
        let mut case = call(conv, form, 0, &list, 1);
        let original: Vec<u128> = list
            .iter()
            .map(|&n| case.model_value(VM_PARTITION, 0, 0, n))
            .collect();
        assert_eq!(case.entry(), Outcome::Continue);
        // The VP runs between entries: its registers change.
        for &n in &list {
            case.model.set_register(
                VM_PARTITION,
                0,
                0,
                HvRegisterName(n),
                HvRegisterValue::from(0xBAD_u64),
            );
        }
        let (out, _) = case.run();
        assert_eq!(out, Outcome::Complete);
        assert_eq!(case.model.snapshots_taken(), 1);
        let got: Vec<u128> = (0..3u16)
            .map(|i| match form {
                Form::Memory => u128::from_le_bytes(
                    case.ram
                        .peek(OUT_GPA + 16 * u64::from(i), 16)
                        .unwrap()
                        .try_into()
                        .unwrap(),
                ),
                Form::Fast => {
                    let regs = fast_output_regs(conv, 3, i);
                    if regs.len() == 1 {
                        get_reg(&case.regs, regs[0])
                    } else {
                        get_reg(&case.regs, regs[0]) | (get_reg(&case.regs, regs[1]) << 64)
                    }
                }
            })
            .collect();
        assert_eq!(got, original, "{conv:?} {form:?}");
    }
}

#[test]
fn section_2_continued_call_keeps_its_first_input() {
    for conv in CONVENTIONS {
        // Overlapping lists: the output overwrites the names as it goes.
        let list = names(conv, 6);
        let mut split = call(conv, Form::Memory, 0, &list, 1);
        split.out_gpa = IN_GPA;
        split.get(0, header(SELF_PARTITION, SELF_VP, 0), &list);
        let mut whole = call(conv, Form::Memory, 0, &list, 256);
        whole.out_gpa = IN_GPA;
        whole.get(0, header(SELF_PARTITION, SELF_VP, 0), &list);
        let (_, entries) = split.run();
        whole.run();
        assert_eq!(entries, 6);
        assert!(ram_image(&split.ram) == ram_image(&whole.ram));
        assert_eq!(split.regs, whole.regs);
        assert_eq!((split.status(), split.reps()), (HvStatus::SUCCESS, 6));

        // Names changed in memory between entries are not re-read.
        let mut case = call(conv, Form::Memory, 0, &list[..3], 1);
        assert_eq!(case.entry(), Outcome::Continue);
        case.ram.poke(IN_GPA + 16, &[0xFF; 12]).unwrap();
        let (out, _) = case.run();
        assert_eq!(
            (out, case.status(), case.reps()),
            (Outcome::Complete, HvStatus::SUCCESS, 3)
        );
    }
}

#[test]
fn section_2_error_after_continuation_reports_the_absolute_index() {
    for (conv, form) in combos(4) {
        let mut list = names(conv, 4);
        list[3] = UNKNOWN_NAME;
        let mut case = call(conv, form, 1, &list, 1);
        let (out, entries) = case.run();
        assert_eq!(entries, 3);
        let values: Vec<_> = (1..3u16)
            .map(|i| (i, case.model_value(VM_PARTITION, 0, 0, list[i as usize])))
            .collect();
        // The continuations rewrote the control register; the last entry
        // restored it, so only the result registers differ from before.
        case.expect(out, HvStatus::INVALID_PARAMETER, 3, &values);
        assert!(!case.state.is_pending());
    }
}

#[test]
fn section_2_another_call_in_between_leaves_the_pending_state() {
    for (conv, form) in combos(3) {
        let list = names(conv, 3);
        let mut case = call(conv, form, 0, &list, 1);
        assert_eq!(case.entry(), Outcome::Continue);
        let parked_regs = case.regs.clone();

        // Another call (another instruction, another VP read) runs to
        // completion in one entry, whatever the budget.
        let mut other = case.regs.clone();
        std::mem::swap(&mut case.regs, &mut other);
        case.ctx.instruction_pointer = IP + 0x100;
        case.get(0, header(SELF_PARTITION, 1, 0), &list);
        assert_eq!(case.entry(), Outcome::Complete);
        assert_eq!((case.status(), case.reps()), (HvStatus::SUCCESS, 3));
        assert!(case.state.is_pending());

        // The parked call resumes where it stopped.
        case.regs = parked_regs;
        case.ctx.instruction_pointer = IP;
        if form == Form::Memory {
            case.ram.poke(OUT_GPA, &[GUARD; 48]).unwrap();
        }
        let (out, entries) = case.run();
        assert_eq!((out, entries), (Outcome::Complete, 2));
        assert_eq!((case.status(), case.reps()), (HvStatus::SUCCESS, 3));
        // Elements 1 and 2 were written by the resumed entries.
        for i in 1..3u16 {
            let v = case.model_value(VM_PARTITION, 0, 0, list[i as usize]);
            match form {
                Form::Memory => assert_eq!(
                    case.ram.peek(OUT_GPA + 16 * u64::from(i), 16).unwrap(),
                    v.to_le_bytes()
                ),
                Form::Fast => assert_eq!(
                    get_reg(&case.regs, fast_output_regs(conv, 3, i)[0]) as u64,
                    v as u64
                ),
            }
        }
    }
}

#[test]
fn section_2_reentry_that_differs_is_handled_as_a_new_call() {
    for (conv, form) in combos(3) {
        let list = names(conv, 3);
        // Different rep start than the index written, different IP, and
        // (memory form) a different output GPA.
        for variant in 0..3 {
            let mut case = call(conv, form, 0, &list, 1);
            assert_eq!(case.entry(), Outcome::Continue);
            match variant {
                0 => {
                    case.get(2, header(SELF_PARTITION, SELF_VP, 0), &list);
                }
                1 => case.ctx.instruction_pointer = IP + 3,
                _ if form == Form::Memory => {
                    case.out_gpa = OUT_GPA + 0x100;
                    case.get(1, header(SELF_PARTITION, SELF_VP, 0), &list);
                }
                _ => {
                    let mut other = list.clone();
                    other[2] = names(conv, 4)[3];
                    case.get(1, header(SELF_PARTITION, SELF_VP, 0), &other);
                }
            }
            let before = case.model.snapshots_taken();
            let out = case.entry();
            assert_eq!(
                out,
                Outcome::Complete,
                "{conv:?} {form:?} variant {variant}"
            );
            assert_eq!(
                case.model.snapshots_taken(),
                before + 1,
                "a new call takes a new snapshot"
            );
            assert!(case.state.is_pending(), "the parked call stays parked");
        }
    }
}

#[test]
fn section_2_fast_reentry_with_other_input_registers_is_a_new_call() {
    for (conv, form) in combos(2) {
        if form != Form::Fast {
            continue;
        }
        let list = names(conv, 2);
        let mut case = call(conv, form, 0, &list, 1);
        assert_eq!(case.entry(), Outcome::Continue);
        // Same control (rep start 1), other names in the input registers.
        let other = [names(conv, 5)[4], names(conv, 5)[3]];
        case.get(1, header(SELF_PARTITION, SELF_VP, 0), &other);
        let before = case.model.snapshots_taken();
        assert_eq!(case.entry(), Outcome::Complete);
        assert_eq!(case.model.snapshots_taken(), before + 1);
        let v = case.model_value(VM_PARTITION, 0, 0, other[1]);
        assert_eq!(
            get_reg(&case.regs, fast_output_regs(conv, 2, 1)[0]) as u64,
            v as u64
        );
    }
}

#[test]
fn section_2_clear_forgets_the_pending_call() {
    let conv = hvcall_dispatch::Convention::X64;
    let list = names(conv, 3);
    let mut case = call(conv, Form::Memory, 0, &list, 1);
    assert_eq!(case.entry(), Outcome::Continue);
    case.state.clear();
    assert!(!case.state.is_pending());
    let (out, entries) = case.run();
    assert_eq!((out, entries), (Outcome::Complete, 2));
    assert_eq!(case.model.snapshots_taken(), 2);
}

#[test]
fn section_2_output_that_stops_being_ram_between_entries_is_reported_like_5f() {
    // docs/contract.md §2 (output that stops being RAM): the output page becomes an overlay while
    // the call is parked. The dispatcher never writes there; it reports
    // INVALID_ALIGNMENT at the element it could not write.
    for conv in CONVENTIONS {
        let list = names(conv, 3);
        let mut case = call(conv, Form::Memory, 0, &list, 1);
        assert_eq!(case.entry(), Outcome::Continue);
        case.ram.add_overlay(OUT_GPA);
        let out = case.entry();
        assert_eq!(out, Outcome::Complete);
        assert_eq!(
            (case.status(), case.reps()),
            (HvStatus::INVALID_ALIGNMENT, 1)
        );
        assert_eq!(case.ram.peek(OUT_GPA + 16, 32).unwrap(), [GUARD; 32]);
        assert!(!case.state.is_pending());
    }
}

#[test]
fn section_2_the_snapshot_is_told_exactly_the_names_from_rep_start_once() {
    for (conv, form) in combos(3) {
        let list = names(conv, 3);
        for start in [0u16, 1, 2] {
            let mut case = call(conv, form, start, &list, 1);
            let (out, entries) = case.run();
            assert_eq!(out, Outcome::Complete);
            assert_eq!(entries, 3 - usize::from(start), "{conv:?} {form:?}");
            let told: Vec<u32> = case
                .model
                .last_snapshot_names()
                .iter()
                .map(|n| n.0)
                .collect();
            assert_eq!(
                told,
                list[usize::from(start)..],
                "{conv:?} {form:?} start {start}"
            );
            assert_eq!(
                case.model.snapshots_taken(),
                1,
                "one snapshot for every entry"
            );
        }
    }
}
