//! HV_STATUS: the 16-bit status of a hypercall (TLFS digest §3).

open_enum! {
    /// A hypercall status. Any `u16` is representable; the named values are
    /// those of the TLFS and the public implementations (digest §3).
    ///
    /// ```
    /// use hvcall_abi::HvStatus;
    /// assert_eq!(HvStatus::INVALID_PARAMETER.0, 5);
    /// assert_eq!(HvStatus(5).to_string(), "HV_STATUS_INVALID_PARAMETER (0x0005)");
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
        /// The partition id names no partition.
        INVALID_PARTITION_ID = 0x000D,
        /// The VP index names no VP.
        INVALID_VP_INDEX = 0x000E,
        /// The target VTL is not enabled.
        INVALID_VTL_STATE = 0x0051,
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
