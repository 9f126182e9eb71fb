//! What values the architecture accepts for each writable register
//! (docs/contract.md §8 step 8c, the table "What 8c refuses"): reserved
//! bits, non-canonical addresses, features the guest's CPUID does not
//! advertise, PAT memory types, and the few combinations of CR0, CR4 and
//! EFER a processor cannot be in. [`crate::state::snapshot::VpSnapshot::stage`]
//! asks here before a value reaches its snapshot, so a refused value never
//! reaches KVM.
//!
//! The features come from the CPUID table the VMM gives each vCPU
//! (`KVM_SET_CPUID2`, [`crate::hyperv::cpuid::guest_cpuid`]), read once into
//! [`CpuFeatures`]. Where the TLFS and the architecture leave a choice
//! (bits a processor ignores or reads back differently), hvcall refuses,
//! so that a write reported as a success always reads back as written.

pub use crate::cpu::{efer, CpuFeatures};

/// Why a value is refused (all of them are HV_STATUS_INVALID_REGISTER_VALUE).
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Bits reserved (or of a feature the guest's CPUID lacks) are set.
    #[error("reserved or unsupported bits {0:#x} set")]
    Reserved(u64),
    /// An address that is not canonical (or, for a 32-bit base, above 4 GiB).
    #[error("address {0:#x} is not canonical")]
    NonCanonical(u64),
    /// A PAT entry holds a reserved memory type (2, 3 or 8 and above).
    #[error("PAT entry {entry} has the reserved memory type {kind}")]
    PatType {
        /// Entry 0–7.
        entry: u8,
        /// Its memory type.
        kind: u8,
    },
    /// A combination of bits the processor cannot hold.
    #[error("{0}")]
    Combination(&'static str),
}

/// CR0 bits.
pub mod cr0 {
    /// Protection enable.
    pub const PE: u64 = 1 << 0;
    /// Extension type: hard-wired to 1 since the i486.
    pub const ET: u64 = 1 << 4;
    /// Not write-through.
    pub const NW: u64 = 1 << 29;
    /// Cache disable.
    pub const CD: u64 = 1 << 30;
    /// Paging.
    pub const PG: u64 = 1 << 31;
    /// Every defined bit: PE MP EM TS ET NE, WP, AM, NW CD PG.
    pub const DEFINED: u64 = 0x3F | 1 << 16 | 1 << 18 | NW | CD | PG;
}

/// CR4 bits used in the combination rules.
pub mod cr4 {
    /// Physical address extension.
    pub const PAE: u64 = 1 << 5;
    /// 5-level paging.
    pub const LA57: u64 = 1 << 12;
    /// Process-context identifiers.
    pub const PCIDE: u64 = 1 << 17;
}

/// RFLAGS.VM (virtual-8086 mode).
const RFLAGS_VM: u64 = 1 << 17;
/// RFLAGS bit 1, which always reads as 1.
const RFLAGS_FIXED1: u64 = 1 << 1;
/// RFLAGS bits that exist: CF, 1, PF, AF, ZF, SF, TF, IF, DF, OF, IOPL,
/// NT, RF, VM, AC, VIF, VIP, ID.
const RFLAGS_DEFINED: u64 = 0x003F_7FD7;

/// Refuses `value & mask` if not zero.
fn reserved(value: u64, mask: u64) -> Result<(), Invalid> {
    match value & mask {
        0 => Ok(()),
        set => Err(Invalid::Reserved(set)),
    }
}

/// Whether `address` is canonical for `bits` of linear address (48 or 57).
pub fn is_canonical(address: u64, bits: u32) -> bool {
    let shift = 64 - bits;
    ((address << shift) as i64 >> shift) as u64 == address
}

/// A linear address register (segment and table bases, KernelGsBase,
/// LSTAR, CSTAR, SYSENTER_EIP/ESP): canonical for `bits` (48, or 57 with
/// CR4.LA57).
pub fn canonical(address: u64, bits: u32) -> Result<(), Invalid> {
    if is_canonical(address, bits) {
        Ok(())
    } else {
        Err(Invalid::NonCanonical(address))
    }
}

/// The base of CS, SS, DS or ES: 32 bits (long mode ignores it, and no
/// other mode can hold more).
pub fn base32(address: u64) -> Result<(), Invalid> {
    if address >> 32 == 0 {
        Ok(())
    } else {
        Err(Invalid::NonCanonical(address))
    }
}

/// CR0: only defined bits, ET set, PG only with PE, NW only with CD.
pub fn cr0(value: u64) -> Result<(), Invalid> {
    reserved(value, !cr0::DEFINED)?;
    if value & cr0::ET == 0 {
        return Err(Invalid::Combination("CR0.ET is fixed to 1"));
    }
    if value & cr0::PG != 0 && value & cr0::PE == 0 {
        return Err(Invalid::Combination("CR0.PG without CR0.PE"));
    }
    if value & cr0::NW != 0 && value & cr0::CD == 0 {
        return Err(Invalid::Combination("CR0.NW without CR0.CD"));
    }
    Ok(())
}

/// CR3: no bit at or above the physical address width.
pub fn cr3(value: u64, f: &CpuFeatures) -> Result<(), Invalid> {
    reserved(value, f.above_phys())
}

/// CR4: only the bits of features the guest's CPUID advertises.
pub fn cr4(value: u64, f: &CpuFeatures) -> Result<(), Invalid> {
    reserved(value, !f.cr4)
}

/// EFER: only the bits of features the guest's CPUID advertises
/// (LMSLE never).
pub fn efer(value: u64, f: &CpuFeatures) -> Result<(), Invalid> {
    reserved(value, !f.efer)
}

/// CR0, CR4 and EFER together, after a write to one of them: EFER.LMA is
/// EFER.LME and CR0.PG; long mode needs CR4.PAE; CR4.PCIDE only in long
/// mode.
pub fn control_state(cr0: u64, cr4: u64, efer: u64) -> Result<(), Invalid> {
    let long = efer & efer::LME != 0 && cr0 & cr0::PG != 0;
    if (efer & efer::LMA != 0) != long {
        return Err(Invalid::Combination("EFER.LMA must be EFER.LME and CR0.PG"));
    }
    if long && cr4 & cr4::PAE == 0 {
        return Err(Invalid::Combination("long mode without CR4.PAE"));
    }
    if !long && cr4 & cr4::PCIDE != 0 {
        return Err(Invalid::Combination("CR4.PCIDE outside long mode"));
    }
    Ok(())
}

/// The width of a linear address with this CR4 (57 with LA57 set).
pub fn linear_bits(cr4: u64) -> u32 {
    if cr4 & cr4::LA57 != 0 {
        57
    } else {
        48
    }
}

/// IA32_APIC_BASE: bits 0–7, 9 and those at or above the physical
/// address width reserved; EXTD (x2APIC) only if advertised and only with
/// EN; no direct step from x2APIC mode to xAPIC mode (from `old`).
pub fn apic_base(value: u64, old: u64, f: &CpuFeatures) -> Result<(), Invalid> {
    const EXTD: u64 = 1 << 10;
    const EN: u64 = 1 << 11;
    let mut mask = 0x2FF | f.above_phys();
    if !f.x2apic {
        mask |= EXTD;
    }
    reserved(value, mask)?;
    if value & EXTD != 0 && value & EN == 0 {
        return Err(Invalid::Combination(
            "APIC base: x2APIC mode while disabled",
        ));
    }
    if old & (EN | EXTD) == EN | EXTD && value & (EN | EXTD) == EN {
        return Err(Invalid::Combination(
            "APIC base: x2APIC mode straight back to xAPIC mode",
        ));
    }
    Ok(())
}

/// IA32_PAT: each of the eight entries is a memory type 0, 1, 4, 5, 6
/// or 7.
pub fn pat(value: u64) -> Result<(), Invalid> {
    for (entry, kind) in value.to_le_bytes().into_iter().enumerate() {
        if !matches!(kind, 0 | 1 | 4..=7) {
            return Err(Invalid::PatType {
                entry: entry as u8,
                kind,
            });
        }
    }
    Ok(())
}

/// A 32-bit MSR held in 64 bits (TSC_AUX, SFMASK): bits 63:32 reserved.
pub fn low32(value: u64) -> Result<(), Invalid> {
    reserved(value, !0xFFFF_FFFF)
}

/// RFLAGS: bit 1 set, reserved bits (3, 5, 15, 22–63) clear, VM clear in
/// long mode (`long_mode`: EFER.LMA).
pub fn rflags(value: u64, long_mode: bool) -> Result<(), Invalid> {
    reserved(value, !RFLAGS_DEFINED)?;
    if value & RFLAGS_FIXED1 == 0 {
        return Err(Invalid::Combination("RFLAGS bit 1 is fixed to 1"));
    }
    if long_mode && value & RFLAGS_VM != 0 {
        return Err(Invalid::Combination("RFLAGS.VM in long mode"));
    }
    Ok(())
}

/// RIP: canonical in 64-bit mode (`bits` of linear address), else 32 bits.
pub fn rip(value: u64, sixty_four_bit: bool, bits: u32) -> Result<(), Invalid> {
    if sixty_four_bit {
        canonical(value, bits)
    } else {
        base32(value)
    }
}

/// DR6: bits 63:32 reserved (MOV to DR6 raises #GP).
pub fn dr6(value: u64) -> Result<(), Invalid> {
    low32(value)
}

/// DR7: bits 63:32 reserved (MOV to DR7 raises #GP), and bits 12, 14,
/// 15 (and 11 without RTM) reserved as zero.
pub fn dr7(value: u64, f: &CpuFeatures) -> Result<(), Invalid> {
    let mut mask = !0xFFFF_FFFF | 1 << 12 | 1 << 14 | 1 << 15;
    if !f.rtm {
        mask |= 1 << 11;
    }
    reserved(value, mask)
}

/// XCR0: only supported components, x87 always, AVX only with SSE, the
/// three AVX-512 components together and only with AVX, the MPX pair and
/// the AMX pair together (XSETBV's rules).
pub fn xcr0(value: u64, f: &CpuFeatures) -> Result<(), Invalid> {
    const X87: u64 = 1;
    const SSE: u64 = 1 << 1;
    const AVX: u64 = 1 << 2;
    const MPX: u64 = 0b11 << 3;
    const AVX512: u64 = 0b111 << 5;
    const AMX: u64 = 0b11 << 17;
    reserved(value, !f.xcr0)?;
    let all_or_none = |group: u64| value & group == 0 || value & group == group;
    if value & X87 == 0 {
        return Err(Invalid::Combination("XCR0 without x87"));
    }
    if value & AVX != 0 && value & SSE == 0 {
        return Err(Invalid::Combination("XCR0: AVX without SSE"));
    }
    if !all_or_none(AVX512) || (value & AVX512 != 0 && value & AVX == 0) {
        return Err(Invalid::Combination("XCR0: AVX-512 state incomplete"));
    }
    if !all_or_none(MPX) || !all_or_none(AMX) {
        return Err(Invalid::Combination("XCR0: MPX or AMX state incomplete"));
    }
    Ok(())
}

/// MXCSR: bits outside MXCSR_MASK reserved (`mask` 0 means the default
/// 0xFFBF, as FXSAVE reports it on processors without DAZ).
pub fn mxcsr(value: u32, mask: u32) -> Result<(), Invalid> {
    let mask = if mask == 0 { 0xFFBF } else { mask };
    reserved(u64::from(value), u64::from(!mask))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    /// A CPUID table with SYSCALL, NX, LM, x2APIC, FXSR/SSE, PAE, PGE,
    /// UMIP, no SVM, 48-bit physical addresses, XCR0 x87|SSE|AVX.
    fn features() -> CpuFeatures {
        let e = |function, eax, ebx, ecx, edx| kvm_cpuid_entry2 {
            function,
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        };
        CpuFeatures::from_entries(&[
            e(1, 0, 0, 1 << 21, 0x078B_FBFF),
            e(7, 0, 0, 1 << 2, 0),
            e(0xD, 0x7, 0, 0, 0),
            e(0x8000_0001, 0, 0, 0, 1 << 11 | 1 << 20 | 1 << 29),
            e(0x8000_0008, 0x3030, 0, 0, 0),
        ])
    }

    #[test]
    fn cpuid_table_gives_the_features() {
        let f = features();
        assert_eq!(f.efer, efer::SCE | efer::LME | efer::LMA | efer::NXE);
        assert_eq!(f.phys_bits, 48);
        assert!(f.x2apic && !f.rtm);
        assert_ne!(f.cr4 & cr4::PAE, 0);
        assert_ne!(f.cr4 & 1 << 11, 0, "UMIP");
        assert_eq!(f.cr4 & (1 << 13 | 1 << 16 | 1 << 17 | 1 << 18), 0);
        let none = CpuFeatures::default();
        assert_eq!((none.efer, none.cr4, none.phys_bits), (0, 1 << 8, 36));
    }

    #[test]
    fn canonical_boundary_48_and_57() {
        for ok in [0, 0x0000_7FFF_FFFF_FFFF, 0xFFFF_8000_0000_0000, !0] {
            assert_eq!(canonical(ok, 48), Ok(()), "{ok:#x}");
        }
        for bad in [0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_FFFF, 1 << 63] {
            assert_eq!(canonical(bad, 48), Err(Invalid::NonCanonical(bad)));
        }
        assert!(is_canonical(0x00FF_FFFF_FFFF_FFFF, 57));
        assert!(!is_canonical(0x0100_0000_0000_0000, 57));
        assert_eq!(linear_bits(cr4::LA57), 57);
        assert_eq!(linear_bits(cr4::PAE), 48);
        assert_eq!(base32(0xFFFF_FFFF), Ok(()));
        assert!(base32(1 << 32).is_err());
    }

    #[test]
    fn efer_refuses_all_ones_each_reserved_bit_and_missing_features() {
        let f = features();
        assert_eq!(efer(0xD01, &f), Ok(()));
        assert!(efer(!0, &f).is_err());
        for b in 0..64 {
            let v = 1u64 << b;
            let defined = [0, 8, 10, 11].contains(&b);
            assert_eq!(efer(v, &f).is_ok(), defined, "bit {b}");
        }
        assert_eq!(efer(efer::SVME, &f), Err(Invalid::Reserved(efer::SVME)));
        let mut svm = f;
        svm.efer |= efer::SVME;
        assert_eq!(efer(efer::SVME, &svm), Ok(()));
        assert!(efer(efer::NXE, &CpuFeatures::default()).is_err());
    }

    #[test]
    fn cr0_reserved_fixed_and_combinations() {
        assert_eq!(cr0(0x8000_0031), Ok(()));
        assert_eq!(cr0(0x8005_003B | cr0::CD | cr0::NW), Ok(()));
        for b in (6..16).chain([17]).chain(19..29).chain(32..64) {
            assert!(cr0(0x8000_0031 | 1 << b).is_err(), "bit {b}");
        }
        assert!(cr0(0x8000_0021).is_err(), "ET clear");
        assert!(cr0(cr0::PG | cr0::ET).is_err(), "PG without PE");
        assert!(cr0(cr0::NW | cr0::ET | cr0::PE).is_err(), "NW without CD");
    }

    #[test]
    fn cr3_cr4_and_the_control_state() {
        let f = features();
        assert_eq!(cr3(0x0000_FFFF_FFFF_F000, &f), Ok(()));
        assert!(cr3(1 << 48, &f).is_err());
        assert!(cr3(1 << 63, &f).is_err());
        assert_eq!(cr4(0x620 | 1 << 11, &f), Ok(()));
        for b in [12, 13, 14, 15, 16, 17, 18, 20, 21, 22, 26, 32, 63] {
            assert!(cr4(0x620 | 1 << b, &f).is_err(), "bit {b}");
        }
        let long = (0x8000_0031, 0x620, efer::LME | efer::LMA);
        assert_eq!(control_state(long.0, long.1, long.2), Ok(()));
        assert!(control_state(long.0, long.1, efer::LME).is_err(), "LMA");
        assert!(control_state(0x31, long.1, long.2).is_err(), "LMA, no PG");
        assert!(control_state(long.0, 0x600, long.2).is_err(), "no PAE");
        assert!(control_state(0x31, cr4::PCIDE, 0).is_err(), "PCIDE");
        assert_eq!(control_state(0x11, 0, 0), Ok(()), "protected mode");
    }

    #[test]
    fn pat_entries_must_be_memory_types() {
        assert_eq!(pat(0x0007_0406_0007_0406), Ok(()));
        assert_eq!(pat(0x0706_0504_0100_0100), Ok(()));
        assert_eq!(
            pat(!0),
            Err(Invalid::PatType {
                entry: 0,
                kind: 0xFF
            })
        );
        for kind in [2u64, 3, 8, 0x10, 0x80] {
            for entry in 0..8 {
                assert_eq!(
                    pat(kind << (8 * entry)),
                    Err(Invalid::PatType {
                        entry: entry as u8,
                        kind: kind as u8
                    })
                );
            }
        }
    }

    #[test]
    fn apic_base_bits_and_modes() {
        let f = features();
        assert_eq!(apic_base(0xFEE0_0900, 0xFEE0_0900, &f), Ok(()));
        assert_eq!(apic_base(0xFEE0_0D00, 0xFEE0_0900, &f), Ok(()), "x2APIC");
        assert_eq!(apic_base(0xFEE0_0000, 0xFEE0_0D00, &f), Ok(()), "off");
        for b in (0..8).chain([9]).chain(48..64) {
            assert!(apic_base(0xFEE0_0900 | 1 << b, 0, &f).is_err(), "bit {b}");
        }
        assert!(apic_base(0xFEE0_0400, 0, &f).is_err(), "EXTD without EN");
        assert!(apic_base(0xFEE0_0900, 0xFEE0_0D00, &f).is_err(), "x2 to x");
        let no_x2 = CpuFeatures { x2apic: false, ..f };
        assert!(apic_base(0xFEE0_0D00, 0, &no_x2).is_err());
    }

    #[test]
    fn thirty_two_bit_msrs_and_debug_registers() {
        let f = features();
        assert_eq!(low32(0xFFFF_FFFF), Ok(()));
        assert_eq!(low32(!0), Err(Invalid::Reserved(!0xFFFF_FFFF)));
        assert_eq!(dr6(0xFFFF_0FF0), Ok(()));
        assert!(dr6(1 << 32).is_err());
        assert_eq!(dr7(0x400 | 0xFF | 1 << 13 | 0xFFFF_0000, &f), Ok(()));
        for b in [11, 12, 14, 15, 32, 63] {
            assert!(dr7(1 << b, &f).is_err(), "bit {b}");
        }
        assert_eq!(dr7(1 << 11, &CpuFeatures { rtm: true, ..f }), Ok(()));
    }

    #[test]
    fn rflags_and_rip() {
        assert_eq!(rflags(0x2, true), Ok(()));
        assert_eq!(rflags(0x003F_7FD7 & !RFLAGS_VM, true), Ok(()));
        assert_eq!(rflags(0x2 | RFLAGS_VM, false), Ok(()));
        assert!(rflags(0x2 | RFLAGS_VM, true).is_err());
        assert!(rflags(0, true).is_err(), "bit 1");
        for b in [3, 5, 15, 22, 63] {
            assert!(rflags(0x2 | 1 << b, true).is_err(), "bit {b}");
        }
        assert_eq!(rip(0xFFFF_8000_0000_0000, true, 48), Ok(()));
        assert!(rip(0x0000_8000_0000_0000, true, 48).is_err());
        assert!(rip(0x1_0000_0000, false, 48).is_err());
    }

    #[test]
    fn xcr0_components() {
        let f = CpuFeatures {
            xcr0: 0xE7,
            ..features()
        };
        for ok in [1, 3, 7, 0xE7] {
            assert_eq!(xcr0(ok, &f), Ok(()), "{ok:#x}");
        }
        for bad in [0, 2, 5, 0x27, 0xE3, 0x18, !0] {
            assert!(xcr0(bad, &f).is_err(), "{bad:#x}");
        }
    }

    #[test]
    fn mxcsr_mask() {
        assert_eq!(mxcsr(0x1F80, 0xFFFF), Ok(()));
        assert_eq!(mxcsr(0xFFFF, 0xFFFF), Ok(()));
        assert!(mxcsr(0x1F80 | 1 << 6, 0xFFBF).is_err(), "DAZ without it");
        assert!(mxcsr(1 << 6, 0).is_err(), "default mask");
        assert!(mxcsr(1 << 16, 0xFFFF).is_err());
    }
}
