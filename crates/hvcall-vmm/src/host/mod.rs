//! The host's side of a VM: the root partition's view of it for reads
//! and writes (`root`), and the [`inspect::Inspector`] that reads,
//! writes and controls a running VM from a host thread.

pub mod inspect;
pub(crate) mod root;
