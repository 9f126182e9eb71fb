//! Hyper-V Top Level Functional Specification (TLFS) ABI types.
//!
//! Everything that is a TLFS number or wire layout lives here, once: the
//! hypercall control and result words ([`control`]), statuses ([`status`]),
//! the HvCallGetVpRegisters input header and HV_INPUT_VTL ([`input`]),
//! register names ([`name`]: every x64, ARM64 and common name of the TLFS
//! as a constant and a table entry, looked up by TLFS name, short name or
//! number) and values ([`value`]: the 16-byte value and its typed views),
//! the partition privilege mask ([`privilege`]), the discovery
//! interface: CPUID leaves ([`cpuid`]) and synthetic MSRs ([`msr`]), and
//! Virtual Trust Levels ([`vtl`]: a validated VTL, VTL sets, a value per
//! VTL, and which registers the VTLs of a VP share).
//!
//! The crate is `no_std`, has no `unsafe`, and every wire struct's size is
//! checked at compile time. It holds numbers and layouts only; what a
//! hypervisor does with them (the order of checks, the status of each
//! case, continuation, the calling conventions) is the hvcall contract,
//! `docs/contract.md` in the hvcall source tree, shipped in this crate's
//! package as `contract.md`, which `hvcall-dispatch` implements and
//! `hvcall-guest` relies on.
//!
//! # Example
//!
//! Build the control word of a two-element HvCallGetVpRegisters call, look
//! a register name up, and decode a result value:
//!
//! ```
//! use hvcall_abi::name::{self, Arch};
//! use hvcall_abi::{call_code, HvStatus, HypercallControl, HypercallResult};
//!
//! let control = HypercallControl::new()
//!     .with_code(call_code::GET_VP_REGISTERS)
//!     .with_rep_count(2);
//! assert_eq!(control.into_bits(), 0x0000_0002_0000_0050);
//!
//! let rip = name::by_short_name(Arch::X64, "rip").unwrap();
//! assert_eq!(rip.number, name::x64::RIP);
//! assert_eq!(rip.name, "HvX64RegisterRip");
//!
//! let result = HypercallResult::from_bits(0x0000_0001_0000_0005);
//! assert_eq!(result.status(), HvStatus::INVALID_PARAMETER);
//! assert_eq!(result.reps_completed(), 1); // element 1 failed
//! ```
#![no_std]
#![forbid(unsafe_code)]

#[macro_use]
mod open_enum;

pub mod control;
pub mod cpuid;
pub mod input;
pub mod msr;
pub mod name;
pub mod privilege;
pub mod status;
pub mod value;
pub mod vtl;

pub use control::{HypercallControl, HypercallResult};
pub use input::{GetVpRegistersHeader, HvInputVtl, SetVpRegistersElement};
pub use name::{Arch, HvRegisterName};
pub use status::{HvError, HvStatus};
pub use value::HvRegisterValue;

/// Hypercall call codes implemented or referred to by hvcall.
pub mod call_code {
    /// HvCallGetVpRegisters (rep).
    pub const GET_VP_REGISTERS: u16 = 0x0050;
    /// HvCallSetVpRegisters (rep); not implemented yet.
    pub const SET_VP_REGISTERS: u16 = 0x0051;
}

/// Partition ids with a fixed meaning.
pub mod partition_id {
    /// HV_PARTITION_ID_SELF: the caller's own partition.
    pub const SELF: u64 = u64::MAX;
    /// HV_PARTITION_ID_INVALID.
    pub const INVALID: u64 = 0;
}

/// VP indexes with a fixed meaning.
pub mod vp_index {
    /// HV_VP_INDEX_SELF: the calling VP.
    pub const SELF: u32 = 0xFFFF_FFFE;
    /// HV_ANY_VP (not meaningful for HvCallGetVpRegisters).
    pub const ANY: u32 = 0xFFFF_FFFF;
}

/// Size of a guest page, the unit the hypercall lists must not cross.
pub const PAGE_SIZE: u64 = 4096;
