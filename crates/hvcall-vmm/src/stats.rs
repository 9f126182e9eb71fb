//! Counters of what a VM did: exits, hypercalls, continuations,
//! cross-VP snapshots, vCPU state ioctls and the VMM's time per hypercall.
//! Cheap (relaxed atomics, one clock read per hypercall exit), always on;
//! tests and `hvcall bench` read them.
//!
//! State ioctls are counted where they are issued, in a per-thread count
//! ([`count_ioctl`](crate::state::count_ioctl)) that the vCPU thread adds to its VM's counters
//! ([`Counters::flush_ioctls`]) after serving a snapshot and before each
//! `KVM_RUN`: the code that issues them (a snapshot's `fill`, the caller's
//! FPU) need not know the VM.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::state::registers::Group;
use crate::state::snapshot::VpSnapshot;
use crate::state::take_ioctls;

/// Per fetch group (one ioctl each): how many snapshots served to another
/// VP held it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupFetches {
    /// [`Group::Msrs`] (`KVM_GET_MSRS`).
    pub msrs: u64,
    /// [`Group::Fpu`] (`KVM_GET_XSAVE` or `KVM_GET_FPU`).
    pub fpu: u64,
    /// [`Group::Debug`] (`KVM_GET_DEBUGREGS`).
    pub debug: u64,
    /// [`Group::Xcrs`] (`KVM_GET_XCRS`).
    pub xcrs: u64,
    /// [`Group::Activity`] (`KVM_GET_MP_STATE`).
    pub activity: u64,
}

/// Totals over every run of a [`crate::Vm`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// `KVM_RUN` returns (all exits, including kicks).
    pub exits: u64,
    /// Hypercall exits (writes to the hypercall port).
    pub hypercalls: u64,
    /// Hypercall entries that ended in a continuation (docs/contract.md §2).
    pub continuations: u64,
    /// Snapshots a VP took of itself for another VP.
    pub snapshots_served: u64,
    /// The groups those snapshots fetched (beyond the free sync regs).
    pub served_fetches: GroupFetches,
    /// vCPU ioctls other than `KVM_RUN` issued on the vCPU threads: the
    /// state reads and writes of hypercalls and served snapshots (`KVM_GET_MSRS`,
    /// `KVM_GET_XSAVE`, `KVM_GET_FPU`, `KVM_SET_FPU`, ...). Reads the root
    /// partition makes of a stopped VM (on the host's thread) are not counted.
    pub state_ioctls: u64,
    /// Nanoseconds (host clock) the VMM spent from a hypercall's exit to
    /// the calling VP's next `KVM_RUN`, summed over every hypercall entry:
    /// decoding, dispatching, any wait for another VP's snapshot, and
    /// writing the result.
    pub hypercall_vmm_ns: u64,
    /// When a vCPU first entered `KVM_RUN` (the guest's first
    /// instruction), if one did.
    pub first_entry: Option<std::time::Instant>,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    exits: AtomicU64,
    hypercalls: AtomicU64,
    continuations: AtomicU64,
    snapshots_served: AtomicU64,
    /// Per group of [`Group::FETCHED`], in that order.
    served_fetches: [AtomicU64; 5],
    state_ioctls: AtomicU64,
    hypercall_vmm_ns: AtomicU64,
    first_entry: std::sync::OnceLock<std::time::Instant>,
}

impl Counters {
    /// Counts one `KVM_RUN` return.
    pub(crate) fn exit(&self) {
        self.exits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one hypercall entry, and a continuation if `continued`.
    pub(crate) fn hypercall(&self, continued: bool) {
        self.hypercalls.fetch_add(1, Ordering::Relaxed);
        if continued {
            self.continuations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one snapshot taken for another VP and the groups it holds.
    pub(crate) fn snapshot_served(&self, snapshot: &VpSnapshot) {
        self.snapshots_served.fetch_add(1, Ordering::Relaxed);
        for (count, group) in self.served_fetches.iter().zip(Group::FETCHED) {
            if snapshot.has(group) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Adds this thread's uncounted state ioctls (see [`count_ioctl`](crate::state::count_ioctl)).
    pub(crate) fn flush_ioctls(&self) {
        let n = take_ioctls();
        if n != 0 {
            self.state_ioctls.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Adds the VMM's time for one hypercall entry (exit to next `KVM_RUN`).
    pub(crate) fn hypercall_time(&self, spent: Duration) {
        let ns = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.hypercall_vmm_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The totals so far.
    pub(crate) fn get(&self) -> RunStats {
        RunStats {
            exits: self.exits.load(Ordering::Relaxed),
            hypercalls: self.hypercalls.load(Ordering::Relaxed),
            continuations: self.continuations.load(Ordering::Relaxed),
            snapshots_served: self.snapshots_served.load(Ordering::Relaxed),
            served_fetches: GroupFetches {
                msrs: self.served_fetches[0].load(Ordering::Relaxed),
                fpu: self.served_fetches[1].load(Ordering::Relaxed),
                debug: self.served_fetches[2].load(Ordering::Relaxed),
                xcrs: self.served_fetches[3].load(Ordering::Relaxed),
                activity: self.served_fetches[4].load(Ordering::Relaxed),
            },
            state_ioctls: self.state_ioctls.load(Ordering::Relaxed),
            hypercall_vmm_ns: self.hypercall_vmm_ns.load(Ordering::Relaxed),
            first_entry: self.first_entry.get().copied(),
        }
    }

    /// Records that a vCPU is about to enter `KVM_RUN` for the first time
    /// (only the first call of the VM's life counts).
    pub(crate) fn entering(&self) {
        self.first_entry.get_or_init(std::time::Instant::now);
    }
}
