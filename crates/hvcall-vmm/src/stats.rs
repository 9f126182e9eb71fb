//! Counters of what a VM did: exits, hypercalls, continuations and
//! cross-VP snapshots. Cheap (relaxed atomics), always on; tests and the
//! benchmark read them.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::registers::Group;
use crate::snapshot::VpSnapshot;

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
        }
    }
}
