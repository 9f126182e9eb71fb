//! Typed views of x64 architectural register values (TLFS HV_REGISTER_VALUE): segment and
//! table registers, x87/SSE state, pending interruption, interrupt state and
//! the pending exception event.

use bitfield_struct::bitfield;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::register_view;

/// HV_X64_SEGMENT_REGISTER (Es..Tr): base @0, limit @8, selector @12,
/// attributes @14.
///
/// ```
/// use hvcall_abi::value::{SegmentAttributes, SegmentRegister};
/// use hvcall_abi::HvRegisterValue;
/// let cs = SegmentRegister {
///     base: 0,
///     limit: 0xFFFF_FFFF,
///     selector: 0x08,
///     attributes: SegmentAttributes::new()
///         .with_segment_type(0xB)
///         .with_non_system(true)
///         .with_present(true)
///         .with_long(true)
///         .with_granularity(true),
/// };
/// let v = HvRegisterValue::from(cs);
/// assert_eq!(v.high(), 0xFFFF_FFFF | 0x08 << 32 | 0xA09B << 48);
/// assert_eq!(SegmentRegister::from(v), cs);
/// ```
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SegmentRegister {
    /// Base address.
    pub base: u64,
    /// Byte limit (a full 32-bit limit; with G = 1 the low 12 bits are ones).
    pub limit: u32,
    /// Selector.
    pub selector: u16,
    /// Attributes (the access-rights bits).
    pub attributes: SegmentAttributes,
}
register_view!(bytes SegmentRegister);

/// The attributes of a [`SegmentRegister`].
#[bitfield(u16)]
#[derive(PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SegmentAttributes {
    /// Segment type (bits 3:0).
    #[bits(4)]
    pub segment_type: u8,
    /// S: code/data rather than system segment (bit 4).
    pub non_system: bool,
    /// Descriptor privilege level (bits 6:5).
    #[bits(2)]
    pub dpl: u8,
    /// P: present; 0 makes the segment act like a null selector (bit 7).
    pub present: bool,
    /// Reserved (bits 11:8).
    #[bits(4)]
    pub reserved: u8,
    /// AVL: available to software (bit 12).
    pub available: bool,
    /// L: 64-bit code segment (bit 13).
    pub long: bool,
    /// D/B: default operation size (bit 14).
    pub default_big: bool,
    /// G: granularity (bit 15).
    pub granularity: bool,
}

/// HV_X64_TABLE_REGISTER (Idtr, Gdtr): 6 pad bytes, limit @6, base @8.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TableRegister {
    /// Padding (bytes 0..6).
    pub pad: [u16; 3],
    /// Limit.
    pub limit: u16,
    /// Base address.
    pub base: u64,
}
register_view!(bytes TableRegister);

/// HV_X64_FP_REGISTER (FpMmx0..7): an 80-bit x87 register (or MMX in the
/// mantissa).
#[bitfield(u128)]
#[derive(PartialEq, Eq)]
pub struct FpRegister {
    /// Mantissa (bits 63:0); the MMX register when used as MMn.
    pub mantissa: u64,
    /// Biased exponent (bits 78:64).
    #[bits(15)]
    pub biased_exponent: u16,
    /// Sign (bit 79).
    pub sign: bool,
    /// Reserved (bits 127:80).
    #[bits(48)]
    pub reserved: u64,
}
register_view!(bits128 FpRegister);

/// HV_X64_FP_CONTROL_STATUS_REGISTER: x87 control, status, abridged tag,
/// last opcode and last instruction pointer.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct FpControlStatus {
    /// FCW (@0).
    pub fp_control: u16,
    /// FSW (@2).
    pub fp_status: u16,
    /// Abridged tag byte, one bit per register (@4).
    pub fp_tag: u8,
    /// Byte 5: bit 0 IgnNe (HDK), other bits reserved.
    pub reserved: u8,
    /// FOP, the last x87 opcode (@6).
    pub last_fp_op: u16,
    /// Last x87 instruction pointer (@8), in long mode; see
    /// [`last_fp_eip`](Self::last_fp_eip) and [`last_fp_cs`](Self::last_fp_cs)
    /// for the 32-bit form.
    pub last_fp_rip: u64,
}
register_view!(bytes FpControlStatus);

impl FpControlStatus {
    /// The 32-bit form's LastFpEip (bytes 8..12).
    pub const fn last_fp_eip(&self) -> u32 {
        self.last_fp_rip as u32
    }
    /// The 32-bit form's LastFpCs (bytes 12..14).
    pub const fn last_fp_cs(&self) -> u16 {
        (self.last_fp_rip >> 32) as u16
    }
}

/// HV_X64_XMM_CONTROL_STATUS_REGISTER: last x87 data pointer, MXCSR and
/// MXCSR_MASK.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XmmControlStatus {
    /// Last x87 data pointer (@0), in long mode; see
    /// [`last_fp_dp`](Self::last_fp_dp) and [`last_fp_ds`](Self::last_fp_ds)
    /// for the 32-bit form.
    pub last_fp_rdp: u64,
    /// MXCSR (@8).
    pub xmm_status_control: u32,
    /// MXCSR_MASK (@12).
    pub xmm_status_control_mask: u32,
}
register_view!(bytes XmmControlStatus);

impl XmmControlStatus {
    /// The 32-bit form's LastFpDp (bytes 0..4).
    pub const fn last_fp_dp(&self) -> u32 {
        self.last_fp_rdp as u32
    }
    /// The 32-bit form's LastFpDs (bytes 4..6).
    pub const fn last_fp_ds(&self) -> u16 {
        (self.last_fp_rdp >> 32) as u16
    }
}

/// Values of [`PendingInterruption::interruption_type`].
pub mod interruption_type {
    /// External interrupt.
    pub const EXTERNAL_INTERRUPT: u8 = 0;
    /// Non-maskable interrupt.
    pub const NMI: u8 = 2;
    /// Hardware exception.
    pub const HARDWARE_EXCEPTION: u8 = 3;
    /// Software interrupt (INT n).
    pub const SOFTWARE_INTERRUPT: u8 = 4;
    /// Privileged software exception (e.g. INT1).
    pub const PRIVILEGED_SOFTWARE_EXCEPTION: u8 = 5;
    /// Software exception (INT3, INTO).
    pub const SOFTWARE_EXCEPTION: u8 = 6;
}

/// HV_X64_PENDING_INTERRUPTION_REGISTER (PendingInterruption). When
/// `interruption_pending` is clear the other fields are ignored.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct PendingInterruption {
    /// An interruption is pending (bit 0).
    pub interruption_pending: bool,
    /// One of [`interruption_type`] (bits 3:1).
    #[bits(3)]
    pub interruption_type: u8,
    /// Deliver `error_code` (bit 4).
    pub deliver_error_code: bool,
    /// Instruction length, for software interrupts and exceptions (bits 8:5).
    #[bits(4)]
    pub instruction_length: u8,
    /// NestedEvent (bit 9; Linux/HDK/OpenVMM, reserved in PDF6).
    pub nested_event: bool,
    /// Reserved (bits 15:10).
    #[bits(6)]
    pub reserved: u8,
    /// Vector (bits 31:16).
    pub interruption_vector: u16,
    /// Error code (bits 63:32).
    pub error_code: u32,
}
register_view!(bits64 PendingInterruption);

/// HV_X64_INTERRUPT_STATE_REGISTER (InterruptState).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct InterruptState {
    /// STI/MOV SS interrupt shadow (bit 0).
    pub interrupt_shadow: bool,
    /// NMIs are blocked (bit 1).
    pub nmi_masked: bool,
    /// Reserved (bits 63:2).
    #[bits(62)]
    pub reserved: u64,
}
register_view!(bits64 InterruptState);

/// Values of [`PendingExceptionEvent::event_type`].
pub mod event_type {
    /// Exception.
    pub const EXCEPTION: u8 = 0;
    /// Memory intercept.
    pub const MEMORY_INTERCEPT: u8 = 1;
    /// Nested memory intercept.
    pub const NESTED_MEMORY_INTERCEPT: u8 = 2;
    /// Virtualization fault.
    pub const VIRTUALIZATION_FAULT: u8 = 3;
    /// Hypercall output.
    pub const HYPERCALL_OUTPUT: u8 = 4;
    /// External interrupt.
    pub const EXT_INT: u8 = 5;
    /// Shadow IPT.
    pub const SHADOW_IPT: u8 = 6;
}

/// HV_X64_PENDING_EXCEPTION_EVENT (a 128-bit pending event, e.g. in
/// PendingEvent0).
#[bitfield(u128)]
#[derive(PartialEq, Eq)]
pub struct PendingExceptionEvent {
    /// An event is pending (bit 0).
    pub event_pending: bool,
    /// One of [`event_type`] (bits 3:1).
    #[bits(3)]
    pub event_type: u8,
    /// Reserved (bits 7:4).
    #[bits(4)]
    pub reserved_4_7: u8,
    /// Deliver `error_code` (bit 8).
    pub deliver_error_code: bool,
    /// Reserved (bits 15:9).
    #[bits(7)]
    pub reserved_9_15: u8,
    /// Exception vector (bits 31:16).
    pub vector: u16,
    /// Error code (bits 63:32).
    pub error_code: u32,
    /// Exception parameter, e.g. the CR2 value of a #PF (bits 127:64).
    pub exception_parameter: u64,
}
register_view!(bits128 PendingExceptionEvent);

const _: () = assert!(core::mem::size_of::<SegmentAttributes>() == 2);
const _: () = assert!(core::mem::size_of::<FpRegister>() == 16);
const _: () = assert!(core::mem::size_of::<PendingInterruption>() == 8);
const _: () = assert!(core::mem::size_of::<InterruptState>() == 8);
const _: () = assert!(core::mem::size_of::<PendingExceptionEvent>() == 16);
