//! HvCallGetVpRegisters (0x0050): docs/contract.md §1 steps 5a–7, the rep loop
//! and its continuation (§2), in memory and fast form (§3).
//!
//! A first entry runs the checks in order, reads the whole input, takes
//! one snapshot of the target and then reads element after element. When
//! the work budget of one entry is used up, the call is parked in the VP's
//! [`VpState`] and continued on its re-entry with the same input and
//! snapshot.

use hvcall_abi::{
    partition_id, privilege, vp_index, GetVpRegistersHeader, HvError, HvRegisterValue, HvStatus,
    HypercallControl, HypercallResult, PAGE_SIZE,
};

use crate::backend::{Caller, Partitions, RegisterSource, SnapshotRequest, SourceError, Target};
use crate::convention::CallContext;
use crate::dispatch::{fail, CallEnd, DispatchConfig, Progress};
use crate::fast::{self, FastLayout, MAX_FILE_BYTES};
use crate::input::{input_len, output_len, CallInput};
use crate::memory::{MemoryError, PartitionMemory};
use crate::pending::{Parked, VpState};
use crate::registers::CallerRegisters;

/// Alignment required of the input and output GPAs (step 5d).
const GPA_ALIGNMENT: u64 = 8;

/// Where the lists of one call live.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// Memory form: the lists are in guest RAM.
    Memory {
        /// GPA of the output list.
        output_gpa: u64,
    },
    /// Fast form: the lists are in the register file.
    Fast(FastLayout),
}

impl Form {
    /// The fast form's input image (all zero for the memory form).
    pub(crate) fn image<R: CallerRegisters + ?Sized>(&self, regs: &mut R) -> [u8; MAX_FILE_BYTES] {
        let mut image = [0u8; MAX_FILE_BYTES];
        if let Self::Fast(layout) = self {
            layout.read_input(regs, &mut image);
        }
        image
    }

    fn write_value<R, M>(
        &self,
        regs: &mut R,
        memory: &mut M,
        index: u16,
        value: &HvRegisterValue,
    ) -> Result<(), MemoryError>
    where
        R: CallerRegisters + ?Sized,
        M: PartitionMemory + ?Sized,
    {
        match self {
            Self::Memory { output_gpa } => {
                let gpa = output_gpa.wrapping_add(output_len(index));
                memory.write(gpa, &value.0)
            }
            Self::Fast(layout) => {
                layout.write_value(regs, usize::from(index), value);
                Ok(())
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
        /// Memory or fast form.
        form: Form,
        /// The target's snapshot.
        snapshot: S,
        /// The next element.
        next: u16,
    },
}

/// Handle one entry of HvCallGetVpRegisters (steps 2–4 already passed).
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
    if let Some(mut pending) = state.take_reentry(ctx, control, regs) {
        let Parked::Get(snapshot) = &mut pending.kind else {
            // The re-entry key includes the call code: cannot happen.
            state.park(pending);
            return fail(HvError::INVALID_HYPERCALL_INPUT, 0);
        };
        let progress = run(
            regs,
            memory,
            hv,
            snapshot,
            &state.input,
            &pending.form,
            pending.next..count,
            Some(config.budget()),
        );
        return state.after_reentry(pending, progress);
    }

    if state.is_pending() {
        // A call made while another is parked runs to completion in an
        // input of its own, so that the parked call keeps its state (§2
        // "any other hypercall made in between"). Rare: the zeroing of
        // this buffer is not on the common path.
        let mut input = CallInput::new();
        return match first_entry(ctx, control, regs, memory, hv, &mut input, None) {
            First::End(end) => end,
            // Without a budget the run never stops; answer as a
            // completed-nothing call if it ever did.
            First::Stopped { next, .. } => fail(HvError::INVALID_PARAMETER, next),
        };
    }
    let budget = Some(config.budget());
    match first_entry(ctx, control, regs, memory, hv, &mut state.input, budget) {
        First::End(end) => end,
        First::Stopped {
            form,
            snapshot,
            next,
        } => state.park_first(ctx, control, regs, form, next, Parked::Get(snapshot)),
    }
}

/// A source failure at element `index`: the guest's status, or the end of
/// the call for a host failure.
fn source_failed<E>(error: SourceError<E>, index: u16) -> CallEnd<E> {
    match error {
        SourceError::Hv(e) => fail(e, index),
        SourceError::Host(e) => CallEnd::HostFailed(e),
    }
}

/// A first entry: the checks, the input read into `input`, the snapshot,
/// then elements until the end or the budget.
fn first_entry<R, M, H>(
    ctx: &CallContext,
    control: HypercallControl,
    regs: &mut R,
    memory: &mut M,
    hv: &mut H,
    input: &mut CallInput,
    budget: Option<u16>,
) -> First<H::Snapshot, H::Error>
where
    R: CallerRegisters + ?Sized,
    M: PartitionMemory + ?Sized,
    H: Partitions + RegisterSource + ?Sized,
{
    let entry_budget = budget.unwrap_or(u16::MAX);
    let (form, mut snapshot) = match prepare(ctx, control, regs, memory, hv, input, entry_budget) {
        Ok(prepared) => prepared,
        Err(end) => return First::End(end),
    };
    let range = control.rep_start()..control.rep_count();
    match run(regs, memory, hv, &mut snapshot, input, &form, range, budget) {
        Progress::Done(result) => First::End(CallEnd::Result(result)),
        Progress::Stopped(next) => First::Stopped {
            form,
            snapshot,
            next,
        },
        Progress::HostFailed(e) => First::End(CallEnd::HostFailed(e)),
    }
}

/// Steps 5a–6i and the snapshot: everything a first entry does before it
/// reads the first element. The input is read into `input`.
fn prepare<R, M, H>(
    ctx: &CallContext,
    control: HypercallControl,
    regs: &mut R,
    memory: &mut M,
    hv: &mut H,
    input: &mut CallInput,
    budget: u16,
) -> Result<(Form, H::Snapshot), CallEnd<H::Error>>
where
    R: CallerRegisters + ?Sized,
    M: PartitionMemory + ?Sized,
    H: Partitions + RegisterSource + ?Sized,
{
    let count = control.rep_count();
    let start = control.rep_start();
    // Step 5a: rep rules and variable header size.
    if count == 0 || start >= count || control.variable_header_size() != 0 {
        return Err(fail(HvError::INVALID_HYPERCALL_INPUT, 0));
    }
    let in_len = input_len(count);
    let out_len = output_len(count);
    let caller = hv.caller();
    let convention = ctx.convention;

    let form = if control.fast() {
        let (in_len, out_len) = (in_len as usize, out_len as usize);
        // Step 5b: XMM registers used without their CPUID bit.
        let (xmm_in, xmm_out) = fast::xmm_use(convention, in_len, out_len);
        if (xmm_in && !caller.xmm_fast_input) || (xmm_out && !caller.xmm_fast_output) {
            return Err(CallEnd::Undefined);
        }
        // Step 5c: input + output fit the register file.
        let layout = FastLayout::new(convention, in_len, out_len)
            .ok_or_else(|| fail(HvError::INVALID_HYPERCALL_INPUT, 0))?;
        input.read_fast(&layout, regs, count);
        Form::Fast(layout)
    } else {
        let input_gpa = convention.input_gpa(regs);
        let output_gpa = convention.output_gpa(regs);
        check_lists(memory, input_gpa, in_len, output_gpa, out_len).map_err(|s| fail(s, 0))?;
        // The whole input is read before any output is written, so
        // overlapping lists work. A read failing after `is_ram` said yes
        // (memory changed under us) is reported like step 5f.
        input
            .read_memory(memory, input_gpa, count)
            .map_err(|_| fail(HvError::INVALID_ALIGNMENT, 0))?;
        Form::Memory { output_gpa }
    };

    let target = check_target(&input.header, &caller, hv).map_err(|e| fail(e, start))?;
    let request = SnapshotRequest {
        target,
        names: input.names(start..count),
        output_precedes_reads: matches!(form, Form::Fast(_)) && count - start > budget,
    };
    let snapshot = hv.snapshot(&request).map_err(|e| source_failed(e, start))?;
    Ok((form, snapshot))
}

/// Steps 5d–5f: alignment, page crossing and RAM of both lists.
fn check_lists<M: PartitionMemory + ?Sized>(
    memory: &M,
    input_gpa: u64,
    input_len: u64,
    output_gpa: u64,
    output_len: u64,
) -> Result<(), HvError> {
    let misaligned = |gpa: u64| !gpa.is_multiple_of(GPA_ALIGNMENT);
    // `gpa % PAGE_SIZE < 4096` and the lengths are below 2^15: no overflow.
    let crosses_page = |gpa: u64, len: u64| gpa % PAGE_SIZE + len > PAGE_SIZE;
    if misaligned(input_gpa) || misaligned(output_gpa) {
        return Err(HvError::INVALID_ALIGNMENT);
    }
    if crosses_page(input_gpa, input_len) || crosses_page(output_gpa, output_len) {
        return Err(HvError::INVALID_ALIGNMENT);
    }
    if !memory.is_ram(input_gpa, input_len) || !memory.is_ram(output_gpa, output_len) {
        return Err(HvError::INVALID_ALIGNMENT);
    }
    Ok(())
}

/// Steps 6a–6i: the header, partition, VP and VTL checks. Returns the
/// target with SELF resolved.
pub(crate) fn check_target<H: Partitions + ?Sized>(
    header: &GetVpRegistersHeader,
    caller: &Caller,
    hv: &H,
) -> Result<Target, HvError> {
    // Steps 6a and 6b: RsvdZ bytes and HV_INPUT_VTL reserved bits.
    if header.reserved != [0; 3] || header.input_vtl.reserved() != 0 {
        return Err(HvError::INVALID_PARAMETER);
    }
    let requested = header.partition_id;
    let is_self = requested == partition_id::SELF || requested == caller.partition_id;
    let partition = if is_self {
        // Step 6e: self access needs AccessVpRegisters.
        if caller.privileges & privilege::ACCESS_VP_REGISTERS == 0 {
            return Err(HvError::ACCESS_DENIED);
        }
        hv.partition(caller.partition_id)
            .ok_or(HvError::INVALID_PARTITION_ID)?
    } else {
        // Step 6c: an existing partition (0 never is one).
        let partition = (requested != partition_id::INVALID)
            .then(|| hv.partition(requested))
            .flatten()
            .ok_or(HvError::INVALID_PARTITION_ID)?;
        // Step 6d: only the parent may read another partition.
        if partition.parent != Some(caller.partition_id) {
            return Err(HvError::ACCESS_DENIED);
        }
        partition
    };
    let target_partition = if is_self {
        caller.partition_id
    } else {
        requested
    };

    // Steps 6f and 6g: the VP index.
    let vp = if header.vp_index == vp_index::SELF {
        if !is_self {
            return Err(HvError::INVALID_VP_INDEX);
        }
        caller.vp_index
    } else if header.vp_index >= partition.vp_count {
        return Err(HvError::INVALID_VP_INDEX);
    } else {
        header.vp_index
    };

    // Step 6h: a caller may not name a VTL above its own in itself.
    let input_vtl = header.input_vtl;
    let vtl = if input_vtl.use_target_vtl() {
        if is_self && input_vtl.target_vtl() > caller.vtl {
            return Err(HvError::ACCESS_DENIED);
        }
        input_vtl.target_vtl()
    } else {
        caller.vtl
    };

    // Step 6i: the VTL is enabled on the target VP.
    let enabled = hv.enabled_vtls(target_partition, vp);
    let bit = 1u16.checked_shl(u32::from(vtl)).unwrap_or(0);
    if enabled & bit == 0 {
        return Err(HvError::INVALID_VTL_STATE);
    }
    Ok(Target::new(target_partition, vp, vtl))
}

/// Step 7: read elements `range` in order until one fails, the range ends
/// or `budget` elements were done in this entry.
#[allow(clippy::too_many_arguments)]
fn run<R, M, H>(
    regs: &mut R,
    memory: &mut M,
    hv: &mut H,
    snapshot: &mut H::Snapshot,
    input: &CallInput,
    form: &Form,
    range: core::ops::Range<u16>,
    budget: Option<u16>,
) -> Progress<H::Error>
where
    R: CallerRegisters + ?Sized,
    M: PartitionMemory + ?Sized,
    H: Partitions + RegisterSource + ?Sized,
{
    let count = range.end;
    // This entry's share, bounded once: no per-element budget check.
    let end = budget.map_or(count, |b| count.min(range.start.saturating_add(b)));
    let names = input.names(range.start..end);
    if names.len() != usize::from(end.saturating_sub(range.start)) {
        // Cannot happen (step 5e bounds every call to MAX_REPS names);
        // answered like an unreadable name rather than skipped.
        return Progress::Done(HypercallResult::of(
            HvStatus::INVALID_PARAMETER,
            range.start,
        ));
    }
    if let Form::Memory { output_gpa } = form {
        let first = output_gpa.wrapping_add(output_len(range.start));
        let len = output_len(end.saturating_sub(range.start));
        if let Some(out) = memory
            .lend_mut(first, len)
            .filter(|o| o.len() as u64 == len)
        {
            // Bounds checked once: the slice holds exactly this entry's
            // output slots.
            for ((index, &name), slot) in (range.start..).zip(names).zip(out.chunks_exact_mut(16)) {
                match hv.read(snapshot, name) {
                    Ok(value) => slot.copy_from_slice(&value.0),
                    Err(SourceError::Hv(e)) => {
                        return Progress::Done(HypercallResult::of(e.status(), index))
                    }
                    Err(SourceError::Host(e)) => return Progress::HostFailed(e),
                }
            }
            return if end < count {
                Progress::Stopped(end)
            } else {
                Progress::Done(HypercallResult::of(HvStatus::SUCCESS, count))
            };
        }
    }
    for (index, &name) in (range.start..).zip(names) {
        let value = match hv.read(snapshot, name) {
            Ok(value) => value,
            Err(SourceError::Hv(e)) => {
                return Progress::Done(HypercallResult::of(e.status(), index))
            }
            Err(SourceError::Host(e)) => return Progress::HostFailed(e),
        };
        if form.write_value(regs, memory, index, &value).is_err() {
            // The output list was RAM when the call was checked; it changed
            // since. Reported like step 5f, at the element that failed.
            return Progress::Done(HypercallResult::of(HvStatus::INVALID_ALIGNMENT, index));
        }
    }
    if end < count {
        Progress::Stopped(end)
    } else {
        Progress::Done(HypercallResult::of(HvStatus::SUCCESS, count))
    }
}
