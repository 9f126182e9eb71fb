//! Guest RAM and the view of it that hypercalls get.
//!
//! RAM is one anonymous mapping from guest-physical address 0 (a
//! `vm-memory` [`GuestMemoryMmap`]). [`GuestRam`] adds bounded,
//! overflow-safe range checks; [`CallerMemory`] is the
//! [`hvcall_dispatch::PartitionMemory`] a hypercall sees: RAM minus the
//! hypercall overlay page.

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use hvcall_abi::PAGE_SIZE;
use hvcall_dispatch::memory::{MemoryError, PartitionMemory};

/// Smallest RAM size accepted: 2 MiB (boot structures below 1 MiB, image
/// and stacks above).
pub const MIN_RAM_MIB: u64 = 2;
/// Largest RAM size accepted: 64 GiB (the boot page tables map it with one
/// page directory per GiB, all below 1 MiB).
pub const MAX_RAM_MIB: u64 = 64 * 1024;

/// Errors creating or accessing guest RAM.
#[derive(Debug, thiserror::Error)]
pub enum RamError {
    /// The requested size is out of range.
    #[error("guest memory of {0} MiB is out of range ({MIN_RAM_MIB}..={MAX_RAM_MIB} MiB)")]
    Size(u64),
    /// The host could not map the memory.
    #[error("cannot map guest memory: {0}")]
    Map(#[from] vm_memory::mmap::FromRangesError),
    /// An access outside guest RAM.
    #[error("guest physical range {gpa:#x}+{len:#x} is outside guest RAM")]
    OutOfRange {
        /// Start of the range.
        gpa: u64,
        /// Length of the range.
        len: u64,
    },
}

/// Guest RAM: `[0, size)` of guest-physical space.
#[derive(Debug)]
pub struct GuestRam {
    mem: GuestMemoryMmap,
    size: u64,
}

impl GuestRam {
    /// Maps `mib` MiB of zeroed RAM.
    pub fn new(mib: u64) -> Result<Self, RamError> {
        if !(MIN_RAM_MIB..=MAX_RAM_MIB).contains(&mib) {
            return Err(RamError::Size(mib));
        }
        let size = mib << 20;
        let len = usize::try_from(size).map_err(|_| RamError::Size(mib))?;
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), len)])?;
        Ok(Self { mem, size })
    }

    /// Size in bytes (RAM ends there).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether `[gpa, gpa + len)` lies inside RAM (false if it wraps).
    pub fn contains(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len).is_some_and(|end| end <= self.size)
    }

    /// Reads `buf.len()` bytes at `gpa`.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), RamError> {
        let len = buf.len() as u64;
        if !self.contains(gpa, len) {
            return Err(RamError::OutOfRange { gpa, len });
        }
        self.mem
            .read_slice(buf, GuestAddress(gpa))
            .map_err(|_| RamError::OutOfRange { gpa, len })
    }

    /// Writes `data` at `gpa`.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<(), RamError> {
        let len = data.len() as u64;
        if !self.contains(gpa, len) {
            return Err(RamError::OutOfRange { gpa, len });
        }
        self.mem
            .write_slice(data, GuestAddress(gpa))
            .map_err(|_| RamError::OutOfRange { gpa, len })
    }

    /// Bytes of guest RAM the host has backed with memory so far: the pages
    /// the guest or the host touched (`mincore(2)` of the mapping).
    pub fn resident_bytes(&self) -> std::io::Result<u64> {
        let page = PAGE_SIZE as usize;
        let len = usize::try_from(self.size).map_err(std::io::Error::other)?;
        let start = self.host_address(0).map_err(std::io::Error::other)? as *mut libc::c_void;
        let mut pages = vec![0u8; len.div_ceil(page)];
        // SAFETY: `[start, start + len)` is this RAM's one mapping (made
        // page-aligned by mmap) and `pages` has one byte per page of it, as
        // mincore writes.
        let rc = unsafe { libc::mincore(start, len, pages.as_mut_ptr()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let resident = pages.iter().filter(|&&p| p & 1 != 0).count() as u64;
        Ok(resident * PAGE_SIZE)
    }

    /// The `vm-memory` backend (for loaders that write through it; it
    /// covers exactly `[0, size)`).
    pub(crate) fn backend(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Host address of guest-physical `gpa` (for memory slots).
    pub(crate) fn host_address(&self, gpa: u64) -> Result<u64, RamError> {
        if !self.contains(gpa, 0) {
            return Err(RamError::OutOfRange { gpa, len: 0 });
        }
        let ptr = self
            .mem
            .get_host_address(GuestAddress(gpa))
            .map_err(|_| RamError::OutOfRange { gpa, len: 0 })?;
        Ok(ptr as u64)
    }
}

/// The caller partition's memory as a hypercall sees it: RAM, except the
/// hypercall overlay page (docs/contract.md §1 step 5f).
#[derive(Debug)]
pub struct CallerMemory<'a> {
    ram: &'a GuestRam,
    /// GPA of the hypercall overlay page, if it is enabled.
    overlay: Option<u64>,
}

impl<'a> CallerMemory<'a> {
    /// A view of `ram` with the overlay page (page-aligned GPA) excluded.
    pub fn new(ram: &'a GuestRam, overlay: Option<u64>) -> Self {
        Self { ram, overlay }
    }

    fn overlaps_overlay(&self, gpa: u64, len: u64) -> bool {
        let Some(page) = self.overlay else {
            return false;
        };
        // Both ranges are inside RAM here, so the ends cannot overflow.
        len != 0 && gpa < page.saturating_add(PAGE_SIZE) && page < gpa.saturating_add(len)
    }
}

impl PartitionMemory for CallerMemory<'_> {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        self.ram.contains(gpa, len) && !self.overlaps_overlay(gpa, len)
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len() as u64;
        if !self.is_ram(gpa, len) {
            return Err(MemoryError::NotRam { gpa, len });
        }
        self.ram
            .read(gpa, buf)
            .map_err(|_| MemoryError::NotRam { gpa, len })
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        let len = data.len() as u64;
        if !self.is_ram(gpa, len) {
            return Err(MemoryError::NotRam { gpa, len });
        }
        self.ram
            .write(gpa, data)
            .map_err(|_| MemoryError::NotRam { gpa, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_bounded_and_overflow_safe() {
        let ram = GuestRam::new(2).unwrap();
        assert!(ram.contains(0, 2 << 20));
        assert!(!ram.contains(1, 2 << 20));
        assert!(!ram.contains(u64::MAX, 2));
        assert!(ram.contains(2 << 20, 0));
        let mut b = [0u8; 8];
        assert!(ram.read((2 << 20) - 4, &mut b).is_err());
        assert!(ram.write(u64::MAX - 3, &b).is_err());
    }

    #[test]
    fn size_limits() {
        assert!(GuestRam::new(1).is_err());
        assert!(GuestRam::new(MAX_RAM_MIB + 1).is_err());
    }

    #[test]
    fn overlay_page_is_not_ram_for_hypercalls_step_5f() {
        let ram = GuestRam::new(2).unwrap();
        let mut m = CallerMemory::new(&ram, Some(0x10_0000));
        assert!(m.is_ram(0xF_F000, 0x1000));
        assert!(!m.is_ram(0xF_FFF8, 16));
        assert!(!m.is_ram(0x10_0FF8, 8));
        assert!(m.is_ram(0x10_1000, 8));
        assert!(!m.is_ram(0x1F_FFF8, 16));
        assert!(m.write(0x10_0000, &[1]).is_err());
        m.write(0x10_1000, &[7]).unwrap();
        let mut b = [0u8; 1];
        m.read(0x10_1000, &mut b).unwrap();
        assert_eq!(b, [7]);
    }

    proptest::proptest! {
        /// `is_ram` against a byte-set model computed in u128 (no
        /// overflow possible there), including ranges that wrap 2^64.
        #[test]
        fn is_ram_matches_a_simple_model(
            gpa in proptest::prop_oneof![0u64..0x30_0000, proptest::num::u64::ANY],
            len in proptest::prop_oneof![0u64..0x2000, proptest::num::u64::ANY],
            page in proptest::option::of(0u64..0x200),
        ) {
            let ram = GuestRam::new(2).unwrap();
            let overlay = page.map(|p| p * PAGE_SIZE);
            let m = CallerMemory::new(&ram, overlay);
            let (start, end) = (u128::from(gpa), u128::from(gpa) + u128::from(len));
            let in_ram = end <= 2 << 20;
            let hits_overlay = overlay.is_some_and(|p| {
                let p = u128::from(p);
                len != 0 && start < p + 4096 && p < end
            });
            proptest::prop_assert_eq!(m.is_ram(gpa, len), in_ram && !hits_overlay);
        }
    }
}
