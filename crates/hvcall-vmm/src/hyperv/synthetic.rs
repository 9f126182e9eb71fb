//! The VM's Hyper-V state that every VP shares: the CPUID leaves it
//! advertises, the synthetic MSRs of every VP (contract §6) and the memory
//! slot that follows the hypercall page, with the one way to write an MSR
//! (a guest's WRMSR, a guest's or the host's HvCallSetVpRegisters, on a
//! running or a stopped VM).
//!
//! Per-VP parts (VP assist page, and later the per-VTL banks) live in
//! [`SyntheticMsrs`], indexed by VP; [`SyntheticState`] is one VP's
//! share of it as a snapshot reports it.

use std::sync::Mutex;
use std::time::Instant;

use kvm_ioctls::VmFd;

use crate::hyperv::cpuid::HypervLeaves;
use crate::hyperv::hypercall_page::{Memslots, SlotError};
use crate::hyperv::msr::{GeneralProtection, SyntheticMsrs};
use crate::memory::GuestRam;
use crate::mutex::lock;

/// hvcall's synthetic state of one VP, read at snapshot time.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SyntheticState {
    /// The VP's index.
    pub vp_index: u32,
    /// HV_X64_MSR_GUEST_OS_ID.
    pub guest_os_id: u64,
    /// HV_X64_MSR_HYPERCALL.
    pub hypercall: u64,
    /// Partition reference time, 100 ns units.
    pub time_ref_count: u64,
    /// HV_X64_MSR_VP_ASSIST_PAGE of the VP.
    pub vp_assist_page: u64,
    /// The CPUID leaves the feature registers mirror.
    pub leaves: HypervLeaves,
}

impl SyntheticState {
    /// The synthetic state of VP `vp_index` now, in a VM created at
    /// `created` (reference time 0).
    pub fn now(
        vp_index: u32,
        msrs: &crate::hyperv::msr::SyntheticMsrs,
        created: std::time::Instant,
        leaves: HypervLeaves,
    ) -> Self {
        Self {
            vp_index,
            guest_os_id: msrs.guest_os_id,
            hypercall: msrs.hypercall,
            time_ref_count: (created.elapsed().as_nanos() / 100) as u64,
            vp_assist_page: msrs.vp(vp_index).map_or(0, |vp| vp.vp_assist_page),
            leaves,
        }
    }
}

/// A change of the memory slots, run by a [`Pause`].
pub(crate) type SlotChange<'c> = dyn FnMut() -> Result<(), SlotError> + 'c;

/// Runs a change of the memory slots with every vCPU out of `KVM_RUN`
/// (`None`: the VM ended first and the change was not made). A stopped
/// VM runs it at once.
pub(crate) trait Pause:
    FnOnce(&mut SlotChange<'_>) -> Option<Result<(), SlotError>>
{
}

impl<P: FnOnce(&mut SlotChange<'_>) -> Option<Result<(), SlotError>>> Pause for P {}

/// What a VM owns of its Hyper-V state: the leaves it advertises, when it
/// was created (reference time 0), its synthetic MSRs and the memory
/// slots the hypercall page moves. A [`Synthetic`] borrows it.
pub(crate) struct HypervState {
    /// CPUID leaves and privileges.
    pub(crate) leaves: HypervLeaves,
    /// When the VM was created.
    pub(crate) created: Instant,
    /// Synthetic MSRs.
    pub(crate) msrs: Mutex<SyntheticMsrs>,
    /// Memory slots (the overlay).
    pub(crate) memslots: Mutex<Memslots>,
}

impl HypervState {
    /// This state as the synthetic side of the VM `vm_fd` with RAM `ram`,
    /// for a run or a host access.
    pub(crate) fn view<'a>(&'a self, vm_fd: &'a VmFd, ram: &'a GuestRam) -> Synthetic<'a> {
        Synthetic {
            leaves: self.leaves,
            created: self.created,
            msrs: &self.msrs,
            memslots: &self.memslots,
            vm_fd,
            ram,
            writes: Mutex::new(()),
        }
    }
}

/// The synthetic side of one VM, borrowed for a run or a host access.
pub(crate) struct Synthetic<'a> {
    /// CPUID leaves and privileges.
    pub(crate) leaves: HypervLeaves,
    /// When the VM was created (reference time 0).
    created: Instant,
    msrs: &'a Mutex<SyntheticMsrs>,
    memslots: &'a Mutex<Memslots>,
    vm_fd: &'a VmFd,
    ram: &'a GuestRam,
    /// Held by the one writer of a synthetic MSR (see [`Self::write_msr`]).
    writes: Mutex<()>,
}

impl Synthetic<'_> {
    /// The number of VPs.
    pub(crate) fn vp_count(&self) -> u32 {
        self.leaves.cpus
    }

    /// The hypercall page's GPA, if enabled.
    pub(crate) fn overlay_page(&self) -> Option<u64> {
        lock(self.msrs).overlay_page()
    }

    /// The synthetic state of VP `vp`, now.
    pub(crate) fn state(&self, vp: u32) -> SyntheticState {
        SyntheticState::now(vp, &lock(self.msrs), self.created, self.leaves)
    }

    /// RDMSR of a synthetic MSR by VP `vp`.
    pub(crate) fn read_msr(&self, index: u32, vp: u32) -> Result<u64, GeneralProtection> {
        lock(self.msrs).read(index, vp)
    }

    /// Writes synthetic MSR `index` of VP `vp`. A write that moves the
    /// hypercall page changes the memory slots inside `pause`. The outer
    /// error is a KVM failure (the VM must end), the inner one a #GP for
    /// the guest.
    pub(crate) fn write_msr(
        &self,
        index: u32,
        vp: u32,
        value: u64,
        pause: impl Pause,
    ) -> Result<Result<(), GeneralProtection>, SlotError> {
        // Writers take turns; the state lock itself is only ever held for
        // a copy or a store, never across the pause below, so no lock
        // order between it and the rendezvous needs keeping.
        let _writer = lock(&self.writes);
        let old = *lock(self.msrs);
        let mut new = old;
        if let Err(gp) = new.write(index, vp, value, self.ram.size()) {
            return Ok(Err(gp));
        }
        let page = new.overlay_page();
        if page != old.overlay_page() {
            let mut change = || lock(self.memslots).set_overlay(self.vm_fd, self.ram, page);
            if let Some(result) = pause(&mut change) {
                result?;
            }
        }
        *lock(self.msrs) = new;
        Ok(Ok(()))
    }
}
