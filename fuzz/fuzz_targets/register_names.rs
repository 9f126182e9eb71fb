//! Fuzz the register-name parser the CLI uses for `--names` (TLFS names,
//! short names, decimal and hex numbers, comma-separated), on both
//! architectures.
//!
//! Asserts: no panic; whatever a name resolves to resolves back from its
//! TLFS name, its short name and its number to the same entry.
#![no_main]

use hvcall_abi::name::{by_number, by_short_name, by_tlfs_name, lookup, Arch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    for arch in Arch::ALL {
        for part in text.split(',') {
            let Some(entry) = lookup(arch, part.trim()) else {
                continue;
            };
            assert!(entry.applies_to(arch));
            assert_eq!(by_tlfs_name(arch, entry.name), Some(entry));
            assert_eq!(by_short_name(arch, entry.short), Some(entry));
            assert_eq!(by_number(arch, entry.number), Some(entry));
        }
    }
});
