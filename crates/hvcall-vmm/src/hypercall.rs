//! One hypercall exit: the caller's registers ([`CallerRegs`]), the
//! partition and VP view ([`VpHypervisor`]), the call to
//! [`hvcall_dispatch::dispatch()`] and applying its [`Outcome`].
//!
//! The calling VP's general registers come from the `kvm_run` sync regs
//! (no ioctl); XMM0–5 are fetched with one `KVM_GET_FPU` only if the
//! dispatcher asks (fast forms) and written back with one `KVM_SET_FPU`
//! only if changed. The caller is partition 2, child of the root
//! partition 1; only VTL 0 exists.

use hvcall_abi::HypercallResult;
use hvcall_abi::{HvError, HvRegisterName, HvRegisterValue, HvStatus, HypercallControl};
use hvcall_dispatch::{
    dispatch, CallContext, Caller, CallerRegisters, Convention, Outcome, PartitionInfo, Partitions,
    RegisterSource, SnapshotRequest, SourceError, VpState,
};
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sync_regs};
use kvm_ioctls::{SyncReg, VcpuFd};

use crate::hypercall_page::HYPERCALL_INSTRUCTION_LEN;
use crate::memory::CallerMemory;
use crate::registers::{gpr, gpr_mut, group_of, Group, Groups};
use crate::rendezvous::SnapshotError;
use crate::snapshot::VpSnapshot;
use crate::stats::count_ioctl;
use crate::trace::TracedCall;
use crate::vm::Shared;

/// The VM's partition id.
pub const VM_PARTITION_ID: u64 = 2;
/// The root partition's id (the host side of hvcall).
pub const ROOT_PARTITION_ID: u64 = 1;
const UD_VECTOR: u8 = 6;
const EFER_LMA: u64 = 1 << 10;
const CR0_PE: u64 = 1;

/// The two partitions hvcall knows, as every caller sees them: the VM
/// (`vm_vp_count` VPs), child of the root partition (which has no VPs the
/// dispatcher can address).
pub(crate) fn partition_info(partition_id: u64, vm_vp_count: u32) -> Option<PartitionInfo> {
    match partition_id {
        VM_PARTITION_ID => Some(PartitionInfo::new(Some(ROOT_PARTITION_ID), vm_vp_count)),
        ROOT_PARTITION_ID => Some(PartitionInfo::new(None, 0)),
        _ => None,
    }
}

/// The calling VP's registers as the dispatcher sees them. XMM0–5 are
/// fetched before the call only for a fast call: the dispatcher reads
/// vector registers for the fast forms alone (`CallerRegisters`), so a
/// failed fetch ends the VM before dispatching instead of waiting aside.
pub struct CallerRegs {
    regs: kvm_regs,
    fpu: Option<kvm_fpu>,
    fpu_dirty: bool,
}

impl CallerRegs {
    /// The general registers `regs`, no vector registers.
    fn new(regs: kvm_regs) -> Self {
        Self {
            regs,
            fpu: None,
            fpu_dirty: false,
        }
    }

    /// Fetches XMM0–5 of `vcpu` (for a fast call).
    fn load_fpu(&mut self, vcpu: &VcpuFd) -> Result<(), kvm_ioctls::Error> {
        count_ioctl();
        self.fpu = Some(vcpu.get_fpu()?);
        Ok(())
    }
}

impl CallerRegisters for CallerRegs {
    fn gpr(&self, index: usize) -> u64 {
        gpr(&self.regs, index).unwrap_or(0)
    }

    fn set_gpr(&mut self, index: usize, value: u64) {
        if let Some(r) = gpr_mut(&mut self.regs, index) {
            *r = value;
        }
    }

    fn vector(&mut self, index: usize) -> u128 {
        match (&self.fpu, index < 6) {
            (Some(f), true) => u128::from_le_bytes(f.xmm[index]),
            _ => 0,
        }
    }

    fn set_vector(&mut self, index: usize, value: u128) {
        if let (Some(f), true) = (&mut self.fpu, index < 6) {
            f.xmm[index] = value.to_le_bytes();
            self.fpu_dirty = true;
        }
    }
}

/// The partition/VP view of one call, made on the calling VP's thread.
pub struct VpHypervisor<'a> {
    shared: &'a Shared<'a>,
    vp: u32,
    vcpu: &'a VcpuFd,
    /// The caller's state at the call, RIP on the hypercall instruction.
    at_call: kvm_sync_regs,
}

impl Partitions for VpHypervisor<'_> {
    fn caller(&self) -> Caller {
        let leaves = &self.shared.leaves;
        Caller::new(VM_PARTITION_ID, self.vp)
            .with_privileges(leaves.privileges)
            .with_xmm_fast(leaves.xmm_fast, leaves.xmm_fast)
    }

    fn partition(&self, partition_id: u64) -> Option<PartitionInfo> {
        partition_info(partition_id, self.shared.leaves.cpus)
    }

    fn enabled_vtls(&self, _partition_id: u64, _vp_index: u32) -> u16 {
        1
    }
}

impl RegisterSource for VpHypervisor<'_> {
    type Snapshot = VpSnapshot;
    /// The VM ended, or KVM could not read a VP's state: the call ends and
    /// so does the VM.
    type Error = SnapshotError;

    fn snapshot(
        &mut self,
        request: &SnapshotRequest<'_>,
    ) -> Result<VpSnapshot, SourceError<SnapshotError>> {
        let target = request.target;
        if target.partition_id != VM_PARTITION_ID || target.vp_index >= self.shared.leaves.cpus {
            return Err(SourceError::Hv(HvError::INVALID_PARAMETER));
        }
        let groups = Groups::of(request.names);
        if target.vp_index == self.vp {
            let mut own = VpSnapshot::from_sync(self.at_call, self.shared.synthetic(self.vp));
            // The call's own output reaches this VP's XMM registers before
            // later elements are read: take that group now, at the call
            // (docs/contract.md §5 and §2: a later element must not see this
            // call's own output).
            if request.output_precedes_reads && groups.contains(Group::Fpu) {
                own.fill(Group::Fpu, self.vcpu)
                    .map_err(|e| SourceError::Host(SnapshotError::Fetch(e.to_string())))?;
            }
            return Ok(own);
        }
        let (shared, vp, vcpu, at_call) = (self.shared, self.vp, self.vcpu, self.at_call);
        let mut serve = |asked| shared.serve_snapshot_from(vp, vcpu, at_call, asked);
        let synthetic = || shared.synthetic(target.vp_index);
        match shared
            .rendezvous
            .request_snapshot(vp, target.vp_index, groups, &mut serve, synthetic)
        {
            Ok(s) => Ok(*s),
            Err(e) => {
                tracing::debug!(vp, target = target.vp_index, %e, "no snapshot");
                Err(SourceError::Host(e))
            }
        }
    }

    fn read(
        &mut self,
        snapshot: &mut VpSnapshot,
        name: HvRegisterName,
    ) -> Result<HvRegisterValue, SourceError<SnapshotError>> {
        let group = group_of(name).ok_or(HvError::INVALID_PARAMETER)?;
        // Only the caller's own snapshot fills lazily; another VP's holds
        // what its call named and is never fetched from again.
        if !snapshot.has(group) && snapshot.vp_index() == self.vp {
            snapshot
                .fill(group, self.vcpu)
                .map_err(|e| SourceError::Host(SnapshotError::Fetch(e.to_string())))?;
        }
        Ok(snapshot.read_held(name)?)
    }
}

/// Whether the caller runs at CPL 0 in protected mode. The CPL is SS.DPL
/// (CS's selector RPL is wrong in virtual-8086 mode, where KVM reports
/// segments with DPL 3).
fn is_privileged(sregs: &kvm_bindings::kvm_sregs) -> bool {
    sregs.cr0 & CR0_PE != 0 && sregs.ss.dpl == 0
}

/// A KVM failure while handling a hypercall; the VM ends with a fault.
#[derive(Debug, thiserror::Error)]
#[error("hypercall on VP {vp}: {message}")]
pub struct HypercallFault {
    /// The VP.
    pub vp: u32,
    /// What failed.
    pub message: String,
}

/// Handles VP `vp`'s hypercall: the `out` of the hypercall page, enabled
/// at GPA `overlay`.
pub fn handle(
    shared: &Shared<'_>,
    vp: u32,
    vcpu: &mut VcpuFd,
    state: &mut VpState<VpSnapshot>,
    overlay: Option<u64>,
) -> Result<Outcome, HypercallFault> {
    let sync = vcpu.sync_regs();
    let instruction = sync.regs.rip.wrapping_sub(HYPERCALL_INSTRUCTION_LEN);
    let ctx = CallContext::new(
        Convention::for_x86_mode(sync.sregs.efer & EFER_LMA != 0, sync.sregs.cs.l != 0),
        is_privileged(&sync.sregs),
        instruction,
    );
    let mut at_call = sync;
    at_call.regs.rip = instruction;

    let fault = |message: String| HypercallFault { vp, message };
    let (outcome, mut regs, traced) = {
        let vcpu_ref: &VcpuFd = vcpu;
        let mut regs = CallerRegs::new(sync.regs);
        let control = ctx.convention.control(&regs);
        if HypercallControl::from_bits(control).fast() {
            regs.load_fpu(vcpu_ref)
                .map_err(|e| fault(format!("KVM_GET_FPU: {e}")))?;
        }
        let traced = shared.config.hypercall_trace.as_ref().map(|_| {
            let c = ctx.convention;
            let (input, output) = (c.input_gpa(&regs), c.output_gpa(&regs));
            TracedCall::new(vp, control, input, output, shared.ram, || {
                let mut bytes = Vec::with_capacity(16 + 6 * 16);
                bytes.extend_from_slice(&input.to_le_bytes());
                bytes.extend_from_slice(&output.to_le_bytes());
                for i in 0..6 {
                    bytes.extend_from_slice(&regs.vector(i).to_le_bytes());
                }
                bytes
            })
        });
        let mut memory = CallerMemory::new(shared.ram, overlay);
        let mut hv = VpHypervisor {
            shared,
            vp,
            vcpu: vcpu_ref,
            at_call,
        };
        let outcome = dispatch(
            &ctx,
            &mut regs,
            &mut memory,
            &mut hv,
            state,
            &shared.dispatch,
        );
        let outcome = outcome.map_err(|e| fault(e.to_string()))?;
        if regs.fpu_dirty {
            if let Some(f) = &regs.fpu {
                count_ioctl();
                vcpu_ref
                    .set_fpu(f)
                    .map_err(|e| fault(format!("KVM_SET_FPU: {e}")))?;
            }
        }
        (outcome, regs.regs, traced)
    };
    tracing::trace!(vp, ?outcome, rax = regs.rax, "hypercall");
    {
        let (c, after) = (ctx.convention, CallerRegs::new(regs));
        let result = HypercallResult::from_bits(c.result(&after));
        if let (Some(traced), Some(sink)) = (traced, &shared.config.hypercall_trace) {
            sink.write(
                traced
                    .line(outcome, result.into_bits(), c.control(&after))
                    .as_bytes(),
            );
        }
        if outcome == Outcome::Complete && result.status() == HvStatus::INVALID_HYPERCALL_CODE {
            shared.unimplemented_call(vp, HypercallControl::from_bits(c.control(&after)).code());
        }
    }
    let sync_out = vcpu.sync_regs_mut();
    match outcome {
        Outcome::Complete => sync_out.regs = regs,
        Outcome::Continue => {
            regs.rip = instruction;
            sync_out.regs = regs;
        }
        Outcome::InjectUndefined => crate::vcpu::inject_exception(vcpu, instruction, UD_VECTOR),
        // An outcome added to the dispatcher after this VMM was written.
        other => return Err(fault(format!("unsupported dispatcher outcome {other:?}"))),
    }
    vcpu.set_sync_dirty_reg(SyncReg::Register);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the CPL was taken from CS's selector; in
    /// virtual-8086 mode (selector RPL 0, DPL 3) that called a CPL-3 caller
    /// privileged.
    #[test]
    fn the_cpl_is_ss_dpl() {
        let mut s = kvm_bindings::kvm_sregs {
            cr0: CR0_PE,
            ..Default::default()
        };
        assert!(is_privileged(&s));
        s.cs.selector = 0x1000; // a real-mode style selector: RPL 0
        s.cs.dpl = 3;
        s.ss.dpl = 3;
        assert!(!is_privileged(&s), "virtual-8086 mode is CPL 3");
        s.ss.dpl = 0;
        s.cr0 = 0;
        assert!(!is_privileged(&s), "real mode has no hypercalls");
    }
}
