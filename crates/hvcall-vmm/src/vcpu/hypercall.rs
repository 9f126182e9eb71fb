//! One hypercall exit: the caller's registers ([`CallerRegs`]), the
//! partition and VP view ([`VpHypervisor`]), the call to
//! [`hvcall_dispatch::dispatch()`] and applying its [`Outcome`].
//!
//! The calling VP's general registers come from the `kvm_run` sync regs
//! (no ioctl); XMM0–5 are fetched with one `KVM_GET_FPU` only if the
//! dispatcher asks (fast forms) and written back with one `KVM_SET_FPU`
//! only if changed. The caller is partition 2, child of the root
//! partition 1; only VTL 0 exists.
//!
//! While its call is handled the VP is stopped at the hypercall
//! instruction, and other VPs may read and write it (it serves their
//! requests while it waits for its own): its state as they see it is
//! [`InCall::here`], its state at the call with those writes applied.
//! When the call ends, a general register written meanwhile keeps the
//! written value unless it is one of the call's own registers (contract
//! step 8d's list: the call's values win there), and so does an FPU/SSE
//! register other than a fast call's XMM0–5.

use hvcall_abi::HypercallResult;
use hvcall_abi::{
    HvError, HvRegisterName, HvRegisterValue, HvStatus, HypercallControl, SetVpRegistersElement,
};
use hvcall_dispatch::{
    dispatch, CallContext, Caller, CallerRegisters, Convention, GetVpRegisters, Offers, Outcome,
    PartitionInfo, Partitions, ReadRegisters, SetVpRegisters, SnapshotRequest, SourceError, Target,
    VpState, WriteFailure, WriteRegisters,
};
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sync_regs};
use kvm_ioctls::{SyncReg, VcpuFd};

use crate::hyperv::hypercall_page::HYPERCALL_INSTRUCTION_LEN;
use crate::hyperv::trace::TracedCall;
use crate::memory::CallerMemory;
use crate::rendezvous::{Served, Server, WriteReply};
use crate::shared::Shared;
use crate::state::count_ioctl;
use crate::state::registers::{gpr, gpr_mut, group_of, Group, Groups};
use crate::state::snapshot::VpSnapshot;
use crate::state::write::Pending;
use crate::state::SnapshotError;
use crate::topology;

const UD_VECTOR: u8 = 6;
const EFER_LMA: u64 = 1 << 10;
const CR0_PE: u64 = 1;

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

/// The calling VP while its call is handled, as it serves other VPs.
pub struct InCall<'a> {
    shared: &'a Shared<'a>,
    vp: u32,
    vcpu: &'a VcpuFd,
    /// The caller's state at the call, RIP on the hypercall instruction.
    at_call: kvm_sync_regs,
    /// `at_call` with the writes that reached the VP during the call;
    /// groups filled on first use. Made when first needed.
    here: Option<VpSnapshot>,
    /// What the writes that reached the VP during the call changed
    /// (`None`: no write reached it).
    written: Option<Pending>,
}

impl InCall<'_> {
    /// The VP's state as others see it during the call.
    fn here(&mut self) -> &mut VpSnapshot {
        let (shared, vp, at_call) = (self.shared, self.vp, self.at_call);
        self.here
            .get_or_insert_with(|| VpSnapshot::from_sync(at_call, shared.synthetic.state(vp)))
    }

    /// Fills `group` of [`Self::here`].
    fn fill(&mut self, group: Group) -> Result<&mut VpSnapshot, SnapshotError> {
        let vcpu = self.vcpu;
        let here = self.here();
        here.fill(group, vcpu).map_err(SnapshotError::Fetch)?;
        Ok(here)
    }

    /// Carries what was written during the call into what the call hands
    /// back: `regs` (general registers at the call's end, for a call of
    /// `convention`, `fast` or not); returns the control and segment
    /// registers for the sync area's copy if writes reached the VP. If FPU/SSE writes reached the VP
    /// while the call's own XMM output is pending, the call's FPU copy is
    /// refetched and keeps only its XMM0–5.
    fn merge(
        &self,
        convention: Convention,
        fast: bool,
        regs: &mut CallerRegs,
    ) -> Result<Option<kvm_bindings::kvm_sregs>, kvm_ioctls::Error> {
        let (Some(here), Some(written)) = (self.here.as_ref(), self.written) else {
            return Ok(None);
        };
        let call = (convention, fast);
        merge_written(call, &here.sync().regs, written.regs, &mut regs.regs);
        // The FPU state the call fetched is older than these writes: keep
        // them, and only the call's own XMM0–5 from its copy.
        if written.fpu && regs.fpu_dirty {
            if let Some(mine) = &mut regs.fpu {
                count_ioctl();
                let mut now = self.vcpu.get_fpu()?;
                now.xmm[..6].copy_from_slice(&mine.xmm[..6]);
                *mine = now;
            }
        }
        Ok(Some(here.sync().sregs))
    }
}

/// Copies the general registers written during a call (bit n of
/// `written_mask`: slot n of [`crate::state::snapshot::Staged::Regs`]) from
/// `written` into `out`, the registers the call hands back, except those
/// step 8d names for the call (`call`: its convention, fast or not).
fn merge_written(
    call: (Convention, bool),
    written: &kvm_regs,
    written_mask: u32,
    out: &mut kvm_regs,
) {
    let pending = Pending {
        regs: written_mask,
        fpu: false,
    };
    pending.copy_regs(written, out, |name| call.0.is_call_register(call.1, name));
}

impl Server for InCall<'_> {
    fn snapshot(&mut self, groups: Groups) -> Served {
        for g in groups.fetched() {
            self.fill(g)?;
        }
        let synthetic = self.shared.synthetic.state(self.vp);
        let snapshot = Box::new(self.here().clone()).with_synthetic(synthetic);
        self.shared.counters.snapshot_served(&snapshot);
        self.shared.counters.flush_ioctls();
        Ok(snapshot)
    }

    fn write(&mut self, elements: &[SetVpRegistersElement]) -> WriteReply {
        let (shared, vp, vcpu) = (self.shared, self.vp, self.vcpu);
        let batch = crate::state::write::apply(self.here(), vcpu, elements, &mut |index, value| {
            shared.write_synthetic(index, vp, value)
        });
        self.written.get_or_insert_default().merge(batch.pending);
        batch.result
    }
}

/// The partition/VP view of one call, made on the calling VP's thread.
pub struct VpHypervisor<'a> {
    call: InCall<'a>,
}

impl VpHypervisor<'_> {
    /// Whether `target` is a VP of the VM (the dispatcher checked it).
    fn check(&self, target: &Target) -> Result<(), HvError> {
        topology::vm_vp(target, self.call.shared.synthetic.vp_count()).map(drop)
    }
}

impl Partitions for VpHypervisor<'_> {
    fn caller(&self) -> Caller {
        let leaves = &self.call.shared.synthetic.leaves;
        topology::guest_caller(self.call.vp, leaves.privileges, leaves.xmm_fast)
    }

    fn partition(&self, partition_id: u64) -> Option<PartitionInfo> {
        topology::partition_info(partition_id, self.call.shared.synthetic.vp_count())
    }

    fn enabled_vtls(&self, partition_id: u64, vp_index: u32) -> u16 {
        topology::enabled_vtls(partition_id, vp_index)
    }
}

impl ReadRegisters for VpHypervisor<'_> {
    type Snapshot = VpSnapshot;
    /// The VM ended, or KVM could not read a VP's state: the call ends and
    /// so does the VM.
    type Error = SnapshotError;

    fn snapshot(
        &mut self,
        request: &SnapshotRequest<'_>,
    ) -> Result<VpSnapshot, SourceError<SnapshotError>> {
        let target = request.target;
        self.check(&target)?;
        let groups = Groups::of(request.names);
        let call = &mut self.call;
        if target.vp_index == call.vp {
            // The call's own output reaches this VP's XMM registers before
            // later elements are read: take that group now, at the call
            // (docs/contract.md §5 and §2: a later element must not see this
            // call's own output).
            if request.output_precedes_reads && groups.contains(Group::Fpu) {
                call.fill(Group::Fpu).map_err(SourceError::Host)?;
            }
            return Ok(call.here().clone());
        }
        let (shared, vp) = (call.shared, call.vp);
        let synthetic = || shared.synthetic.state(target.vp_index);
        match shared
            .rendezvous
            .request_snapshot(vp, target.vp_index, groups, call, synthetic)
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
        if group == Group::Activity && snapshot.vp_index() == self.call.vp {
            // The caller is running (it is executing this call).
            snapshot.fill_activity_running();
        }
        if !snapshot.has(group) && snapshot.vp_index() == self.call.vp {
            snapshot
                .fill(group, self.call.vcpu)
                .map_err(|e| SourceError::Host(SnapshotError::Fetch(e)))?;
        }
        Ok(snapshot.read_held(name)?)
    }
}

impl WriteRegisters for VpHypervisor<'_> {
    fn write(
        &mut self,
        target: &Target,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), WriteFailure<SnapshotError>> {
        self.check(target).map_err(|e| WriteFailure {
            applied: 0,
            error: SourceError::Hv(e),
        })?;
        let call = &mut self.call;
        if target.vp_index == call.vp {
            return call.write(elements);
        }
        let (shared, vp) = (call.shared, call.vp);
        shared
            .rendezvous
            .request_write(vp, target.vp_index, elements, call)
    }
}

/// The VMM offers HvCallGetVpRegisters and HvCallSetVpRegisters.
impl Offers for VpHypervisor<'_> {
    type Calls = (GetVpRegisters, SetVpRegisters);
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
    let (outcome, mut regs, traced, written_sregs) = {
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
            call: InCall {
                shared,
                vp,
                vcpu: vcpu_ref,
                at_call,
                here: None,
                written: None,
            },
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
        let fast = HypercallControl::from_bits(control).fast();
        let written_sregs = hv
            .call
            .merge(ctx.convention, fast, &mut regs)
            .map_err(|e| fault(format!("KVM_GET_FPU: {e}")))?;
        if regs.fpu_dirty {
            if let Some(f) = &regs.fpu {
                count_ioctl();
                vcpu_ref
                    .set_fpu(f)
                    .map_err(|e| fault(format!("KVM_SET_FPU: {e}")))?;
            }
        }
        (outcome, regs.regs, traced, written_sregs)
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
    if let Some(sregs) = written_sregs {
        // A copy: the control and segment registers are in KVM already.
        sync_out.sregs = sregs;
    }
    match outcome {
        Outcome::Complete => sync_out.regs = regs,
        Outcome::Continue => {
            regs.rip = instruction;
            sync_out.regs = regs;
        }
        Outcome::InjectUndefined => {
            crate::vcpu::inject::inject_exception(vcpu, instruction, UD_VECTOR)
        }
        // An outcome added to the dispatcher after this VMM was written.
        other => return Err(fault(format!("unsupported dispatcher outcome {other:?}"))),
    }
    vcpu.set_sync_dirty_reg(SyncReg::Register);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::snapshot::{RFLAGS_SLOT, RIP_SLOT};

    /// Regression: the CPL was taken from CS's selector; in
    /// virtual-8086 mode (selector RPL 0, DPL 3) that called a CPL-3 caller
    /// privileged.
    /// Contract §8: a write that reached a VP during its call keeps its
    /// value when the call ends, except in the call's own registers (8d).
    #[test]
    fn section_8_writes_during_a_call_win_except_the_calls_own_registers() {
        let written = kvm_regs {
            rax: 0xA,
            rbx: 0xB,
            rcx: 0xC,
            rdx: 0xD,
            r8: 0x8,
            r12: 0x12,
            rip: 0x1111,
            rflags: 0x202,
            ..Default::default()
        };
        let call_end = kvm_regs {
            rax: 0x50_0000_0000,
            rbx: 1,
            rcx: 2,
            rdx: 3,
            r8: 4,
            r9: 5,
            r12: 6,
            rip: 0x2222,
            rflags: 2,
            ..Default::default()
        };
        // Written: RAX, RCX, RDX, RBX, R8, R12, RIP, RFLAGS (not R9).
        let mask =
            1 << 0 | 1 << 1 | 1 << 2 | 1 << 3 | 1 << 8 | 1 << 12 | 1 << RIP_SLOT | 1 << RFLAGS_SLOT;
        let mut out = call_end;
        merge_written((Convention::X64, false), &written, mask, &mut out);
        let want = kvm_regs {
            rbx: 0xB,
            r12: 0x12,
            rflags: 0x202,
            ..call_end
        };
        assert_eq!(out, want, "x64: RAX, RCX, RDX, R8 and RIP are the call's");
        // 32-bit callers also own RBX, RSI and RDI.
        let mut out = call_end;
        merge_written((Convention::X86, false), &written, mask, &mut out);
        assert_eq!(out.rbx, 1, "RBX is an x86 call register");
        assert_eq!(out.r8, 0x8, "R8 is not");
        assert_eq!(out.r12, 0x12);
    }

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
