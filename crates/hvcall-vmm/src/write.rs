//! One batch of HvCallSetVpRegisters elements applied to a VP, on the
//! thread that owns its vCPU (contract §8): in order, each element either
//! wholly applied or refused, the batch stopping at the first refusal.
//!
//! Where a VP's state lives depends on where its thread stands, so
//! [`apply`] writes into a [`VpSnapshot`] of it and reports what the
//! owner still has to carry over ([`Batch`]):
//! - stopped VM ([`crate::Vm::set_vp_registers`]): `KVM_SET_REGS`;
//! - between two instructions, outside a hypercall ([`commit_to_sync`]):
//!   the `kvm_run` sync registers, which the next `KVM_RUN` loads;
//! - inside its own hypercall ([`crate::hypercall`]): merged into the
//!   registers the call hands back when it ends.
//!
//! The other groups (control and segment registers, MSRs, FPU, debug
//! registers, XCR0) reach KVM at once, through their ioctl, which is also
//! where KVM refuses a value (step 8c).

use hvcall_abi::{HvError, SetVpRegistersElement};
use hvcall_dispatch::{SourceError, WriteFailure};
use kvm_ioctls::{SyncReg, VcpuFd};

use crate::registers::{group_of, Group};
use crate::rendezvous::SnapshotError;
use crate::snapshot::{VpSnapshot, WriteError, Written};

/// Sets synthetic MSR `index` of the VM to `value` for the VP written.
pub(crate) type MsrSink<'a> = dyn FnMut(u32, u64) -> Result<(), WriteError> + 'a;

/// What one batch did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) struct Batch {
    /// General registers changed in the snapshot only: bit n for slot n
    /// of [`Written::Regs`].
    pub(crate) regs: u32,
    /// Some FPU/SSE register was written (through the vCPU).
    pub(crate) fpu: bool,
    /// Whether every element was applied.
    pub(crate) result: Result<(), WriteFailure<SnapshotError>>,
}

/// Applies `elements` in order to `snapshot`, a snapshot of the VP whose
/// vCPU is `vcpu` (not running), sending synthetic MSR writes to `msr`.
pub(crate) fn apply(
    snapshot: &mut VpSnapshot,
    vcpu: &VcpuFd,
    elements: &[SetVpRegistersElement],
    msr: &mut MsrSink<'_>,
) -> Batch {
    let mut batch = Batch {
        regs: 0,
        fpu: false,
        result: Ok(()),
    };
    for (applied, e) in elements.iter().enumerate() {
        let written = snapshot.write(vcpu, e.name, e.value).and_then(|w| match w {
            Written::SyntheticMsr(index, value) => msr(index, value).map(|()| w),
            _ => Ok(w),
        });
        match written {
            Ok(Written::Regs(slot)) => batch.regs |= 1 << slot,
            Ok(_) => batch.fpu |= group_of(e.name) == Some(Group::Fpu),
            Err(error) => {
                batch.result = Err(WriteFailure {
                    applied,
                    error: source_error(error),
                });
                break;
            }
        }
    }
    batch
}

/// The dispatcher's view of a refused write: 8b, 8c, or the host's own
/// failure.
fn source_error(e: WriteError) -> SourceError<SnapshotError> {
    match e {
        WriteError::Name => SourceError::Hv(HvError::INVALID_PARAMETER),
        WriteError::Value => SourceError::Hv(HvError::INVALID_REGISTER_VALUE),
        other => SourceError::Host(SnapshotError::Fetch(other.to_string())),
    }
}

/// Carries a batch applied to `snapshot` (taken from `vcpu`'s sync
/// registers, the VP between two instructions and outside a hypercall)
/// into the sync registers: the general registers are loaded by the next
/// `KVM_RUN`; the control and segment registers, already in KVM, are
/// copied so that the sync area keeps showing the VP's state.
pub(crate) fn commit_to_sync(vcpu: &mut VcpuFd, snapshot: &VpSnapshot, batch: &Batch) {
    let sync = vcpu.sync_regs_mut();
    sync.sregs = snapshot.sync().sregs;
    if batch.regs != 0 {
        sync.regs = snapshot.sync().regs;
        vcpu.set_sync_dirty_reg(SyncReg::Register);
    }
}
