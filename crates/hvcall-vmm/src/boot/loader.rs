//! Loading a static ELF64 x86-64 executable into guest RAM (the README's "Boot protocol" section).
//!
//! Every `PT_LOAD` segment is copied to its physical address (`p_paddr`);
//! its `.bss` tail (`p_memsz - p_filesz`) is the fresh RAM's zeros. Segments must lie
//! at or above 1 MiB (the VMM's boot structures live below) and below the
//! vCPU stacks at the top of RAM. The parser reads only what the headers
//! describe, with checked arithmetic, so a hostile file cannot make it read
//! or write outside the file or guest RAM.

use zerocopy::{FromBytes, Immutable, KnownLayout};

use crate::memory::GuestRam;

/// Lowest guest-physical address an image may use.
pub const IMAGE_MIN_ADDRESS: u64 = 0x10_0000;

const PT_LOAD: u32 = 1;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;

/// Why an image could not be loaded.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    /// Not an ELF file, or truncated headers.
    #[error("not an ELF64 file (bad magic or truncated header)")]
    NotElf,
    /// ELF, but not a little-endian x86-64 static executable.
    #[error("unsupported ELF: {0}")]
    Unsupported(&'static str),
    /// A header points outside the file.
    #[error("ELF {what} at offset {offset:#x} (+{len:#x}) lies outside the {file_len}-byte file")]
    Truncated {
        /// Which part.
        what: &'static str,
        /// Its offset in the file.
        offset: u64,
        /// Its length.
        len: u64,
        /// The file length.
        file_len: usize,
    },
    /// A segment's file size exceeds its memory size.
    #[error("PT_LOAD segment {index}: p_filesz {filesz:#x} > p_memsz {memsz:#x}")]
    FileSizeAboveMemSize {
        /// Program header index.
        index: usize,
        /// p_filesz.
        filesz: u64,
        /// p_memsz.
        memsz: u64,
    },
    /// A segment lies outside the memory images may use.
    #[error(
        "PT_LOAD segment {index} at {paddr:#x}+{memsz:#x} is outside {min:#x}..{max:#x}: \
         images load at or above 1 MiB and inside RAM (a bare-metal image below the vCPU \
         stacks at its top); more RAM (--memory) may help"
    )]
    SegmentOutOfRange {
        /// Program header index.
        index: usize,
        /// p_paddr.
        paddr: u64,
        /// p_memsz.
        memsz: u64,
        /// Lowest allowed address.
        min: u64,
        /// End of the allowed range.
        max: u64,
    },
    /// The image has no PT_LOAD segment.
    #[error("ELF has no PT_LOAD segment")]
    NoSegments,
    /// The entry point lies in no `PT_LOAD` segment.
    #[error("ELF entry point {0:#x} lies in no PT_LOAD segment")]
    EntryOutsideSegments(u64),
    /// Two `PT_LOAD` segments overlap in memory.
    #[error("PT_LOAD segments {first} and {second} overlap in memory")]
    Overlap {
        /// The lower program header index.
        first: usize,
        /// The higher one.
        second: usize,
    },
}

#[derive(FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Elf64Header {
    ident: [u8; 16],
    kind: u16,
    machine: u16,
    version: u32,
    entry: u64,
    phoff: u64,
    shoff: u64,
    flags: u32,
    ehsize: u16,
    phentsize: u16,
    phnum: u16,
    shentsize: u16,
    shnum: u16,
    shstrndx: u16,
}

#[derive(FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Elf64ProgramHeader {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

#[derive(FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Elf64NoteHeader {
    namesz: u32,
    descsz: u32,
    kind: u32,
}

const _: () = assert!(core::mem::size_of::<Elf64Header>() == 64);
const _: () = assert!(core::mem::size_of::<Elf64ProgramHeader>() == 56);
const _: () = assert!(core::mem::size_of::<Elf64NoteHeader>() == 12);

const PT_NOTE: u32 = 4;

/// Whether `elf` is a little-endian ELF64 file with a note named `name`
/// in a `PT_NOTE` segment (how a Linux vmlinux is recognised: its notes
/// are named "Linux"). Looks at most at `e_phnum` headers and, per
/// segment, at the notes that fit in it; never fails.
pub(crate) fn has_note_named(elf: &[u8], name: &[u8]) -> bool {
    let Ok((h, _)) = Elf64Header::read_from_prefix(elf) else {
        return false;
    };
    let header_size = core::mem::size_of::<Elf64ProgramHeader>() as u64;
    if h.ident[..4] != *b"\x7fELF"
        || h.ident[4] != 2
        || h.ident[5] != 1
        || u64::from(h.phentsize) != header_size
    {
        return false;
    }
    let Ok(table) = slice_of(elf, "", h.phoff, u64::from(h.phnum) * header_size) else {
        return false;
    };
    table
        .chunks_exact(header_size as usize)
        .filter_map(|raw| Elf64ProgramHeader::read_from_bytes(raw).ok())
        .filter(|ph| ph.kind == PT_NOTE)
        .filter_map(|ph| slice_of(elf, "", ph.offset, ph.filesz).ok())
        .any(|notes| notes_hold(notes, name))
}

/// Whether the contents of a `PT_NOTE` segment hold a note named `name`.
fn notes_hold(mut notes: &[u8], name: &[u8]) -> bool {
    let align = |n: u32| (u64::from(n) + 3) & !3;
    while let Ok((n, rest)) = Elf64NoteHeader::read_from_prefix(notes) {
        let this = rest.get(..n.namesz as usize);
        if this.is_some_and(|this| this.strip_suffix(b"\0").unwrap_or(this) == name) {
            return true;
        }
        let skip = align(n.namesz) + align(n.descsz);
        match usize::try_from(skip).ok().and_then(|s| rest.get(s..)) {
            Some(next) => notes = next,
            None => return false,
        }
    }
    false
}

/// A loaded image.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// Entry point (every vCPU starts there).
    pub entry: u64,
}

fn slice_of<'a>(
    file: &'a [u8],
    what: &'static str,
    offset: u64,
    len: u64,
) -> Result<&'a [u8], LoadError> {
    let err = LoadError::Truncated {
        what,
        offset,
        len,
        file_len: file.len(),
    };
    let start = usize::try_from(offset).map_err(|_| err.clone())?;
    let len_usize = usize::try_from(len).map_err(|_| err.clone())?;
    let end = start.checked_add(len_usize).ok_or_else(|| err.clone())?;
    file.get(start..end).ok_or(err)
}

/// One checked `PT_LOAD` segment.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Segment<'a> {
    /// Its guest-physical address.
    pub paddr: u64,
    /// Its size in memory (the file data plus the zero-filled tail).
    pub memsz: u64,
    /// Its bytes in the file.
    pub data: &'a [u8],
}

/// Parses the headers of `elf` and checks every `PT_LOAD` segment: its
/// data lies inside the file, `p_filesz <= p_memsz`, it fits in
/// `[min, end)`, and no two segments overlap in memory. So loading costs
/// at most the file's size in copies, and never more memory than
/// `end - min`. Returns the entry point and the segments.
pub(crate) fn segments(
    elf: &[u8],
    min: u64,
    end: u64,
) -> Result<(u64, Vec<Segment<'_>>), LoadError> {
    let (header, _) = Elf64Header::read_from_prefix(elf).map_err(|_| LoadError::NotElf)?;
    if header.ident[..4] != *b"\x7fELF" {
        return Err(LoadError::NotElf);
    }
    if header.ident[4] != 2 {
        return Err(LoadError::Unsupported("not ELFCLASS64"));
    }
    if header.ident[5] != 1 {
        return Err(LoadError::Unsupported("not little-endian"));
    }
    if header.machine != EM_X86_64 {
        return Err(LoadError::Unsupported(
            "not x86-64 (e_machine != EM_X86_64)",
        ));
    }
    if header.kind != ET_EXEC {
        return Err(LoadError::Unsupported(
            "not a static executable (e_type != ET_EXEC; link with --no-pie at a fixed address)",
        ));
    }
    if usize::from(header.phentsize) != core::mem::size_of::<Elf64ProgramHeader>() {
        return Err(LoadError::Unsupported("e_phentsize is not 56"));
    }
    let table_len = u64::from(header.phnum) * u64::from(header.phentsize);
    let table = slice_of(elf, "program header table", header.phoff, table_len)?;

    let mut segments = Vec::new();
    for (index, raw) in table
        .chunks_exact(usize::from(header.phentsize))
        .enumerate()
    {
        let ph = Elf64ProgramHeader::read_from_bytes(raw).map_err(|_| LoadError::NotElf)?;
        if ph.kind != PT_LOAD {
            continue;
        }
        if ph.filesz > ph.memsz {
            return Err(LoadError::FileSizeAboveMemSize {
                index,
                filesz: ph.filesz,
                memsz: ph.memsz,
            });
        }
        let in_range = ph.paddr >= min && ph.paddr.checked_add(ph.memsz).is_some_and(|e| e <= end);
        if !in_range {
            return Err(LoadError::SegmentOutOfRange {
                index,
                paddr: ph.paddr,
                memsz: ph.memsz,
                min,
                max: end,
            });
        }
        let data = slice_of(elf, "segment data", ph.offset, ph.filesz)?;
        segments.push((
            index,
            Segment {
                paddr: ph.paddr,
                memsz: ph.memsz,
                data,
            },
        ));
    }
    if segments.is_empty() {
        return Err(LoadError::NoSegments);
    }
    let mut by_address: Vec<&(usize, Segment<'_>)> = segments.iter().collect();
    by_address.sort_by_key(|(_, s)| s.paddr);
    for pair in by_address.windows(2) {
        if let [(first, a), (second, b)] = pair {
            if a.paddr + a.memsz > b.paddr {
                return Err(LoadError::Overlap {
                    first: *first.min(second),
                    second: *first.max(second),
                });
            }
        }
    }
    let inside = |s: &Segment<'_>| header.entry >= s.paddr && header.entry - s.paddr < s.memsz;
    if !segments.iter().any(|(_, s)| inside(s)) {
        return Err(LoadError::EntryOutsideSegments(header.entry));
    }
    Ok((header.entry, segments.into_iter().map(|(_, s)| s).collect()))
}

/// Loads `elf` into `ram`. Segments must fit in `[1 MiB, image_end)`,
/// where `image_end` is where the vCPU stacks begin, and must not overlap.
///
/// `ram` must be fresh (all zero) where the image goes, as a new
/// [`GuestRam`] is: the `.bss` tails (`p_memsz - p_filesz`) are left as
/// they are, so a large `.bss` costs no host memory until the guest
/// touches it.
pub fn load_elf(ram: &GuestRam, elf: &[u8], image_end: u64) -> Result<LoadedImage, LoadError> {
    let (entry, segments) = segments(elf, IMAGE_MIN_ADDRESS, image_end)?;
    for (index, s) in segments.iter().enumerate() {
        ram.write(s.paddr, s.data)
            .map_err(|_| LoadError::SegmentOutOfRange {
                index,
                paddr: s.paddr,
                memsz: s.memsz,
                min: IMAGE_MIN_ADDRESS,
                max: image_end,
            })?;
        tracing::debug!(
            paddr = s.paddr,
            filesz = s.data.len(),
            memsz = s.memsz,
            "loaded segment"
        );
    }
    Ok(LoadedImage { entry })
}

/// Wraps raw x86-64 code in a minimal static ELF64 executable: one
/// read/write/execute `PT_LOAD` segment holding `code` at `paddr` (also its
/// virtual address and the entry point), followed by `bss` zero bytes.
///
/// Meant for tests and tools that run hand-written guest code.
///
/// ```
/// let elf = hvcall_vmm::loader::flat_elf(0x10_0000, &[0xF4], 0);
/// assert_eq!(&elf[..4], b"\x7fELF");
/// ```
pub fn flat_elf(paddr: u64, code: &[u8], bss: u64) -> Vec<u8> {
    const HEADERS: u64 = 64 + 56;
    let mut out = Vec::with_capacity(HEADERS as usize + code.len());
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[2, 1, 1, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&ET_EXEC.to_le_bytes());
    out.extend_from_slice(&EM_X86_64.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&paddr.to_le_bytes()); // entry
    out.extend_from_slice(&64u64.to_le_bytes()); // phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    out.extend_from_slice(&64u16.to_le_bytes()); // ehsize
    out.extend_from_slice(&56u16.to_le_bytes()); // phentsize
    out.extend_from_slice(&1u16.to_le_bytes()); // phnum
    out.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
    out.extend_from_slice(&PT_LOAD.to_le_bytes());
    out.extend_from_slice(&7u32.to_le_bytes()); // R W X
    out.extend_from_slice(&HEADERS.to_le_bytes()); // offset
    out.extend_from_slice(&paddr.to_le_bytes()); // vaddr
    out.extend_from_slice(&paddr.to_le_bytes()); // paddr
    out.extend_from_slice(&(code.len() as u64).to_le_bytes());
    out.extend_from_slice(&(code.len() as u64 + bss).to_le_bytes());
    out.extend_from_slice(&0x1000u64.to_le_bytes());
    out.extend_from_slice(code);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: u64 = 0x1F_0000;

    #[test]
    fn loads_at_paddr_and_leaves_bss_to_the_fresh_ram() {
        let ram = GuestRam::new(2).unwrap();
        let elf = flat_elf(0x10_0000, &[1, 2, 3], 16);
        let img = load_elf(&ram, &elf, END).unwrap();
        assert_eq!(img.entry, 0x10_0000);
        let mut b = [0xFFu8; 24];
        ram.read(0x10_0000, &mut b).unwrap();
        assert_eq!(&b[..3], &[1, 2, 3]);
        assert!(b[3..].iter().all(|&x| x == 0), "bss reads zero: {b:?}");
    }

    /// Resident memory of this process, in KiB.
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Regression: a 1 GiB `.bss` used to be written with zeros,
    /// committing that much host memory; now it costs nothing.
    #[test]
    fn a_huge_bss_commits_no_host_memory() {
        let ram = GuestRam::new(1100).unwrap();
        let elf = flat_elf(0x10_0000, &[0xF4], 1 << 30);
        let before = rss_kib();
        load_elf(&ram, &elf, ram.size()).unwrap();
        let grown = rss_kib().saturating_sub(before);
        // Other tests of this binary run meanwhile and allocate a little:
        // the bound is far below the 1 GiB a written .bss commits.
        assert!(grown < 256 * 1024, "RSS grew by {grown} KiB");
    }

    /// Regression: many PT_LOADs naming the same memory used to be
    /// written (and zeroed) one after the other; overlapping segments are
    /// refused, so loading costs at most the file size in copies.
    #[test]
    fn overlapping_segments_are_refused() {
        let one = flat_elf(0x10_0000, &[0x90; 64], 0x1000);
        let mut elf = one[..64].to_vec();
        let phnum: u16 = 1000;
        elf[56..58].copy_from_slice(&phnum.to_le_bytes());
        for _ in 0..phnum {
            elf.extend_from_slice(&one[64..120]);
        }
        // Point every segment's data at the code after the headers.
        let data = elf.len() as u64;
        for i in 0..usize::from(phnum) {
            let ph = 64 + i * 56;
            elf[ph + 8..ph + 16].copy_from_slice(&data.to_le_bytes());
        }
        elf.extend_from_slice(&[0x90; 64]);
        let ram = GuestRam::new(2).unwrap();
        assert_eq!(
            load_elf(&ram, &elf, END),
            Err(LoadError::Overlap {
                first: 0,
                second: 1
            })
        );
    }

    /// Regression: an entry point outside every PT_LOAD used to be
    /// accepted.
    #[test]
    fn an_entry_outside_every_segment_is_refused() {
        let mut elf = flat_elf(0x10_0000, &[0x90; 16], 0);
        elf[24..32].copy_from_slice(&0x10_0100u64.to_le_bytes());
        let ram = GuestRam::new(2).unwrap();
        assert_eq!(
            load_elf(&ram, &elf, END),
            Err(LoadError::EntryOutsideSegments(0x10_0100))
        );
        elf[24..32].copy_from_slice(&0x10_000Fu64.to_le_bytes());
        assert_eq!(load_elf(&ram, &elf, END).map(|i| i.entry), Ok(0x10_000F));
    }

    #[test]
    fn rejects_segments_below_1mib_or_into_stacks() {
        let ram = GuestRam::new(2).unwrap();
        let low = flat_elf(0xF_F000, &[0x90], 0);
        assert!(matches!(
            load_elf(&ram, &low, END),
            Err(LoadError::SegmentOutOfRange { .. })
        ));
        let high = flat_elf(END - 2, &[0x90; 4], 0);
        assert!(matches!(
            load_elf(&ram, &high, END),
            Err(LoadError::SegmentOutOfRange { .. })
        ));
        let wrap = flat_elf(u64::MAX - 1, &[0x90; 4], 0);
        assert!(matches!(
            load_elf(&ram, &wrap, END),
            Err(LoadError::SegmentOutOfRange { .. })
        ));
    }

    #[test]
    fn rejects_malformed_files() {
        let ram = GuestRam::new(2).unwrap();
        assert_eq!(load_elf(&ram, b"hello", END), Err(LoadError::NotElf));
        let good = flat_elf(0x10_0000, &[0x90; 8], 0);
        for cut in [10, 64, 100, 121] {
            assert!(load_elf(&ram, &good[..cut], END).is_err(), "cut at {cut}");
        }
        let mut pie = good.clone();
        pie[16] = 3; // ET_DYN
        assert!(matches!(
            load_elf(&ram, &pie, END),
            Err(LoadError::Unsupported(_))
        ));
        let mut huge_off = good.clone();
        huge_off[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            load_elf(&ram, &huge_off, END),
            Err(LoadError::Truncated { .. })
        ));
        let mut fs = good;
        fs[64 + 32..64 + 40].copy_from_slice(&100u64.to_le_bytes());
        assert!(matches!(
            load_elf(&ram, &fs, END),
            Err(LoadError::FileSizeAboveMemSize { .. })
        ));
    }

    proptest::proptest! {
        /// Hostile files: never a panic, never a write outside the image
        /// range (the guard page below 1 MiB stays zero).
        #[test]
        fn arbitrary_files_never_panic(mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400), header in proptest::bool::ANY) {
            let ram = GuestRam::new(2).unwrap();
            if header {
                let good = flat_elf(0x10_0000, &[0x90; 8], 0);
                let n = bytes.len().min(good.len());
                bytes[..n].copy_from_slice(&good[..n]);
            }
            let _ = load_elf(&ram, &bytes, END);
            let mut low = [0u8; 4096];
            ram.read(0xF_F000, &mut low).unwrap();
            proptest::prop_assert!(low.iter().all(|&b| b == 0));
        }
    }
}
