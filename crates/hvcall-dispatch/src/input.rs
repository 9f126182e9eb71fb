//! The input of HvCallGetVpRegisters (header and register names), read
//! whole on a call's first entry and kept until the call completes
//! (docs/contract.md §1 "overlapping lists", §2).

use hvcall_abi::input::{HEADER_SIZE, NAME_SIZE, VALUE_SIZE};
use hvcall_abi::{GetVpRegistersHeader, HvRegisterName, PAGE_SIZE};
use zerocopy::FromBytes;

use crate::memory::{GuestMemory, MemoryError};

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

/// The header and the names `start..count` of one call. Names outside that
/// range are never read and stay zero.
#[derive(Clone, Debug)]
pub(crate) struct CallInput {
    /// The 16-byte header.
    pub(crate) header: GetVpRegistersHeader,
    names: [HvRegisterName; MAX_REPS],
}

impl CallInput {
    /// Read the header at `gpa` and names `start..count` after it. The
    /// caller has checked the whole list is guest RAM within one page, so
    /// `count <= MAX_REPS`; names past `MAX_REPS` are never read.
    pub(crate) fn from_memory<M: GuestMemory + ?Sized>(
        memory: &M,
        gpa: u64,
        start: u16,
        count: u16,
    ) -> Result<Self, MemoryError> {
        let mut header = [0u8; HEADER_LEN];
        memory.read(gpa, &mut header)?;
        let mut input = Self::with_header(&header);
        let first = usize::from(start).min(MAX_REPS);
        let end = usize::from(count).min(MAX_REPS);
        let mut bytes = [0u8; MAX_REPS * NAME_LEN];
        if let Some(list) = bytes.get_mut(..end.saturating_sub(first) * NAME_LEN) {
            let offset = HEADER_SIZE + NAME_SIZE * u64::from(start);
            memory.read(gpa.wrapping_add(offset), list)?;
            input.fill_names(first, list);
        }
        Ok(input)
    }

    /// Decode a fast call's input image (the header followed by every
    /// name), keeping names `start..count`.
    pub(crate) fn from_image(image: &[u8], start: u16, count: u16) -> Self {
        let header = image
            .get(..HEADER_LEN)
            .and_then(|h| <[u8; HEADER_LEN]>::try_from(h).ok())
            .unwrap_or([0; HEADER_LEN]);
        let mut input = Self::with_header(&header);
        let first = usize::from(start).min(MAX_REPS);
        let end = usize::from(count).min(MAX_REPS);
        let list = image
            .get(HEADER_LEN + first * NAME_LEN..HEADER_LEN + end * NAME_LEN)
            .unwrap_or_default();
        input.fill_names(first, list);
        input
    }

    /// The name of element `index` (zero if it was never read).
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

    fn with_header(bytes: &[u8; HEADER_LEN]) -> Self {
        let header = GetVpRegistersHeader::read_from_bytes(bytes)
            .unwrap_or_else(|_| GetVpRegistersHeader::new(0, 0, hvcall_abi::HvInputVtl::new()));
        Self {
            header,
            names: [HvRegisterName(0); MAX_REPS],
        }
    }

    fn fill_names(&mut self, first: usize, list: &[u8]) {
        let slots = self.names.iter_mut().skip(first);
        for (slot, bytes) in slots.zip(list.chunks_exact(NAME_LEN)) {
            if let Ok(b) = <[u8; NAME_LEN]>::try_from(bytes) {
                *slot = HvRegisterName(u32::from_le_bytes(b));
            }
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
        let input = CallInput::from_image(&image, 1, 3);
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
