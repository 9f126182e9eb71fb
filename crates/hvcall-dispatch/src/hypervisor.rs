//! The partition and VP side of a hypercall: who calls, which partitions
//! and VPs exist, and how to read a register of a (VP, VTL).

use hvcall_abi::{HvRegisterName, HvRegisterValue, HvStatus};

/// The calling VP and what its partition may do.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's partition id (never SELF).
    pub partition_id: u64,
    /// The caller's VP index (never SELF).
    pub vp_index: u32,
    /// The VTL the caller runs in.
    pub vtl: u8,
    /// The caller partition's privilege mask (HV_PARTITION_PRIVILEGE_MASK).
    pub privileges: u64,
    /// Whether XMM fast input is advertised (CPUID 0x40000003 EDX bit 4).
    pub xmm_fast_input: bool,
    /// Whether XMM fast output is advertised (CPUID 0x40000003 EDX bit 15).
    pub xmm_fast_output: bool,
}

/// What the dispatcher needs to know about a partition.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The parent partition's id; `None` for the root.
    pub parent: Option<u64>,
    /// Number of VPs; valid VP indexes are `0..vp_count`.
    pub vp_count: u32,
}

/// The (partition, VP, VTL) a call reads, with SELF resolved.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Target partition id (never SELF).
    pub partition_id: u64,
    /// Target VP index (never SELF).
    pub vp_index: u32,
    /// Target VTL.
    pub vtl: u8,
}

/// The hypervisor state the dispatcher reads through.
///
/// A call reads registers from one [`Hypervisor::Snapshot`] taken once, on
/// the call's first entry, and kept across continuations, so every value
/// of one call comes from the same moment. The snapshot is told every name
/// the call will read, so it can capture just the state those need.
pub trait Hypervisor {
    /// A consistent view of one (VP, VTL). It may be filled lazily (for
    /// example register groups fetched on first use), but must not change
    /// once a value from it has been returned.
    type Snapshot;

    /// The calling VP.
    fn caller(&self) -> Caller;
    /// The partition with id `partition_id` (never SELF), if it exists.
    fn partition(&self, partition_id: u64) -> Option<PartitionInfo>;
    /// The set of VTLs enabled on a VP (bit v = VTL v). The VP exists.
    fn enabled_vtls(&self, partition_id: u64, vp_index: u32) -> u16;
    /// Take a snapshot of the target, which passed every check. `names`
    /// are the elements `rep_start..rep_count` of the call, in order: the
    /// only names [`Hypervisor::read_register`] will be asked for with
    /// this snapshot, on this entry and every continuation.
    fn snapshot(
        &mut self,
        target: &Target,
        names: &[HvRegisterName],
    ) -> Result<Self::Snapshot, HvStatus>;
    /// Read one register from a snapshot. An unknown, write-only or
    /// unreadable name gives `HV_STATUS_INVALID_PARAMETER`.
    fn read_register(
        &mut self,
        snapshot: &mut Self::Snapshot,
        name: HvRegisterName,
    ) -> Result<HvRegisterValue, HvStatus>;
}
