//! How a call ends and what a rep call keeps between its entries: the
//! values the engine, the shared checks and the continuation state pass
//! to each other.

use hvcall_abi::vtl::Vtl;
use hvcall_abi::{HvError, HypercallResult};

use crate::backend::{SourceError, Target};

/// How a call ended, before it is written into the registers.
pub enum CallEnd<E> {
    /// Write this result value.
    Result(HypercallResult),
    /// Restore the control word's rep start of the first entry of a
    /// continued call, then write this result value.
    ResultAfterContinuation {
        /// The result.
        result: HypercallResult,
        /// The rep start the call was first made with.
        first_start: u16,
    },
    /// Write this index into rep start and re-execute the call.
    Continue(u16),
    /// Write this result value, then switch the caller to this VTL.
    SwitchVtl(HypercallResult, Vtl),
    /// Inject #UD.
    Undefined,
    /// The backend failed on the host side.
    HostFailed(E),
}

impl<E> CallEnd<E> {
    /// A call that failed with `error` after `reps_completed` elements.
    pub(crate) fn failed(error: HvError, reps_completed: u16) -> Self {
        Self::Result(HypercallResult::of(error.status(), reps_completed))
    }

    /// A backend failure at element `index`: the guest's status, or the
    /// end of the call for a host failure.
    pub(crate) fn source_failed(error: SourceError<E>, index: u16) -> Self {
        match error {
            SourceError::Hv(e) => Self::failed(e, index),
            SourceError::Host(e) => Self::HostFailed(e),
        }
    }
}

/// How far one entry of a rep call got through its elements.
pub(crate) enum Progress<E> {
    /// The call ended with this result.
    Done(HypercallResult),
    /// The budget ran out; the next element to process.
    Stopped(u16),
    /// The backend failed on the host side.
    HostFailed(E),
}

/// What a rep call keeps from its first entry to its last: the checked
/// target and, for a call that reads, the target's snapshot.
pub struct Kept<S> {
    /// The target, SELF resolved, every check passed.
    pub target: Target,
    /// The snapshot every element reads from, if the call reads.
    pub snapshot: Option<S>,
}
