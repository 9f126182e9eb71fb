//! The input of HvCallGetVpRegisters (header and register names), read
//! whole on a call's first entry and kept until the call completes
//! (docs/contract.md §1 "overlapping lists", §2).

use hvcall_abi::input::{HEADER_SIZE, NAME_SIZE, SET_ELEMENT_SIZE, VALUE_SIZE};
use hvcall_abi::{
    GetVpRegistersHeader, HvInputVtl, HvRegisterName, HvRegisterValue, SetVpRegistersElement,
    PAGE_SIZE,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::fast::FastLayout;
use crate::memory::{MemoryError, PartitionMemory};
use crate::registers::CallerRegisters;

/// The most elements one call can have: the output list must fit in one
/// page (step 5e) and a fast call fits even fewer.
pub(crate) const MAX_REPS: usize = (PAGE_SIZE / VALUE_SIZE) as usize;

const HEADER_LEN: usize = HEADER_SIZE as usize;
const _: () = assert!(core::mem::size_of::<CallInput>() == HEADER_LEN + MAX_REPS * NAME_LEN);
const NAME_LEN: usize = NAME_SIZE as usize;

/// Size in bytes of the input of a call with `count` elements.
pub(crate) const fn input_len(count: u16) -> u64 {
    HEADER_SIZE + NAME_SIZE * count as u64
}

/// Size in bytes of the input of an HvCallSetVpRegisters with `count`
/// elements.
pub(crate) const fn set_input_len(count: u16) -> u64 {
    HEADER_SIZE + SET_ELEMENT_SIZE * count as u64
}

/// Size in bytes of the output of a call with `count` elements.
pub(crate) const fn output_len(count: u16) -> u64 {
    VALUE_SIZE * count as u64
}

/// The header and the names `start..count` of one call, read in place:
/// the VP's [`VpState`](crate::VpState) owns one, a first entry reads the
/// header and exactly those names into it, and nothing else is written
/// (names outside the range hold what an earlier call left and are never
/// read).
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub(crate) struct CallInput {
    /// The 16-byte header.
    pub(crate) header: GetVpRegistersHeader,
    names: [HvRegisterName; MAX_REPS],
}

impl CallInput {
    /// An all-zero input (once per VP).
    pub(crate) const fn new() -> Self {
        Self {
            header: GetVpRegistersHeader::new(0, 0, HvInputVtl::new()),
            names: [HvRegisterName(0); MAX_REPS],
        }
    }

    /// Read the input list at `gpa`: the header and names `0..count`, in
    /// one read (the header and the names lie back to back here as in
    /// guest memory). The caller has checked the whole list is guest RAM
    /// within one page, so `count <= MAX_REPS`; names past `MAX_REPS` are
    /// never read. Names before `start` are read with the rest but never
    /// used.
    pub(crate) fn read_memory<M: PartitionMemory + ?Sized>(
        &mut self,
        memory: &M,
        gpa: u64,
        count: u16,
    ) -> Result<(), MemoryError> {
        let names = usize::from(count).min(MAX_REPS);
        let len = HEADER_LEN + names * NAME_LEN;
        if let Some(bytes) = self.as_mut_bytes().get_mut(..len) {
            memory.read(gpa, bytes)?;
        }
        if let Some(names) = self.names.get_mut(..names) {
            from_le(names);
        }
        Ok(())
    }

    /// Read a fast call's input from the register file in place: its
    /// image (the header followed by the names) has this buffer's layout.
    pub(crate) fn read_fast<R: CallerRegisters + ?Sized>(
        &mut self,
        layout: &FastLayout,
        regs: &mut R,
        count: u16,
    ) {
        layout.read_input(regs, self.as_mut_bytes());
        if let Some(names) = self.names.get_mut(..usize::from(count).min(MAX_REPS)) {
            from_le(names);
        }
    }

    /// The name of element `index` (zero if it was never read).
    #[cfg(test)]
    pub(crate) fn name(&self, index: u16) -> HvRegisterName {
        self.names
            .get(usize::from(index))
            .copied()
            .unwrap_or(HvRegisterName(0))
    }

    /// The names of elements `range` (empty if the range is not within
    /// the names a call can have).
    pub(crate) fn names(&self, range: core::ops::Range<u16>) -> &[HvRegisterName] {
        self.names
            .get(usize::from(range.start)..usize::from(range.end))
            .unwrap_or_default()
    }
}

/// The most elements one HvCallSetVpRegisters can have: its input list
/// (16 + 32n bytes) must fit in one page (step 5e).
pub(crate) const MAX_SET_REPS: usize = ((PAGE_SIZE - HEADER_SIZE) / SET_ELEMENT_SIZE) as usize;

/// The header and elements of one HvCallSetVpRegisters, read in place like
/// [`CallInput`] (elements outside the call's range are never used).
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub(crate) struct SetInput {
    /// The 16-byte header.
    pub(crate) header: GetVpRegistersHeader,
    elements: [SetVpRegistersElement; MAX_SET_REPS],
}

const _: () = assert!(
    core::mem::size_of::<SetInput>() == HEADER_LEN + MAX_SET_REPS * SET_ELEMENT_SIZE as usize
);

impl SetInput {
    /// An all-zero input (once per VP).
    pub(crate) const fn new() -> Self {
        Self {
            header: GetVpRegistersHeader::new(0, 0, HvInputVtl::new()),
            elements: [SetVpRegistersElement::new(HvRegisterName(0), HvRegisterValue([0; 16]));
                MAX_SET_REPS],
        }
    }

    /// Read the input list at `gpa`: the header and elements `0..count`,
    /// in one read. The caller checked the list is RAM within one page.
    pub(crate) fn read_memory<M: PartitionMemory + ?Sized>(
        &mut self,
        memory: &M,
        gpa: u64,
        count: u16,
    ) -> Result<(), MemoryError> {
        let count = usize::from(count).min(MAX_SET_REPS);
        let len = HEADER_LEN + count * SET_ELEMENT_SIZE as usize;
        if let Some(bytes) = self.as_mut_bytes().get_mut(..len) {
            memory.read(gpa, bytes)?;
        }
        self.names_from_le(count);
        Ok(())
    }

    /// Read a fast call's input from the register file in place.
    pub(crate) fn read_fast<R: CallerRegisters + ?Sized>(
        &mut self,
        layout: &FastLayout,
        regs: &mut R,
        count: u16,
    ) {
        layout.read_input(regs, self.as_mut_bytes());
        self.names_from_le(usize::from(count).min(MAX_SET_REPS));
    }

    /// The elements `range` (empty if not within the elements a call can
    /// have).
    pub(crate) fn elements(&self, range: core::ops::Range<u16>) -> &[SetVpRegistersElement] {
        self.elements
            .get(usize::from(range.start)..usize::from(range.end))
            .unwrap_or_default()
    }

    fn names_from_le(&mut self, count: usize) {
        if cfg!(target_endian = "big") {
            for e in self.elements.iter_mut().take(count) {
                e.name.0 = u32::from_le(e.name.0);
            }
        }
    }
}

/// Names are little-endian on the wire: a no-op on little-endian hosts.
fn from_le(names: &mut [HvRegisterName]) {
    if cfg!(target_endian = "big") {
        for name in names {
            name.0 = u32::from_le(name.0);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_input_is_read_in_place() {
        use crate::convention::Convention;
        use crate::registers::RegisterFile;
        let mut regs = RegisterFile::default();
        regs.gprs[2] = 0xAA; // RDX: partition id
        regs.gprs[8] = 0x11 << 32; // R8: VP 0, VTL byte 0x11
        regs.vectors[0] = 100 | 101 << 32 | 102 << 64; // names 0..3
        let layout = FastLayout::new(Convention::X64, 28, 48).unwrap();
        let mut input = CallInput::new();
        input.read_fast(&layout, &mut regs, 3);
        assert_eq!(input.header.partition_id, 0xAA);
        assert_eq!(input.header.input_vtl.into_bits(), 0x11);
        assert_eq!(input.name(0), HvRegisterName(100));
        assert_eq!(input.name(1), HvRegisterName(101));
        assert_eq!(input.name(2), HvRegisterName(102));
        assert_eq!(input.name(3), HvRegisterName(0));
        assert_eq!(
            input.names(1..3),
            [HvRegisterName(101), HvRegisterName(102)]
        );
        assert_eq!(input.names(0..257), []);
        assert_eq!(MAX_REPS, 256);
    }
}
