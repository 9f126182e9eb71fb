//! The CPUID table the guest sees (docs/contract.md §6).
//!
//! KVM's supported CPUID without KVM's own `0x40000000+` leaves, with
//! leaf 1 ECX bit 31 (hypervisor present) and the Hyper-V leaves
//! `0x40000000..=0x40000005` added. [`HypervLeaves`] is also where the
//! feature registers (HypervisorVersion, PrivilegesAndFeaturesInfo, ...)
//! get their values, so CPUID and the registers cannot disagree.

use hvcall_abi::cpuid::{self as leaf, HypervisorVersion};
use hvcall_abi::{privilege, HvRegisterValue};
use kvm_bindings::{kvm_cpuid_entry2, CpuId};

use crate::cpu::CpuFeatures;

/// Highest Hyper-V leaf advertised: implementation limits, the least a
/// Hyper-V compatible hypervisor reports.
pub const MAX_HYPERV_LEAF: u32 = leaf::LEAF_IMPLEMENTATION_LIMITS;
const _: () = assert!(MAX_HYPERV_LEAF >= leaf::MIN_MAX_LEAF);
/// hvcall's version as reported by CPUID 0x40000002: build 1, version 0.1.
pub const VERSION: HypervisorVersion = HypervisorVersion::new()
    .with_build_number(1)
    .with_major_version(0)
    .with_minor_version(1);

/// The four registers of one CPUID leaf.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Leaf {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

impl Leaf {
    /// The leaf from its four registers, EAX first.
    pub const fn from_words([eax, ebx, ecx, edx]: [u32; 4]) -> Self {
        Self { eax, ebx, ecx, edx }
    }

    /// The feature register that mirrors this leaf (TLFS HV_REGISTER_VALUE).
    pub const fn register_value(&self) -> HvRegisterValue {
        HvRegisterValue::from_cpuid([self.eax, self.ebx, self.ecx, self.edx])
    }
}

/// The Hyper-V leaves of one VM configuration.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HypervLeaves {
    /// The partition privilege mask (same on every VP, fixed for the VM).
    pub privileges: u64,
    /// XMM fast input and output advertised (EDX bits 4 and 15).
    pub xmm_fast: bool,
    /// Number of VPs (reported as the maximum in 0x40000005).
    pub cpus: u32,
    /// The architectural features of the table's standard and extended
    /// leaves, which decide what register writes accept (step 8c).
    pub arch: CpuFeatures,
}

impl HypervLeaves {
    /// The privileges of the VM: AccessHypercallMsrs, AccessVpIndex,
    /// AccessFrequencyRegs and,
    /// unless withheld, AccessVpRegisters.
    pub fn new(access_vp_registers: bool, xmm_fast: bool, cpus: u32) -> Self {
        let mut privileges = privilege::ACCESS_HYPERCALL_MSRS
            | privilege::ACCESS_VP_INDEX
            | privilege::ACCESS_FREQUENCY_REGS;
        if access_vp_registers {
            privileges |= privilege::ACCESS_VP_REGISTERS;
        }
        Self {
            privileges,
            xmm_fast,
            cpus,
            arch: CpuFeatures::default(),
        }
    }

    /// The same leaves with the architectural features `arch` (of the
    /// table [`guest_cpuid`] builds).
    #[must_use]
    pub fn with_arch(self, arch: CpuFeatures) -> Self {
        Self { arch, ..self }
    }

    /// The value of Hyper-V leaf `function`; leaves above
    /// [`MAX_HYPERV_LEAF`] read as zero.
    pub fn leaf(&self, function: u32) -> Leaf {
        match function {
            leaf::LEAF_VENDOR => Leaf {
                eax: MAX_HYPERV_LEAF,
                ebx: leaf::VENDOR_EBX,
                ecx: leaf::VENDOR_ECX,
                edx: leaf::VENDOR_EDX,
            },
            leaf::LEAF_INTERFACE => Leaf {
                eax: leaf::INTERFACE_SIGNATURE,
                ..Leaf::default()
            },
            leaf::LEAF_VERSION => Leaf::from_words(HvRegisterValue::from(VERSION).cpuid_words()),
            leaf::LEAF_FEATURES => {
                let mut edx = leaf::HYPERCALL_MSR_LOCK_EDX | leaf::FREQUENCY_MSRS_EDX;
                if self.xmm_fast {
                    edx |= leaf::XMM_FAST_INPUT_EDX | leaf::XMM_FAST_OUTPUT_EDX;
                }
                Leaf {
                    eax: privilege::cpuid_eax(self.privileges),
                    ebx: privilege::cpuid_ebx(self.privileges),
                    ecx: 0,
                    edx,
                }
            }
            // Recommendations: none, and never notify about spinlocks.
            leaf::LEAF_RECOMMENDATIONS => Leaf {
                ebx: leaf::SPINLOCK_RETRIES_NEVER_NOTIFY_EBX,
                ..Leaf::default()
            },
            // Implementation limits: max VPs; max LPs not reported.
            leaf::LEAF_IMPLEMENTATION_LIMITS => Leaf {
                eax: self.cpus,
                ..Leaf::default()
            },
            _ => Leaf::default(),
        }
    }
}

/// Builds the CPUID table for VP `vp_index`: KVM's `supported` table minus
/// its `0x40000000..=0x400000FF` leaves, plus the Hyper-V leaves, leaf 1
/// ECX bit 31 and the VP's APIC ID.
pub fn guest_cpuid(
    supported: &CpuId,
    hv: &HypervLeaves,
    vp_index: u32,
) -> Result<CpuId, vmm_sys_util::fam::Error> {
    let mut entries: Vec<kvm_cpuid_entry2> = supported
        .as_slice()
        .iter()
        .filter(|e| !(leaf::LEAF_VENDOR..=leaf::LEAF_HYPERVISOR_LAST).contains(&e.function))
        .copied()
        .collect();
    for e in &mut entries {
        match e.function {
            1 => {
                e.ecx |= leaf::HYPERVISOR_PRESENT_ECX;
                e.ebx = (e.ebx & 0x00FF_FFFF) | ((vp_index & 0xFF) << 24);
            }
            0xB | 0x1F => e.edx = vp_index,
            _ => {}
        }
    }
    for function in leaf::LEAF_VENDOR..=MAX_HYPERV_LEAF {
        let l = hv.leaf(function);
        entries.push(kvm_cpuid_entry2 {
            function,
            eax: l.eax,
            ebx: l.ebx,
            ecx: l.ecx,
            edx: l.edx,
            ..Default::default()
        });
    }
    CpuId::from_entries(&entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_leaves_section_6() {
        let hv = HypervLeaves::new(true, true, 2);
        let v = hv.leaf(0x4000_0000);
        assert!(v.eax >= 0x4000_0005);
        let vendor: Vec<u8> = [v.ebx, v.ecx, v.edx]
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        assert_eq!(vendor, b"Microsoft Hv");
        assert_eq!(hv.leaf(0x4000_0001).eax.to_le_bytes(), *b"Hv#1");
        let f = hv.leaf(0x4000_0003);
        assert_eq!(f.eax & 0x60, 0x60, "AccessHypercallMsrs and AccessVpIndex");
        assert_ne!(f.ebx & (1 << 17), 0, "AccessVpRegisters");
        assert_eq!(f.edx & 0x8010, 0x8010, "XMM fast input and output");
    }

    #[test]
    fn withheld_bits() {
        let hv = HypervLeaves::new(false, false, 2);
        let f = hv.leaf(0x4000_0003);
        assert_eq!(f.ebx & (1 << 17), 0);
        assert_eq!(f.edx & 0x8010, 0);
        assert_eq!(hv.privileges & privilege::ACCESS_VP_REGISTERS, 0);
    }

    #[test]
    fn packing_is_eax_ebx_ecx_edx_low_to_high() {
        let l = Leaf::from_words([1, 2, 3, 4]);
        assert_eq!(
            l,
            Leaf {
                eax: 1,
                ebx: 2,
                ecx: 3,
                edx: 4,
            }
        );
        assert_eq!(
            l.register_value().as_u128(),
            1 | (2 << 32) | (3 << 64) | (4 << 96)
        );
    }

    #[test]
    fn version_and_recommendations_leaves() {
        let hv = HypervLeaves::new(true, true, 2);
        let v = hv.leaf(0x4000_0002);
        assert_eq!([v.eax, v.ebx, v.ecx, v.edx], [1, 1, 0, 0], "build 1, 0.1");
        assert_eq!(hv.leaf(0x4000_0004).ebx, u32::MAX, "never notify");
        assert_eq!(hv.leaf(0x4000_0005).eax, 2, "max VPs");
        assert_eq!(hv.leaf(0x4000_0006), Leaf::default());
        assert_ne!(hv.leaf(0x4000_0003).edx & (1 << 18), 0, "MSR lock");
    }

    #[test]
    fn table_replaces_kvm_leaves() {
        let kvm_leaf = kvm_cpuid_entry2 {
            function: 0x4000_0000,
            eax: 0x4000_0001,
            ..Default::default()
        };
        let one = kvm_cpuid_entry2 {
            function: 1,
            ..Default::default()
        };
        let supported = CpuId::from_entries(&[one, kvm_leaf]).unwrap();
        let t = guest_cpuid(&supported, &HypervLeaves::new(true, true, 2), 1).unwrap();
        let vendors: Vec<_> = t
            .as_slice()
            .iter()
            .filter(|e| e.function == 0x4000_0000)
            .collect();
        assert_eq!(vendors.len(), 1);
        assert_eq!(vendors[0].eax, MAX_HYPERV_LEAF);
        let l1 = t.as_slice().iter().find(|e| e.function == 1).unwrap();
        assert_ne!(l1.ecx & (1 << 31), 0);
        assert_eq!(l1.ebx >> 24, 1);
    }
}
