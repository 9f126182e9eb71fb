//! The caller's register file, as the VMM hands it in after an exit.

/// Indexes of the x64 general registers a hypercall uses, in the x86
/// encoding order (so `gpr(RAX)` is RAX on x64 and EAX for a 32-bit caller).
pub mod x64 {
    /// RAX / EAX.
    pub const RAX: usize = 0;
    /// RCX / ECX.
    pub const RCX: usize = 1;
    /// RDX / EDX.
    pub const RDX: usize = 2;
    /// RBX / EBX.
    pub const RBX: usize = 3;
    /// RSI / ESI.
    pub const RSI: usize = 6;
    /// RDI / EDI.
    pub const RDI: usize = 7;
    /// R8.
    pub const R8: usize = 8;
}

/// Access to the registers of the calling VP.
///
/// General registers are numbered as the architecture does (x64: see
/// [`x64`]; ARM64: `n` is Xn, 0..=17). Vector registers are XMM0..XMM5 on
/// x64 (the XMM fast forms); ARM64 has none in its hypercall ABI. An
/// implementation may fetch vector registers lazily: the dispatcher asks for
/// them only for fast calls. An index the implementation does not hold
/// reads as 0 and ignores writes; it must never panic.
pub trait CallerRegisters {
    /// General register `index`.
    fn gpr(&self, index: usize) -> u64;
    /// Set general register `index`.
    fn set_gpr(&mut self, index: usize, value: u64);
    /// Vector register `index` (x64: XMM`index`, 0..6).
    fn vector(&mut self, index: usize) -> u128;
    /// Set vector register `index`.
    fn set_vector(&mut self, index: usize, value: u128);
}

/// A plain in-memory register file: 18 general and 6 vector registers.
/// Tests, the reference model and the fuzzer use it; a VMM may too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterFile {
    /// General registers (x64: x86 encoding order; ARM64: X0..X17).
    pub gprs: [u64; 18],
    /// Vector registers (x64: XMM0..XMM5).
    pub vectors: [u128; 6],
}

impl CallerRegisters for RegisterFile {
    fn gpr(&self, index: usize) -> u64 {
        self.gprs.get(index).copied().unwrap_or(0)
    }
    fn set_gpr(&mut self, index: usize, value: u64) {
        if let Some(r) = self.gprs.get_mut(index) {
            *r = value;
        }
    }
    fn vector(&mut self, index: usize) -> u128 {
        self.vectors.get(index).copied().unwrap_or(0)
    }
    fn set_vector(&mut self, index: usize, value: u128) {
        if let Some(r) = self.vectors.get_mut(index) {
            *r = value;
        }
    }
}
