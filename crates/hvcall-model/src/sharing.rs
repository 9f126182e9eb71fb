//! Which registers are shared by every VTL of a VP and which are private
//! to each VTL (docs/contract.md §5, last bullet).
//!
//! The model keeps one copy of a shared register per VP and one copy of a
//! private register per (VP, VTL). Names not listed as shared here are
//! private.

use hvcall_abi::{Arch, HvRegisterName};

/// Whether `name` is shared by all VTLs on `arch`.
///
/// x64 shared: the general registers except RSP (RAX..R15), x87/MMX/XMM
/// state and its control registers, CR2, XCR0 (Xfem), DR0–DR3, the MTRRs,
/// and the synthetic VpRuntime, VpIndex and TimeRefCount. ARM64 shared:
/// X0–X17, X19–X28 and Q0–Q31.
///
/// ```
/// use hvcall_abi::{Arch, HvRegisterName};
/// use hvcall_model::is_shared;
/// assert!(is_shared(Arch::X64, HvRegisterName(0x0002_0000))); // RAX
/// assert!(!is_shared(Arch::X64, HvRegisterName(0x0002_0010))); // RIP
/// assert!(!is_shared(Arch::Arm64, HvRegisterName(0x0002_0012))); // X18
/// ```
pub fn is_shared(arch: Arch, name: HvRegisterName) -> bool {
    let n = name.0;
    match arch {
        Arch::X64 => {
            const RSP: u32 = 0x0002_0004;
            matches!(n,
                0x0002_0000..=0x0002_000F if n != RSP)
                || matches!(
                    n,
                    0x0003_0000..=0x0003_0019 // XMM0-15, FP/MMX 0-7, FP and XMM control/status
                    | 0x0004_0001 // CR2
                    | 0x0004_0005 // Xfem (XCR0)
                    | 0x0005_0000..=0x0005_0003 // DR0-DR3
                    | 0x0008_000D..=0x0008_007A // MTRRs
                    | 0x0009_0000 // VpRuntime
                    | 0x0009_0003 // VpIndex
                    | 0x0009_0004 // TimeRefCount
                )
        }
        Arch::Arm64 => matches!(
            n,
            0x0002_0000..=0x0002_0011 // X0-X17
            | 0x0002_0013..=0x0002_001C // X19-X28
            | 0x0003_0000..=0x0003_001F // Q0-Q31
        ),
    }
}
