//! The input of HvCallGetVpRegisters (0x0050) and HvCallSetVpRegisters
//! (0x0051): the 16-byte header both share, HV_INPUT_VTL, the sizes of
//! their list elements and the 0x0051 element.

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// HV_INPUT_VTL: which VTL a call targets.
///
/// ```
/// use hvcall_abi::HvInputVtl;
/// let v = HvInputVtl::new().with_target_vtl(1).with_use_target_vtl(true);
/// assert_eq!(v.into_bits(), 0x11);
/// ```
#[bitfield(u8)]
#[derive(PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct HvInputVtl {
    /// Target VTL (bits 3:0), used only when `use_target_vtl` is set.
    #[bits(4)]
    pub target_vtl: u8,
    /// Use `target_vtl` instead of the caller's current VTL (bit 4).
    pub use_target_vtl: bool,
    /// ReservedZ (bits 7:5).
    #[bits(3)]
    pub reserved: u8,
}

impl HvInputVtl {
    /// The VTL this input names: `Some` when `use_target_vtl` is set, `None`
    /// for the caller's own VTL (reserved bits are not looked at).
    ///
    /// ```
    /// use hvcall_abi::vtl::Vtl;
    /// use hvcall_abi::HvInputVtl;
    /// assert_eq!(HvInputVtl::new().target(), None);
    /// let v = HvInputVtl::new().with_target_vtl(2).with_use_target_vtl(true);
    /// assert_eq!(v.target(), Some(Vtl::VTL2));
    /// ```
    pub fn target(self) -> Option<crate::vtl::Vtl> {
        // Four bits always hold a VTL.
        self.use_target_vtl()
            .then(|| crate::vtl::Vtl::new(self.target_vtl()))
            .flatten()
    }
}

/// The 16-byte input header of HvCallGetVpRegisters and
/// HvCallSetVpRegisters.
///
/// ```
/// use hvcall_abi::{GetVpRegistersHeader, HvInputVtl};
/// use zerocopy::IntoBytes;
/// let h = GetVpRegistersHeader::new(hvcall_abi::partition_id::SELF, 1, HvInputVtl::new());
/// assert_eq!(h.as_bytes().len(), 16);
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GetVpRegistersHeader {
    /// Target partition (HV_PARTITION_ID).
    pub partition_id: u64,
    /// Target VP (HV_VP_INDEX).
    pub vp_index: u32,
    /// Target VTL.
    pub input_vtl: HvInputVtl,
    /// RsvdZ bytes 13..16.
    pub reserved: [u8; 3],
}

impl GetVpRegistersHeader {
    /// A header with zeroed reserved bytes.
    pub const fn new(partition_id: u64, vp_index: u32, input_vtl: HvInputVtl) -> Self {
        Self {
            partition_id,
            vp_index,
            input_vtl,
            reserved: [0; 3],
        }
    }

    /// The header as two little-endian qwords: the RDX and R8 of the XMM
    /// fast form.
    ///
    /// ```
    /// use hvcall_abi::{GetVpRegistersHeader, HvInputVtl};
    /// let vtl = HvInputVtl::new().with_target_vtl(1).with_use_target_vtl(true);
    /// let h = GetVpRegistersHeader::new(7, 3, vtl);
    /// assert_eq!(h.qwords(), [7, 3 | 0x11 << 32]);
    /// ```
    pub fn qwords(&self) -> [u64; 2] {
        let [low, high]: [[u8; 8]; 2] = zerocopy::transmute!(*self);
        [u64::from_le_bytes(low), u64::from_le_bytes(high)]
    }
}

/// Size of one input list element (an HV_REGISTER_NAME).
pub const NAME_SIZE: u64 = 4;
/// Size of one output list element (an HV_REGISTER_VALUE).
pub const VALUE_SIZE: u64 = 16;
/// Size of the input header.
pub const HEADER_SIZE: u64 = 16;
/// Size of one HvCallSetVpRegisters input element.
pub const SET_ELEMENT_SIZE: u64 = 32;

/// One input element of HvCallSetVpRegisters (0x0051), after the same
/// header as 0x0050: the name, 12 reserved bytes (must be zero), the value.
///
/// ```
/// use hvcall_abi::{name::x64, HvRegisterValue, SetVpRegistersElement};
/// use zerocopy::IntoBytes;
/// let e = SetVpRegistersElement::new(x64::RBX, HvRegisterValue::from(7u64));
/// assert_eq!(e.as_bytes().len(), 32);
/// assert_eq!(e.as_bytes()[16], 7);
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SetVpRegistersElement {
    /// The register to write.
    pub name: crate::HvRegisterName,
    /// RsvdZ bytes 4..16.
    pub reserved: [u8; 12],
    /// The value to write.
    pub value: crate::HvRegisterValue,
}

impl SetVpRegistersElement {
    /// An element writing `value` to `name`, reserved bytes zero.
    pub const fn new(name: crate::HvRegisterName, value: crate::HvRegisterValue) -> Self {
        Self {
            name,
            reserved: [0; 12],
            value,
        }
    }
}

const _: () = assert!(core::mem::size_of::<SetVpRegistersElement>() == SET_ELEMENT_SIZE as usize);

const _: () = assert!(core::mem::size_of::<HvInputVtl>() == 1);
const _: () = assert!(core::mem::size_of::<GetVpRegistersHeader>() == HEADER_SIZE as usize);
