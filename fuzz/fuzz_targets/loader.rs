//! Fuzz the kernel-file loaders of `hvcall-vmm` with arbitrary files:
//! image recognition (`KernelKind::of`), the bare-metal ELF loader and the
//! Linux loader (bzImage and vmlinux through linux-loader, the command line,
//! the initrd and the zero page), into small guest RAM.
//!
//! Input: byte 0 picks the RAM size (2..=5 MiB), byte 1 bit 0 asks for an
//! initrd (the file's last 64 bytes); the rest is the kernel file. So seeds
//! are real files with two bytes in front (`seeds/loader`).
//!
//! Asserts: no panic; the bare-metal loader writes nothing below 1 MiB;
//! a loaded image's entry point lies in RAM.
#![no_main]

use hvcall_vmm::linux::{self, KernelKind};
use hvcall_vmm::loader;
use hvcall_vmm::memory::GuestRam;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Some(&size), Some(&flags)) = (data.first(), data.get(1)) else {
        return;
    };
    let kernel = &data[2..];
    let mib = 2 + u64::from(size % 4);
    let initrd = (flags & 1 != 0).then(|| &kernel[kernel.len().saturating_sub(64)..]);
    let kind = KernelKind::of(kernel);

    let ram = GuestRam::new(mib).expect("RAM");
    if let Ok(image) = loader::load_elf(&ram, kernel, ram.size()) {
        assert!(ram.contains(image.entry, 1));
    }
    let mut low = vec![0u8; 0x10_0000];
    ram.read(0, &mut low).expect("read");
    const ZERO: [u8; 4096] = [0; 4096];
    assert!(
        low.chunks(4096).all(|page| page == ZERO),
        "the ELF loader wrote below 1 MiB"
    );

    let ram = GuestRam::new(mib).expect("RAM");
    if linux::load(&ram, kernel, "console=ttyS0 panic=-1", initrd).is_ok() {
        assert!(kind.is_linux());
    }
});
