//! A guest that executes VMCALL on VP0. This KVM never passes VMCALL to
//! user space (the vCPU spins in the kernel), so only the VMM's watchdog
//! can end this VM: the integration tests check that it does, with a clear
//! message and a non-zero status.
#![no_std]
#![no_main]

rt::entry!(main);

fn main(vp: u32, _vps: u32) {
    if vp == 0 {
        rt::outln!("vmcall guest: executing VMCALL");
        // SAFETY: VMCALL changes no guest state we rely on; if a hypervisor
        // ever returns from it, the guest exits with status 0 below, which
        // the test reports as a missing watchdog.
        unsafe { core::arch::asm!("vmcall", options(nostack)) };
        rt::outln!("vmcall guest: VMCALL returned");
        rt::exit(0);
    }
}
