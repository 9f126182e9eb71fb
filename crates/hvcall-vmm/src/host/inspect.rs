//! Live inspection: host tools (debuggers, introspection) read registers of
//! a RUNNING VM as the root partition, through the same
//! [`hvcall_dispatch::dispatch()`] path as a guest's HvCallGetVpRegisters.
//!
//! [`crate::Vm::run_inspected`] runs a closure on a host thread while the
//! vCPUs run and hands it an [`Inspector`]. Each
//! [`Inspector::get_vp_registers`] call builds the root partition's call
//! exactly as [`crate::Vm::get_vp_registers`] does (the `root` module,
//! through the dispatcher's typed host read); only the target's snapshot comes
//! from elsewhere: a host request to the [`crate::rendezvous`], which kicks
//! the VP out of `KVM_RUN` and has its own thread capture exactly the
//! register groups the call's names need, after which it runs on. So every
//! call sees one moment of the VP (never a torn state),
//! a halted VP still answers, and the VM ending (exit port, fault,
//! watchdog, all halted) wakes a waiting call with [`ReadError::Ended`].
//!
//! ```no_run
//! use std::io::Write;
//! use std::time::Duration;
//! use hvcall_abi::name::x64;
//! # let elf: Vec<u8> = Vec::new();
//! let mut vm = hvcall_vmm::Vm::new(&hvcall_vmm::VmConfig::default()).unwrap();
//! vm.load_elf(&elf).unwrap();
//! let exit = vm
//!     .run_inspected(|inspector| {
//!         // Sample VP 1 every 10 ms until the VM ends.
//!         while !inspector.wait_end(Duration::from_millis(10)) {
//!             // A closed stderr must not panic the inspecting thread.
//!             let mut err = std::io::stderr().lock();
//!             let _ = match inspector.get_vp_registers(1, &[x64::RIP, x64::RBX]) {
//!                 Ok(v) => writeln!(err, "rip={:#x} rbx={:#x}", v[0].as_u64(), v[1].as_u64()),
//!                 Err(e) => writeln!(err, "{e}"),
//!             };
//!         }
//!     })
//!     .unwrap();
//! # let _ = exit;
//! ```

use std::time::Duration;

use hvcall_abi::{HvRegisterName, HvRegisterValue, SetVpRegistersElement};

use crate::memory::GuestRam;
use hvcall_dispatch::HostTarget;

use crate::host::root::{ReadError, RootHypervisor};
use crate::rendezvous::DebugEvent;
use crate::shared::Shared;
use crate::state::SnapshotError;
use crate::stats::RunStats;
use crate::topology::VM_PARTITION_ID;
use crate::VmExit;

/// The host's handle on a running VM, given to the closure of
/// [`crate::Vm::run_inspected`]. Its reads never wait for anything but the
/// target VP's answer or the VM's end; it serves no requests itself.
pub struct Inspector<'a> {
    shared: &'a Shared<'a>,
}

impl<'a> Inspector<'a> {
    pub(crate) fn new(shared: &'a Shared<'a>) -> Self {
        Self { shared }
    }

    /// Reads `names` of VP `vp` as the root partition (the VM's parent),
    /// while it runs. All names, however many, come from one consistent
    /// snapshot of the VP holding only the register groups they need, as
    /// with [`crate::Vm::get_vp_registers`]. The values come in the order
    /// of `names`.
    ///
    /// Errors: [`ReadError::Ended`] once the VM has ended (a read
    /// waiting for its snapshot is woken by the end);
    /// [`ReadError::Fetch`] if the VP could not read its state;
    /// [`ReadError::Call`] with the hypercall's status and the failing
    /// index otherwise (`HV_STATUS_INVALID_PARAMETER` for a name not
    /// served, `HV_STATUS_INVALID_VP_INDEX` for a VP that does not exist).
    pub fn get_vp_registers(
        &self,
        vp: u32,
        names: &[HvRegisterName],
    ) -> Result<Vec<HvRegisterValue>, ReadError> {
        self.read(&HostTarget::new(VM_PARTITION_ID, vp), names)
    }

    /// [`Self::get_vp_registers`] with the whole TLFS target: partition
    /// id, VP index and VTL selection, checked as a call's header is
    /// (docs/contract.md step 6).
    pub fn read(
        &self,
        target: &HostTarget,
        names: &[HvRegisterName],
    ) -> Result<Vec<HvRegisterValue>, ReadError> {
        let shared = self.shared;
        let mut snapshot = |vp: u32, groups| {
            shared
                .rendezvous
                .request_host_snapshot(vp, groups, || shared.synthetic.state(vp))
                .map(|s| *s)
        };
        let mut hv = RootHypervisor {
            vp_count: self.shared.config.cpus,
            snapshot: &mut snapshot,
            write: None,
        };
        crate::host::root::get_vp_registers(&mut hv, target, names)
    }

    /// Writes `elements` to VP `vp` as the root partition while it runs,
    /// with the checks of a guest's HvCallSetVpRegisters (docs/contract.md
    /// §8): the VP's thread applies them in order between two of its
    /// instructions, all in one go. Errors as for
    /// [`Self::get_vp_registers`]; on [`ReadError::Call`] the elements
    /// before `index` were written, that one and later ones were not.
    pub fn set_vp_registers(
        &self,
        vp: u32,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), ReadError> {
        self.write(&HostTarget::new(VM_PARTITION_ID, vp), elements)
    }

    /// [`Self::set_vp_registers`] with the whole TLFS target.
    pub fn write(
        &self,
        target: &HostTarget,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), ReadError> {
        let shared = self.shared;
        let mut snapshot = |_: u32, _| {
            Err(SnapshotError::Internal(
                "a snapshot from the write-only view",
            ))
        };
        let mut write = |vp: u32, batch: &[SetVpRegistersElement]| {
            shared.rendezvous.request_host_write(vp, batch)
        };
        let mut hv = RootHypervisor {
            vp_count: shared.config.cpus,
            snapshot: &mut snapshot,
            write: Some(&mut write),
        };
        crate::host::root::set_vp_registers(&mut hv, target, elements)
    }

    /// Stops every VP for a debugger: none runs until
    /// [`Self::debug_resume`]; reads and writes keep working. Returns once
    /// no VP is running.
    pub fn debug_stop(&self) {
        self.shared.rendezvous.debug_stop();
    }

    /// Lets every VP run again (`only` = `None`), or only the VPs of the
    /// mask `only` (bit n: VP n); VP `step` runs one instruction (KVM's
    /// single-step), after which the VM stops again with
    /// [`DebugEvent::Stepped`].
    pub fn debug_resume(&self, only: Option<u64>, step: Option<u32>) {
        self.shared.rendezvous.debug_resume(only, step);
    }

    /// Waits at most `timeout` for the VM to stop for the debugger on its
    /// own (a breakpoint, a step done); then no VP runs.
    pub fn debug_wait(&self, timeout: Duration) -> Option<DebugEvent> {
        self.shared.rendezvous.debug_wait(timeout)
    }

    /// Marks the guest-physical byte at `gpa` as a debugger breakpoint
    /// (`on`) or not: a VP whose `int3` there traps, through whichever
    /// virtual address maps it (this host's CPL-0 emulator reports it to
    /// the VMM), stops the VM with [`DebugEvent::Breakpoint`] instead of
    /// taking #BP. Putting the `int3` byte in memory (once per GPA,
    /// however many virtual aliases) is the debugger's job.
    pub fn set_breakpoint(&self, gpa: u64, on: bool) {
        let mut set = crate::mutex::lock(&self.shared.breakpoints);
        if on {
            set.insert(gpa);
        } else {
            set.remove(&gpa);
        }
    }

    /// Ends the VM ([`VmExit::Stopped`]) unless it already ended: every
    /// vCPU leaves `KVM_RUN` and the run returns.
    pub fn stop(&self) {
        self.shared.rendezvous.end(VmExit::Stopped);
    }

    /// The number of VPs (valid indexes are `0..vp_count()`).
    pub fn vp_count(&self) -> u32 {
        self.shared.config.cpus
    }

    /// Whether the VM is still running (it has not ended).
    pub fn is_running(&self) -> bool {
        self.shared.rendezvous.ended().is_none()
    }

    /// Waits until the VM ends or `timeout` passes; true if it ended.
    /// Doubles as a sampling pause that stops early at the end.
    pub fn wait_end(&self, timeout: Duration) -> bool {
        self.shared.rendezvous.wait_end(timeout)
    }

    /// Guest RAM, shared with the running guest (reads see it as it is
    /// now; writes are visible to the guest at once).
    pub fn ram(&self) -> &GuestRam {
        self.shared.ram
    }

    /// What the VM did so far (as [`crate::Vm::stats`], while it runs).
    pub fn stats(&self) -> RunStats {
        self.shared.counters.get()
    }
}

/// Ends the VM if the inspector's closure unwinds, so the run (which joins
/// the inspector thread) is not held until the watchdog.
pub(crate) struct EndOnPanic<'a>(pub(crate) &'a Shared<'a>);

impl Drop for EndOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.rendezvous.end(VmExit::Fault {
                vp: 0,
                reason: "the host inspector panicked".into(),
            });
        }
    }
}
