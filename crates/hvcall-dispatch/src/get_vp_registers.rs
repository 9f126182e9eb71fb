//! HvCallGetVpRegisters (0x0050), a rep call against [`ReadRegisters`]:
//! a header and register names in, one 16-byte value out per name
//! (docs/contract.md §1 step 7). Every element of one call reads from one
//! snapshot, taken once the checks passed and kept across entries.

use hvcall_abi::{call_code, GetVpRegistersHeader, HvError, HvRegisterName, HvRegisterValue};

use crate::backend::{Caller, Partitions, ReadRegisters, SnapshotRequest, SourceError, Target};
use crate::checks::check_target;
use crate::end::Kept;
use crate::engine::{Exit, Job, Rep, RepCall, Stop, Work};
use crate::memory::PartitionMemory as _;

/// Bytes of one output value.
const VALUE: u64 = 16;

/// HvCallGetVpRegisters, as a backend lists it in
/// [`Offers::Calls`](crate::Offers::Calls).
pub type GetVpRegisters = Rep<Get>;

/// The 0x0050 call's types and work.
pub struct Get;

impl<H: Partitions + ReadRegisters + ?Sized> RepCall<H> for Get {
    const CODE: u16 = call_code::GET_VP_REGISTERS;
    type Header = GetVpRegistersHeader;
    type Element = HvRegisterName;
    const OUTPUT_SIZE: u64 = VALUE;
    /// The output list fits one page (step 5e).
    const MAX_ELEMENTS: u16 = (hvcall_abi::PAGE_SIZE / VALUE) as u16;

    fn from_le(names: &mut [HvRegisterName]) {
        if cfg!(target_endian = "big") {
            for name in names {
                name.0 = u32::from_le(name.0);
            }
        }
    }

    fn begin(
        hv: &mut H,
        caller: &Caller,
        header: &GetVpRegistersHeader,
        names: &[HvRegisterName],
        output_precedes_reads: bool,
    ) -> Result<Kept<H::Snapshot>, SourceError<H::Error>> {
        let (target, snapshot) = open(hv, caller, header, names, output_precedes_reads)?;
        Ok(Kept {
            target,
            snapshot: Some(snapshot),
        })
    }

    fn work(job: Job<'_, H>, io: &mut impl Exit, names: &[HvRegisterName]) -> Work<H::Error> {
        let Job { hv, kept, first } = job;
        let at = |i: usize| first.saturating_add(u16::try_from(i).unwrap_or(u16::MAX));
        let stop = |(i, error)| Stop {
            index: at(i),
            error,
        };
        let Some(snapshot) = kept.snapshot.as_mut() else {
            // `begin` always keeps one.
            return Err(stop((0, SourceError::Hv(HvError::INVALID_PARAMETER))));
        };
        let Some(output_gpa) = io.output_gpa() else {
            return read_each(hv, snapshot, names, |i, value| {
                io.write_fast(at(i), value);
                Ok(())
            })
            .map_err(stop);
        };
        let gpa = output_gpa.wrapping_add(VALUE * u64::from(first));
        let len = VALUE * names.len() as u64;
        if let Some(out) = io
            .memory()
            .lend_mut(gpa, len)
            .filter(|o| o.len() as u64 == len)
        {
            // Bounds checked once: the slice holds exactly this entry's
            // output slots.
            let (slots, _) = out.as_chunks_mut::<{ VALUE as usize }>();
            for ((i, &name), slot) in names.iter().enumerate().zip(slots) {
                match hv.read(snapshot, name) {
                    Ok(value) => *slot = value.0,
                    Err(e) => return Err(stop((i, e))),
                }
            }
            return Ok(());
        }
        read_each(hv, snapshot, names, |i, value| {
            // The output list was RAM when the call was checked; it
            // changed since. Reported like step 5f, at that element.
            let gpa = gpa.wrapping_add(VALUE * i as u64);
            io.memory()
                .write(gpa, &value.0)
                .map_err(|_| HvError::INVALID_ALIGNMENT)
        })
        .map_err(stop)
    }
}

/// Steps 6a–6i, then the snapshot of the target for reading `names`.
#[inline]
pub(crate) fn open<H: Partitions + ReadRegisters + ?Sized>(
    hv: &mut H,
    caller: &Caller,
    header: &GetVpRegistersHeader,
    names: &[HvRegisterName],
    output_precedes_reads: bool,
) -> Result<(Target, H::Snapshot), SourceError<H::Error>> {
    let target = check_target(header, caller, hv)?;
    let request =
        SnapshotRequest::new(target, names).with_output_precedes_reads(output_precedes_reads);
    Ok((target, hv.snapshot(&request)?))
}

/// Read `names` in order from `snapshot`, handing value `i` to `put`;
/// stops at the first name that fails to read or to be put.
pub(crate) fn read_each<H, F>(
    hv: &mut H,
    snapshot: &mut H::Snapshot,
    names: &[HvRegisterName],
    mut put: F,
) -> Result<(), (usize, SourceError<H::Error>)>
where
    H: ReadRegisters + ?Sized,
    F: FnMut(usize, &HvRegisterValue) -> Result<(), HvError>,
{
    for (i, &name) in names.iter().enumerate() {
        let value = hv.read(snapshot, name).map_err(|e| (i, e))?;
        put(i, &value).map_err(|e| (i, SourceError::Hv(e)))?;
    }
    Ok(())
}
