//! One batch of HvCallSetVpRegisters elements applied to a VP, on the
//! thread that owns its vCPU (contract §8): in order, each element either
//! wholly applied or refused, the batch stopping at the first refusal.
//!
//! Where a VP's state lives depends on where its thread stands, so
//! [`apply`] writes into a [`VpSnapshot`] of it and reports what the
//! owner still has to carry over: a [`Pending`], the one representation
//! of a pending write, committed by one of its methods:
//! - stopped VM ([`crate::Vm::set_vp_registers`]): [`Pending::commit_stopped`],
//!   `KVM_SET_REGS`;
//! - between two instructions, outside a hypercall
//!   ([`Pending::commit_to_sync`]): the `kvm_run` sync registers, which the
//!   next `KVM_RUN` loads;
//! - inside its own hypercall ([`crate::vcpu::hypercall`]):
//!   [`Pending::copy_regs`] into the registers the call hands back when it
//!   ends.
//!
//! The other groups (control and segment registers, MSRs, FPU, debug
//! registers, XCR0) reach KVM at once, through their ioctl, which is also
//! where KVM refuses a value (step 8c).

use std::sync::Arc;

use hvcall_abi::name::x64;
use hvcall_abi::{HvError, HvRegisterName, SetVpRegistersElement};
use hvcall_dispatch::{SourceError, WriteFailure};
use kvm_bindings::kvm_regs;
use kvm_ioctls::{SyncReg, VcpuFd};

use crate::hyperv::msr::GeneralProtection;
use crate::hyperv::synthetic::{Pause, Synthetic};
use crate::state::registers::{gpr, gpr_mut, group_of, Group, Groups};
use crate::state::snapshot::{FlushError, Staged, VpSnapshot, WriteError, RFLAGS_SLOT, RIP_SLOT};
use crate::state::SnapshotError;

/// Sets synthetic MSR `index` of the VM to `value` for the VP written.
pub(crate) type MsrSink<'a> = dyn FnMut(u32, u64) -> Result<(), WriteError> + 'a;

/// Writes synthetic MSR `index` of VP `vp` for HvCallSetVpRegisters,
/// moving the hypercall page inside `pause`: a value the MSR refuses (a
/// #GP for WRMSR) is refused (step 8c).
pub(crate) fn write_synthetic(
    synthetic: &Synthetic<'_>,
    index: u32,
    vp: u32,
    value: u64,
    pause: impl Pause,
) -> Result<(), WriteError> {
    match synthetic.write_msr(index, vp, value, pause)? {
        Ok(()) => Ok(()),
        Err(GeneralProtection) => Err(WriteError::Value),
    }
}

/// What writes to a VP's snapshot changed that its owner still has to
/// carry over (the one representation of a pending write, for one batch
/// or all the batches of a call).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub(crate) struct Pending {
    /// General registers changed in the snapshot only: bit n for slot n
    /// of [`Staged::Regs`].
    pub(crate) regs: u32,
    /// Some FPU/SSE register was written (through the vCPU).
    pub(crate) fpu: bool,
}

impl Pending {
    /// Notes what one element's write changed.
    fn note(&mut self, staged: Staged) {
        match staged {
            Staged::Regs(slot) => self.regs |= 1 << slot,
            Staged::Group(g) => self.fpu |= g == Group::Fpu,
            Staged::SyntheticMsr(..) => {}
        }
    }

    /// Adds what a later batch changed.
    pub(crate) fn merge(&mut self, later: Pending) {
        self.regs |= later.regs;
        self.fpu |= later.fpu;
    }

    /// Copies the general registers pending from `from` into `to`,
    /// except those `keep` names (the slot's register name, RAX + slot).
    pub(crate) fn copy_regs(
        &self,
        from: &kvm_regs,
        to: &mut kvm_regs,
        keep: impl Fn(HvRegisterName) -> bool,
    ) {
        for slot in (0..=RFLAGS_SLOT).filter(|s| self.regs & 1 << s != 0) {
            if keep(HvRegisterName(x64::RAX.0 + slot as u32)) {
                continue;
            }
            match slot {
                RIP_SLOT => to.rip = from.rip,
                RFLAGS_SLOT => to.rflags = from.rflags,
                i => {
                    if let (Some(to), Some(v)) = (gpr_mut(to, i), gpr(from, i)) {
                        *to = v;
                    }
                }
            }
        }
    }

    /// Commits to a vCPU that is not running (no `KVM_RUN` on any
    /// thread): `KVM_SET_REGS` if general registers are pending.
    pub(crate) fn commit_stopped(
        &self,
        vcpu: &VcpuFd,
        snapshot: &VpSnapshot,
    ) -> Result<(), FlushError> {
        if self.regs != 0 {
            vcpu.set_regs(&snapshot.sync().regs)
                .map_err(|source| FlushError {
                    group: Group::Sync,
                    source,
                })?;
        }
        Ok(())
    }

    /// Commits a batch applied to `snapshot` (taken from `vcpu`'s sync
    /// registers, the VP between two instructions and outside a
    /// hypercall) into the sync registers: the general registers are
    /// loaded by the next `KVM_RUN`; the control and segment registers,
    /// already in KVM, are copied so that the sync area keeps showing the
    /// VP's state.
    pub(crate) fn commit_to_sync(&self, vcpu: &mut VcpuFd, snapshot: &VpSnapshot) {
        let sync = vcpu.sync_regs_mut();
        sync.sregs = snapshot.sync().sregs;
        if self.regs != 0 {
            sync.regs = snapshot.sync().regs;
            vcpu.set_sync_dirty_reg(SyncReg::Register);
        }
    }
}

/// What one batch did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) struct Batch {
    /// What it changed that is still to be committed.
    pub(crate) pending: Pending,
    /// Whether every element was applied.
    pub(crate) result: Result<(), WriteFailure<SnapshotError>>,
}

/// Applies `elements` in order to `snapshot`, a snapshot of the VP whose
/// vCPU is `vcpu` (not running), sending synthetic MSR writes to `msr`.
///
/// The elements are first staged into the snapshot and each group they
/// touch goes to KVM once (one `KVM_SET_SREGS`, one `KVM_SET_MSRS` for all
/// MSRs, one XSAVE, one `KVM_SET_DEBUGREGS`...). If hvcall or KVM refuses
/// anything, the groups already set are put back and the batch is applied
/// again element by element, which stops exactly at the refused one.
/// Batches that write a synthetic MSR (which may move the hypercall page)
/// always go element by element.
pub(crate) fn apply(
    snapshot: &mut VpSnapshot,
    vcpu: &VcpuFd,
    elements: &[SetVpRegistersElement],
    msr: &mut MsrSink<'_>,
) -> Batch {
    let synthetic = elements
        .iter()
        .any(|e| group_of(e.name) == Some(Group::Synthetic));
    if elements.len() > 1 && !synthetic && fill_touched(snapshot, vcpu, elements) {
        let before = snapshot.clone();
        match staged(snapshot, vcpu, elements) {
            Ok(batch) => return batch,
            Err((flushed, msrs)) => {
                *snapshot = before;
                let mut original = snapshot.clone();
                original.restage_msrs(msrs);
                for &g in FLUSH_ORDER.iter().filter(|&&g| flushed.contains(g)) {
                    if let Err(e) = original.flush(vcpu, g) {
                        return Batch {
                            pending: Pending::default(),
                            result: Err(WriteFailure {
                                applied: 0,
                                error: source_error(e),
                            }),
                        };
                    }
                }
            }
        }
    }
    one_by_one(snapshot, vcpu, elements, msr)
}

/// Fetches every group `elements` touch into `snapshot` (so that a copy
/// taken before staging holds what to put back); false if one failed.
fn fill_touched(
    snapshot: &mut VpSnapshot,
    vcpu: &VcpuFd,
    elements: &[SetVpRegistersElement],
) -> bool {
    let names: Vec<_> = elements.iter().map(|e| e.name).collect();
    Groups::of(&names)
        .fetched()
        .all(|g| snapshot.fill(g, vcpu).is_ok())
}

/// The groups a batch may set, in the order they are set.
const FLUSH_ORDER: [Group; 5] = [
    Group::Sync,
    Group::Msrs,
    Group::Fpu,
    Group::Debug,
    Group::Xcrs,
];

/// Every element staged, then each group touched set once. On a refusal:
/// the groups set so far, the refused one included, and the MSRs staged
/// (to put back).
fn staged(
    snapshot: &mut VpSnapshot,
    vcpu: &VcpuFd,
    elements: &[SetVpRegistersElement],
) -> Result<Batch, (Groups, u16)> {
    let mut batch = Batch {
        pending: Pending::default(),
        result: Ok(()),
    };
    let mut dirty = Groups::NONE;
    for e in elements {
        match snapshot.stage(vcpu, e.name, e.value) {
            Ok(Staged::SyntheticMsr(..)) | Err(_) => return Err((Groups::NONE, 0)),
            Ok(staged) => {
                if let Staged::Group(g) = staged {
                    dirty = dirty.with(g);
                }
                batch.pending.note(staged);
            }
        }
    }
    let msrs = snapshot.msrs_staged();
    let mut flushed = Groups::NONE;
    for &g in FLUSH_ORDER.iter().filter(|&&g| dirty.contains(g)) {
        if snapshot.flush(vcpu, g).is_err() {
            // The refused group too: KVM may have taken part of it (the
            // MSRs before a refused one, or all of them when the TSC did
            // not hold its value).
            return Err((flushed.with(g), msrs));
        }
        flushed = flushed.with(g);
    }
    Ok(batch)
}

/// Each element written on its own, stopping at the first refused one.
fn one_by_one(
    snapshot: &mut VpSnapshot,
    vcpu: &VcpuFd,
    elements: &[SetVpRegistersElement],
    msr: &mut MsrSink<'_>,
) -> Batch {
    let mut batch = Batch {
        pending: Pending::default(),
        result: Ok(()),
    };
    for (applied, e) in elements.iter().enumerate() {
        let written = snapshot.write(vcpu, e.name, e.value).and_then(|w| match w {
            Staged::SyntheticMsr(index, value) => msr(index, value).map(|()| w),
            _ => Ok(w),
        });
        match written {
            Ok(staged) => batch.pending.note(staged),
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
        WriteError::Value | WriteError::Invalid(_) => {
            SourceError::Hv(HvError::INVALID_REGISTER_VALUE)
        }
        WriteError::Fetch(e) => SourceError::Host(SnapshotError::Fetch(e)),
        WriteError::Flush(e) => SourceError::Host(SnapshotError::Write(e)),
        WriteError::Slots(e) => SourceError::Host(SnapshotError::Slots(Arc::new(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_write_notes_general_registers_and_the_fpu_only() {
        let mut first = Pending::default();
        first.note(Staged::Regs(3));
        first.note(Staged::Group(Group::Msrs));
        first.note(Staged::SyntheticMsr(0x4000_0000, 1));
        assert_eq!(
            first,
            Pending {
                regs: 1 << 3,
                fpu: false
            }
        );
        let mut later = Pending::default();
        later.note(Staged::Regs(RIP_SLOT));
        later.note(Staged::Group(Group::Fpu));
        first.merge(later);
        assert_eq!(
            first,
            Pending {
                regs: 1 << 3 | 1 << RIP_SLOT,
                fpu: true
            }
        );
    }
}
