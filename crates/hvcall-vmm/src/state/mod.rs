//! Register state: what a VP's HV register names are in KVM's terms
//! ([`registers`]: names, groups, GPR slots), one VP's state as fetched
//! from KVM and as written back (`snapshot`), the batch of writes a call
//! or the host applies (`write`), and what values each writable register
//! accepts ([`validate`]), the error of every read and write of it
//! ([`SnapshotError`]) and the count of the ioctls that move it.

mod error;
pub mod registers;
pub(crate) mod snapshot;
pub mod validate;
pub(crate) mod write;

use std::cell::Cell;

pub use error::SnapshotError;

thread_local! {
    /// State ioctls issued on this thread and not yet taken.
    static THREAD_IOCTLS: Cell<u64> = const { Cell::new(0) };
}

/// Counts one vCPU ioctl other than `KVM_RUN`, issued on this thread (the
/// code that issues it need not know the VM: the vCPU thread adds the
/// count to its VM's counters, [`crate::stats`]).
pub(crate) fn count_ioctl() {
    THREAD_IOCTLS.with(|c| c.set(c.get() + 1));
}

/// The state ioctls counted on this thread since the last call.
pub(crate) fn take_ioctls() -> u64 {
    THREAD_IOCTLS.with(|c| c.replace(0))
}
