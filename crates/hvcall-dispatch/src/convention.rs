//! Calling conventions (docs/contract.md §4) and the caller's execution mode.
//!
//! A [`Convention`] says where the control word, the input and output GPAs
//! and the result live in the caller's register file, and how a continued
//! call's control word is written back, and which register names those
//! are for a caller writing its own registers (step 8d). Nothing else in
//! the dispatcher knows register numbers of the memory form.

use hvcall_abi::HvRegisterName;

use crate::registers::{x64, CallerRegisters};

/// The four hypercall ABIs of docs/contract.md §4.
///
/// ```
/// use hvcall_dispatch::registers::{x64, RegisterFile};
/// use hvcall_dispatch::Convention;
///
/// // A compatibility-mode caller (EFER.LMA = 1, CS.L = 0) uses the 32-bit pairs.
/// let conv = Convention::for_x86_mode(true, false);
/// assert_eq!(conv, Convention::X86);
/// let mut regs = RegisterFile::default();
/// regs.gprs[x64::RDX] = 0x1; // high half of the control word
/// regs.gprs[x64::RAX] = 0x50; // low half
/// assert_eq!(conv.control(&regs), 0x1_0000_0050);
/// ```
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

/// The SMCCC function id of a Hyper-V hypercall (docs/contract.md §4): fast-call
/// bit 31 clear, SMC64 bit 30 set, owner 6 (vendor hypervisor), number 1.
pub const SMCCC_HYPERCALL_FUNCTION_ID: u64 = 0x4600_0001;

/// What an SMCCC callee returns in X0 for a function id it does not
/// implement: -1 sign-extended ("NOT_SUPPORTED" in the SMC Calling
/// Convention).
pub const SMCCC_NOT_SUPPORTED: u64 = u64::MAX;

impl Convention {
    /// Every convention, for tests that run a scenario in each ABI.
    pub const ALL: [Convention; 4] = [Self::X64, Self::X86, Self::Arm64Hvc1, Self::Arm64Smccc];

    /// The convention of an x86 caller: x64 when EFER.LMA = 1 and CS.L = 1,
    /// otherwise the 32-bit register pairs.
    pub const fn for_x86_mode(efer_lma: bool, cs_l: bool) -> Self {
        if efer_lma && cs_l {
            Self::X64
        } else {
            Self::X86
        }
    }

    /// Contract step 8d: whether `name` is one of the registers a caller's
    /// own hypercall uses under this convention (control, input, output,
    /// result), RIP/PC, or, for a fast call, its register file (§3). A
    /// VMM that lets writes reach a VP while it is inside a hypercall
    /// leaves these registers to the call.
    ///
    /// ```
    /// use hvcall_abi::name::x64;
    /// use hvcall_dispatch::Convention;
    /// assert!(Convention::X64.is_call_register(false, x64::RCX));
    /// assert!(Convention::X64.is_call_register(true, x64::XMM5));
    /// assert!(!Convention::X64.is_call_register(false, x64::XMM5));
    /// assert!(!Convention::X64.is_call_register(true, x64::RBX));
    /// ```
    pub fn is_call_register(self, fast: bool, name: HvRegisterName) -> bool {
        use hvcall_abi::name::{arm64, x64};
        match self {
            Self::X64 => {
                let file = fast && (x64::XMM0.0..=x64::XMM5.0).contains(&name.0);
                file || [x64::RAX, x64::RCX, x64::RDX, x64::R8, x64::RIP].contains(&name)
            }
            Self::X86 => [
                x64::RAX,
                x64::RBX,
                x64::RCX,
                x64::RDX,
                x64::RSI,
                x64::RDI,
                x64::RIP,
            ]
            .contains(&name),
            Self::Arm64Hvc1 | Self::Arm64Smccc => {
                let last = if fast { arm64::X17 } else { arm64::X3 };
                (arm64::X0.0..=last.0).contains(&name.0) || name == arm64::PC
            }
        }
    }

    /// The architecture whose register names the caller uses.
    pub const fn arch(self) -> hvcall_abi::Arch {
        match self {
            Self::X64 | Self::X86 => hvcall_abi::Arch::X64,
            Self::Arm64Hvc1 | Self::Arm64Smccc => hvcall_abi::Arch::Arm64,
        }
    }

    /// The hypercall input value (control word).
    pub fn control<R: CallerRegisters + ?Sized>(self, regs: &R) -> u64 {
        match self {
            Self::X64 => regs.gpr(x64::RCX),
            Self::X86 => pair(regs, x64::RDX, x64::RAX),
            Self::Arm64Hvc1 => regs.gpr(0),
            Self::Arm64Smccc => regs.gpr(1),
        }
    }

    /// The input GPA (memory form), or the first input qword (fast form).
    pub fn input_gpa<R: CallerRegisters + ?Sized>(self, regs: &R) -> u64 {
        match self {
            Self::X64 => regs.gpr(x64::RDX),
            Self::X86 => pair(regs, x64::RBX, x64::RCX),
            Self::Arm64Hvc1 => regs.gpr(1),
            Self::Arm64Smccc => regs.gpr(2),
        }
    }

    /// The output GPA (memory form), or the second input qword (fast form).
    pub fn output_gpa<R: CallerRegisters + ?Sized>(self, regs: &R) -> u64 {
        match self {
            Self::X64 => regs.gpr(x64::R8),
            Self::X86 => pair(regs, x64::RDI, x64::RSI),
            Self::Arm64Hvc1 => regs.gpr(2),
            Self::Arm64Smccc => regs.gpr(3),
        }
    }

    /// The hypercall result value (RAX, EDX:EAX or X0), as a completed
    /// call left it.
    pub fn result<R: CallerRegisters + ?Sized>(self, regs: &R) -> u64 {
        match self {
            Self::X64 => regs.gpr(x64::RAX),
            Self::X86 => pair(regs, x64::RDX, x64::RAX),
            Self::Arm64Hvc1 | Self::Arm64Smccc => regs.gpr(0),
        }
    }

    /// Write the hypercall result value (RAX, EDX:EAX or X0).
    ///
    /// For a 32-bit caller each half is written zero-extended, as a 32-bit
    /// register write does on the CPU.
    pub fn write_result<R: CallerRegisters + ?Sized>(self, regs: &mut R, result: u64) {
        match self {
            Self::X64 => regs.set_gpr(x64::RAX, result),
            Self::X86 => set_pair(regs, x64::RDX, x64::RAX, result),
            Self::Arm64Hvc1 | Self::Arm64Smccc => regs.set_gpr(0, result),
        }
    }

    /// Write the control word of a continued call (RCX, EDX:EAX, X0 or X1).
    pub fn write_control<R: CallerRegisters + ?Sized>(self, regs: &mut R, control: u64) {
        match self {
            Self::X64 => regs.set_gpr(x64::RCX, control),
            Self::X86 => set_pair(regs, x64::RDX, x64::RAX, control),
            Self::Arm64Hvc1 => regs.set_gpr(0, control),
            Self::Arm64Smccc => regs.set_gpr(1, control),
        }
    }

    /// For SMCCC: whether X0 holds the Hyper-V hypercall function id. The
    /// other conventions have no function id and always match.
    pub fn is_hypercall<R: CallerRegisters + ?Sized>(self, regs: &R) -> bool {
        match self {
            Self::Arm64Smccc => regs.gpr(0) == SMCCC_HYPERCALL_FUNCTION_ID,
            Self::X64 | Self::X86 | Self::Arm64Hvc1 => true,
        }
    }
}

/// A 64-bit value from two 32-bit registers (`high:low`).
fn pair<R: CallerRegisters + ?Sized>(regs: &R, high: usize, low: usize) -> u64 {
    (regs.gpr(high) << 32) | (regs.gpr(low) & 0xFFFF_FFFF)
}

/// Split a 64-bit value over two 32-bit registers (`high:low`).
fn set_pair<R: CallerRegisters + ?Sized>(regs: &mut R, high: usize, low: usize, value: u64) {
    regs.set_gpr(high, value >> 32);
    regs.set_gpr(low, value & 0xFFFF_FFFF);
}

/// What the dispatcher must know about the caller's state at the moment of
/// the call, besides its registers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallContext {
    /// The calling convention.
    pub convention: Convention,
    /// The caller may make hypercalls: CPL 0 in protected or long mode on
    /// x86, EL1 on ARM64 (docs/contract.md §1 step 1).
    pub privileged: bool,
    /// Address of the hypercall instruction (used to recognise the
    /// re-entry of a continued call).
    pub instruction_pointer: u64,
}

impl CallContext {
    /// A call made under `convention`, by a `privileged` caller or not, at
    /// the hypercall instruction `instruction_pointer`.
    pub const fn new(convention: Convention, privileged: bool, instruction_pointer: u64) -> Self {
        Self {
            convention,
            privileged,
            instruction_pointer,
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::registers::RegisterFile;

    #[test]
    fn x86_pairs_are_high_colon_low() {
        let mut r = RegisterFile::default();
        r.gprs[x64::RDX] = 0xFFFF_FFFF_1111_2222;
        r.gprs[x64::RAX] = 0xFFFF_FFFF_3333_4444;
        assert_eq!(Convention::X86.control(&r), 0x1111_2222_3333_4444);
        Convention::X86.write_result(&mut r, 0x0000_0005_0000_0003);
        assert_eq!(r.gprs[x64::RDX], 5);
        assert_eq!(r.gprs[x64::RAX], 3);
    }

    #[test]
    fn smccc_needs_its_function_id() {
        let mut r = RegisterFile::default();
        assert!(!Convention::Arm64Smccc.is_hypercall(&r));
        r.gprs[0] = SMCCC_HYPERCALL_FUNCTION_ID;
        assert!(Convention::Arm64Smccc.is_hypercall(&r));
        assert!(Convention::Arm64Hvc1.is_hypercall(&RegisterFile::default()));
    }
}
