//! How a VP's thread answers the requests addressed to its VP
//! ([`Server`]): reads (a snapshot holding the groups asked) and writes (a
//! batch applied through [`crate::state::write`]), served on the thread
//! that owns the vCPU, at a point where the VP is between two
//! instructions. There are two such points, and one server for each, both
//! in `crate::vcpu`: `Between` (outside a hypercall, through the `kvm_run`
//! sync registers) and `InCall` (inside its own hypercall, while it waits
//! for another VP, from its state at the call with the writes that
//! reached it since).

use hvcall_abi::SetVpRegistersElement;

use super::{Served, WriteReply};
use crate::state::registers::Groups;

/// A VP's thread, serving the requests addressed to its VP on that thread
/// (where its vCPU's ioctls may be made), at a point where the VP is
/// between two instructions.
pub(crate) trait Server {
    /// A snapshot of the VP holding at least `groups`.
    fn snapshot(&mut self, groups: Groups) -> Served;
    /// Applies `elements` to the VP in order, as one batch (contract §8).
    fn write(&mut self, elements: &[SetVpRegistersElement]) -> WriteReply;
}
