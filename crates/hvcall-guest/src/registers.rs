//! HvCallGetVpRegisters from the guest side: the memory form batched by
//! page and the XMM fast form, both driving [`run_rep_call`] so early
//! returns are reissued (docs/contract.md §1–§3).
//!
//! The algorithms are written against [`Transport`]; [`Hv`] is the real
//! transport (the hypercall page plus a scratch area), unit tests use a
//! model. The write side, HvCallSetVpRegisters, is
//! [`crate::set_registers`], over the same transport.

use hvcall_abi::call_code::GET_VP_REGISTERS;
use hvcall_abi::input::{HEADER_SIZE, NAME_SIZE, VALUE_SIZE};
use hvcall_abi::{
    GetVpRegistersHeader, HvInputVtl, HvRegisterName, HvRegisterValue, HvStatus, HypercallControl,
    HypercallResult, PAGE_SIZE,
};

use crate::hypercall_page::FastRegisters;
#[cfg(target_arch = "x86_64")]
use crate::hypercall_page::HypercallPage;
use crate::rep::{run_rep_call, RepError};
use crate::HvFeatures;

/// Names per memory-form call: the output list (16 bytes per value) must fit
/// in one page.
pub const BATCH: usize = (PAGE_SIZE / VALUE_SIZE) as usize;

/// Most names one x64 XMM fast call can carry:
/// `ceil((16 + 4n) / 16) + n <= 7`.
pub const FAST_MAX: usize = 4;

/// Why reading registers failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GetError {
    /// `names` and `values` differ in length.
    #[error("{names} names but {values} value slots")]
    LengthMismatch {
        /// `names.len()`.
        names: usize,
        /// `values.len()`.
        values: usize,
    },
    /// The hypervisor returned an error status.
    #[error("{status} for name #{index} (reps completed {reps_completed})")]
    Failed {
        /// The TLFS status.
        status: HvStatus,
        /// Reps completed of the failing call (relative to its batch).
        reps_completed: u16,
        /// Index into `names` of the element that failed.
        index: usize,
    },
    /// The hypervisor returned SUCCESS without making progress, or with
    /// reps completed beyond the rep count.
    #[error("hypervisor made no progress at name #{index}")]
    NoProgress {
        /// Index into `names` where the call was stuck.
        index: usize,
    },
    /// The XMM fast form needs both XMM CPUID bits (0x40000003 EDX 4 and 15).
    #[error("XMM fast hypercalls not advertised (input {input}, output {output})")]
    FastNotAdvertised {
        /// EDX bit 4.
        input: bool,
        /// EDX bit 15.
        output: bool,
    },
    /// More names than one XMM fast call can carry ([`FAST_MAX`]).
    #[error("{count} names do not fit an XMM fast call (at most 4)")]
    TooManyForFast {
        /// `names.len()`.
        count: usize,
    },
}

/// Two page-aligned pages for the memory form: the input list and the
/// output list.
#[derive(Clone)]
#[repr(C, align(4096))]
pub struct Scratch {
    /// Input: header and names.
    pub input: [u8; PAGE_SIZE as usize],
    /// Output: values.
    pub output: [u8; PAGE_SIZE as usize],
}

impl Scratch {
    /// Zeroed pages.
    pub const fn new() -> Self {
        Self {
            input: [0; PAGE_SIZE as usize],
            output: [0; PAGE_SIZE as usize],
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// What the register reader and writer need from a hypervisor.
pub trait Transport {
    /// The pages [`Transport::call_memory`] passes as input and output.
    fn scratch(&mut self) -> &mut Scratch;
    /// One memory-form call with `scratch().input` as input list and
    /// `scratch().output` as output list.
    fn call_memory(&mut self, control: HypercallControl) -> HypercallResult;
    /// One memory-form call with `scratch().input` as input list and no
    /// output list (output GPA 0), for calls without output such as
    /// HvCallSetVpRegisters.
    ///
    /// The default forwards to [`Transport::call_memory`]: a call without
    /// output ignores the output GPA (docs/contract.md §8, steps 5d–5f), so
    /// naming the output page as well is harmless. [`Hv`] passes 0.
    fn call_memory_input_only(&mut self, control: HypercallControl) -> HypercallResult {
        self.call_memory(control)
    }
    /// One XMM fast call on `regs`.
    fn call_fast(&mut self, control: HypercallControl, regs: &mut FastRegisters)
        -> HypercallResult;
    /// What the hypervisor advertises.
    fn features(&self) -> HvFeatures;
}

/// The real transport: the hypercall page and a scratch area whose
/// guest-physical address is known.
#[cfg(target_arch = "x86_64")]
pub struct Hv<'a> {
    page: HypercallPage,
    features: HvFeatures,
    scratch: &'a mut Scratch,
    scratch_gpa: u64,
}

#[cfg(target_arch = "x86_64")]
impl<'a> Hv<'a> {
    /// Pairs an enabled page with a scratch area.
    ///
    /// # Safety
    /// Must run at CPL 0; `scratch_gpa` must be the guest-physical address
    /// of `scratch`, and `page` an enabled hypercall page.
    pub unsafe fn new(
        page: HypercallPage,
        features: HvFeatures,
        scratch: &'a mut Scratch,
        scratch_gpa: u64,
    ) -> Self {
        Self {
            page,
            features,
            scratch,
            scratch_gpa,
        }
    }

    /// The hypercall page.
    pub fn page(&self) -> HypercallPage {
        self.page
    }

    /// Reads `names` of VP `vp` of partition `partition` into `values`
    /// (memory form); see [`get_vp_registers`].
    pub fn get_vp_registers(
        &mut self,
        partition: u64,
        vp: u32,
        vtl: HvInputVtl,
        names: &[HvRegisterName],
        values: &mut [HvRegisterValue],
    ) -> Result<(), GetError> {
        get_vp_registers(self, partition, vp, vtl, names, values)
    }

    /// Reads up to four registers with the XMM fast form; see
    /// [`get_vp_registers_fast`].
    pub fn get_vp_registers_fast(
        &mut self,
        partition: u64,
        vp: u32,
        vtl: HvInputVtl,
        names: &[HvRegisterName],
        values: &mut [HvRegisterValue],
    ) -> Result<(), GetError> {
        get_vp_registers_fast(self, partition, vp, vtl, names, values)
    }
}

#[cfg(target_arch = "x86_64")]
impl Transport for Hv<'_> {
    fn scratch(&mut self) -> &mut Scratch {
        self.scratch
    }

    fn call_memory(&mut self, control: HypercallControl) -> HypercallResult {
        // Expose the scratch pointer so the asm may read and write it.
        let _ = (self.scratch as *mut Scratch).expose_provenance();
        // SAFETY: `new`'s contract: CPL 0, an enabled page and the scratch
        // GPA; the hypervisor writes at most one page at the output GPA,
        // which is `scratch.output`.
        let raw = unsafe {
            self.page.hypercall(
                control.into_bits(),
                self.scratch_gpa,
                self.scratch_gpa + PAGE_SIZE,
            )
        };
        HypercallResult::from_bits(raw)
    }

    fn call_memory_input_only(&mut self, control: HypercallControl) -> HypercallResult {
        // Expose the scratch pointer so the asm may read it.
        let _ = (self.scratch as *mut Scratch).expose_provenance();
        // SAFETY: `new`'s contract: CPL 0, an enabled page and the scratch
        // GPA; with output GPA 0 the call names no output list, so the
        // hypervisor writes no guest memory.
        let raw = unsafe {
            self.page
                .hypercall(control.into_bits(), self.scratch_gpa, 0)
        };
        HypercallResult::from_bits(raw)
    }

    fn call_fast(
        &mut self,
        control: HypercallControl,
        regs: &mut FastRegisters,
    ) -> HypercallResult {
        // SAFETY: `new`'s contract (CPL 0, enabled page); the boot protocol
        // and any x64 OS set CR4.OSFXSR.
        HypercallResult::from_bits(unsafe { self.page.hypercall_fast(control.into_bits(), regs) })
    }

    fn features(&self) -> HvFeatures {
        self.features
    }
}

/// The control word of a GetVpRegisters call.
pub fn control(count: usize, rep_start: u16, fast: bool) -> HypercallControl {
    HypercallControl::new()
        .with_code(GET_VP_REGISTERS)
        .with_fast(fast)
        .with_rep_count(count as u16)
        .with_rep_start(rep_start)
}

/// The 16-byte input header as two little-endian qwords.
pub fn header(partition: u64, vp: u32, vtl: HvInputVtl) -> [u64; 2] {
    GetVpRegistersHeader::new(partition, vp, vtl).qwords()
}

/// Reads `names` of VP `vp` of `partition` at `vtl` into `values` with the
/// memory form: at most [`BATCH`] names per call, each call run to
/// completion with [`run_rep_call`].
///
/// On error, `values[..index]` hold the registers read before the failing
/// element; later slots are unchanged.
///
/// With a [`Transport`] that stands in for a hypervisor (here one that
/// answers every name with its own number and does at most two elements
/// per call, so the rep loop must reissue):
///
/// ```
/// use hvcall_abi::{name::x64, partition_id, vp_index};
/// use hvcall_abi::{HvInputVtl, HvRegisterValue, HvStatus, HypercallControl, HypercallResult};
/// use hvcall_guest::{get_vp_registers, FastRegisters, HvFeatures, Scratch, Transport};
///
/// struct Echo(Scratch);
/// impl Transport for Echo {
///     fn scratch(&mut self) -> &mut Scratch {
///         &mut self.0
///     }
///     fn call_memory(&mut self, control: HypercallControl) -> HypercallResult {
///         let (start, count) = (control.rep_start(), control.rep_count());
///         let end = count.min(start + 2);
///         for i in usize::from(start)..usize::from(end) {
///             let name = &self.0.input[16 + 4 * i..][..4];
///             let value = u32::from_le_bytes(name.try_into().unwrap());
///             self.0.output[16 * i..][..16].copy_from_slice(&u128::from(value).to_le_bytes());
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
/// let mut hv = Echo(Scratch::new());
/// let names = [x64::RAX, x64::RIP, x64::CR3];
/// let mut values = [HvRegisterValue::default(); 3];
/// get_vp_registers(&mut hv, partition_id::SELF, vp_index::SELF, HvInputVtl::new(), &names, &mut values)
///     .unwrap();
/// assert_eq!(values[1].as_u64(), u64::from(x64::RIP.0));
/// ```
pub fn get_vp_registers<T: Transport>(
    t: &mut T,
    partition: u64,
    vp: u32,
    vtl: HvInputVtl,
    names: &[HvRegisterName],
    values: &mut [HvRegisterValue],
) -> Result<(), GetError> {
    check_lengths(names, values)?;
    let head = header(partition, vp, vtl);
    for (batch, (names, values)) in names
        .chunks(BATCH)
        .zip(values.chunks_mut(BATCH))
        .enumerate()
    {
        let scratch = t.scratch();
        scratch.input[..8].copy_from_slice(&head[0].to_le_bytes());
        scratch.input[8..16].copy_from_slice(&head[1].to_le_bytes());
        let list = &mut scratch.input[HEADER_SIZE as usize..][..names.len() * NAME_SIZE as usize];
        for (slot, name) in list.chunks_exact_mut(NAME_SIZE as usize).zip(names) {
            slot.copy_from_slice(&name.0.to_le_bytes());
        }
        let outcome = run_rep_call(names.len() as u16, |start| {
            t.call_memory(control(names.len(), start, false))
        });
        let done = completed(&outcome, names.len());
        let output = &t.scratch().output;
        for (value, bytes) in values[..done]
            .iter_mut()
            .zip(output.chunks_exact(VALUE_SIZE as usize))
        {
            value.0.copy_from_slice(bytes);
        }
        outcome.map_err(|e| to_get_error(e, batch * BATCH))?;
    }
    Ok(())
}

/// Reads up to [`FAST_MAX`] registers with the XMM fast form (input in
/// RDX, R8, XMM0; output from XMM1 on). Fails with
/// [`GetError::FastNotAdvertised`] without calling when either XMM CPUID
/// bit is missing.
pub fn get_vp_registers_fast<T: Transport>(
    t: &mut T,
    partition: u64,
    vp: u32,
    vtl: HvInputVtl,
    names: &[HvRegisterName],
    values: &mut [HvRegisterValue],
) -> Result<(), GetError> {
    check_lengths(names, values)?;
    if names.len() > FAST_MAX {
        return Err(GetError::TooManyForFast { count: names.len() });
    }
    let features = t.features();
    if !features.xmm_fast_input() || !features.xmm_fast_output() {
        return Err(GetError::FastNotAdvertised {
            input: features.xmm_fast_input(),
            output: features.xmm_fast_output(),
        });
    }
    if names.is_empty() {
        return Ok(());
    }
    let mut regs = fast_input(partition, vp, vtl, names);
    let outcome = run_rep_call(names.len() as u16, |start| {
        t.call_fast(control(names.len(), start, true), &mut regs)
    });
    let done = completed(&outcome, names.len());
    let first = fast_output_pair(names.len());
    for (value, pair) in values[..done].iter_mut().zip(&regs.pairs[first..]) {
        *value = HvRegisterValue::from_parts(pair[0], pair[1]);
    }
    outcome.map_err(|e| to_get_error(e, 0))
}

/// The fast register file for a call: the header in pair 0, the names
/// packed from pair 1 on (4 bytes each, little-endian).
pub fn fast_input(
    partition: u64,
    vp: u32,
    vtl: HvInputVtl,
    names: &[HvRegisterName],
) -> FastRegisters {
    let mut regs = FastRegisters::default();
    regs.pairs[0] = header(partition, vp, vtl);
    for (i, name) in names.iter().enumerate().take(FAST_MAX) {
        let pair = 1 + i / 4;
        let qword = (i % 4) / 2;
        let shift = 32 * (i % 2);
        regs.pairs[pair][qword] |= u64::from(name.0) << shift;
    }
    regs
}

/// The first pair holding output for `count` names: the input
/// (16 + 4 * count bytes) rounded up to whole pairs.
pub const fn fast_output_pair(count: usize) -> usize {
    (HEADER_SIZE as usize + NAME_SIZE as usize * count).div_ceil(16)
}

/// Fails with [`GetError::LengthMismatch`] unless there is one value slot
/// per name.
fn check_lengths(names: &[HvRegisterName], values: &[HvRegisterValue]) -> Result<(), GetError> {
    if names.len() == values.len() {
        Ok(())
    } else {
        Err(GetError::LengthMismatch {
            names: names.len(),
            values: values.len(),
        })
    }
}

/// How many leading values of a batch of `count` hold results.
fn completed(outcome: &Result<(), RepError>, count: usize) -> usize {
    match *outcome {
        Ok(()) => count,
        Err(RepError::Failed { reps_completed, .. }) => usize::from(reps_completed).min(count),
        Err(RepError::NoProgress { rep_start, .. }) => usize::from(rep_start).min(count),
        Err(RepError::Overrun { .. }) => 0,
    }
}

fn to_get_error(e: RepError, base: usize) -> GetError {
    match e {
        RepError::Failed {
            status,
            reps_completed,
        } => GetError::Failed {
            status,
            reps_completed,
            index: base + usize::from(reps_completed),
        },
        RepError::NoProgress { rep_start, .. } => GetError::NoProgress {
            index: base + usize::from(rep_start),
        },
        RepError::Overrun { .. } => GetError::NoProgress { index: base },
    }
}

#[cfg(test)]
mod tests;
