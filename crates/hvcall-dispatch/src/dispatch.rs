//! The entry point for every hypercall exit: step 1 (privilege), the
//! control word (steps 2–4) and routing by call code (docs/contract.md §1).
//!
//! ```
//! use hvcall_dispatch::{dispatch, CallContext, Convention, DispatchConfig, Outcome, VpState};
//! use hvcall_dispatch::registers::{x64, RegisterFile};
//! # use hvcall_dispatch::hypervisor::*;
//! # use hvcall_dispatch::memory::*;
//! # use hvcall_abi::*;
//! # struct NoMemory;
//! # impl GuestMemory for NoMemory {
//! #     fn is_ram(&self, _: u64, _: u64) -> bool { false }
//! #     fn read(&self, gpa: u64, b: &mut [u8]) -> Result<(), MemoryError> { Err(MemoryError::NotRam { gpa, len: b.len() as u64 }) }
//! #     fn write(&mut self, gpa: u64, b: &[u8]) -> Result<(), MemoryError> { Err(MemoryError::NotRam { gpa, len: b.len() as u64 }) }
//! # }
//! # struct NoVps;
//! # impl Hypervisor for NoVps {
//! #     type Snapshot = ();
//! #     fn caller(&self) -> Caller { Caller { partition_id: 2, vp_index: 0, vtl: 0, privileges: 0, xmm_fast_input: false, xmm_fast_output: false } }
//! #     fn partition(&self, _: u64) -> Option<PartitionInfo> { None }
//! #     fn enabled_vtls(&self, _: u64, _: u32) -> u16 { 0 }
//! #     fn snapshot(&mut self, _: &Target, _: &[HvRegisterName]) -> Result<(), HvStatus> { Err(HvStatus::INVALID_PARAMETER) }
//! #     fn read_register(&mut self, _: &mut (), _: HvRegisterName) -> Result<HvRegisterValue, HvStatus> { Err(HvStatus::INVALID_PARAMETER) }
//! # }
//! let ctx = CallContext { convention: Convention::X64, privileged: true, instruction_pointer: 0x1000 };
//! let mut regs = RegisterFile::default();
//! regs.gprs[x64::RCX] = 0x0051; // HvCallSetVpRegisters: not implemented
//! let mut state = VpState::new();
//! let outcome = dispatch(&ctx, &mut regs, &mut NoMemory, &mut NoVps, &mut state, &DispatchConfig::default());
//! assert_eq!(outcome, Outcome::Complete);
//! assert_eq!(regs.gprs[x64::RAX], 0x2); // HV_STATUS_INVALID_HYPERCALL_CODE
//! ```

use hvcall_abi::{call_code, HvStatus, HypercallControl, HypercallResult};

use crate::convention::{CallContext, SMCCC_NOT_SUPPORTED};
use crate::get_vp_registers;
use crate::hypervisor::Hypervisor;
use crate::memory::GuestMemory;
use crate::pending::VpState;
use crate::registers::CallerRegisters;

/// Tuning of the dispatcher.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
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
    /// The budget actually applied (at least 1).
    pub(crate) fn budget(&self) -> u16 {
        self.max_reps_per_entry.max(1)
    }
}

/// What the VMM must do after [`dispatch`] returned.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
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
}

/// How a call ended, before it is written into the registers.
pub(crate) enum CallEnd {
    /// Write this result value.
    Result(HypercallResult),
    /// Restore the control word's rep start of the first entry of a
    /// continued call, then write this result value.
    ResultAfterContinuation {
        /// The result.
        result: HypercallResult,
        /// The rep start the call was first made with.
        first_start: u16,
    },
    /// Write this index into rep start and re-execute the call.
    Continue(u16),
    /// Inject #UD.
    Undefined,
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
/// Never panics, whatever the registers, memory and hypervisor state.
pub fn dispatch<R, M, H>(
    ctx: &CallContext,
    regs: &mut R,
    memory: &mut M,
    hv: &mut H,
    state: &mut VpState<H::Snapshot>,
    config: &DispatchConfig,
) -> Outcome
where
    R: CallerRegisters + ?Sized,
    M: GuestMemory + ?Sized,
    H: Hypervisor + ?Sized,
{
    // Step 1: only privileged callers reach the hypervisor.
    if !ctx.privileged {
        return Outcome::InjectUndefined;
    }
    let convention = ctx.convention;
    if !convention.is_hypercall(regs) {
        regs.set_gpr(0, SMCCC_NOT_SUPPORTED);
        return Outcome::Complete;
    }
    let control = HypercallControl::from_bits(convention.control(regs));
    match route(ctx, control, regs, memory, hv, state, config) {
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
        CallEnd::Undefined => Outcome::InjectUndefined,
    }
}

/// Steps 2–4, then the call's own handler.
fn route<R, M, H>(
    ctx: &CallContext,
    control: HypercallControl,
    regs: &mut R,
    memory: &mut M,
    hv: &mut H,
    state: &mut VpState<H::Snapshot>,
    config: &DispatchConfig,
) -> CallEnd
where
    R: CallerRegisters + ?Sized,
    M: GuestMemory + ?Sized,
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
    // Step 4: route by call code.
    match control.code() {
        call_code::GET_VP_REGISTERS => {
            get_vp_registers::call(ctx, control, regs, memory, hv, state, config)
        }
        _ => CallEnd::Result(HypercallResult::of(HvStatus::INVALID_HYPERCALL_CODE, 0)),
    }
}
