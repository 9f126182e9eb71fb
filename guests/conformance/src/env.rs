//! What every case needs: the hypercall page, what CPUID advertises, the
//! VP count, the input and output buffers, and raw memory-form calls.

use hvcall_abi::{partition_id, HvStatus, HypercallResult};
use hvcall_guest::{HvFeatures, HypercallPage};
use rt::hv::{gpa, Page};

use crate::report::{eq, Outcome};

/// HvCallGetVpRegisters.
pub const CODE: u64 = 0x0050;
/// The control's fast bit.
pub const FAST: u64 = 1 << 16;
/// Written into output slots before a call, to see which ones it wrote.
pub const SENTINEL: u64 = 0x5E57_1E55_0000_0000;

/// Four pages: input at 0 (page 1 for page-crossing lists), output at 2
/// (page 3 likewise).
static mut BUFFERS: [Page; 4] = [const { Page([0; 4096]) }; 4];

/// The shared state of the cases.
pub struct Env {
    /// The enabled hypercall page.
    pub page: HypercallPage,
    /// What CPUID 0x40000003 advertises.
    pub features: HvFeatures,
    /// Number of VPs.
    pub vps: u32,
}

/// The control word of GetVpRegisters with `n` reps from `s`.
pub const fn control(n: u64, s: u64) -> u64 {
    CODE | (n << 32) | (s << 48)
}

/// Address of buffer page `i` (identity-mapped, so also its GPA).
pub fn page(i: usize) -> u64 {
    // SAFETY: only the address is taken.
    gpa(unsafe { &raw const BUFFERS[i] })
}

/// Input buffer address.
pub fn input() -> u64 {
    page(0)
}

/// Output buffer address.
pub fn output() -> u64 {
    page(2)
}

/// Writes a qword at `addr` (inside the buffers).
pub fn put64(addr: u64, v: u64) {
    // SAFETY: callers pass addresses inside BUFFERS, 4-byte aligned at
    // least; unaligned writes are fine on x86.
    unsafe { core::ptr::write_unaligned(addr as *mut u64, v) }
}

/// Reads a qword at `addr` (inside the buffers).
pub fn get64(addr: u64) -> u64 {
    // SAFETY: as in `put64`.
    unsafe { core::ptr::read_unaligned(addr as *const u64) }
}

/// Writes a GetVpRegisters input list at `at`: header (partition, VP,
/// VTL byte, reserved bytes 13–15) and names.
pub fn write_input(at: u64, partition: u64, vp: u32, vtl: u8, reserved: [u8; 3], names: &[u32]) {
    put64(at, partition);
    let second = u64::from(vp)
        | (u64::from(vtl) << 32)
        | (u64::from(reserved[0]) << 40)
        | (u64::from(reserved[1]) << 48)
        | (u64::from(reserved[2]) << 56);
    put64(at + 8, second);
    for (i, name) in names.iter().enumerate() {
        // SAFETY: inside BUFFERS (callers size the lists).
        unsafe { core::ptr::write_unaligned((at + 16 + 4 * i as u64) as *mut u32, *name) };
    }
}

/// A well-formed input for SELF/SELF at the input buffer.
pub fn self_input(names: &[u32]) {
    write_input(
        input(),
        partition_id::SELF,
        hvcall_abi::vp_index::SELF,
        0,
        [0; 3],
        names,
    );
}

/// Fills output slots `0..n` at `at` with distinct sentinels.
pub fn fill(at: u64, n: u64) {
    for i in 0..n {
        put64(at + 16 * i, SENTINEL | i);
        put64(at + 16 * i + 8, !(SENTINEL | i));
    }
}

/// Fails unless output slots `range` at `at` still hold their sentinels.
pub fn untouched(at: u64, range: core::ops::Range<u64>) -> Outcome {
    for i in range {
        eq(
            "untouched output slot (low qword)",
            get64(at + 16 * i),
            SENTINEL | i,
        )?;
        eq(
            "untouched output slot (high qword)",
            get64(at + 16 * i + 8),
            !(SENTINEL | i),
        )?;
    }
    Ok(())
}

/// Output slot `i` at `at` as (low, high).
pub fn slot(at: u64, i: u64) -> (u64, u64) {
    (get64(at + 16 * i), get64(at + 16 * i + 8))
}

impl Env {
    /// One raw memory-form call; returns (status, reps completed).
    pub fn call(&self, control: u64, input: u64, output: u64) -> (u16, u16) {
        // SAFETY: CPL 0 and an enabled page; the hypervisor writes at most
        // the output list, which callers place in BUFFERS (or outside RAM,
        // where nothing is written).
        let raw = unsafe { self.page.hypercall(control, input, output) };
        let r = HypercallResult::from_bits(raw);
        (r.status().0, r.reps_completed())
    }

    /// Whether self access is allowed (AccessVpRegisters advertised).
    pub fn privileged(&self) -> bool {
        self.features.can_access_vp_registers()
    }

    /// Whether both XMM fast bits are advertised.
    pub fn xmm(&self) -> bool {
        self.features.xmm_fast_input() && self.features.xmm_fast_output()
    }

    /// The status a self-access call gets that would otherwise get
    /// `status`: ACCESS_DENIED without AccessVpRegisters (step 6e comes
    /// first).
    pub fn self_status(&self, status: HvStatus) -> u16 {
        if self.privileged() {
            status.0
        } else {
            HvStatus::ACCESS_DENIED.0
        }
    }

    /// Reps completed a self-access call gets that would otherwise get
    /// `reps` (an ACCESS_DENIED at step 6e reports the rep start `s`).
    pub fn self_reps(&self, reps: u16, s: u16) -> u16 {
        if self.privileged() {
            reps
        } else {
            s
        }
    }

    /// The address of the hypercall page.
    pub fn page_va(&self) -> u64 {
        self.page.address() as u64
    }
}

/// Fails unless a call returned `status` and `reps`.
pub fn result(got: (u16, u16), status: u16, reps: u16) -> Outcome {
    eq("status", u64::from(got.0), u64::from(status))?;
    eq("reps completed", u64::from(got.1), u64::from(reps))
}

/// The general registers `rt::pattern` fills, as (name, x86 index).
pub const PATTERN_GPRS: [(u32, usize); 14] = [
    (hvcall_abi::name::x64::RCX.0, 1),
    (hvcall_abi::name::x64::RDX.0, 2),
    (hvcall_abi::name::x64::RBX.0, 3),
    (hvcall_abi::name::x64::RBP.0, 5),
    (hvcall_abi::name::x64::RSI.0, 6),
    (hvcall_abi::name::x64::RDI.0, 7),
    (hvcall_abi::name::x64::R8.0, 8),
    (hvcall_abi::name::x64::R9.0, 9),
    (hvcall_abi::name::x64::R10.0, 10),
    (hvcall_abi::name::x64::R11.0, 11),
    (hvcall_abi::name::x64::R12.0, 12),
    (hvcall_abi::name::x64::R13.0, 13),
    (hvcall_abi::name::x64::R14.0, 14),
    (hvcall_abi::name::x64::R15.0, 15),
];

/// Name and expected value of pattern register `k` (cycling) on `vp`.
pub fn pattern_name(k: usize, vp: u32) -> (u32, u64) {
    let (name, index) = PATTERN_GPRS[k % PATTERN_GPRS.len()];
    (name, rt::pattern::gpr(index, vp).unwrap_or(0))
}
