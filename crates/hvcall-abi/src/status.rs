//! HV_STATUS: the 16-bit status of a hypercall (TLFS HV_STATUS).

open_enum! {
    /// A hypercall status. Any `u16` is representable; the named values are
    /// every code the TLFS (v6.0b PDF appendix B), Linux, OpenVMM and the HDK
    /// headers define.
    ///
    /// ```
    /// use hvcall_abi::HvStatus;
    /// assert_eq!(HvStatus::INVALID_PARAMETER.0, 5);
    /// assert_eq!(HvStatus(5).to_string(), "HV_STATUS_INVALID_PARAMETER (0x0005)");
    /// assert_eq!(HvStatus(0x1234).to_string(), "HV_STATUS 0x1234");
    /// ```
    pub struct HvStatus(u16) {
        /// The call succeeded.
        SUCCESS = 0x0000,
        /// The call code is unknown or not implemented.
        INVALID_HYPERCALL_CODE = 0x0002,
        /// The control word is malformed (reserved bits, rep rules, sizes).
        INVALID_HYPERCALL_INPUT = 0x0003,
        /// A GPA is misaligned, a list crosses a page, or lies outside RAM.
        INVALID_ALIGNMENT = 0x0004,
        /// An input field is invalid.
        INVALID_PARAMETER = 0x0005,
        /// The caller lacks the right to do this.
        ACCESS_DENIED = 0x0006,
        /// The partition is not in a state that allows the operation.
        INVALID_PARTITION_STATE = 0x0007,
        /// The operation is not allowed.
        OPERATION_DENIED = 0x0008,
        /// The property is unknown.
        UNKNOWN_PROPERTY = 0x0009,
        /// The property value is out of range.
        PROPERTY_VALUE_OUT_OF_RANGE = 0x000A,
        /// Not enough memory to complete the call.
        INSUFFICIENT_MEMORY = 0x000B,
        /// The partition hierarchy is too deep.
        PARTITION_TOO_DEEP = 0x000C,
        /// The partition id names no partition.
        INVALID_PARTITION_ID = 0x000D,
        /// The VP index names no VP.
        INVALID_VP_INDEX = 0x000E,
        /// The object was not found (PDF6 lists 0x0010 as reserved).
        NOT_FOUND = 0x0010,
        /// The port id is invalid.
        INVALID_PORT_ID = 0x0011,
        /// The connection id is invalid.
        INVALID_CONNECTION_ID = 0x0012,
        /// Not enough message buffers (PDF6 misprints it as 0x0033).
        INSUFFICIENT_BUFFERS = 0x0013,
        /// The message was not acknowledged.
        NOT_ACKNOWLEDGED = 0x0014,
        /// The VP is not in a state that allows the operation.
        INVALID_VP_STATE = 0x0015,
        /// The message was acknowledged.
        ACKNOWLEDGED = 0x0016,
        /// The save/restore state is invalid.
        INVALID_SAVE_RESTORE_STATE = 0x0017,
        /// The SynIC state is invalid.
        INVALID_SYNIC_STATE = 0x0018,
        /// The object is in use.
        OBJECT_IN_USE = 0x0019,
        /// The proximity domain information is invalid.
        INVALID_PROXIMITY_DOMAIN_INFO = 0x001A,
        /// No data is available.
        NO_DATA = 0x001B,
        /// The object is inactive.
        INACTIVE = 0x001C,
        /// No resources are available.
        NO_RESOURCES = 0x001D,
        /// The feature is unavailable.
        FEATURE_UNAVAILABLE = 0x001E,
        /// Only part of a packet was returned.
        PARTIAL_PACKET = 0x001F,
        /// A processor feature is not supported (the HDK's feature-specific
        /// codes were merged into this one).
        PROCESSOR_FEATURE_NOT_SUPPORTED = 0x0020,
        /// The processor cache-line flush size is incompatible.
        PROCESSOR_CACHE_LINE_FLUSH_SIZE_INCOMPATIBLE = 0x0030,
        /// The buffer is too small (PDF6, OpenVMM; the HDK differs).
        INSUFFICIENT_BUFFER = 0x0033,
        /// The processor is incompatible.
        INCOMPATIBLE_PROCESSOR = 0x0037,
        /// Not enough device domains.
        INSUFFICIENT_DEVICE_DOMAINS = 0x0038,
        /// CPUID feature validation failed.
        CPUID_FEATURE_VALIDATION_ERROR = 0x003C,
        /// CPUID XSAVE feature validation failed.
        CPUID_XSAVE_FEATURE_VALIDATION_ERROR = 0x003D,
        /// A processor did not start in time.
        PROCESSOR_STARTUP_TIMEOUT = 0x003E,
        /// SMX is enabled.
        SMX_ENABLED = 0x003F,
        /// The logical processor index is invalid.
        INVALID_LP_INDEX = 0x0041,
        /// The register value is invalid (HvCallSetVpRegisters).
        INVALID_REGISTER_VALUE = 0x0050,
        /// The VTL is not in a state that allows the operation (e.g. not
        /// enabled).
        INVALID_VTL_STATE = 0x0051,
        /// NX is not detected.
        NX_NOT_DETECTED = 0x0055,
        /// The device id is invalid.
        INVALID_DEVICE_ID = 0x0057,
        /// The device state is invalid.
        INVALID_DEVICE_STATE = 0x0058,
        /// Page requests are pending.
        PENDING_PAGE_REQUESTS = 0x0059,
        /// The page request is invalid.
        PAGE_REQUEST_INVALID = 0x0060,
        /// The key already exists (OpenVMM).
        KEY_ALREADY_EXISTS = 0x0065,
        /// The device is already in a domain (OpenVMM).
        DEVICE_ALREADY_IN_DOMAIN = 0x0066,
        /// The CPU group id is invalid (OpenVMM).
        INVALID_CPU_GROUP_ID = 0x006F,
        /// The CPU group state is invalid (OpenVMM).
        INVALID_CPU_GROUP_STATE = 0x0070,
        /// The operation failed.
        OPERATION_FAILED = 0x0071,
        /// Not allowed while nested virtualization is active.
        NOT_ALLOWED_WITH_NESTED_VIRT_ACTIVE = 0x0072,
        /// Not enough root memory (OpenVMM).
        INSUFFICIENT_ROOT_MEMORY = 0x0073,
        /// The event buffer was already freed (OpenVMM).
        EVENT_BUFFER_ALREADY_FREED = 0x0074,
        /// The operation timed out (OpenVMM also uses it internally for
        /// "continue this rep call").
        TIME_OUT = 0x0078,
        /// The call is pending (Linux).
        CALL_PENDING = 0x0079,
        /// The VTL is already enabled.
        VTL_ALREADY_ENABLED = 0x0086,
        /// The register name is unknown (OpenVMM's SynIC path).
        UNKNOWN_REGISTER_NAME = 0x0087,
    }
}

impl HvStatus {
    /// Whether this is [`HvStatus::SUCCESS`].
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }
}

impl core::fmt::Display for HvStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => write!(f, "HV_STATUS_{n} ({:#06x})", self.0),
            None => write!(f, "HV_STATUS {:#06x}", self.0),
        }
    }
}

/// A failed hypercall's status: any [`HvStatus`] but success, so that
/// `Err(SUCCESS)` cannot be written. The dispatcher's backends return it
/// for the statuses a guest sees.
///
/// ```
/// use hvcall_abi::{HvError, HvStatus};
/// assert_eq!(HvError::new(HvStatus::SUCCESS), None);
/// let e = HvError::new(HvStatus::INVALID_PARAMETER).unwrap();
/// assert_eq!(e, HvError::INVALID_PARAMETER);
/// assert_eq!(HvStatus::from(e), HvStatus::INVALID_PARAMETER);
/// assert_eq!(e.to_string(), "HV_STATUS_INVALID_PARAMETER (0x0005)");
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HvError(core::num::NonZeroU16);

impl HvError {
    /// [`HvStatus::INVALID_HYPERCALL_CODE`].
    pub const INVALID_HYPERCALL_CODE: Self = Self::of(HvStatus::INVALID_HYPERCALL_CODE);
    /// [`HvStatus::INVALID_HYPERCALL_INPUT`].
    pub const INVALID_HYPERCALL_INPUT: Self = Self::of(HvStatus::INVALID_HYPERCALL_INPUT);
    /// [`HvStatus::INVALID_ALIGNMENT`].
    pub const INVALID_ALIGNMENT: Self = Self::of(HvStatus::INVALID_ALIGNMENT);
    /// [`HvStatus::INVALID_PARAMETER`].
    pub const INVALID_PARAMETER: Self = Self::of(HvStatus::INVALID_PARAMETER);
    /// [`HvStatus::ACCESS_DENIED`].
    pub const ACCESS_DENIED: Self = Self::of(HvStatus::ACCESS_DENIED);
    /// [`HvStatus::INVALID_PARTITION_ID`].
    pub const INVALID_PARTITION_ID: Self = Self::of(HvStatus::INVALID_PARTITION_ID);
    /// [`HvStatus::INVALID_VP_INDEX`].
    pub const INVALID_VP_INDEX: Self = Self::of(HvStatus::INVALID_VP_INDEX);
    /// [`HvStatus::INVALID_VP_STATE`].
    pub const INVALID_VP_STATE: Self = Self::of(HvStatus::INVALID_VP_STATE);
    /// [`HvStatus::INVALID_VTL_STATE`].
    pub const INVALID_VTL_STATE: Self = Self::of(HvStatus::INVALID_VTL_STATE);
    /// [`HvStatus::INVALID_REGISTER_VALUE`].
    pub const INVALID_REGISTER_VALUE: Self = Self::of(HvStatus::INVALID_REGISTER_VALUE);

    /// The error of a non-success status; `None` for success.
    pub const fn new(status: HvStatus) -> Option<Self> {
        match core::num::NonZeroU16::new(status.0) {
            Some(code) => Some(Self(code)),
            None => None,
        }
    }

    /// For the constants above: a status known not to be success (a
    /// success status fails the build, never a running program).
    const fn of(status: HvStatus) -> Self {
        match Self::new(status) {
            Some(e) => e,
            None => panic!("HV_STATUS_SUCCESS is not an error"),
        }
    }

    /// The status a guest sees.
    pub const fn status(self) -> HvStatus {
        HvStatus(self.0.get())
    }
}

impl From<HvError> for HvStatus {
    fn from(e: HvError) -> Self {
        e.status()
    }
}

impl core::fmt::Debug for HvError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "HvError({})", self.status())
    }
}

impl core::fmt::Display for HvError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.status(), f)
    }
}

impl core::error::Error for HvError {}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{format, string::ToString};

    use super::*;

    #[test]
    fn codes_are_unique_and_ascending() {
        for w in HvStatus::ALL.windows(2) {
            assert!(w[0].1 .0 < w[1].1 .0, "{:?} then {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn display_names_known_codes_and_shows_unknown_ones() {
        assert_eq!(
            HvStatus::INVALID_VTL_STATE.to_string(),
            "HV_STATUS_INVALID_VTL_STATE (0x0051)"
        );
        assert_eq!(HvStatus(0x0001).to_string(), "HV_STATUS 0x0001");
        assert_eq!(format!("{:?}", HvStatus(0x000F)), "HvStatus(0xf)");
    }
}
