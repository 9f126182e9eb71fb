//! A VP's thread serving the requests addressed to its VP outside a
//! hypercall ([`Between`]: just before `KVM_RUN`, after a kick, while
//! halted or held), from and through the `kvm_run` sync registers. Its
//! other server, inside its own hypercall, is
//! `crate::vcpu::hypercall::InCall`.

use hvcall_abi::SetVpRegistersElement;
use kvm_ioctls::VcpuFd;

use crate::hyperv::synthetic::Synthetic;
use crate::rendezvous::{Served, Server, WriteReply};
use crate::shared::Shared;
use crate::state::registers::Groups;
use crate::state::snapshot::VpSnapshot;
use crate::state::write;
use crate::state::SnapshotError;
use crate::stats::Counters;

/// VP `vp` between two instructions and outside a hypercall, serving
/// other VPs: reads from its sync registers, writes through them
/// ([`crate::state::write`]).
pub(crate) struct Between<'a, 'b> {
    shared: &'a Shared<'b>,
    vp: u32,
    vcpu: &'a mut VcpuFd,
}

impl Server for Between<'_, '_> {
    fn snapshot(&mut self, groups: Groups) -> Served {
        let shared = self.shared;
        snapshot(
            &shared.synthetic,
            shared.counters,
            self.vp,
            self.vcpu,
            groups,
        )
    }

    fn write(&mut self, elements: &[SetVpRegistersElement]) -> WriteReply {
        let (shared, vp) = (self.shared, self.vp);
        let mut state = VpSnapshot::from_sync(self.vcpu.sync_regs(), shared.synthetic.state(vp));
        let batch = write::apply(&mut state, self.vcpu, elements, &mut |index, value| {
            shared.write_synthetic(index, vp, value)
        });
        batch.pending.commit_to_sync(self.vcpu, &state);
        batch.result
    }
}

impl<'a, 'b> Between<'a, 'b> {
    /// VP `vp` of `shared`, whose vCPU is `vcpu`.
    pub(crate) fn new(shared: &'a Shared<'b>, vp: u32, vcpu: &'a mut VcpuFd) -> Self {
        Self { shared, vp, vcpu }
    }
}

/// A snapshot of `groups` of VP `vp`, taken on its own thread for another
/// VP or the host, from its sync registers.
fn snapshot(
    synthetic: &Synthetic<'_>,
    counters: &Counters,
    vp: u32,
    vcpu: &VcpuFd,
    groups: Groups,
) -> Served {
    let snapshot =
        VpSnapshot::capture(vcpu, synthetic.state(vp), groups).map_err(SnapshotError::Fetch)?;
    counters.snapshot_served(&snapshot);
    counters.flush_ioctls();
    Ok(Box::new(snapshot))
}
