//! The partition hierarchy, VPs and their VTL-banked register files: the
//! model's implementation of [`Partitions`], [`ReadRegisters`] and
//! [`WriteRegisters`], and [`ReadOnly`], the same model offering reads only.

use std::collections::BTreeMap;

use std::convert::Infallible;

use hvcall_abi::name::common;
use hvcall_abi::{
    privilege, Arch, HvError, HvRegisterName, HvRegisterValue, SetVpRegistersElement,
};
use hvcall_dispatch::{
    Caller, GetVpRegisters, Offers, PartitionInfo, Partitions, ReadRegisters, SetVpRegisters,
    SnapshotRequest, SourceError, Target, WriteFailure, WriteRegisters,
};

use hvcall_abi::vtl::is_shared;

/// Id of the root partition (the host side of hvcall).
pub const ROOT_PARTITION: u64 = 1;
/// Id of the VM that hvcall runs (a child of the root).
pub const VM_PARTITION: u64 = 2;

/// One virtual processor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vp {
    /// The VTL the VP currently runs in.
    pub active_vtl: u8,
    /// Enabled VTLs, bit v = VTL v. VTL 0 is always enabled by the builder.
    pub enabled_vtls: u16,
    shared: BTreeMap<HvRegisterName, HvRegisterValue>,
    private: BTreeMap<(u8, HvRegisterName), HvRegisterValue>,
}

impl Vp {
    /// The value of `name` as seen from `vtl`, if the register exists.
    pub fn register(&self, arch: Arch, vtl: u8, name: HvRegisterName) -> Option<HvRegisterValue> {
        if is_shared(arch, name) {
            self.shared.get(&name).copied()
        } else {
            self.private.get(&(vtl, name)).copied()
        }
    }

    /// Set `name` as seen from `vtl` (for a shared register: for every
    /// VTL). A register that was never set does not exist: reading it
    /// fails with `HV_STATUS_INVALID_PARAMETER`, which is how the model
    /// represents unknown and write-only names.
    pub fn set_register(
        &mut self,
        arch: Arch,
        vtl: u8,
        name: HvRegisterName,
        value: HvRegisterValue,
    ) {
        if is_shared(arch, name) {
            self.shared.insert(name, value);
        } else {
            self.private.insert((vtl, name), value);
        }
    }

    /// Every register readable from `vtl`, in name order.
    pub fn registers(&self, vtl: u8) -> BTreeMap<HvRegisterName, HvRegisterValue> {
        let mut all = self.shared.clone();
        all.extend(
            self.private
                .iter()
                .filter(|((v, _), _)| *v == vtl)
                .map(|((_, n), value)| (*n, *value)),
        );
        all
    }
}

/// One partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The parent's id; `None` for the root.
    pub parent: Option<u64>,
    /// The privilege mask (HV_PARTITION_PRIVILEGE_MASK).
    pub privileges: u64,
    /// XMM fast input advertised (CPUID 0x40000003 EDX bit 4).
    pub xmm_fast_input: bool,
    /// XMM fast output advertised (CPUID 0x40000003 EDX bit 15).
    pub xmm_fast_output: bool,
    /// The VPs; VP index = position.
    pub vps: Vec<Vp>,
}

/// A consistent copy of one (VP, VTL)'s registers, taken once per call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSnapshot {
    /// The (partition, VP, VTL) it was taken of.
    pub target: Target,
    /// The registers the call said it would read (those that exist). Any
    /// other name reads as `HV_STATUS_INVALID_PARAMETER`, so a dispatcher
    /// that reads a name it did not announce is caught by the tests.
    pub registers: BTreeMap<HvRegisterName, HvRegisterValue>,
}

/// The in-memory hypervisor: partitions, VPs, and which VP is calling.
///
/// Build one with [`Model::builder`](crate::ModelBuilder) or
/// [`Model::standard`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    pub(crate) arch: Arch,
    pub(crate) partitions: BTreeMap<u64, Partition>,
    pub(crate) caller: (u64, u32),
    pub(crate) snapshots_taken: u64,
    pub(crate) registers_read: u64,
    pub(crate) registers_written: u64,
    pub(crate) last_snapshot_names: Vec<HvRegisterName>,
}

impl Model {
    /// The architecture of every VP.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The partition `id`.
    pub fn partition_mut(&mut self, id: u64) -> Option<&mut Partition> {
        self.partitions.get_mut(&id)
    }

    /// VP `vp` of partition `id`.
    pub fn vp(&self, id: u64, vp: u32) -> Option<&Vp> {
        self.partitions.get(&id)?.vps.get(usize::try_from(vp).ok()?)
    }

    /// VP `vp` of partition `id`, mutable.
    pub fn vp_mut(&mut self, id: u64, vp: u32) -> Option<&mut Vp> {
        self.partitions
            .get_mut(&id)?
            .vps
            .get_mut(usize::try_from(vp).ok()?)
    }

    /// Set a register of (partition, VP, VTL); `false` if the VP does not
    /// exist.
    pub fn set_register(
        &mut self,
        id: u64,
        vp: u32,
        vtl: u8,
        name: HvRegisterName,
        value: HvRegisterValue,
    ) -> bool {
        let arch = self.arch;
        self.vp_mut(id, vp)
            .map(|v| v.set_register(arch, vtl, name, value))
            .is_some()
    }

    /// Make VP `vp` of partition `id` the caller of the next hypercalls.
    pub fn set_caller(&mut self, id: u64, vp: u32) {
        self.caller = (id, vp);
    }

    /// The calling (partition, VP).
    pub fn caller_id(&self) -> (u64, u32) {
        self.caller
    }

    /// How many snapshots were taken so far (one per call that passed
    /// every check, however many entries it took).
    pub fn snapshots_taken(&self) -> u64 {
        self.snapshots_taken
    }

    /// The names the last snapshot was told the call would read.
    pub fn last_snapshot_names(&self) -> &[HvRegisterName] {
        &self.last_snapshot_names
    }

    /// How many register reads were made so far.
    pub fn registers_read(&self) -> u64 {
        self.registers_read
    }

    /// How many registers writes have set.
    pub fn registers_written(&self) -> u64 {
        self.registers_written
    }
}

impl Partitions for Model {
    fn caller(&self) -> Caller {
        let (partition_id, vp_index) = self.caller;
        let partition = self.partitions.get(&partition_id);
        Caller::new(partition_id, vp_index)
            .with_vtl(self.vp(partition_id, vp_index).map_or(0, |v| v.active_vtl))
            .with_privileges(partition.map_or(0, |p| p.privileges))
            .with_xmm_fast(
                partition.is_some_and(|p| p.xmm_fast_input),
                partition.is_some_and(|p| p.xmm_fast_output),
            )
    }

    fn partition(&self, partition_id: u64) -> Option<PartitionInfo> {
        let p = self.partitions.get(&partition_id)?;
        Some(PartitionInfo::new(
            p.parent,
            u32::try_from(p.vps.len()).unwrap_or(u32::MAX),
        ))
    }

    fn enabled_vtls(&self, partition_id: u64, vp_index: u32) -> u16 {
        self.vp(partition_id, vp_index)
            .map_or(0, |v| v.enabled_vtls)
    }
}

impl ReadRegisters for Model {
    type Snapshot = ModelSnapshot;
    /// The model never fails on the host side.
    type Error = Infallible;

    fn snapshot(
        &mut self,
        request: &SnapshotRequest<'_>,
    ) -> Result<ModelSnapshot, SourceError<Infallible>> {
        let target = request.target;
        let vp = self
            .vp(target.partition_id, target.vp_index)
            .ok_or(HvError::INVALID_VP_INDEX)?;
        let registers = request
            .names
            .iter()
            .filter_map(|&n| Some((n, vp.register(self.arch, target.vtl, n)?)))
            .collect();
        self.snapshots_taken += 1;
        self.last_snapshot_names = request.names.to_vec();
        Ok(ModelSnapshot { target, registers })
    }

    fn read(
        &mut self,
        snapshot: &mut ModelSnapshot,
        name: HvRegisterName,
    ) -> Result<HvRegisterValue, SourceError<Infallible>> {
        self.registers_read += 1;
        Ok(snapshot
            .registers
            .get(&name)
            .copied()
            .ok_or(HvError::INVALID_PARAMETER)?)
    }
}

impl WriteRegisters for Model {
    /// Writes in order: a name the target VP does not have in that VTL, or
    /// one of [`READ_ONLY`], is refused (contract step 8b); every value is
    /// taken as it is (the model has no architectural rules, step 8c).
    fn write(
        &mut self,
        target: &Target,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), WriteFailure<Infallible>> {
        let arch = self.arch;
        for (applied, e) in elements.iter().enumerate() {
            let vp = self.vp_mut(target.partition_id, target.vp_index);
            let writable = !READ_ONLY.contains(&e.name)
                && vp
                    .as_ref()
                    .is_some_and(|v| v.register(arch, target.vtl, e.name).is_some());
            match vp {
                Some(vp) if writable => vp.set_register(arch, target.vtl, e.name, e.value),
                _ => {
                    return Err(WriteFailure {
                        applied,
                        error: SourceError::Hv(HvError::INVALID_PARAMETER),
                    })
                }
            }
            self.registers_written += 1;
        }
        Ok(())
    }
}

/// The model offers HvCallGetVpRegisters and HvCallSetVpRegisters.
impl Offers for Model {
    type Calls = (GetVpRegisters, SetVpRegisters);
}

/// A model that offers HvCallGetVpRegisters only, as a VMM that does not
/// write registers: 0x0051 is an unimplemented call code (contract step
/// 4), and a host write refuses every element (step 8b).
#[derive(Debug)]
pub struct ReadOnly<'a>(pub &'a mut Model);

impl Partitions for ReadOnly<'_> {
    fn caller(&self) -> Caller {
        self.0.caller()
    }
    fn partition(&self, partition_id: u64) -> Option<PartitionInfo> {
        self.0.partition(partition_id)
    }
    fn enabled_vtls(&self, partition_id: u64, vp_index: u32) -> u16 {
        self.0.enabled_vtls(partition_id, vp_index)
    }
}

impl ReadRegisters for ReadOnly<'_> {
    type Snapshot = ModelSnapshot;
    type Error = Infallible;
    fn snapshot(
        &mut self,
        request: &SnapshotRequest<'_>,
    ) -> Result<ModelSnapshot, SourceError<Infallible>> {
        self.0.snapshot(request)
    }
    fn read(
        &mut self,
        snapshot: &mut ModelSnapshot,
        name: HvRegisterName,
    ) -> Result<HvRegisterValue, SourceError<Infallible>> {
        self.0.read(snapshot, name)
    }
}

/// Every name is read-only (step 8b).
impl WriteRegisters for ReadOnly<'_> {
    fn write(
        &mut self,
        _: &Target,
        _: &[SetVpRegistersElement],
    ) -> Result<(), WriteFailure<Infallible>> {
        Err(WriteFailure {
            applied: 0,
            error: SourceError::Hv(HvError::INVALID_PARAMETER),
        })
    }
}

impl Offers for ReadOnly<'_> {
    type Calls = (GetVpRegisters,);
}

/// Registers the model refuses to write (contract §8, "read only"): the
/// synthetic registers a guest may only read.
pub const READ_ONLY: &[HvRegisterName] = &[
    common::VP_INDEX,
    common::TIME_REF_COUNT,
    common::VSM_VP_STATUS,
    common::VSM_PARTITION_STATUS,
    common::INTERNAL_ACTIVITY_STATE,
    common::VP_ASSIST_PAGE,
    common::HYPERVISOR_VERSION,
    common::PRIVILEGES_AND_FEATURES_INFO,
    common::FEATURES_INFO,
    common::IMPLEMENTATION_LIMITS_INFO,
    common::HARDWARE_FEATURES_INFO,
];

/// The privileges a partition gets unless configured otherwise:
/// AccessVpRegisters (the others do not matter to the dispatcher).
pub const DEFAULT_PRIVILEGES: u64 =
    privilege::ACCESS_VP_REGISTERS | privilege::ACCESS_HYPERCALL_MSRS | privilege::ACCESS_VP_INDEX;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::standard_value;

    const RAX: HvRegisterName = HvRegisterName(0x0002_0000);

    fn request(target: Target, names: &[HvRegisterName]) -> SnapshotRequest<'_> {
        SnapshotRequest::new(target, names)
    }
    const RIP: HvRegisterName = HvRegisterName(0x0002_0010);

    #[test]
    fn shared_registers_have_one_copy_private_ones_one_per_vtl() {
        let mut vp = Vp::default();
        vp.set_register(Arch::X64, 0, RAX, HvRegisterValue::from(1u8));
        vp.set_register(Arch::X64, 1, RAX, HvRegisterValue::from(2u8));
        vp.set_register(Arch::X64, 0, RIP, HvRegisterValue::from(3u8));
        vp.set_register(Arch::X64, 1, RIP, HvRegisterValue::from(4u8));
        assert_eq!(
            vp.register(Arch::X64, 0, RAX),
            Some(HvRegisterValue::from(2u8))
        );
        assert_eq!(
            vp.register(Arch::X64, 1, RAX),
            Some(HvRegisterValue::from(2u8))
        );
        assert_eq!(
            vp.register(Arch::X64, 0, RIP),
            Some(HvRegisterValue::from(3u8))
        );
        assert_eq!(
            vp.register(Arch::X64, 1, RIP),
            Some(HvRegisterValue::from(4u8))
        );
        assert_eq!(vp.register(Arch::X64, 2, RIP), None);
        assert_eq!(vp.registers(1).len(), 2);
    }

    #[test]
    fn a_snapshot_is_a_copy_taken_once() {
        let mut model = Model::standard(Arch::X64);
        let target = Target::new(VM_PARTITION, 1, 0);
        let unknown = HvRegisterName(0x1234);
        let mut snap = model.snapshot(&request(target, &[RIP, unknown])).unwrap();
        model.set_register(VM_PARTITION, 1, 0, RIP, HvRegisterValue::from(0xBADu64));
        assert_eq!(
            model.read(&mut snap, RIP),
            Ok(standard_value(VM_PARTITION, 1, 0, RIP))
        );
        assert_eq!(
            model.read(&mut snap, unknown),
            Err(SourceError::Hv(HvError::INVALID_PARAMETER))
        );
        assert_eq!((model.snapshots_taken(), model.registers_read()), (1, 2));
        assert_eq!(model.last_snapshot_names(), [RIP, unknown]);
    }

    #[test]
    fn a_snapshot_holds_only_the_names_the_call_announced() {
        let mut model = Model::standard(Arch::X64);
        let target = Target::new(VM_PARTITION, 0, 0);
        let mut snap = model.snapshot(&request(target, &[RAX])).unwrap();
        assert_eq!(
            model.read(&mut snap, RAX),
            Ok(standard_value(VM_PARTITION, 0, 0, RAX))
        );
        assert_eq!(
            model.read(&mut snap, RIP),
            Err(SourceError::Hv(HvError::INVALID_PARAMETER)),
            "RIP exists but was not announced"
        );
    }

    #[test]
    fn caller_and_partitions_come_from_the_configuration() {
        let model = Model::builder(Arch::Arm64)
            .partition(VM_PARTITION, ROOT_PARTITION, 3)
            .privileges(VM_PARTITION, 0)
            .xmm_fast(VM_PARTITION, true, false)
            .vtls(VM_PARTITION, 2, 0b11, 1)
            .caller(VM_PARTITION, 2)
            .build();
        let caller = model.caller();
        assert_eq!(
            (caller.partition_id, caller.vp_index, caller.vtl),
            (2, 2, 1)
        );
        assert_eq!(caller.privileges, 0);
        assert!(caller.xmm_fast_input && !caller.xmm_fast_output);
        assert_eq!(
            model.partition(VM_PARTITION),
            Some(PartitionInfo::new(Some(ROOT_PARTITION), 3))
        );
        assert_eq!(
            model.partition(ROOT_PARTITION).map(|p| p.parent),
            Some(None)
        );
        assert_eq!(model.partition(0), None);
        assert_eq!(model.enabled_vtls(VM_PARTITION, 2), 0b11);
        assert_eq!(model.enabled_vtls(VM_PARTITION, 3), 0);
    }
}
