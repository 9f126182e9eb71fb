//! The Linux x86 boot protocol: telling a Linux kernel from any other
//! image, loading it (with `linux-loader`), and writing what the kernel
//! reads at its 64-bit entry: the zero page (`boot_params`, with the e820
//! map of guest RAM), the command line and the initrd.
//!
//! How a file is recognised ([`KernelKind::of`]):
//! - a **bzImage** has the setup header magic `"HdrS"` at offset `0x202`;
//! - a **vmlinux** is an ELF64 file with a `PT_NOTE` segment holding a
//!   note named `"Linux"` (every x86 vmlinux carries them);
//! - anything else is a bare-metal ELF for hvcall's own boot protocol.
//!
//! A bzImage is booted only through its 64-bit entry, so it must declare
//! one (boot protocol 2.12 or later, `XLF_KERNEL_64` in `xloadflags`),
//! its protected-mode part must reach past that entry (offset `0x200`),
//! and its `init_size` must fit in RAM above the load address; all of it
//! is checked before the initrd is placed, so an error names the kernel.
//!
//! Guest-physical layout of a Linux boot:
//!
//! | GPA | what |
//! |---|---|
//! | `0x1000..0x5000` | the VMM's GDT and identity page tables ([`crate::boot`]) |
//! | [`ZERO_PAGE`] | `boot_params` (RSI at entry) |
//! | [`CMDLINE_ADDRESS`] | the command line, NUL-terminated |
//! | `0xF0000..0x100000` | reserved: the MP table ([`crate::boot::mptable`]) |
//! | vmlinux: its `p_paddr`s (16 MiB by default); bzImage: 1 MiB | the kernel |
//! | the top of RAM (below `initrd_addr_max`) | the initrd, page-aligned |
//!
//! ```
//! use hvcall_vmm::linux::KernelKind;
//! let mut bz = vec![0u8; 0x400];
//! bz[0x202..0x206].copy_from_slice(b"HdrS");
//! assert_eq!(KernelKind::of(&bz), KernelKind::BzImage);
//! assert_eq!(KernelKind::of(b"\x7fELF"), KernelKind::BareMetal);
//! ```

use std::io::Cursor;

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{
    boot_e820_entry, boot_params, setup_header, E820_MAX_ENTRIES_ZEROPAGE, XLF_KERNEL_64,
};
use linux_loader::loader::{bzimage::BzImage, elf::Elf, load_cmdline, Cmdline, KernelLoader};
use vm_memory::{ByteValued, GuestAddress};

use crate::boot::mptable::MPTABLE_START;
use crate::memory::GuestRam;

/// GPA of `boot_params` (the "zero page").
pub const ZERO_PAGE: u64 = 0x7000;
/// GPA of the command line.
pub const CMDLINE_ADDRESS: u64 = 0x2_0000;
/// Longest command line accepted, in bytes (x86 Linux's
/// `COMMAND_LINE_SIZE`, without the NUL).
pub const CMDLINE_MAX: usize = 2047;
/// Where a bzImage's protected-mode part is loaded.
pub const BZIMAGE_LOAD_ADDRESS: u64 = 0x10_0000;
/// Offset of the 64-bit entry in a bzImage's protected-mode part.
const BZIMAGE_ENTRY_64_OFFSET: u64 = 0x200;
/// The shortest protected-mode part accepted: the 64-bit entry and a few
/// instructions after it (a real kernel's is hundreds of KiB).
const BZIMAGE_MIN_PAYLOAD: u64 = BZIMAGE_ENTRY_64_OFFSET + 16;
/// Boot protocol 2.12: the first with `xloadflags`, which says whether
/// the 64-bit entry exists.
const PROTOCOL_XLOADFLAGS: u16 = 0x020C;
/// End of conventional memory below 1 MiB given to Linux as RAM.
const LOW_RAM_END: u64 = 0x9_FC00;
const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
/// `type_of_loader`: a boot loader with no assigned id.
const LOADER_OTHER: u8 = 0xFF;
/// The highest GPA an initrd may end at when the kernel does not say
/// (`initrd_addr_max` of boot protocol 2.03+).
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37FF_FFFF;
const PAGE: u64 = hvcall_abi::PAGE_SIZE;

/// The command line Linux gets when none is given: the serial console,
/// reset on panic, and the workarounds this kind of host needs (its
/// instruction emulator runs CPL-0 code and lacks XSAVE, POPCNT, SSSE3+,
/// SMAP's STAC/CLAC and CMPXCHG16B; there is no timer to calibrate the delay
/// loop against quickly; port 0x80 delays only cost exits).
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 earlyprintk=serial panic=-1 noxsave \
     clearcpuid=popcnt,ssse3,sse4_1,sse4_2,sha_ni,aes,pclmulqdq,smap,cx16 \
     lpj=1000000 io_delay=none";

/// What kind of image a kernel file is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// A Linux bzImage ("HdrS" at 0x202).
    BzImage,
    /// An uncompressed Linux `vmlinux` (ELF with "Linux" notes).
    Vmlinux,
    /// Anything else: a bare-metal ELF for hvcall's own boot protocol.
    BareMetal,
}

impl KernelKind {
    /// Recognises `file` (see the module doc). Reads only what the headers
    /// describe; never fails.
    pub fn of(file: &[u8]) -> Self {
        if file.get(0x202..0x206) == Some(b"HdrS".as_slice()) {
            KernelKind::BzImage
        } else if crate::boot::loader::has_note_named(file, b"Linux") {
            KernelKind::Vmlinux
        } else {
            KernelKind::BareMetal
        }
    }

    /// Whether this is a Linux kernel.
    pub fn is_linux(self) -> bool {
        self != KernelKind::BareMetal
    }
}

/// Why a Linux kernel could not be booted.
#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    /// The file is not a Linux kernel ([`KernelKind::of`]).
    #[error("not a Linux kernel (no \"HdrS\" at 0x202, no \"Linux\" ELF note)")]
    NotLinux,
    /// linux-loader rejected the kernel image.
    #[error("loading the kernel: {0}")]
    Kernel(#[source] linux_loader::loader::Error),
    /// The vmlinux's segments are out of RAM, overlap, or the file is
    /// malformed.
    #[error("the vmlinux: {0}")]
    Segments(#[source] crate::boot::loader::LoadError),
    /// The bzImage's boot protocol predates 2.12, the first to say
    /// whether the kernel has a 64-bit entry (the only one hvcall uses).
    #[error(
        "the bzImage's boot protocol {}.{:02} is not supported: hvcall boots only through \
         the 64-bit entry, which protocol 2.12 and later declare",
        .0 >> 8,
        .0 & 0xFF
    )]
    OldProtocol(u16),
    /// The bzImage has no 64-bit entry point.
    #[error("the bzImage has no 64-bit entry (XLF_KERNEL_64 is clear in xloadflags)")]
    No64BitEntry,
    /// The bzImage's protected-mode part ends before its 64-bit entry's
    /// code could.
    #[error(
        "the bzImage's protected-mode part is {0} bytes: too short to hold the 64-bit entry \
         at offset {BZIMAGE_ENTRY_64_OFFSET:#x} (at least {BZIMAGE_MIN_PAYLOAD} bytes)"
    )]
    PayloadTooShort(u64),
    /// The bzImage's `init_size` (the memory its decompressor needs) does
    /// not fit in RAM above the load address.
    #[error(
        "the bzImage's init_size ({init_size:#x} bytes from {load:#x}) does not fit in guest \
         RAM, which ends at {ram_end:#x}: a corrupt header, or give the VM more memory (--memory)"
    )]
    InitSize {
        /// The header's `init_size`.
        init_size: u32,
        /// Where the kernel is loaded.
        load: u64,
        /// The end of guest RAM.
        ram_end: u64,
    },
    /// The command line is too long or has characters Linux cannot take.
    #[error("the kernel command line: {0}")]
    Cmdline(#[source] linux_loader::cmdline::Error),
    /// Writing the command line.
    #[error("writing the kernel command line: {0}")]
    CmdlineWrite(#[source] linux_loader::loader::Error),
    /// The initrd does not fit between the kernel and the top of RAM.
    #[error(
        "the {size}-byte initrd does not fit in RAM between the kernel's end ({kernel_end:#x}) \
         and {limit:#x}; give the VM more memory (--memory)"
    )]
    InitrdTooLarge {
        /// Initrd size.
        size: u64,
        /// Where the kernel's memory ends.
        kernel_end: u64,
        /// The highest address the initrd may end at.
        limit: u64,
    },
    /// Writing the initrd.
    #[error("writing the initrd: {0}")]
    InitrdWrite(#[source] crate::memory::RamError),
    /// Writing the zero page.
    #[error("writing boot_params: {0}")]
    BootParams(#[source] linux_loader::configurator::Error),
}

/// Where the boot vCPU starts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LinuxEntry {
    /// The kernel's 64-bit entry point (RIP).
    pub entry: u64,
    /// GPA of `boot_params` (RSI).
    pub boot_params: u64,
}

/// `boot_params` as `vm-memory` bytes for linux-loader's configurator.
#[derive(Copy, Clone, Default)]
#[expect(dead_code, reason = "read as bytes through ByteValued")]
struct ZeroPage(boot_params);

// SAFETY: `boot_params` is a `repr(C, packed)` struct of integers and
// arrays of integers: no padding, no pointers, and every bit pattern is a
// valid value, which is what `ByteValued` requires.
unsafe impl ByteValued for ZeroPage {}

/// Loads the Linux kernel `kernel` into `ram` with `cmdline` and an
/// optional `initrd`, and writes the zero page. Every size and offset in
/// the file is checked by linux-loader or here; nothing is written outside
/// RAM.
pub fn load(
    ram: &GuestRam,
    kernel: &[u8],
    cmdline: &str,
    initrd: Option<&[u8]>,
) -> Result<LinuxEntry, LinuxError> {
    let kind = KernelKind::of(kernel);
    let mem = ram.backend();
    let mut image = Cursor::new(kernel);
    let (entry, header, kernel_end) = match kind {
        KernelKind::BareMetal => return Err(LinuxError::NotLinux),
        KernelKind::Vmlinux => {
            // linux-loader copies every PT_LOAD as the file says; check
            // first that they lie in RAM above 1 MiB and do not overlap, so
            // a hostile file cannot make it copy more than its own size.
            crate::boot::loader::segments(kernel, BZIMAGE_LOAD_ADDRESS, ram.size())
                .map_err(LinuxError::Segments)?;
            let r = Elf::load(
                mem,
                None,
                &mut image,
                Some(GuestAddress(BZIMAGE_LOAD_ADDRESS)),
            )
            .map_err(LinuxError::Kernel)?;
            let header = setup_header {
                boot_flag: 0xAA55,
                header: u32::from_le_bytes(*b"HdrS"),
                // The boot protocol version this loader fills in.
                version: 0x020F,
                kernel_alignment: 0x100_0000,
                ..Default::default()
            };
            (r.kernel_load.0, header, r.kernel_end)
        }
        KernelKind::BzImage => {
            let r = BzImage::load(
                mem,
                Some(GuestAddress(BZIMAGE_LOAD_ADDRESS)),
                &mut image,
                Some(GuestAddress(BZIMAGE_LOAD_ADDRESS)),
            )
            .map_err(LinuxError::Kernel)?;
            let header = r.setup_header.unwrap_or_default();
            // Every check of the image before the initrd is placed, so an
            // error blames the kernel.
            let end = check_bzimage(
                &header,
                r.kernel_load.0,
                r.kernel_end.saturating_sub(r.kernel_load.0),
                ram.size(),
            )?;
            (r.kernel_load.0 + BZIMAGE_ENTRY_64_OFFSET, header, end)
        }
    };

    let mut line = Cmdline::new(CMDLINE_MAX + 1).map_err(LinuxError::Cmdline)?;
    if !cmdline.trim().is_empty() {
        line.insert_str(cmdline.trim())
            .map_err(LinuxError::Cmdline)?;
    }
    load_cmdline(mem, GuestAddress(CMDLINE_ADDRESS), &line).map_err(LinuxError::CmdlineWrite)?;

    let mut params = boot_params {
        hdr: header,
        ..Default::default()
    };
    params.hdr.type_of_loader = LOADER_OTHER;
    params.hdr.cmd_line_ptr = CMDLINE_ADDRESS as u32;
    if let Some(initrd) = initrd {
        let (gpa, size) = place_initrd(ram, &params.hdr, kernel_end, initrd)?;
        params.hdr.ramdisk_image = gpa as u32;
        params.hdr.ramdisk_size = size as u32;
        params.ext_ramdisk_image = (gpa >> 32) as u32;
        params.ext_ramdisk_size = (size >> 32) as u32;
    }
    let e820 = e820_map(ram.size());
    for (slot, entry) in params.e820_table.iter_mut().zip(e820.iter()) {
        *slot = *entry;
    }
    params.e820_entries = e820.len().min(E820_MAX_ENTRIES_ZEROPAGE) as u8;

    LinuxBootConfigurator::write_bootparams::<vm_memory::GuestMemoryMmap>(
        &BootParams::new(&ZeroPage(params), GuestAddress(ZERO_PAGE)),
        mem,
    )
    .map_err(LinuxError::BootParams)?;
    tracing::debug!(?kind, entry, kernel_end, "loaded Linux");
    Ok(LinuxEntry {
        entry,
        boot_params: ZERO_PAGE,
    })
}

/// Checks a loaded bzImage's `header` (what linux-loader does not): the
/// boot protocol declares the 64-bit entry, the protected-mode part of
/// `payload` bytes loaded at `load` holds it, and `init_size` fits in RAM
/// (which ends at `ram_end`). Returns where the kernel's memory ends: the
/// decompressor works in `[load, load + init_size)`.
fn check_bzimage(
    header: &setup_header,
    load: u64,
    payload: u64,
    ram_end: u64,
) -> Result<u64, LinuxError> {
    // linux-loader has checked the magic and that the version is 2.00+.
    let version = header.version;
    if version < PROTOCOL_XLOADFLAGS {
        return Err(LinuxError::OldProtocol(version));
    }
    if header.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(LinuxError::No64BitEntry);
    }
    if payload < BZIMAGE_MIN_PAYLOAD {
        return Err(LinuxError::PayloadTooShort(payload));
    }
    let init_size = header.init_size;
    let end = load.saturating_add(u64::from(init_size));
    if end > ram_end {
        return Err(LinuxError::InitSize {
            init_size,
            load,
            ram_end,
        });
    }
    Ok(end.max(load.saturating_add(payload)))
}

/// Copies the initrd to the highest page-aligned place that ends at or
/// below both the top of RAM and the kernel's `initrd_addr_max`, above the
/// kernel. Returns its GPA and size.
fn place_initrd(
    ram: &GuestRam,
    hdr: &setup_header,
    kernel_end: u64,
    initrd: &[u8],
) -> Result<(u64, u64), LinuxError> {
    let size = initrd.len() as u64;
    let max = match hdr.initrd_addr_max {
        0 => DEFAULT_INITRD_ADDR_MAX,
        m => u64::from(m),
    };
    let limit = ram.size().min(max.saturating_add(1));
    let too_large = LinuxError::InitrdTooLarge {
        size,
        kernel_end,
        limit,
    };
    let gpa = limit.checked_sub(size).ok_or(too_large)? & !(PAGE - 1);
    if gpa < kernel_end.next_multiple_of(PAGE) {
        return Err(LinuxError::InitrdTooLarge {
            size,
            kernel_end,
            limit,
        });
    }
    ram.write(gpa, initrd).map_err(LinuxError::InitrdWrite)?;
    Ok((gpa, size))
}

/// The e820 map of a VM with `ram_size` bytes of RAM from GPA 0: low RAM,
/// the reserved BIOS area holding the MP table, and RAM from 1 MiB up.
pub fn e820_map(ram_size: u64) -> Vec<boot_e820_entry> {
    let entry = |addr: u64, end: u64, kind: u32| boot_e820_entry {
        addr,
        size: end - addr,
        r#type: kind,
    };
    let mut map = vec![
        entry(0, LOW_RAM_END, E820_RAM),
        entry(MPTABLE_START, BZIMAGE_LOAD_ADDRESS, E820_RESERVED),
    ];
    if ram_size > BZIMAGE_LOAD_ADDRESS {
        map.push(entry(BZIMAGE_LOAD_ADDRESS, ram_size, E820_RAM));
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 like a vmlinux: a one-byte PT_LOAD at 16 MiB (the
    /// entry) and a PT_NOTE segment holding `notes`.
    fn elf_with_notes(notes: &[u8]) -> Vec<u8> {
        let one = crate::boot::loader::flat_elf(0x100_0000, &[0xF4], 0);
        let (header, load) = (&one[..64], &one[64..120]);
        let mut f = header.to_vec();
        f[56..58].copy_from_slice(&2u16.to_le_bytes()); // e_phnum
        f.extend_from_slice(load);
        let mut note_ph = load.to_vec();
        note_ph[0..4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
        f.extend_from_slice(&note_ph);
        let code = f.len() as u64;
        f[64 + 8..64 + 16].copy_from_slice(&code.to_le_bytes());
        f.push(0xF4);
        let offset = f.len() as u64;
        f[120 + 8..120 + 16].copy_from_slice(&offset.to_le_bytes());
        f[120 + 32..120 + 40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        f.extend_from_slice(notes);
        f
    }

    fn note(name: &[u8], desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&(name.len() as u32).to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&1u32.to_le_bytes());
        n.extend_from_slice(name);
        n.resize(n.len().next_multiple_of(4), 0);
        n.extend_from_slice(desc);
        n.resize(n.len().next_multiple_of(4), 0);
        n
    }

    #[test]
    fn a_linux_note_makes_a_vmlinux() {
        let mut notes = note(b"Xen\0", &[1, 2, 3, 4, 5]);
        notes.extend(note(b"Linux\0", &[0; 4]));
        assert_eq!(KernelKind::of(&elf_with_notes(&notes)), KernelKind::Vmlinux);
        let other = note(b"GNU\0", &[0; 20]);
        assert_eq!(
            KernelKind::of(&elf_with_notes(&other)),
            KernelKind::BareMetal
        );
        let plain = crate::boot::loader::flat_elf(0x10_0000, &[0xF4], 0);
        assert_eq!(KernelKind::of(&plain), KernelKind::BareMetal);
    }

    #[test]
    fn hostile_notes_end_the_scan() {
        let mut bad = note(b"Linux\0", &[]);
        bad[0..4].copy_from_slice(&u32::MAX.to_le_bytes()); // namesz past the end
        assert_eq!(KernelKind::of(&elf_with_notes(&bad)), KernelKind::BareMetal);
        let mut skip = note(b"X\0", &[]);
        skip[4..8].copy_from_slice(&u32::MAX.to_le_bytes()); // descsz past the end
        skip.extend(note(b"Linux\0", &[]));
        assert_eq!(
            KernelKind::of(&elf_with_notes(&skip)),
            KernelKind::BareMetal
        );
    }

    #[test]
    fn e820_reserves_the_bios_area_and_covers_ram() {
        let map = e820_map(64 << 20);
        let spans: Vec<(u64, u64, u32)> = map
            .iter()
            .map(|e| (e.addr, e.addr + e.size, e.r#type))
            .collect();
        assert_eq!(
            spans,
            [
                (0, LOW_RAM_END, E820_RAM),
                (0xF_0000, 0x10_0000, E820_RESERVED),
                (0x10_0000, 64 << 20, E820_RAM)
            ]
        );
    }

    /// The zero page as the kernel reads it, at the boot protocol's
    /// offsets.
    #[test]
    fn a_vmlinux_gets_a_zero_page_with_e820_cmdline_and_initrd() {
        let ram = GuestRam::new(64).unwrap();
        let vmlinux = elf_with_notes(&note(b"Linux\0", &[0; 4]));
        let entry = load(&ram, &vmlinux, " console=ttyS0 ", Some(&[9; 100])).unwrap();
        assert_eq!(
            entry,
            LinuxEntry {
                entry: 0x100_0000,
                boot_params: ZERO_PAGE
            }
        );
        let u8_at = |off: u64| {
            let mut b = [0u8];
            ram.read(ZERO_PAGE + off, &mut b).unwrap();
            b[0]
        };
        let u32_at = |off: u64| {
            let mut b = [0u8; 4];
            ram.read(ZERO_PAGE + off, &mut b).unwrap();
            u32::from_le_bytes(b)
        };
        let u64_at = |off: u64| {
            let mut b = [0u8; 8];
            ram.read(ZERO_PAGE + off, &mut b).unwrap();
            u64::from_le_bytes(b)
        };
        assert_eq!(&u32_at(0x202).to_le_bytes(), b"HdrS");
        assert_eq!(u8_at(0x210), 0xFF, "type_of_loader");
        assert_eq!(u64::from(u32_at(0x228)), CMDLINE_ADDRESS);
        let mut line = [0u8; 15];
        ram.read(CMDLINE_ADDRESS, &mut line).unwrap();
        assert_eq!(&line, b"console=ttyS0\0\0");
        let (initrd, size) = (u64::from(u32_at(0x218)), u32_at(0x21C));
        assert_eq!(size, 100);
        let mut b = [0u8; 100];
        ram.read(initrd, &mut b).unwrap();
        assert_eq!(b, [9; 100]);
        assert_eq!(u8_at(0x1E8), 3, "e820 entries");
        let e820: Vec<(u64, u64, u32)> = (0..3)
            .map(|i| {
                (
                    u64_at(0x2D0 + i * 20),
                    u64_at(0x2D8 + i * 20),
                    u32_at(0x2E0 + i * 20),
                )
            })
            .collect();
        let want: Vec<(u64, u64, u32)> = e820_map(64 << 20)
            .iter()
            .map(|e| (e.addr, e.size, e.r#type))
            .collect();
        assert_eq!(e820, want);
    }

    #[test]
    fn non_linux_files_are_refused() {
        let ram = GuestRam::new(64).unwrap();
        let elf = crate::boot::loader::flat_elf(0x10_0000, &[0xF4], 0);
        assert!(matches!(
            load(&ram, &elf, "", None),
            Err(LinuxError::NotLinux)
        ));
    }

    #[test]
    fn a_truncated_bzimage_is_an_error() {
        let ram = GuestRam::new(64).unwrap();
        let mut bz = vec![0u8; 0x300];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert!(load(&ram, &bz, "", None).is_err());
        bz.truncate(0x206);
        assert!(load(&ram, &bz, "", None).is_err());
    }

    #[test]
    fn initrd_goes_high_page_aligned_and_above_the_kernel() {
        let ram = GuestRam::new(64).unwrap();
        let hdr = setup_header::default();
        let (gpa, size) = place_initrd(&ram, &hdr, 0x200_0000, &[7; 5000]).unwrap();
        assert_eq!(size, 5000);
        assert_eq!(gpa % PAGE, 0);
        assert!(gpa + size <= 64 << 20 && gpa + size > (64 << 20) - PAGE);
        let mut b = [0u8; 2];
        ram.read(gpa + 4998, &mut b).unwrap();
        assert_eq!(b, [7, 7]);
        assert!(matches!(
            place_initrd(&ram, &hdr, 0x3F0_0000, &[0; 0x20_0000]),
            Err(LinuxError::InitrdTooLarge { .. })
        ));
        let capped = setup_header {
            initrd_addr_max: 0x2FF_FFFF,
            ..Default::default()
        };
        let (gpa, _) = place_initrd(&ram, &capped, 0x200_0000, &[1; 10]).unwrap();
        assert!(gpa + 10 <= 0x300_0000);
    }

    /// A bzImage as the boot protocol lays it out: one setup sector after
    /// the boot sector, the header fields hvcall reads, then `payload`
    /// bytes of protected-mode code (HLT).
    fn bzimage(version: u16, xloadflags: u16, payload: usize, init_size: u32) -> Vec<u8> {
        let mut f = vec![0u8; 2 * 512];
        f[0x1F1] = 1; // setup_sects
        f[0x1FE..0x200].copy_from_slice(&0xAA55u16.to_le_bytes());
        f[0x202..0x206].copy_from_slice(b"HdrS");
        f[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        f[0x211] = 1; // loadflags: LOADED_HIGH
        f[0x214..0x218].copy_from_slice(&(BZIMAGE_LOAD_ADDRESS as u32).to_le_bytes());
        f[0x236..0x238].copy_from_slice(&xloadflags.to_le_bytes());
        f[0x260..0x264].copy_from_slice(&init_size.to_le_bytes());
        f.resize(f.len() + payload, 0xF4);
        f
    }

    #[test]
    fn a_well_formed_bzimage_enters_at_0x200_of_its_payload() {
        let ram = GuestRam::new(64).unwrap();
        let bz = bzimage(0x020F, XLF_KERNEL_64, 0x1000, 0x40_0000);
        let entry = load(&ram, &bz, "", Some(&[1; 10])).unwrap();
        assert_eq!(entry.entry, BZIMAGE_LOAD_ADDRESS + 0x200);
        let minimal = bzimage(0x020C, XLF_KERNEL_64, BZIMAGE_MIN_PAYLOAD as usize, 0);
        assert!(load(&ram, &minimal, "", None).is_ok());
    }

    /// Issue 16 item 6: an empty or tiny protected-mode part used to boot
    /// into zeroed RAM.
    #[test]
    fn a_bzimage_too_short_for_its_64_bit_entry_is_refused() {
        let ram = GuestRam::new(64).unwrap();
        for payload in [0, 1, 0x200, BZIMAGE_MIN_PAYLOAD as usize - 1] {
            let bz = bzimage(0x020F, XLF_KERNEL_64, payload, 0x40_0000);
            let e = load(&ram, &bz, "", None).unwrap_err();
            assert!(
                matches!(e, LinuxError::PayloadTooShort(p) if p == payload as u64),
                "{payload}: {e}"
            );
            assert!(e.to_string().contains("64-bit entry"), "{e}");
        }
    }

    /// Issue 16 item 6: `init_size = 0xFFFFFFFF` used to boot silently.
    #[test]
    fn an_init_size_beyond_ram_is_refused_naming_init_size() {
        let ram = GuestRam::new(64).unwrap();
        let fits = (64 << 20) - BZIMAGE_LOAD_ADDRESS;
        for init_size in [u32::MAX, fits as u32 + 1, 0x8000_0000] {
            let bz = bzimage(0x020F, XLF_KERNEL_64, 0x1000, init_size);
            let e = load(&ram, &bz, "", None).unwrap_err();
            assert!(matches!(e, LinuxError::InitSize { .. }), "{e}");
            assert!(e.to_string().contains("init_size"), "{e}");
        }
        let bz = bzimage(0x020F, XLF_KERNEL_64, 0x1000, fits as u32);
        assert!(
            load(&ram, &bz, "", None).is_ok(),
            "all of RAM above the load address"
        );
    }

    /// Issue 16 item 6: with an initrd, a bad kernel used to be reported
    /// as an initrd too large for RAM.
    #[test]
    fn with_an_initrd_a_bad_bzimage_blames_the_kernel() {
        let ram = GuestRam::new(64).unwrap();
        let bad = [
            bzimage(0x020F, XLF_KERNEL_64, 0x1000, u32::MAX),
            bzimage(0x020F, XLF_KERNEL_64, 0, 0x40_0000),
            bzimage(0x020B, XLF_KERNEL_64, 0x1000, 0x40_0000),
            bzimage(0x020F, 0, 0x1000, 0x40_0000),
        ];
        for bz in bad {
            let e = load(&ram, &bz, "", Some(&[7; 0x1000])).unwrap_err();
            assert!(!e.to_string().contains("initrd"), "{e}");
            assert!(e.to_string().contains("bzImage"), "{e}");
        }
    }

    /// Issue 16 item 6: xloadflags exists from boot protocol 2.12 on;
    /// before that its bytes are something else, and the 64-bit entry is
    /// not declared.
    #[test]
    fn a_bzimage_older_than_protocol_2_12_is_refused() {
        let ram = GuestRam::new(64).unwrap();
        for version in [0x0200, 0x0206, 0x020A, 0x020B] {
            let bz = bzimage(version, XLF_KERNEL_64, 0x1000, 0x40_0000);
            let e = load(&ram, &bz, "", None).unwrap_err();
            assert!(
                matches!(e, LinuxError::OldProtocol(v) if v == version),
                "{e}"
            );
        }
        let e = LinuxError::OldProtocol(0x020B).to_string();
        assert!(e.contains("protocol 2.11 is not supported"), "{e}");
        let bz = bzimage(0x020C, 0, 0x1000, 0x40_0000);
        assert!(matches!(
            load(&ram, &bz, "", None),
            Err(LinuxError::No64BitEntry)
        ));
    }

    proptest::proptest! {
        /// Hostile kernel files that look like Linux (a bzImage header, or
        /// an ELF with a "Linux" note, with random bytes everywhere else)
        /// and hostile command lines and initrds: never a panic.
        #[test]
        fn hostile_linux_images_never_panic(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..0x600),
            bz in proptest::bool::ANY,
            cmdline in "\\PC{0,64}",
            initrd in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..64)),
        ) {
            let ram = GuestRam::new(4).unwrap();
            let mut file = if bz {
                let mut f = vec![0u8; 0x206];
                f[0x202..0x206].copy_from_slice(b"HdrS");
                f
            } else {
                elf_with_notes(&note(b"Linux\0", &[0; 4]))
            };
            let n = body.len().min(file.len());
            // Keep the magic: overwrite what comes before it (bzImage) or
            // append after the headers (ELF).
            if bz {
                file[..n.min(0x202)].copy_from_slice(&body[..n.min(0x202)]);
            }
            file.extend_from_slice(&body);
            let _ = load(&ram, &file, &cmdline, initrd.as_deref());
        }
    }
}
