//! Batching and loop logic against a deliberately simple model hypervisor.

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use super::*;

/// The name the model refuses (INVALID_PARAMETER).
const BAD: HvRegisterName = HvRegisterName(0xDEAD);

/// The model's value of a register: a function of the name.
fn value_of(name: u32) -> HvRegisterValue {
    HvRegisterValue::from_parts(u64::from(name) * 3 + 1, !u64::from(name))
}

/// Memory-form read of the caller's own registers (partition SELF, VP 0,
/// VTL 0).
fn read_self(
    model: &mut Model,
    names: &[HvRegisterName],
    values: &mut [HvRegisterValue],
) -> Result<(), GetError> {
    get_vp_registers(model, u64::MAX, 0, HvInputVtl::new(), names, values)
}

/// A hypervisor that does at most `budget` elements per call and then
/// returns SUCCESS early (the "early return" the guest loop must handle).
struct Model {
    scratch: Box<Scratch>,
    budget: u16,
    features: HvFeatures,
    /// (rep count, rep start, header) of every call.
    calls: Vec<(u16, u16, [u64; 2])>,
    /// Always answer SUCCESS with this many reps completed.
    stuck_at: Option<u16>,
}

impl Model {
    fn new(budget: u16) -> Self {
        Self {
            scratch: Box::new(Scratch::new()),
            budget,
            features: HvFeatures {
                max_leaf: 0x4000_0005,
                privileges: hvcall_abi::privilege::ACCESS_VP_REGISTERS,
                features_ecx: 0,
                features_edx: hvcall_abi::cpuid::XMM_FAST_INPUT_EDX
                    | hvcall_abi::cpuid::XMM_FAST_OUTPUT_EDX,
            },
            calls: Vec::new(),
            stuck_at: None,
        }
    }

    /// Processes elements from `start`; `name(i)` reads input name i and
    /// `put(i, v)` writes output value i.
    fn run(
        &mut self,
        control: HypercallControl,
        head: [u64; 2],
        name: impl Fn(usize) -> u32,
        mut put: impl FnMut(usize, HvRegisterValue),
    ) -> HypercallResult {
        let (n, s) = (control.rep_count(), control.rep_start());
        self.calls.push((n, s, head));
        assert_eq!(control.code(), GET_VP_REGISTERS);
        if let Some(done) = self.stuck_at {
            return HypercallResult::of(HvStatus::SUCCESS, done);
        }
        let end = n.min(s + self.budget);
        for i in s..end {
            let nm = name(usize::from(i));
            if nm == BAD.0 {
                return HypercallResult::of(HvStatus::INVALID_PARAMETER, i);
            }
            put(usize::from(i), value_of(nm));
        }
        HypercallResult::of(HvStatus::SUCCESS, end)
    }
}

impl Transport for Model {
    fn scratch(&mut self) -> &mut Scratch {
        &mut self.scratch
    }

    fn call_memory(&mut self, control: HypercallControl) -> HypercallResult {
        assert!(!control.fast());
        let input = self.scratch.input;
        let q = |o: usize| u64::from_le_bytes(input[o..o + 8].try_into().unwrap());
        let head = [q(0), q(8)];
        let mut output = self.scratch.output;
        let r = self.run(
            control,
            head,
            |i| u32::from_le_bytes(input[16 + 4 * i..20 + 4 * i].try_into().unwrap()),
            |i, v| output[16 * i..16 * i + 16].copy_from_slice(&v.0),
        );
        self.scratch.output = output;
        r
    }

    fn call_fast(
        &mut self,
        control: HypercallControl,
        regs: &mut FastRegisters,
    ) -> HypercallResult {
        assert!(control.fast());
        let n = usize::from(control.rep_count());
        let file = *regs;
        let name = |i: usize| (file.pairs[1 + i / 4][(i % 4) / 2] >> (32 * (i % 2))) as u32;
        let first = fast_output_pair(n);
        let mut out = file;
        let r = self.run(control, file.pairs[0], name, |i, v| {
            out.pairs[first + i] = [v.low(), v.high()]
        });
        *regs = out;
        r
    }

    fn features(&self) -> HvFeatures {
        self.features
    }
}

fn names(n: u32) -> Vec<HvRegisterName> {
    (0..n).map(|i| HvRegisterName(0x0002_0000 + i)).collect()
}

#[test]
fn memory_form_batches_by_page_and_reissues_early_returns() {
    let mut model = Model::new(100);
    let names = names(600);
    let mut values = vec![HvRegisterValue::default(); 600];
    let vtl = HvInputVtl::new()
        .with_target_vtl(0)
        .with_use_target_vtl(true);
    get_vp_registers(&mut model, 2, 1, vtl, &names, &mut values).unwrap();
    for (n, v) in names.iter().zip(&values) {
        assert_eq!(*v, value_of(n.0));
    }
    let starts: Vec<(u16, u16)> = model.calls.iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(
        starts,
        [
            (256, 0),
            (256, 100),
            (256, 200),
            (256, 0),
            (256, 100),
            (256, 200),
            (88, 0)
        ]
    );
    assert!(model.calls.iter().all(|c| c.2 == [2, 1 | (0x10 << 32)]));
}

#[test]
fn memory_form_reports_the_failing_index_and_keeps_earlier_values() {
    let mut model = Model::new(7);
    let mut names = names(300);
    names[290] = BAD;
    let sentinel = HvRegisterValue::from(0x5A5Au64);
    let mut values = vec![sentinel; 300];
    let r = read_self(&mut model, &names, &mut values);
    assert_eq!(
        r,
        Err(GetError::Failed {
            status: HvStatus::INVALID_PARAMETER,
            reps_completed: 34,
            index: 290
        })
    );
    for i in 0..290 {
        assert_eq!(values[i], value_of(names[i].0), "value {i}");
    }
    assert!(values[290..].iter().all(|v| *v == sentinel));
}

#[test]
fn a_hypervisor_without_progress_is_an_error() {
    let mut model = Model::new(7);
    model.stuck_at = Some(0);
    let names = names(3);
    let mut values = vec![HvRegisterValue::default(); 3];
    let r = read_self(&mut model, &names, &mut values);
    assert_eq!(r, Err(GetError::NoProgress { index: 0 }));
    assert_eq!(model.calls.len(), 1);
}

#[test]
fn length_mismatch_is_rejected_without_a_call() {
    let mut model = Model::new(7);
    let mut values = vec![HvRegisterValue::default(); 2];
    let r = get_vp_registers(&mut model, 1, 0, HvInputVtl::new(), &names(3), &mut values);
    assert_eq!(
        r,
        Err(GetError::LengthMismatch {
            names: 3,
            values: 2
        })
    );
    assert!(model.calls.is_empty());
}

#[test]
fn fast_input_layout_follows_the_register_pairs() {
    let regs = fast_input(7, 3, HvInputVtl::new().with_use_target_vtl(true), &names(3));
    assert_eq!(regs.pairs[0], [7, 3 | (0x10 << 32)]);
    assert_eq!(
        regs.pairs[1],
        [0x0002_0000 | (0x0002_0001 << 32), 0x0002_0002]
    );
    assert!(regs.pairs[2..].iter().all(|p| *p == [0, 0]));
    assert_eq!(fast_output_pair(1), 2);
    assert_eq!(fast_output_pair(4), 2);
    assert_eq!(fast_output_pair(5), 3);
}

#[test]
fn fast_form_reads_outputs_from_xmm1_on_with_continuation() {
    let mut model = Model::new(1);
    let names = names(4);
    let mut values = vec![HvRegisterValue::default(); 4];
    get_vp_registers_fast(
        &mut model,
        u64::MAX,
        0,
        HvInputVtl::new(),
        &names,
        &mut values,
    )
    .unwrap();
    for (n, v) in names.iter().zip(&values) {
        assert_eq!(*v, value_of(n.0));
    }
    let starts: Vec<u16> = model.calls.iter().map(|c| c.1).collect();
    assert_eq!(starts, [0, 1, 2, 3]);
}

#[test]
fn fast_form_needs_both_cpuid_bits_and_at_most_four_names() {
    let mut model = Model::new(7);
    let mut values = vec![HvRegisterValue::default(); 5];
    assert_eq!(
        get_vp_registers_fast(&mut model, 1, 0, HvInputVtl::new(), &names(5), &mut values),
        Err(GetError::TooManyForFast { count: 5 })
    );
    model.features.features_edx = hvcall_abi::cpuid::XMM_FAST_INPUT_EDX;
    assert_eq!(
        get_vp_registers_fast(
            &mut model,
            1,
            0,
            HvInputVtl::new(),
            &names(1),
            &mut values[..1]
        ),
        Err(GetError::FastNotAdvertised {
            input: true,
            output: false
        })
    );
    assert!(model.calls.is_empty());
}
