//! How a guest gets into RAM and starts: the boot protocol (README, "Boot
//! protocol"; here: the boot structures below 1 MiB and the initial
//! register state of every vCPU), the ELF [`loader`], the Linux boot
//! protocol ([`linux`]) and the [`mptable`] a Linux kernel reads.
//!
//! Layout below 1 MiB (a guest may replace all of it):
//!
//! | GPA | what |
//! |---|---|
//! | `0x1000` | GDT: null, `0x08` 64-bit code, `0x10` flat data, `0x18` 32-bit code, `0x20` 64-bit TSS (16 bytes) |
//! | `0x1100` | the TSS (104 bytes, zeroed) |
//! | `0x2000` | PML4 |
//! | `0x3000` | PDPT |
//! | `0x4000` | page directories, one per GiB of RAM, 2 MiB pages |
//!
//! Every vCPU starts at the ELF entry in 64-bit mode, CPL 0, with
//! CR0 = PE|ET|NE|PG, CR4 = PAE|OSFXSR|OSXMMEXCPT, EFER = LME|LMA|NXE,
//! RFLAGS = 2 (interrupts disabled), RDI = VP index, RSI = VP count and
//! RSP = RAM end − index × 64 KiB.

pub mod linux;
pub mod loader;
pub mod mptable;

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

use crate::memory::{GuestRam, RamError};

/// GPA of the GDT.
pub const GDT_ADDRESS: u64 = 0x1000;
/// GPA of the TSS.
pub const TSS_ADDRESS: u64 = 0x1100;
/// GPA of the PML4 (CR3).
pub const PML4_ADDRESS: u64 = 0x2000;
const PDPT_ADDRESS: u64 = 0x3000;
const PD_ADDRESS: u64 = 0x4000;

/// Selector of the flat 64-bit code segment.
pub const CODE64_SELECTOR: u16 = 0x08;
/// Selector of the flat data segment.
pub const DATA_SELECTOR: u16 = 0x10;
/// Selector of the flat 32-bit code segment (for compatibility-mode code).
pub const CODE32_SELECTOR: u16 = 0x18;
/// Selector of the 64-bit TSS.
pub const TSS_SELECTOR: u16 = 0x20;

/// Size of each vCPU's stack at the top of RAM.
pub const STACK_SIZE: u64 = 64 * 1024;

const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_LARGE: u64 = 1 << 7;

const GIB: u64 = 1 << 30;
const TWO_MIB: u64 = 2 << 20;

/// GDT entries (the TSS descriptor takes two slots).
const GDT: [u64; 6] = [
    0,
    0x00AF_9B00_0000_FFFF, // 0x08: code, L=1, DPL 0
    0x00CF_9300_0000_FFFF, // 0x10: data, D/B=1, G=1
    0x00CF_9B00_0000_FFFF, // 0x18: code, D=1 (32-bit)
    tss_descriptor_low(TSS_ADDRESS, 0x67),
    TSS_ADDRESS >> 32,
];

const fn tss_descriptor_low(base: u64, limit: u64) -> u64 {
    (limit & 0xFFFF)
        | ((base & 0xFF_FFFF) << 16)
        | (0x8B << 40) // present, 64-bit TSS (busy)
        | (((limit >> 16) & 0xF) << 48)
        | (((base >> 24) & 0xFF) << 56)
}

/// Selector of the 64-bit code segment in the Linux boot GDT
/// (`__BOOT_CS` of the x86 64-bit boot protocol).
pub const LINUX_CODE_SELECTOR: u16 = 0x10;
/// Selector of the data segment in the Linux boot GDT (`__BOOT_DS`).
pub const LINUX_DATA_SELECTOR: u16 = 0x18;

/// The GDT a Linux kernel is entered with: the boot protocol wants its code
/// and data descriptors at 0x10 and 0x18 (the TSS keeps its slot).
const LINUX_GDT: [u64; 6] = [0, 0, GDT[1], GDT[2], GDT[4], GDT[5]];

/// Where the boot vCPU's stack starts for a Linux entry (below the zero
/// page; the kernel switches to its own stack at once).
const LINUX_BOOT_STACK: u64 = 0x7000;

/// Writes the GDT, TSS and identity-mapped page tables for all of RAM.
pub fn write_boot_structures(ram: &GuestRam) -> Result<(), RamError> {
    let gdt: Vec<u8> = GDT.iter().flat_map(|e| e.to_le_bytes()).collect();
    ram.write(GDT_ADDRESS, &gdt)?;
    ram.write(TSS_ADDRESS, &[0; 0x68])?;

    let gibs = ram.size().div_ceil(GIB);
    ram.write(
        PML4_ADDRESS,
        &(PDPT_ADDRESS | PTE_PRESENT | PTE_WRITABLE).to_le_bytes(),
    )?;
    for g in 0..gibs {
        let pd = PD_ADDRESS + g * 0x1000;
        ram.write(
            PDPT_ADDRESS + g * 8,
            &(pd | PTE_PRESENT | PTE_WRITABLE).to_le_bytes(),
        )?;
        let first = g * GIB;
        let entries = (ram.size() - first).div_ceil(TWO_MIB).min(512);
        let table: Vec<u8> = (0..entries)
            .flat_map(|i| {
                ((first + i * TWO_MIB) | PTE_PRESENT | PTE_WRITABLE | PTE_LARGE).to_le_bytes()
            })
            .collect();
        ram.write(pd, &table)?;
    }
    Ok(())
}

/// Replaces the GDT with the Linux boot GDT ([`LINUX_CODE_SELECTOR`],
/// [`LINUX_DATA_SELECTOR`]); the page tables stay.
pub fn write_linux_gdt(ram: &GuestRam) -> Result<(), RamError> {
    let gdt: Vec<u8> = LINUX_GDT.iter().flat_map(|e| e.to_le_bytes()).collect();
    ram.write(GDT_ADDRESS, &gdt)
}

/// The system registers of the boot vCPU at a Linux kernel's 64-bit entry:
/// long mode as [`initial_sregs`], with the Linux boot GDT's selectors.
pub fn linux_sregs(base: &kvm_sregs) -> kvm_sregs {
    let data = flat_segment(LINUX_DATA_SELECTOR, false);
    kvm_sregs {
        cs: flat_segment(LINUX_CODE_SELECTOR, true),
        ds: data,
        es: data,
        fs: data,
        gs: data,
        ss: data,
        ..initial_sregs(base)
    }
}

/// The general registers of the boot vCPU at a Linux kernel's 64-bit
/// entry: RIP = `entry`, RSI = the zero page, interrupts disabled.
pub fn linux_regs(entry: u64, boot_params: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rsi: boot_params,
        rsp: LINUX_BOOT_STACK,
        rflags: 2,
        ..Default::default()
    }
}

/// Start of the stack area (the top `cpus × 64 KiB` of RAM); images end
/// below it.
pub fn stacks_start(ram_size: u64, cpus: u32) -> u64 {
    ram_size.saturating_sub(u64::from(cpus) * STACK_SIZE)
}

/// A flat (base 0, 4 GiB, DPL 0) segment of the boot GDT: 64-bit code when
/// `code64`, else read/write data.
pub(crate) fn flat_segment(selector: u16, code64: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector,
        type_: if code64 { 0xB } else { 0x3 },
        present: 1,
        dpl: 0,
        db: u8::from(!code64),
        s: 1,
        l: u8::from(code64),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// The long-mode system registers every vCPU starts with. `base` is the
/// vCPU's current sregs (keeps fields KVM filled, such as the APIC base).
pub fn initial_sregs(base: &kvm_sregs) -> kvm_sregs {
    let data = flat_segment(DATA_SELECTOR, false);
    kvm_sregs {
        cs: flat_segment(CODE64_SELECTOR, true),
        ds: data,
        es: data,
        fs: data,
        gs: data,
        ss: data,
        tr: kvm_segment {
            base: TSS_ADDRESS,
            limit: 0x67,
            selector: TSS_SELECTOR,
            type_: 0xB,
            present: 1,
            ..Default::default()
        },
        ldt: kvm_segment {
            type_: 0x2,
            present: 1,
            unusable: 1,
            ..Default::default()
        },
        gdt: kvm_bindings::kvm_dtable {
            base: GDT_ADDRESS,
            limit: (GDT.len() * 8 - 1) as u16,
            ..Default::default()
        },
        idt: kvm_bindings::kvm_dtable::default(),
        cr0: CR0_PE | CR0_ET | CR0_NE | CR0_PG,
        cr3: PML4_ADDRESS,
        cr4: CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT,
        efer: EFER_LME | EFER_LMA | EFER_NXE,
        ..*base
    }
}

/// The general registers VP `index` of `cpus` starts with.
pub fn initial_regs(entry: u64, index: u32, cpus: u32, ram_size: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rsp: ram_size - u64::from(index) * STACK_SIZE,
        rdi: u64::from(index),
        rsi: u64::from(cpus),
        rflags: 2,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_map_covers_all_ram_with_2mib_pages() {
        let ram = GuestRam::new(1026).unwrap(); // just over 1 GiB
        write_boot_structures(&ram).unwrap();
        let read = |gpa: u64| {
            let mut b = [0u8; 8];
            ram.read(gpa, &mut b).unwrap();
            u64::from_le_bytes(b)
        };
        assert_eq!(read(PML4_ADDRESS) & !0xFFF, PDPT_ADDRESS);
        assert_eq!(read(PDPT_ADDRESS + 8) & !0xFFF, PD_ADDRESS + 0x1000);
        assert_eq!(read(PD_ADDRESS + 8 * 511), (511 * TWO_MIB) | 0x83);
        assert_eq!(read(PD_ADDRESS + 0x1000), GIB | 0x83);
        assert_eq!(read(PD_ADDRESS + 0x1000 + 8), 0, "nothing mapped past RAM");
    }

    #[test]
    fn stacks_and_arguments_follow_the_boot_protocol() {
        let r = initial_regs(0x10_0000, 2, 4, 64 << 20);
        assert_eq!((r.rip, r.rdi, r.rsi, r.rflags), (0x10_0000, 2, 4, 2));
        assert_eq!(r.rsp, (64 << 20) - 2 * 64 * 1024);
        assert_eq!(stacks_start(64 << 20, 4), (64 << 20) - 4 * 64 * 1024);
    }

    #[test]
    fn linux_gdt_has_boot_cs_and_ds_where_the_protocol_says() {
        let ram = GuestRam::new(2).unwrap();
        write_boot_structures(&ram).unwrap();
        write_linux_gdt(&ram).unwrap();
        let mut gdt = [0u8; 48];
        ram.read(GDT_ADDRESS, &mut gdt).unwrap();
        let entry = |sel: u16| {
            let i = usize::from(sel);
            u64::from_le_bytes(gdt[i..i + 8].try_into().unwrap())
        };
        // Code: present, DPL 0, execute/read, L = 1.
        assert_eq!(entry(LINUX_CODE_SELECTOR) >> 40 & 0xFF, 0x9B);
        assert_eq!(entry(LINUX_CODE_SELECTOR) >> 53 & 1, 1);
        // Data: present, read/write, flat 4 GiB.
        assert_eq!(entry(LINUX_DATA_SELECTOR) >> 40 & 0xFF, 0x93);
        assert_eq!(entry(LINUX_DATA_SELECTOR) & 0xFFFF, 0xFFFF);
        let s = linux_sregs(&kvm_sregs::default());
        assert_eq!(
            (s.cs.selector, s.ds.selector, s.ss.selector),
            (0x10, 0x18, 0x18)
        );
        assert_eq!(s.tr.selector, TSS_SELECTOR);
        assert_eq!(entry(TSS_SELECTOR) >> 40 & 0xFF, 0x8B, "TSS kept at 0x20");
        let r = linux_regs(0x100_0000, 0x7000);
        assert_eq!((r.rip, r.rsi, r.rflags & (1 << 9)), (0x100_0000, 0x7000, 0));
    }

    #[test]
    fn long_mode_sregs() {
        let s = initial_sregs(&kvm_sregs::default());
        assert_eq!(s.efer, EFER_LME | EFER_LMA | EFER_NXE);
        assert_eq!(s.cs.l, 1);
        assert_eq!(s.cs.selector & 3, 0);
        assert_eq!(s.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
    }
}
