//! HV_REGISTER_VALUE: the 16-byte value of one register (digest §6).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A 16-byte register value, little-endian. Narrower values are
/// zero-extended. Stored as bytes so it can be read from and written to
/// guest memory at any 8-byte-aligned address.
///
/// ```
/// use hvcall_abi::HvRegisterValue;
/// let v = HvRegisterValue::from(0x1234u64);
/// assert_eq!(v.as_u128(), 0x1234);
/// assert_eq!(v.as_u64(), 0x1234);
/// ```
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct HvRegisterValue(pub [u8; 16]);

const _: () = assert!(core::mem::size_of::<HvRegisterValue>() == 16);

impl HvRegisterValue {
    /// The value as a 128-bit integer.
    pub const fn as_u128(&self) -> u128 {
        u128::from_le_bytes(self.0)
    }
    /// The low 64 bits.
    pub const fn as_u64(&self) -> u64 {
        self.as_u128() as u64
    }
    /// The low 32 bits.
    pub const fn as_u32(&self) -> u32 {
        self.as_u128() as u32
    }
    /// The low 16 bits.
    pub const fn as_u16(&self) -> u16 {
        self.as_u128() as u16
    }
    /// The low 8 bits.
    pub const fn as_u8(&self) -> u8 {
        self.as_u128() as u8
    }
    /// The low qword (bytes 0..8).
    pub const fn low(&self) -> u64 {
        self.as_u64()
    }
    /// The high qword (bytes 8..16).
    pub const fn high(&self) -> u64 {
        (self.as_u128() >> 64) as u64
    }
    /// A value from its low and high qwords.
    pub const fn from_parts(low: u64, high: u64) -> Self {
        Self((((high as u128) << 64) | low as u128).to_le_bytes())
    }
}

impl core::fmt::Debug for HvRegisterValue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:#034x}", self.as_u128())
    }
}

macro_rules! from_uint {
    ($($t:ty),*) => {$(
        impl From<$t> for HvRegisterValue {
            fn from(v: $t) -> Self {
                Self((v as u128).to_le_bytes())
            }
        }
    )*};
}
from_uint!(u8, u16, u32, u64, u128);
