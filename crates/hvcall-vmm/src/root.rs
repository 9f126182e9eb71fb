//! Host-side reads: the root partition (id 1), parent of the VM, reads a
//! VP's registers through the dispatcher's typed host entry point
//! ([`hvcall_dispatch::read_registers`]): the checks a guest's
//! HvCallGetVpRegisters gets, one snapshot holding just the register groups
//! the names need, any number of names. Where the snapshot comes from is
//! the caller's choice: plain ioctls while no vCPU runs
//! ([`crate::Vm::get_vp_registers`] takes `&mut Vm`), or a rendezvous with
//! the running VP ([`crate::inspect::Inspector`]).

use hvcall_abi::{privilege, HvRegisterName, HvRegisterValue, HvStatus, SetVpRegistersElement};
use hvcall_dispatch::{
    read_registers, write_registers, Caller, HostError, HostTarget, PartitionInfo, Partitions,
    ReadRegisters, SnapshotRequest, SourceError, Target, WriteFailure, WriteRegisters,
};

use crate::hypercall::{partition_info, ROOT_PARTITION_ID, VM_PARTITION_ID};
use crate::registers::Groups;
use crate::rendezvous::SnapshotError;
use crate::snapshot::VpSnapshot;

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
    #[error("the VP's state could not be read: {0}")]
    Fetch(String),
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
        Caller::new(ROOT_PARTITION_ID, 0).with_privileges(privilege::ACCESS_VP_REGISTERS)
    }

    fn partition(&self, id: u64) -> Option<PartitionInfo> {
        partition_info(id, self.vp_count)
    }

    fn enabled_vtls(&self, _partition_id: u64, _vp_index: u32) -> u16 {
        1
    }
}

impl ReadRegisters for RootHypervisor<'_> {
    type Snapshot = VpSnapshot;
    type Error = SnapshotError;

    fn snapshot(
        &mut self,
        request: &SnapshotRequest<'_>,
    ) -> Result<VpSnapshot, SourceError<SnapshotError>> {
        let target = request.target;
        if target.partition_id != VM_PARTITION_ID || target.vp_index >= self.vp_count {
            return Err(SourceError::Hv(hvcall_abi::HvError::INVALID_VP_INDEX));
        }
        (self.snapshot)(target.vp_index, Groups::of(request.names)).map_err(SourceError::Host)
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
        if target.partition_id != VM_PARTITION_ID || target.vp_index >= self.vp_count {
            return Err(refused(SourceError::Hv(
                hvcall_abi::HvError::INVALID_VP_INDEX,
            )));
        }
        match self.write.as_mut() {
            Some(sink) => sink(target.vp_index, elements),
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
        HostError::Host(SnapshotError::Fetch(e)) => ReadError::Fetch(e),
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
