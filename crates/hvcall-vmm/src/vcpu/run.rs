//! The run loop of one vCPU thread and the handling of every exit.
//!
//! | exit | handling |
//! |---|---|
//! | the hypercall page's own `out` (port 0xE8, checked by [`CallSite`]) | [`crate::vcpu::hypercall::handle`] |
//! | other port I/O | [`crate::devices::Devices`]: COM1, the i8042 (reset ends the VM, [`VmExit::Reset`]), the exit port `0xF4` ([`VmExit::Exited`]) |
//! | RDMSR/WRMSR of a synthetic MSR | [`crate::hyperv::msr::SyntheticMsrs`]; a write that moves the hypercall page pauses every vCPU to change the memory slots |
//! | MMIO write (the overlay page, or outside RAM) | dropped |
//! | MMIO read (outside RAM) | all ones |
//! | HLT | the VP never runs again; all halted with IF = 0 ends the VM ([`VmExit::AllHalted`]) |
//! | emulation failure on an `int3` (`0xCC`) or `fwait` (`0x9B`) | completed by the VMM (this host's instruction emulator lacks them): #BP after the `int3`; `fwait` skipped, or #MF if an x87 exception is pending |
//! | shutdown, internal error, failed entry | the VM ends with [`VmExit::Fault`] |
//! | `EINTR` (a kick) | answer snapshot requests, stop if the VM ended |

use std::time::Instant;

use hvcall_dispatch::{Outcome, VpState};
use kvm_bindings::{kvm_guest_debug, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP};
use kvm_ioctls::{SyncReg, VcpuExit, VcpuFd};

use super::between::Between;
use super::inject::inject_exception;
use crate::devices::PortEffect;
use crate::hyperv::hypercall_page::{CallSite, HYPERCALL_PORT};
use crate::memory::GuestRam;
use crate::mutex::lock;
use crate::rendezvous::kick::Registration;
use crate::rendezvous::{DebugEvent, Next};
use crate::seccomp::{self, ThreadRole};
use crate::shared::Shared;
use crate::state::count_ioctl;
use crate::state::snapshot::VpSnapshot;
use crate::VmExit;

const RFLAGS_IF: u64 = 1 << 9;
const BP_VECTOR: u8 = 3;
const MF_VECTOR: u8 = 16;
const INT3: u8 = 0xCC;
const FWAIT: u8 = 0x9B;
/// x87 status word: an unmasked exception is pending (ES).
const FSW_ES: u16 = 1 << 7;
/// KVM_INTERNAL_ERROR_EMULATION.
const EMULATION_FAILURE: u32 = 1;

/// What to do after an exit, once the exit's borrow of the vCPU ended.
enum Action {
    Continue,
    /// `KVM_EXIT_DEBUG` (a single step done).
    Debug,
    Interrupted,
    /// A write of this many bytes to the hypercall port, and when
    /// `KVM_RUN` returned with it.
    HypercallPort(usize, Instant),
    Halt,
    End(VmExit),
    InternalError,
}

/// Ends the VM with a fault if the thread unwinds, so no other thread
/// waits forever for this one, and unregisters the thread so no later kick
/// signals a thread that has exited.
struct EndOnPanic<'a> {
    shared: &'a Shared<'a>,
    vp: u32,
}

impl Drop for EndOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.rendezvous.end(VmExit::Fault {
                vp: self.vp,
                reason: "vCPU thread panicked".into(),
            });
            self.shared.rendezvous.unregister(self.vp);
        }
    }
}

/// Runs VP `vp` until the VM ends.
pub fn run(shared: &Shared<'_>, vp: u32, vcpu: &mut VcpuFd, state: &mut VpState<VpSnapshot>) {
    let _guard = EndOnPanic { shared, vp };
    if let Err(e) = seccomp::install(ThreadRole::Vcpu, shared.config.seccomp) {
        shared.rendezvous.end(VmExit::Fault {
            vp,
            reason: e.to_string(),
        });
        return;
    }
    // Not before the thread running the VM is filtered too.
    if !shared.start.pass() {
        return;
    }
    shared.rendezvous.register(vp);
    // SAFETY: `vcpu` (and so its `kvm_run` mapping) is borrowed for the
    // whole of this function and `registration` is a local of it, dropped
    // on this thread before `vcpu` can be.
    let registration = unsafe { Registration::register_current_thread(vcpu.get_kvm_run()) };
    vcpu.set_sync_valid_reg(SyncReg::Register);
    vcpu.set_sync_valid_reg(SyncReg::SystemRegister);
    vcpu.set_sync_valid_reg(SyncReg::VcpuEvents);
    let mut consistent = false;
    // This thread entered KVM_RUN before.
    let mut entered = false;
    // KVM_GUESTDBG_SINGLESTEP is set on this vCPU.
    let mut stepping = false;
    let mut call_site = CallSite::default();
    // When the last hypercall's exit happened, until the next KVM_RUN.
    let mut call_exit: Option<Instant> = None;
    loop {
        let next =
            shared
                .rendezvous
                .before_run(vp, consistent, &mut Between::new(shared, vp, vcpu));
        match next {
            Next::Stop => break,
            Next::Run {
                immediate_exit,
                single_step,
            } => {
                if immediate_exit {
                    vcpu.set_kvm_immediate_exit(1);
                }
                if single_step != stepping {
                    stepping = single_step;
                    if let Err(e) = set_single_step(vcpu, single_step) {
                        // Stop at once rather than run freely: the
                        // debugger sees the step end where it began.
                        tracing::warn!(vp, "KVM_SET_GUEST_DEBUG: {e}: cannot single-step");
                        shared.rendezvous.debug_event(vp, DebugEvent::Stepped(vp));
                        consistent = true;
                        continue;
                    }
                }
            }
        }
        consistent = false;
        shared.counters.flush_ioctls();
        if let Some(exited) = call_exit.take() {
            shared.counters.hypercall_time(exited.elapsed());
        }
        if !entered {
            entered = true;
            shared.counters.entering();
        }
        let action = run_once(shared, vp, vcpu);
        match action {
            Action::Continue => {}
            Action::Debug => {
                if stepping {
                    shared.rendezvous.debug_event(vp, DebugEvent::Stepped(vp));
                }
                consistent = true;
            }
            Action::Interrupted => {
                vcpu.set_kvm_immediate_exit(0);
                consistent = true;
            }
            Action::HypercallPort(len, exited) => {
                let overlay = shared.synthetic.overlay_page();
                if !call_site.is_page_instruction(vcpu, len, overlay) {
                    tracing::debug!(vp, "write to the hypercall port outside the page: ignored");
                    continue;
                }
                match crate::vcpu::hypercall::handle(shared, vp, vcpu, state, overlay) {
                    Ok(outcome) => {
                        shared.counters.hypercall(outcome == Outcome::Continue);
                        call_exit = Some(exited);
                        consistent = true;
                    }
                    Err(e) => shared.rendezvous.end(VmExit::Fault {
                        vp,
                        reason: e.to_string(),
                    }),
                }
            }
            Action::Halt => {
                let interrupts_disabled = vcpu.sync_regs().regs.rflags & RFLAGS_IF == 0;
                tracing::debug!(vp, interrupts_disabled, "halted");
                shared.rendezvous.halt(
                    vp,
                    interrupts_disabled,
                    &mut Between::new(shared, vp, vcpu),
                );
            }
            Action::InternalError => {
                // SAFETY: the last exit was KVM_EXIT_INTERNAL_ERROR, so
                // `internal` is the active member of the exit union.
                let suberror = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
                if suberror == EMULATION_FAILURE && complete_emulation(shared, vp, vcpu) {
                    consistent = true;
                    continue;
                }
                let rip = vcpu.sync_regs().regs.rip;
                let what = if suberror == EMULATION_FAILURE {
                    // The instruction this host's emulator could not run.
                    let code: Vec<String> = code_at(shared.ram, vcpu, rip, 15)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    format!(" (emulation failure; code at RIP: {})", code.join(" "))
                } else {
                    String::new()
                };
                let reason = format!("KVM internal error, suberror {suberror}{what}, RIP {rip:#x}");
                shared.rendezvous.end(VmExit::Fault { vp, reason });
            }
            Action::End(exit) => shared.rendezvous.end(exit),
        }
    }
    drop(registration);
    shared.rendezvous.unregister(vp);
}

/// After an emulation failure, runs the instructions this host's emulator
/// lacks but the VMM can complete itself, and returns true if it did:
/// - `int3`: RIP past it, #BP (vector 3) injected (Linux's alternatives
///   self-test runs one);
/// - `fwait`: #MF (vector 16) if the x87 status word has an unmasked
///   exception pending, else RIP past it (distribution kernels run one).
fn complete_emulation(shared: &Shared<'_>, vp: u32, vcpu: &mut VcpuFd) -> bool {
    let rip = vcpu.sync_regs().regs.rip;
    match code_at(shared.ram, vcpu, rip, 1).first() {
        Some(&INT3)
            if gpa_of(vcpu, rip).is_some_and(|gpa| lock(&shared.breakpoints).contains(&gpa)) =>
        {
            // The debugger's (whichever virtual alias reached its byte):
            // the VM stops with RIP on the int3.
            shared
                .rendezvous
                .debug_event(vp, DebugEvent::Breakpoint(vp));
            true
        }
        Some(&INT3) => {
            inject_exception(vcpu, rip.wrapping_add(1), BP_VECTOR);
            tracing::debug!(rip, "int3: #BP injected");
            true
        }
        Some(&FWAIT) => {
            count_ioctl();
            let Ok(fpu) = vcpu.get_fpu() else {
                return false;
            };
            if fpu.fsw & FSW_ES != 0 {
                inject_exception(vcpu, rip, MF_VECTOR);
            } else {
                vcpu.sync_regs_mut().regs.rip = rip.wrapping_add(1);
                vcpu.set_sync_dirty_reg(SyncReg::Register);
            }
            true
        }
        _ => false,
    }
}

/// Turns KVM's single-stepping of `vcpu` on or off (the debugger's step).
fn set_single_step(vcpu: &VcpuFd, on: bool) -> Result<(), kvm_ioctls::Error> {
    let control = if on {
        KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP
    } else {
        0
    };
    let debug = kvm_guest_debug {
        control,
        ..Default::default()
    };
    count_ioctl();
    vcpu.set_guest_debug(&debug)
}

/// The guest-physical address of virtual address `gva` in `vcpu`'s
/// address space (None: not mapped).
fn gpa_of(vcpu: &VcpuFd, gva: u64) -> Option<u64> {
    count_ioctl();
    let t = vcpu.translate_gva(gva).ok()?;
    (t.valid != 0).then_some(t.physical_address)
}

/// Up to `len` bytes of guest code at virtual address `rip`, as far as
/// they lie on its page and in RAM (empty if it is not mapped).
fn code_at(ram: &GuestRam, vcpu: &VcpuFd, rip: u64, len: u64) -> Vec<u8> {
    let Some(gpa) = gpa_of(vcpu, rip) else {
        return Vec::new();
    };
    let on_page = hvcall_abi::PAGE_SIZE - (rip & (hvcall_abi::PAGE_SIZE - 1));
    let mut bytes = vec![0u8; len.min(on_page) as usize];
    if ram.read(gpa, &mut bytes).is_err() {
        return Vec::new();
    }
    bytes
}

/// One `KVM_RUN` and the exit's immediate handling.
fn run_once(shared: &Shared<'_>, vp: u32, vcpu: &mut VcpuFd) -> Action {
    let result = vcpu.run();
    // The clock is read for hypercall exits only (the VMM's time per call),
    // not on every exit.
    let exited = matches!(result, Ok(VcpuExit::IoOut(HYPERCALL_PORT, _))).then(Instant::now);
    shared.rendezvous.after_run();
    shared.counters.exit();
    match result {
        Ok(VcpuExit::IoOut(HYPERCALL_PORT, data)) => {
            Action::HypercallPort(data.len(), exited.unwrap_or_else(Instant::now))
        }
        Ok(VcpuExit::IoOut(port, data)) => match shared.devices.write(port, data) {
            PortEffect::None => Action::Continue,
            PortEffect::Exit(v) => Action::End(VmExit::Exited(v)),
            PortEffect::Reset => Action::End(VmExit::Reset),
        },
        Ok(VcpuExit::IoIn(port, data)) => {
            shared.devices.read(port, data);
            Action::Continue
        }
        Ok(VcpuExit::X86Rdmsr(exit)) => {
            match shared.synthetic.read_msr(exit.index, vp) {
                Ok(v) => {
                    tracing::debug!(vp, "RDMSR {:#x} -> {v:#x}", exit.index);
                    *exit.data = v;
                }
                Err(_) => {
                    tracing::debug!(vp, "RDMSR {:#x} -> #GP", exit.index);
                    *exit.error = 1;
                }
            }
            Action::Continue
        }
        Ok(VcpuExit::X86Wrmsr(exit)) => {
            match shared.write_msr(exit.index, vp, exit.data) {
                Ok(Ok(())) => {
                    tracing::debug!(vp, "WRMSR {:#x} <- {:#x}", exit.index, exit.data);
                }
                Ok(Err(_)) => {
                    tracing::debug!(vp, "WRMSR {:#x} <- {:#x}: #GP", exit.index, exit.data);
                    *exit.error = 1;
                }
                Err(e) => {
                    return Action::End(VmExit::Fault {
                        vp,
                        reason: e.to_string(),
                    })
                }
            }
            Action::Continue
        }
        Ok(VcpuExit::MmioWrite(addr, _)) => {
            tracing::trace!(vp, addr, "dropped MMIO write");
            Action::Continue
        }
        Ok(VcpuExit::MmioRead(_, data)) => {
            data.fill(0xFF);
            Action::Continue
        }
        Ok(VcpuExit::Hlt) => Action::Halt,
        Ok(VcpuExit::Debug(_)) => Action::Debug,
        Ok(VcpuExit::Shutdown) => Action::End(VmExit::Fault {
            vp,
            reason: "triple fault (KVM_EXIT_SHUTDOWN)".into(),
        }),
        Ok(VcpuExit::InternalError) => Action::InternalError,
        Ok(VcpuExit::FailEntry(reason, cpu)) => Action::End(VmExit::Fault {
            vp,
            reason: format!("VM entry failed: hardware reason {reason:#x} on CPU {cpu}"),
        }),
        Ok(other) => Action::End(VmExit::Fault {
            vp,
            reason: format!("unexpected exit {other:?}"),
        }),
        Err(e) if e.errno() == libc::EINTR => Action::Interrupted,
        Err(e) if e.errno() == libc::EAGAIN => Action::Continue,
        Err(e) => Action::End(VmExit::Fault {
            vp,
            reason: format!("KVM_RUN failed: {e}"),
        }),
    }
}
