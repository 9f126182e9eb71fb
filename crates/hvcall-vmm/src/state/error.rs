//! Why a VP's state could not be had or changed for a requester: one
//! error for the reads and writes of every path (a guest's call, the
//! rendezvous, the host), keeping the KVM error that caused it.

use std::sync::Arc;

use crate::hyperv::hypercall_page::SlotError;
use crate::state::snapshot::{FetchError, FlushError};

/// Why a VP's state could not be read or written for a requester (a
/// guest's call or the host).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The VM ended before the target answered.
    #[error("the VM ended")]
    Ended,
    /// The VM has no vCPU with this index.
    #[error("no vCPU {0}")]
    NoVcpu(u32),
    /// The target VP could not read its own state.
    #[error("the target VP could not read its state")]
    Fetch(#[source] FetchError),
    /// The target VP could not write its own state.
    #[error("the target VP could not write its state")]
    Write(#[source] FlushError),
    /// A write moved the hypercall page and the memory slots could not
    /// follow.
    #[error("the hypercall page could not be moved")]
    Slots(#[source] Arc<SlotError>),
    /// A request got a reply of the other kind, or reached a view that
    /// does not serve it (a bug in the VMM, reported rather than a panic).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl PartialEq for SnapshotError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Ended, Self::Ended) => true,
            (Self::NoVcpu(a), Self::NoVcpu(b)) => a == b,
            (Self::Fetch(a), Self::Fetch(b)) => a == b,
            (Self::Write(a), Self::Write(b)) => a == b,
            (Self::Slots(a), Self::Slots(b)) => Arc::ptr_eq(a, b),
            (Self::Internal(a), Self::Internal(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for SnapshotError {}
