//! Loading a static ELF64 x86-64 executable into guest RAM (issue 3 §2).
//!
//! Every `PT_LOAD` segment is copied to its physical address (`p_paddr`)
//! and its `.bss` tail (`p_memsz - p_filesz`) is zeroed. Segments must lie
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
        "PT_LOAD segment {index} at {paddr:#x}+{memsz:#x} is outside {min:#x}..{max:#x} \
         (images load at or above 1 MiB and below the vCPU stacks at the top of RAM)"
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
    /// The entry point is outside guest RAM.
    #[error("ELF entry point {0:#x} is outside guest RAM")]
    EntryOutOfRange(u64),
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

const _: () = assert!(core::mem::size_of::<Elf64Header>() == 64);
const _: () = assert!(core::mem::size_of::<Elf64ProgramHeader>() == 56);

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

/// Loads `elf` into `ram`. Segments must fit in `[1 MiB, image_end)`,
/// where `image_end` is where the vCPU stacks begin.
pub fn load_elf(ram: &GuestRam, elf: &[u8], image_end: u64) -> Result<LoadedImage, LoadError> {
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

    let mut loaded = 0usize;
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
        let in_range = ph.paddr >= IMAGE_MIN_ADDRESS
            && ph
                .paddr
                .checked_add(ph.memsz)
                .is_some_and(|end| end <= image_end);
        if !in_range {
            return Err(LoadError::SegmentOutOfRange {
                index,
                paddr: ph.paddr,
                memsz: ph.memsz,
                min: IMAGE_MIN_ADDRESS,
                max: image_end,
            });
        }
        let data = slice_of(elf, "segment data", ph.offset, ph.filesz)?;
        let range_err = |_| LoadError::SegmentOutOfRange {
            index,
            paddr: ph.paddr,
            memsz: ph.memsz,
            min: IMAGE_MIN_ADDRESS,
            max: image_end,
        };
        ram.write(ph.paddr, data).map_err(range_err)?;
        zero(ram, ph.paddr + ph.filesz, ph.memsz - ph.filesz).map_err(range_err)?;
        tracing::debug!(
            index,
            paddr = ph.paddr,
            filesz = ph.filesz,
            memsz = ph.memsz,
            "loaded segment"
        );
        loaded += 1;
    }
    if loaded == 0 {
        return Err(LoadError::NoSegments);
    }
    if !ram.contains(header.entry, 1) {
        return Err(LoadError::EntryOutOfRange(header.entry));
    }
    Ok(LoadedImage {
        entry: header.entry,
    })
}

/// Zeroes `[gpa, gpa + len)` in bounded chunks.
fn zero(ram: &GuestRam, gpa: u64, len: u64) -> Result<(), crate::memory::RamError> {
    const CHUNK: [u8; 4096] = [0; 4096];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK.len() as u64);
        ram.write(gpa + done, &CHUNK[..n as usize])?;
        done += n;
    }
    Ok(())
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
    fn loads_at_paddr_and_zeroes_bss() {
        let ram = GuestRam::new(2).unwrap();
        ram.write(0x10_0000, &[0xAA; 64]).unwrap();
        let elf = flat_elf(0x10_0000, &[1, 2, 3], 16);
        let img = load_elf(&ram, &elf, END).unwrap();
        assert_eq!(img.entry, 0x10_0000);
        let mut b = [0xFFu8; 24];
        ram.read(0x10_0000, &mut b).unwrap();
        assert_eq!(&b[..3], &[1, 2, 3]);
        assert!(b[3..19].iter().all(|&x| x == 0), "bss zeroed: {b:?}");
        assert_eq!(b[19], 0xAA, "beyond memsz untouched");
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
