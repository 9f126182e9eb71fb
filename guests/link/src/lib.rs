//! Build-script helper shared by every guest: links the guest as a static,
//! non-PIE ELF at the fixed address of `link.ld` (the target's default
//! static PIE would need relocations nobody applies).
//!
//! `.cargo/config.toml` is not read when the guests are built from another
//! directory, so the flags come from each guest's `build.rs`, which calls
//! [`configure`] from its `main`.

use std::path::Path;

/// Emits the linker arguments and rerun triggers for the calling guest.
pub fn configure() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("link.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg=-T{}", script.display());
    println!("cargo:rustc-link-arg=--no-pie");
    println!("cargo:rustc-link-arg=-static");
    println!("cargo:rustc-link-arg=--no-dynamic-linker");
}
