//! HvCallGetVpRegisters (0x0050): docs/contract.md §1 steps 5a–7, the rep loop
//! and its continuation (§2), in memory and fast form (§3).
//!
//! A first entry runs the checks in order, reads the whole input, takes
//! one snapshot of the target and then reads element after element. When
//! the work budget of one entry is used up, the call is parked in the VP's
//! [`VpState`] and continued on its re-entry with the same input and
//! snapshot.

use hvcall_abi::{
    partition_id, privilege, vp_index, GetVpRegistersHeader, HvRegisterValue, HvStatus,
    HypercallControl, HypercallResult, PAGE_SIZE,
};

use crate::convention::CallContext;
use crate::dispatch::{CallEnd, DispatchConfig};
use crate::fast::{self, FastLayout, MAX_FILE_BYTES};
use crate::hypervisor::{Caller, Hypervisor, Target};
use crate::input::{input_len, output_len, CallInput};
use crate::memory::{GuestMemory, MemoryError};
use crate::pending::{EntryKey, Pending, VpState};
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
        M: GuestMemory + ?Sized,
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

/// How far one entry got through the elements.
enum Progress {
    /// The call ended with this result.
    Done(HypercallResult),
    /// The budget ran out; the next element to process.
    Stopped(u16),
}

/// What a first entry prepared once every check before step 7 passed.
struct Prepared<S> {
    key: EntryKey,
    form: Form,
    input: CallInput,
    snapshot: S,
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
) -> CallEnd
where
    R: CallerRegisters + ?Sized,
    M: GuestMemory + ?Sized,
    H: Hypervisor + ?Sized,
{
    let count = control.rep_count();
    if let Some(mut pending) = state.take_reentry(ctx, control, regs) {
        let budget = Some(config.budget());
        let progress = run(
            regs,
            memory,
            hv,
            &mut pending.snapshot,
            &pending.input,
            &pending.form,
            pending.next..count,
            budget,
        );
        return match progress {
            // The guest never sees that the call was continued: its control
            // register gets back the rep start it had on the first entry.
            Progress::Done(result) => CallEnd::ResultAfterContinuation {
                result,
                first_start: pending.first_start,
            },
            Progress::Stopped(next) => {
                pending.next = next;
                state.park(pending);
                CallEnd::Continue(next)
            }
        };
    }

    // A call made while another is parked runs to completion, so that the
    // parked call keeps its state (§2 "any other hypercall made in between").
    let budget = (!state.is_pending()).then(|| config.budget());
    let mut prepared = match prepare(ctx, control, regs, memory, hv) {
        Ok(prepared) => prepared,
        Err(end) => return end,
    };
    let progress = run(
        regs,
        memory,
        hv,
        &mut prepared.snapshot,
        &prepared.input,
        &prepared.form,
        control.rep_start()..count,
        budget,
    );
    match progress {
        Progress::Done(result) => CallEnd::Result(result),
        Progress::Stopped(next) => {
            state.park(Pending {
                key: prepared.key,
                first_start: control.rep_start(),
                next,
                form: prepared.form,
                input: prepared.input,
                snapshot: prepared.snapshot,
            });
            CallEnd::Continue(next)
        }
    }
}

fn fail(status: HvStatus, reps_completed: u16) -> CallEnd {
    CallEnd::Result(HypercallResult::of(status, reps_completed))
}

/// Steps 5a–6i and the snapshot: everything a first entry does before it
/// reads the first element.
fn prepare<R, M, H>(
    ctx: &CallContext,
    control: HypercallControl,
    regs: &mut R,
    memory: &mut M,
    hv: &mut H,
) -> Result<Prepared<H::Snapshot>, CallEnd>
where
    R: CallerRegisters + ?Sized,
    M: GuestMemory + ?Sized,
    H: Hypervisor + ?Sized,
{
    let count = control.rep_count();
    let start = control.rep_start();
    // Step 5a: rep rules and variable header size.
    if count == 0 || start >= count || control.variable_header_size() != 0 {
        return Err(fail(HvStatus::INVALID_HYPERCALL_INPUT, 0));
    }
    let in_len = input_len(count);
    let out_len = output_len(count);
    let caller = hv.caller();
    let convention = ctx.convention;

    let mut image = [0u8; MAX_FILE_BYTES];
    let (form, input) = if control.fast() {
        let (in_len, out_len) = (in_len as usize, out_len as usize);
        // Step 5b: XMM registers used without their CPUID bit.
        let (xmm_in, xmm_out) = fast::xmm_use(convention, in_len, out_len);
        if (xmm_in && !caller.xmm_fast_input) || (xmm_out && !caller.xmm_fast_output) {
            return Err(CallEnd::Undefined);
        }
        // Step 5c: input + output fit the register file.
        let layout = FastLayout::new(convention, in_len, out_len)
            .ok_or_else(|| fail(HvStatus::INVALID_HYPERCALL_INPUT, 0))?;
        layout.read_input(regs, &mut image);
        let input = CallInput::from_image(&image, start, count);
        (Form::Fast(layout), input)
    } else {
        let input_gpa = convention.input_gpa(regs);
        let output_gpa = convention.output_gpa(regs);
        check_lists(memory, input_gpa, in_len, output_gpa, out_len).map_err(|s| fail(s, 0))?;
        // The whole input is read before any output is written, so
        // overlapping lists work. A read failing after `is_ram` said yes
        // (memory changed under us) is reported like step 5f.
        let input = CallInput::from_memory(memory, input_gpa, start, count)
            .map_err(|_| fail(HvStatus::INVALID_ALIGNMENT, 0))?;
        (Form::Memory { output_gpa }, input)
    };
    let key = EntryKey::new(ctx, control, regs, &image);

    let target = check_target(&input.header, &caller, hv).map_err(|s| fail(s, start))?;
    let names = input.names(start..count);
    let snapshot = hv.snapshot(&target, names).map_err(|s| fail(s, start))?;
    Ok(Prepared {
        key,
        form,
        input,
        snapshot,
    })
}

/// Steps 5d–5f: alignment, page crossing and RAM of both lists.
fn check_lists<M: GuestMemory + ?Sized>(
    memory: &M,
    input_gpa: u64,
    input_len: u64,
    output_gpa: u64,
    output_len: u64,
) -> Result<(), HvStatus> {
    let misaligned = |gpa: u64| !gpa.is_multiple_of(GPA_ALIGNMENT);
    // `gpa % PAGE_SIZE < 4096` and the lengths are below 2^15: no overflow.
    let crosses_page = |gpa: u64, len: u64| gpa % PAGE_SIZE + len > PAGE_SIZE;
    if misaligned(input_gpa) || misaligned(output_gpa) {
        return Err(HvStatus::INVALID_ALIGNMENT);
    }
    if crosses_page(input_gpa, input_len) || crosses_page(output_gpa, output_len) {
        return Err(HvStatus::INVALID_ALIGNMENT);
    }
    if !memory.is_ram(input_gpa, input_len) || !memory.is_ram(output_gpa, output_len) {
        return Err(HvStatus::INVALID_ALIGNMENT);
    }
    Ok(())
}

/// Steps 6a–6i: the header, partition, VP and VTL checks. Returns the
/// target with SELF resolved.
fn check_target<H: Hypervisor + ?Sized>(
    header: &GetVpRegistersHeader,
    caller: &Caller,
    hv: &H,
) -> Result<Target, HvStatus> {
    // Steps 6a and 6b: RsvdZ bytes and HV_INPUT_VTL reserved bits.
    if header.reserved != [0; 3] || header.input_vtl.reserved() != 0 {
        return Err(HvStatus::INVALID_PARAMETER);
    }
    let requested = header.partition_id;
    let is_self = requested == partition_id::SELF || requested == caller.partition_id;
    let partition = if is_self {
        // Step 6e: self access needs AccessVpRegisters.
        if caller.privileges & privilege::ACCESS_VP_REGISTERS == 0 {
            return Err(HvStatus::ACCESS_DENIED);
        }
        hv.partition(caller.partition_id)
            .ok_or(HvStatus::INVALID_PARTITION_ID)?
    } else {
        // Step 6c: an existing partition (0 never is one).
        let partition = (requested != partition_id::INVALID)
            .then(|| hv.partition(requested))
            .flatten()
            .ok_or(HvStatus::INVALID_PARTITION_ID)?;
        // Step 6d: only the parent may read another partition.
        if partition.parent != Some(caller.partition_id) {
            return Err(HvStatus::ACCESS_DENIED);
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
            return Err(HvStatus::INVALID_VP_INDEX);
        }
        caller.vp_index
    } else if header.vp_index >= partition.vp_count {
        return Err(HvStatus::INVALID_VP_INDEX);
    } else {
        header.vp_index
    };

    // Step 6h: a caller may not name a VTL above its own in itself.
    let input_vtl = header.input_vtl;
    let vtl = if input_vtl.use_target_vtl() {
        if is_self && input_vtl.target_vtl() > caller.vtl {
            return Err(HvStatus::ACCESS_DENIED);
        }
        input_vtl.target_vtl()
    } else {
        caller.vtl
    };

    // Step 6i: the VTL is enabled on the target VP.
    let enabled = hv.enabled_vtls(target_partition, vp);
    let bit = 1u16.checked_shl(u32::from(vtl)).unwrap_or(0);
    if enabled & bit == 0 {
        return Err(HvStatus::INVALID_VTL_STATE);
    }
    Ok(Target {
        partition_id: target_partition,
        vp_index: vp,
        vtl,
    })
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
) -> Progress
where
    R: CallerRegisters + ?Sized,
    M: GuestMemory + ?Sized,
    H: Hypervisor + ?Sized,
{
    let count = range.end;
    for (done, index) in range.enumerate() {
        if budget.is_some_and(|b| done >= usize::from(b)) {
            return Progress::Stopped(index);
        }
        let value = match hv.read_register(snapshot, input.name(index)) {
            Ok(value) => value,
            Err(status) => return Progress::Done(HypercallResult::of(status, index)),
        };
        if form.write_value(regs, memory, index, &value).is_err() {
            // The output list was RAM when the call was checked; it changed
            // since. Reported like step 5f, at the element that failed.
            return Progress::Done(HypercallResult::of(HvStatus::INVALID_ALIGNMENT, index));
        }
    }
    Progress::Done(HypercallResult::of(HvStatus::SUCCESS, count))
}
