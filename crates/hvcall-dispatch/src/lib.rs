//! Hypervisor-side dispatcher for Hyper-V hypercalls, as the hvcall
//! contract specifies them, in the x64, 32-bit x86, ARM64 HVC #1 and ARM64
//! SMCCC calling conventions, memory and XMM fast forms, with continuation
//! of long rep calls. Calls implemented, each offered by a VMM that
//! implements its backend trait and lists it in [`Offers::Calls`]:
//!
//! - HvCallGetVpRegisters (0x0050): [`GetVpRegisters`], [`ReadRegisters`];
//! - HvCallSetVpRegisters (0x0051): [`SetVpRegisters`], [`WriteRegisters`].
//!
//! The contract is `docs/contract.md` in the hvcall repository: its §1
//! fixes the order of checks and the status of each, §2 continuation, §3
//! the fast forms, §4 the calling conventions, §5 the register values, §8
//! writes. Items here cite its rows ("step 6e", "§2").
//!
//! A VMM hands the dispatcher what it knows after a hypercall exit: the
//! caller's registers ([`CallerRegisters`]), its guest memory
//! ([`PartitionMemory`]), and its backend ([`Hypervisor`]): partition and
//! VP topology and policy ([`Partitions`]), register values
//! ([`ReadRegisters`], one snapshot per call; [`WriteRegisters`], one batch
//! per entry) and the calls it [`Offers`]. The dispatcher decodes the call
//! with the right calling convention ([`Convention`]), runs the checks of
//! the contract in order, does the work, writes the result registers and
//! returns the [`Outcome`] the VMM must apply, or the backend's own host
//! failure. It knows nothing of KVM or threads. It is `no_std`, has no
//! `unsafe` code and does not panic. [`read_registers`] and
//! [`write_registers`] are the same calls for the host itself (a parent
//! partition, a debugger), typed, without a guest control word or memory.
//!
//! Call codes a backend does not list get `HV_STATUS_INVALID_HYPERCALL_CODE`.
//! A new call is one module stating its types and work in one of the
//! [`engine`]'s shapes, plus its backend trait.
//!
//! # Example
//!
//! A partition (id 2) with one VP whose registers all read 7, and one page
//! of guest RAM; the VP reads its own RIP and RAX with a memory-form call:
//!
//! ```
//! use core::convert::Infallible;
//! use hvcall_abi::{HvRegisterName, HvRegisterValue, HvStatus, HypercallControl, HypercallResult};
//! use hvcall_abi::name::x64 as names;
//! use hvcall_dispatch::registers::{x64, RegisterFile};
//! use hvcall_dispatch::{
//!     dispatch, CallContext, Caller, Convention, DispatchConfig, MemoryError, Outcome,
//!     GetVpRegisters, Offers, PartitionInfo, PartitionMemory, Partitions, ReadRegisters,
//!     SnapshotRequest, SourceError, VpState,
//! };
//!
//! /// Guest RAM: one page at GPA 0x1000.
//! struct Ram([u8; 4096]);
//! impl Ram {
//!     fn range(&self, gpa: u64, len: usize) -> Result<core::ops::Range<usize>, MemoryError> {
//!         let start = gpa.checked_sub(0x1000).map(|s| s as usize);
//!         match start.and_then(|s| Some(s..s.checked_add(len)?)) {
//!             Some(r) if r.end <= self.0.len() => Ok(r),
//!             _ => Err(MemoryError::NotRam { gpa, len: len as u64 }),
//!         }
//!     }
//! }
//! impl PartitionMemory for Ram {
//!     fn is_ram(&self, gpa: u64, len: u64) -> bool {
//!         usize::try_from(len).is_ok_and(|len| self.range(gpa, len).is_ok())
//!     }
//!     fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
//!         buf.copy_from_slice(&self.0[self.range(gpa, buf.len())?]);
//!         Ok(())
//!     }
//!     fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
//!         let r = self.range(gpa, data.len())?;
//!         self.0[r].copy_from_slice(data);
//!         Ok(())
//!     }
//! }
//!
//! /// One partition (2) with one VP at VTL 0, allowed to read itself.
//! struct OneVp;
//! impl Partitions for OneVp {
//!     fn caller(&self) -> Caller {
//!         Caller::new(2, 0).with_privileges(hvcall_abi::privilege::ACCESS_VP_REGISTERS)
//!     }
//!     fn partition(&self, id: u64) -> Option<PartitionInfo> {
//!         (id == 2).then_some(PartitionInfo::new(Some(1), 1))
//!     }
//!     fn enabled_vtls(&self, _: u64, _: u32) -> u16 {
//!         1 // VTL 0 only
//!     }
//! }
//! /// It offers HvCallGetVpRegisters only.
//! impl Offers for OneVp {
//!     type Calls = (GetVpRegisters,);
//! }
//! impl ReadRegisters for OneVp {
//!     type Snapshot = ();
//!     type Error = Infallible;
//!     fn snapshot(&mut self, _: &SnapshotRequest<'_>) -> Result<(), SourceError<Infallible>> {
//!         Ok(())
//!     }
//!     fn read(&mut self, _: &mut (), _: HvRegisterName)
//!         -> Result<HvRegisterValue, SourceError<Infallible>> {
//!         Ok(HvRegisterValue::from(7u64))
//!     }
//! }
//!
//! // The input list at 0x1000 (header, then two names), the output at 0x1800.
//! let mut ram = Ram([0; 4096]);
//! ram.0[..8].copy_from_slice(&u64::MAX.to_le_bytes()); // PartitionId = SELF
//! ram.0[8..12].copy_from_slice(&hvcall_abi::vp_index::SELF.to_le_bytes());
//! ram.0[16..20].copy_from_slice(&names::RIP.0.to_le_bytes());
//! ram.0[20..24].copy_from_slice(&names::RAX.0.to_le_bytes());
//!
//! let control = HypercallControl::new().with_code(0x0050).with_rep_count(2);
//! let mut regs = RegisterFile::default();
//! regs.gprs[x64::RCX] = control.into_bits();
//! regs.gprs[x64::RDX] = 0x1000;
//! regs.gprs[x64::R8] = 0x1800;
//!
//! let ctx = CallContext::new(Convention::X64, true, 0);
//! let mut state = VpState::new();
//! let outcome = dispatch(&ctx, &mut regs, &mut ram, &mut OneVp, &mut state, &DispatchConfig::default());
//!
//! assert_eq!(outcome, Ok(Outcome::Complete));
//! let result = HypercallResult::from_bits(regs.gprs[x64::RAX]);
//! assert_eq!((result.status(), result.reps_completed()), (HvStatus::SUCCESS, 2));
//! assert_eq!(ram.0[0x800..0x808], 7u64.to_le_bytes());
//! ```
//!
//! `hvcall-model` (in the repository) implements the traits completely in
//! memory, and `hvcall-vmm` on KVM.
//!
//! Modules: [`dispatch`](mod@dispatch) (entry point, steps 1–3),
//! [`engine`] (step 4 and the shapes of a call: rep loop, budget,
//! continuation), `checks` (the checks every call shares: step 5a, the
//! lists' steps 5b–5f, the target's steps 6a–6i), `get_vp_registers` and
//! `set_vp_registers` (one call each), [`convention`] (the four ABIs),
//! `fast` (fast-form register file), `input` (the call's input, read in
//! place), [`pending`] (continuation state), [`host`] (host reads and
//! writes), and the traits in [`registers`], [`memory`] and [`backend`].
#![no_std]
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod backend;
mod checks;
pub mod convention;
pub mod dispatch;
mod end;
pub mod engine;
mod fast;
mod get_vp_registers;
pub mod host;
mod input;
pub mod memory;
pub mod pending;
pub mod registers;
mod set_vp_registers;

pub use backend::{
    Backend, Caller, Offers, PartitionInfo, Partitions, ReadRegisters, SnapshotRequest,
    SourceError, Target, WriteFailure, WriteRegisters,
};
pub use convention::{CallContext, Convention};
pub use dispatch::{dispatch, DispatchConfig, Outcome};
pub use engine::Hypervisor;
pub use get_vp_registers::GetVpRegisters;
pub use host::{read_registers, write_registers, HostError, HostTarget};
pub use memory::{MemoryError, PartitionMemory};
pub use pending::VpState;
pub use registers::{CallerRegisters, RegisterFile};
pub use set_vp_registers::SetVpRegisters;

/// The crate README, whose example is compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
