//! Calling conventions (behaviour.md §4) and the caller's execution mode.

/// The four hypercall ABIs of behaviour.md §4.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Convention {
    /// x64: control RCX, input RDX, output R8, result RAX.
    X64,
    /// 32-bit x86: control EDX:EAX, input EBX:ECX, output EDI:ESI,
    /// result EDX:EAX.
    X86,
    /// ARM64 `HVC #1`: control X0, input X1, output X2, result X0.
    Arm64Hvc1,
    /// ARM64 SMCCC `HVC #0` with X0 = 0x46000001: control X1, input X2,
    /// output X3, result X0.
    Arm64Smccc,
}

impl Convention {
    /// The convention of an x86 caller: x64 when EFER.LMA = 1 and CS.L = 1,
    /// otherwise the 32-bit register pairs.
    pub const fn for_x86_mode(efer_lma: bool, cs_l: bool) -> Self {
        if efer_lma && cs_l {
            Self::X64
        } else {
            Self::X86
        }
    }
}

/// What the dispatcher must know about the caller's state at the moment of
/// the call, besides its registers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CallContext {
    /// The calling convention.
    pub convention: Convention,
    /// The caller may make hypercalls: CPL 0 in protected or long mode on
    /// x86, EL1 on ARM64 (behaviour.md §1 step 1).
    pub privileged: bool,
    /// Address of the hypercall instruction (used to recognise the
    /// re-entry of a continued call).
    pub instruction_pointer: u64,
}
