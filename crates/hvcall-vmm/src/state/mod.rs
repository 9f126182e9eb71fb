//! Register state: what a VP's HV register names are in KVM's terms
//! ([`registers`]: names, groups, GPR slots), one VP's state as fetched
//! from KVM and as written back (`snapshot`), the batch of writes a call
//! or the host applies (`write`), and what values each writable register
//! accepts ([`validate`]).

pub mod registers;
pub(crate) mod snapshot;
pub mod validate;
pub(crate) mod write;
