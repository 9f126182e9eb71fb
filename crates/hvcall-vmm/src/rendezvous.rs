//! Cross-thread coordination of the vCPU threads: VM end, snapshots of a
//! running VP, pausing every vCPU, and the all-halted rule.
//!
//! All coordination state sits behind one mutex with one condition
//! variable (plus the additions for speed described below). vCPU ioctls
//! are only ever made by the vCPU's own thread: to read VP `t` another
//! thread posts a request naming the register [`Groups`] it needs, kicks
//! `t` (a signal, see the `kick` module) and waits; `t` takes the snapshot
//! on its thread at the next point where its state is consistent (just
//! after `KVM_RUN` returned `EINTR`, or while it waits in a hypercall,
//! while halted, or paused) and posts the reply. Requests that wait
//! together are answered with one snapshot holding the union of their
//! groups.
//!
//! A thread that waits for anything keeps serving requests addressed to
//! it, so two VPs reading each other at the same moment both finish. The
//! VM ending wakes every waiter.
//!
//! The host (see [`crate::inspect`]) may request snapshots too: it is not a
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

use crate::kick::Kicker;
use crate::registers::Groups;
use crate::snapshot::{SyntheticState, VpSnapshot};
use crate::VmExit;

/// Why a snapshot could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The VM ended before the target answered.
    #[error("the VM ended")]
    Ended,
    /// The target VP could not read its own state.
    #[error("the target VP could not read its state: {0}")]
    Fetch(String),
}

/// What the thread that serves a request hands back.
pub type Served = Result<Box<VpSnapshot>, SnapshotError>;

/// How a VP's thread takes a snapshot of itself holding the given groups.
pub type Take<'a> = dyn FnMut(Groups) -> Served + 'a;

/// Who waits for a snapshot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Requester {
    /// A VP, stopped at its hypercall.
    Vp(u32),
    /// The host (the root partition's inspector).
    Host,
}

/// One VP or the host waiting for a VP's snapshot.
#[derive(Copy, Clone, Debug)]
struct Request {
    /// Who waits.
    requester: Requester,
    /// The groups its call reads.
    groups: Groups,
}

#[derive(Debug, Default)]
struct VpSlot {
    /// Requests waiting for this VP's snapshot.
    requests: Vec<Request>,
    /// The reply to this VP's own request.
    reply: Option<Served>,
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
    reply: Option<Served>,
}

#[derive(Debug, Default)]
struct State {
    ended: Option<VmExit>,
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
pub enum Next {
    /// Enter `KVM_RUN`; with `immediate_exit` set if a request waits for a
    /// state that only re-entry can make consistent.
    Run {
        /// Set `kvm_run.immediate_exit` before entering.
        immediate_exit: bool,
    },
    /// The VM ended: leave the run loop.
    Stop,
}

/// The coordination point of one VM run.
#[derive(Debug)]
pub struct Rendezvous {
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
    fn deliver(&mut self, requester: Requester, reply: Served) {
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
    pub fn new(cpus: u32) -> Self {
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
            k.kick();
        }
    }

    /// Called by VP `vp`'s thread when it starts.
    pub fn register(&self, vp: u32) {
        if let Some(mut k) = self.kicker(vp as usize) {
            *k = Some(Kicker::current());
        }
    }

    /// Called by VP `vp`'s thread just before it returns: no kick reaches
    /// it afterwards, and requests it can no longer answer fail.
    pub fn unregister(&self, vp: u32) {
        if let Some(mut k) = self.kicker(vp as usize) {
            *k = None;
        }
        let mut st = self.lock();
        let requests = match st.vps.get_mut(vp as usize) {
            Some(slot) => std::mem::take(&mut slot.requests),
            None => Vec::new(),
        };
        for r in requests {
            st.deliver(r.requester, Err(SnapshotError::Ended));
        }
        self.changed.notify_all();
    }

    /// Ends the VM with `exit` unless it already ended; kicks every vCPU.
    pub fn end(&self, exit: VmExit) {
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
    pub fn ended(&self) -> Option<VmExit> {
        self.lock().ended.clone()
    }

    /// Waits until the VM ends or `timeout` passes; true if it ended. A
    /// timeout too long to represent waits for the end.
    pub fn wait_end(&self, timeout: Duration) -> bool {
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

    /// Answers the requests addressed to `vp` (called with the lock held
    /// and the VP's state consistent) with one snapshot holding every
    /// group they asked for. Drops and retakes the lock.
    fn serve<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        vp: u32,
        take: &mut Take<'_>,
    ) -> MutexGuard<'a, State> {
        let requests = match st.vps.get_mut(vp as usize) {
            Some(slot) if !slot.requests.is_empty() => std::mem::take(&mut slot.requests),
            _ => return st,
        };
        drop(st);
        let groups = requests
            .iter()
            .fold(Groups::NONE, |all, r| all.union(r.groups));
        let snapshot = take(groups);
        tracing::trace!(vp, ?requests, ok = snapshot.is_ok(), "served snapshot");
        let mut st = self.lock();
        for r in requests {
            st.deliver(r.requester, snapshot.clone());
        }
        self.changed.notify_all();
        self.replies.fetch_add(1, Ordering::Relaxed);
        st
    }

    /// A copy of VP `vp`'s parked snapshot, if it halted for good.
    fn parked(st: &State, vp: u32) -> Option<Box<VpSnapshot>> {
        st.vps.get(vp as usize)?.parked.clone()
    }

    fn has_requests(st: &State, vp: u32) -> bool {
        st.vps
            .get(vp as usize)
            .is_some_and(|s| !s.requests.is_empty())
    }

    /// Called by VP `vp`'s thread before `KVM_RUN`. `consistent` says
    /// whether its state is between two instructions now (no exit awaits
    /// completion by re-entry); `take` snapshots it.
    pub fn before_run(&self, vp: u32, consistent: bool, take: &mut Take<'_>) -> Next {
        let mut st = self.lock();
        loop {
            if st.ended.is_some() {
                return Next::Stop;
            }
            if Self::has_requests(&st, vp) && consistent {
                st = self.serve(st, vp, take);
                continue;
            }
            if st.paused {
                st = self.wait(st);
                continue;
            }
            let immediate_exit = Self::has_requests(&st, vp);
            st.in_run += 1;
            return Next::Run { immediate_exit };
        }
    }

    /// Called by a vCPU thread when `KVM_RUN` returned.
    pub fn after_run(&self) {
        let mut st = self.lock();
        st.in_run = st.in_run.saturating_sub(1);
        if st.paused {
            self.changed.notify_all();
        }
    }

    /// Called by VP `requester`'s thread (stopped at its hypercall) to get
    /// a consistent snapshot of VP `target` (another VP) holding at least
    /// `groups`. `take` serves requests addressed to `requester` meanwhile.
    pub fn request_snapshot(
        &self,
        requester: u32,
        target: u32,
        groups: Groups,
        take: &mut Take<'_>,
        synthetic: impl FnOnce() -> SyntheticState,
    ) -> Served {
        let mut st = self.lock();
        if st.ended.is_some() {
            return Err(SnapshotError::Ended);
        }
        if let Some(parked) = Self::parked(&st, target) {
            drop(st);
            return Ok(parked.with_synthetic(synthetic()));
        }
        let Some(slot) = st.vps.get_mut(target as usize) else {
            return Err(SnapshotError::Ended);
        };
        slot.requests.push(Request {
            requester: Requester::Vp(requester),
            groups,
        });
        self.changed.notify_all();
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
                return Err(SnapshotError::Ended);
            }
            if Self::has_requests(&st, requester) {
                st = self.serve(st, requester, take);
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
    pub fn request_host_snapshot(
        &self,
        target: u32,
        groups: Groups,
        synthetic: impl FnOnce() -> SyntheticState,
    ) -> Served {
        let mut st = self.lock();
        while st.host.busy && st.ended.is_none() {
            st = self.wait(st);
        }
        if st.ended.is_some() {
            return Err(SnapshotError::Ended);
        }
        if let Some(parked) = Self::parked(&st, target) {
            drop(st);
            return Ok(parked.with_synthetic(synthetic()));
        }
        let Some(slot) = st.vps.get_mut(target as usize) else {
            return Err(SnapshotError::Ended);
        };
        slot.requests.push(Request {
            requester: Requester::Host,
            groups,
        });
        st.host = HostSlot {
            busy: true,
            reply: None,
        };
        self.changed.notify_all();
        drop(st);
        self.kick(target as usize);
        let mut st = self.lock();
        let reply = loop {
            if let Some(reply) = st.host.reply.take() {
                break reply;
            }
            if st.ended.is_some() {
                break Err(SnapshotError::Ended);
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
    pub fn halt(&self, vp: u32, interrupts_disabled: bool, take: &mut Take<'_>) {
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
            let parked = take(Groups::ALL).ok();
            st = self.lock();
            if let Some(slot) = st.vps.get_mut(vp as usize) {
                slot.parked = parked;
            }
        }
        while st.ended.is_none() {
            if Self::has_requests(&st, vp) {
                st = self.serve(st, vp, take);
                continue;
            }
            st = self.wait(st);
        }
    }

    /// Runs `f` while no vCPU is inside `KVM_RUN` (the caller, a vCPU
    /// thread, is outside too). Returns `None` if the VM ended first.
    pub fn with_all_paused<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
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
    use crate::registers::Group;

    #[test]
    fn end_is_sticky_and_first_wins() {
        let r = Rendezvous::new(2);
        assert_eq!(r.ended(), None);
        r.end(VmExit::Exited(3));
        r.end(VmExit::Watchdog);
        assert_eq!(r.ended(), Some(VmExit::Exited(3)));
        assert!(r.wait_end(Duration::from_millis(1)));
        assert!(r.wait_end(Duration::MAX), "no overflow");
        let mut never = |_: Groups| -> Served { unreachable!() };
        assert_eq!(r.before_run(0, true, &mut never), Next::Stop);
    }

    #[test]
    fn all_halted_ends_the_vm() {
        let r = Rendezvous::new(1);
        let mut never = |_: Groups| -> Served { unreachable!() };
        r.halt(0, true, &mut never);
        assert_eq!(r.ended(), Some(VmExit::AllHalted));
    }

    /// A snapshot that records the groups it was asked for in RAX.
    fn fake_snapshot(vp: u32, groups: Groups) -> Served {
        let synthetic = crate::snapshot::SyntheticState {
            vp_index: vp,
            guest_os_id: 0,
            hypercall: 0,
            time_ref_count: 0,
            vp_assist_page: 0,
            leaves: crate::cpuid::HypervLeaves::new(true, true, 2),
        };
        let mut sync = kvm_bindings::kvm_sync_regs::default();
        sync.regs.rax = Group::FETCHED
            .iter()
            .enumerate()
            .map(|(i, &g)| u64::from(groups.contains(g)) << i)
            .sum();
        Ok(Box::new(VpSnapshot::from_sync(sync, synthetic)))
    }

    /// The synthetic state a requester reads now, marked by `time`.
    fn fake_synthetic(vp: u32, time: u64) -> crate::snapshot::SyntheticState {
        crate::snapshot::SyntheticState {
            vp_index: vp,
            guest_os_id: 0,
            hypercall: 0,
            time_ref_count: time,
            vp_assist_page: 0,
            leaves: crate::cpuid::HypervLeaves::new(true, true, 2),
        }
    }

    #[test]
    fn a_halted_vp_is_read_from_its_parked_snapshot_and_requests_are_woken_by_the_end() {
        crate::kick::install_handler().unwrap();
        let r = Rendezvous::new(2);
        let takes = AtomicU64::new(0);
        std::thread::scope(|s| {
            let (r, takes) = (&r, &takes);
            // VP 1 halts (IF = 1, so the VM does not end).
            s.spawn(move || {
                r.register(1);
                r.halt(1, false, &mut |groups| {
                    takes.fetch_add(1, Ordering::Relaxed);
                    fake_snapshot(1, groups)
                });
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
        crate::kick::install_handler().unwrap();
        let r = Rendezvous::new(2);
        std::thread::scope(|s| {
            for vp in 0..2u32 {
                let r = &r;
                s.spawn(move || {
                    r.register(vp);
                    let mut take = |groups| fake_snapshot(vp, groups);
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
