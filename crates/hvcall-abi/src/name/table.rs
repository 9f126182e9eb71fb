//! The register-name tables and their lookups: by TLFS name, by short name
//! and by number, each for one [`Arch`].

use super::{arm64, common, x64, Arch, HvRegisterName};

/// One register name of the TLFS (HV_REGISTER_NAME).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegisterEntry {
    /// The TLFS name, e.g. `HvX64RegisterRip`, `HvArm64RegisterX0`,
    /// `HvRegisterVpIndex`.
    pub name: &'static str,
    /// A lowercase short name, unique per architecture, e.g. `rip`, `x0`,
    /// `vp_index`: the TLFS name without its `Hv…Register` prefix, in
    /// snake case.
    pub short: &'static str,
    /// The 32-bit register name.
    pub number: HvRegisterName,
    /// The architecture the name belongs to; `None` for a name common to
    /// both.
    pub arch: Option<Arch>,
}

impl RegisterEntry {
    /// Whether this name exists on `arch`.
    pub const fn applies_to(&self, arch: Arch) -> bool {
        match self.arch {
            None => true,
            Some(a) => a as u8 == arch as u8,
        }
    }
}

/// An alternative spelling accepted by [`by_tlfs_name`] and
/// [`by_short_name`] (names that changed between TLFS
/// editions, and the ARM64 aliases X29/X30/CPSR).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// The architecture the alias belongs to; `None` for both.
    pub arch: Option<Arch>,
    /// The alternative TLFS or short name.
    pub alias: &'static str,
    /// The register it stands for.
    pub number: HvRegisterName,
}

const fn alias(arch: Option<Arch>, alias: &'static str, number: HvRegisterName) -> Alias {
    Alias {
        arch,
        alias,
        number,
    }
}

/// Every accepted alternative name.
pub const ALIASES: &[Alias] = &[
    alias(
        Some(Arch::X64),
        "HvX64RegisterSysenterRip",
        x64::SYSENTER_EIP,
    ),
    alias(
        Some(Arch::X64),
        "HvX64RegisterSysenterRsp",
        x64::SYSENTER_ESP,
    ),
    alias(Some(Arch::X64), "sysenter_rip", x64::SYSENTER_EIP),
    alias(Some(Arch::X64), "sysenter_rsp", x64::SYSENTER_ESP),
    alias(Some(Arch::X64), "HvX64RegisterEoi", x64::SYNTHETIC_EOI),
    alias(Some(Arch::X64), "HvX64RegisterIcr", x64::SYNTHETIC_ICR),
    alias(Some(Arch::X64), "HvX64RegisterTpr", x64::SYNTHETIC_TPR),
    alias(
        Some(Arch::X64),
        "HvX64RegisterVpRuntime",
        common::VP_RUNTIME,
    ),
    alias(
        None,
        "HvRegisterSvmFeaturesInfo",
        common::PASID_FEATURES_INFO,
    ),
    alias(None, "svm_features_info", common::PASID_FEATURES_INFO),
    alias(Some(Arch::Arm64), "HvArm64RegisterCpsr", arm64::PSTATE),
    alias(Some(Arch::Arm64), "cpsr", arm64::PSTATE),
    alias(Some(Arch::Arm64), "HvArm64RegisterX29", arm64::FP),
    alias(Some(Arch::Arm64), "x29", arm64::FP),
    alias(Some(Arch::Arm64), "HvArm64RegisterX30", arm64::LR),
    alias(Some(Arch::Arm64), "x30", arm64::LR),
];

/// The tables holding the names of `arch` (each ascending by number).
fn tables(arch: Arch) -> [&'static [RegisterEntry]; 3] {
    match arch {
        Arch::X64 => [x64::X64, x64::msr::X64_MSR, common::COMMON],
        Arch::Arm64 => [arm64::ARM64, arm64::system::ARM64_SYSTEM, common::COMMON],
    }
}

/// Every register name of `arch`: its own names, then the common ones.
///
/// ```
/// use hvcall_abi::name::{entries, Arch};
/// assert!(entries(Arch::X64).any(|e| e.name == "HvX64RegisterRip"));
/// assert!(entries(Arch::Arm64).any(|e| e.name == "HvRegisterVpIndex"));
/// assert!(!entries(Arch::Arm64).any(|e| e.name == "HvX64RegisterRip"));
/// ```
pub fn entries(arch: Arch) -> impl Iterator<Item = &'static RegisterEntry> + Clone {
    tables(arch).into_iter().flatten()
}

fn alias_number(arch: Arch, text: &str) -> Option<HvRegisterName> {
    ALIASES
        .iter()
        .find(|a| a.arch.is_none_or(|x| x == arch) && a.alias.eq_ignore_ascii_case(text))
        .map(|a| a.number)
}

/// The entry with the TLFS name `name` on `arch` (ASCII case-insensitive;
/// the alternative names of [`ALIASES`] are accepted).
pub fn by_tlfs_name(arch: Arch, name: &str) -> Option<&'static RegisterEntry> {
    entries(arch)
        .find(|e| e.name.eq_ignore_ascii_case(name))
        .or_else(|| by_number(arch, alias_number(arch, name)?))
}

/// The entry with the short name `short` on `arch` (ASCII case-insensitive;
/// the alternative names of [`ALIASES`] are accepted).
pub fn by_short_name(arch: Arch, short: &str) -> Option<&'static RegisterEntry> {
    entries(arch)
        .find(|e| e.short.eq_ignore_ascii_case(short))
        .or_else(|| by_number(arch, alias_number(arch, short)?))
}

/// The entry of `number` on `arch` (binary search in each table).
pub fn by_number(arch: Arch, number: HvRegisterName) -> Option<&'static RegisterEntry> {
    tables(arch).into_iter().find_map(|t| {
        t.binary_search_by_key(&number, |e| e.number)
            .ok()
            .and_then(|i| t.get(i))
    })
}

/// Looks `text` up as a TLFS name, a short name, or a number (`0x` hex or
/// decimal), in that order.
///
/// ```
/// use hvcall_abi::name::{lookup, x64, Arch};
/// assert_eq!(lookup(Arch::X64, "0x20010").unwrap().number, x64::RIP);
/// assert_eq!(lookup(Arch::X64, "rflags").unwrap().number, x64::RFLAGS);
/// assert!(lookup(Arch::X64, "0x12345678").is_none());
/// ```
pub fn lookup(arch: Arch, text: &str) -> Option<&'static RegisterEntry> {
    by_tlfs_name(arch, text)
        .or_else(|| by_short_name(arch, text))
        .or_else(|| by_number(arch, HvRegisterName(parse_number(text)?)))
}

fn parse_number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_table_is_strictly_ascending_so_binary_search_works() {
        for arch in Arch::ALL {
            for table in tables(arch) {
                for w in table.windows(2) {
                    assert!(w[0].number < w[1].number, "{:?} then {:?}", w[0], w[1]);
                }
            }
        }
    }

    #[test]
    fn parse_number_accepts_hex_and_decimal_only() {
        assert_eq!(parse_number("0x20010"), Some(0x20010));
        assert_eq!(parse_number("0X1f"), Some(0x1F));
        assert_eq!(parse_number("131088"), Some(131_088));
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number("0x1_0000_0000"), None);
        assert_eq!(parse_number("4294967296"), None);
        assert_eq!(parse_number("-1"), None);
    }

    #[test]
    fn applies_to_follows_the_arch_field() {
        let e = |arch| RegisterEntry {
            name: "",
            short: "",
            number: HvRegisterName(0),
            arch,
        };
        assert!(e(None).applies_to(Arch::X64) && e(None).applies_to(Arch::Arm64));
        assert!(e(Some(Arch::X64)).applies_to(Arch::X64));
        assert!(!e(Some(Arch::X64)).applies_to(Arch::Arm64));
        assert!(!e(Some(Arch::Arm64)).applies_to(Arch::X64));
    }
}
