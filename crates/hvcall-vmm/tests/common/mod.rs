#![allow(dead_code)] // each test crate uses a part of the helpers
//! Helpers for the KVM tests: the /dev/kvm skip rule and running the
//! hand-written guests of `guests.rs`.

pub mod guests;

use std::time::Duration;

use hvcall_vmm::{loader, Console, Vm, VmConfig, VmExit};

/// Whether KVM tests can run. Without /dev/kvm they are skipped loudly,
/// unless HVCALL_REQUIRE_KVM=1, which makes a missing /dev/kvm a failure.
pub fn kvm_available(test: &str) -> bool {
    if std::path::Path::new("/dev/kvm").exists() {
        return true;
    }
    if std::env::var("HVCALL_REQUIRE_KVM").as_deref() == Ok("1") {
        panic!("{test}: /dev/kvm is missing and HVCALL_REQUIRE_KVM=1");
    }
    eprintln!("SKIP {test}: /dev/kvm is missing");
    false
}

/// A configuration for tests: 1 vCPU, 16 MiB, output collected, 5 s
/// watchdog (a hang fails the test instead of hanging the suite).
pub fn config(cpus: u32) -> VmConfig {
    VmConfig {
        cpus,
        memory_mib: 16,
        watchdog: Duration::from_secs(5),
        console: Console::buffer().0,
        ..Default::default()
    }
}

/// Runs `code` (linked at 0x100000) and returns the VM for inspection.
pub fn run(config: &VmConfig, code: &[u8]) -> (Vm, VmExit) {
    let mut vm = Vm::new(config).expect("VM setup");
    vm.load_elf(&loader::flat_elf(0x10_0000, code, 0))
        .expect("load");
    let exit = vm.run().expect("run");
    (vm, exit)
}

/// Reads a u64 of guest RAM.
pub fn read_u64(vm: &Vm, gpa: u64) -> u64 {
    let mut b = [0u8; 8];
    vm.ram().read(gpa, &mut b).unwrap();
    u64::from_le_bytes(b)
}

/// Reads a u32 of guest RAM.
pub fn read_u32(vm: &Vm, gpa: u64) -> u32 {
    let mut b = [0u8; 4];
    vm.ram().read(gpa, &mut b).unwrap();
    u32::from_le_bytes(b)
}

/// Reads a 16-byte register value of guest RAM.
pub fn read_u128(vm: &Vm, gpa: u64) -> u128 {
    let mut b = [0u8; 16];
    vm.ram().read(gpa, &mut b).unwrap();
    u128::from_le_bytes(b)
}
