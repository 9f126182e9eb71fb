//! The checks of docs/contract.md §1 that every call shares: the rep
//! rules of step 5a, where the lists live and whether they may be used
//! (steps 5b–5f, [`Form`]), and the header's target (steps 6a–6i,
//! [`check_target`]).

use hvcall_abi::{
    partition_id, privilege, vp_index, GetVpRegistersHeader, HvError, HypercallControl, PAGE_SIZE,
};

use crate::backend::{Caller, Partitions, Target};
use crate::convention::CallContext;
use crate::end::CallEnd;
use crate::fast::{self, FastLayout, MAX_FILE_BYTES};
use crate::input::InputPage;
use crate::memory::PartitionMemory;
use crate::registers::CallerRegisters;

/// Alignment required of the input and output GPAs (step 5d).
const GPA_ALIGNMENT: u64 = 8;

/// Where the lists of one call live.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// Memory form: the lists are in guest RAM.
    Memory {
        /// GPA of the output list (unused by a call without output).
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

    /// Whether this is the fast form.
    pub(crate) fn is_fast(&self) -> bool {
        matches!(self, Self::Fast(_))
    }
}

/// Step 5a for a rep call: a rep count, a rep start below it, no
/// variable header.
pub(crate) fn check_reps<E>(control: HypercallControl) -> Result<(), CallEnd<E>> {
    let (count, start) = (control.rep_count(), control.rep_start());
    if count == 0 || start >= count || control.variable_header_size() != 0 {
        return Err(CallEnd::failed(HvError::INVALID_HYPERCALL_INPUT, 0));
    }
    Ok(())
}

/// Steps 5b–5f, then the input read whole into `input` (before any output
/// is written, so overlapping lists work): the fast form's XMM bits and
/// size, or the memory form's alignment, page and RAM checks of the input
/// list and, if `out_len` is not 0, of the output list.
#[inline]
pub(crate) fn locate<R, M, E>(
    ctx: &CallContext,
    control: HypercallControl,
    regs: &mut R,
    memory: &mut M,
    caller: &Caller,
    (in_len, out_len): (u64, u64),
    input: &mut InputPage,
) -> Result<Form, CallEnd<E>>
where
    R: CallerRegisters + ?Sized,
    M: PartitionMemory + ?Sized,
{
    let convention = ctx.convention;
    if control.fast() {
        let (in_len, out_len) = (in_len as usize, out_len as usize);
        // Step 5b: XMM registers used without their CPUID bit.
        let (xmm_in, xmm_out) = fast::xmm_use(convention, in_len, out_len);
        if (xmm_in && !caller.xmm_fast_input) || (xmm_out && !caller.xmm_fast_output) {
            return Err(CallEnd::Undefined);
        }
        // Step 5c: input + output fit the register file.
        let layout = FastLayout::new(convention, in_len, out_len)
            .ok_or_else(|| CallEnd::failed(HvError::INVALID_HYPERCALL_INPUT, 0))?;
        input.read_fast(&layout, regs);
        return Ok(Form::Fast(layout));
    }
    let input_gpa = convention.input_gpa(regs);
    let output_gpa = convention.output_gpa(regs);
    let output = (out_len != 0).then_some((output_gpa, out_len));
    check_lists(memory, (input_gpa, in_len), output).map_err(|e| CallEnd::failed(e, 0))?;
    // A read failing after `is_ram` said yes (memory changed under us)
    // is reported like step 5f.
    input
        .read_memory(memory, input_gpa, in_len)
        .map_err(|_| CallEnd::failed(HvError::INVALID_ALIGNMENT, 0))?;
    Ok(Form::Memory { output_gpa })
}

/// Steps 5d–5f: alignment, page crossing and RAM of the input list and
/// the output list, if any.
fn check_lists<M: PartitionMemory + ?Sized>(
    memory: &M,
    input: (u64, u64),
    output: Option<(u64, u64)>,
) -> Result<(), HvError> {
    // `gpa % PAGE_SIZE < 4096` and the lengths are below 2^15: no overflow.
    let usable = |(gpa, len): (u64, u64)| {
        gpa.is_multiple_of(GPA_ALIGNMENT)
            && gpa % PAGE_SIZE + len <= PAGE_SIZE
            && memory.is_ram(gpa, len)
    };
    if usable(input) && output.is_none_or(usable) {
        Ok(())
    } else {
        Err(HvError::INVALID_ALIGNMENT)
    }
}

/// Steps 6a–6i: the header, partition, VP and VTL checks. Returns the
/// target with SELF resolved.
#[inline]
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
