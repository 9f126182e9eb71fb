//! The register file of the fast (register-based) forms: docs/contract.md §3
//! and the last paragraph of §4.
//!
//! x64 has seven 16-byte pairs: pair 0 = RDX (low) and R8 (high), pair k =
//! XMM(k-1) for k = 1..6. ARM64 has 8-byte words: X2..X17 under SMCCC and
//! X1..X17 under `HVC #1`. In both, the input occupies the start of the
//! file and the output starts at the next 16-byte boundary, one 16-byte
//! value per element. 32-bit x86 callers have a single pair and no fast
//! output, so no call with output fits.

use hvcall_abi::HvRegisterValue;

use crate::convention::Convention;
use crate::registers::{x64, CallerRegisters};

/// Largest register file of any convention, in bytes (ARM64 `HVC #1`:
/// X1..X17).
pub(crate) const MAX_FILE_BYTES: usize = 17 * 8;

/// Size of one x64 pair and of one output value.
const PAIR: usize = 16;

/// Which registers make up a convention's fast register file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum File {
    /// x64 pairs: RDX/R8, then XMM0..XMM5.
    X64Pairs,
    /// ARM64 words X`first`..X`first + count - 1`.
    Arm64Words { first: usize, count: usize },
}

impl File {
    fn of(convention: Convention) -> Option<Self> {
        match convention {
            Convention::X64 => Some(Self::X64Pairs),
            Convention::X86 => None,
            Convention::Arm64Hvc1 => Some(Self::Arm64Words {
                first: 1,
                count: 17,
            }),
            Convention::Arm64Smccc => Some(Self::Arm64Words {
                first: 2,
                count: 16,
            }),
        }
    }

    fn size(self) -> usize {
        match self {
            Self::X64Pairs => 7 * PAIR,
            Self::Arm64Words { count, .. } => count * 8,
        }
    }
}

/// Where a fast call's input and output lie in the register file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct FastLayout {
    file: File,
    /// Input size in bytes.
    input_len: usize,
    /// Byte offset of output value 0 (the input rounded up to 16 bytes).
    output_offset: usize,
}

/// The XMM registers a fast call of this shape would use on x64 (step 5b):
/// `(input uses XMM, output uses XMM)`. Other conventions use none.
pub(crate) fn xmm_use(convention: Convention, input_len: usize, output_len: usize) -> (bool, bool) {
    match convention {
        Convention::X64 => (input_len > PAIR, output_len > 0),
        Convention::X86 | Convention::Arm64Hvc1 | Convention::Arm64Smccc => (false, false),
    }
}

impl FastLayout {
    /// The layout of a fast call with `input_len` bytes of input and
    /// `output_len` bytes of output, or `None` when it does not fit the
    /// register file (step 5c).
    pub(crate) fn new(convention: Convention, input_len: usize, output_len: usize) -> Option<Self> {
        let file = File::of(convention)?;
        let output_offset = input_len.checked_next_multiple_of(PAIR)?;
        let end = output_offset.checked_add(output_len)?;
        (end <= file.size()).then_some(Self {
            file,
            input_len,
            output_offset,
        })
    }

    /// Read the input image into `buf` (at least `input_len` bytes; the
    /// rest is left alone). XMM registers are read only if the input
    /// reaches them.
    pub(crate) fn read_input<R: CallerRegisters + ?Sized>(&self, regs: &mut R, buf: &mut [u8]) {
        let Some(buf) = buf.get_mut(..self.input_len) else {
            return;
        };
        match self.file {
            File::X64Pairs => {
                for (pair, chunk) in buf.chunks_mut(PAIR).enumerate() {
                    let bytes = match pair.checked_sub(1) {
                        None => {
                            let low = u128::from(regs.gpr(x64::RDX));
                            let high = u128::from(regs.gpr(x64::R8));
                            (low | (high << 64)).to_le_bytes()
                        }
                        Some(xmm) => regs.vector(xmm).to_le_bytes(),
                    };
                    copy_prefix(chunk, &bytes);
                }
            }
            File::Arm64Words { first, .. } => {
                for (word, chunk) in buf.chunks_mut(8).enumerate() {
                    let reg = first.saturating_add(word);
                    copy_prefix(chunk, &regs.gpr(reg).to_le_bytes());
                }
            }
        }
    }

    /// Write output value `index` into its place in the register file.
    /// Nothing else is written.
    pub(crate) fn write_value<R: CallerRegisters + ?Sized>(
        &self,
        regs: &mut R,
        index: usize,
        value: &HvRegisterValue,
    ) {
        let offset = index
            .saturating_mul(PAIR)
            .saturating_add(self.output_offset);
        match self.file {
            File::X64Pairs => match (offset / PAIR).checked_sub(1) {
                None => {
                    regs.set_gpr(x64::RDX, value.low());
                    regs.set_gpr(x64::R8, value.high());
                }
                Some(xmm) => regs.set_vector(xmm, value.as_u128()),
            },
            File::Arm64Words { first, .. } => {
                let reg = first.saturating_add(offset / 8);
                regs.set_gpr(reg, value.low());
                regs.set_gpr(reg.saturating_add(1), value.high());
            }
        }
    }
}

/// Copy as much of `src` as fits into `dst`.
fn copy_prefix<const N: usize>(dst: &mut [u8], src: &[u8; N]) {
    // The common case, a whole register, is a fixed-size move.
    if let Ok(whole) = <&mut [u8; N]>::try_from(&mut *dst) {
        *whole = *src;
        return;
    }
    let n = dst.len().min(N);
    if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn n_fits(convention: Convention) -> usize {
        (1..=8)
            .take_while(|n| FastLayout::new(convention, 16 + 4 * n, 16 * n).is_some())
            .count()
    }

    #[test]
    fn x64_fits_four_values_and_arm64_five() {
        assert_eq!(n_fits(Convention::X64), 4);
        assert_eq!(n_fits(Convention::X86), 0);
        assert_eq!(n_fits(Convention::Arm64Smccc), 5);
        assert_eq!(n_fits(Convention::Arm64Hvc1), 5);
    }

    #[test]
    fn smccc_one_value_lands_in_x6_x7() {
        let layout = FastLayout::new(Convention::Arm64Smccc, 20, 16);
        let mut regs = crate::registers::RegisterFile::default();
        if let Some(layout) = layout {
            layout.write_value(&mut regs, 0, &HvRegisterValue::from_parts(1, 2));
        }
        let mut expected = crate::registers::RegisterFile::default();
        expected.gprs[6] = 1;
        expected.gprs[7] = 2;
        assert_eq!(regs, expected);
    }

    #[test]
    fn x64_one_value_lands_in_xmm1() {
        let layout = FastLayout::new(Convention::X64, 20, 16);
        let mut regs = crate::registers::RegisterFile::default();
        if let Some(layout) = layout {
            layout.write_value(&mut regs, 0, &HvRegisterValue::from(7u8));
        }
        assert_eq!(regs.vectors, [0, 7, 0, 0, 0, 0]);
        assert_eq!(xmm_use(Convention::X64, 20, 16), (true, true));
        assert_eq!(xmm_use(Convention::X64, 16, 0), (false, false));
    }
}
