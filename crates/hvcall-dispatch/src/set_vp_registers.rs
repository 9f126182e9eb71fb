//! HvCallSetVpRegisters (0x0051): contract §8. The checks of §1 up to step
//! 6 (input list only, no output), then per entry one batch of writes:
//! the elements of this entry up to the first one the dispatcher refuses
//! itself (reserved bytes, step 8a; the caller's own hypercall registers,
//! step 8d) go to [`RegisterSource::write`], which applies them in order
//! and may refuse a name (8b) or a value (8c). Continuation follows §2:
//! the input stays in the VP's state, the checked target in the parked
//! call.

use hvcall_abi::{HvError, HvStatus, HypercallControl, HypercallResult, PAGE_SIZE};

use crate::backend::{Caller, Partitions, RegisterSource, SourceError, Target, WriteFailure};
use crate::convention::{CallContext, Convention};
use crate::dispatch::{fail, CallEnd, DispatchConfig, Progress};
use crate::fast::{self, FastLayout};
use crate::get_vp_registers::{check_target, Form};
use crate::input::{set_input_len, SetInput};
use crate::memory::PartitionMemory;
use crate::pending::{Parked, VpState};
use crate::registers::CallerRegisters;

/// Handle one entry of HvCallSetVpRegisters (steps 2–4 already passed).
pub(crate) fn call<R, M, H>(
    ctx: &CallContext,
    control: HypercallControl,
    regs: &mut R,
    memory: &mut M,
    hv: &mut H,
    state: &mut VpState<H::Snapshot>,
    config: &DispatchConfig,
) -> CallEnd<H::Error>
where
    R: CallerRegisters + ?Sized,
    M: PartitionMemory + ?Sized,
    H: Partitions + RegisterSource + ?Sized,
{
    let count = control.rep_count();
    if let Some(pending) = state.take_reentry(ctx, control, regs) {
        let Parked::Set(target) = pending.kind else {
            // The re-entry key includes the call code: cannot happen.
            state.park(pending);
            return fail(HvError::INVALID_HYPERCALL_INPUT, 0);
        };
        let fast = matches!(pending.form, Form::Fast(_));
        let caller = hv.caller();
        let range = pending.next..count;
        let progress = apply(
            ctx.convention,
            fast,
            &caller,
            hv,
            &state.set_input,
            &target,
            range,
            Some(config.budget()),
        );
        return state.after_reentry(pending, progress);
    }

    if state.is_pending() {
        // As for 0x0050 (§2): a call in between runs to completion in an
        // input of its own, leaving the parked call's state alone.
        let mut input = SetInput::new();
        return match first_entry(ctx, control, regs, memory, hv, &mut input, None) {
            First::End(end) => end,
            First::Stopped { next, .. } => fail(HvError::INVALID_PARAMETER, next),
        };
    }
    let budget = Some(config.budget());
    match first_entry(ctx, control, regs, memory, hv, &mut state.set_input, budget) {
        First::End(end) => end,
        First::Stopped { form, target, next } => {
            state.park_first(ctx, control, regs, form, next, Parked::Set(target))
        }
    }
}

/// How a first entry ended.
enum First<E> {
    End(CallEnd<E>),
    Stopped {
        form: Form,
        target: Target,
        next: u16,
    },
}

/// A first entry: the checks, the input read into `input`, then the
/// writes of this entry.
fn first_entry<R, M, H>(
    ctx: &CallContext,
    control: HypercallControl,
    regs: &mut R,
    memory: &mut M,
    hv: &mut H,
    input: &mut SetInput,
    budget: Option<u16>,
) -> First<H::Error>
where
    R: CallerRegisters + ?Sized,
    M: PartitionMemory + ?Sized,
    H: Partitions + RegisterSource + ?Sized,
{
    let caller = hv.caller();
    let (form, target) = match prepare(ctx, control, regs, memory, hv, &caller, input) {
        Ok(prepared) => prepared,
        Err(end) => return First::End(end),
    };
    let fast = matches!(form, Form::Fast(_));
    let range = control.rep_start()..control.rep_count();
    let progress = apply(
        ctx.convention,
        fast,
        &caller,
        hv,
        input,
        &target,
        range,
        budget,
    );
    match progress {
        Progress::Done(result) => First::End(CallEnd::Result(result)),
        Progress::Stopped(next) => First::Stopped { form, target, next },
        Progress::HostFailed(e) => First::End(CallEnd::HostFailed(e)),
    }
}

/// Steps 5a–6i for 0x0051: the rep rules, the input list (memory form:
/// aligned, within one page, RAM; fast form: fits the register file, XMM
/// input advertised), the header and the target.
fn prepare<R, M, H>(
    ctx: &CallContext,
    control: HypercallControl,
    regs: &mut R,
    memory: &mut M,
    hv: &mut H,
    caller: &Caller,
    input: &mut SetInput,
) -> Result<(Form, Target), CallEnd<H::Error>>
where
    R: CallerRegisters + ?Sized,
    M: PartitionMemory + ?Sized,
    H: Partitions + RegisterSource + ?Sized,
{
    let count = control.rep_count();
    let start = control.rep_start();
    // Step 5a.
    if count == 0 || start >= count || control.variable_header_size() != 0 {
        return Err(fail(HvError::INVALID_HYPERCALL_INPUT, 0));
    }
    let in_len = set_input_len(count);
    let convention = ctx.convention;
    let form = if control.fast() {
        let len = in_len as usize;
        // Step 5b: only the XMM input bit matters (no output).
        let (xmm_in, _) = fast::xmm_use(convention, len, 0);
        if xmm_in && !caller.xmm_fast_input {
            return Err(CallEnd::Undefined);
        }
        // Step 5c.
        let layout = FastLayout::new(convention, len, 0)
            .ok_or_else(|| fail(HvError::INVALID_HYPERCALL_INPUT, 0))?;
        input.read_fast(&layout, regs, count);
        Form::Fast(layout)
    } else {
        // Steps 5d–5f, for the input list only.
        let gpa = convention.input_gpa(regs);
        let crosses_page = gpa % PAGE_SIZE + in_len > PAGE_SIZE;
        if !gpa.is_multiple_of(8) || crosses_page || !memory.is_ram(gpa, in_len) {
            return Err(fail(HvError::INVALID_ALIGNMENT, 0));
        }
        input
            .read_memory(memory, gpa, count)
            .map_err(|_| fail(HvError::INVALID_ALIGNMENT, 0))?;
        Form::Memory { output_gpa: 0 }
    };
    let target = check_target(&input.header, caller, hv).map_err(|e| fail(e, start))?;
    Ok((form, target))
}

/// Steps 8a–8d for elements `range`, at most `budget` of them in this
/// entry, as one batch.
#[allow(clippy::too_many_arguments)]
fn apply<H>(
    convention: Convention,
    fast: bool,
    caller: &Caller,
    hv: &mut H,
    input: &SetInput,
    target: &Target,
    range: core::ops::Range<u16>,
    budget: Option<u16>,
) -> Progress<H::Error>
where
    H: RegisterSource + ?Sized,
{
    let count = range.end;
    let end = budget.map_or(count, |b| count.min(range.start.saturating_add(b)));
    let elements = input.elements(range.start..end);
    if elements.len() != usize::from(end.saturating_sub(range.start)) {
        // Cannot happen (step 5e bounds the elements).
        return Progress::Done(HypercallResult::of(
            HvStatus::INVALID_PARAMETER,
            range.start,
        ));
    }
    let own = target.partition_id == caller.partition_id && target.vp_index == caller.vp_index;
    // Steps 8a and 8d, which the dispatcher decides itself: the batch ends
    // before the first element they refuse.
    let refused = elements
        .iter()
        .position(|e| e.reserved != [0; 12] || (own && convention.is_call_register(fast, e.name)));
    let batch = elements
        .get(..refused.unwrap_or(elements.len()))
        .unwrap_or_default();
    if !batch.is_empty() {
        if let Err(WriteFailure { applied, error }) = hv.write(target, batch) {
            let at = range
                .start
                .saturating_add(u16::try_from(applied.min(batch.len())).unwrap_or(0));
            return match error {
                SourceError::Hv(e) => Progress::Done(HypercallResult::of(e.status(), at)),
                SourceError::Host(e) => Progress::HostFailed(e),
            };
        }
    }
    if let Some(i) = refused {
        let at = range.start.saturating_add(u16::try_from(i).unwrap_or(0));
        return Progress::Done(HypercallResult::of(HvStatus::INVALID_PARAMETER, at));
    }
    if end < count {
        Progress::Stopped(end)
    } else {
        Progress::Done(HypercallResult::of(HvStatus::SUCCESS, count))
    }
}
