//! What the threads of one run share, by concern ([`Shared`]), the gate
//! they start behind ([`StartGate`]).

use std::collections::BTreeSet;
use std::sync::Mutex;

use hvcall_dispatch::DispatchConfig;

use crate::config::VmConfig;
use crate::devices::Devices;
use crate::hyperv::hypercall_page::SlotError;
use crate::hyperv::msr::GeneralProtection;
use crate::hyperv::synthetic::{SlotChange, Synthetic};
use crate::memory::GuestRam;
use crate::mutex::lock;
use crate::rendezvous::Rendezvous;
use crate::state::snapshot::WriteError;
use crate::state::write;
use crate::stats::Counters;

/// What every vCPU thread of one run shares, by concern.
pub(crate) struct Shared<'a> {
    /// The configuration.
    pub(crate) config: &'a VmConfig,
    /// Guest RAM.
    pub(crate) ram: &'a GuestRam,
    /// The port I/O devices.
    pub(crate) devices: &'a Devices,
    /// CPUID leaves, synthetic MSRs, the hypercall page's slot.
    pub(crate) synthetic: Synthetic<'a>,
    /// Coordination of the vCPU threads: requests, pause, debugger hold,
    /// the VM's end.
    pub(crate) rendezvous: Rendezvous,
    /// Guest-physical addresses of the debugger's software breakpoints:
    /// an `int3` there (reached through any virtual address) stops the VM
    /// for the debugger instead of raising #BP.
    pub(crate) breakpoints: Mutex<BTreeSet<u64>>,
    /// The dispatcher's tuning.
    pub(crate) dispatch: DispatchConfig,
    /// Counters.
    pub(crate) counters: &'a Counters,
    /// Call codes answered HV_STATUS_INVALID_HYPERCALL_CODE so far (each is
    /// logged once).
    pub(crate) unimplemented: Mutex<BTreeSet<u16>>,
    /// Where the vCPU threads wait before their first `KVM_RUN` until the
    /// thread running the VM took its own filter.
    pub(crate) start: StartGate,
}

/// A one-time gate: closed until [`StartGate::open`] says whether the
/// threads waiting at it go on.
#[derive(Default)]
pub(crate) struct StartGate {
    state: Mutex<Option<bool>>,
    opened: std::sync::Condvar,
}

impl StartGate {
    /// Lets the waiting threads go on (`true`) or give up (`false`).
    pub(crate) fn open(&self, go: bool) {
        *lock(&self.state) = Some(go);
        self.opened.notify_all();
    }

    /// Waits until the gate opens; whether to go on.
    pub(crate) fn pass(&self) -> bool {
        let mut state = lock(&self.state);
        loop {
            if let Some(go) = *state {
                return go;
            }
            state = self.opened.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Shared<'_> {
    /// Writes synthetic MSR `index` of VP `vp` while the VM runs: a move
    /// of the hypercall page pauses every vCPU while the memory slots
    /// change. The outer error is a KVM failure (the VM must end), the
    /// inner one a #GP for the guest.
    pub(crate) fn write_msr(
        &self,
        index: u32,
        vp: u32,
        value: u64,
    ) -> Result<Result<(), GeneralProtection>, SlotError> {
        let pause = |change: &mut SlotChange<'_>| self.rendezvous.with_all_paused(change);
        self.synthetic.write_msr(index, vp, value, pause)
    }

    /// Writes synthetic MSR `index` of VP `vp` for HvCallSetVpRegisters
    /// while the VM runs: a value the MSR refuses is refused (step 8c).
    pub(crate) fn write_synthetic(
        &self,
        index: u32,
        vp: u32,
        value: u64,
    ) -> Result<(), WriteError> {
        let pause = |change: &mut SlotChange<'_>| self.rendezvous.with_all_paused(change);
        write::write_synthetic(&self.synthetic, index, vp, value, pause)
    }

    /// Logs (once per code and run) a hypercall hvcall does not implement,
    /// which was answered HV_STATUS_INVALID_HYPERCALL_CODE.
    pub(crate) fn unimplemented_call(&self, vp: u32, code: u16) {
        if lock(&self.unimplemented).insert(code) {
            // A fixed target: `hvcall` filters this warning out of the
            // bench's and chaos's reports by it.
            tracing::warn!(
                target: "hvcall_vmm::vm",
                vp,
                "hypercall {code:#06x} is not implemented: answered HV_STATUS_INVALID_HYPERCALL_CODE"
            );
        }
    }
}
