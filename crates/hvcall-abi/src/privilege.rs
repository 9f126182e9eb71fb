//! HV_PARTITION_PRIVILEGE_MASK bits (TLFS HV_PARTITION_PRIVILEGE_MASK).
//!
//! A guest reads bits 31:0 in CPUID 0x40000003 EAX and bits 63:32 in EBX
//! ([`cpuid_eax`], [`cpuid_ebx`]); on ARM64 the mask is bits 63:0 of
//! HvRegisterPrivilegesAndFeaturesInfo. Bits that come from a source
//! other than the current TLFS (Linux, OpenVMM) say so.
//!
//! ```
//! use hvcall_abi::privilege::{self, ACCESS_VP_REGISTERS};
//! assert_eq!(privilege::cpuid_ebx(ACCESS_VP_REGISTERS), 1 << 17);
//! assert_eq!(privilege::cpuid_eax(ACCESS_VP_REGISTERS), 0);
//! ```

/// AccessVpRunTimeReg (MSR 0x40000010).
pub const ACCESS_VP_RUN_TIME_REG: u64 = 1 << 0;
/// AccessPartitionReferenceCounter (MSR 0x40000020).
pub const ACCESS_PARTITION_REFERENCE_COUNTER: u64 = 1 << 1;
/// AccessSynicRegs.
pub const ACCESS_SYNIC_REGS: u64 = 1 << 2;
/// AccessSyntheticTimerRegs.
pub const ACCESS_SYNTHETIC_TIMER_REGS: u64 = 1 << 3;
/// AccessIntrCtrlRegs (APIC EOI/ICR/TPR MSRs).
pub const ACCESS_INTR_CTRL_REGS: u64 = 1 << 4;
/// AccessHypercallMsrs (GUEST_OS_ID and HYPERCALL MSRs).
pub const ACCESS_HYPERCALL_MSRS: u64 = 1 << 5;
/// AccessVpIndex (VP_INDEX MSR).
pub const ACCESS_VP_INDEX: u64 = 1 << 6;
/// AccessResetReg.
pub const ACCESS_RESET_REG: u64 = 1 << 7;
/// AccessStatsReg.
pub const ACCESS_STATS_REG: u64 = 1 << 8;
/// AccessPartitionReferenceTsc.
pub const ACCESS_PARTITION_REFERENCE_TSC: u64 = 1 << 9;
/// AccessGuestIdleReg.
pub const ACCESS_GUEST_IDLE_REG: u64 = 1 << 10;
/// AccessFrequencyRegs.
pub const ACCESS_FREQUENCY_REGS: u64 = 1 << 11;
/// AccessDebugRegs (HDK/OpenVMM; reserved in the TLFS markdown).
pub const ACCESS_DEBUG_REGS: u64 = 1 << 12;
/// AccessReenlightenmentControls.
pub const ACCESS_REENLIGHTENMENT_CONTROLS: u64 = 1 << 13;
/// AccessRootSchedulerReg (HDK/OpenVMM).
pub const ACCESS_ROOT_SCHEDULER_REG: u64 = 1 << 14;
/// AccessTscInvariantControls (OpenVMM/Linux).
pub const ACCESS_TSC_INVARIANT_CONTROLS: u64 = 1 << 15;
/// CreatePartitions.
pub const CREATE_PARTITIONS: u64 = 1 << 32;
/// AccessPartitionId.
pub const ACCESS_PARTITION_ID: u64 = 1 << 33;
/// AccessMemoryPool.
pub const ACCESS_MEMORY_POOL: u64 = 1 << 34;
/// AdjustMessageBuffers (HDK/Linux; reserved in the TLFS markdown).
pub const ADJUST_MESSAGE_BUFFERS: u64 = 1 << 35;
/// PostMessages.
pub const POST_MESSAGES: u64 = 1 << 36;
/// SignalEvents.
pub const SIGNAL_EVENTS: u64 = 1 << 37;
/// CreatePort.
pub const CREATE_PORT: u64 = 1 << 38;
/// ConnectPort.
pub const CONNECT_PORT: u64 = 1 << 39;
/// AccessStats.
pub const ACCESS_STATS: u64 = 1 << 40;
/// Debugging.
pub const DEBUGGING: u64 = 1 << 43;
/// CpuManagement.
pub const CPU_MANAGEMENT: u64 = 1 << 44;
/// ConfigureProfiler (HDK).
pub const CONFIGURE_PROFILER: u64 = 1 << 45;
/// AccessVpExitTracing (HDK).
pub const ACCESS_VP_EXIT_TRACING: u64 = 1 << 46;
/// EnableExtendedGvaRangesForFlushVirtualAddressList (HDK).
pub const ENABLE_EXTENDED_GVA_RANGES_FOR_FLUSH_VIRTUAL_ADDRESS_LIST: u64 = 1 << 47;
/// AccessVsm.
pub const ACCESS_VSM: u64 = 1 << 48;
/// AccessVpRegisters: HvCallGet/SetVpRegisters on self (CPUID EBX bit 17).
pub const ACCESS_VP_REGISTERS: u64 = 1 << 49;
/// FastHypercallOutput (HDK/OpenVMM).
pub const FAST_HYPERCALL_OUTPUT: u64 = 1 << 51;
/// EnableExtendedHypercalls (CPUID EBX bit 20).
pub const ENABLE_EXTENDED_HYPERCALLS: u64 = 1 << 52;
/// StartVirtualProcessor.
pub const START_VIRTUAL_PROCESSOR: u64 = 1 << 53;
/// Isolation (HDK/Linux).
pub const ISOLATION: u64 = 1 << 54;

/// Every named bit with its TLFS name, ascending.
pub const ALL: &[(&str, u64)] = &[
    ("AccessVpRunTimeReg", ACCESS_VP_RUN_TIME_REG),
    (
        "AccessPartitionReferenceCounter",
        ACCESS_PARTITION_REFERENCE_COUNTER,
    ),
    ("AccessSynicRegs", ACCESS_SYNIC_REGS),
    ("AccessSyntheticTimerRegs", ACCESS_SYNTHETIC_TIMER_REGS),
    ("AccessIntrCtrlRegs", ACCESS_INTR_CTRL_REGS),
    ("AccessHypercallMsrs", ACCESS_HYPERCALL_MSRS),
    ("AccessVpIndex", ACCESS_VP_INDEX),
    ("AccessResetReg", ACCESS_RESET_REG),
    ("AccessStatsReg", ACCESS_STATS_REG),
    (
        "AccessPartitionReferenceTsc",
        ACCESS_PARTITION_REFERENCE_TSC,
    ),
    ("AccessGuestIdleReg", ACCESS_GUEST_IDLE_REG),
    ("AccessFrequencyRegs", ACCESS_FREQUENCY_REGS),
    ("AccessDebugRegs", ACCESS_DEBUG_REGS),
    (
        "AccessReenlightenmentControls",
        ACCESS_REENLIGHTENMENT_CONTROLS,
    ),
    ("AccessRootSchedulerReg", ACCESS_ROOT_SCHEDULER_REG),
    ("AccessTscInvariantControls", ACCESS_TSC_INVARIANT_CONTROLS),
    ("CreatePartitions", CREATE_PARTITIONS),
    ("AccessPartitionId", ACCESS_PARTITION_ID),
    ("AccessMemoryPool", ACCESS_MEMORY_POOL),
    ("AdjustMessageBuffers", ADJUST_MESSAGE_BUFFERS),
    ("PostMessages", POST_MESSAGES),
    ("SignalEvents", SIGNAL_EVENTS),
    ("CreatePort", CREATE_PORT),
    ("ConnectPort", CONNECT_PORT),
    ("AccessStats", ACCESS_STATS),
    ("Debugging", DEBUGGING),
    ("CpuManagement", CPU_MANAGEMENT),
    ("ConfigureProfiler", CONFIGURE_PROFILER),
    ("AccessVpExitTracing", ACCESS_VP_EXIT_TRACING),
    (
        "EnableExtendedGvaRangesForFlushVirtualAddressList",
        ENABLE_EXTENDED_GVA_RANGES_FOR_FLUSH_VIRTUAL_ADDRESS_LIST,
    ),
    ("AccessVsm", ACCESS_VSM),
    ("AccessVpRegisters", ACCESS_VP_REGISTERS),
    ("FastHypercallOutput", FAST_HYPERCALL_OUTPUT),
    ("EnableExtendedHypercalls", ENABLE_EXTENDED_HYPERCALLS),
    ("StartVirtualProcessor", START_VIRTUAL_PROCESSOR),
    ("Isolation", ISOLATION),
];

/// The low half of `mask`, as CPUID 0x40000003 EAX reports it.
pub const fn cpuid_eax(mask: u64) -> u32 {
    mask as u32
}

/// The high half of `mask`, as CPUID 0x40000003 EBX reports it.
pub const fn cpuid_ebx(mask: u64) -> u32 {
    (mask >> 32) as u32
}

/// The mask a guest reads back from CPUID 0x40000003 EAX and EBX.
pub const fn from_cpuid(eax: u32, ebx: u32) -> u64 {
    eax as u64 | (ebx as u64) << 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_bits_are_single_distinct_and_ascending() {
        for (name, bit) in ALL {
            assert_eq!(bit.count_ones(), 1, "{name}");
        }
        for w in ALL.windows(2) {
            assert!(w[0].1 < w[1].1, "{} then {}", w[0].0, w[1].0);
        }
    }

    #[test]
    fn cpuid_halves_round_trip_and_place_digest_bits() {
        let mask = ACCESS_HYPERCALL_MSRS | ACCESS_VP_INDEX | ACCESS_VP_REGISTERS;
        assert_eq!(cpuid_eax(mask), (1 << 5) | (1 << 6));
        assert_eq!(cpuid_ebx(mask), 1 << 17);
        assert_eq!(from_cpuid(cpuid_eax(mask), cpuid_ebx(mask)), mask);
        assert_eq!(cpuid_ebx(ENABLE_EXTENDED_HYPERCALLS), 1 << 20);
    }
}
