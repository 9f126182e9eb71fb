//! The input of HvCallGetVpRegisters (header and register names), read
//! whole on a call's first entry and kept until the call completes
//! (docs/contract.md §1 "overlapping lists", §2).

use hvcall_abi::input::{HEADER_SIZE, NAME_SIZE, VALUE_SIZE};
use hvcall_abi::{GetVpRegistersHeader, HvInputVtl, HvRegisterName, PAGE_SIZE};
use zerocopy::IntoBytes;

use crate::memory::{MemoryError, PartitionMemory};

/// The most elements one call can have: the output list must fit in one
/// page (step 5e) and a fast call fits even fewer.
pub(crate) const MAX_REPS: usize = (PAGE_SIZE / VALUE_SIZE) as usize;

const HEADER_LEN: usize = HEADER_SIZE as usize;
const NAME_LEN: usize = NAME_SIZE as usize;

/// Size in bytes of the input of a call with `count` elements.
pub(crate) const fn input_len(count: u16) -> u64 {
    HEADER_SIZE + NAME_SIZE * count as u64
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
#[derive(Clone, Debug)]
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

    /// Read the header at `gpa` and names `start..count` after it. The
    /// caller has checked the whole list is guest RAM within one page, so
    /// `count <= MAX_REPS`; names past `MAX_REPS` are never read.
    pub(crate) fn read_memory<M: PartitionMemory + ?Sized>(
        &mut self,
        memory: &M,
        gpa: u64,
        start: u16,
        count: u16,
    ) -> Result<(), MemoryError> {
        memory.read(gpa, self.header.as_mut_bytes())?;
        let range = usize::from(start).min(MAX_REPS)..usize::from(count).min(MAX_REPS);
        if let Some(names) = self.names.get_mut(range) {
            let offset = HEADER_SIZE + NAME_SIZE * u64::from(start);
            memory.read(gpa.wrapping_add(offset), names.as_mut_bytes())?;
            from_le(names);
        }
        Ok(())
    }

    /// Decode a fast call's input image (the header followed by every
    /// name), keeping names `start..count`.
    pub(crate) fn read_image(&mut self, image: &[u8], start: u16, count: u16) {
        if let Some(header) = image.get(..HEADER_LEN) {
            self.header.as_mut_bytes().copy_from_slice(header);
        }
        let range = usize::from(start).min(MAX_REPS)..usize::from(count).min(MAX_REPS);
        let bytes = image
            .get(HEADER_LEN + range.start * NAME_LEN..HEADER_LEN + range.end * NAME_LEN)
            .unwrap_or_default();
        if let Some(names) = self.names.get_mut(range) {
            if let Some(dst) = names.as_mut_bytes().get_mut(..bytes.len()) {
                dst.copy_from_slice(bytes);
            }
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

/// Names are little-endian on the wire: a no-op on little-endian hosts.
fn from_le(names: &mut [HvRegisterName]) {
    if cfg!(target_endian = "big") {
        for name in names {
            name.0 = u32::from_le(name.0);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn image_keeps_only_names_from_start() {
        let mut image = [0u8; 28];
        image[0] = 0xAA;
        image[12] = 0x11;
        for (i, chunk) in image[16..].chunks_mut(4).enumerate() {
            chunk.copy_from_slice(&(100 + i as u32).to_le_bytes());
        }
        let mut input = CallInput::new();
        input.read_image(&image, 1, 3);
        assert_eq!(input.header.partition_id, 0xAA);
        assert_eq!(input.header.input_vtl.into_bits(), 0x11);
        assert_eq!(input.name(0), HvRegisterName(0));
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
