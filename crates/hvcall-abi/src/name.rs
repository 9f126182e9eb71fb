//! HV_REGISTER_NAME: register names per architecture (digest §5).
//!
//! The same number can name different registers on x64 and ARM64, so every
//! lookup takes an [`Arch`].

open_enum! {
    /// A 32-bit register name. Any value is representable; see [`x64`] and
    /// [`arm64`] for the named ones.
    pub struct HvRegisterName(u32) {}
}

/// The architecture a register name belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86-64 (and 32-bit x86 callers).
    X64,
    /// ARM64.
    Arm64,
}

/// x64 register names.
pub mod x64 {
    use super::HvRegisterName as N;
    /// RAX.
    pub const RAX: N = N(0x0002_0000);
    /// RCX.
    pub const RCX: N = N(0x0002_0001);
    /// RDX.
    pub const RDX: N = N(0x0002_0002);
    /// RBX.
    pub const RBX: N = N(0x0002_0003);
    /// RSP.
    pub const RSP: N = N(0x0002_0004);
    /// RIP.
    pub const RIP: N = N(0x0002_0010);
    /// RFLAGS.
    pub const RFLAGS: N = N(0x0002_0011);
    /// VpIndex (read-only).
    pub const VP_INDEX: N = N(0x0009_0003);
}
