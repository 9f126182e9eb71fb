//! The 64-bit hypercall input value ("control") and result value
//! (TLFS hypercall interface). docs/contract.md in the
//! repository states the bit layout and the checks hvcall applies to it.

use bitfield_struct::bitfield;

use crate::HvStatus;

/// Hypercall input value: call code, form, header size and rep fields.
///
/// ```
/// use hvcall_abi::HypercallControl;
/// let c = HypercallControl::new().with_code(0x50).with_rep_count(3);
/// assert_eq!(c.into_bits(), 0x50 | (3 << 32));
/// assert_eq!(c.reserved_bits(), 0);
/// ```
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct HypercallControl {
    /// Call code (bits 15:0).
    pub code: u16,
    /// Fast (register-based) form (bit 16).
    pub fast: bool,
    /// Variable header size in 8-byte units (bits 26:17).
    #[bits(10)]
    pub variable_header_size: u16,
    /// RsvdZ (bits 30:27).
    #[bits(4)]
    pub reserved_27_30: u8,
    /// Is Nested: ask the L0 hypervisor to handle the call (bit 31).
    pub nested: bool,
    /// Rep count (bits 43:32).
    #[bits(12)]
    pub rep_count: u16,
    /// RsvdZ (bits 47:44).
    #[bits(4)]
    pub reserved_44_47: u8,
    /// Rep start index (bits 59:48).
    #[bits(12)]
    pub rep_start: u16,
    /// RsvdZ (bits 63:60).
    #[bits(4)]
    pub reserved_60_63: u8,
}

impl HypercallControl {
    /// Every RsvdZ bit of the control word: 30:27, 47:44 and 63:60.
    pub const RESERVED_MASK: u64 = (0xF << 27) | (0xF << 44) | (0xF << 60);

    /// The reserved bits that are set (0 for a well-formed control word).
    pub const fn reserved_bits(&self) -> u64 {
        self.into_bits() & Self::RESERVED_MASK
    }
}

/// Hypercall result value: status and reps completed.
///
/// ```
/// use hvcall_abi::{HvStatus, HypercallResult};
/// let r = HypercallResult::new().with_status(HvStatus::SUCCESS).with_reps_completed(4);
/// assert_eq!(r.into_bits(), 4 << 32);
/// ```
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct HypercallResult {
    /// Status (bits 15:0).
    #[bits(16, from = HvStatus, into = u16_of_status)]
    pub status: HvStatus,
    /// Reserved (bits 31:16); written as zero, ignored on read.
    #[bits(16)]
    __: u16,
    /// Reps completed, an absolute element index (bits 43:32).
    #[bits(12)]
    pub reps_completed: u16,
    /// Reserved (bits 63:44).
    #[bits(20)]
    __: u32,
}

const fn u16_of_status(s: HvStatus) -> u16 {
    s.0
}

impl HypercallResult {
    /// A result with `status` and `reps_completed`.
    pub const fn of(status: HvStatus, reps_completed: u16) -> Self {
        Self::new()
            .with_status(status)
            .with_reps_completed(reps_completed)
    }
}

const _: () = assert!(core::mem::size_of::<HypercallControl>() == 8);
const _: () = assert!(core::mem::size_of::<HypercallResult>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_fields_land_on_digest_bits() {
        let c = HypercallControl::new()
            .with_code(0xFFFF)
            .with_fast(true)
            .with_variable_header_size(0x3FF)
            .with_nested(true)
            .with_rep_count(0xFFF)
            .with_rep_start(0xFFF);
        assert_eq!(c.into_bits(), !HypercallControl::RESERVED_MASK);
        assert_eq!(
            HypercallControl::from_bits(u64::MAX).reserved_bits(),
            HypercallControl::RESERVED_MASK
        );
        assert_eq!(HypercallControl::new().with_fast(true).into_bits(), 1 << 16);
        assert_eq!(
            HypercallControl::new().with_nested(true).into_bits(),
            1 << 31
        );
        assert_eq!(
            HypercallControl::new().with_rep_start(1).into_bits(),
            1 << 48
        );
        assert_eq!(
            HypercallControl::new()
                .with_variable_header_size(1)
                .into_bits(),
            1 << 17
        );
    }

    #[test]
    fn result_fields_land_on_digest_bits() {
        let r = HypercallResult::of(HvStatus::INVALID_VTL_STATE, 0xFFF);
        assert_eq!(r.into_bits(), 0x51 | (0xFFF << 32));
        assert_eq!(
            HypercallResult::from_bits(u64::MAX).status(),
            HvStatus(0xFFFF)
        );
        assert_eq!(HypercallResult::from_bits(u64::MAX).reps_completed(), 0xFFF);
    }
}
