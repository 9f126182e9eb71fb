//! Builds the freestanding guests (the `guests/` workspace) for
//! `x86_64-unknown-none` and hands their ELF paths to the crate
//! (`HVCALL_GUEST_<NAME>`), which embeds them with `include_bytes!`.
//!
//! The guests build with the same cargo, in a target directory of their own
//! under `OUT_DIR` (so the host build's lock is not contended), with the
//! host build's flags and wrappers removed from the environment.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-none";
/// Every guest to embed.
const GUESTS: [&str; 11] = [
    "demo",
    "conformance",
    "torn",
    "tornwrite",
    "spin",
    "mutual",
    "groups",
    "vmcall",
    "chaos",
    "soak",
    "bench",
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("../..");
    let guests = root.join("guests");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    rerun_if_changed(&guests, &root);
    ensure_target();

    let target_dir = out_dir.join("guests");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(guests.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (key, _) in env::vars_os() {
        if inherited_build_setting(&key.to_string_lossy()) {
            cmd.env_remove(&key);
        }
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run cargo to build the guests: {e}"));
    if !output.status.success() {
        panic!(
            "building the guests (cargo build --release --target {TARGET} --manifest-path {}) failed:\n{}",
            guests.join("Cargo.toml").display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let bin_dir = target_dir.join(TARGET).join("release");
    for guest in GUESTS {
        let elf = bin_dir.join(guest);
        assert!(
            elf.is_file(),
            "guest ELF {} missing after the build",
            elf.display()
        );
        println!(
            "cargo:rustc-env=HVCALL_GUEST_{}={}",
            guest.to_uppercase(),
            elf.display()
        );
    }
}

/// Whether an environment variable set for this build script would leak
/// the host build's settings (target, flags, profile, wrappers, package
/// metadata) into the nested guest build. Registry, network and home
/// settings, the jobserver and `RUSTC` are kept.
fn inherited_build_setting(key: &str) -> bool {
    const KEEP: [&str; 6] = [
        "CARGO_HOME",
        "CARGO_MAKEFLAGS",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
    ];
    const DROP: [&str; 12] = [
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "OPT_LEVEL",
        "PROFILE",
        "DEBUG",
        "NUM_JOBS",
        "RUSTC_LINKER",
    ];
    if key == "CARGO" {
        return false;
    }
    if key.starts_with("CARGO") {
        return !KEEP.iter().any(|k| key.starts_with(k));
    }
    DROP.contains(&key) || key.starts_with("__CARGO")
}

/// Installs the guest target with rustup when the toolchain lacks it.
fn ensure_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = &sysroot {
        if sysroot.join("lib/rustlib").join(TARGET).is_dir() {
            return;
        }
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "the guests need the {TARGET} target, which this toolchain lacks, and \
             `rustup target add {TARGET}` failed ({other:?}); install the target and rebuild"
        ),
    }
}

/// Rebuild when a guest, the guest library or the ABI crate changes. The
/// guest members are listed one by one so `guests/target` (from building
/// by hand) is not scanned.
fn rerun_if_changed(guests: &Path, root: &Path) {
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", guests.join(file).display());
    }
    for member in ["link", "rt"].into_iter().chain(GUESTS) {
        println!("cargo:rerun-if-changed={}", guests.join(member).display());
    }
    for krate in ["hvcall-guest", "hvcall-abi"] {
        println!(
            "cargo:rerun-if-changed={}",
            root.join("crates").join(krate).display()
        );
    }
}
