//! Cross-check of our register names and status codes against a second,
//! independent source: the `mshv-bindings` crate (bindgen output of the Linux
//! MSHV headers).
//!
//! - x64 register names and statuses: the crate's compiled constants.
//! - ARM64 register names: the crate only compiles its ARM64 bindings on
//!   aarch64, so their text is parsed from the crate's source in the cargo
//!   registry; the x86_64 text next to it is first checked against the
//!   compiled constants, proving it is the same crate version.
//!
//! Names are compared after removing underscores and case, so
//! `HV_X64_REGISTER_RIP` matches `HvX64RegisterRip`. A test fails if a number
//! drifts, if an mshv number we define carries another register's name, or
//! if the overlap shrinks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hvcall_abi::name::{self, Arch, HvRegisterName};
use hvcall_abi::HvStatus;

macro_rules! consts {
    ($($c:ident),* $(,)?) => {
        &[$((stringify!($c), mshv_bindings::$c)),*]
    };
}

#[path = "mshv/x64_consts.rs"]
mod x64_consts;

const PREFIX: &str = "hv_register_name_";

/// mshv names that spell a register differently from our tables, mapped to
/// our TLFS name (same number).
const RENAMES: &[(&str, &str)] = &[
    ("HV_REGISTER_SIEFP", "HvRegisterSifp"),
    ("HV_REGISTER_SIMP", "HvRegisterSipp"),
    ("HV_X64_REGISTER_U_XSS", "HvX64RegisterXss"),
    ("HV_X64_REGISTER_REG_PAGE", "HvX64RegisterRegisterPage"),
    ("HV_X64_REGISTER_AVAILABLE0008007E", "HvX64RegisterMCount"),
    ("HV_X64_REGISTER_AVAILABLE0008007F", "HvX64RegisterACount"),
    (
        "HV_X64_REGISTER_DELIVERABILITY_NOTIFICATIONS",
        "HvRegisterDeliverabilityNotifications",
    ),
];

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Our names of `arch` (TLFS names and TLFS aliases), normalized, to numbers.
fn our_names(arch: Arch) -> BTreeMap<String, HvRegisterName> {
    let mut map: BTreeMap<String, HvRegisterName> = name::entries(arch)
        .map(|e| (normalize(e.name), e.number))
        .collect();
    for a in name::ALIASES {
        if a.arch.is_none_or(|x| x == arch) && a.alias.starts_with("Hv") {
            map.insert(normalize(a.alias), a.number);
        }
    }
    map
}

/// The TLFS name an mshv constant name stands for, normalized.
fn mshv_to_ours(mshv: &str) -> String {
    RENAMES
        .iter()
        .find(|(m, _)| *m == mshv)
        .map_or_else(|| normalize(mshv), |(_, ours)| normalize(ours))
}

/// Compares one architecture; returns the number of mshv names matched.
fn compare(arch: Arch, mshv: &[(String, u32)]) -> usize {
    let ours = our_names(arch);
    let mut matched = 0;
    let mut errors = Vec::new();
    let mut missing = Vec::new();
    for (mshv_name, value) in mshv {
        let key = mshv_to_ours(mshv_name);
        match ours.get(&key) {
            Some(n) if n.0 == *value => matched += 1,
            Some(n) => errors.push(format!(
                "{arch}: {mshv_name} = {value:#x} but ours is {:#x}",
                n.0
            )),
            None => match name::by_number(arch, HvRegisterName(*value)) {
                Some(e) => errors.push(format!(
                    "{arch}: mshv {mshv_name} = {value:#x}, but our {value:#x} is {}",
                    e.name
                )),
                None => missing.push(format!("{mshv_name} ({value:#x})")),
            },
        }
    }
    eprintln!(
        "{arch}: {matched} of {} mshv names match; {} are not in our tables",
        mshv.len(),
        missing.len()
    );
    if missing.len() <= 20 {
        eprintln!("{arch}: not in our tables: {}", missing.join(", "));
    }
    assert!(errors.is_empty(), "mismatches:\n{}", errors.join("\n"));
    matched
}

fn compiled_x64_names() -> Vec<(String, u32)> {
    x64_consts::REGISTER_NAMES
        .iter()
        .map(|(n, v)| (n.strip_prefix(PREFIX).unwrap_or(n).to_string(), *v))
        .collect()
}

#[test]
fn x64_register_names_match_mshv_bindings() {
    let mshv = compiled_x64_names();
    assert_eq!(mshv.len(), 340, "mshv-bindings changed; review the list");
    let matched = compare(Arch::X64, &mshv);
    assert!(matched >= 339, "only {matched} x64 names overlap");
}

/// Parses `pub const hv_register_name_X: hv_register_name = N;` items
/// (the value may be on the next line).
fn parse_bindings(text: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for item in text.split(';') {
        let Some((_, rest)) = item.split_once("pub const hv_register_name_") else {
            continue;
        };
        let Some((name, value)) = rest.split_once(": hv_register_name =") else {
            continue;
        };
        let value: u32 = value.trim().parse().expect("decimal register number");
        out.push((name.to_string(), value));
    }
    out
}

fn registry_dirs() -> Vec<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let Ok(indexes) = std::fs::read_dir(home.join("registry/src")) else {
        return Vec::new();
    };
    let mut dirs = Vec::new();
    for index in indexes.flatten() {
        for krate in std::fs::read_dir(index.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if krate
                .file_name()
                .to_string_lossy()
                .starts_with("mshv-bindings-")
            {
                dirs.push(krate.path());
            }
        }
    }
    dirs
}

/// The source directory of the `mshv-bindings` we compiled against: the one
/// whose x86_64 text has exactly the compiled x64 constants.
fn mshv_source_dir() -> PathBuf {
    let compiled = compiled_x64_names();
    let dirs = registry_dirs();
    dirs.iter()
        .find(|d| {
            std::fs::read_to_string(d.join("src/x86_64/bindings.rs"))
                .is_ok_and(|t| parse_bindings(&t) == compiled)
        })
        .cloned()
        .unwrap_or_else(|| {
            panic!("no mshv-bindings source matching the compiled crate among {dirs:?}")
        })
}

#[test]
fn arm64_register_names_match_mshv_bindings() {
    let dir = mshv_source_dir();
    let text = std::fs::read_to_string(dir.join("src/arm64/bindings.rs")).expect("arm64 bindings");
    let mshv = parse_bindings(&text);
    assert!(mshv.len() > 700, "parsed only {} ARM64 names", mshv.len());
    let matched = compare(Arch::Arm64, &mshv);
    assert!(matched >= 555, "only {matched} ARM64 names overlap");
}

#[test]
fn statuses_match_mshv_bindings() {
    let ours: BTreeMap<String, u16> = HvStatus::ALL
        .iter()
        .map(|(n, s)| (format!("HV_STATUS_{n}"), s.0))
        .collect();
    assert_eq!(x64_consts::STATUSES.len(), 27, "mshv-bindings changed");
    for (name, value) in x64_consts::STATUSES {
        assert_eq!(
            ours.get(*name).map(|v| u32::from(*v)),
            Some(*value),
            "{name} = {value:#x}"
        );
        assert_eq!(
            HvStatus(*value as u16).to_string(),
            format!("{name} ({value:#06x})")
        );
    }
}

#[test]
fn name_normalization_is_what_the_comparison_relies_on() {
    assert_eq!(
        normalize("HV_X64_REGISTER_MSR_MTRR_FIX16KA0000"),
        normalize("HvX64RegisterMsrMtrrFix16kA0000")
    );
    assert_ne!(
        normalize("HV_X64_REGISTER_RIP"),
        normalize("HvX64RegisterRsp")
    );
    assert_eq!(
        mshv_to_ours("HV_REGISTER_SIEFP"),
        normalize("HvRegisterSifp")
    );
}
