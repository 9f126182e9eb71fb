//! `hvcall run --gdb PORT`: a GDB remote stub (the `gdbstub` crate) on
//! 127.0.0.1:PORT for the running VM, as its parent partition: VPs are
//! threads (VP n is thread n + 1), register reads and writes go through
//! the dispatcher's host entry points (HvCallGetVpRegisters and
//! HvCallSetVpRegisters as the root partition, [`hvcall_vmm::Inspector`]),
//! memory through the guest's own page tables.
//!
//! The VM stops when gdb attaches (and on Ctrl-C, a breakpoint or a step
//! done); `continue` runs every VP, `stepi` runs the selected VP alone for
//! one instruction (KVM's single-step; the other VPs stay stopped). When
//! gdb detaches the VM runs on and the stub waits for the next gdb; `kill`
//! stops the VM.
//!
//! Software breakpoints: the stub writes `int3` (0xCC) at the address
//! (translated through VP 0's page tables) and keeps the byte it
//! replaced. On this host CPL-0 guest code runs in KVM's instruction
//! emulator, which cannot execute `int3`: it reports an emulation failure
//! at the byte, which the VMM turns into a stop for gdb (RIP on the
//! breakpoint) instead of a #BP. Hardware breakpoints and watchpoints are
//! not offered.
//!
//! Registers gdb writes: the general registers, RIP, RFLAGS and XMM0–15
//! (only those that changed). Segment selectors, the x87 state and MXCSR
//! are shown but not written (a selector alone is not a segment): a write
//! that changes them fails in gdb and changes nothing.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use gdbstub::common::{Signal, Tid};
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::{run_blocking, DisconnectReason, GdbStub, MultiThreadStopReason};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use gdbstub_arch::x86::X86_64_SSE;
use hvcall_abi::name::x64;
use hvcall_abi::value::{FpControlStatus, SegmentRegister, XmmControlStatus};
use hvcall_abi::{HvRegisterName, HvRegisterValue, SetVpRegistersElement};
use hvcall_vmm::{DebugEvent, Inspector};

/// The general registers in gdb's order (rax, rbx, rcx, rdx, rsi, rdi,
/// rbp, rsp, r8–r15), which `hvcall regs` shows too.
pub const GPRS: [HvRegisterName; 16] = [
    x64::RAX,
    x64::RBX,
    x64::RCX,
    x64::RDX,
    x64::RSI,
    x64::RDI,
    x64::RBP,
    x64::RSP,
    x64::R8,
    x64::R9,
    x64::R10,
    x64::R11,
    x64::R12,
    x64::R13,
    x64::R14,
    x64::R15,
];
/// gdb's segment order.
const SEGMENTS: [HvRegisterName; 6] = [x64::CS, x64::SS, x64::DS, x64::ES, x64::FS, x64::GS];

/// Every register the stub reads, in the order [`regs_from`] takes them.
fn names() -> Vec<HvRegisterName> {
    let mut n = GPRS.to_vec();
    n.extend([x64::RIP, x64::RFLAGS]);
    n.extend(SEGMENTS);
    n.extend((0..8).map(|i| HvRegisterName(x64::FP_MMX0.0 + i)));
    n.extend([x64::FP_CONTROL_STATUS, x64::XMM_CONTROL_STATUS]);
    n.extend((0..16).map(|i| HvRegisterName(x64::XMM0.0 + i)));
    n
}

/// gdb's register file from the values of [`names`].
fn regs_from(v: &[HvRegisterValue]) -> X86_64CoreRegs {
    let mut r = X86_64CoreRegs::default();
    for (i, reg) in r.regs.iter_mut().enumerate() {
        *reg = v[i].as_u64();
    }
    r.rip = v[16].as_u64();
    r.eflags = v[17].as_u64() as u32;
    let sel = |k: usize| u32::from(SegmentRegister::from(v[18 + k]).selector);
    r.segments.cs = sel(0);
    r.segments.ss = sel(1);
    r.segments.ds = sel(2);
    r.segments.es = sel(3);
    r.segments.fs = sel(4);
    r.segments.gs = sel(5);
    for (k, st) in r.st.iter_mut().enumerate() {
        st.copy_from_slice(&v[24 + k].0[..10]);
    }
    let fp = FpControlStatus::from(v[32]);
    r.fpu.fctrl = u32::from(fp.fp_control);
    r.fpu.fstat = u32::from(fp.fp_status);
    // The abridged tag (a bit per register: valid) as the full tag word
    // gdb shows (00 valid, 11 empty).
    r.fpu.ftag = (0..8)
        .map(|k| {
            if fp.fp_tag & 1 << k != 0 {
                0
            } else {
                3 << (2 * k)
            }
        })
        .sum();
    r.fpu.fop = u32::from(fp.last_fp_op);
    r.fpu.fioff = fp.last_fp_eip();
    r.fpu.fiseg = u32::from(fp.last_fp_cs());
    let xs = XmmControlStatus::from(v[33]);
    r.fpu.fooff = xs.last_fp_dp();
    r.fpu.foseg = u32::from(xs.last_fp_ds());
    r.mxcsr = xs.xmm_status_control;
    for (k, x) in r.xmm.iter_mut().enumerate() {
        *x = v[34 + k].as_u128();
    }
    r
}

/// The writes that turn `old` into `new` (registers the stub writes).
fn changes(old: &X86_64CoreRegs, new: &X86_64CoreRegs) -> Vec<SetVpRegistersElement> {
    let mut w = Vec::new();
    let mut put =
        |name, v: u128| w.push(SetVpRegistersElement::new(name, HvRegisterValue::from(v)));
    for (i, name) in GPRS.iter().enumerate() {
        if old.regs[i] != new.regs[i] {
            put(*name, u128::from(new.regs[i]));
        }
    }
    if old.rip != new.rip {
        put(x64::RIP, u128::from(new.rip));
    }
    if old.eflags != new.eflags {
        put(x64::RFLAGS, u128::from(new.eflags));
    }
    for k in 0..16 {
        if old.xmm[k] != new.xmm[k] {
            put(HvRegisterName(x64::XMM0.0 + k as u32), new.xmm[k]);
        }
    }
    w
}

/// Whether `new` differs from `old` only in registers the stub writes
/// (not in segment selectors, the x87 registers or MXCSR).
fn writable_only(old: &X86_64CoreRegs, new: &X86_64CoreRegs) -> bool {
    old.segments == new.segments && old.st == new.st && old.fpu == new.fpu && old.mxcsr == new.mxcsr
}

/// The paging state an address is translated with.
#[derive(Copy, Clone, Debug, Default)]
pub struct Paging {
    cr0: u64,
    cr3: u64,
    cr4: u64,
    efer: u64,
}

const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LMA: u64 = 1 << 10;
const PRESENT: u64 = 1;
const LARGE: u64 = 1 << 7;
const ADDRESS: u64 = 0x000F_FFFF_FFFF_F000;

/// The guest-physical address of virtual address `gva` under `paging`,
/// reading page-table entries with `read` (None: not mapped). Paging off:
/// the address itself; 4-level long-mode paging with 1 GiB and 2 MiB
/// pages; other modes (32-bit paging, PAE without long mode, 5-level) are
/// not walked.
fn translate(paging: Paging, gva: u64, read: impl Fn(u64) -> Option<u64>) -> Option<u64> {
    if paging.cr0 & CR0_PG == 0 {
        return Some(gva);
    }
    if paging.cr4 & CR4_PAE == 0 || paging.efer & EFER_LMA == 0 {
        return None;
    }
    let mut table = paging.cr3 & ADDRESS;
    for level in (1..=4u32).rev() {
        let shift = 12 + 9 * (level - 1);
        let entry = read(table + 8 * ((gva >> shift) & 0x1FF))?;
        if entry & PRESENT == 0 {
            return None;
        }
        if level == 1 || (level <= 3 && entry & LARGE != 0) {
            let page = entry & ADDRESS & !((1u64 << shift) - 1);
            return Some(page | (gva & ((1u64 << shift) - 1)));
        }
        table = entry & ADDRESS;
    }
    None
}

/// The VM as gdb's target.
struct VmTarget<'a, 'b> {
    insp: &'a Inspector<'b>,
    vps: u32,
    /// Breakpoint address → (its GPA, the byte the `int3` replaced).
    breakpoints: BTreeMap<u64, (u64, u8)>,
    /// The VP resumed for one instruction, if any.
    step: Option<u32>,
    /// The VPs resumed with "continue" (bit n: VP n).
    continued: u64,
    /// Scheduler locking: only the VPs resumed run.
    locked: bool,
}

const NO_SUCH_VP: &str = "no such VP";

impl VmTarget<'_, '_> {
    fn vp(&self, tid: Tid) -> Result<u32, TargetError<&'static str>> {
        let vp = u32::try_from(tid.get() - 1).map_err(|_| TargetError::NonFatal)?;
        if vp < self.vps {
            Ok(vp)
        } else {
            Err(TargetError::NonFatal)
        }
    }

    fn paging(&self, vp: u32) -> Option<Paging> {
        let v = self
            .insp
            .get_vp_registers(vp, &[x64::CR0, x64::CR3, x64::CR4, x64::EFER])
            .ok()?;
        Some(Paging {
            cr0: v[0].as_u64(),
            cr3: v[1].as_u64(),
            cr4: v[2].as_u64(),
            efer: v[3].as_u64(),
        })
    }

    /// The GPA of `gva` in VP `vp`'s address space.
    fn gpa(&self, vp: u32, gva: u64) -> Option<u64> {
        let ram = self.insp.ram();
        translate(self.paging(vp)?, gva, |gpa| {
            let mut b = [0u8; 8];
            ram.read(gpa, &mut b).ok()?;
            Some(u64::from_le_bytes(b))
        })
    }

    /// Copies between guest virtual memory at `addr` and `buf`, page by
    /// page, as far as it is mapped RAM; the bytes done.
    fn access(
        &self,
        vp: u32,
        addr: u64,
        len: usize,
        mut op: impl FnMut(u64, usize, usize) -> bool,
    ) -> usize {
        let mut done = 0;
        while done < len {
            let va = addr.wrapping_add(done as u64);
            let in_page = (4096 - (va & 0xFFF)) as usize;
            let n = in_page.min(len - done);
            match self.gpa(vp, va) {
                Some(gpa) if op(gpa, done, n) => done += n,
                _ => break,
            }
        }
        done
    }
}

impl Target for VmTarget<'_, '_> {
    type Arch = X86_64_SSE;
    type Error = &'static str;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadBase for VmTarget<'_, '_> {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        let vp = self.vp(tid)?;
        let values = self
            .insp
            .get_vp_registers(vp, &names())
            .map_err(|_| TargetError::NonFatal)?;
        *regs = regs_from(&values);
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        let vp = self.vp(tid)?;
        let values = self
            .insp
            .get_vp_registers(vp, &names())
            .map_err(|_| TargetError::NonFatal)?;
        let now = regs_from(&values);
        if !writable_only(&now, regs) {
            // A selector or x87 change the stub cannot make: gdb reports
            // the write as failed, and nothing is written.
            return Err(TargetError::NonFatal);
        }
        let writes = changes(&now, regs);
        if !writes.is_empty() {
            self.insp
                .set_vp_registers(vp, &writes)
                .map_err(|_| TargetError::NonFatal)?;
        }
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        let vp = self.vp(tid)?;
        let ram = self.insp.ram();
        let len = data.len();
        let done = self.access(vp, start, len, |gpa, at, n| {
            ram.read(gpa, &mut data[at..at + n]).is_ok()
        });
        // Breakpoint bytes read as what they replaced.
        for (&addr, &(_, orig)) in &self.breakpoints {
            if let Some(i) = addr.checked_sub(start).filter(|&i| i < done as u64) {
                data[i as usize] = orig;
            }
        }
        if done == 0 && len > 0 {
            return Err(TargetError::NonFatal);
        }
        Ok(done)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        let vp = self.vp(tid)?;
        let ram = self.insp.ram();
        let done = self.access(vp, start, data.len(), |gpa, at, n| {
            ram.write(gpa, &data[at..at + n]).is_ok()
        });
        if done == data.len() {
            Ok(())
        } else {
            Err(TargetError::NonFatal)
        }
    }

    fn list_active_threads(&mut self, register: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        for vp in 0..self.vps {
            if let Some(tid) = Tid::new(vp as usize + 1) {
                register(tid);
            }
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadResume for VmTarget<'_, '_> {
    fn resume(&mut self) -> Result<(), Self::Error> {
        // A step runs its VP alone (the others stay stopped, as with
        // scheduler locking); a continue runs every VP unless locked.
        let only = (self.locked || self.step.is_some()).then_some(if self.step.is_some() {
            0
        } else {
            self.continued
        });
        self.insp.debug_resume(only, self.step);
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.step = None;
        self.continued = 0;
        self.locked = false;
        Ok(())
    }

    fn set_resume_action_continue(
        &mut self,
        tid: Tid,
        signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        if signal.is_some() {
            return Err("signals cannot be delivered to a VP");
        }
        let vp = self.vp(tid).map_err(|_| NO_SUCH_VP)?;
        self.continued |= 1u64.checked_shl(vp).unwrap_or(0);
        Ok(())
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSchedulerLocking for VmTarget<'_, '_> {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        self.locked = true;
        Ok(())
    }
}

impl MultiThreadSingleStep for VmTarget<'_, '_> {
    fn set_resume_action_step(
        &mut self,
        tid: Tid,
        signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        if signal.is_some() {
            return Err("signals cannot be delivered to a VP");
        }
        self.step = Some(self.vp(tid).map_err(|_| NO_SUCH_VP)?);
        Ok(())
    }
}

impl Breakpoints for VmTarget<'_, '_> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for VmTarget<'_, '_> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.breakpoints.contains_key(&addr) {
            return Ok(true);
        }
        let Some(gpa) = self.gpa(0, addr) else {
            return Ok(false);
        };
        let ram = self.insp.ram();
        let mut orig = [0u8];
        if ram.read(gpa, &mut orig).is_err() || ram.write(gpa, &[0xCC]).is_err() {
            return Ok(false);
        }
        self.breakpoints.insert(addr, (gpa, orig[0]));
        self.insp.set_breakpoint(addr, true);
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let Some((gpa, orig)) = self.breakpoints.remove(&addr) else {
            return Ok(false);
        };
        self.insp.set_breakpoint(addr, false);
        Ok(self.insp.ram().write(gpa, &[orig]).is_ok())
    }
}

/// The event loop: the VM stops on its own (breakpoint, step), gdb sends
/// a byte (Ctrl-C), or the VM ends.
struct EventLoop<'a, 'b>(std::marker::PhantomData<&'a Inspector<'b>>);

impl<'a, 'b> run_blocking::BlockingEventLoop for EventLoop<'a, 'b> {
    type Target = VmTarget<'a, 'b>;
    type Connection = TcpStream;
    type StopReason = MultiThreadStopReason<u64>;

    #[allow(clippy::type_complexity)]
    fn wait_for_stop_reason(
        target: &mut Self::Target,
        conn: &mut Self::Connection,
    ) -> Result<
        run_blocking::Event<Self::StopReason>,
        run_blocking::WaitForStopReasonError<&'static str, std::io::Error>,
    > {
        let tid = |vp: u32| Tid::new(vp as usize + 1);
        loop {
            match target.insp.debug_wait(Duration::from_millis(20)) {
                Some(DebugEvent::Breakpoint(vp)) => {
                    if let Some(tid) = tid(vp) {
                        return Ok(run_blocking::Event::TargetStopped(
                            MultiThreadStopReason::SwBreak(tid),
                        ));
                    }
                }
                Some(DebugEvent::Stepped(vp)) => {
                    // With the thread, so gdb stays on the VP it stepped.
                    if let Some(tid) = tid(vp) {
                        return Ok(run_blocking::Event::TargetStopped(
                            MultiThreadStopReason::SignalWithThread {
                                tid,
                                signal: Signal::SIGTRAP,
                            },
                        ));
                    }
                }
                None => {}
            }
            if !target.insp.is_running() {
                return Ok(run_blocking::Event::TargetStopped(
                    MultiThreadStopReason::Exited(0),
                ));
            }
            if conn
                .peek()
                .map_err(run_blocking::WaitForStopReasonError::Connection)?
                .is_some()
            {
                let byte = conn
                    .read()
                    .map_err(run_blocking::WaitForStopReasonError::Connection)?;
                return Ok(run_blocking::Event::IncomingData(byte));
            }
        }
    }

    fn on_interrupt(target: &mut Self::Target) -> Result<Option<Self::StopReason>, &'static str> {
        target.insp.debug_stop();
        // Reported on VP 0, so gdb knows which thread it is on.
        Ok(Some(match Tid::new(1) {
            Some(tid) => MultiThreadStopReason::SignalWithThread {
                tid,
                signal: Signal::SIGINT,
            },
            None => MultiThreadStopReason::Signal(Signal::SIGINT),
        }))
    }
}

/// Serves gdb sessions on `listener` until the VM ends: one at a time;
/// the VM stops while one is attached and runs on after a detach.
/// Once `stop()` returns true the VM is stopped ([`Inspector::stop`]).
pub fn serve(listener: &TcpListener, insp: &Inspector<'_>, stop: &(dyn Fn() -> bool + Sync)) {
    if listener.set_nonblocking(true).is_err() {
        tracing::warn!("gdb: cannot poll the listening socket; not served");
        return;
    }
    while insp.is_running() {
        if stop() {
            insp.stop();
            break;
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => {
                tracing::debug!("gdb accept: {e}");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err() || stream.set_nodelay(true).is_err() {
            continue;
        }
        insp.debug_stop();
        let mut target = VmTarget {
            insp,
            vps: insp.vp_count(),
            breakpoints: BTreeMap::new(),
            step: None,
            continued: 0,
            locked: false,
        };
        let end = GdbStub::new(stream).run_blocking::<EventLoop<'_, '_>>(&mut target);
        // Whatever happened, no int3 of ours stays in the guest.
        let addrs: Vec<u64> = target.breakpoints.keys().copied().collect();
        for addr in addrs {
            let _ = target.remove_sw_breakpoint(addr, 1);
        }
        match end {
            Ok(DisconnectReason::Kill) => insp.stop(),
            Ok(_) => insp.debug_resume(None, None),
            Err(e) => {
                tracing::warn!("gdb session ended: {e}");
                insp.debug_resume(None, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4-level table set in a map: PML4 at 0x1000 → PDPT 0x2000 → PD
    /// 0x3000 (2 MiB page at 0x20_0000 for VA 0x40_0000) → PT 0x4000 (4 KiB
    /// page 0x9000 for VA 0x60_1000); PDPT entry 1 is a 1 GiB page at 0.
    fn tables() -> impl Fn(u64) -> Option<u64> {
        let mut m = std::collections::HashMap::new();
        m.insert(0x1000, 0x2000 | PRESENT);
        m.insert(0x2000, 0x3000 | PRESENT);
        m.insert(0x2008, LARGE | PRESENT);
        m.insert(0x3000 + 8 * 2, 0x20_0000 | LARGE | PRESENT);
        m.insert(0x3000 + 8 * 3, 0x4000 | PRESENT);
        m.insert(0x4008, 0x9000 | PRESENT);
        move |a| Some(*m.get(&a).unwrap_or(&0))
    }

    #[test]
    fn long_mode_walks_4k_2m_and_1g_pages() {
        let p = Paging {
            cr0: CR0_PG | 1,
            cr3: 0x1000,
            cr4: CR4_PAE,
            efer: EFER_LMA,
        };
        assert_eq!(translate(p, 0x40_0123, tables()), Some(0x20_0123));
        assert_eq!(translate(p, 0x60_1FFF, tables()), Some(0x9FFF));
        assert_eq!(
            translate(p, 0x4000_1234, tables()),
            Some(0x1234),
            "1 GiB page"
        );
        assert_eq!(translate(p, 0x60_2000, tables()), None, "not present");
        let real = Paging::default();
        assert_eq!(
            translate(real, 0x1234, tables()),
            Some(0x1234),
            "paging off"
        );
        let pae32 = Paging { efer: 0, ..p };
        assert_eq!(translate(pae32, 0x1234, tables()), None);
    }

    #[test]
    fn registers_round_trip_and_only_changes_are_written() {
        let mut values: Vec<HvRegisterValue> = (0..names().len())
            .map(|i| HvRegisterValue::from(0x100 + i as u64))
            .collect();
        values[18] = HvRegisterValue::from(SegmentRegister {
            selector: 8,
            ..Default::default()
        });
        let r = regs_from(&values);
        assert_eq!(r.regs[0], 0x100, "rax");
        assert_eq!(r.regs[12], 0x10C, "r12");
        assert_eq!(r.rip, 0x110);
        assert_eq!(r.segments.cs, 8);
        assert_eq!(r.xmm[15], 0x100 + 34 + 15);
        let mut new = r.clone();
        new.regs[12] = 5;
        new.xmm[3] = 7;
        assert!(writable_only(&r, &new));
        let w = changes(&r, &new);
        let got: Vec<(HvRegisterName, u128)> =
            w.iter().map(|e| (e.name, e.value.as_u128())).collect();
        assert_eq!(got, [(x64::R12, 5), (x64::XMM3, 7)]);
        // A selector or x87 change is refused as a whole.
        let mut seg = new.clone();
        seg.segments.ds = 0x30;
        assert!(!writable_only(&r, &seg));
        let mut x87 = new;
        x87.st[0][0] ^= 1;
        assert!(!writable_only(&r, &x87));
    }
}
