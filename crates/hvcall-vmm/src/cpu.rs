//! The guest processor's architectural features, read once from the CPUID
//! table the VMM gives each vCPU ([`CpuFeatures`]), and the EFER bits they
//! decide. The Hyper-V CPUID leaves carry them
//! ([`crate::hyperv::cpuid::HypervLeaves`]) and the register validation
//! ([`crate::state::validate`]) reads them.

use kvm_bindings::kvm_cpuid_entry2;

/// The guest's processor features that decide what 8c accepts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CpuFeatures {
    /// CR4 bits the guest may set.
    pub cr4: u64,
    /// EFER bits the guest may set.
    pub efer: u64,
    /// XCR0 bits the guest may set (CPUID 0xD.0 EDX:EAX).
    pub xcr0: u64,
    /// Physical address width (CPUID 0x8000_0008 EAX\[7:0\]; 36 without it).
    pub phys_bits: u8,
    /// x2APIC mode (CPUID 1 ECX\[21\]).
    pub x2apic: bool,
    /// RTM (CPUID 7 EBX\[11\]): DR7 bit 11 and DR6 bit 16 have a meaning.
    pub rtm: bool,
}

impl Default for CpuFeatures {
    /// No optional feature: what a table without leaves 1, 7, 0xD and
    /// 0x8000_000x allows.
    fn default() -> Self {
        Self::from_entries(&[])
    }
}

/// EFER bits.
pub mod efer {
    /// SYSCALL enable.
    pub const SCE: u64 = 1 << 0;
    /// Long mode enable.
    pub const LME: u64 = 1 << 8;
    /// Long mode active.
    pub const LMA: u64 = 1 << 10;
    /// No-execute enable.
    pub const NXE: u64 = 1 << 11;
    /// Secure virtual machine enable.
    pub const SVME: u64 = 1 << 12;
    /// Long mode segment limit enable (never advertised: reserved).
    pub const LMSLE: u64 = 1 << 13;
    /// Fast FXSAVE/FXRSTOR.
    pub const FFXSR: u64 = 1 << 14;
    /// Translation cache extension.
    pub const TCE: u64 = 1 << 15;
    /// Automatic IBRS.
    pub const AUTOIBRS: u64 = 1 << 21;
}

fn bit(word: u32, n: u32) -> bool {
    word >> n & 1 != 0
}

impl CpuFeatures {
    /// The features of a vCPU's CPUID table.
    pub fn from_entries(entries: &[kvm_cpuid_entry2]) -> Self {
        let leaf = |function: u32, index: u32| {
            entries
                .iter()
                .find(|e| e.function == function && e.index == index)
                .map_or([0; 4], |e| [e.eax, e.ebx, e.ecx, e.edx])
        };
        let [_, _, c1, d1] = leaf(1, 0);
        let [_, b7, c7, d7] = leaf(7, 0);
        let [_, _, ce, de] = leaf(0x8000_0001, 0);
        let [a8, ..] = leaf(0x8000_0008, 0);
        let [a21, ..] = leaf(0x8000_0021, 0);
        let [ad, _, _, dd] = leaf(0xD, 0);
        let cr4_bits: [(u32, bool); 25] = [
            (0, bit(d1, 1)),                 // VME
            (1, bit(d1, 1)),                 // PVI
            (2, bit(d1, 4)),                 // TSD
            (3, bit(d1, 2)),                 // DE
            (4, bit(d1, 3)),                 // PSE
            (5, bit(d1, 6)),                 // PAE
            (6, bit(d1, 7)),                 // MCE
            (7, bit(d1, 13)),                // PGE
            (8, true),                       // PCE
            (9, bit(d1, 24)),                // OSFXSR
            (10, bit(d1, 25)),               // OSXMMEXCPT
            (11, bit(c7, 2)),                // UMIP
            (12, bit(c7, 16)),               // LA57
            (13, bit(c1, 5)),                // VMXE
            (14, bit(c1, 6)),                // SMXE
            (16, bit(b7, 0)),                // FSGSBASE
            (17, bit(c1, 17)),               // PCIDE
            (18, bit(c1, 26)),               // OSXSAVE
            (19, bit(c7, 23)),               // KL
            (20, bit(b7, 7)),                // SMEP
            (21, bit(b7, 20)),               // SMAP
            (22, bit(c7, 3)),                // PKE
            (23, bit(c7, 7) || bit(d7, 20)), // CET
            (24, bit(c7, 31)),               // PKS
            (25, bit(d7, 5)),                // UINTR
        ];
        let efer_bits: [(u64, bool); 8] = [
            (efer::SCE, bit(de, 11)),
            (efer::LME | efer::LMA, bit(de, 29)),
            (efer::NXE, bit(de, 20)),
            (efer::SVME, bit(ce, 2)),
            (efer::LMSLE, false),
            (efer::FFXSR, bit(de, 25)),
            (efer::TCE, bit(ce, 17)),
            (efer::AUTOIBRS, bit(a21, 8)),
        ];
        let phys_bits = match (a8 & 0xFF) as u8 {
            0 => 36,
            n => n.min(52),
        };
        Self {
            cr4: cr4_bits
                .iter()
                .filter(|(_, on)| *on)
                .fold(0, |m, (b, _)| m | 1 << b),
            efer: efer_bits
                .iter()
                .filter(|(_, on)| *on)
                .fold(0, |m, (b, _)| m | b),
            xcr0: u64::from(ad) | u64::from(dd) << 32,
            phys_bits,
            x2apic: bit(c1, 21),
            rtm: bit(b7, 11),
        }
    }

    /// Bits at or above the physical address width.
    pub(crate) fn above_phys(&self) -> u64 {
        !0u64 << self.phys_bits
    }
}
