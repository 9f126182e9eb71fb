//! The cross-VP path, and the rest of the coordination of the vCPU
//! threads: VM end, pausing every vCPU, the debugger's hold and the
//! all-halted rule.
//!
//! # Reading or writing another VP, end to end
//!
//! 1. A requester: a VP inside its hypercall (`crate::vcpu::hypercall`'s
//!    `VpHypervisor`, for the dispatcher's snapshot and write calls) or
//!    the host ([`crate::host::inspect::Inspector`]) calls
//!    [`Rendezvous::request_snapshot`] / [`Rendezvous::request_write`] (or
//!    their host forms) here.
//! 2. The request is queued for the target VP, whose thread is kicked out
//!    of `KVM_RUN` with a real-time signal ([`kick`]).
//! 3. The target's thread serves it ([`serve`]) at the next point where
//!    the VP is between two instructions: [`Between`] outside a hypercall,
//!    `crate::vcpu::hypercall::InCall` inside its own. A read is a
//!    [`crate::state::snapshot::VpSnapshot`] of the groups asked; a write is
//!    applied by [`crate::state::write`].
//! 4. The reply goes back through the requester's slot here; a VP halted
//!    for good is read from a copy parked at its halt, without waking it.
//!
//! All coordination state sits behind one mutex with one condition
//! variable (plus the additions for speed described below). vCPU ioctls
//! are only ever made by the vCPU's own thread: to read or write VP `t`
//! another thread posts a request ([`Work`]: the register [`Groups`] it
//! needs, or a batch of elements to write), kicks `t` (a signal, see the
//! `kick` module) and waits; `t` serves it on its thread, through its
//! [`Server`], at the next point where its state is consistent (just
//! after `KVM_RUN` returned `EINTR`, or while it waits in a hypercall,
//! while halted, or paused) and posts the reply. Writes waiting together
//! are applied in the order they came, then the reads waiting together are
//! answered with one snapshot holding the union of their groups.
//!
//! A thread that waits for anything keeps serving requests addressed to
//! it, so two VPs reading each other at the same moment both finish. The
//! VM ending wakes every waiter.
//!
//! The host (see [`crate::host::inspect`]) may request snapshots too: it is not a
//! VP, has nothing to serve, and has one reply slot of its own, used by one
//! host request at a time.
//!
//! Three details cut the time a VP takes to read another running VP by
//! about half (`cargo bench -p hvcall-vmm --bench hypercall_cost`; on this
//! 2-core KVM, waking a thread that sleeps on the other core costs
//! 15–20 µs):
//! - the kick is sent with the state lock released: the target leaves
//!   `KVM_RUN` about as soon as `pthread_kill` returns, and used to sleep
//!   on the lock its requester still held. Each VP's kicker sits behind
//!   its own leaf lock (nothing else is taken while it is held), which
//!   keeps the thread alive while it is signalled;
//! - [`Rendezvous::wait_end`] (the watchdog) has its own condition
//!   variable, signalled only when the VM ends, so snapshot traffic does
//!   not wake it every time;
//! - a VP requester spins for at most `SPIN` (40 µs) on a counter of
//!   served snapshots before it sleeps: most replies come within that, and
//!   its core does not go idle. The bound keeps the spin cheap when VPs
//!   outnumber cores; after it, the requester serves and sleeps as usual.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(crate) mod kick;
mod serve;

pub(crate) use serve::Server;

use hvcall_abi::SetVpRegistersElement;
use hvcall_dispatch::{SourceError, WriteFailure};

use crate::hyperv::synthetic::SyntheticState;
use crate::state::registers::Groups;
use crate::state::snapshot::VpSnapshot;
pub use crate::state::SnapshotError;
use crate::VmExit;
use kick::Kicker;

/// What the thread that serves a read hands back.
pub(crate) type Served = Result<Box<VpSnapshot>, SnapshotError>;

/// What the thread that serves a write hands back: every element applied,
/// or where and why the batch stopped.
pub(crate) type WriteReply = Result<(), WriteFailure<SnapshotError>>;

/// What a request asks of the target VP's thread.
#[derive(Clone, Debug)]
enum Work {
    /// A snapshot holding at least these groups.
    Read(Groups),
    /// These elements written, in order, as one batch.
    Write(Vec<SetVpRegistersElement>),
}

/// The answer to a request.
#[derive(Clone, Debug)]
enum Reply {
    Read(Served),
    Write(WriteReply),
    /// A read of a VP halted for good: a copy of its parked snapshot,
    /// whose synthetic state the requester refreshes (never delivered).
    Parked(Box<VpSnapshot>),
}

impl Reply {
    /// The reply to a read (`write` false) or a write when nothing can
    /// serve it any more.
    fn ended(write: bool) -> Self {
        if write {
            Reply::Write(Err(WriteFailure {
                applied: 0,
                error: SourceError::Host(SnapshotError::Ended),
            }))
        } else {
            Reply::Read(Err(SnapshotError::Ended))
        }
    }

    /// The snapshot of a read; `synthetic` is the target's synthetic
    /// state now, for a parked copy.
    fn into_read(self, synthetic: impl FnOnce() -> SyntheticState) -> Served {
        match self {
            Reply::Read(r) => r,
            Reply::Parked(parked) => Ok(parked.with_synthetic(synthetic())),
            Reply::Write(_) => Err(SnapshotError::Internal("a write reply to a read")),
        }
    }

    fn into_write(self) -> WriteReply {
        match self {
            Reply::Write(r) => r,
            Reply::Read(_) | Reply::Parked(_) => Err(WriteFailure {
                applied: 0,
                error: SourceError::Host(SnapshotError::Internal("a read reply to a write")),
            }),
        }
    }
}

/// Who waits for a snapshot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Requester {
    /// A VP, stopped at its hypercall.
    Vp(u32),
    /// The host (the root partition's inspector).
    Host,
}

/// One VP or the host waiting for a VP's thread.
#[derive(Clone, Debug)]
struct Request {
    /// Who waits.
    requester: Requester,
    /// What for.
    work: Work,
}

#[derive(Debug, Default)]
struct VpSlot {
    /// Requests waiting for this VP's snapshot.
    requests: Vec<Request>,
    /// The reply to this VP's own request.
    reply: Option<Reply>,
    /// Every group of this VP, taken when it halted for good: it never
    /// runs again, so requests are answered from this copy without waking
    /// its thread (the synthetic state is refreshed per request).
    parked: Option<Box<VpSnapshot>>,
}

/// The host's request slot.
#[derive(Debug, Default)]
struct HostSlot {
    /// A host request is outstanding (host requests take turns).
    busy: bool,
    /// The reply to it.
    reply: Option<Reply>,
}

/// Why a debugger's hold began (see [`Rendezvous::debug_stop`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DebugEvent {
    /// VP n reached a software breakpoint the debugger set (its RIP is on
    /// the `int3`, not yet executed).
    Breakpoint(u32),
    /// VP n executed the one instruction it was resumed for.
    Stepped(u32),
}

/// A debugger's hold on the VM: while `held`, only the VPs of `running`
/// enter `KVM_RUN`, `step` among them for one instruction (then the hold
/// is back for every VP).
#[derive(Debug, Default)]
struct Hold {
    held: bool,
    running: u64,
    step: Option<u32>,
    event: Option<DebugEvent>,
}

impl Hold {
    fn may_run(&self, vp: u32) -> bool {
        !self.held || (vp < 64 && self.running & 1 << vp != 0)
    }
}

#[derive(Debug, Default)]
struct State {
    ended: Option<VmExit>,
    /// The debugger's hold.
    hold: Hold,
    vps: Vec<VpSlot>,
    host: HostSlot,
    /// vCPU threads inside (or committed to enter) `KVM_RUN`.
    in_run: u32,
    /// A thread wants every vCPU outside `KVM_RUN`.
    paused: bool,
    /// VPs halted with interrupts disabled.
    halted: u32,
}

/// What a vCPU thread does next.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Enter `KVM_RUN`; with `immediate_exit` set if a request waits for a
    /// state that only re-entry can make consistent.
    Run {
        /// Set `kvm_run.immediate_exit` before entering.
        immediate_exit: bool,
        /// The debugger resumed this VP for one instruction.
        single_step: bool,
    },
    /// The VM ended: leave the run loop.
    Stop,
}

/// The coordination point of one VM run.
#[derive(Debug)]
pub(crate) struct Rendezvous {
    state: Mutex<State>,
    changed: Condvar,
    /// Signalled only when the VM ends, for [`Self::wait_end`]: the
    /// watchdog is not woken by every snapshot.
    ended: Condvar,
    /// Per VP, set while its vCPU thread is alive. A leaf lock (nothing
    /// else is taken while it is held), so a snapshot request kicks its
    /// target without holding `state`.
    kickers: Vec<Mutex<Option<Kicker>>>,
    /// Bumped after every snapshot served: a hint a requester spins on
    /// before it sleeps (the reply itself is read under `state`).
    replies: AtomicU64,
}

/// How long a VP requester spins for its reply before it sleeps: longer
/// than a kick plus a snapshot of sync registers takes on this KVM.
const SPIN: Duration = Duration::from_micros(40);

impl State {
    /// Hands `reply` to `requester`.
    fn deliver(&mut self, requester: Requester, reply: Reply) {
        match requester {
            Requester::Vp(vp) => {
                if let Some(slot) = self.vps.get_mut(vp as usize) {
                    slot.reply = Some(reply);
                }
            }
            Requester::Host => self.host.reply = Some(reply),
        }
    }
}

impl Rendezvous {
    /// For `cpus` VPs.
    pub(crate) fn new(cpus: u32) -> Self {
        let state = State {
            vps: (0..cpus).map(|_| VpSlot::default()).collect(),
            ..State::default()
        };
        Self {
            state: Mutex::new(state),
            changed: Condvar::new(),
            ended: Condvar::new(),
            kickers: (0..cpus).map(|_| Mutex::new(None)).collect(),
            replies: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a vCPU thread panicked; the state itself
        // stays valid, so carry on and let the run end.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// VP `vp`'s kicker slot, locked.
    fn kicker(&self, vp: usize) -> Option<MutexGuard<'_, Option<Kicker>>> {
        let slot = self.kickers.get(vp)?;
        Some(slot.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Kicks VP `vp`'s thread if it is alive (see [`Kicker::kick`]).
    fn kick(&self, vp: usize) {
        if let Some(Some(k)) = self.kicker(vp).as_deref() {
            // SAFETY: the kicker is read under its slot's lock, and a vCPU
            // thread clears its kicker under that lock before it returns
            // (`unregister`), so the thread is alive while we hold it.
            unsafe { k.kick() };
        }
    }

    /// Called by VP `vp`'s thread when it starts.
    pub(crate) fn register(&self, vp: u32) {
        if let Some(mut k) = self.kicker(vp as usize) {
            *k = Some(Kicker::current());
        }
    }

    /// Called by VP `vp`'s thread just before it returns: no kick reaches
    /// it afterwards, and requests it can no longer answer fail.
    pub(crate) fn unregister(&self, vp: u32) {
        if let Some(mut k) = self.kicker(vp as usize) {
            *k = None;
        }
        let mut st = self.lock();
        let requests = match st.vps.get_mut(vp as usize) {
            Some(slot) => std::mem::take(&mut slot.requests),
            None => Vec::new(),
        };
        for r in requests {
            st.deliver(r.requester, Reply::ended(matches!(r.work, Work::Write(_))));
        }
        self.changed.notify_all();
    }

    /// Ends the VM with `exit` unless it already ended; kicks every vCPU.
    pub(crate) fn end(&self, exit: VmExit) {
        let mut st = self.lock();
        if st.ended.is_none() {
            tracing::debug!(?exit, "VM ends");
            st.ended = Some(exit);
        }
        for vp in 0..st.vps.len() {
            self.kick(vp);
        }
        self.changed.notify_all();
        self.ended.notify_all();
    }

    /// How the VM ended, if it did.
    pub(crate) fn ended(&self) -> Option<VmExit> {
        self.lock().ended.clone()
    }

    /// Waits until the VM ends or `timeout` passes; true if it ended. A
    /// timeout too long to represent waits for the end.
    pub(crate) fn wait_end(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.lock();
        while st.ended.is_none() {
            let Some(deadline) = deadline else {
                st = self.ended.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .ended
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Serves the requests addressed to `vp` (called with the lock held
    /// and the VP's state consistent): the writes in the order they came,
    /// then one snapshot holding every group the reads asked for. A VP
    /// halted for good parks a fresh snapshot after writes. Drops and
    /// retakes the lock.
    fn serve<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        vp: u32,
        server: &mut dyn Server,
    ) -> MutexGuard<'a, State> {
        let (requests, parked) = match st.vps.get_mut(vp as usize) {
            Some(slot) if !slot.requests.is_empty() => {
                (std::mem::take(&mut slot.requests), slot.parked.is_some())
            }
            _ => return st,
        };
        drop(st);
        let mut replies: Vec<(Requester, Reply)> = Vec::with_capacity(requests.len());
        let mut groups = None;
        for r in &requests {
            match &r.work {
                Work::Write(elements) => {
                    replies.push((r.requester, Reply::Write(server.write(elements))));
                }
                Work::Read(g) => groups = Some(groups.unwrap_or(Groups::NONE).union(*g)),
            }
        }
        let wrote = replies.len();
        if let Some(groups) = groups {
            let snapshot = server.snapshot(groups);
            for r in &requests {
                if matches!(r.work, Work::Read(_)) {
                    replies.push((r.requester, Reply::Read(snapshot.clone())));
                }
            }
        }
        let repark = (parked && wrote > 0).then(|| server.snapshot(Groups::ALL).ok());
        tracing::trace!(vp, ?requests, "served");
        let mut st = self.lock();
        if let (Some(parked), Some(slot)) = (repark, st.vps.get_mut(vp as usize)) {
            slot.parked = parked;
        }
        for (requester, reply) in replies {
            st.deliver(requester, reply);
        }
        self.changed.notify_all();
        self.replies.fetch_add(1, Ordering::Relaxed);
        st
    }

    /// A copy of VP `vp`'s parked snapshot, if it halted for good.
    fn parked_in(st: &State, vp: u32) -> Option<Box<VpSnapshot>> {
        st.vps.get(vp as usize)?.parked.clone()
    }

    fn has_requests(st: &State, vp: u32) -> bool {
        st.vps
            .get(vp as usize)
            .is_some_and(|s| !s.requests.is_empty())
    }

    /// Called by VP `vp`'s thread before `KVM_RUN`. `consistent` says
    /// whether its state is between two instructions now (no exit awaits
    /// completion by re-entry); `server` serves requests for it.
    pub(crate) fn before_run(&self, vp: u32, consistent: bool, server: &mut dyn Server) -> Next {
        let mut st = self.lock();
        loop {
            if st.ended.is_some() {
                return Next::Stop;
            }
            if Self::has_requests(&st, vp) && consistent {
                st = self.serve(st, vp, server);
                continue;
            }
            if !consistent && !st.hold.may_run(vp) {
                // Held by the debugger but an exit awaits completion by
                // re-entry: enter with immediate_exit, which completes it
                // and runs no guest instruction, so that the VP can be
                // read and written while held.
                st.in_run += 1;
                return Next::Run {
                    immediate_exit: true,
                    single_step: false,
                };
            }
            if st.paused || !st.hold.may_run(vp) {
                st = self.wait(st);
                continue;
            }
            let immediate_exit = Self::has_requests(&st, vp);
            st.in_run += 1;
            return Next::Run {
                immediate_exit,
                single_step: st.hold.step == Some(vp),
            };
        }
    }

    /// Called by a vCPU thread when `KVM_RUN` returned.
    pub(crate) fn after_run(&self) {
        let mut st = self.lock();
        st.in_run = st.in_run.saturating_sub(1);
        if st.paused || st.hold.held {
            self.changed.notify_all();
        }
    }

    /// Called by VP `requester`'s thread (stopped at its hypercall) to get
    /// a consistent snapshot of VP `target` (another VP) holding at least
    /// `groups`. `server` serves requests addressed to `requester`
    /// meanwhile; `synthetic` is the target's synthetic state now, for a
    /// target halted for good (read from its parked snapshot).
    pub(crate) fn request_snapshot(
        &self,
        requester: u32,
        target: u32,
        groups: Groups,
        server: &mut dyn Server,
        synthetic: impl FnOnce() -> SyntheticState,
    ) -> Served {
        self.request(requester, target, Work::Read(groups), server)
            .into_read(synthetic)
    }

    /// Called by VP `requester`'s thread (stopped at its hypercall) to
    /// write `elements` to VP `target` (another VP) as one batch, applied
    /// by the target's thread between two of its instructions. `server`
    /// serves requests addressed to `requester` meanwhile.
    pub(crate) fn request_write(
        &self,
        requester: u32,
        target: u32,
        elements: &[SetVpRegistersElement],
        server: &mut dyn Server,
    ) -> WriteReply {
        self.request(requester, target, Work::Write(elements.to_vec()), server)
            .into_write()
    }

    /// Queues `work` from `requester` for VP `target`, or answers it at
    /// once: the VM ended (or there is no such VP), or for a read, the
    /// target's parked snapshot. Both kinds of requester post through here.
    fn post(&self, st: &mut State, requester: Requester, target: u32, work: Work) -> Option<Reply> {
        let write = matches!(work, Work::Write(_));
        if st.ended.is_some() {
            return Some(Reply::ended(write));
        }
        if !write {
            if let Some(parked) = Self::parked_in(st, target) {
                return Some(Reply::Parked(parked));
            }
        }
        let Some(slot) = st.vps.get_mut(target as usize) else {
            return Some(Reply::ended(write));
        };
        slot.requests.push(Request { requester, work });
        if requester == Requester::Host {
            st.host = HostSlot {
                busy: true,
                reply: None,
            };
        }
        self.changed.notify_all();
        None
    }

    fn request(&self, requester: u32, target: u32, work: Work, server: &mut dyn Server) -> Reply {
        let write = matches!(work, Work::Write(_));
        let mut st = self.lock();
        if let Some(reply) = self.post(&mut st, Requester::Vp(requester), target, work) {
            return reply;
        }
        let replies = self.replies.load(Ordering::Relaxed);
        // Kick with `state` released: the target leaves KVM_RUN within
        // microseconds and must not find the lock held by its kicker.
        drop(st);
        self.kick(target as usize);
        let start = Instant::now();
        while self.replies.load(Ordering::Relaxed) == replies && start.elapsed() < SPIN {
            std::hint::spin_loop();
        }
        let mut st = self.lock();
        loop {
            if let Some(reply) = st
                .vps
                .get_mut(requester as usize)
                .and_then(|s| s.reply.take())
            {
                return reply;
            }
            if st.ended.is_some() {
                return Reply::ended(write);
            }
            if Self::has_requests(&st, requester) {
                st = self.serve(st, requester, server);
                continue;
            }
            st = self.wait(st);
        }
    }

    /// Called by a host thread (not a VP) to get a consistent snapshot of
    /// VP `target` holding at least `groups`. The host has nothing to
    /// serve, so it only waits: for an earlier host request to finish, then
    /// for its reply or the VM's end ([`SnapshotError::Ended`], also for a
    /// `target` that does not exist).
    pub(crate) fn request_host_snapshot(
        &self,
        target: u32,
        groups: Groups,
        synthetic: impl FnOnce() -> SyntheticState,
    ) -> Served {
        self.request_host(target, Work::Read(groups))
            .into_read(synthetic)
    }

    /// Called by a host thread (not a VP) to write `elements` to VP
    /// `target` as one batch; waits as [`Self::request_host_snapshot`]
    /// does.
    pub(crate) fn request_host_write(
        &self,
        target: u32,
        elements: &[SetVpRegistersElement],
    ) -> WriteReply {
        self.request_host(target, Work::Write(elements.to_vec()))
            .into_write()
    }

    fn request_host(&self, target: u32, work: Work) -> Reply {
        let write = matches!(work, Work::Write(_));
        let mut st = self.lock();
        while st.host.busy && st.ended.is_none() {
            st = self.wait(st);
        }
        if let Some(reply) = self.post(&mut st, Requester::Host, target, work) {
            return reply;
        }
        drop(st);
        self.kick(target as usize);
        let mut st = self.lock();
        let reply = loop {
            if let Some(reply) = st.host.reply.take() {
                break reply;
            }
            if st.ended.is_some() {
                break Reply::ended(write);
            }
            st = self.wait(st);
        };
        st.host.busy = false;
        self.changed.notify_all();
        reply
    }

    /// Called by VP `vp`'s thread after HLT: the VP never runs again. If
    /// interrupts are disabled it counts towards "all halted" (which ends
    /// the VM with [`VmExit::AllHalted`]). Otherwise it parks a snapshot of
    /// every group, from which requests for it are answered without waking
    /// this thread, and serves the requests made before that until the VM
    /// ends.
    pub(crate) fn halt(&self, vp: u32, interrupts_disabled: bool, server: &mut dyn Server) {
        let mut st = self.lock();
        if interrupts_disabled {
            st.halted += 1;
            if st.halted as usize == st.vps.len() && st.ended.is_none() {
                drop(st);
                self.end(VmExit::AllHalted);
                st = self.lock();
            }
        }
        if st.ended.is_none() {
            // Its state will not change any more: park one snapshot of
            // every group for requesters to copy (a failed fetch leaves
            // requests to be served here, as for a running VP).
            drop(st);
            let parked = server.snapshot(Groups::ALL).ok();
            st = self.lock();
            if let Some(slot) = st.vps.get_mut(vp as usize) {
                slot.parked = parked;
            }
        }
        while st.ended.is_none() {
            if Self::has_requests(&st, vp) {
                st = self.serve(st, vp, server);
                continue;
            }
            st = self.wait(st);
        }
    }

    /// A debugger stops the VM: from now on no VP enters `KVM_RUN`; the VPs
    /// inside it are kicked out, and this returns once none is inside (or
    /// the VM ended). They keep serving reads and writes.
    pub(crate) fn debug_stop(&self) {
        let mut st = self.lock();
        st.hold = Hold {
            held: true,
            running: 0,
            step: None,
            event: st.hold.event,
        };
        self.changed.notify_all();
        for vp in 0..st.vps.len() {
            self.kick(vp);
        }
        while st.in_run > 0 && st.ended.is_none() {
            st = self.wait(st);
        }
    }

    /// A debugger lets the VM run again: every VP (`only` = `None`), or
    /// the VPs of the mask `only` while the others stay stopped; VP `step`
    /// (in `only` or not) runs one instruction, after which it reports
    /// [`DebugEvent::Stepped`] and the hold is back for every VP.
    pub(crate) fn debug_resume(&self, only: Option<u64>, step: Option<u32>) {
        let mut st = self.lock();
        let step_bit = step.filter(|&vp| vp < 64).map_or(0, |vp| 1u64 << vp);
        st.hold = Hold {
            held: only.is_some() || step.is_some(),
            running: only.unwrap_or(0) | step_bit,
            step,
            event: None,
        };
        self.changed.notify_all();
    }

    /// Called by VP `vp`'s thread when it stopped for the debugger: the
    /// hold begins (every other VP is kicked out of `KVM_RUN`) and
    /// [`Self::debug_wait`] returns `event`.
    pub(crate) fn debug_event(&self, vp: u32, event: DebugEvent) {
        let mut st = self.lock();
        tracing::debug!(vp, ?event, "stopped for the debugger");
        if st.hold.event.is_none() {
            st.hold.event = Some(event);
        }
        st.hold.held = true;
        st.hold.running = 0;
        st.hold.step = None;
        self.changed.notify_all();
        for other in 0..st.vps.len() {
            if other != vp as usize {
                self.kick(other);
            }
        }
    }

    /// Waits at most `timeout` for a VP to stop for the debugger, then
    /// waits until no VP is in `KVM_RUN` and returns why (once).
    pub(crate) fn debug_wait(&self, timeout: Duration) -> Option<DebugEvent> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        while st.hold.event.is_none() && st.ended.is_none() {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        while st.in_run > 0 && st.ended.is_none() {
            st = self.wait(st);
        }
        st.hold.event.take()
    }

    /// Runs `f` while no vCPU is inside `KVM_RUN` (the caller, a vCPU
    /// thread, is outside too). Returns `None` if the VM ended first.
    pub(crate) fn with_all_paused<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let mut st = self.lock();
        while st.paused {
            if st.ended.is_some() {
                return None;
            }
            st = self.wait(st);
        }
        st.paused = true;
        for vp in 0..st.vps.len() {
            self.kick(vp);
        }
        while st.in_run > 0 && st.ended.is_none() {
            st = self.wait(st);
        }
        let result = if st.ended.is_none() {
            drop(st);
            let r = f();
            st = self.lock();
            Some(r)
        } else {
            None
        };
        st.paused = false;
        self.changed.notify_all();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::registers::Group;

    #[test]
    fn end_is_sticky_and_first_wins() {
        let r = Rendezvous::new(2);
        assert_eq!(r.ended(), None);
        r.end(VmExit::Exited(3));
        r.end(VmExit::Watchdog);
        assert_eq!(r.ended(), Some(VmExit::Exited(3)));
        assert!(r.wait_end(Duration::from_millis(1)));
        assert!(r.wait_end(Duration::MAX), "no overflow");
        assert_eq!(r.before_run(0, true, &mut Fake::new(0)), Next::Stop);
    }

    #[test]
    fn a_held_vp_runs_only_to_settle_an_exit_or_its_step() {
        let r = Rendezvous::new(2);
        r.debug_stop();
        // An exit awaiting completion by re-entry: in, complete, out.
        let settle = r.before_run(0, false, &mut Fake::new(0));
        assert_eq!(
            settle,
            Next::Run {
                immediate_exit: true,
                single_step: false
            }
        );
        r.after_run();
        // VP 1 alone steps; VP 0 stays held until the debugger resumes.
        r.debug_resume(Some(0), Some(1));
        let step = r.before_run(1, true, &mut Fake::new(1));
        assert_eq!(
            step,
            Next::Run {
                immediate_exit: false,
                single_step: true
            }
        );
        r.after_run();
        r.debug_event(1, DebugEvent::Stepped(1));
        assert_eq!(
            r.debug_wait(Duration::from_secs(5)),
            Some(DebugEvent::Stepped(1))
        );
        let entered = AtomicU64::new(0);
        std::thread::scope(|s| {
            let (r, entered) = (&r, &entered);
            s.spawn(move || {
                let next = r.before_run(0, true, &mut Fake::new(0));
                entered.store(1, Ordering::SeqCst);
                next
            });
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(entered.load(Ordering::SeqCst), 0, "a held VP ran");
            r.debug_resume(None, None);
        });
        assert_eq!(entered.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn all_halted_ends_the_vm() {
        let r = Rendezvous::new(1);
        r.halt(0, true, &mut Fake::new(0));
        assert_eq!(r.ended(), Some(VmExit::AllHalted));
    }

    /// A snapshot that records the groups it was asked for in RAX.
    fn fake_snapshot(vp: u32, groups: Groups) -> Served {
        let synthetic = crate::hyperv::synthetic::SyntheticState {
            vp_index: vp,
            guest_os_id: 0,
            hypercall: 0,
            time_ref_count: 0,
            vp_assist_page: 0,
            leaves: crate::hyperv::cpuid::HypervLeaves::new(true, true, 2),
        };
        let mut sync = kvm_bindings::kvm_sync_regs::default();
        sync.regs.rax = Group::FETCHED
            .iter()
            .enumerate()
            .map(|(i, &g)| u64::from(groups.contains(g)) << i)
            .sum();
        Ok(Box::new(VpSnapshot::from_sync(sync, synthetic)))
    }

    /// A VP thread that serves fake snapshots (counting them) and writes
    /// that set RAX of the snapshots it serves afterwards.
    struct Fake<'a> {
        vp: u32,
        takes: Option<&'a AtomicU64>,
        rax: Option<u64>,
    }

    impl<'a> Fake<'a> {
        fn new(vp: u32) -> Self {
            Self {
                vp,
                takes: None,
                rax: None,
            }
        }
    }

    impl Server for Fake<'_> {
        fn snapshot(&mut self, groups: Groups) -> Served {
            if let Some(t) = self.takes {
                t.fetch_add(1, Ordering::Relaxed);
            }
            let s = fake_snapshot(self.vp, groups)?;
            Ok(match self.rax {
                Some(rax) => {
                    let mut sync = *s.sync();
                    sync.regs.rax = rax;
                    Box::new(VpSnapshot::from_sync(sync, fake_synthetic(self.vp, 0)))
                }
                None => s,
            })
        }
        fn write(&mut self, elements: &[SetVpRegistersElement]) -> WriteReply {
            for e in elements {
                self.rax = Some(e.value.as_u64());
            }
            Ok(())
        }
    }

    /// The synthetic state a requester reads now, marked by `time`.
    fn fake_synthetic(vp: u32, time: u64) -> crate::hyperv::synthetic::SyntheticState {
        crate::hyperv::synthetic::SyntheticState {
            vp_index: vp,
            guest_os_id: 0,
            hypercall: 0,
            time_ref_count: time,
            vp_assist_page: 0,
            leaves: crate::hyperv::cpuid::HypervLeaves::new(true, true, 2),
        }
    }

    #[test]
    fn a_halted_vp_is_read_from_its_parked_snapshot_and_requests_are_woken_by_the_end() {
        kick::install_handler().unwrap();
        let r = Rendezvous::new(2);
        let takes = AtomicU64::new(0);
        std::thread::scope(|s| {
            let (r, takes) = (&r, &takes);
            // VP 1 halts (IF = 1, so the VM does not end).
            s.spawn(move || {
                r.register(1);
                let mut fake = Fake::new(1);
                fake.takes = Some(takes);
                r.halt(1, false, &mut fake);
                r.unregister(1);
            });
            let debug = Groups::NONE.with(Group::Debug);
            for time in 0..50 {
                let snap = r
                    .request_host_snapshot(1, debug, || fake_synthetic(1, time))
                    .unwrap();
                assert_eq!(snap.vp_index(), 1);
                let rax = snap.value(hvcall_abi::HvRegisterName(0x0002_0000)).unwrap();
                // Served either by the halting thread (the groups asked)
                // or, once parked, from the copy of every group.
                assert!(matches!(rax.as_u128(), 0b0100 | 0b11111), "{rax:?}");
                if rax.as_u128() == 0b11111 {
                    let t = snap.value(hvcall_abi::HvRegisterName(0x0009_0004)).unwrap();
                    assert_eq!(t.as_u64(), time, "the synthetic state is read now");
                }
            }
            // The parked copy answered nearly all of them: the halted
            // thread took one snapshot to park and at most served a few
            // requests that came before.
            assert!(
                takes.load(Ordering::Relaxed) < 50,
                "the halted thread served every read"
            );
            // VP 0 never runs: a request to it waits until the end.
            let waiting =
                s.spawn(move || r.request_host_snapshot(0, Groups::NONE, || fake_synthetic(0, 0)));
            r.end(VmExit::Watchdog);
            assert_eq!(waiting.join().unwrap().unwrap_err(), SnapshotError::Ended);
        });
        assert_eq!(
            r.request_host_snapshot(1, Groups::NONE, || fake_synthetic(1, 0))
                .unwrap_err(),
            SnapshotError::Ended,
            "after the end"
        );
        assert_eq!(
            Rendezvous::new(1)
                .request_host_snapshot(5, Groups::NONE, || fake_synthetic(5, 0))
                .unwrap_err(),
            SnapshotError::Ended,
            "no such VP: nothing will ever answer"
        );
    }

    #[test]
    fn mutual_requests_between_threads_finish() {
        // Two "VPs" that only ever wait in request_snapshot or halt: each
        // must serve the other while it waits.
        kick::install_handler().unwrap();
        let r = Rendezvous::new(2);
        std::thread::scope(|s| {
            for vp in 0..2u32 {
                let r = &r;
                s.spawn(move || {
                    r.register(vp);
                    let mut take = Fake::new(vp);
                    // VP 0 asks for the debug group, VP 1 for none.
                    let groups = [Groups::NONE.with(Group::Debug), Groups::NONE][vp as usize];
                    for _ in 0..200 {
                        let other = || fake_synthetic(1 - vp, 0);
                        let snap = r
                            .request_snapshot(vp, 1 - vp, groups, &mut take, other)
                            .unwrap();
                        let idx = snap.value(hvcall_abi::HvRegisterName(0x0009_0003)).unwrap();
                        assert_eq!(idx.as_u32(), 1 - vp);
                        let rax = snap.value(hvcall_abi::HvRegisterName(0x0002_0000)).unwrap();
                        // The groups asked, or every group once the other
                        // VP halted and parked its state.
                        let asked = [0b0100, 0][vp as usize];
                        assert!(rax.as_u128() == asked || rax.as_u128() == 0b11111);
                    }
                    r.halt(vp, true, &mut take);
                    r.unregister(vp);
                });
            }
        });
        assert_eq!(r.ended(), Some(VmExit::AllHalted));
    }
}
