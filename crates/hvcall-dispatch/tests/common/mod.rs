//! Shared harness of the integration tests: one call scenario, run in any
//! calling convention and in memory or fast form, against the reference
//! model, with an exact check of every register and byte of RAM.
//!
//! The register placement of each ABI is written out here independently of
//! the dispatcher's `Convention` methods, straight from docs/contract.md §3–§4.
// Each test crate uses a part of the helpers (dead_code); tests may index,
// unwrap and panic.
#![allow(
    dead_code,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::panic
)]

use hvcall_abi::{Arch, HvRegisterName, HvStatus};
use hvcall_dispatch::registers::RegisterFile;
use hvcall_dispatch::{dispatch, CallContext, Convention, DispatchConfig, Outcome, VpState};
use hvcall_model::{GuestRam, Model, ModelSnapshot};

/// HV_PARTITION_ID_SELF.
pub const SELF_PARTITION: u64 = u64::MAX;
/// HV_VP_INDEX_SELF.
pub const SELF_VP: u32 = 0xFFFF_FFFE;
/// Where the memory form's input list goes.
pub const IN_GPA: u64 = 0x3000;
/// Where the memory form's output list goes.
pub const OUT_GPA: u64 = 0x5000;
/// RAM: [0, 0x10000) and [0x20000, 0x30000); a hole between; an overlay
/// page at 0x8000.
pub const OVERLAY_GPA: u64 = 0x8000;
/// The start of the hole (not RAM).
pub const HOLE_GPA: u64 = 0x10000;
/// Byte that fills the output page before a call (guard bytes).
pub const GUARD: u8 = 0xA5;
/// The instruction pointer of the hypercall in every scenario.
pub const IP: u64 = 0xFFFF_8000_0000_1000;
/// A name no model VP has.
pub const UNKNOWN_NAME: u32 = 0x7777_7777;

/// The ABIs, in the order tests run them.
pub const CONVENTIONS: [Convention; 4] = [
    Convention::X64,
    Convention::X86,
    Convention::Arm64Hvc1,
    Convention::Arm64Smccc,
];

/// Where the lists of a call live.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Form {
    /// Input and output lists in guest memory.
    Memory,
    /// Input and output in registers.
    Fast,
}

/// A register of the caller's file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Reg {
    /// General register `i` (x86 encoding order on x64, Xi on ARM64).
    Gpr(usize),
    /// Vector register `i` (XMMi on x64).
    Vector(usize),
}

/// RAX (x86 encoding order).
pub const RAX: usize = 0;
/// RCX.
pub const RCX: usize = 1;
/// RDX.
pub const RDX: usize = 2;
/// RBX.
pub const RBX: usize = 3;
/// RSI.
pub const RSI: usize = 6;
/// RDI.
pub const RDI: usize = 7;
/// R8.
pub const R8: usize = 8;

/// Every (convention, form) a row applies to: the memory form always, the
/// fast form where the register file can hold a call of `n` elements
/// (32-bit x86 never can).
pub fn combos(n: u16) -> Vec<(Convention, Form)> {
    let mut v = Vec::new();
    for c in CONVENTIONS {
        v.push((c, Form::Memory));
        if fast_fits(c, n) {
            v.push((c, Form::Fast));
        }
    }
    v
}

/// docs/contract.md §1 step 5c, written out.
pub fn fast_fits(c: Convention, n: u16) -> bool {
    let n = n as usize;
    match c {
        Convention::X64 => (16 + 4 * n).div_ceil(16) + n <= 7,
        Convention::X86 => false,
        Convention::Arm64Smccc => (16 + 4 * n).div_ceil(16) * 16 + 16 * n <= 16 * 8,
        Convention::Arm64Hvc1 => (16 + 4 * n).div_ceil(16) * 16 + 16 * n <= 17 * 8,
    }
}

/// The architecture of a convention.
pub fn arch(c: Convention) -> Arch {
    match c {
        Convention::X64 | Convention::X86 => Arch::X64,
        _ => Arch::Arm64,
    }
}

/// The registers written with the result value.
pub fn result_regs(c: Convention) -> Vec<Reg> {
    match c {
        Convention::X64 => vec![Reg::Gpr(RAX)],
        Convention::X86 => vec![Reg::Gpr(RDX), Reg::Gpr(RAX)],
        _ => vec![Reg::Gpr(0)],
    }
}

/// The registers a continuation rewrites.
pub fn control_regs(c: Convention) -> Vec<Reg> {
    match c {
        Convention::X64 => vec![Reg::Gpr(RCX)],
        Convention::X86 => vec![Reg::Gpr(RDX), Reg::Gpr(RAX)],
        Convention::Arm64Hvc1 => vec![Reg::Gpr(0)],
        Convention::Arm64Smccc => vec![Reg::Gpr(1)],
    }
}

/// Where fast output value `i` of an `n`-element call goes: one XMM on
/// x64, a (low, high) pair of X registers on ARM64.
pub fn fast_output_regs(c: Convention, n: u16, i: u16) -> Vec<Reg> {
    let (n, i) = (n as usize, i as usize);
    let in_bytes_rounded = (16 + 4 * n).div_ceil(16) * 16;
    match c {
        Convention::X64 => vec![Reg::Vector(in_bytes_rounded / 16 + i - 1)],
        Convention::Arm64Smccc | Convention::Arm64Hvc1 => {
            let first = if c == Convention::Arm64Smccc { 2 } else { 1 };
            let word = (in_bytes_rounded + 16 * i) / 8;
            vec![Reg::Gpr(first + word), Reg::Gpr(first + word + 1)]
        }
        Convention::X86 => panic!("no fast output for 32-bit callers"),
    }
}

/// The value of register `r` (general registers zero-extended).
pub fn get_reg(regs: &RegisterFile, r: Reg) -> u128 {
    match r {
        Reg::Gpr(i) => u128::from(regs.gprs[i]),
        Reg::Vector(i) => regs.vectors[i],
    }
}

/// The 16-byte input header.
pub fn header(partition: u64, vp: u32, vtl: u8) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&partition.to_le_bytes());
    h[8..12].copy_from_slice(&vp.to_le_bytes());
    h[12] = vtl;
    h
}

/// Header + names, as the input list bytes.
pub fn input_bytes(header: &[u8; 16], names: &[u32]) -> Vec<u8> {
    let mut v = header.to_vec();
    for n in names {
        v.extend_from_slice(&n.to_le_bytes());
    }
    v
}

/// A GetVpRegisters control word.
pub fn control(fast: bool, n: u16, s: u16) -> u64 {
    0x50 | (u64::from(fast) << 16) | (u64::from(n) << 32) | (u64::from(s) << 48)
}

/// Register file with a distinct junk value in every register.
pub fn junk_regs() -> RegisterFile {
    let mut r = RegisterFile::default();
    for (i, g) in r.gprs.iter_mut().enumerate() {
        *g = 0xDEAD_0000_0000_0000 | ((i as u64) << 8) | 0x11;
    }
    for (i, v) in r.vectors.iter_mut().enumerate() {
        *v = 0xFEED_0000_0000_0000_0000_0000_0000_0000 | ((i as u128) << 8) | 0x22;
    }
    r
}

/// Place a call in the registers of convention `c`: control, and either
/// the two GPAs (memory form) or the input image (fast form).
pub fn place(
    c: Convention,
    regs: &mut RegisterFile,
    control: u64,
    form: Form,
    input: &[u8],
    in_gpa: u64,
    out_gpa: u64,
) {
    let lo = |v: u64| v & 0xFFFF_FFFF;
    match c {
        Convention::X64 => regs.gprs[RCX] = control,
        Convention::X86 => {
            regs.gprs[RDX] = control >> 32;
            regs.gprs[RAX] = lo(control);
        }
        Convention::Arm64Hvc1 => regs.gprs[0] = control,
        Convention::Arm64Smccc => {
            regs.gprs[0] = 0x4600_0001;
            regs.gprs[1] = control;
        }
    }
    match form {
        Form::Memory => match c {
            Convention::X64 => {
                regs.gprs[RDX] = in_gpa;
                regs.gprs[R8] = out_gpa;
            }
            Convention::X86 => {
                regs.gprs[RBX] = in_gpa >> 32;
                regs.gprs[RCX] = lo(in_gpa);
                regs.gprs[RDI] = out_gpa >> 32;
                regs.gprs[RSI] = lo(out_gpa);
            }
            Convention::Arm64Hvc1 => {
                regs.gprs[1] = in_gpa;
                regs.gprs[2] = out_gpa;
            }
            Convention::Arm64Smccc => {
                regs.gprs[2] = in_gpa;
                regs.gprs[3] = out_gpa;
            }
        },
        Form::Fast => {
            let mut padded = input.to_vec();
            padded.resize(input.len().next_multiple_of(16), 0);
            let word = |k: usize| u64::from_le_bytes(padded[8 * k..8 * k + 8].try_into().unwrap());
            match c {
                Convention::X64 => {
                    regs.gprs[RDX] = word(0);
                    regs.gprs[R8] = word(1);
                    for k in 1..(padded.len() / 16).min(7) {
                        regs.vectors[k - 1] =
                            u128::from(word(2 * k)) | (u128::from(word(2 * k + 1)) << 64);
                    }
                }
                Convention::X86 => {
                    regs.gprs[RBX] = word(0) >> 32;
                    regs.gprs[RCX] = lo(word(0));
                    regs.gprs[RDI] = word(1) >> 32;
                    regs.gprs[RSI] = lo(word(1));
                }
                Convention::Arm64Hvc1 | Convention::Arm64Smccc => {
                    let first = if c == Convention::Arm64Smccc { 2 } else { 1 };
                    for k in 0..padded.len() / 8 {
                        if first + k < 18 {
                            regs.gprs[first + k] = word(k);
                        }
                    }
                }
            }
        }
    }
}

/// The result value as the guest sees it.
pub fn result_of(c: Convention, regs: &RegisterFile) -> u64 {
    match c {
        Convention::X64 => regs.gprs[RAX],
        Convention::X86 => (regs.gprs[RDX] << 32) | (regs.gprs[RAX] & 0xFFFF_FFFF),
        _ => regs.gprs[0],
    }
}

/// The control value as the guest sees it (after a continuation).
pub fn control_of(c: Convention, regs: &RegisterFile) -> u64 {
    match c {
        Convention::X64 => regs.gprs[RCX],
        Convention::X86 => (regs.gprs[RDX] << 32) | (regs.gprs[RAX] & 0xFFFF_FFFF),
        Convention::Arm64Hvc1 => regs.gprs[0],
        Convention::Arm64Smccc => regs.gprs[1],
    }
}

/// Standard guest RAM: [0, 0x10000) and [0x20000, 0x30000), overlay page
/// at 0x8000, the output page filled with guard bytes.
pub fn standard_ram() -> GuestRam {
    let mut ram = GuestRam::with_region(0, HOLE_GPA).unwrap();
    ram.add_region(0x20000, 0x10000).unwrap();
    ram.add_overlay(OVERLAY_GPA);
    ram.poke(OUT_GPA, &[GUARD; 4096]).unwrap();
    ram
}

/// Every byte of every region, for before/after comparison.
pub fn ram_image(ram: &GuestRam) -> Vec<(u64, Vec<u8>)> {
    ram.regions()
        .map(|(base, len)| (base, ram.peek(base, len as usize).unwrap()))
        .collect()
}

/// One scenario: a model, RAM, registers and continuation state.
pub struct Case {
    pub conv: Convention,
    pub form: Form,
    pub model: Model,
    pub ram: GuestRam,
    pub regs: RegisterFile,
    pub state: VpState<ModelSnapshot>,
    pub config: DispatchConfig,
    pub ctx: CallContext,
    pub n: u16,
    pub regs_before: RegisterFile,
    pub ram_before: Vec<(u64, Vec<u8>)>,
    pub in_gpa: u64,
    pub out_gpa: u64,
}

impl Case {
    /// The standard model (the VM's VP 0 calls), standard RAM, junk
    /// registers.
    pub fn new(conv: Convention, form: Form) -> Self {
        Self {
            conv,
            form,
            model: Model::standard(arch(conv)),
            ram: standard_ram(),
            regs: junk_regs(),
            state: VpState::new(),
            config: DispatchConfig::default(),
            ctx: CallContext::new(conv, true, IP),
            n: 0,
            regs_before: RegisterFile::default(),
            ram_before: Vec::new(),
            in_gpa: IN_GPA,
            out_gpa: OUT_GPA,
        }
    }

    /// The architecture of this case's convention.
    pub fn arch(&self) -> Arch {
        arch(self.conv)
    }

    /// Set up a GetVpRegisters call of `names` from `start`.
    pub fn get(&mut self, start: u16, header: [u8; 16], names: &[u32]) -> &mut Self {
        let n = names.len() as u16;
        let control = control(self.form == Form::Fast, n, start);
        self.raw(control, &input_bytes(&header, names));
        self.n = n;
        self
    }

    /// Set up a call with this control word and input bytes.
    pub fn raw(&mut self, control: u64, input: &[u8]) -> &mut Self {
        if self.form == Form::Memory {
            self.ram.poke(self.in_gpa, input).unwrap_or(());
        }
        place(
            self.conv,
            &mut self.regs,
            control,
            self.form,
            input,
            self.in_gpa,
            self.out_gpa,
        );
        self.n = ((control >> 32) & 0xFFF) as u16;
        self
    }

    /// One entry. Records the state before it.
    pub fn entry(&mut self) -> Outcome {
        self.regs_before = self.regs.clone();
        self.ram_before = ram_image(&self.ram);
        self.dispatch_once()
    }

    /// One call of the dispatcher on this case's state.
    fn dispatch_once(&mut self) -> Outcome {
        let outcome = dispatch(
            &self.ctx,
            &mut self.regs,
            &mut self.ram,
            &mut self.model,
            &mut self.state,
            &self.config,
        );
        // The model never fails on the host side.
        match outcome {
            Ok(outcome) => outcome,
            Err(never) => match never {},
        }
    }

    /// Enter until the call completes (or #UD); returns the last outcome
    /// and the number of entries. The "before" state is that of the first.
    pub fn run(&mut self) -> (Outcome, usize) {
        let regs_before = self.regs.clone();
        let ram_before = ram_image(&self.ram);
        let mut entries = 0;
        loop {
            let out = self.dispatch_once();
            entries += 1;
            assert!(entries < 10_000, "call never completes");
            if out != Outcome::Continue {
                self.regs_before = regs_before;
                self.ram_before = ram_before;
                return (out, entries);
            }
        }
    }

    /// The status of the result value in the registers.
    pub fn status(&self) -> HvStatus {
        HvStatus((result_of(self.conv, &self.regs) & 0xFFFF) as u16)
    }

    /// The reps completed of the result value in the registers.
    pub fn reps(&self) -> u16 {
        ((result_of(self.conv, &self.regs) >> 32) & 0xFFF) as u16
    }

    /// The value the model holds for `name` of (partition, VP, VTL).
    pub fn model_value(&self, partition: u64, vp: u32, vtl: u8, name: u32) -> u128 {
        self.model
            .vp(partition, vp)
            .unwrap()
            .register(self.arch(), vtl, HvRegisterName(name))
            .unwrap()
            .as_u128()
    }

    /// Assert the whole effect of the call: the outcome is Complete with
    /// result (status, reps); exactly the output slots in `values` hold
    /// those values; every other register and byte kept its value.
    pub fn expect(&self, outcome: Outcome, status: HvStatus, reps: u16, values: &[(u16, u128)]) {
        let what = format!("{:?} {:?}", self.conv, self.form);
        assert_eq!(outcome, Outcome::Complete, "{what}: outcome");
        assert_eq!(self.status(), status, "{what}: status");
        assert_eq!(self.reps(), reps, "{what}: reps completed");
        let mut allowed = result_regs(self.conv);
        let mut expected_ram = self.ram_before.clone();
        for &(i, v) in values {
            match self.form {
                Form::Fast => {
                    let regs = fast_output_regs(self.conv, self.n, i);
                    match regs.as_slice() {
                        [r] => assert_eq!(get_reg(&self.regs, *r), v, "{what}: value {i}"),
                        [lo, hi] => {
                            assert_eq!(
                                get_reg(&self.regs, *lo),
                                v & u128::from(u64::MAX),
                                "{what}: value {i} low"
                            );
                            assert_eq!(get_reg(&self.regs, *hi), v >> 64, "{what}: value {i} high");
                        }
                        _ => unreachable!(),
                    }
                    allowed.extend(regs);
                }
                Form::Memory => {
                    let gpa = self.out_gpa + 16 * u64::from(i);
                    for (base, bytes) in expected_ram.iter_mut() {
                        if gpa >= *base && gpa + 16 <= *base + bytes.len() as u64 {
                            let off = (gpa - *base) as usize;
                            bytes[off..off + 16].copy_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            }
        }
        assert_regs_only(&self.regs_before, &self.regs, &allowed, &what);
        assert!(
            ram_image(&self.ram) == expected_ram,
            "{what}: RAM differs from expected"
        );
    }

    /// Assert a completed call that wrote nothing but its result.
    pub fn expect_error(&self, outcome: Outcome, status: HvStatus, reps: u16) {
        self.expect(outcome, status, reps, &[]);
    }

    /// Assert #UD and no change at all.
    pub fn expect_undefined(&self, outcome: Outcome) {
        let what = format!("{:?} {:?}", self.conv, self.form);
        assert_eq!(outcome, Outcome::InjectUndefined, "{what}");
        assert_eq!(self.regs, self.regs_before, "{what}: registers changed");
        assert!(
            ram_image(&self.ram) == self.ram_before,
            "{what}: RAM changed"
        );
    }
}

/// Assert that only `allowed` registers differ between `before` and `after`.
pub fn assert_regs_only(before: &RegisterFile, after: &RegisterFile, allowed: &[Reg], what: &str) {
    for i in 0..before.gprs.len() {
        if !allowed.contains(&Reg::Gpr(i)) {
            assert_eq!(
                before.gprs[i], after.gprs[i],
                "{what}: general register {i} changed"
            );
        }
    }
    for i in 0..before.vectors.len() {
        if !allowed.contains(&Reg::Vector(i)) {
            assert_eq!(
                before.vectors[i], after.vectors[i],
                "{what}: vector register {i} changed"
            );
        }
    }
}

/// Valid names of the standard model: `k` distinct ones.
pub fn names(c: Convention, k: usize) -> Vec<u32> {
    hvcall_model::standard_names(arch(c))
        .iter()
        .take(k)
        .map(|n| n.0)
        .collect()
}
