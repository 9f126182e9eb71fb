//! What the dispatcher asks of a VMM: [`Partitions`] (who calls, which
//! partitions, VPs and VTLs exist, what the caller may do), one backend
//! trait per call ([`ReadRegisters`] for HvCallGetVpRegisters: values read
//! from one snapshot per call; [`WriteRegisters`] for HvCallSetVpRegisters:
//! one batch of writes per entry), and [`Offers`], the list of calls the
//! VMM offers. One type may implement all (the reference model does);
//! [`Backend`] pairs a [`Partitions`] with a separate register backend.
//! [`Hypervisor`](crate::Hypervisor) names the whole, as
//! [`dispatch`](crate::dispatch()) takes it.
//!
//! Failures are typed: [`SourceError::Hv`] carries an [`HvError`], the
//! status the guest gets; [`SourceError::Host`] is the VMM's own failure
//! (an ioctl, a VP that went away), which ends the call without any
//! status and comes back out of [`dispatch`](crate::dispatch()).

use hvcall_abi::{HvError, HvRegisterName, HvRegisterValue, SetVpRegistersElement};

/// The calling VP and what its partition may do.
///
/// ```
/// use hvcall_abi::privilege;
/// use hvcall_dispatch::Caller;
/// let caller = Caller::new(2, 0)
///     .with_privileges(privilege::ACCESS_VP_REGISTERS)
///     .with_xmm_fast(true, true);
/// assert_eq!((caller.partition_id, caller.vtl), (2, 0));
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Caller {
    /// The caller's partition id (never SELF).
    pub partition_id: u64,
    /// The caller's VP index (never SELF).
    pub vp_index: u32,
    /// The VTL the caller runs in.
    pub vtl: u8,
    /// The caller partition's privilege mask (`hvcall_abi::privilege`).
    pub privileges: u64,
    /// Whether XMM fast input is advertised (CPUID 0x40000003 EDX bit 4).
    pub xmm_fast_input: bool,
    /// Whether XMM fast output is advertised (CPUID 0x40000003 EDX bit 15).
    pub xmm_fast_output: bool,
}

impl Caller {
    /// VP `vp_index` of partition `partition_id`, in VTL 0, with no
    /// privileges and no XMM fast forms.
    pub const fn new(partition_id: u64, vp_index: u32) -> Self {
        Self {
            partition_id,
            vp_index,
            vtl: 0,
            privileges: 0,
            xmm_fast_input: false,
            xmm_fast_output: false,
        }
    }

    /// The same caller running in `vtl`.
    pub const fn with_vtl(self, vtl: u8) -> Self {
        Self { vtl, ..self }
    }

    /// The same caller with the privilege mask `privileges`.
    pub const fn with_privileges(self, privileges: u64) -> Self {
        Self { privileges, ..self }
    }

    /// The same caller with the XMM fast input and output bits as given.
    pub const fn with_xmm_fast(self, input: bool, output: bool) -> Self {
        Self {
            xmm_fast_input: input,
            xmm_fast_output: output,
            ..self
        }
    }
}

/// What the dispatcher needs to know about a partition.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionInfo {
    /// The parent partition's id; `None` for the root.
    pub parent: Option<u64>,
    /// Number of VPs; valid VP indexes are `0..vp_count`.
    pub vp_count: u32,
}

impl PartitionInfo {
    /// A partition with `vp_count` VPs, child of `parent` (`None`: the root).
    pub const fn new(parent: Option<u64>, vp_count: u32) -> Self {
        Self { parent, vp_count }
    }
}

/// The (partition, VP, VTL) a call reads, with SELF resolved and every
/// check passed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Target {
    /// Target partition id (never SELF).
    pub partition_id: u64,
    /// Target VP index (never SELF).
    pub vp_index: u32,
    /// Target VTL.
    pub vtl: u8,
}

impl Target {
    /// VP `vp_index` of `partition_id`, in `vtl`.
    pub const fn new(partition_id: u64, vp_index: u32, vtl: u8) -> Self {
        Self {
            partition_id,
            vp_index,
            vtl,
        }
    }
}

/// Partition and VP topology and policy, as the calling VP sees it.
pub trait Partitions {
    /// The calling VP.
    fn caller(&self) -> Caller;
    /// The partition with id `partition_id` (never SELF), if it exists.
    fn partition(&self, partition_id: u64) -> Option<PartitionInfo>;
    /// The set of VTLs enabled on a VP (bit v = VTL v). The VP exists.
    fn enabled_vtls(&self, partition_id: u64, vp_index: u32) -> u16;
}

/// What a snapshot is taken for: the target, the names the call will
/// read from it, and whether the call may span entries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotRequest<'a> {
    /// The (partition, VP, VTL) to capture.
    pub target: Target,
    /// The elements `rep_start..rep_count` of the call, in order: the only
    /// names [`ReadRegisters::read`] will be asked for with this snapshot,
    /// on this entry and every continuation.
    pub names: &'a [HvRegisterName],
    /// The call may take more than one entry (its elements exceed one
    /// entry's work budget) and some of its output goes to the caller's
    /// own registers (a fast form) before later elements are read. A
    /// snapshot of the caller itself must then hold, now, every register
    /// those names need, as it is at the call: fetched lazily it would
    /// show this call's own output (contract §5).
    pub output_precedes_reads: bool,
}

impl<'a> SnapshotRequest<'a> {
    /// A snapshot of `target` for reading `names`, in one entry.
    pub const fn new(target: Target, names: &'a [HvRegisterName]) -> Self {
        Self {
            target,
            names,
            output_precedes_reads: false,
        }
    }

    /// The same request for a call whose own output reaches the caller's
    /// registers before later elements are read (`output_precedes_reads`).
    pub const fn with_output_precedes_reads(self, output_precedes_reads: bool) -> Self {
        Self {
            output_precedes_reads,
            ..self
        }
    }
}

/// Why a register source did not give a value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SourceError<E> {
    /// The guest gets this status (for a read: `INVALID_PARAMETER` for an
    /// unknown, write-only or unreadable name).
    Hv(HvError),
    /// The host failed; the call ends without a status and
    /// [`dispatch`](crate::dispatch()) returns this error.
    Host(E),
}

impl<E> From<HvError> for SourceError<E> {
    fn from(e: HvError) -> Self {
        Self::Hv(e)
    }
}

/// Register values of VPs: the backend of HvCallGetVpRegisters (0x0050).
///
/// A call reads every value from one [`ReadRegisters::Snapshot`], taken
/// on its first entry once every check passed, and kept across its
/// continuations, so all values of one call come from one moment: the
/// target stopped between two instructions (for the caller itself: its
/// state at the hypercall instruction, contract §5).
pub trait ReadRegisters {
    /// A consistent view of one (VP, VTL). It may be filled lazily (for
    /// example register groups fetched on first use) unless the request
    /// says otherwise, but a value once returned must not change.
    type Snapshot;
    /// The host's own failure.
    type Error;

    /// Take a snapshot for `request`.
    fn snapshot(
        &mut self,
        request: &SnapshotRequest<'_>,
    ) -> Result<Self::Snapshot, SourceError<Self::Error>>;

    /// Read one register from a snapshot.
    fn read(
        &mut self,
        snapshot: &mut Self::Snapshot,
        name: HvRegisterName,
    ) -> Result<HvRegisterValue, SourceError<Self::Error>>;
}

/// Register writes: the backend of HvCallSetVpRegisters (0x0051). A VMM
/// offers that call by implementing this trait and listing
/// [`SetVpRegisters`](crate::SetVpRegisters) in [`Offers::Calls`].
pub trait WriteRegisters: ReadRegisters {
    /// Write `elements` to `target` in order, as one batch (contract §8):
    /// a running target takes all of them between two of its instructions.
    /// The dispatcher has checked the header, the privilege and each
    /// element's reserved bytes; the backend refuses a name it cannot write
    /// (`INVALID_PARAMETER`, step 8b) or a value it cannot take
    /// (`INVALID_REGISTER_VALUE`, step 8c), leaving the elements before
    /// that one written and that one not.
    fn write(
        &mut self,
        target: &Target,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), WriteFailure<Self::Error>>;
}

/// The calls a backend offers: a tuple of call types, for example
/// `(GetVpRegisters, SetVpRegisters)`. Each needs its backend trait
/// implemented ([`ReadRegisters`], [`WriteRegisters`]), which is checked
/// at compile time. A code not in the list answers
/// `HV_STATUS_INVALID_HYPERCALL_CODE` (contract step 4).
pub trait Offers {
    /// The calls, in a tuple (up to eight).
    type Calls;
}

/// Where and why a batch of writes stopped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WriteFailure<E> {
    /// Elements of the batch applied before the failing one.
    pub applied: usize,
    /// Why the next one was refused.
    pub error: SourceError<E>,
}

impl<P: Partitions + ?Sized> Partitions for &P {
    fn caller(&self) -> Caller {
        (**self).caller()
    }
    fn partition(&self, partition_id: u64) -> Option<PartitionInfo> {
        (**self).partition(partition_id)
    }
    fn enabled_vtls(&self, partition_id: u64, vp_index: u32) -> u16 {
        (**self).enabled_vtls(partition_id, vp_index)
    }
}

impl<S: ReadRegisters + ?Sized> ReadRegisters for &mut S {
    type Snapshot = S::Snapshot;
    type Error = S::Error;
    fn snapshot(
        &mut self,
        request: &SnapshotRequest<'_>,
    ) -> Result<Self::Snapshot, SourceError<Self::Error>> {
        (**self).snapshot(request)
    }
    fn read(
        &mut self,
        snapshot: &mut Self::Snapshot,
        name: HvRegisterName,
    ) -> Result<HvRegisterValue, SourceError<Self::Error>> {
        (**self).read(snapshot, name)
    }
}

impl<S: WriteRegisters + ?Sized> WriteRegisters for &mut S {
    fn write(
        &mut self,
        target: &Target,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), WriteFailure<Self::Error>> {
        (**self).write(target, elements)
    }
}

impl<S: Offers + ?Sized> Offers for &mut S {
    type Calls = S::Calls;
}

/// A [`Partitions`] and a [`ReadRegisters`] that are separate values,
/// used as one backend.
#[derive(Debug)]
pub struct Backend<P, S> {
    /// Topology and policy.
    pub partitions: P,
    /// Register values.
    pub registers: S,
}

impl<P: Partitions, S> Partitions for Backend<P, S> {
    fn caller(&self) -> Caller {
        self.partitions.caller()
    }
    fn partition(&self, partition_id: u64) -> Option<PartitionInfo> {
        self.partitions.partition(partition_id)
    }
    fn enabled_vtls(&self, partition_id: u64, vp_index: u32) -> u16 {
        self.partitions.enabled_vtls(partition_id, vp_index)
    }
}

impl<P, S: ReadRegisters> ReadRegisters for Backend<P, S> {
    type Snapshot = S::Snapshot;
    type Error = S::Error;
    fn snapshot(
        &mut self,
        request: &SnapshotRequest<'_>,
    ) -> Result<Self::Snapshot, SourceError<Self::Error>> {
        self.registers.snapshot(request)
    }
    fn read(
        &mut self,
        snapshot: &mut Self::Snapshot,
        name: HvRegisterName,
    ) -> Result<HvRegisterValue, SourceError<Self::Error>> {
        self.registers.read(snapshot, name)
    }
}

impl<P, S: WriteRegisters> WriteRegisters for Backend<P, S> {
    fn write(
        &mut self,
        target: &Target,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), WriteFailure<Self::Error>> {
        self.registers.write(target, elements)
    }
}

/// The pair offers what its register backend lists.
impl<P, S: Offers> Offers for Backend<P, S> {
    type Calls = S::Calls;
}
