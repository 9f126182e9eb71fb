//! Hyper-V discovery through CPUID (docs/contract.md §6).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::__cpuid;

use hvcall_abi::cpuid;
use hvcall_abi::privilege;

pub use hvcall_abi::cpuid::vendor_bytes;

/// Why discovery found no usable Hyper-V interface.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// CPUID 0x1 ECX bit 31 is clear: no hypervisor at all.
    #[error("no hypervisor: CPUID 0x1 ECX[31] is clear")]
    NoHypervisor,
    /// The vendor leaf does not say "Microsoft Hv".
    #[error("hypervisor vendor is not \"Microsoft Hv\"")]
    WrongVendor {
        /// EBX, ECX, EDX of leaf 0x40000000 as bytes.
        vendor: [u8; 12],
    },
    /// The max hypervisor leaf is below 0x40000005.
    #[error("max hypervisor leaf {max_leaf:#x} is below 0x40000005")]
    MaxLeafTooLow {
        /// EAX of leaf 0x40000000.
        max_leaf: u32,
    },
    /// Leaf 0x40000001 EAX is not "Hv#1".
    #[error("interface signature {signature:#x} is not \"Hv#1\"")]
    NotHv1 {
        /// EAX of leaf 0x40000001.
        signature: u32,
    },
}

/// What the hypervisor advertises in leaves 0x40000000 and 0x40000003.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HvFeatures {
    /// EAX of leaf 0x40000000: the highest hypervisor leaf.
    pub max_leaf: u32,
    /// The partition privilege mask: EBX:EAX of leaf 0x40000003.
    pub privileges: u64,
    /// ECX of leaf 0x40000003.
    pub features_ecx: u32,
    /// EDX of leaf 0x40000003 (XMM fast input bit 4, output bit 15, ...).
    pub features_edx: u32,
}

impl HvFeatures {
    /// Whether every bit of `mask` (see [`hvcall_abi::privilege`]) is granted.
    pub const fn has_privilege(&self, mask: u64) -> bool {
        self.privileges & mask == mask
    }

    /// Whether HvCallGetVpRegisters on self is allowed (AccessVpRegisters).
    pub const fn can_access_vp_registers(&self) -> bool {
        self.has_privilege(privilege::ACCESS_VP_REGISTERS)
    }

    /// Whether XMM fast hypercall input is advertised (EDX bit 4).
    pub const fn xmm_fast_input(&self) -> bool {
        self.features_edx & cpuid::XMM_FAST_INPUT_EDX != 0
    }

    /// Whether XMM fast hypercall output is advertised (EDX bit 15).
    pub const fn xmm_fast_output(&self) -> bool {
        self.features_edx & cpuid::XMM_FAST_OUTPUT_EDX != 0
    }
}

/// Checks the CPUID signature of a Microsoft hypervisor and reads its
/// privileges and features: 0x1 `ECX[31]`, 0x40000000 (max leaf >=
/// 0x40000005, "Microsoft Hv"), 0x40000001 ("Hv#1"), 0x40000003.
#[cfg(target_arch = "x86_64")]
pub fn discover() -> Result<HvFeatures, DiscoveryError> {
    if __cpuid(1).ecx & cpuid::HYPERVISOR_PRESENT_ECX == 0 {
        return Err(DiscoveryError::NoHypervisor);
    }
    let vendor_leaf = __cpuid(cpuid::LEAF_VENDOR);
    let vendor = vendor_bytes(vendor_leaf.ebx, vendor_leaf.ecx, vendor_leaf.edx);
    if vendor != cpuid::VENDOR {
        return Err(DiscoveryError::WrongVendor { vendor });
    }
    if vendor_leaf.eax < cpuid::MIN_MAX_LEAF {
        return Err(DiscoveryError::MaxLeafTooLow {
            max_leaf: vendor_leaf.eax,
        });
    }
    let signature = __cpuid(cpuid::LEAF_INTERFACE).eax;
    if signature != cpuid::INTERFACE_SIGNATURE {
        return Err(DiscoveryError::NotHv1 { signature });
    }
    let features = __cpuid(cpuid::LEAF_FEATURES);
    Ok(HvFeatures {
        max_leaf: vendor_leaf.eax,
        privileges: privilege::from_cpuid(features.eax, features.ebx),
        features_ecx: features.ecx,
        features_edx: features.edx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_registers_spell_microsoft_hv() {
        // The TLFS's register values for "Micr", "osof", "t Hv".
        assert_eq!(
            vendor_bytes(0x7263_694D, 0x666F_736F, 0x7648_2074),
            *b"Microsoft Hv"
        );
    }

    #[test]
    fn feature_bits_are_read_from_the_right_registers() {
        let f = HvFeatures {
            max_leaf: cpuid::MIN_MAX_LEAF,
            privileges: privilege::ACCESS_VP_REGISTERS,
            features_ecx: 0,
            features_edx: 1 << 15,
        };
        assert!(f.can_access_vp_registers());
        assert!(!f.has_privilege(privilege::ACCESS_VP_INDEX));
        assert!(f.xmm_fast_output());
        assert!(!f.xmm_fast_input());
    }
}
