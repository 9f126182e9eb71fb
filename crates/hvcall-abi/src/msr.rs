//! Hyper-V synthetic MSR numbers (digest §8.2–§8.4).

/// HV_X64_MSR_GUEST_OS_ID.
pub const GUEST_OS_ID: u32 = 0x4000_0000;
/// HV_X64_MSR_HYPERCALL.
pub const HYPERCALL: u32 = 0x4000_0001;
/// HV_X64_MSR_VP_INDEX (read-only).
pub const VP_INDEX: u32 = 0x4000_0002;
