//! HvCallSetVpRegisters (0x0051), a rep call against [`WriteRegisters`]
//! (contract §8): a header and (name, value) elements in, no output. Per
//! entry, one batch: the elements up to the first one the dispatcher
//! refuses itself (reserved bytes, step 8a; the caller's own hypercall
//! registers, step 8d) go to [`WriteRegisters::write`], which applies them
//! in order and may refuse a name (8b) or a value (8c).

use hvcall_abi::{call_code, GetVpRegistersHeader, HvError, SetVpRegistersElement, PAGE_SIZE};

use crate::backend::{Caller, Partitions, SourceError, Target, WriteRegisters};
use crate::checks::check_target;
use crate::engine::{Io, Kept, Rep, RepCall, Stop};
use crate::memory::PartitionMemory;
use crate::registers::CallerRegisters;

/// Bytes of one element.
const ELEMENT: u64 = core::mem::size_of::<SetVpRegistersElement>() as u64;

/// HvCallSetVpRegisters, as a backend lists it in
/// [`Offers::Calls`](crate::Offers::Calls).
pub type SetVpRegisters = Rep<Set>;

/// The 0x0051 call's types and work.
pub struct Set;

impl<H: Partitions + WriteRegisters + ?Sized> RepCall<H> for Set {
    const CODE: u16 = call_code::SET_VP_REGISTERS;
    type Header = GetVpRegistersHeader;
    type Element = SetVpRegistersElement;
    const OUTPUT_SIZE: u64 = 0;
    /// The input list (16 + 32n bytes) fits one page (step 5e).
    const MAX_ELEMENTS: u16 = ((PAGE_SIZE - 16) / ELEMENT) as u16;

    fn from_le(elements: &mut [SetVpRegistersElement]) {
        if cfg!(target_endian = "big") {
            for e in elements {
                e.name.0 = u32::from_le(e.name.0);
            }
        }
    }

    fn begin(
        hv: &mut H,
        caller: &Caller,
        header: &GetVpRegistersHeader,
        _: &[SetVpRegistersElement],
        _: bool,
    ) -> Result<Kept<H::Snapshot>, SourceError<H::Error>> {
        let target = check_target(header, caller, hv)?;
        Ok(Kept {
            target,
            snapshot: None,
        })
    }

    fn work<R, M>(
        hv: &mut H,
        kept: &mut Kept<H::Snapshot>,
        io: &mut Io<'_, R, M>,
        first: u16,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), Stop<H::Error>>
    where
        R: CallerRegisters + ?Sized,
        M: PartitionMemory + ?Sized,
    {
        let target = &kept.target;
        let own =
            target.partition_id == io.caller.partition_id && target.vp_index == io.caller.vp_index;
        let fast = io.form.is_fast();
        // Step 8d: a VP may not write the registers of its own call.
        let call_register =
            |e: &SetVpRegistersElement| own && io.convention.is_call_register(fast, e.name);
        write_batch(hv, target, elements, call_register).map_err(|(i, error)| Stop {
            index: first.saturating_add(u16::try_from(i).unwrap_or(0)),
            error,
        })
    }
}

/// Steps 8a–8c for `elements`, as one batch: it ends before the first
/// element with reserved bytes set (8a) or that `refused` names; the
/// backend may refuse a name (8b) or value (8c). On failure, the index of
/// the first element not written.
pub(crate) fn write_batch<H, F>(
    hv: &mut H,
    target: &Target,
    elements: &[SetVpRegistersElement],
    refused: F,
) -> Result<(), (usize, SourceError<H::Error>)>
where
    H: WriteRegisters + ?Sized,
    F: Fn(&SetVpRegistersElement) -> bool,
{
    let stop = elements
        .iter()
        .position(|e| e.reserved != [0; 12] || refused(e));
    let batch = elements
        .get(..stop.unwrap_or(elements.len()))
        .unwrap_or_default();
    if !batch.is_empty() {
        hv.write(target, batch)
            .map_err(|f| (f.applied.min(batch.len()), f.error))?;
    }
    match stop {
        Some(i) => Err((i, SourceError::Hv(HvError::INVALID_PARAMETER))),
        None => Ok(()),
    }
}
