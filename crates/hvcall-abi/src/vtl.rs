//! Virtual Trust Levels: a validated VTL number ([`Vtl`]), a set of VTLs
//! ([`VtlSet`], the layout of the VSM status registers' EnabledVtlSet), a
//! value per VTL ([`PerVtl`]), and which registers every VTL of a VP
//! shares and which each VTL has its own copy of ([`is_shared`]).
//!
//! ```
//! use hvcall_abi::vtl::{PerVtl, Vtl, VtlSet};
//! let vtl1 = Vtl::new(1).unwrap();
//! assert!(Vtl::new(16).is_none());
//! let enabled = VtlSet::only(Vtl::VTL0).with(vtl1);
//! assert_eq!(enabled.bits(), 0b11);
//! assert_eq!(enabled.highest(), Some(vtl1));
//! let mut banks = PerVtl::new([0u32; 3]);
//! *banks.get_mut(vtl1).unwrap() = 5;
//! assert_eq!(banks.get(vtl1), Some(&5));
//! assert_eq!(banks.get(Vtl::new(3).unwrap()), None);
//! ```

use crate::name::{arm64, x64, Arch};
use crate::HvRegisterName;

/// A VTL: 0 to 15 (HV_VTL; the input header's target VTL field has four
/// bits). A higher VTL is more privileged.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vtl(u8);

/// A number that is not a VTL (above 15).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InvalidVtl(pub u8);

impl core::fmt::Display for InvalidVtl {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} is not a VTL (0 to 15)", self.0)
    }
}

impl Vtl {
    /// VTL 0, where an ordinary guest OS runs.
    pub const VTL0: Vtl = Vtl(0);
    /// VTL 1 (a secure kernel).
    pub const VTL1: Vtl = Vtl(1);
    /// VTL 2 (a paravisor).
    pub const VTL2: Vtl = Vtl(2);
    /// The architectural maximum.
    pub const MAX: Vtl = Vtl(15);

    /// `n` as a VTL, if it is one.
    pub const fn new(n: u8) -> Option<Vtl> {
        if n <= Self::MAX.0 {
            Some(Vtl(n))
        } else {
            None
        }
    }

    /// Its number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Vtl {
    type Error = InvalidVtl;

    fn try_from(n: u8) -> Result<Self, Self::Error> {
        Vtl::new(n).ok_or(InvalidVtl(n))
    }
}

impl From<Vtl> for u8 {
    fn from(vtl: Vtl) -> u8 {
        vtl.0
    }
}

/// A set of VTLs: bit n for VTL n, as EnabledVtlSet in
/// HvRegisterVsmVpStatus and HvRegisterVsmPartitionStatus.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VtlSet(u16);

impl VtlSet {
    /// No VTL.
    pub const EMPTY: VtlSet = VtlSet(0);

    /// The set with these bits.
    pub const fn from_bits(bits: u16) -> VtlSet {
        VtlSet(bits)
    }

    /// Its bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// `vtl` alone.
    pub const fn only(vtl: Vtl) -> VtlSet {
        VtlSet(1 << vtl.0)
    }

    /// This set and `vtl`.
    pub const fn with(self, vtl: Vtl) -> VtlSet {
        VtlSet(self.0 | 1 << vtl.0)
    }

    /// Whether `vtl` is in the set.
    pub const fn contains(self, vtl: Vtl) -> bool {
        self.0 & 1 << vtl.0 != 0
    }

    /// The highest VTL in the set.
    pub const fn highest(self) -> Option<Vtl> {
        if self.0 == 0 {
            None
        } else {
            Some(Vtl(15 - self.0.leading_zeros() as u8))
        }
    }

    /// The VTLs in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = Vtl> {
        (0..=Vtl::MAX.0).map(Vtl).filter(move |&v| self.contains(v))
    }
}

/// How many VTLs a partition of hvcall can have: VTL 0, 1 and 2 (Hyper-V's
/// own limit today; the architecture allows 16).
pub const SUPPORTED_VTLS: usize = 3;

/// One `T` per VTL a partition can have ([`SUPPORTED_VTLS`]): a register
/// bank, a VP assist page, the state of a rep call. Indexed by [`Vtl`];
/// a VTL beyond them has none.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PerVtl<T>([T; SUPPORTED_VTLS]);

impl<T> PerVtl<T> {
    /// One value per VTL, VTL 0 first.
    pub const fn new(values: [T; SUPPORTED_VTLS]) -> Self {
        Self(values)
    }

    /// The value of `vtl`, if the partition can have it.
    pub fn get(&self, vtl: Vtl) -> Option<&T> {
        self.0.get(usize::from(vtl.0))
    }

    /// The value of `vtl` to change, if the partition can have it.
    pub fn get_mut(&mut self, vtl: Vtl) -> Option<&mut T> {
        self.0.get_mut(usize::from(vtl.0))
    }

    /// Each VTL with its value, VTL 0 first.
    pub fn iter(&self) -> impl Iterator<Item = (Vtl, &T)> {
        self.0.iter().enumerate().map(|(i, v)| (Vtl(i as u8), v))
    }
}

/// Whether register `name` is shared by every VTL of a VP on `arch`
/// (one copy per VP), rather than private to each VTL (one copy per VP
/// and VTL). Names not listed are private (tlfs-digest §9; vsm-digest
/// "private and shared state"; docs/contract.md §5).
///
/// x64 shared: the general registers except RSP, the x87/MMX/XMM state and
/// its control registers, CR2, XCR0 (Xfem), DR0–DR3, the MTRRs, and the
/// synthetic VpRuntime, VpIndex and TimeRefCount. ARM64 shared: X0–X17,
/// X19–X28 and Q0–Q31.
///
/// ```
/// use hvcall_abi::name::{arm64, x64};
/// use hvcall_abi::vtl::is_shared;
/// use hvcall_abi::Arch;
/// assert!(is_shared(Arch::X64, x64::RAX));
/// assert!(!is_shared(Arch::X64, x64::RSP));
/// assert!(!is_shared(Arch::X64, x64::RIP));
/// assert!(!is_shared(Arch::Arm64, arm64::X18));
/// ```
pub fn is_shared(arch: Arch, name: HvRegisterName) -> bool {
    let n = name.0;
    let within = |first: HvRegisterName, last: HvRegisterName| (first.0..=last.0).contains(&n);
    match arch {
        Arch::X64 => {
            (within(x64::RAX, x64::R15) && name != x64::RSP)
                // XMM0–15, FP/MMX 0–7, the FP and XMM control/status.
                || within(x64::XMM0, x64::XMM_CONTROL_STATUS)
                || [x64::CR2, x64::XFEM, x64::VP_RUNTIME, x64::VP_INDEX, x64::TIME_REF_COUNT]
                    .contains(&name)
                || within(x64::DR0, x64::DR3)
                || within(x64::MSR_MTRR_CAP, x64::MSR_MTRR_FIX4KF8000)
        }
        Arch::Arm64 => {
            (within(arm64::X0, arm64::X28) && name != arm64::X18) || within(arm64::Q0, arm64::Q31)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vtls_are_0_to_15() {
        assert_eq!(Vtl::new(15), Some(Vtl::MAX));
        assert_eq!(Vtl::try_from(16), Err(InvalidVtl(16)));
        assert_eq!(u8::from(Vtl::VTL2), 2);
    }

    #[test]
    fn sets_iterate_and_find_the_highest() {
        let s = VtlSet::from_bits(0b1000_0000_0000_0101);
        assert!(s.iter().map(Vtl::get).eq([0, 2, 15]));
        assert_eq!(s.highest(), Some(Vtl::MAX));
        assert_eq!(VtlSet::EMPTY.highest(), None);
        assert!(!s.contains(Vtl::VTL1));
    }

    #[test]
    fn the_shared_table_matches_its_numbers() {
        // The ranges as TLFS numbers, so a wrong constant shows.
        let shared = |n: u32| is_shared(Arch::X64, HvRegisterName(n));
        assert!(shared(0x0002_0000) && shared(0x0002_000F) && !shared(0x0002_0004));
        assert!(shared(0x0003_0000) && shared(0x0003_0019) && !shared(0x0003_001A));
        assert!(shared(0x0004_0001) && shared(0x0004_0005) && !shared(0x0004_0000));
        assert!(shared(0x0005_0003) && !shared(0x0005_0005));
        assert!(shared(0x0008_000D) && shared(0x0008_007A) && !shared(0x0008_007B));
        assert!(shared(0x0009_0000) && shared(0x0009_0003) && shared(0x0009_0004));
        let arm = |n: u32| is_shared(Arch::Arm64, HvRegisterName(n));
        assert!(arm(0x0002_0011) && !arm(0x0002_0012) && arm(0x0002_001C));
        assert!(!arm(0x0002_001D) && arm(0x0003_001F) && !arm(0x0003_0020));
    }
}
