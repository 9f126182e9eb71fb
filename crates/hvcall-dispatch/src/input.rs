//! The input of the call being handled or parked, read whole in place on
//! its first entry and kept until it completes (docs/contract.md §1
//! "overlapping lists", §2): one page, viewed as the call's header and
//! elements.

use hvcall_abi::PAGE_SIZE;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::fast::FastLayout;
use crate::memory::{MemoryError, PartitionMemory};
use crate::registers::CallerRegisters;

/// Bytes of an input list: at most one page (step 5e).
const PAGE: usize = PAGE_SIZE as usize;

/// One call's input list, in place: the VP's [`VpState`](crate::VpState)
/// owns one; a first entry reads exactly its list into it, and bytes past
/// the list hold what an earlier call left and are never read.
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(8))]
pub(crate) struct InputPage([u8; PAGE]);

impl InputPage {
    /// An all-zero input (once per VP).
    pub(crate) const fn new() -> Self {
        Self([0; PAGE])
    }

    /// Read `len` bytes of the input list at `gpa`. The caller has checked
    /// the list is guest RAM within one page; a longer `len` reads nothing.
    pub(crate) fn read_memory<M: PartitionMemory + ?Sized>(
        &mut self,
        memory: &M,
        gpa: u64,
        len: u64,
    ) -> Result<(), MemoryError> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        match self.0.get_mut(..len) {
            Some(bytes) => memory.read(gpa, bytes),
            None => Ok(()),
        }
    }

    /// Read a fast call's input image from the register file.
    pub(crate) fn read_fast<R: CallerRegisters + ?Sized>(
        &mut self,
        layout: &FastLayout,
        regs: &mut R,
    ) {
        layout.read_input(regs, &mut self.0);
    }

    /// The header, of type `H`, at the start of the list.
    pub(crate) fn header<H: FromBytes + KnownLayout + Immutable>(&self) -> Option<&H> {
        H::ref_from_prefix(&self.0).ok().map(|(header, _)| header)
    }

    /// Elements `range` of type `T`, after a header of `header` bytes;
    /// empty unless `range.end <= max`.
    pub(crate) fn elements<T: FromBytes + Immutable>(
        &self,
        header: usize,
        max: u16,
        range: core::ops::Range<u16>,
    ) -> &[T] {
        let size = core::mem::size_of::<T>();
        let (start, end) = (usize::from(range.start), usize::from(range.end));
        if range.end > max || start > end {
            return &[];
        }
        self.0
            .get(header + start * size..header + end * size)
            .and_then(|bytes| <[T]>::ref_from_bytes(bytes).ok())
            .unwrap_or_default()
    }

    /// Elements `range` of type `T`, writable (to bring names read as
    /// little-endian to the host's order).
    pub(crate) fn elements_mut<T: FromBytes + IntoBytes + Immutable>(
        &mut self,
        header: usize,
        range: core::ops::Range<u16>,
    ) -> &mut [T] {
        let size = core::mem::size_of::<T>();
        let (start, end) = (usize::from(range.start), usize::from(range.end));
        self.0
            .get_mut(header + start * size..header + end.max(start) * size)
            .and_then(|bytes| <[T]>::mut_from_bytes(bytes).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use hvcall_abi::{GetVpRegistersHeader, HvRegisterName};

    #[test]
    fn a_fast_input_is_read_in_place() {
        use crate::convention::Convention;
        use crate::registers::RegisterFile;
        let mut regs = RegisterFile::default();
        regs.gprs[2] = 0xAA; // RDX: partition id
        regs.gprs[8] = 0x11 << 32; // R8: VP 0, VTL byte 0x11
        regs.vectors[0] = 100 | 101 << 32 | 102 << 64; // names 0..3
        let layout = FastLayout::new(Convention::X64, 28, 48).unwrap();
        let mut input = InputPage::new();
        input.read_fast(&layout, &mut regs);
        let header: &GetVpRegistersHeader = input.header().unwrap();
        assert_eq!(header.partition_id, 0xAA);
        assert_eq!(header.input_vtl.into_bits(), 0x11);
        let names = |r| input.elements::<HvRegisterName>(16, 256, r);
        assert_eq!(names(0..4), [100, 101, 102, 0].map(HvRegisterName));
        assert_eq!(names(1..3), [HvRegisterName(101), HvRegisterName(102)]);
        assert_eq!(names(0..257), []);
    }
}
