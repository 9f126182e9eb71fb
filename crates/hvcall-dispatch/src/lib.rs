//! Hypervisor-side dispatcher for Hyper-V hypercalls.
//!
//! A VMM hands the dispatcher what it knows after a hypercall exit: the
//! caller's registers ([`CallerRegisters`]), its guest memory
//! ([`GuestMemory`]) and its view of partitions and VPs ([`Hypervisor`]).
//! The dispatcher decodes the call with the right calling convention
//! ([`Convention`]), runs the checks of `docs/contract.md` in order, does the
//! work, writes the result registers and returns the [`Outcome`] the VMM
//! must apply. It knows nothing of KVM or threads.
//!
//! Unimplemented call codes get `HV_STATUS_INVALID_HYPERCALL_CODE`, so new
//! calls plug in beside HvCallGetVpRegisters without touching the ABI layer.
//!
//! Modules: [`dispatch`](mod@dispatch) (entry point, steps 1–4),
//! [`convention`] (the four ABIs), `get_vp_registers` (steps 5–7, rep loop),
//! `fast` (fast-form register file), `input` (the call's input),
//! [`pending`] (continuation state), and the traits in [`registers`],
//! [`memory`] and [`hypervisor`].
#![no_std]
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod convention;
pub mod dispatch;
mod fast;
mod get_vp_registers;
pub mod hypervisor;
mod input;
pub mod memory;
pub mod pending;
pub mod registers;

pub use convention::{CallContext, Convention};
pub use dispatch::{dispatch, DispatchConfig, Outcome};
pub use hypervisor::{Caller, Hypervisor, PartitionInfo, Target};
pub use memory::{GuestMemory, MemoryError};
pub use pending::VpState;
pub use registers::{CallerRegisters, RegisterFile};
