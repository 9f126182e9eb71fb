//! Hyper-V CPUID leaves and bits (TLFS feature discovery).
//!
//! Leaf 0x40000003 EAX/EBX carry the partition privilege mask: see
//! [`crate::privilege`] (`cpuid_eax`, `cpuid_ebx`) for those bits.
//!
//! ```
//! use hvcall_abi::cpuid;
//! let mut vendor = [0u8; 12];
//! vendor[..4].copy_from_slice(&cpuid::VENDOR_EBX.to_le_bytes());
//! vendor[4..8].copy_from_slice(&cpuid::VENDOR_ECX.to_le_bytes());
//! vendor[8..].copy_from_slice(&cpuid::VENDOR_EDX.to_le_bytes());
//! assert_eq!(&vendor, b"Microsoft Hv");
//! assert_eq!(vendor, cpuid::VENDOR);
//! assert_eq!(&cpuid::INTERFACE_SIGNATURE.to_le_bytes(), b"Hv#1");
//! ```

use bitfield_struct::bitfield;

use crate::value::register_view;

/// Leaf 0x1 ECX bit 31: a hypervisor is present.
pub const HYPERVISOR_PRESENT_ECX: u32 = 1 << 31;

/// Vendor and max leaf: EAX = highest hypervisor leaf, EBX:ECX:EDX = vendor.
pub const LEAF_VENDOR: u32 = 0x4000_0000;
/// Interface signature ("Hv#1").
pub const LEAF_INTERFACE: u32 = 0x4000_0001;
/// Hypervisor version: build, major/minor, service pack, branch/number.
pub const LEAF_VERSION: u32 = 0x4000_0002;
/// Privileges (EAX/EBX) and features (ECX/EDX).
pub const LEAF_FEATURES: u32 = 0x4000_0003;
/// Implementation recommendations.
pub const LEAF_RECOMMENDATIONS: u32 = 0x4000_0004;
/// Implementation limits: max VPs, LPs, interrupt-remapping vectors.
pub const LEAF_IMPLEMENTATION_LIMITS: u32 = 0x4000_0005;
/// Hardware features in use by the hypervisor.
pub const LEAF_HARDWARE_FEATURES: u32 = 0x4000_0006;
/// CPU management features (root partition).
pub const LEAF_CPU_MANAGEMENT: u32 = 0x4000_0007;
/// SVM / PASID features.
pub const LEAF_PASID_FEATURES: u32 = 0x4000_0008;
/// Nested hypervisor feature identification.
pub const LEAF_NESTED_FEATURES: u32 = 0x4000_0009;
/// Nested virtualization features.
pub const LEAF_NESTED_VIRTUALIZATION: u32 = 0x4000_000A;
/// The last leaf of the range reserved for hypervisors: leaves
/// [`LEAF_VENDOR`]`..=LEAF_HYPERVISOR_LAST` belong to the hypervisor (and
/// to nothing else, so a VMM that presents Hyper-V replaces all of them).
pub const LEAF_HYPERVISOR_LAST: u32 = 0x4000_00FF;

/// The smallest highest-leaf value (EAX of [`LEAF_VENDOR`]) a Hyper-V
/// compatible hypervisor reports.
pub const MIN_MAX_LEAF: u32 = 0x4000_0005;
/// "Micr": EBX of [`LEAF_VENDOR`].
pub const VENDOR_EBX: u32 = 0x7263_694D;
/// "osof": ECX of [`LEAF_VENDOR`].
pub const VENDOR_ECX: u32 = 0x666F_736F;
/// "t Hv": EDX of [`LEAF_VENDOR`].
pub const VENDOR_EDX: u32 = 0x7648_2074;
/// "Hv#1" as read from EAX of [`LEAF_INTERFACE`].
pub const INTERFACE_SIGNATURE: u32 = 0x3123_7648;
/// "Microsoft Hv": the vendor bytes of [`LEAF_VENDOR`], as
/// [`vendor_bytes`] spells them from [`VENDOR_EBX`], [`VENDOR_ECX`] and
/// [`VENDOR_EDX`].
pub const VENDOR: [u8; 12] = vendor_bytes(VENDOR_EBX, VENDOR_ECX, VENDOR_EDX);

/// The 12 vendor bytes of [`LEAF_VENDOR`]: EBX, ECX, EDX, each
/// little-endian.
///
/// ```
/// use hvcall_abi::cpuid::vendor_bytes;
/// assert_eq!(&vendor_bytes(0x7263_694D, 0x666F_736F, 0x7648_2074), b"Microsoft Hv");
/// ```
pub const fn vendor_bytes(ebx: u32, ecx: u32, edx: u32) -> [u8; 12] {
    let [b0, b1, b2, b3] = ebx.to_le_bytes();
    let [c0, c1, c2, c3] = ecx.to_le_bytes();
    let [d0, d1, d2, d3] = edx.to_le_bytes();
    [b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3]
}

/// [`LEAF_VERSION`] (and the HypervisorVersion register, 0x00000100) as one
/// 128-bit value: EAX in bits 31:0, EBX 63:32, ECX 95:64, EDX 127:96, the
/// packing of [`HvRegisterValue::from_cpuid`](crate::HvRegisterValue::from_cpuid).
///
/// ```
/// use hvcall_abi::cpuid::HypervisorVersion;
/// use hvcall_abi::HvRegisterValue;
/// let v = HypervisorVersion::new()
///     .with_build_number(9200)
///     .with_major_version(6)
///     .with_minor_version(2);
/// assert_eq!(HvRegisterValue::from(v).cpuid_words(), [9200, 6 << 16 | 2, 0, 0]);
/// ```
#[bitfield(u128)]
#[derive(PartialEq, Eq)]
pub struct HypervisorVersion {
    /// Build number (EAX).
    pub build_number: u32,
    /// Minor version (EBX bits 15:0).
    pub minor_version: u16,
    /// Major version (EBX bits 31:16).
    pub major_version: u16,
    /// Service pack (ECX).
    pub service_pack: u32,
    /// Service number (EDX bits 23:0).
    #[bits(24)]
    pub service_number: u32,
    /// Service branch (EDX bits 31:24).
    pub service_branch: u8,
}
register_view!(bits128 HypervisorVersion);
const _: () = assert!(core::mem::size_of::<HypervisorVersion>() == 16);

/// EDX bit 0 of [`LEAF_FEATURES`]: MWAIT (deprecated).
pub const MWAIT_EDX: u32 = 1 << 0;
/// EDX bit 1: guest debugging.
pub const GUEST_DEBUGGING_EDX: u32 = 1 << 1;
/// EDX bit 2: performance monitor.
pub const PERFORMANCE_MONITOR_EDX: u32 = 1 << 2;
/// EDX bit 3: CPU dynamic partitioning.
pub const CPU_DYNAMIC_PARTITIONING_EDX: u32 = 1 << 3;
/// EDX bit 4 of [`LEAF_FEATURES`]: XMM fast hypercall input.
pub const XMM_FAST_INPUT_EDX: u32 = 1 << 4;
/// EDX bit 5: guest idle state.
pub const GUEST_IDLE_EDX: u32 = 1 << 5;
/// EDX bit 6: hypervisor sleep state.
pub const HYPERVISOR_SLEEP_STATE_EDX: u32 = 1 << 6;
/// EDX bit 7: NUMA distance query.
pub const NUMA_DISTANCE_QUERY_EDX: u32 = 1 << 7;
/// EDX bit 8: frequency MSRs.
pub const FREQUENCY_MSRS_EDX: u32 = 1 << 8;
/// EDX bit 9: synthetic machine check.
pub const SYNTHETIC_MACHINE_CHECK_EDX: u32 = 1 << 9;
/// EDX bit 10: guest crash MSRs.
pub const GUEST_CRASH_MSRS_EDX: u32 = 1 << 10;
/// EDX bit 11: debug MSRs.
pub const DEBUG_MSRS_EDX: u32 = 1 << 11;
/// EDX bit 12: NPIEP.
pub const NPIEP_EDX: u32 = 1 << 12;
/// EDX bit 13: DisableHypervisorAvailable.
pub const DISABLE_HYPERVISOR_AVAILABLE_EDX: u32 = 1 << 13;
/// EDX bit 14: extended GVA ranges for flush lists.
pub const EXTENDED_GVA_RANGES_FOR_FLUSH_EDX: u32 = 1 << 14;
/// EDX bit 15 of [`LEAF_FEATURES`]: XMM fast hypercall output.
pub const XMM_FAST_OUTPUT_EDX: u32 = 1 << 15;
/// EDX bit 17: SINT polling mode.
pub const SINT_POLLING_EDX: u32 = 1 << 17;
/// EDX bit 18: the hypercall MSR's Locked bit is available.
pub const HYPERCALL_MSR_LOCK_EDX: u32 = 1 << 18;
/// EDX bit 19: direct synthetic timers.
pub const DIRECT_SYNTHETIC_TIMERS_EDX: u32 = 1 << 19;
/// EDX bit 20: PAT register available for VSM.
pub const VSM_PAT_EDX: u32 = 1 << 20;
/// EDX bit 21: BNDCFGS register available for VSM.
pub const VSM_BNDCFGS_EDX: u32 = 1 << 21;
/// EDX bit 23: synthetic time-unhalted timer.
pub const SYNTHETIC_TIME_UNHALTED_TIMER_EDX: u32 = 1 << 23;
/// EDX bit 26: LBR.
pub const LBR_EDX: u32 = 1 << 26;

/// EAX bit 0 of [`LEAF_RECOMMENDATIONS`]: use a hypercall for address-space
/// switches.
pub const RECOMMEND_HYPERCALL_ADDRESS_SPACE_SWITCH_EAX: u32 = 1 << 0;
/// EAX bit 5 of [`LEAF_RECOMMENDATIONS`]: relaxed timing.
pub const RECOMMEND_RELAXED_TIMING_EAX: u32 = 1 << 5;
/// EBX of [`LEAF_RECOMMENDATIONS`] is the number of spinlock retries after
/// which the guest should notify the hypervisor; this value means never.
pub const SPINLOCK_RETRIES_NEVER_NOTIFY_EBX: u32 = u32::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_spell_the_digest_strings() {
        let words = [VENDOR_EBX, VENDOR_ECX, VENDOR_EDX];
        let mut bytes = [0u8; 12];
        for (chunk, w) in bytes.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(&bytes, b"Microsoft Hv");
        assert_eq!(VENDOR, bytes);
        assert_eq!(&INTERFACE_SIGNATURE.to_le_bytes(), b"Hv#1");
    }

    #[test]
    fn leaves_are_consecutive() {
        let leaves = [
            LEAF_VENDOR,
            LEAF_INTERFACE,
            LEAF_VERSION,
            LEAF_FEATURES,
            LEAF_RECOMMENDATIONS,
            LEAF_IMPLEMENTATION_LIMITS,
            LEAF_HARDWARE_FEATURES,
            LEAF_CPU_MANAGEMENT,
            LEAF_PASID_FEATURES,
            LEAF_NESTED_FEATURES,
            LEAF_NESTED_VIRTUALIZATION,
        ];
        for (i, leaf) in leaves.into_iter().enumerate() {
            assert_eq!(leaf, 0x4000_0000 + i as u32);
        }
        assert_eq!(LEAF_HYPERVISOR_LAST, 0x4000_00FF);
    }

    #[test]
    fn version_fields_sit_in_the_digest_registers() {
        let v = HypervisorVersion::new()
            .with_build_number(0x1111_1111)
            .with_minor_version(0x2222)
            .with_major_version(0x3333)
            .with_service_pack(0x4444_4444)
            .with_service_number(0x55_5555)
            .with_service_branch(0x66);
        assert_eq!(
            crate::HvRegisterValue::from(v).cpuid_words(),
            [0x1111_1111, 0x3333_2222, 0x4444_4444, 0x6655_5555]
        );
    }
}
