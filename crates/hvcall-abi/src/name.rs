//! HV_REGISTER_NAME: register names per architecture (TLFS
//! HV_REGISTER_NAME).
//!
//! The same number can name different registers on x64 and ARM64 (0x00020000
//! is RAX on x64 and X0 on ARM64), so every lookup takes an [`Arch`].
//!
//! Every name the TLFS publishes is a named constant and an entry of a
//! static table:
//! - [`common`]: synthetic names that exist on both architectures;
//! - [`x64`]: x64 architectural names plus the synthetic names that exist
//!   on x64 only (its `msr` part holds
//!   the MSR-backed names 0x0008xxxx);
//! - [`arm64`]: ARM64 architectural names plus the synthetic names that
//!   exist on ARM64 only.
//!
//! [`x64`] and [`arm64`] re-export the [`common`] constants, so
//! `name::x64::VP_INDEX` and `name::common::VP_INDEX` are the same value.
//!
//! ```
//! use hvcall_abi::name::{self, Arch};
//! let rip = name::by_tlfs_name(Arch::X64, "HvX64RegisterRip").unwrap();
//! assert_eq!(rip.number, name::x64::RIP);
//! assert_eq!(name::by_short_name(Arch::X64, "RIP"), Some(rip));
//! assert_eq!(name::by_number(Arch::Arm64, name::x64::RAX).unwrap().short, "x0");
//! ```

#[macro_use]
mod macros;
mod table;

pub mod arm64;
pub mod common;
pub mod x64;

pub use table::{
    by_number, by_short_name, by_tlfs_name, entries, lookup, Alias, RegisterEntry, ALIASES,
};

open_enum! {
    /// A 32-bit register name. Any value is representable; the named values
    /// are in [`x64`], [`arm64`] and [`common`], and [`by_number`] finds the
    /// table entry of a value for one architecture.
    pub struct HvRegisterName(u32) {}
}

/// The architecture a register name belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// x86-64 (and 32-bit x86 callers).
    X64,
    /// ARM64.
    Arm64,
}

impl Arch {
    /// Both architectures, x64 first.
    pub const ALL: [Arch; 2] = [Arch::X64, Arch::Arm64];

    /// The lowercase name used on the command line and in JSON: `x64` or
    /// `arm64`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Arch::X64 => "x64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The architecture named `s` (`x64` or `arm64`, ASCII case-insensitive).
    pub fn parse(s: &str) -> Option<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }
}

impl core::fmt::Display for Arch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HvRegisterName {
    /// The table entry of this name on `arch`, if the TLFS names it.
    pub fn entry(self, arch: Arch) -> Option<&'static RegisterEntry> {
        by_number(arch, self)
    }
}
