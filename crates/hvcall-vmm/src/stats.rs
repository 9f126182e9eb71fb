//! Counters of what a VM did: exits, hypercalls, continuations and
//! cross-VP snapshots. Cheap (relaxed atomics), always on; tests and the
//! benchmark read them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Totals over every run of a [`crate::Vm`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// `KVM_RUN` returns (all exits, including kicks).
    pub exits: u64,
    /// Hypercall exits (writes to the hypercall port).
    pub hypercalls: u64,
    /// Hypercall entries that ended in a continuation (behaviour.md §2).
    pub continuations: u64,
    /// Snapshots a VP took of itself for another VP.
    pub snapshots_served: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    exits: AtomicU64,
    hypercalls: AtomicU64,
    continuations: AtomicU64,
    snapshots_served: AtomicU64,
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

    /// Counts one snapshot taken for another VP.
    pub(crate) fn snapshot_served(&self) {
        self.snapshots_served.fetch_add(1, Ordering::Relaxed);
    }

    /// The totals so far.
    pub(crate) fn get(&self) -> RunStats {
        RunStats {
            exits: self.exits.load(Ordering::Relaxed),
            hypercalls: self.hypercalls.load(Ordering::Relaxed),
            continuations: self.continuations.load(Ordering::Relaxed),
            snapshots_served: self.snapshots_served.load(Ordering::Relaxed),
        }
    }
}
