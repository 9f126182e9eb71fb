//! Partition topology: which partitions exist, which VPs each has, and
//! who calls as whom. hvcall knows two partitions: the VM
//! ([`VM_PARTITION_ID`], one VP per vCPU) and its parent, the root
//! partition ([`ROOT_PARTITION_ID`], the host side, with no VP the
//! dispatcher can address).
//!
//! The dispatcher checks every target against `partition_info` first
//! (contract rows 6c–6g); a backend that is handed a target checks it
//! again with `vm_vp`, which refuses with the status of the same rows.

use hvcall_abi::{privilege, HvError};
use hvcall_dispatch::{Caller, PartitionInfo, Target};

/// Most vCPUs (VPs) a VM may have.
pub const MAX_CPUS: u32 = 256;

/// The VM's partition id.
pub const VM_PARTITION_ID: u64 = 2;
/// The root partition's id (the host side of hvcall).
pub const ROOT_PARTITION_ID: u64 = 1;

/// The two partitions hvcall knows, as every caller sees them: the VM
/// (`vm_vp_count` VPs), child of the root partition (which has no VPs the
/// dispatcher can address).
pub(crate) fn partition_info(partition_id: u64, vm_vp_count: u32) -> Option<PartitionInfo> {
    match partition_id {
        VM_PARTITION_ID => Some(PartitionInfo::new(Some(ROOT_PARTITION_ID), vm_vp_count)),
        ROOT_PARTITION_ID => Some(PartitionInfo::new(None, 0)),
        _ => None,
    }
}

/// The VP of the VM (`vm_vp_count` VPs) that `target` names: a target in
/// another partition is INVALID_PARTITION_ID (row 6c), a VP index not
/// below the count INVALID_VP_INDEX (row 6g), on every path.
pub(crate) fn vm_vp(target: &Target, vm_vp_count: u32) -> Result<u32, HvError> {
    if target.partition_id != VM_PARTITION_ID {
        return Err(HvError::INVALID_PARTITION_ID);
    }
    if target.vp_index >= vm_vp_count {
        return Err(HvError::INVALID_VP_INDEX);
    }
    Ok(target.vp_index)
}

/// VP `vp` of the VM as a caller: the privileges and fast-call support
/// its CPUID leaves advertise.
pub(crate) fn guest_caller(vp: u32, privileges: u64, xmm_fast: bool) -> Caller {
    Caller::new(VM_PARTITION_ID, vp)
        .with_privileges(privileges)
        .with_xmm_fast(xmm_fast, xmm_fast)
}

/// The root partition as a caller: it may access the VM's VP registers.
pub(crate) fn root_caller() -> Caller {
    Caller::new(ROOT_PARTITION_ID, 0).with_privileges(privilege::ACCESS_VP_REGISTERS)
}

/// The VTLs enabled on a VP, as a bit set: VTL 0 only, for now.
pub(crate) fn enabled_vtls(_partition_id: u64, _vp_index: u32) -> u16 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vm_is_the_roots_child_and_the_root_has_no_vps() {
        let vm = partition_info(VM_PARTITION_ID, 3).unwrap();
        assert_eq!(vm.parent, Some(ROOT_PARTITION_ID));
        assert_eq!(vm.vp_count, 3);
        let root = partition_info(ROOT_PARTITION_ID, 3).unwrap();
        assert_eq!((root.parent, root.vp_count), (None, 0));
        assert!(partition_info(3, 3).is_none());
    }

    #[test]
    fn step_6c_6g_one_status_per_cause() {
        let at = |partition_id, vp_index| Target::new(partition_id, vp_index, 0);
        assert_eq!(vm_vp(&at(VM_PARTITION_ID, 1), 2), Ok(1));
        assert_eq!(
            vm_vp(&at(VM_PARTITION_ID, 2), 2),
            Err(HvError::INVALID_VP_INDEX)
        );
        assert_eq!(
            vm_vp(&at(ROOT_PARTITION_ID, 0), 2),
            Err(HvError::INVALID_PARTITION_ID)
        );
    }
}
