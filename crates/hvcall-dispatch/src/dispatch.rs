//! The entry point for every hypercall exit: step 1 (privilege), the
//! control word (steps 2–4) and routing by call code (docs/contract.md §1).
//!
//! ```
//! use hvcall_abi::{HvRegisterName, HvRegisterValue};
//! use hvcall_dispatch::registers::{x64, RegisterFile};
//! use hvcall_dispatch::{
//!     dispatch, CallContext, Caller, Convention, DispatchConfig, MemoryError, Outcome,
//!     GetVpRegisters, Offers, PartitionInfo, PartitionMemory, Partitions, ReadRegisters,
//!     SnapshotRequest, SourceError, VpState,
//! };
//!
//! /// A VM without RAM whose one VP reads every register as 7.
//! struct Tiny;
//! impl Partitions for Tiny {
//!     fn caller(&self) -> Caller { Caller::new(2, 0) }
//!     fn partition(&self, id: u64) -> Option<PartitionInfo> {
//!         (id == 2).then(|| PartitionInfo::new(Some(1), 1))
//!     }
//!     fn enabled_vtls(&self, _: u64, _: u32) -> u16 { 1 }
//! }
//! /// It offers HvCallGetVpRegisters only.
//! impl Offers for Tiny {
//!     type Calls = (GetVpRegisters,);
//! }
//! impl ReadRegisters for Tiny {
//!     type Snapshot = ();
//!     type Error = std::convert::Infallible;
//!     fn snapshot(&mut self, _: &SnapshotRequest<'_>) -> Result<(), SourceError<Self::Error>> {
//!         Ok(())
//!     }
//!     fn read(&mut self, _: &mut (), _: HvRegisterName)
//!         -> Result<HvRegisterValue, SourceError<Self::Error>> {
//!         Ok(HvRegisterValue::from(7u8))
//!     }
//! }
//! impl PartitionMemory for Tiny {
//!     fn is_ram(&self, _: u64, _: u64) -> bool { false }
//!     fn read(&self, gpa: u64, b: &mut [u8]) -> Result<(), MemoryError> {
//!         Err(MemoryError::NotRam { gpa, len: b.len() as u64 })
//!     }
//!     fn write(&mut self, gpa: u64, b: &[u8]) -> Result<(), MemoryError> {
//!         Err(MemoryError::NotRam { gpa, len: b.len() as u64 })
//!     }
//! }
//!
//! let ctx = CallContext::new(Convention::X64, true, 0x1000);
//! let mut regs = RegisterFile::default();
//! regs.gprs[x64::RCX] = 0x0051; // HvCallSetVpRegisters: `Tiny` does not write
//! let mut state = VpState::new();
//! let config = DispatchConfig::default();
//! let outcome = dispatch(&ctx, &mut regs, &mut Tiny, &mut Tiny, &mut state, &config);
//! assert_eq!(outcome, Ok(Outcome::Complete));
//! assert_eq!(regs.gprs[x64::RAX], 0x2); // HV_STATUS_INVALID_HYPERCALL_CODE
//! ```

use hvcall_abi::vtl::Vtl;
use hvcall_abi::{HvStatus, HypercallControl, HypercallResult};

use crate::convention::{CallContext, SMCCC_NOT_SUPPORTED};
use crate::end::CallEnd;
use crate::engine::{CallList, Entry, Hypervisor};
use crate::memory::PartitionMemory;
use crate::pending::VpState;
use crate::registers::CallerRegisters;

/// Tuning of the dispatcher.
///
/// ```
/// use hvcall_dispatch::DispatchConfig;
/// let config = DispatchConfig::default().with_max_reps_per_entry(1);
/// assert_eq!(config.max_reps_per_entry, 1);
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DispatchConfig {
    /// The work budget of one entry of a rep call, in elements: after this
    /// many, the call is continued (docs/contract.md §2). Values below 1 are
    /// treated as 1. Default: 256, the most one HvCallGetVpRegisters can
    /// have, so that call is never continued by default.
    pub max_reps_per_entry: u16,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            max_reps_per_entry: 256,
        }
    }
}

impl DispatchConfig {
    /// The same configuration with a work budget of `max_reps_per_entry`
    /// elements per entry.
    pub const fn with_max_reps_per_entry(self, max_reps_per_entry: u16) -> Self {
        Self { max_reps_per_entry }
    }

    /// The budget actually applied (at least 1).
    pub(crate) fn budget(&self) -> u16 {
        self.max_reps_per_entry.max(1)
    }
}

/// What the VMM must do after [`dispatch`] returned.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The result (and any fast output) is in the registers: resume after
    /// the hypercall instruction.
    Complete,
    /// The control register was rewritten with the next rep start: resume
    /// on the hypercall instruction so the guest executes it again.
    Continue,
    /// Inject #UD (x64) / an undefined-instruction exception; no register
    /// or memory was changed.
    InjectUndefined,
    /// The result is in the registers: resume after the hypercall
    /// instruction, in this VTL (a [`SwitchCall`](crate::engine::SwitchCall)
    /// succeeded).
    SwitchVtl(Vtl),
}

/// Handle one hypercall exit of the VP whose registers are `regs`.
///
/// Runs the checks of docs/contract.md §1 in order, does the work through
/// `memory` and `hv`, writes the result, fast output or continued control
/// into `regs` and returns what the VMM must do next. `state` is the VP's
/// continuation state; pass the same one on every call of that VP.
///
/// Under [`Convention::Arm64Smccc`](crate::Convention::Arm64Smccc), an X0
/// other than [`SMCCC_HYPERCALL_FUNCTION_ID`](crate::convention::SMCCC_HYPERCALL_FUNCTION_ID)
/// is not a Hyper-V hypercall: X0 is set to
/// [`SMCCC_NOT_SUPPORTED`] (-1, the SMC Calling Convention's answer
/// to an unknown function), nothing else changes, and the outcome is
/// [`Outcome::Complete`]. A VMM that implements other SMCCC services routes
/// them before calling `dispatch`.
///
/// `hv` is the VMM's [`Hypervisor`]: its [`Partitions`](crate::Partitions),
/// [`ReadRegisters`](crate::ReadRegisters) and the calls it lists (one
/// value implementing all, or a [`Backend`](crate::Backend) pairing two).
/// `Err` is the register source's host failure
/// ([`SourceError::Host`](crate::SourceError::Host)): the call ended
/// without a status (output it already wrote stays; it leaves no
/// continuation state) and the VMM decides what follows, typically ending
/// the VM.
///
/// Never panics, whatever the registers, memory and hypervisor state.
pub fn dispatch<R, M, H>(
    ctx: &CallContext,
    regs: &mut R,
    memory: &mut M,
    hv: &mut H,
    state: &mut VpState<H::Snapshot>,
    config: &DispatchConfig,
) -> Result<Outcome, H::Error>
where
    R: CallerRegisters + ?Sized,
    M: PartitionMemory + ?Sized,
    H: Hypervisor + ?Sized,
{
    // Step 1: only privileged callers reach the hypervisor.
    if !ctx.privileged {
        return Ok(Outcome::InjectUndefined);
    }
    let convention = ctx.convention;
    if !convention.is_hypercall(regs) {
        regs.set_gpr(0, SMCCC_NOT_SUPPORTED);
        return Ok(Outcome::Complete);
    }
    let control = HypercallControl::from_bits(convention.control(regs));
    Ok(match route(ctx, control, regs, memory, hv, state, config) {
        CallEnd::Result(result) => {
            convention.write_result(regs, result.into_bits());
            Outcome::Complete
        }
        CallEnd::ResultAfterContinuation {
            result,
            first_start,
        } => {
            convention.write_control(regs, control.with_rep_start(first_start).into_bits());
            convention.write_result(regs, result.into_bits());
            Outcome::Complete
        }
        CallEnd::Continue(next) => {
            convention.write_control(regs, control.with_rep_start(next).into_bits());
            Outcome::Continue
        }
        CallEnd::SwitchVtl(result, vtl) => {
            convention.write_result(regs, result.into_bits());
            Outcome::SwitchVtl(vtl)
        }
        CallEnd::Undefined => Outcome::InjectUndefined,
        // The failed call was not parked; a call parked before it (this
        // one ran in between) keeps its state.
        CallEnd::HostFailed(e) => return Err(e),
    })
}

/// Steps 2 and 3, then step 4: the listed call with this code.
fn route<R, M, H>(
    ctx: &CallContext,
    control: HypercallControl,
    regs: &mut R,
    memory: &mut M,
    hv: &mut H,
    state: &mut VpState<H::Snapshot>,
    config: &DispatchConfig,
) -> CallEnd<H::Error>
where
    R: CallerRegisters + ?Sized,
    M: PartitionMemory + ?Sized,
    H: Hypervisor + ?Sized,
{
    // Step 2: reserved control bits.
    if control.reserved_bits() != 0 {
        return CallEnd::Result(HypercallResult::of(HvStatus::INVALID_HYPERCALL_INPUT, 0));
    }
    // Step 3: hvcall is the L0 hypervisor; nothing is nested below it.
    if control.nested() {
        return CallEnd::Result(HypercallResult::of(HvStatus::INVALID_HYPERCALL_INPUT, 0));
    }
    let entry = Entry {
        ctx,
        control,
        regs,
        memory,
        hv,
        state,
        budget: config.budget(),
    };
    <H::List as CallList<H>>::route(entry)
}
