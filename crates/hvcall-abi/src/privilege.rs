//! HV_PARTITION_PRIVILEGE_MASK bits (digest §7).

/// AccessHypercallMsrs (GUEST_OS_ID and HYPERCALL MSRs).
pub const ACCESS_HYPERCALL_MSRS: u64 = 1 << 5;
/// AccessVpIndex (VP_INDEX MSR).
pub const ACCESS_VP_INDEX: u64 = 1 << 6;
/// AccessVsm.
pub const ACCESS_VSM: u64 = 1 << 48;
/// AccessVpRegisters: HvCallGet/SetVpRegisters on self.
pub const ACCESS_VP_REGISTERS: u64 = 1 << 49;
