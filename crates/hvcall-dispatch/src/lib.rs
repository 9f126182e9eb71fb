//! Hypervisor-side dispatcher for Hyper-V hypercalls.
//!
//! A VMM hands the dispatcher what it knows after a hypercall exit: the
//! caller's registers ([`CallerRegisters`]), its guest memory
//! ([`PartitionMemory`]), and its backend: partition and VP topology and
//! policy ([`Partitions`]) and register values ([`RegisterSource`], one
//! snapshot per call). The dispatcher decodes the call with the right
//! calling convention ([`Convention`]), runs the checks of the contract in
//! order, does the work, writes the result registers and returns the
//! [`Outcome`] the VMM must apply, or the backend's own host failure. It
//! knows nothing of KVM or threads. [`read_registers`] is the same read
//! for the host itself (a parent partition, a debugger), typed, without a
//! guest control word or memory.
//!
//! Unimplemented call codes get `HV_STATUS_INVALID_HYPERCALL_CODE`, so new
//! calls plug in beside HvCallGetVpRegisters without touching the ABI layer.
//!
//! Modules: [`dispatch`](mod@dispatch) (entry point, steps 1–4),
//! [`convention`] (the four ABIs), `get_vp_registers` (steps 5–7, rep loop),
//! `fast` (fast-form register file), `input` (the call's input, read in
//! place), [`pending`] (continuation state), [`host`] (host reads), and the
//! traits in [`registers`], [`memory`] and [`backend`].
#![no_std]
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod backend;
pub mod convention;
pub mod dispatch;
mod fast;
mod get_vp_registers;
pub mod host;
mod input;
pub mod memory;
pub mod pending;
pub mod registers;

pub use backend::{
    Backend, Caller, PartitionInfo, Partitions, RegisterSource, SnapshotRequest, SourceError,
    Target,
};
pub use convention::{CallContext, Convention};
pub use dispatch::{dispatch, DispatchConfig, Outcome};
pub use host::{read_registers, HostRead, HostReadError};
pub use memory::{MemoryError, PartitionMemory};
pub use pending::VpState;
pub use registers::{CallerRegisters, RegisterFile};
