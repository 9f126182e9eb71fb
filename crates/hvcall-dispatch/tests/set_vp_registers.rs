//! HvCallSetVpRegisters (0x0051), contract §8, in every calling
//! convention and form, against the reference model: the steps that
//! differ from 0x0050 (5b, 5c, 5d–5f for the input list only, 8a–8d), the
//! order of writes, continuation (§2) and a backend that does not write
//! (step 4).

mod common;

use hvcall_abi::name::{arm64, common as names_common, x64};
use hvcall_abi::{Arch, HvError, HvRegisterName, HvRegisterValue, HvStatus, SetVpRegistersElement};
use hvcall_dispatch::registers::RegisterFile;
use hvcall_dispatch::{
    dispatch, CallContext, Caller, Convention, DispatchConfig, GetVpRegisters, Offers, Outcome,
    PartitionInfo, Partitions, ReadRegisters, SetVpRegisters, SnapshotRequest, SourceError, Target,
    VpState, WriteFailure, WriteRegisters,
};
use hvcall_model::{GuestRam, Model, VM_PARTITION};
use zerocopy::IntoBytes;

use common::*;

/// A 0x0051 control word.
fn set_control(fast: bool, n: u16, s: u16) -> u64 {
    (control(fast, n, s) & !0xFFFF) | 0x51
}

/// Registers every convention may write on itself in every form (none is
/// a hypercall register of its convention, step 8d; RBX is one for 32-bit
/// callers), all in the standard model.
fn writable(arch: Arch) -> [HvRegisterName; 3] {
    match arch {
        Arch::X64 => [x64::R12, x64::R13, x64::CR3],
        Arch::Arm64 => [arm64::X19, arm64::X20, arm64::X28],
    }
}

fn value(i: u64) -> HvRegisterValue {
    HvRegisterValue::from_parts(0x5E7_0000 + i, 0xABCD_0000 + i)
}

fn input(partition: u64, vp: u32, elements: &[SetVpRegistersElement]) -> Vec<u8> {
    let mut v = header(partition, vp, 0).to_vec();
    for e in elements {
        v.extend_from_slice(e.as_bytes());
    }
    v
}

/// One 0x0051 call.
struct Set {
    conv: Convention,
    form: Form,
    model: Model,
    ram: GuestRam,
    regs: RegisterFile,
    state: VpState<hvcall_model::ModelSnapshot>,
    config: DispatchConfig,
}

impl Set {
    fn new(conv: Convention, form: Form) -> Self {
        Self {
            conv,
            form,
            model: Model::standard(arch(conv)),
            ram: standard_ram(),
            regs: junk_regs(),
            state: VpState::new(),
            config: DispatchConfig::default(),
        }
    }

    /// Places a call of `elements` from `start` for (partition, vp).
    fn call(&mut self, partition: u64, vp: u32, start: u16, elements: &[SetVpRegistersElement]) {
        let bytes = input(partition, vp, elements);
        let n = elements.len() as u16;
        let control = set_control(self.form == Form::Fast, n, start);
        if self.form == Form::Memory {
            self.ram.poke(IN_GPA, &bytes).unwrap();
        }
        place(
            self.conv,
            &mut self.regs,
            control,
            self.form,
            &bytes,
            IN_GPA,
            OUT_GPA,
        );
    }

    /// Enters until the call is no longer continued; the last outcome and
    /// the number of entries.
    fn run(&mut self) -> (Outcome, usize) {
        let ctx = CallContext::new(self.conv, true, IP);
        for entries in 1..=300 {
            let out = dispatch(
                &ctx,
                &mut self.regs,
                &mut self.ram,
                &mut self.model,
                &mut self.state,
                &self.config,
            )
            .unwrap_or_else(|never| match never {});
            if out != Outcome::Continue {
                return (out, entries);
            }
        }
        panic!("a continued call never completed");
    }

    fn result(&self) -> (HvStatus, u64) {
        let r = result_of(self.conv, &self.regs);
        (HvStatus((r & 0xFFFF) as u16), (r >> 32) & 0xFFF)
    }

    fn reg(&self, vp: u32, name: HvRegisterName) -> Option<HvRegisterValue> {
        self.model
            .vp(VM_PARTITION, vp)?
            .register(self.model.arch(), 0, name)
    }
}

/// Every convention and form in which `n` elements fit.
fn set_combos(n: usize) -> Vec<(Convention, Form)> {
    let mut v = Vec::new();
    for c in CONVENTIONS {
        v.push((c, Form::Memory));
        if c != Convention::X86 && n <= 3 {
            v.push((c, Form::Fast));
        }
    }
    v
}

#[test]
fn section_8_elements_are_written_in_order_in_every_abi_and_form() {
    for (conv, form) in set_combos(3) {
        let mut s = Set::new(conv, form);
        let names = writable(arch(conv));
        // The same register twice: the later element wins.
        let elements = [
            SetVpRegistersElement::new(names[0], value(1)),
            SetVpRegistersElement::new(names[1], value(2)),
            SetVpRegistersElement::new(names[0], value(3)),
        ];
        s.call(SELF_PARTITION, SELF_VP, 0, &elements);
        let before = s.regs.clone();
        let (out, _) = s.run();
        assert_eq!(out, Outcome::Complete, "{conv:?} {form:?}");
        assert_eq!(s.result(), (HvStatus::SUCCESS, 3), "{conv:?} {form:?}");
        assert_eq!(s.reg(0, names[0]), Some(value(3)), "{conv:?} {form:?}");
        assert_eq!(s.reg(0, names[1]), Some(value(2)), "{conv:?} {form:?}");
        assert_eq!(s.model.registers_written(), 3);
        // No output: only the result (and, for a continued call, the
        // control) register may change.
        let mut after = s.regs.clone();
        let r = result_regs(conv);
        for reg in r {
            set_reg(&mut after, reg, get_reg(&before, reg));
        }
        assert_eq!(
            after, before,
            "{conv:?} {form:?}: a register other than the result changed"
        );
    }
}

/// Copies one register of the file.
fn set_reg(regs: &mut RegisterFile, r: Reg, v: u128) {
    match r {
        Reg::Gpr(i) => regs.gprs[i] = v as u64,
        Reg::Vector(i) => regs.vectors[i] = v,
    }
}

#[test]
fn step_8a_reserved_bytes_end_the_call_at_that_element() {
    for (conv, form) in set_combos(3) {
        let mut s = Set::new(conv, form);
        let names = writable(arch(conv));
        let mut bad = SetVpRegistersElement::new(names[1], value(2));
        bad.reserved[11] = 1;
        let elements = [
            SetVpRegistersElement::new(names[0], value(1)),
            bad,
            SetVpRegistersElement::new(names[2], value(3)),
        ];
        let (before1, before2) = (s.reg(0, names[1]), s.reg(0, names[2]));
        s.call(SELF_PARTITION, SELF_VP, 0, &elements);
        s.run();
        assert_eq!(
            s.result(),
            (HvStatus::INVALID_PARAMETER, 1),
            "{conv:?} {form:?}"
        );
        assert_eq!(
            s.reg(0, names[0]),
            Some(value(1)),
            "element 0 stays written"
        );
        assert_eq!((s.reg(0, names[1]), s.reg(0, names[2])), (before1, before2));
    }
}

#[test]
fn step_8b_unknown_and_read_only_names_are_invalid_parameter() {
    for (conv, form) in set_combos(2) {
        let names = writable(arch(conv));
        for refused in [HvRegisterName(UNKNOWN_NAME), names_common::VP_INDEX] {
            let mut s = Set::new(conv, form);
            // VpIndex exists in this model (so it is refused as read-only,
            // not as unknown).
            s.model
                .set_register(VM_PARTITION, 0, 0, names_common::VP_INDEX, value(0));
            let elements = [
                SetVpRegistersElement::new(names[0], value(1)),
                SetVpRegistersElement::new(refused, value(2)),
            ];
            s.call(SELF_PARTITION, SELF_VP, 0, &elements);
            s.run();
            assert_eq!(
                s.result(),
                (HvStatus::INVALID_PARAMETER, 1),
                "{conv:?} {form:?} {refused:?}"
            );
            assert_eq!(s.reg(0, names[0]), Some(value(1)));
            assert_eq!(s.reg(0, names_common::VP_INDEX), Some(value(0)));
        }
    }
}

/// The reference model as a backend that refuses one value (as KVM
/// refuses a CR0 without PE but with PG): writes up to the element holding
/// it, then INVALID_REGISTER_VALUE (step 8c).
struct Picky<'a> {
    model: &'a mut Model,
    refused: HvRegisterValue,
}

impl Partitions for Picky<'_> {
    fn caller(&self) -> Caller {
        self.model.caller()
    }
    fn partition(&self, partition_id: u64) -> Option<PartitionInfo> {
        self.model.partition(partition_id)
    }
    fn enabled_vtls(&self, partition_id: u64, vp_index: u32) -> u16 {
        self.model.enabled_vtls(partition_id, vp_index)
    }
}

impl Offers for Picky<'_> {
    type Calls = (GetVpRegisters, SetVpRegisters);
}

impl ReadRegisters for Picky<'_> {
    type Snapshot = hvcall_model::ModelSnapshot;
    type Error = std::convert::Infallible;
    fn snapshot(
        &mut self,
        request: &SnapshotRequest<'_>,
    ) -> Result<Self::Snapshot, SourceError<Self::Error>> {
        self.model.snapshot(request)
    }
    fn read(
        &mut self,
        snapshot: &mut Self::Snapshot,
        name: HvRegisterName,
    ) -> Result<HvRegisterValue, SourceError<Self::Error>> {
        self.model.read(snapshot, name)
    }
}

impl WriteRegisters for Picky<'_> {
    fn write(
        &mut self,
        target: &Target,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), WriteFailure<Self::Error>> {
        let bad = elements.iter().position(|e| e.value == self.refused);
        let good = &elements[..bad.unwrap_or(elements.len())];
        self.model.write(target, good)?;
        match bad {
            Some(applied) => Err(WriteFailure {
                applied,
                error: SourceError::Hv(HvError::INVALID_REGISTER_VALUE),
            }),
            None => Ok(()),
        }
    }
}

#[test]
fn step_8c_a_value_the_backend_refuses_ends_the_call_at_that_element() {
    for (conv, form) in set_combos(3) {
        for max in [1, 256] {
            let mut s = Set::new(conv, form);
            let names = writable(arch(conv));
            let before = s.reg(0, names[2]);
            let elements = [
                SetVpRegistersElement::new(names[0], value(1)),
                SetVpRegistersElement::new(names[1], value(0xBAD)),
                SetVpRegistersElement::new(names[2], value(3)),
            ];
            s.call(SELF_PARTITION, SELF_VP, 0, &elements);
            let ctx = CallContext::new(conv, true, IP);
            let config = DispatchConfig::default().with_max_reps_per_entry(max);
            let mut picky = Picky {
                model: &mut s.model,
                refused: value(0xBAD),
            };
            let mut entries = 0;
            while dispatch(
                &ctx,
                &mut s.regs,
                &mut s.ram,
                &mut picky,
                &mut s.state,
                &config,
            )
            .unwrap_or_else(|never| match never {})
                == Outcome::Continue
            {
                entries += 1;
                assert!(entries < 10, "a continued call never completed");
            }
            assert_eq!(
                s.result(),
                (HvStatus::INVALID_REGISTER_VALUE, 1),
                "{conv:?} {form:?} K = {max}"
            );
            assert_eq!(
                s.reg(0, names[0]),
                Some(value(1)),
                "element 0 stays written"
            );
            assert_ne!(s.reg(0, names[1]), Some(value(0xBAD)), "the refused value");
            assert_eq!(s.reg(0, names[2]), before, "element 2 is not written");
        }
    }
}

#[test]
fn step_8d_the_callers_own_hypercall_registers_are_refused() {
    let cases: [(Convention, Form, HvRegisterName); 7] = [
        (Convention::X64, Form::Memory, x64::RCX),
        (Convention::X64, Form::Memory, x64::RIP),
        (Convention::X64, Form::Fast, x64::XMM1),
        (Convention::X86, Form::Memory, x64::RSI),
        (Convention::Arm64Hvc1, Form::Memory, arm64::X2),
        (Convention::Arm64Smccc, Form::Fast, arm64::X9),
        (Convention::Arm64Smccc, Form::Memory, arm64::PC),
    ];
    for (conv, form, refused) in cases {
        let mut s = Set::new(conv, form);
        let names = writable(arch(conv));
        let elements = [
            SetVpRegistersElement::new(names[0], value(1)),
            SetVpRegistersElement::new(refused, value(2)),
        ];
        let before = s.reg(0, refused);
        s.call(SELF_PARTITION, SELF_VP, 0, &elements);
        s.run();
        assert_eq!(
            s.result(),
            (HvStatus::INVALID_PARAMETER, 1),
            "{conv:?} {form:?}"
        );
        assert_eq!(s.reg(0, refused), before, "{conv:?} {form:?}");

        // Another VP's same register is an ordinary write.
        let mut s = Set::new(conv, form);
        s.model.set_register(VM_PARTITION, 1, 0, refused, value(9));
        s.call(SELF_PARTITION, 1, 0, &elements);
        s.run();
        assert_eq!(
            s.result(),
            (HvStatus::SUCCESS, 2),
            "{conv:?} {form:?} on VP1"
        );
        assert_eq!(s.reg(1, refused), Some(value(2)));
    }
}

#[test]
fn step_5c_fast_set_fits_three_elements_and_never_for_32_bit_callers() {
    for conv in [
        Convention::X64,
        Convention::Arm64Hvc1,
        Convention::Arm64Smccc,
    ] {
        let mut s = Set::new(conv, Form::Fast);
        let names = writable(arch(conv));
        let four: Vec<_> = (0..4)
            .map(|i| SetVpRegistersElement::new(names[i % 3], value(i as u64)))
            .collect();
        s.call(SELF_PARTITION, SELF_VP, 0, &four);
        s.run();
        assert_eq!(
            s.result(),
            (HvStatus::INVALID_HYPERCALL_INPUT, 0),
            "{conv:?}"
        );
        assert_eq!(s.model.registers_written(), 0);
    }
    let mut s = Set::new(Convention::X86, Form::Fast);
    let one = [SetVpRegistersElement::new(x64::RBX, value(1))];
    s.call(SELF_PARTITION, SELF_VP, 0, &one);
    s.run();
    assert_eq!(s.result(), (HvStatus::INVALID_HYPERCALL_INPUT, 0));
}

#[test]
fn step_5b_fast_set_without_the_xmm_input_bit_is_ud() {
    let mut s = Set::new(Convention::X64, Form::Fast);
    s.model = hvcall_model::Model::builder(Arch::X64)
        .partition(VM_PARTITION, hvcall_model::ROOT_PARTITION, 2)
        .xmm_fast(VM_PARTITION, false, true)
        .register(VM_PARTITION, 0, 0, x64::RBX, value(0))
        .caller(VM_PARTITION, 0)
        .build();
    let one = [SetVpRegistersElement::new(x64::RBX, value(1))];
    s.call(SELF_PARTITION, SELF_VP, 0, &one);
    let before = s.regs.clone();
    let (out, _) = s.run();
    assert_eq!(out, Outcome::InjectUndefined);
    assert_eq!(s.regs, before);
    assert_eq!(s.reg(0, x64::RBX), Some(value(0)));
}

#[test]
fn steps_5d_to_5f_check_the_input_list_only() {
    for conv in CONVENTIONS {
        let names = writable(arch(conv));
        let one = [SetVpRegistersElement::new(names[0], value(1))];
        // Output GPA misaligned and outside RAM: ignored.
        let mut s = Set::new(conv, Form::Memory);
        s.call(SELF_PARTITION, SELF_VP, 0, &one);
        let bytes = input(SELF_PARTITION, SELF_VP, &one);
        let control = set_control(false, 1, 0);
        place(
            conv,
            &mut s.regs,
            control,
            Form::Memory,
            &bytes,
            IN_GPA,
            HOLE_GPA + 3,
        );
        s.run();
        assert_eq!(s.result(), (HvStatus::SUCCESS, 1), "{conv:?}");
        // An input list that crosses a page: 16 + 32 bytes from 0xFF0 + page.
        let mut s = Set::new(conv, Form::Memory);
        let at = IN_GPA + 0xFE0;
        s.ram.poke(at, &bytes).unwrap();
        place(
            conv,
            &mut s.regs,
            control,
            Form::Memory,
            &bytes,
            at,
            OUT_GPA,
        );
        s.run();
        assert_eq!(s.result(), (HvStatus::INVALID_ALIGNMENT, 0), "{conv:?}");
        assert_eq!(s.model.registers_written(), 0);
    }
}

#[test]
fn step_6e_a_self_write_without_access_vp_registers_is_access_denied() {
    let mut s = Set::new(Convention::X64, Form::Memory);
    s.model = hvcall_model::Model::builder(Arch::X64)
        .partition(VM_PARTITION, hvcall_model::ROOT_PARTITION, 2)
        .privileges(VM_PARTITION, 0)
        .register(VM_PARTITION, 0, 0, x64::RBX, value(0))
        .caller(VM_PARTITION, 0)
        .build();
    let one = [SetVpRegistersElement::new(x64::RBX, value(1))];
    s.call(SELF_PARTITION, SELF_VP, 0, &one);
    s.run();
    assert_eq!(s.result(), (HvStatus::ACCESS_DENIED, 0));
    assert_eq!(s.reg(0, x64::RBX), Some(value(0)));
}

#[test]
fn section_2_a_continued_set_leaves_the_same_state_as_one_entry() {
    for (conv, form) in set_combos(3) {
        let names = writable(arch(conv));
        let elements: Vec<_> = (0..3)
            .map(|i| SetVpRegistersElement::new(names[i], value(10 + i as u64)))
            .collect();
        let mut whole = Set::new(conv, form);
        whole.call(SELF_PARTITION, 1, 1, &elements);
        let (_, entries) = whole.run();
        assert_eq!(entries, 1);
        let mut split = Set::new(conv, form);
        split.config = DispatchConfig::default().with_max_reps_per_entry(1);
        split.call(SELF_PARTITION, 1, 1, &elements);
        let (out, entries) = split.run();
        assert_eq!((out, entries), (Outcome::Complete, 2), "{conv:?} {form:?}");
        assert_eq!(split.result(), (HvStatus::SUCCESS, 3));
        assert_eq!(split.regs, whole.regs, "{conv:?} {form:?}: registers");
        assert_eq!(split.model, whole.model, "{conv:?} {form:?}: VP state");
        assert_eq!(
            split.reg(1, names[0]),
            whole.reg(1, names[0]),
            "element 0 before s untouched"
        );
        assert!(!split.state.is_pending());
    }
}

#[test]
fn step_4_set_is_an_unimplemented_code_for_a_backend_that_does_not_write() {
    for (conv, form) in set_combos(1) {
        let mut s = Set::new(conv, form);
        let mut model = hvcall_model::Model::builder(arch(conv))
            .partition(VM_PARTITION, hvcall_model::ROOT_PARTITION, 2)
            .caller(VM_PARTITION, 0)
            .build();
        let names = writable(arch(conv));
        s.call(
            SELF_PARTITION,
            SELF_VP,
            0,
            &[SetVpRegistersElement::new(names[0], value(1))],
        );
        // A backend that lists 0x0050 only.
        let mut readonly = hvcall_model::ReadOnly(&mut model);
        let ctx = CallContext::new(s.conv, true, IP);
        let (regs, ram, state) = (&mut s.regs, &mut s.ram, &mut s.state);
        dispatch(&ctx, regs, ram, &mut readonly, state, &s.config)
            .unwrap_or_else(|never| match never {});
        assert_eq!(
            s.result(),
            (HvStatus::INVALID_HYPERCALL_CODE, 0),
            "{conv:?} {form:?}"
        );
    }
}

/// One generated 0x0051 call: convention, fast form, target VP, start,
/// and elements (kind, value, reserved bytes set) drawn from writable,
/// read-only and unknown names.
type SetScenario = (Convention, bool, u32, u16, Vec<(u8, u64, bool)>);

fn set_scenario() -> impl proptest::strategy::Strategy<Value = SetScenario> {
    use proptest::prelude::*;
    (
        0usize..4,
        any::<bool>(),
        0u32..2,
        0u16..4,
        proptest::collection::vec(
            (0u8..6, any::<u64>(), proptest::bool::weighted(0.05)),
            1..40,
        ),
    )
        .prop_map(|(c, fast, vp, start, elements)| (CONVENTIONS[c], fast, vp, start, elements))
}

/// The element `kind` stands for: three writable names, one read-only,
/// one unknown, and RCX/X1 (refused on oneself by step 8d).
fn element(arch: Arch, kind: u8, v: u64, reserved: bool) -> SetVpRegistersElement {
    let w = writable(arch);
    let name = match kind {
        0..=2 => w[usize::from(kind)],
        3 => names_common::VP_INDEX,
        4 => HvRegisterName(UNKNOWN_NAME),
        _ => match arch {
            Arch::X64 => x64::RCX,
            Arch::Arm64 => arm64::X1,
        },
    };
    let mut e = SetVpRegistersElement::new(name, HvRegisterValue::from_parts(v, !v));
    if reserved {
        e.reserved[5] = 0x80;
    }
    e
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

    /// §2 for 0x0051: with any work budget a call leaves the same result,
    /// registers and VP state as one uninterrupted entry.
    #[test]
    fn section_2_prop_a_split_set_gives_the_same_state(
        (conv, fast, vp, start, raw) in set_scenario(),
        budget in 1u16..6,
    ) {
        let arch = arch(conv);
        let elements: Vec<_> = raw.iter().map(|&(k, v, r)| element(arch, k, v, r)).collect();
        let form = if fast { Form::Fast } else { Form::Memory };
        let start = start.min(elements.len() as u16 - 1);
        let run = |k: u16| {
            let mut s = Set::new(conv, form);
            s.model.set_register(VM_PARTITION, vp, 0, names_common::VP_INDEX, value(0));
            s.config = DispatchConfig::default().with_max_reps_per_entry(k);
            s.call(SELF_PARTITION, vp, start, &elements);
            let (out, entries) = s.run();
            (out, entries, s.regs.clone(), s.model.clone(), s.result())
        };
        let (out1, _, regs1, model1, result1) = run(256);
        let (out2, entries2, regs2, model2, result2) = run(budget);
        proptest::prop_assert_eq!(out1, out2);
        proptest::prop_assert_eq!(result1, result2);
        proptest::prop_assert_eq!(regs1, regs2);
        // The model's counters differ (entries); its VP state must not.
        for p in [VM_PARTITION] {
            for v in 0..2 {
                proptest::prop_assert_eq!(model1.vp(p, v), model2.vp(p, v));
            }
        }
        proptest::prop_assert!(entries2 >= 1);
    }
}
