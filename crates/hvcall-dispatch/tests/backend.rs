//! The typed backend API: host failures end a call without a
//! status, the snapshot request says when a call's own output precedes its
//! reads (contract §5 with §2), [`Backend`] pairs separate halves, and the
//! typed host read ([`read_registers`]).

mod common;

use hvcall_abi::{HvError, HvRegisterName, HvRegisterValue};
use hvcall_dispatch::{
    dispatch, read_registers, Backend, CallContext, Convention, DispatchConfig, GetVpRegisters,
    HostError, HostTarget, Offers, Outcome, ReadRegisters, SnapshotRequest, SourceError, VpState,
};
use hvcall_model::{Model, ModelSnapshot, VM_PARTITION};

use common::*;

/// The model's registers, recording every snapshot request and failing on
/// the host side where told to.
struct Recording {
    model: Model,
    /// `output_precedes_reads` of every snapshot request.
    requests: Vec<bool>,
    fail_snapshot: bool,
    /// Fail the read of this many-th element (0-based) of any call.
    fail_read: Option<usize>,
    reads: usize,
}

/// The host failure of [`Recording`].
#[derive(Debug, PartialEq, Eq)]
struct Gone;

impl Offers for Recording {
    type Calls = (GetVpRegisters,);
}

impl ReadRegisters for Recording {
    type Snapshot = ModelSnapshot;
    type Error = Gone;

    fn snapshot(
        &mut self,
        request: &SnapshotRequest<'_>,
    ) -> Result<ModelSnapshot, SourceError<Gone>> {
        self.requests.push(request.output_precedes_reads);
        if self.fail_snapshot {
            return Err(SourceError::Host(Gone));
        }
        self.model.snapshot(request).map_err(|e| match e {
            SourceError::Hv(e) => SourceError::Hv(e),
            SourceError::Host(never) => match never {},
        })
    }

    fn read(
        &mut self,
        snapshot: &mut ModelSnapshot,
        name: HvRegisterName,
    ) -> Result<HvRegisterValue, SourceError<Gone>> {
        self.reads += 1;
        if self.fail_read == Some(self.reads - 1) {
            return Err(SourceError::Host(Gone));
        }
        self.model.read(snapshot, name).map_err(|e| match e {
            SourceError::Hv(e) => SourceError::Hv(e),
            SourceError::Host(never) => match never {},
        })
    }
}

fn recording() -> Recording {
    Recording {
        model: Model::standard(arch(Convention::X64)),
        requests: Vec::new(),
        fail_snapshot: false,
        fail_read: None,
        reads: 0,
    }
}

/// Runs an x64 GetVpRegisters of `n` own registers in `form` with work
/// budget `k` until it completes or fails; returns every outcome and the
/// final registers.
fn run(
    source: &mut Recording,
    form: Form,
    n: u16,
    k: u16,
    state: &mut VpState<ModelSnapshot>,
) -> (Vec<Result<Outcome, Gone>>, hvcall_dispatch::RegisterFile) {
    let conv = Convention::X64;
    let partitions = Model::standard(arch(conv));
    let mut ram = standard_ram();
    let input = input_bytes(
        &header(SELF_PARTITION, SELF_VP, 0),
        &names(conv, usize::from(n)),
    );
    ram.poke(IN_GPA, &input).unwrap();
    let mut regs = junk_regs();
    place(
        conv,
        &mut regs,
        control(form == Form::Fast, n, 0),
        form,
        &input,
        IN_GPA,
        OUT_GPA,
    );
    let ctx = CallContext::new(conv, true, IP);
    let config = DispatchConfig::default().with_max_reps_per_entry(k);
    let mut backend = Backend {
        partitions: &partitions,
        registers: source,
    };
    let mut outcomes = Vec::new();
    for _ in 0..=n {
        let out = dispatch(&ctx, &mut regs, &mut ram, &mut backend, state, &config);
        outcomes.push(out);
        if outcomes.last() != Some(&Ok(Outcome::Continue)) {
            break;
        }
    }
    (outcomes, regs)
}

#[test]
fn section_5_only_a_fast_call_spanning_entries_asks_for_its_registers_at_the_call() {
    for (form, n, k, want) in [
        (Form::Fast, 2, 1, true),
        (Form::Fast, 4, 3, true),
        (Form::Fast, 4, 4, false),
        (Form::Fast, 1, 1, false),
        (Form::Fast, 4, 256, false),
        (Form::Memory, 8, 1, false),
    ] {
        let mut source = recording();
        let mut state = VpState::new();
        let (outcomes, _) = run(&mut source, form, n, k, &mut state);
        assert_eq!(
            outcomes.last(),
            Some(&Ok(Outcome::Complete)),
            "{form:?} n {n} K {k}"
        );
        assert_eq!(
            source.requests,
            [want],
            "{form:?} n {n} K {k}: one snapshot per call"
        );
    }
}

#[test]
fn a_host_failure_in_the_snapshot_ends_the_call_without_a_status() {
    let mut source = recording();
    source.fail_snapshot = true;
    let mut state = VpState::new();
    let (outcomes, regs) = run(&mut source, Form::Memory, 3, 256, &mut state);
    assert_eq!(outcomes, [Err(Gone)]);
    assert_eq!(regs.gprs[RAX], junk_regs().gprs[RAX], "no result written");
    assert!(!state.is_pending());
}

#[test]
fn a_host_failure_in_a_continued_call_drops_its_state() {
    let mut source = recording();
    source.fail_read = Some(1);
    let mut state = VpState::new();
    let (outcomes, regs) = run(&mut source, Form::Memory, 3, 1, &mut state);
    assert_eq!(outcomes, [Ok(Outcome::Continue), Err(Gone)]);
    assert_eq!(regs.gprs[RAX], junk_regs().gprs[RAX], "no result written");
    assert!(
        !state.is_pending(),
        "the failed call's continuation is gone"
    );
}

#[test]
fn a_guest_status_from_the_source_is_the_calls_result() {
    let mut source = recording();
    let partitions = Model::standard(arch(Convention::X64));
    let mut backend = Backend {
        partitions: &partitions,
        registers: &mut source,
    };
    // Name 0 is no register: INVALID_PARAMETER at element 1.
    let names = [HvRegisterName(0x2_0000), HvRegisterName(0)];
    let mut values = [HvRegisterValue::default(); 2];
    let got = read_registers(
        &mut backend,
        &HostTarget::new(VM_PARTITION, 1),
        &names,
        &mut values,
    );
    assert_eq!(
        got,
        Err(HostError::Hv {
            error: HvError::INVALID_PARAMETER,
            index: 1
        })
    );
    assert_ne!(values[0], HvRegisterValue::default(), "element 0 was read");
}

#[test]
fn a_host_read_takes_any_number_of_names_from_one_snapshot() {
    let root = Model::builder(arch(Convention::X64))
        .partition(VM_PARTITION, hvcall_model::ROOT_PARTITION, 2)
        .caller(hvcall_model::ROOT_PARTITION, 0)
        .build();
    let mut source = recording();
    let mut backend = Backend {
        partitions: &root,
        registers: &mut source,
    };
    let one = names(Convention::X64, 1)[0];
    let many = vec![HvRegisterName(one); 1000];
    let mut values = vec![HvRegisterValue::default(); 1000];
    let read = HostTarget::new(VM_PARTITION, 1);
    read_registers(&mut backend, &read, &many, &mut values).unwrap();
    assert!(values
        .iter()
        .all(|v| *v == values[0] && *v != HvRegisterValue::default()));
    assert_eq!(source.requests.len(), 1, "one snapshot for 1000 names");

    let mut short = vec![HvRegisterValue::default(); 3];
    let mut backend = Backend {
        partitions: &root,
        registers: &mut source,
    };
    assert_eq!(
        read_registers(&mut backend, &read, &many, &mut short),
        Err(HostError::LengthMismatch {
            names: 1000,
            values: 3
        })
    );
    source.fail_snapshot = true;
    let mut backend = Backend {
        partitions: &root,
        registers: &mut source,
    };
    assert_eq!(
        read_registers(&mut backend, &read, &many, &mut values),
        Err(HostError::Host(Gone))
    );
    // The same checks as a guest's call: the root may read its child, not
    // a VP that does not exist.
    let missing = HostTarget::new(VM_PARTITION, 99);
    source.fail_snapshot = false;
    let mut backend = Backend {
        partitions: &root,
        registers: &mut source,
    };
    assert_eq!(
        read_registers(&mut backend, &missing, &many, &mut values),
        Err(HostError::Hv {
            error: HvError::INVALID_VP_INDEX,
            index: 0
        })
    );
}

#[test]
fn a_host_write_takes_the_checks_of_a_guest_call_and_one_batch() {
    use hvcall_abi::name::x64;
    use hvcall_abi::SetVpRegistersElement;
    use hvcall_dispatch::write_registers;

    let mut root = Model::builder(arch(Convention::X64))
        .partition(VM_PARTITION, hvcall_model::ROOT_PARTITION, 2)
        .register(VM_PARTITION, 1, 0, x64::RBX, HvRegisterValue::from(1u8))
        .register(VM_PARTITION, 1, 0, x64::RIP, HvRegisterValue::from(2u8))
        .caller(hvcall_model::ROOT_PARTITION, 0)
        .build();
    let vp1 = HostTarget::new(VM_PARTITION, 1);
    let value = |v: u64| HvRegisterValue::from(v);
    // The host may write a VP's RIP (it is not a VP making a call: no 8d).
    let writes = [
        SetVpRegistersElement::new(x64::RBX, value(0x10)),
        SetVpRegistersElement::new(x64::RIP, value(0x20)),
    ];
    write_registers(&mut root, &vp1, &writes).unwrap();
    let reg = |m: &Model, n| m.vp(VM_PARTITION, 1).unwrap().register(m.arch(), 0, n);
    assert_eq!(reg(&root, x64::RIP), Some(value(0x20)));
    assert_eq!(root.registers_written(), 2);

    // Reserved bytes: the elements before are written, that one is not.
    let mut bad = SetVpRegistersElement::new(x64::RIP, value(0x30));
    bad.reserved[0] = 1;
    let writes = [SetVpRegistersElement::new(x64::RBX, value(0x11)), bad];
    assert_eq!(
        write_registers(&mut root, &vp1, &writes),
        Err(HostError::Hv {
            error: HvError::INVALID_PARAMETER,
            index: 1
        })
    );
    assert_eq!(reg(&root, x64::RBX), Some(value(0x11)));
    assert_eq!(reg(&root, x64::RIP), Some(value(0x20)));

    // The target checks of a read apply.
    assert_eq!(
        write_registers(&mut root, &HostTarget::new(VM_PARTITION, 7), &writes),
        Err(HostError::Hv {
            error: HvError::INVALID_VP_INDEX,
            index: 0
        })
    );
    // A backend that does not write refuses every element.
    let mut model = Model::builder(arch(Convention::X64))
        .partition(VM_PARTITION, hvcall_model::ROOT_PARTITION, 2)
        .register(VM_PARTITION, 1, 0, x64::RBX, HvRegisterValue::from(1u8))
        .caller(hvcall_model::ROOT_PARTITION, 0)
        .build();
    let mut readonly = hvcall_model::ReadOnly(&mut model);
    assert_eq!(
        write_registers(&mut readonly, &vp1, &writes[..1]),
        Err(HostError::Hv {
            error: HvError::INVALID_PARAMETER,
            index: 0
        })
    );
}
