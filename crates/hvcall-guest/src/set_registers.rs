//! HvCallSetVpRegisters (0x0051) from the guest side: the memory form
//! batched by page and the XMM fast form, both driving [`run_rep_call`] so
//! early returns are reissued (docs/contract.md §8, with §1–§3).
//!
//! The input is the 16-byte header of HvCallGetVpRegisters followed by one
//! 32-byte [`SetVpRegistersElement`] per rep; there is no output list. Like
//! the read side in [`crate::registers`], the algorithms are written
//! against [`Transport`].

use hvcall_abi::call_code::SET_VP_REGISTERS;
use hvcall_abi::input::{HEADER_SIZE, SET_ELEMENT_SIZE};
use hvcall_abi::{HvInputVtl, HvStatus, HypercallControl, SetVpRegistersElement, PAGE_SIZE};

use crate::hypercall_page::FastRegisters;
#[cfg(target_arch = "x86_64")]
use crate::registers::Hv;
use crate::registers::{header, Transport};
use crate::rep::{run_rep_call, RepError};

/// Elements per memory-form call: the input list (16 + 32n bytes) must fit
/// in one page, so n <= 127.
pub const BATCH: usize = ((PAGE_SIZE - HEADER_SIZE) / SET_ELEMENT_SIZE) as usize;

/// Most elements one x64 XMM fast call can carry: `16 + 32n <= 112`
/// (docs/contract.md §8, step 5c).
pub const FAST_MAX: usize = 3;

/// Why writing registers failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// The hypervisor returned an error status.
    #[error("{status} for element #{index} (reps completed {reps_completed})")]
    Failed {
        /// The TLFS status (for a refused element: INVALID_PARAMETER or
        /// INVALID_REGISTER_VALUE, docs/contract.md §8 steps 8a–8d).
        status: HvStatus,
        /// Reps completed of the failing call (relative to its batch).
        reps_completed: u16,
        /// Index into `elements` of the element that failed. Elements
        /// before it were written, it and later ones were not.
        index: usize,
    },
    /// The hypervisor returned SUCCESS without making progress, or with
    /// reps completed beyond the rep count.
    #[error("hypervisor made no progress at element #{index}")]
    NoProgress {
        /// Index into `elements` where the call was stuck.
        index: usize,
    },
    /// The XMM fast form needs the XMM fast input CPUID bit (0x40000003
    /// EDX bit 4); the output bit plays no part, as the call has no output.
    #[error("XMM fast hypercall input not advertised (CPUID 0x40000003 EDX bit 4)")]
    FastNotAdvertised,
    /// More elements than one XMM fast call can carry ([`FAST_MAX`]).
    #[error("{count} elements do not fit an XMM fast call (at most 3)")]
    TooManyForFast {
        /// `elements.len()`.
        count: usize,
    },
}

#[cfg(target_arch = "x86_64")]
impl Hv<'_> {
    /// Writes `elements` to VP `vp` of partition `partition` (memory form);
    /// see [`set_vp_registers`].
    ///
    /// ```no_run
    /// # #[cfg(target_arch = "x86_64")]
    /// # fn write(hv: &mut hvcall_guest::Hv<'_>) -> Result<(), hvcall_guest::SetError> {
    /// use hvcall_abi::{name::x64, partition_id, vp_index};
    /// use hvcall_abi::{HvInputVtl, HvRegisterValue, SetVpRegistersElement};
    ///
    /// // `hv` as in the crate example: CPL 0, an enabled hypercall page.
    /// let elements = [
    ///     SetVpRegistersElement::new(x64::RBX, HvRegisterValue::from(0x1234u64)),
    ///     SetVpRegistersElement::new(x64::DR0, HvRegisterValue::from(0x8000u64)),
    /// ];
    /// hv.set_vp_registers(partition_id::SELF, vp_index::SELF, HvInputVtl::new(), &elements)
    /// # }
    /// # fn main() {}
    /// ```
    pub fn set_vp_registers(
        &mut self,
        partition: u64,
        vp: u32,
        vtl: HvInputVtl,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), SetError> {
        set_vp_registers(self, partition, vp, vtl, elements)
    }

    /// Writes up to three registers with the XMM fast form; see
    /// [`set_vp_registers_fast`].
    pub fn set_vp_registers_fast(
        &mut self,
        partition: u64,
        vp: u32,
        vtl: HvInputVtl,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), SetError> {
        set_vp_registers_fast(self, partition, vp, vtl, elements)
    }
}

/// The control word of a SetVpRegisters call.
pub fn control(count: usize, rep_start: u16, fast: bool) -> HypercallControl {
    HypercallControl::new()
        .with_code(SET_VP_REGISTERS)
        .with_fast(fast)
        .with_rep_count(count as u16)
        .with_rep_start(rep_start)
}

/// Writes `element` in the TLFS layout into `slot` (32 bytes): the name
/// (little-endian) at 0, the reserved bytes 4–15 as given (zero when built
/// with [`SetVpRegistersElement::new`]), the value at 16.
fn put_element(slot: &mut [u8], element: &SetVpRegistersElement) {
    slot[..4].copy_from_slice(&element.name.0.to_le_bytes());
    slot[4..16].copy_from_slice(&element.reserved);
    slot[16..32].copy_from_slice(&element.value.0);
}

/// Writes the header and `elements` into `input` (the input list of one
/// call: 16 + 32 * `elements.len()` bytes).
fn put_input(input: &mut [u8], head: [u64; 2], elements: &[SetVpRegistersElement]) {
    input[..8].copy_from_slice(&head[0].to_le_bytes());
    input[8..16].copy_from_slice(&head[1].to_le_bytes());
    let list = &mut input[HEADER_SIZE as usize..][..elements.len() * SET_ELEMENT_SIZE as usize];
    for (slot, element) in list
        .chunks_exact_mut(SET_ELEMENT_SIZE as usize)
        .zip(elements)
    {
        put_element(slot, element);
    }
}

/// Writes `elements` to VP `vp` of `partition` at `vtl` with the memory
/// form: at most [`BATCH`] elements per call, no output list (output GPA
/// 0, through [`Transport::call_memory_input_only`]), each call run to
/// completion with [`run_rep_call`].
///
/// Elements are applied in order, so on error the elements before
/// `index` were written and the rest were not (docs/contract.md §8).
///
/// With a [`Transport`] that stands in for a hypervisor (here one that
/// records every element and does at most two per call, so the rep loop
/// must reissue):
///
/// ```
/// use hvcall_abi::{name::x64, partition_id, vp_index, HvInputVtl, HvRegisterValue};
/// use hvcall_abi::{HvStatus, HypercallControl, HypercallResult, SetVpRegistersElement};
/// use hvcall_guest::{set_vp_registers, FastRegisters, HvFeatures, Scratch, Transport};
///
/// struct Recorder(Scratch, Vec<(u32, u64)>);
/// impl Transport for Recorder {
///     fn scratch(&mut self) -> &mut Scratch {
///         &mut self.0
///     }
///     fn call_memory(&mut self, _: HypercallControl) -> HypercallResult {
///         unreachable!("SetVpRegisters has no output list")
///     }
///     fn call_memory_input_only(&mut self, control: HypercallControl) -> HypercallResult {
///         let (start, count) = (control.rep_start(), control.rep_count());
///         let end = count.min(start + 2);
///         for i in usize::from(start)..usize::from(end) {
///             let element = &self.0.input[16 + 32 * i..][..32];
///             let name = u32::from_le_bytes(element[..4].try_into().unwrap());
///             let value = u64::from_le_bytes(element[16..24].try_into().unwrap());
///             self.1.push((name, value));
///         }
///         HypercallResult::of(HvStatus::SUCCESS, end)
///     }
///     fn call_fast(&mut self, _: HypercallControl, _: &mut FastRegisters) -> HypercallResult {
///         HypercallResult::of(HvStatus::INVALID_HYPERCALL_INPUT, 0)
///     }
///     fn features(&self) -> HvFeatures {
///         HvFeatures { max_leaf: 0x4000_0005, privileges: 0, features_ecx: 0, features_edx: 0 }
///     }
/// }
///
/// let mut hv = Recorder(Scratch::new(), Vec::new());
/// let elements = [
///     SetVpRegistersElement::new(x64::RBX, HvRegisterValue::from(1u64)),
///     SetVpRegistersElement::new(x64::RSI, HvRegisterValue::from(2u64)),
///     SetVpRegistersElement::new(x64::CR2, HvRegisterValue::from(3u64)),
/// ];
/// set_vp_registers(&mut hv, partition_id::SELF, vp_index::SELF, HvInputVtl::new(), &elements)
///     .unwrap();
/// assert_eq!(hv.1, [(x64::RBX.0, 1), (x64::RSI.0, 2), (x64::CR2.0, 3)]);
/// ```
pub fn set_vp_registers<T: Transport>(
    t: &mut T,
    partition: u64,
    vp: u32,
    vtl: HvInputVtl,
    elements: &[SetVpRegistersElement],
) -> Result<(), SetError> {
    let head = header(partition, vp, vtl);
    for (batch, elements) in elements.chunks(BATCH).enumerate() {
        put_input(&mut t.scratch().input, head, elements);
        run_rep_call(elements.len() as u16, |start| {
            t.call_memory_input_only(control(elements.len(), start, false))
        })
        .map_err(|e| to_set_error(e, batch * BATCH))?;
    }
    Ok(())
}

/// Writes up to [`FAST_MAX`] registers with the XMM fast form (input in
/// RDX, R8 and XMM0–5, see [`fast_input`]). Fails with
/// [`SetError::FastNotAdvertised`] without calling when the XMM fast input
/// CPUID bit is missing.
///
/// Every call of the rep loop gets the input afresh, so a hypervisor that
/// changed the register file on an early return cannot alter the
/// elements of the reissued call.
pub fn set_vp_registers_fast<T: Transport>(
    t: &mut T,
    partition: u64,
    vp: u32,
    vtl: HvInputVtl,
    elements: &[SetVpRegistersElement],
) -> Result<(), SetError> {
    if elements.len() > FAST_MAX {
        return Err(SetError::TooManyForFast {
            count: elements.len(),
        });
    }
    if !t.features().xmm_fast_input() {
        return Err(SetError::FastNotAdvertised);
    }
    if elements.is_empty() {
        return Ok(());
    }
    let input = fast_input(partition, vp, vtl, elements);
    run_rep_call(elements.len() as u16, |start| {
        let mut regs = input;
        t.call_fast(control(elements.len(), start, true), &mut regs)
    })
    .map_err(|e| to_set_error(e, 0))
}

/// The fast register file for a call: the memory-form input list laid over
/// the pairs, so the header is pair 0 (RDX, R8) and element i spans pairs
/// 1 + 2i (the name and reserved bytes) and 2 + 2i (the value): element 0
/// in XMM0 and XMM1, element 1 in XMM2 and XMM3, element 2 in XMM4 and
/// XMM5. Elements beyond [`FAST_MAX`] are left out.
pub fn fast_input(
    partition: u64,
    vp: u32,
    vtl: HvInputVtl,
    elements: &[SetVpRegistersElement],
) -> FastRegisters {
    let elements = &elements[..elements.len().min(FAST_MAX)];
    let mut bytes = [0u8; core::mem::size_of::<FastRegisters>()];
    put_input(&mut bytes, header(partition, vp, vtl), elements);
    let mut regs = FastRegisters::default();
    for (pair, chunk) in regs.pairs.iter_mut().zip(bytes.chunks_exact(16)) {
        let (low, high) = chunk.split_at(8);
        *pair = [
            u64::from_le_bytes(low.try_into().expect("8 bytes")),
            u64::from_le_bytes(high.try_into().expect("8 bytes")),
        ];
    }
    regs
}

fn to_set_error(e: RepError, base: usize) -> SetError {
    match e {
        RepError::Failed {
            status,
            reps_completed,
        } => SetError::Failed {
            status,
            reps_completed,
            index: base + usize::from(reps_completed),
        },
        RepError::NoProgress { rep_start, .. } => SetError::NoProgress {
            index: base + usize::from(rep_start),
        },
        RepError::Overrun { .. } => SetError::NoProgress { index: base },
    }
}

#[cfg(test)]
mod tests;
