//! HvCallSetVpRegisters (0x0051), a rep call against [`WriteRegisters`]
//! (contract §8): a header and (name, value) elements in, no output. Per
//! entry, one batch: the elements up to the first one the dispatcher
//! refuses itself (reserved bytes, step 8a; the caller's own hypercall
//! registers, step 8d) go to [`WriteRegisters::write`], which applies them
//! in order and may refuse a name (8b) or a value (8c).

use hvcall_abi::SetVpRegistersElement as Element;
use hvcall_abi::{call_code, GetVpRegistersHeader, HvError, PAGE_SIZE};

use crate::backend::{Caller, Partitions, SourceError, Target, WriteRegisters};
use crate::checks::check_target;
use crate::end::Kept;
use crate::engine::{Exit, Job, Rep, RepCall, Stop, Work};

/// Bytes of one element.
const ELEMENT: u64 = core::mem::size_of::<Element>() as u64;

/// The 0x0051 call's types and work; listed as [`SetVpRegisters`].
pub struct Set;

/// HvCallSetVpRegisters, as a backend lists it in
/// [`Offers::Calls`](crate::Offers::Calls).
pub type SetVpRegisters = Rep<Set>;

impl<H: Partitions + WriteRegisters + ?Sized> RepCall<H> for Set {
    /// The input list (16 + 32n bytes) fits one page (step 5e).
    const MAX_ELEMENTS: u16 = ((PAGE_SIZE - 16) / ELEMENT) as u16;
    /// No output list.
    const OUTPUT_SIZE: u64 = 0;
    type Element = Element;
    type Header = GetVpRegistersHeader;
    const CODE: u16 = call_code::SET_VP_REGISTERS;

    fn from_le(elements: &mut [Element]) {
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
        _: &[Element],
        _: bool,
    ) -> Result<Kept<H::Snapshot>, SourceError<H::Error>> {
        let target = check_target(header, caller, hv)?;
        Ok(Kept {
            target,
            snapshot: None,
        })
    }

    fn work(job: Job<'_, H>, io: &mut impl Exit, elements: &[Element]) -> Work<H::Error> {
        let target = &job.kept.target;
        let caller = io.caller();
        let own = (target.partition_id, target.vp_index) == (caller.partition_id, caller.vp_index);
        let (convention, fast) = (io.convention(), io.output_gpa().is_none());
        // Step 8d: a VP may not write the registers of its own call.
        let call_register = |e: &Element| own && convention.is_call_register(fast, e.name);
        write_batch(job.hv, target, elements, call_register).map_err(|(i, error)| Stop {
            index: job.first.saturating_add(u16::try_from(i).unwrap_or(0)),
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
    elements: &[Element],
    refused: F,
) -> Result<(), (usize, SourceError<H::Error>)>
where
    H: WriteRegisters + ?Sized,
    F: Fn(&Element) -> bool,
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
