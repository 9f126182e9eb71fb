//! The engine every hypercall runs on, after steps 1–3 (docs/contract.md
//! §1): routing by call code to the calls a backend lists ([`CallList`],
//! step 4), and one shape per kind of call. A call module states its
//! types and its own work; the engine does the rest.
//!
//! - [`RepCall`] (wrapped as [`Rep`]): a rep call. The engine runs step 5a,
//!   locates and reads the input list (steps 5b–5f), lets the call check
//!   its header and keep what it needs (its target, a snapshot), then runs elements in
//!   slices of the work budget, parking the call in the VP's
//!   [`VpState`] between entries and resuming it on re-entry (§2).
//! - [`SimpleCall`] (wrapped as [`Simple`]): one input, one output, no reps.
//! - [`SwitchCall`] (wrapped as [`Switch`]): a call that ends by switching
//!   the caller to another VTL (VtlCall, VtlReturn).
//!
//! Adding a rep call is one module: a backend trait for its work, a unit
//! type implementing [`RepCall`] for every backend with that trait (code,
//! header, element, output size, `begin` for the header checks, `work` for
//! a slice of elements) and `pub type HvCallX = Rep<X>;`. A VMM offers it
//! by implementing the trait and adding `HvCallX` to its
//! [`Offers::Calls`]; the compiler refuses the list
//! if the trait is missing.

use hvcall_abi::vtl::Vtl;
use hvcall_abi::{HvError, HvRegisterValue, HvStatus, HypercallControl, HypercallResult};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::backend::{Caller, Offers, Partitions, ReadRegisters, SourceError};
use crate::checks::{check_reps, locate, Form};
use crate::convention::{CallContext, Convention};
use crate::end::{CallEnd, Kept, Progress};
use crate::input::InputPage;
use crate::memory::PartitionMemory;
use crate::pending::VpState;
use crate::registers::CallerRegisters;

/// One hypercall exit, as a call's handler receives it.
pub struct Entry<'a, R: ?Sized, M: ?Sized, H: Partitions + ReadRegisters + ?Sized> {
    pub(crate) ctx: &'a CallContext,
    pub(crate) control: HypercallControl,
    pub(crate) regs: &'a mut R,
    pub(crate) memory: &'a mut M,
    pub(crate) hv: &'a mut H,
    pub(crate) state: &'a mut VpState<H::Snapshot>,
    /// The work budget of one entry, in elements (at least 1).
    pub(crate) budget: u16,
}

/// A backend as [`dispatch`](crate::dispatch()) takes it: topology,
/// register reads and the calls it [`Offers`], each with its backend
/// trait. Implemented for every such type.
pub trait Hypervisor: Partitions + ReadRegisters {
    /// [`Offers::Calls`], known to be routable.
    type List: CallList<Self>;
}

impl<T: Partitions + ReadRegisters + Offers + ?Sized> Hypervisor for T
where
    T::Calls: CallList<T>,
{
    type List = T::Calls;
}

/// One entry of the list a backend offers ([`Offers::Calls`]): a
/// [`Rep`], [`Simple`] or [`Switch`] call.
pub trait Hypercall<H: Partitions + ReadRegisters + ?Sized> {
    /// The call code.
    const CODE: u16;
    /// Handle one entry (steps 1–4 passed).
    fn call<R, M>(entry: Entry<'_, R, M, H>) -> CallEnd<H::Error>
    where
        R: CallerRegisters + ?Sized,
        M: PartitionMemory + ?Sized;
}

/// The calls a backend offers: a tuple of [`Hypercall`]s (up to eight).
/// Step 4: a code not in it answers `HV_STATUS_INVALID_HYPERCALL_CODE`.
pub trait CallList<H: Partitions + ReadRegisters + ?Sized> {
    /// Run the listed call with `entry`'s code.
    fn route<R, M>(entry: Entry<'_, R, M, H>) -> CallEnd<H::Error>
    where
        R: CallerRegisters + ?Sized,
        M: PartitionMemory + ?Sized;
}

macro_rules! call_list {
    ($($call:ident),*) => {
        impl<H: Partitions + ReadRegisters + ?Sized, $($call),*> CallList<H> for ($($call,)*)
        where
            $($call: Hypercall<H>,)*
        {
            #[inline]
            fn route<R, M>(entry: Entry<'_, R, M, H>) -> CallEnd<H::Error>
            where
                R: CallerRegisters + ?Sized,
                M: PartitionMemory + ?Sized,
            {
                let code = entry.control.code();
                $(if code == $call::CODE {
                    return $call::call(entry);
                })*
                let _ = code;
                CallEnd::failed(HvError::INVALID_HYPERCALL_CODE, 0)
            }
        }
    };
}
call_list!();
call_list!(A);
call_list!(A, B);
call_list!(A, B, C);
call_list!(A, B, C, D);
call_list!(A, B, C, D, E);
call_list!(A, B, C, D, E, F);
call_list!(A, B, C, D, E, F, G);
call_list!(A, B, C, D, E, F, G, I);

/// The caller's side of one exit (its registers, guest memory, where the
/// lists are), as a rep call's work sees it.
pub struct Io<'a, R: ?Sized, M: ?Sized> {
    regs: &'a mut R,
    memory: &'a mut M,
    form: Form,
    convention: Convention,
    caller: Caller,
}

/// What [`Io`] gives a call's work, without naming its register and
/// memory types.
pub trait Exit {
    /// Guest memory.
    type Memory: PartitionMemory + ?Sized;
    /// Guest memory (the memory form's lists).
    fn memory(&mut self) -> &mut Self::Memory;
    /// The output list's GPA in the memory form; `None` in the fast form.
    fn output_gpa(&self) -> Option<u64>;
    /// Write output slot `index` of the fast form (nothing in the memory
    /// form).
    fn write_fast(&mut self, index: u16, value: &HvRegisterValue);
    /// The caller's calling convention.
    fn convention(&self) -> Convention;
    /// The calling VP.
    fn caller(&self) -> &Caller;
}

impl<R: CallerRegisters + ?Sized, M: PartitionMemory + ?Sized> Exit for Io<'_, R, M> {
    type Memory = M;
    fn memory(&mut self) -> &mut M {
        self.memory
    }
    fn output_gpa(&self) -> Option<u64> {
        match self.form {
            Form::Memory { output_gpa } => Some(output_gpa),
            Form::Fast(_) => None,
        }
    }
    fn write_fast(&mut self, index: u16, value: &HvRegisterValue) {
        if let Form::Fast(layout) = &self.form {
            layout.write_value(self.regs, usize::from(index), value);
        }
    }
    fn convention(&self) -> Convention {
        self.convention
    }
    fn caller(&self) -> &Caller {
        &self.caller
    }
}

/// The backend side of one slice of a rep call's elements.
pub struct Job<'a, H: ReadRegisters + ?Sized> {
    /// The backend.
    pub hv: &'a mut H,
    /// What the call keeps.
    pub kept: &'a mut Kept<H::Snapshot>,
    /// The index of the slice's first element.
    pub first: u16,
}

/// What a rep call's work returns.
pub type Work<E> = Result<(), Stop<E>>;

/// Why a rep call's work stopped before the end of its slice.
pub struct Stop<E> {
    /// The element that failed (the reps completed).
    pub index: u16,
    /// Why.
    pub error: SourceError<E>,
}

/// A rep call: its input header, element and output, and its work.
pub trait RepCall<H: Partitions + ReadRegisters + ?Sized> {
    /// The call code.
    const CODE: u16;
    /// The input list's header.
    type Header: FromBytes + KnownLayout + Immutable;
    /// One input element.
    type Element: FromBytes + IntoBytes + Immutable;
    /// Bytes of output per element (0: the call has no output list).
    const OUTPUT_SIZE: u64;
    /// The most elements one call can have (its lists fit one page).
    const MAX_ELEMENTS: u16;

    /// Bring elements read as little-endian to the host's order.
    fn from_le(elements: &mut [Self::Element]);

    /// Check the header (steps 6a–6i) and keep what the elements need.
    /// `elements` are those this call will process, in order;
    /// `output_precedes_reads` as in [`SnapshotRequest`](crate::SnapshotRequest).
    fn begin(
        hv: &mut H,
        caller: &Caller,
        header: &Self::Header,
        elements: &[Self::Element],
        output_precedes_reads: bool,
    ) -> Result<Kept<H::Snapshot>, SourceError<H::Error>>;

    /// Process `elements` (the first is element `job.first`) in order.
    fn work(job: Job<'_, H>, io: &mut impl Exit, elements: &[Self::Element]) -> Work<H::Error>;
}

/// Lists a [`RepCall`] in [`Offers::Calls`].
pub struct Rep<C>(core::marker::PhantomData<C>);

/// Bytes of the header of `C`.
const fn header_len<C: RepCall<H>, H: Partitions + ReadRegisters + ?Sized>() -> usize {
    core::mem::size_of::<C::Header>()
}

/// Bytes of `C`'s input and output lists for `count` elements.
fn list_lens<C: RepCall<H>, H: Partitions + ReadRegisters + ?Sized>(count: u16) -> (u64, u64) {
    let element = core::mem::size_of::<C::Element>() as u64;
    let input = header_len::<C, H>() as u64 + element * u64::from(count);
    (input, C::OUTPUT_SIZE * u64::from(count))
}

impl<H: Partitions + ReadRegisters + ?Sized, C: RepCall<H>> Hypercall<H> for Rep<C> {
    const CODE: u16 = C::CODE;

    #[inline]
    fn call<R, M>(e: Entry<'_, R, M, H>) -> CallEnd<H::Error>
    where
        R: CallerRegisters + ?Sized,
        M: PartitionMemory + ?Sized,
    {
        let (ctx, control, budget) = (e.ctx, e.control, e.budget);
        let (regs, memory, hv, state) = (e.regs, e.memory, e.hv, e.state);
        let caller = hv.caller();
        if let Some(mut pending) = state.take_reentry(ctx, control, regs, caller.vtl) {
            let mut io = Io {
                regs,
                memory,
                form: pending.form,
                convention: ctx.convention,
                caller,
            };
            let range = pending.next..control.rep_count();
            let progress = run::<C, _, _, H>(
                hv,
                &mut pending.kept,
                &mut io,
                &state.input,
                range,
                Some(budget),
            );
            return state.after_reentry(pending, progress);
        }
        let mut io = Io {
            regs,
            memory,
            form: Form::Memory { output_gpa: 0 },
            convention: ctx.convention,
            caller,
        };
        if state.is_pending() {
            // A call made while another is parked runs to completion in an
            // input of its own, so that the parked call keeps its state (§2
            // "any other hypercall made in between"). Rare: the zeroing of
            // this buffer is not on the common path.
            let mut input = InputPage::new();
            return match first_entry::<C, _, _, H>(ctx, control, &mut io, hv, &mut input, None) {
                First::End(end) => end,
                // Without a budget the run never stops; answer as a
                // completed-nothing call if it ever did.
                First::Stopped { next, .. } => CallEnd::failed(HvError::INVALID_PARAMETER, next),
            };
        }
        let budget = Some(budget);
        match first_entry::<C, _, _, H>(ctx, control, &mut io, hv, &mut state.input, budget) {
            First::End(end) => end,
            First::Stopped { kept, next } => {
                state.park_first(ctx, control, io.regs, io.form, caller.vtl, next, kept)
            }
        }
    }
}

/// How a first entry ended.
enum First<S, E> {
    /// The call ended (refused, failed or complete).
    End(CallEnd<E>),
    /// The budget ran out before element `next`.
    Stopped {
        /// What the call keeps.
        kept: Kept<S>,
        /// The next element.
        next: u16,
    },
}

/// A first entry: step 5a, the lists located and the input read into
/// `input` (steps 5b–5f, `io.form` set), the call's own checks, then
/// elements until the end or the budget.
#[inline]
fn first_entry<C, R, M, H>(
    ctx: &CallContext,
    control: HypercallControl,
    io: &mut Io<'_, R, M>,
    hv: &mut H,
    input: &mut InputPage,
    budget: Option<u16>,
) -> First<H::Snapshot, H::Error>
where
    C: RepCall<H>,
    R: CallerRegisters + ?Sized,
    M: PartitionMemory + ?Sized,
    H: Partitions + ReadRegisters + ?Sized,
{
    let (start, count) = (control.rep_start(), control.rep_count());
    if let Err(end) = check_reps(control) {
        return First::End(end);
    }
    let lens = list_lens::<C, H>(count);
    io.form = match locate(ctx, control, io.regs, io.memory, &io.caller, lens, input) {
        Ok(form) => form,
        Err(end) => return First::End(end),
    };
    let header = header_len::<C, H>();
    C::from_le(input.elements_mut(header, 0..count.min(C::MAX_ELEMENTS)));
    let Some(header_value) = input.header::<C::Header>() else {
        return First::End(CallEnd::failed(HvError::INVALID_HYPERCALL_INPUT, 0));
    };
    let elements = input.elements(header, C::MAX_ELEMENTS, start..count);
    let entry_budget = budget.unwrap_or(u16::MAX);
    let output_precedes_reads = io.form.is_fast() && count - start > entry_budget;
    let mut kept = match C::begin(
        hv,
        &io.caller,
        header_value,
        elements,
        output_precedes_reads,
    ) {
        Ok(kept) => kept,
        Err(e) => return First::End(CallEnd::source_failed(e, start)),
    };
    match run::<C, R, M, H>(hv, &mut kept, io, input, start..count, budget) {
        Progress::Done(result) => First::End(CallEnd::Result(result)),
        Progress::Stopped(next) => First::Stopped { kept, next },
        Progress::HostFailed(e) => First::End(CallEnd::HostFailed(e)),
    }
}

/// Elements `range` in order until one fails, the range ends or `budget`
/// elements were done in this entry (§2).
fn run<C, R, M, H>(
    hv: &mut H,
    kept: &mut Kept<H::Snapshot>,
    io: &mut Io<'_, R, M>,
    input: &InputPage,
    range: core::ops::Range<u16>,
    budget: Option<u16>,
) -> Progress<H::Error>
where
    C: RepCall<H>,
    R: CallerRegisters + ?Sized,
    M: PartitionMemory + ?Sized,
    H: Partitions + ReadRegisters + ?Sized,
{
    let count = range.end;
    // This entry's share, bounded once: no per-element budget check.
    let end = budget.map_or(count, |b| count.min(range.start.saturating_add(b)));
    let elements: &[C::Element] =
        input.elements(header_len::<C, H>(), C::MAX_ELEMENTS, range.start..end);
    if elements.len() != usize::from(end.saturating_sub(range.start)) {
        // Cannot happen (step 5e bounds every call to MAX_ELEMENTS);
        // answered like an unusable element rather than skipped.
        return Progress::Done(HypercallResult::of(
            HvStatus::INVALID_PARAMETER,
            range.start,
        ));
    }
    let job = Job {
        hv,
        kept,
        first: range.start,
    };
    match C::work(job, io, elements) {
        Err(Stop {
            index,
            error: SourceError::Hv(e),
        }) => Progress::Done(HypercallResult::of(e.status(), index)),
        Err(Stop {
            error: SourceError::Host(e),
            ..
        }) => Progress::HostFailed(e),
        Ok(()) if end < count => Progress::Stopped(end),
        Ok(()) => Progress::Done(HypercallResult::of(HvStatus::SUCCESS, count)),
    }
}

/// A simple call: one input, one output, no reps (step 5a: rep count,
/// rep start and variable header all zero).
pub trait SimpleCall<H: Partitions + ReadRegisters + ?Sized> {
    /// The call code.
    const CODE: u16;
    /// The input.
    type Input: FromBytes + KnownLayout + Immutable;
    /// The output (`()` for none).
    type Output: IntoBytes + Immutable;
    /// Do the call.
    fn call(
        hv: &mut H,
        caller: &Caller,
        input: &Self::Input,
    ) -> Result<Self::Output, SourceError<H::Error>>;
}

/// A call that ends by switching the caller to another VTL (VtlCall,
/// VtlReturn): like a [`SimpleCall`] without output, whose success names
/// the VTL the VP continues in.
pub trait SwitchCall<H: Partitions + ReadRegisters + ?Sized> {
    /// The call code.
    const CODE: u16;
    /// The input.
    type Input: FromBytes + KnownLayout + Immutable;
    /// Check the call and name the VTL to switch to.
    fn switch(
        hv: &mut H,
        caller: &Caller,
        input: &Self::Input,
    ) -> Result<Vtl, SourceError<H::Error>>;
}

/// Lists a [`SimpleCall`] in [`Offers::Calls`].
pub struct Simple<C>(core::marker::PhantomData<C>);

/// Lists a [`SwitchCall`] in [`Offers::Calls`].
pub struct Switch<C>(core::marker::PhantomData<C>);

impl<H: Partitions + ReadRegisters + ?Sized, C: SimpleCall<H>> Hypercall<H> for Simple<C> {
    const CODE: u16 = C::CODE;

    fn call<R, M>(e: Entry<'_, R, M, H>) -> CallEnd<H::Error>
    where
        R: CallerRegisters + ?Sized,
        M: PartitionMemory + ?Sized,
    {
        let out_len = core::mem::size_of::<C::Output>();
        let (form, regs, memory, output) = match simple_entry(e, out_len as u64, C::call) {
            Ok(done) => done,
            Err(end) => return end,
        };
        let bytes = output.as_bytes();
        match form {
            Form::Memory { output_gpa } if !bytes.is_empty() => {
                // The output was RAM when it was checked (step 5f).
                if memory.write(output_gpa, bytes).is_err() {
                    return CallEnd::failed(HvError::INVALID_ALIGNMENT, 0);
                }
            }
            Form::Memory { .. } => {}
            Form::Fast(layout) => {
                for (i, chunk) in bytes.chunks(16).enumerate() {
                    let mut value = HvRegisterValue::default();
                    if let Some(head) = value.0.get_mut(..chunk.len()) {
                        head.copy_from_slice(chunk);
                    }
                    layout.write_value(regs, i, &value);
                }
            }
        }
        CallEnd::Result(HypercallResult::of(HvStatus::SUCCESS, 0))
    }
}

impl<H: Partitions + ReadRegisters + ?Sized, C: SwitchCall<H>> Hypercall<H> for Switch<C> {
    const CODE: u16 = C::CODE;

    fn call<R, M>(e: Entry<'_, R, M, H>) -> CallEnd<H::Error>
    where
        R: CallerRegisters + ?Sized,
        M: PartitionMemory + ?Sized,
    {
        match simple_entry(e, 0, C::switch) {
            Ok((.., vtl)) => CallEnd::SwitchVtl(HypercallResult::of(HvStatus::SUCCESS, 0), vtl),
            Err(end) => end,
        }
    }
}

/// A call without reps up to its work: step 5a (no reps, no variable
/// header), its lists located and its input read (steps 5b–5f), then
/// `body`. Returns the form, the registers and memory for the output,
/// and what `body` gave.
#[allow(clippy::type_complexity)]
fn simple_entry<'a, I, T, R, M, H>(
    e: Entry<'a, R, M, H>,
    out_len: u64,
    body: impl FnOnce(&mut H, &Caller, &I) -> Result<T, SourceError<H::Error>>,
) -> Result<(Form, &'a mut R, &'a mut M, T), CallEnd<H::Error>>
where
    I: FromBytes + KnownLayout + Immutable,
    R: CallerRegisters + ?Sized,
    M: PartitionMemory + ?Sized,
    H: Partitions + ReadRegisters + ?Sized,
{
    let control = e.control;
    if control.rep_count() != 0 || control.rep_start() != 0 || control.variable_header_size() != 0 {
        return Err(CallEnd::failed(HvError::INVALID_HYPERCALL_INPUT, 0));
    }
    let caller = e.hv.caller();
    // Not the VP's input page: a parked rep call keeps its input (§2).
    let mut input = InputPage::new();
    let in_len = core::mem::size_of::<I>() as u64;
    let form = locate(
        e.ctx,
        control,
        e.regs,
        e.memory,
        &caller,
        (in_len, out_len),
        &mut input,
    )?;
    let value = input
        .header::<I>()
        .ok_or(CallEnd::failed(HvError::INVALID_HYPERCALL_INPUT, 0))?;
    let out = body(e.hv, &caller, value).map_err(|err| CallEnd::source_failed(err, 0))?;
    Ok((form, e.regs, e.memory, out))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use core::convert::Infallible;

    use hvcall_abi::{privilege, HvRegisterName};

    use super::*;
    use crate::backend::{Offers, PartitionInfo, SnapshotRequest};
    use crate::memory::MemoryError;
    use crate::registers::{x64, RegisterFile};
    use crate::{dispatch, DispatchConfig, GetVpRegisters, Outcome};

    /// Partition 2 with one VP that has VTL 0 and 1; the caller runs in
    /// `vtl`; every register reads as 7.
    struct Toy {
        vtl: u8,
    }

    impl Partitions for Toy {
        fn caller(&self) -> Caller {
            Caller::new(2, 0)
                .with_vtl(self.vtl)
                .with_privileges(privilege::ACCESS_VP_REGISTERS)
        }
        fn partition(&self, id: u64) -> Option<PartitionInfo> {
            (id == 2).then_some(PartitionInfo::new(Some(1), 1))
        }
        fn enabled_vtls(&self, _: u64, _: u32) -> u16 {
            0b11
        }
    }

    impl ReadRegisters for Toy {
        type Snapshot = ();
        type Error = Infallible;
        fn snapshot(&mut self, _: &SnapshotRequest<'_>) -> Result<(), SourceError<Infallible>> {
            Ok(())
        }
        fn read(
            &mut self,
            _: &mut (),
            _: HvRegisterName,
        ) -> Result<HvRegisterValue, SourceError<Infallible>> {
            Ok(HvRegisterValue::from(7u64))
        }
    }

    /// A simple call: its output is its input plus one.
    struct Increment;
    impl SimpleCall<Toy> for Increment {
        const CODE: u16 = 0x7F01;
        type Input = u64;
        type Output = u64;
        fn call(_: &mut Toy, _: &Caller, input: &u64) -> Result<u64, SourceError<Infallible>> {
            Ok(input.wrapping_add(1))
        }
    }

    /// A switch call: to the VTL its input names.
    struct Enter;
    impl SwitchCall<Toy> for Enter {
        const CODE: u16 = 0x7F02;
        type Input = u64;
        fn switch(_: &mut Toy, _: &Caller, input: &u64) -> Result<Vtl, SourceError<Infallible>> {
            let vtl = u8::try_from(*input).ok().and_then(Vtl::new);
            vtl.ok_or(SourceError::Hv(HvError::INVALID_VTL_STATE))
        }
    }

    impl Offers for Toy {
        type Calls = (GetVpRegisters, Simple<Increment>, Switch<Enter>);
    }

    /// One page of RAM at GPA 0x1000.
    struct Page([u8; 4096]);
    impl Page {
        fn range(&self, gpa: u64, len: usize) -> Option<core::ops::Range<usize>> {
            let start = usize::try_from(gpa.checked_sub(0x1000)?).ok()?;
            let end = start.checked_add(len)?;
            (end <= self.0.len()).then_some(start..end)
        }
    }
    impl PartitionMemory for Page {
        fn is_ram(&self, gpa: u64, len: u64) -> bool {
            usize::try_from(len).is_ok_and(|len| self.range(gpa, len).is_some())
        }
        fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
            let not_ram = MemoryError::NotRam { gpa, len: 0 };
            buf.copy_from_slice(&self.0[self.range(gpa, buf.len()).ok_or(not_ram)?]);
            Ok(())
        }
        fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
            let not_ram = MemoryError::NotRam { gpa, len: 0 };
            let range = self.range(gpa, data.len()).ok_or(not_ram)?;
            self.0[range].copy_from_slice(data);
            Ok(())
        }
    }

    /// A memory-form call of `control` with input `input` at 0x1000 and
    /// output at 0x1800, by `toy`: the outcome, the result's status and
    /// reps, the output's first qword.
    fn call(
        toy: &mut Toy,
        state: &mut VpState<()>,
        control: HypercallControl,
        input: &[u8],
    ) -> (Outcome, HvStatus, u16, u64) {
        let mut page = Page([0; 4096]);
        page.0[..input.len()].copy_from_slice(input);
        let mut regs = RegisterFile::default();
        regs.gprs[x64::RCX] = control.into_bits();
        regs.gprs[x64::RDX] = 0x1000;
        regs.gprs[x64::R8] = 0x1800;
        let ctx = CallContext::new(Convention::X64, true, 0x4000);
        let config = DispatchConfig::default().with_max_reps_per_entry(1);
        let outcome = dispatch(&ctx, &mut regs, &mut page, toy, state, &config).unwrap();
        let result = HypercallResult::from_bits(regs.gprs[x64::RAX]);
        let out = u64::from_le_bytes(page.0[0x800..0x808].try_into().unwrap());
        (outcome, result.status(), result.reps_completed(), out)
    }

    #[test]
    fn a_simple_call_reads_its_input_and_writes_its_output() {
        let control = HypercallControl::new().with_code(0x7F01);
        let got = call(
            &mut Toy { vtl: 0 },
            &mut VpState::new(),
            control,
            &41u64.to_le_bytes(),
        );
        assert_eq!(got, (Outcome::Complete, HvStatus::SUCCESS, 0, 42));
    }

    #[test]
    fn step_5a_a_simple_call_with_a_rep_count_is_invalid_input() {
        let control = HypercallControl::new().with_code(0x7F01).with_rep_count(1);
        let got = call(
            &mut Toy { vtl: 0 },
            &mut VpState::new(),
            control,
            &41u64.to_le_bytes(),
        );
        assert_eq!(
            got,
            (Outcome::Complete, HvStatus::INVALID_HYPERCALL_INPUT, 0, 0)
        );
    }

    #[test]
    fn a_switch_call_ends_in_the_vtl_it_names_or_with_its_status() {
        let control = HypercallControl::new().with_code(0x7F02);
        let (outcome, status, ..) = call(
            &mut Toy { vtl: 0 },
            &mut VpState::new(),
            control,
            &1u64.to_le_bytes(),
        );
        assert_eq!(
            (outcome, status),
            (Outcome::SwitchVtl(Vtl::new(1).unwrap()), HvStatus::SUCCESS)
        );
        let got = call(
            &mut Toy { vtl: 0 },
            &mut VpState::new(),
            control,
            &16u64.to_le_bytes(),
        );
        assert_eq!(got, (Outcome::Complete, HvStatus::INVALID_VTL_STATE, 0, 0));
    }

    #[test]
    fn step_4_a_code_the_backend_does_not_list_is_invalid_hypercall_code() {
        let control = HypercallControl::new().with_code(0x0051).with_rep_count(1);
        let got = call(&mut Toy { vtl: 0 }, &mut VpState::new(), control, &[0; 48]);
        assert_eq!(
            got,
            (Outcome::Complete, HvStatus::INVALID_HYPERCALL_CODE, 0, 0)
        );
    }

    #[test]
    fn section_2_a_parked_call_is_resumed_only_from_the_vtl_that_made_it() {
        // Two names, budget 1: the first entry parks the call.
        let mut input = [0u8; 24];
        input[..8].copy_from_slice(&u64::MAX.to_le_bytes()); // SELF
        input[8..12].copy_from_slice(&hvcall_abi::vp_index::SELF.to_le_bytes());
        let control = HypercallControl::new().with_code(0x0050).with_rep_count(2);
        let mut state = VpState::new();
        let first = call(&mut Toy { vtl: 0 }, &mut state, control, &input);
        assert_eq!(first.0, Outcome::Continue);
        // The same registers from VTL 1: a new call, run whole; the parked
        // one stays.
        let resumed = control.with_rep_start(1);
        let other = call(&mut Toy { vtl: 1 }, &mut state, resumed, &input);
        assert_eq!(other.0, Outcome::Complete);
        assert!(state.is_pending());
        // From VTL 0 it resumes and completes.
        let own = call(&mut Toy { vtl: 0 }, &mut state, resumed, &input);
        assert_eq!(
            (own.0, own.1, own.2),
            (Outcome::Complete, HvStatus::SUCCESS, 2)
        );
        assert!(!state.is_pending());
    }
}
