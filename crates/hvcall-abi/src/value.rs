//! HV_REGISTER_VALUE: the 16-byte value of one register, and
//! typed views of it: x64 architectural layouts in [`x64`], synthetic
//! (hypercall MSR, SynIC, VSM) layouts in [`synthetic`].
//!
//! Every view converts to and from [`HvRegisterValue`] without failing: a
//! 64-bit view reads the low qword (the high one is ignored) and writes it
//! zero-extended; a 128-bit view uses all 16 bytes.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub mod synthetic;
pub mod x64;

pub use synthetic::{
    HypercallMsr, InternalActivity, Sint, VpAssistPage, VsmPartitionStatus, VsmVpStatus,
};
pub use x64::{
    FpControlStatus, FpRegister, InterruptState, PendingExceptionEvent, PendingInterruption,
    SegmentAttributes, SegmentRegister, TableRegister, XmmControlStatus,
};

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
#[derive(
    Copy, Clone, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
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
    /// A feature register (0x100, 0x200–0x209) from the CPUID leaf it
    /// mirrors: EAX, EBX, ECX, EDX packed into bits 31:0, 63:32, 95:64 and
    /// 127:96.
    ///
    /// ```
    /// use hvcall_abi::HvRegisterValue;
    /// let v = HvRegisterValue::from_cpuid([1, 2, 3, 4]);
    /// assert_eq!(v.as_u128(), 1 | 2 << 32 | 3 << 64 | 4 << 96);
    /// assert_eq!(v.cpuid_words(), [1, 2, 3, 4]);
    /// ```
    pub const fn from_cpuid(regs: [u32; 4]) -> Self {
        let [a, b, c, d] = regs;
        Self::from_parts(a as u64 | (b as u64) << 32, c as u64 | (d as u64) << 32)
    }
    /// The four CPUID dwords (EAX, EBX, ECX, EDX) of a feature register.
    pub const fn cpuid_words(&self) -> [u32; 4] {
        let v = self.as_u128();
        [
            v as u32,
            (v >> 32) as u32,
            (v >> 64) as u32,
            (v >> 96) as u32,
        ]
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

/// Implements the conversions between a view and [`HvRegisterValue`]:
/// `bits64` for a `#[bitfield(u64)]` view (low qword, zero-extended),
/// `bits128` for a `#[bitfield(u128)]` view, `bytes` for a 16-byte zerocopy
/// struct.
macro_rules! register_view {
    (bits64 $t:ty) => {
        impl From<$t> for $crate::HvRegisterValue {
            fn from(v: $t) -> Self {
                Self::from(v.into_bits())
            }
        }
        impl From<$crate::HvRegisterValue> for $t {
            fn from(v: $crate::HvRegisterValue) -> Self {
                <$t>::from_bits(v.as_u64())
            }
        }
    };
    (bits128 $t:ty) => {
        impl From<$t> for $crate::HvRegisterValue {
            fn from(v: $t) -> Self {
                Self::from(v.into_bits())
            }
        }
        impl From<$crate::HvRegisterValue> for $t {
            fn from(v: $crate::HvRegisterValue) -> Self {
                <$t>::from_bits(v.as_u128())
            }
        }
    };
    (bytes $t:ty) => {
        const _: () = assert!(core::mem::size_of::<$t>() == 16);
        impl From<$t> for $crate::HvRegisterValue {
            fn from(v: $t) -> Self {
                Self(zerocopy::transmute!(v))
            }
        }
        impl From<$crate::HvRegisterValue> for $t {
            fn from(v: $crate::HvRegisterValue) -> Self {
                zerocopy::transmute!(v.0)
            }
        }
    };
}
pub(crate) use register_view;
