//! Guest memory of the caller's partition: RAM regions with holes, and
//! overlay pages (such as the hypercall page) that lie inside RAM but that
//! hypercalls may not use.

use std::collections::BTreeSet;

use hvcall_abi::PAGE_SIZE;
use hvcall_dispatch::memory::{MemoryError, PartitionMemory};

/// Why a memory layout was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The region is empty, wraps around 2^64, or is too large to allocate.
    #[error("RAM region {base:#x}+{len:#x} is empty, wraps or is too large")]
    BadRegion {
        /// Base GPA.
        base: u64,
        /// Length in bytes.
        len: u64,
    },
    /// The region overlaps a region added before.
    #[error("RAM region {base:#x}+{len:#x} overlaps another region")]
    Overlap {
        /// Base GPA.
        base: u64,
        /// Length in bytes.
        len: u64,
    },
}

/// One contiguous block of RAM.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Region {
    base: u64,
    bytes: Vec<u8>,
}

impl Region {
    /// One past the last GPA (fits in u64: checked when added, may equal
    /// 2^64 only if the region ends at the top, which `add_region` refuses).
    fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }
}

/// Guest RAM with holes and overlay pages.
///
/// Every byte is zero when a region is added. [`PartitionMemory`] accesses are
/// refused (`MemoryError::NotRam`) unless every byte is inside a region and
/// outside every overlay page; [`GuestRam::peek`] and [`GuestRam::poke`]
/// give tests raw access to regions including overlay pages.
///
/// ```
/// use hvcall_model::GuestRam;
/// use hvcall_dispatch::PartitionMemory;
/// let mut ram = GuestRam::new();
/// ram.add_region(0x1000, 0x2000).unwrap();
/// ram.add_overlay(0x2000);
/// assert!(ram.is_ram(0x1000, 0x1000));
/// assert!(!ram.is_ram(0x1FF8, 16)); // runs into the overlay page
/// assert!(!ram.is_ram(0x0, 8)); // a hole
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestRam {
    regions: Vec<Region>,
    overlays: BTreeSet<u64>,
}

impl GuestRam {
    /// Memory with no RAM at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Memory with one zero-filled region.
    pub fn with_region(base: u64, len: u64) -> Result<Self, LayoutError> {
        let mut ram = Self::new();
        ram.add_region(base, len)?;
        Ok(ram)
    }

    /// Add a zero-filled RAM region `[base, base + len)`. Regions may touch
    /// but not overlap; at most 16 MiB each.
    pub fn add_region(&mut self, base: u64, len: u64) -> Result<(), LayoutError> {
        const MAX_REGION: u64 = 16 << 20;
        let end = base.checked_add(len);
        if len == 0 || len > MAX_REGION || end.is_none() {
            return Err(LayoutError::BadRegion { base, len });
        }
        let end = end.unwrap_or(base);
        if self.regions.iter().any(|r| base < r.end() && r.base < end) {
            return Err(LayoutError::Overlap { base, len });
        }
        let bytes =
            vec![0; usize::try_from(len).map_err(|_| LayoutError::BadRegion { base, len })?];
        self.regions.push(Region { base, bytes });
        self.regions.sort_by_key(|r| r.base);
        Ok(())
    }

    /// Mark the 4 KiB page containing `gpa` as an overlay: its bytes stay
    /// readable through [`GuestRam::peek`] but hypercalls may not use it.
    pub fn add_overlay(&mut self, gpa: u64) {
        self.overlays.insert(gpa - gpa % PAGE_SIZE);
    }

    /// The overlay pages (page-aligned GPAs).
    pub fn overlays(&self) -> impl Iterator<Item = u64> + '_ {
        self.overlays.iter().copied()
    }

    /// The RAM regions as `(base, len)`, in address order.
    pub fn regions(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.regions.iter().map(|r| (r.base, r.bytes.len() as u64))
    }

    /// Raw read, ignoring overlays; `None` unless every byte is in a region.
    pub fn peek(&self, gpa: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = vec![0; len];
        self.visit(gpa, len as u64, |offset, piece| {
            out.get_mut(offset..offset + piece.len())?
                .copy_from_slice(piece);
            Some(())
        })?;
        Some(out)
    }

    /// Raw write, ignoring overlays; `None` (and nothing written) unless
    /// every byte is in a region.
    pub fn poke(&mut self, gpa: u64, data: &[u8]) -> Option<()> {
        self.covered(gpa, data.len() as u64).then_some(())?;
        let mut written = 0usize;
        while written < data.len() {
            let at = gpa.checked_add(written as u64)?;
            let region = self
                .regions
                .iter_mut()
                .find(|r| r.base <= at && at < r.end())?;
            let offset = usize::try_from(at - region.base).ok()?;
            let room = region.bytes.len() - offset;
            let n = room.min(data.len() - written);
            region
                .bytes
                .get_mut(offset..offset + n)?
                .copy_from_slice(data.get(written..written + n)?);
            written += n;
        }
        Some(())
    }

    /// Whether every byte of `[gpa, gpa + len)` is in some region.
    fn covered(&self, gpa: u64, len: u64) -> bool {
        self.visit(gpa, len, |_, _| Some(())).is_some()
    }

    /// Call `f(offset in the range, bytes)` for the piece of the range in
    /// each region it crosses; `None` if some byte is in no region.
    fn visit(
        &self,
        gpa: u64,
        len: u64,
        mut f: impl FnMut(usize, &[u8]) -> Option<()>,
    ) -> Option<()> {
        let end = gpa.checked_add(len)?;
        let mut at = gpa;
        while at < end {
            let region = self.regions.iter().find(|r| r.base <= at && at < r.end())?;
            let stop = end.min(region.end());
            let from = usize::try_from(at - region.base).ok()?;
            let to = usize::try_from(stop - region.base).ok()?;
            f(usize::try_from(at - gpa).ok()?, region.bytes.get(from..to)?)?;
            at = stop;
        }
        Some(())
    }

    fn touches_overlay(&self, gpa: u64, len: u64) -> bool {
        if len == 0 {
            return false;
        }
        let last = gpa.saturating_add(len - 1);
        let first_page = gpa - gpa % PAGE_SIZE;
        self.overlays.range(first_page..=last).next().is_some()
    }
}

impl PartitionMemory for GuestRam {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        self.covered(gpa, len) && !self.touches_overlay(gpa, len)
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len() as u64;
        if !self.is_ram(gpa, len) {
            return Err(MemoryError::NotRam { gpa, len });
        }
        let bytes = self
            .peek(gpa, buf.len())
            .ok_or(MemoryError::NotRam { gpa, len })?;
        buf.copy_from_slice(&bytes);
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        let len = data.len() as u64;
        if !self.is_ram(gpa, len) {
            return Err(MemoryError::NotRam { gpa, len });
        }
        self.poke(gpa, data).ok_or(MemoryError::NotRam { gpa, len })
    }

    /// Lends a range that lies inside one region and outside every overlay
    /// page (a range across two touching regions is written piece by piece
    /// instead).
    fn lend_mut(&mut self, gpa: u64, len: u64) -> Option<&mut [u8]> {
        if !self.is_ram(gpa, len) {
            return None;
        }
        let region = self
            .regions
            .iter_mut()
            .find(|r| r.base <= gpa && gpa < r.end())?;
        let start = usize::try_from(gpa - region.base).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        region.bytes.get_mut(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_may_span_touching_regions_but_not_holes() {
        let mut ram = GuestRam::new();
        ram.add_region(0x1000, 0x1000).unwrap();
        ram.add_region(0x2000, 0x1000).unwrap();
        ram.add_region(0x4000, 0x1000).unwrap();
        assert!(ram.is_ram(0x1FF0, 0x20));
        assert!(!ram.is_ram(0x2FF0, 0x20));
        assert!(!ram.is_ram(u64::MAX - 3, 8));
        ram.write(0x1FFC, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let mut back = [0u8; 8];
        ram.read(0x1FFC, &mut back).unwrap();
        assert_eq!(back, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            ram.lend_mut(0x1FFC, 4).map(|s| s.to_vec()),
            Some(vec![1, 2, 3, 4])
        );
        assert!(ram.lend_mut(0x1FFC, 8).is_none(), "two regions: not lent");
        assert!(ram.lend_mut(0x2FF0, 0x20).is_none(), "a hole");
    }

    #[test]
    fn overlays_block_hypercall_access_only() {
        let mut ram = GuestRam::with_region(0, 0x3000).unwrap();
        ram.add_overlay(0x1234);
        assert!(ram.is_ram(0, 0x1000));
        assert!(!ram.is_ram(0xFF8, 16));
        assert!(ram.write(0x1000, &[1]).is_err());
        assert!(ram.lend_mut(0x1000, 1).is_none());
        assert!(ram.poke(0x1000, &[1]).is_some());
        assert_eq!(ram.peek(0x1000, 1), Some(vec![1]));
        assert_eq!(ram.overlays().collect::<Vec<_>>(), vec![0x1000]);
    }

    #[test]
    fn bad_regions_are_refused() {
        let mut ram = GuestRam::with_region(0x1000, 0x1000).unwrap();
        assert!(ram.add_region(0x1800, 0x1000).is_err());
        assert!(ram.add_region(u64::MAX, 2).is_err());
        assert!(ram.add_region(0, 0).is_err());
    }
}
