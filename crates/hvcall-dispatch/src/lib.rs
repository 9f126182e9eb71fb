//! Hypervisor-side dispatcher for Hyper-V hypercalls.
//!
//! A VMM hands the dispatcher what it knows after a hypercall exit: the
//! caller's registers ([`CallerRegisters`]), its guest memory
//! ([`GuestMemory`]) and its view of partitions and VPs ([`Hypervisor`]).
//! The dispatcher decodes the call with the right calling convention
//! ([`Convention`]), runs the checks of `behaviour.md` in order, does the
//! work, writes the result registers and returns the [`Outcome`] the VMM
//! must apply. It knows nothing of KVM or threads.
//!
//! Unimplemented call codes get `HV_STATUS_INVALID_HYPERCALL_CODE`, so new
//! calls plug in beside [`get_vp_registers`] without touching the ABI layer.
#![no_std]
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod convention;
pub mod hypervisor;
pub mod memory;
pub mod registers;
