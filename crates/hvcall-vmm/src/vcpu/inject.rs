//! Exception injection through the sync registers: how the run loop
//! (#BP, #MF) and the hypercall exit (#UD) resume a vCPU at a fault.

use kvm_ioctls::{SyncReg, VcpuFd};

/// Resumes `vcpu` at `rip` with exception `vector` (no error code)
/// injected, through the sync registers.
pub(crate) fn inject_exception(vcpu: &mut VcpuFd, rip: u64, vector: u8) {
    let sync = vcpu.sync_regs_mut();
    sync.regs.rip = rip;
    let ex = &mut sync.events.exception;
    ex.injected = 1;
    ex.pending = 0;
    ex.nr = vector;
    ex.has_error_code = 0;
    ex.error_code = 0;
    vcpu.set_sync_dirty_reg(SyncReg::Register);
    vcpu.set_sync_dirty_reg(SyncReg::VcpuEvents);
}
