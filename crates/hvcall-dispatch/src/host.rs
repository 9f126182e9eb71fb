//! Reads and writes made by the host itself (a parent partition, a
//! debugger, a tool): the checks of contract §1 steps 6a–6i, then one
//! snapshot ([`read_registers`]) or one batch of writes
//! ([`write_registers`], §8), without a guest control word, guest memory
//! or a limit on the number of registers.
//!
//! ```
//! use hvcall_abi::{privilege, HvError, HvRegisterName, HvRegisterValue};
//! use hvcall_dispatch::{
//!     read_registers, Caller, HostTarget, HostError, PartitionInfo, Partitions,
//!     ReadRegisters, SnapshotRequest, SourceError,
//! };
//!
//! /// The root (1) with one child VM (2) of one VP whose registers read as
//! /// their names; name 0 is unknown.
//! struct Root;
//! impl Partitions for Root {
//!     fn caller(&self) -> Caller {
//!         Caller::new(1, 0).with_privileges(privilege::ACCESS_VP_REGISTERS)
//!     }
//!     fn partition(&self, id: u64) -> Option<PartitionInfo> {
//!         match id {
//!             1 => Some(PartitionInfo::new(None, 0)),
//!             2 => Some(PartitionInfo::new(Some(1), 1)),
//!             _ => None,
//!         }
//!     }
//!     fn enabled_vtls(&self, _: u64, _: u32) -> u16 { 1 }
//! }
//! impl ReadRegisters for Root {
//!     type Snapshot = ();
//!     type Error = std::convert::Infallible;
//!     fn snapshot(&mut self, _: &SnapshotRequest<'_>) -> Result<(), SourceError<Self::Error>> {
//!         Ok(())
//!     }
//!     fn read(&mut self, _: &mut (), name: HvRegisterName)
//!         -> Result<HvRegisterValue, SourceError<Self::Error>> {
//!         match name.0 {
//!             0 => Err(SourceError::Hv(HvError::INVALID_PARAMETER)),
//!             n => Ok(HvRegisterValue::from(u64::from(n))),
//!         }
//!     }
//! }
//!
//! let mut values = [HvRegisterValue::default(); 2];
//! let names = [HvRegisterName(0x2_0000), HvRegisterName(0x2_0010)];
//! read_registers(&mut Root, &HostTarget::new(2, 0), &names, &mut values).unwrap();
//! assert_eq!(values[1].as_u64(), 0x2_0010);
//!
//! let names = [HvRegisterName(0x2_0000), HvRegisterName(0)];
//! let err = read_registers(&mut Root, &HostTarget::new(2, 0), &names, &mut values);
//! assert_eq!(err, Err(HostError::Hv { error: HvError::INVALID_PARAMETER, index: 1 }));
//! let err = read_registers(&mut Root, &HostTarget::new(2, 5), &names, &mut values);
//! assert_eq!(err, Err(HostError::Hv { error: HvError::INVALID_VP_INDEX, index: 0 }));
//! ```

use hvcall_abi::{
    GetVpRegistersHeader, HvError, HvInputVtl, HvRegisterName, HvRegisterValue,
    SetVpRegistersElement,
};

use crate::backend::{Partitions, ReadRegisters, SourceError, WriteRegisters};
use crate::checks::check_target;
use crate::{get_vp_registers, set_vp_registers};

/// Whose registers a host read or write is for: the header of contract §1
/// step 6.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostTarget {
    /// Target partition (or `partition_id::SELF`, the host's own).
    pub partition_id: u64,
    /// Target VP index (or `vp_index::SELF`).
    pub vp_index: u32,
    /// Target VTL selection (default: the caller's VTL).
    pub input_vtl: HvInputVtl,
}

impl HostTarget {
    /// VP `vp_index` of `partition_id`, in the host caller's VTL.
    pub const fn new(partition_id: u64, vp_index: u32) -> Self {
        Self {
            partition_id,
            vp_index,
            input_vtl: HvInputVtl::new(),
        }
    }

    /// The same read with the VTL selection `input_vtl`.
    pub const fn with_input_vtl(self, input_vtl: HvInputVtl) -> Self {
        Self { input_vtl, ..self }
    }

    /// The header a guest would pass for this target.
    fn header(&self) -> GetVpRegistersHeader {
        GetVpRegistersHeader::new(self.partition_id, self.vp_index, self.input_vtl)
    }
}

/// Why a host read or write failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostError<E> {
    /// The status a guest would get; `index` is the name it stopped at (0
    /// for a check before the first name). `values[..index]` are valid.
    Hv {
        /// The status.
        error: HvError,
        /// The failing name's index.
        index: usize,
    },
    /// The register source failed on the host side.
    Host(E),
    /// `names` and `values` differ in length.
    LengthMismatch {
        /// Names given.
        names: usize,
        /// Values given.
        values: usize,
    },
}

/// Reads `names` of one VP into `values` as `hv`'s caller (normally the
/// root partition) would with HvCallGetVpRegisters: the same checks, one
/// snapshot for every name, values in order.
pub fn read_registers<H>(
    hv: &mut H,
    read: &HostTarget,
    names: &[HvRegisterName],
    values: &mut [HvRegisterValue],
) -> Result<(), HostError<H::Error>>
where
    H: Partitions + ReadRegisters + ?Sized,
{
    if names.len() != values.len() {
        return Err(HostError::LengthMismatch {
            names: names.len(),
            values: values.len(),
        });
    }
    let caller = hv.caller();
    let (_, mut snapshot) =
        get_vp_registers::open(hv, &caller, &read.header(), names, false).map_err(failed(0))?;
    let mut slots = values.iter_mut();
    get_vp_registers::read_each(hv, &mut snapshot, names, |_, value| {
        if let Some(slot) = slots.next() {
            *slot = *value;
        }
        Ok(())
    })
    .map_err(|(index, e)| failed(index)(e))
}

/// Writes `elements` to one VP as `hv`'s caller (normally the root
/// partition) would with HvCallSetVpRegisters (contract §8): the same
/// checks (steps 6a–6i, then 8a for each element's reserved bytes) and one
/// batch, so a running VP takes every write between two of its
/// instructions. On failure, `index` is the first element not written.
pub fn write_registers<H>(
    hv: &mut H,
    target: &HostTarget,
    elements: &[SetVpRegistersElement],
) -> Result<(), HostError<H::Error>>
where
    H: Partitions + WriteRegisters + ?Sized,
{
    let caller = hv.caller();
    let resolved = check_target(&target.header(), &caller, hv)
        .map_err(|error| HostError::Hv { error, index: 0 })?;
    // The host is not a VP making a call: no step 8d.
    set_vp_registers::write_batch(hv, &resolved, elements, |_| false)
        .map_err(|(index, e)| failed(index)(e))
}

/// A backend failure at element `index`, as a host error.
fn failed<E>(index: usize) -> impl Fn(SourceError<E>) -> HostError<E> {
    move |e| match e {
        SourceError::Hv(error) => HostError::Hv { error, index },
        SourceError::Host(e) => HostError::Host(e),
    }
}
