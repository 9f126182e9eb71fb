//! Layout, batching and loop logic against a deliberately simple model
//! hypervisor that records the registers it is asked to write.

use std::boxed::Box;
use std::vec::Vec;

use hvcall_abi::{HvRegisterName, HvRegisterValue, HypercallResult};

use super::*;
use crate::registers::Scratch;
use crate::HvFeatures;

/// The name the model refuses (INVALID_PARAMETER, step 8b).
const BAD: HvRegisterName = HvRegisterName(0xDEAD);

/// The value the model refuses (INVALID_REGISTER_VALUE, step 8c).
const REFUSED: HvRegisterValue = HvRegisterValue::from_parts(0xBAD, 0xBAD);

/// One call as the model saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Call {
    count: u16,
    start: u16,
    fast: bool,
    head: [u64; 2],
}

/// A hypervisor that applies at most `budget` elements per call and then
/// returns SUCCESS early (the "early return" the guest loop must handle).
struct Model {
    scratch: Box<Scratch>,
    budget: u16,
    features: HvFeatures,
    calls: Vec<Call>,
    /// Every element applied, in order.
    written: Vec<(HvRegisterName, HvRegisterValue)>,
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
            written: Vec::new(),
            stuck_at: None,
        }
    }

    /// Runs a call whose input list (header and all `n` elements, TLFS
    /// layout) is `input`.
    fn run(&mut self, control: HypercallControl, input: &[u8]) -> HypercallResult {
        let q = |o: usize| u64::from_le_bytes(input[o..o + 8].try_into().unwrap());
        let (n, s) = (control.rep_count(), control.rep_start());
        self.calls.push(Call {
            count: n,
            start: s,
            fast: control.fast(),
            head: [q(0), q(8)],
        });
        assert_eq!(control.code(), SET_VP_REGISTERS);
        if let Some(done) = self.stuck_at {
            return HypercallResult::of(HvStatus::SUCCESS, done);
        }
        let end = n.min(s + self.budget);
        for i in s..end {
            let e = &input[16 + 32 * usize::from(i)..][..32];
            let name = HvRegisterName(u32::from_le_bytes(e[..4].try_into().unwrap()));
            let value = HvRegisterValue(e[16..].try_into().unwrap());
            let status = if e[4..16] != [0; 12] || name == BAD {
                HvStatus::INVALID_PARAMETER
            } else if value == REFUSED {
                HvStatus::INVALID_REGISTER_VALUE
            } else {
                self.written.push((name, value));
                continue;
            };
            return HypercallResult::of(status, i);
        }
        HypercallResult::of(HvStatus::SUCCESS, end)
    }
}

impl Transport for Model {
    fn scratch(&mut self) -> &mut Scratch {
        &mut self.scratch
    }

    fn call_memory(&mut self, _: HypercallControl) -> HypercallResult {
        panic!("SetVpRegisters must not name an output list");
    }

    fn call_memory_input_only(&mut self, control: HypercallControl) -> HypercallResult {
        assert!(!control.fast());
        let input = self.scratch.input;
        self.run(control, &input)
    }

    fn call_fast(
        &mut self,
        control: HypercallControl,
        regs: &mut FastRegisters,
    ) -> HypercallResult {
        assert!(control.fast());
        let input: Vec<u8> = regs
            .pairs
            .iter()
            .flatten()
            .flat_map(|q| q.to_le_bytes())
            .collect();
        let r = self.run(control, &input);
        // A hostile early return: scribble over the whole register file; the
        // guest must send its input afresh on the reissue.
        regs.pairs = [[u64::MAX; 2]; 7];
        r
    }

    fn features(&self) -> HvFeatures {
        self.features
    }
}

fn element(i: u32) -> SetVpRegistersElement {
    SetVpRegistersElement::new(
        HvRegisterName(0x0002_0000 + i),
        HvRegisterValue::from_parts(u64::from(i) * 3 + 1, !u64::from(i)),
    )
}

fn elements(n: u32) -> Vec<SetVpRegistersElement> {
    (0..n).map(element).collect()
}

/// What the model should have written for `elements`.
fn applied(elements: &[SetVpRegistersElement]) -> Vec<(HvRegisterName, HvRegisterValue)> {
    elements.iter().map(|e| (e.name, e.value)).collect()
}

fn write_self(model: &mut Model, elements: &[SetVpRegistersElement]) -> Result<(), SetError> {
    set_vp_registers(model, u64::MAX, 0, HvInputVtl::new(), elements)
}

fn write_self_fast(model: &mut Model, elements: &[SetVpRegistersElement]) -> Result<(), SetError> {
    set_vp_registers_fast(model, u64::MAX, 0, HvInputVtl::new(), elements)
}

#[test]
fn constants_follow_the_page_and_the_register_file() {
    assert_eq!(BATCH, 127);
    assert!(HEADER_SIZE as usize + SET_ELEMENT_SIZE as usize * BATCH <= PAGE_SIZE as usize);
    assert!(HEADER_SIZE as usize + SET_ELEMENT_SIZE as usize * (BATCH + 1) > PAGE_SIZE as usize);
    assert_eq!(FAST_MAX, 3);
    assert_eq!(
        HEADER_SIZE as usize + SET_ELEMENT_SIZE as usize * FAST_MAX,
        core::mem::size_of::<FastRegisters>()
    );
}

#[test]
fn memory_form_lays_out_header_and_elements_in_the_input_page() {
    let mut model = Model::new(100);
    let vtl = HvInputVtl::new()
        .with_target_vtl(1)
        .with_use_target_vtl(true);
    let list = [
        SetVpRegistersElement::new(
            hvcall_abi::name::x64::RBX,
            HvRegisterValue::from_parts(0x1122_3344_5566_7788, 0x99AA_BBCC_DDEE_FF00),
        ),
        element(1),
    ];
    set_vp_registers(&mut model, 0x0102_0304_0506_0708, 0x0A0B_0C0D, vtl, &list).unwrap();
    let input = &model.scratch.input;
    // Header: PartitionId, VpIndex, HV_INPUT_VTL, three zero bytes.
    assert_eq!(input[..8], [8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(input[8..16], [0x0D, 0x0C, 0x0B, 0x0A, 0x11, 0, 0, 0]);
    // Element 0 at 16: name, 12 zero bytes, the value low byte first.
    let rbx = hvcall_abi::name::x64::RBX.0.to_le_bytes();
    assert_eq!(input[16..20], rbx);
    assert_eq!(input[20..32], [0; 12]);
    assert_eq!(
        input[32..48],
        [
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00, 0xFF, 0xEE, 0xDD, 0xCC, 0xBB,
            0xAA, 0x99
        ]
    );
    // Element 1 at 48.
    assert_eq!(input[48..52], 0x0002_0001u32.to_le_bytes());
    assert_eq!(input[52..64], [0; 12]);
    assert_eq!(input[64..80], element(1).value.0);
    assert_eq!(
        model.calls,
        [Call {
            count: 2,
            start: 0,
            fast: false,
            head: [0x0102_0304_0506_0708, 0x0A0B_0C0D | (0x11 << 32)],
        }]
    );
    assert_eq!(model.written, applied(&list));
}

#[test]
fn memory_form_batches_300_elements_into_127_127_46() {
    let mut model = Model::new(1000);
    let list = elements(300);
    write_self(&mut model, &list).unwrap();
    let shape: Vec<(u16, u16)> = model.calls.iter().map(|c| (c.count, c.start)).collect();
    assert_eq!(shape, [(127, 0), (127, 0), (46, 0)]);
    assert!(model.calls.iter().all(|c| c.head == [u64::MAX, 0]));
    assert_eq!(model.written, applied(&list));
}

#[test]
fn memory_form_reissues_early_returns_within_each_batch() {
    let mut model = Model::new(50);
    let list = elements(300);
    write_self(&mut model, &list).unwrap();
    let shape: Vec<(u16, u16)> = model.calls.iter().map(|c| (c.count, c.start)).collect();
    assert_eq!(
        shape,
        [
            (127, 0),
            (127, 50),
            (127, 100),
            (127, 0),
            (127, 50),
            (127, 100),
            (46, 0)
        ]
    );
    assert_eq!(model.written, applied(&list));
}

#[test]
fn memory_form_reports_the_absolute_index_of_the_failing_element() {
    let mut list = elements(300);
    list[200].name = BAD;
    let mut model = Model::new(7);
    assert_eq!(
        write_self(&mut model, &list),
        Err(SetError::Failed {
            status: HvStatus::INVALID_PARAMETER,
            reps_completed: 73,
            index: 200
        })
    );
    // Elements before the failing one were applied, none after it.
    assert_eq!(model.written, applied(&list[..200]));

    let mut list = elements(300);
    list[130].value = REFUSED;
    let mut model = Model::new(1000);
    assert_eq!(
        write_self(&mut model, &list),
        Err(SetError::Failed {
            status: HvStatus::INVALID_REGISTER_VALUE,
            reps_completed: 3,
            index: 130
        })
    );
    assert_eq!(model.written, applied(&list[..130]));
    assert_eq!(model.calls.len(), 2);
}

#[test]
fn reserved_bytes_are_sent_as_given() {
    let mut list = elements(2);
    list[1].reserved[11] = 1;
    let mut model = Model::new(7);
    assert_eq!(
        write_self(&mut model, &list),
        Err(SetError::Failed {
            status: HvStatus::INVALID_PARAMETER,
            reps_completed: 1,
            index: 1
        })
    );
    assert_eq!(model.scratch.input[16 + 32 + 15], 1);
}

#[test]
fn a_hypervisor_without_progress_is_an_error() {
    let mut model = Model::new(7);
    model.stuck_at = Some(0);
    assert_eq!(
        write_self(&mut model, &elements(200)),
        Err(SetError::NoProgress { index: 0 })
    );
    assert_eq!(model.calls.len(), 1);

    let mut model = Model::new(7);
    model.stuck_at = Some(1);
    assert_eq!(
        write_self_fast(&mut model, &elements(3)),
        Err(SetError::NoProgress { index: 1 })
    );
    assert_eq!(model.calls.len(), 2);
}

#[test]
fn empty_lists_make_no_call() {
    let mut model = Model::new(7);
    write_self(&mut model, &[]).unwrap();
    write_self_fast(&mut model, &[]).unwrap();
    assert!(model.calls.is_empty());
}

#[test]
fn fast_input_places_the_header_in_rdx_r8_and_each_element_in_two_xmm() {
    let vtl = HvInputVtl::new().with_use_target_vtl(true);
    let list = elements(3);
    let regs = fast_input(7, 3, vtl, &list);
    // Pair 0: RDX = PartitionId, R8 = VpIndex | HV_INPUT_VTL << 32.
    assert_eq!(regs.pairs[0], [7, 3 | (0x10 << 32)]);
    for (i, e) in list.iter().enumerate() {
        // XMM(2i): the name in the low dword, the reserved bytes zero.
        assert_eq!(
            regs.pairs[1 + 2 * i],
            [u64::from(e.name.0), 0],
            "element {i}"
        );
        // XMM(2i+1): the value, low qword first.
        assert_eq!(
            regs.pairs[2 + 2 * i],
            [e.value.low(), e.value.high()],
            "element {i}"
        );
    }

    let one = fast_input(7, 3, vtl, &list[..1]);
    assert_eq!(one.pairs[..3], regs.pairs[..3]);
    assert!(one.pairs[3..].iter().all(|p| *p == [0, 0]));
}

#[test]
fn fast_form_sends_the_input_afresh_on_each_reissue() {
    let mut model = Model::new(1);
    let list = elements(3);
    write_self_fast(&mut model, &list).unwrap();
    let shape: Vec<(u16, u16, bool)> = model
        .calls
        .iter()
        .map(|c| (c.count, c.start, c.fast))
        .collect();
    assert_eq!(shape, [(3, 0, true), (3, 1, true), (3, 2, true)]);
    assert!(model.calls.iter().all(|c| c.head == [u64::MAX, 0]));
    assert_eq!(model.written, applied(&list));
}

#[test]
fn fast_form_reports_the_failing_element() {
    let mut list = elements(3);
    list[2].value = REFUSED;
    let mut model = Model::new(7);
    assert_eq!(
        write_self_fast(&mut model, &list),
        Err(SetError::Failed {
            status: HvStatus::INVALID_REGISTER_VALUE,
            reps_completed: 2,
            index: 2
        })
    );
    assert_eq!(model.written, applied(&list[..2]));
}

#[test]
fn fast_form_refuses_more_than_three_elements() {
    let mut model = Model::new(7);
    assert_eq!(
        write_self_fast(&mut model, &elements(4)),
        Err(SetError::TooManyForFast { count: 4 })
    );
    assert!(model.calls.is_empty());
}

#[test]
fn fast_form_needs_the_xmm_input_bit_only() {
    let mut model = Model::new(7);
    model.features.features_edx = hvcall_abi::cpuid::XMM_FAST_OUTPUT_EDX;
    assert_eq!(
        write_self_fast(&mut model, &elements(1)),
        Err(SetError::FastNotAdvertised)
    );
    assert!(model.calls.is_empty());

    model.features.features_edx = hvcall_abi::cpuid::XMM_FAST_INPUT_EDX;
    write_self_fast(&mut model, &elements(1)).unwrap();
    assert_eq!(model.written, applied(&elements(1)));
}
