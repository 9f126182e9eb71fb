//! Host-side reads: the root partition (id 1), parent of the VM, reads a
//! VP's registers through the dispatcher's typed host entry point
//! ([`hvcall_dispatch::read_registers`]): the checks a guest's
//! HvCallGetVpRegisters gets, one snapshot holding just the register groups
//! the names need, any number of names. Where the snapshot comes from is
//! the caller's choice: plain ioctls while no vCPU runs
//! ([`crate::Vm::get_vp_registers`] takes `&mut Vm`), or a rendezvous with
//! the running VP ([`crate::host::inspect::Inspector`]).

use hvcall_abi::{HvRegisterName, HvRegisterValue, HvStatus, SetVpRegistersElement};
use hvcall_dispatch::{
    read_registers, write_registers, Caller, HostError, HostTarget, PartitionInfo, Partitions,
    ReadRegisters, SnapshotRequest, SourceError, Target, WriteFailure, WriteRegisters,
};

use crate::state::registers::Groups;
use crate::state::snapshot::VpSnapshot;
use crate::state::SnapshotError;
use crate::topology;

/// Why a host read failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Refused as a guest's call would be (unknown name, no such VP...):
    /// its status and the index of the failing name in the caller's list.
    #[error("{status} at register {index}")]
    Call {
        /// The status the call would return.
        status: HvStatus,
        /// Index of the failing name (0 for a check before the first).
        index: usize,
    },
    /// The VM ended before or during the read: nothing runs any more.
    #[error("the VM ended")]
    Ended,
    /// KVM could not read the VP's state.
    #[error("the VP's state could not be read")]
    Fetch(#[source] SnapshotError),
    /// KVM could not write the VP's state (a refused value is
    /// [`Self::Call`] with INVALID_REGISTER_VALUE, contract 8c).
    #[error("the VP's state could not be written")]
    Write(#[source] SnapshotError),
}

/// Takes one snapshot of VP `vp` (an existing VP of the VM) holding the
/// given groups.
pub(crate) type SnapshotSource<'a> =
    dyn FnMut(u32, Groups) -> Result<VpSnapshot, SnapshotError> + 'a;

/// Writes a batch of registers to VP `vp` (an existing VP of the VM), in
/// order, stopping at the first refused one.
pub(crate) type WriteSink<'a> =
    dyn FnMut(u32, &[SetVpRegistersElement]) -> Result<(), WriteFailure<SnapshotError>> + 'a;

/// The root partition's view: the VM (`vp_count` VPs) is its child.
pub(crate) struct RootHypervisor<'a> {
    pub(crate) vp_count: u32,
    pub(crate) snapshot: &'a mut SnapshotSource<'a>,
    /// Where writes go; `None`: this view only reads.
    pub(crate) write: Option<&'a mut WriteSink<'a>>,
}

impl Partitions for RootHypervisor<'_> {
    fn caller(&self) -> Caller {
        topology::root_caller()
    }

    fn partition(&self, id: u64) -> Option<PartitionInfo> {
        topology::partition_info(id, self.vp_count)
    }

    fn enabled_vtls(&self, partition_id: u64, vp_index: u32) -> u16 {
        topology::enabled_vtls(partition_id, vp_index)
    }
}

impl ReadRegisters for RootHypervisor<'_> {
    type Snapshot = VpSnapshot;
    type Error = SnapshotError;

    fn snapshot(
        &mut self,
        request: &SnapshotRequest<'_>,
    ) -> Result<VpSnapshot, SourceError<SnapshotError>> {
        let vp = topology::vm_vp(&request.target, self.vp_count).map_err(SourceError::Hv)?;
        (self.snapshot)(vp, Groups::of(request.names)).map_err(SourceError::Host)
    }

    fn read(
        &mut self,
        snapshot: &mut VpSnapshot,
        name: HvRegisterName,
    ) -> Result<HvRegisterValue, SourceError<SnapshotError>> {
        snapshot.read_held(name).map_err(SourceError::Hv)
    }
}

/// Without a sink every name is read-only (step 8b).
impl WriteRegisters for RootHypervisor<'_> {
    fn write(
        &mut self,
        target: &Target,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), WriteFailure<SnapshotError>> {
        let refused = |error| WriteFailure { applied: 0, error };
        let vp = topology::vm_vp(target, self.vp_count).map_err(|e| refused(SourceError::Hv(e)))?;
        match self.write.as_mut() {
            Some(sink) => sink(vp, elements),
            None => Err(refused(SourceError::Hv(
                hvcall_abi::HvError::INVALID_PARAMETER,
            ))),
        }
    }
}

/// Writes `elements` to `target` as the root partition.
pub(crate) fn set_vp_registers(
    hv: &mut RootHypervisor<'_>,
    target: &HostTarget,
    elements: &[SetVpRegistersElement],
) -> Result<(), ReadError> {
    write_registers(hv, target, elements).map_err(host_error)
}

fn host_error(e: HostError<SnapshotError>) -> ReadError {
    match e {
        HostError::Hv { error, index } => ReadError::Call {
            status: error.status(),
            index,
        },
        HostError::Host(SnapshotError::Ended) => ReadError::Ended,
        HostError::Host(e @ (SnapshotError::Write(_) | SnapshotError::Slots(_))) => {
            ReadError::Write(e)
        }
        HostError::Host(e) => ReadError::Fetch(e),
        // `values` has the length of `names`; any other failure the
        // dispatcher may add one day is reported as a refused call.
        _ => ReadError::Call {
            status: HvStatus::INVALID_PARAMETER,
            index: 0,
        },
    }
}

/// Reads `names` of `target` as the root partition.
pub(crate) fn get_vp_registers(
    hv: &mut RootHypervisor<'_>,
    target: &HostTarget,
    names: &[HvRegisterName],
) -> Result<Vec<HvRegisterValue>, ReadError> {
    let mut values = vec![HvRegisterValue::default(); names.len()];
    read_registers(hv, target, names, &mut values).map_err(host_error)?;
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::registers::Group;
    use crate::state::snapshot::{FetchError, FlushError};

    /// The errno at the end of `e`'s source chain, if any.
    fn kvm_errno(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
        let mut at = Some(e);
        while let Some(e) = at {
            if let Some(kvm) = e.downcast_ref::<kvm_ioctls::Error>() {
                return Some(kvm.errno());
            }
            at = e.source();
        }
        None
    }

    #[test]
    fn a_failed_fetch_keeps_the_kvm_error_as_its_source() {
        let source = kvm_ioctls::Error::new(libc::EIO);
        let fetch = SnapshotError::Fetch(FetchError {
            group: Group::Msrs,
            source,
        });
        let e = host_error(HostError::Host(fetch));
        assert!(matches!(e, ReadError::Fetch(_)), "{e:?}");
        assert_eq!(kvm_errno(&e), Some(libc::EIO));
    }

    #[test]
    fn a_failed_write_is_a_write_error_with_its_kvm_source() {
        let source = kvm_ioctls::Error::new(libc::EFAULT);
        let flush = SnapshotError::Write(FlushError {
            group: Group::Sync,
            source,
        });
        let e = host_error(HostError::Host(flush));
        assert!(matches!(e, ReadError::Write(_)), "{e:?}");
        assert_eq!(kvm_errno(&e), Some(libc::EFAULT));
    }
}
