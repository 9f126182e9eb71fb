//! Fuzz `hvcall_dispatch::dispatch` with arbitrary registers, conventions,
//! memory layouts and model configurations.
//!
//! Asserts: no panic; every memory access is inside the RAM given and
//! inside the declared lists (reads: the input list; writes: output slots
//! `rep start..rep count`); #UD changes nothing; only the result, control
//! and fast-output registers change.
#![no_main]

use arbitrary::{Result, Unstructured};
use hvcall_abi::{Arch, HvRegisterName, HvRegisterValue};
use hvcall_dispatch::registers::RegisterFile;
use hvcall_dispatch::{
    dispatch, CallContext, Convention, DispatchConfig, MemoryError, Outcome, PartitionMemory,
    VpState,
};
use hvcall_model::{standard_names, GuestRam, Model, DEFAULT_PRIVILEGES};
use libfuzzer_sys::fuzz_target;

const PAGE: u64 = 4096;

/// Guest memory that checks every access the dispatcher makes.
struct Checked {
    ram: GuestRam,
    /// `[start, end)` the dispatcher may read (the input list).
    read: (u128, u128),
    /// `[start, end)` it may write (output slots rep start..rep count).
    write: (u128, u128),
    /// Whether output lists are lent as slices (`lend_mut`), so that both
    /// ways of writing the output are fuzzed.
    lend: bool,
}

fn inside(gpa: u64, len: usize, range: (u128, u128)) -> bool {
    let start = u128::from(gpa);
    let end = start + len as u128;
    len == 0 || (range.0 <= start && end <= range.1)
}

impl PartitionMemory for Checked {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        self.ram.is_ram(gpa, len)
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> core::result::Result<(), MemoryError> {
        assert!(
            self.ram.is_ram(gpa, buf.len() as u64),
            "read outside RAM: {gpa:#x}+{:#x}",
            buf.len()
        );
        assert!(
            inside(gpa, buf.len(), self.read),
            "read outside the input list: {gpa:#x}+{:#x}",
            buf.len()
        );
        self.ram.read(gpa, buf)
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> core::result::Result<(), MemoryError> {
        assert!(
            self.ram.is_ram(gpa, data.len() as u64),
            "write outside RAM: {gpa:#x}+{:#x}",
            data.len()
        );
        assert!(
            inside(gpa, data.len(), self.write),
            "write outside the output slots: {gpa:#x}+{:#x}",
            data.len()
        );
        self.ram.write(gpa, data)
    }

    fn lend_mut(&mut self, gpa: u64, len: u64) -> Option<&mut [u8]> {
        if !self.lend {
            return None;
        }
        let size = usize::try_from(len).ok()?;
        assert!(
            self.ram.is_ram(gpa, len),
            "lent outside RAM: {gpa:#x}+{len:#x}"
        );
        assert!(
            inside(gpa, size, self.write),
            "lent outside the output slots: {gpa:#x}+{len:#x}"
        );
        self.ram.lend_mut(gpa, len)
    }
}

const CONVENTIONS: [Convention; 4] = [
    Convention::X64,
    Convention::X86,
    Convention::Arm64Hvc1,
    Convention::Arm64Smccc,
];

/// (control, input GPA, output GPA) as the ABI table of docs/contract.md §4
/// places them, decoded here independently of the dispatcher.
fn decode(c: Convention, r: &RegisterFile) -> (u64, u64, u64) {
    let pair = |hi: usize, lo: usize| (r.gprs[hi] << 32) | (r.gprs[lo] & 0xFFFF_FFFF);
    match c {
        Convention::X64 => (r.gprs[1], r.gprs[2], r.gprs[8]),
        Convention::X86 => (pair(2, 0), pair(3, 1), pair(7, 6)),
        Convention::Arm64Hvc1 => (r.gprs[0], r.gprs[1], r.gprs[2]),
        Convention::Arm64Smccc => (r.gprs[1], r.gprs[2], r.gprs[3]),
    }
}

/// Whether a call may change a register: the result and control
/// registers always, the fast output area only for a call with fast
/// output (`fast`: a fast HvCallGetVpRegisters; 0x0051 has no output).
fn may_change(c: Convention, fast: bool, gpr: Option<usize>, vector: Option<usize>) -> bool {
    let result_or_control: &[usize] = match c {
        Convention::X64 => &[0, 1],
        Convention::X86 => &[0, 2],
        Convention::Arm64Hvc1 => &[0],
        Convention::Arm64Smccc => &[0, 1],
    };
    if let Some(g) = gpr {
        if result_or_control.contains(&g) {
            return true;
        }
        // ARM64 fast output starts at least 32 bytes into the file.
        return fast
            && match c {
                Convention::Arm64Hvc1 => g >= 5,
                Convention::Arm64Smccc => g >= 6,
                _ => false,
            };
    }
    // x64 fast output starts at pair 2 (XMM1) at the earliest.
    fast && c == Convention::X64 && vector.is_some_and(|v| v >= 1)
}

fn build_model(u: &mut Unstructured, arch: Arch) -> Result<Model> {
    let ids = [1u64, 2, 3, 4];
    let mut b = Model::builder(arch).root_vps(u.int_in_range(0..=3)?);
    for _ in 0..u.int_in_range(0..=3)? {
        let id = if u.ratio(1, 8)? {
            u.arbitrary()?
        } else {
            *u.choose(&ids[1..])?
        };
        let parent = if u.ratio(1, 8)? {
            u.arbitrary()?
        } else {
            *u.choose(&ids)?
        };
        b = b.partition(id, parent, u.int_in_range(0..=3)?);
    }
    for &id in &ids {
        let privileges = if u.ratio(3, 4)? {
            DEFAULT_PRIVILEGES
        } else {
            u.arbitrary()?
        };
        b = b
            .privileges(id, privileges)
            .xmm_fast(id, u.ratio(7, 8)?, u.ratio(7, 8)?);
        for vp in 0..3 {
            if u.ratio(1, 3)? {
                b = b.vtls(id, vp, u.arbitrary()?, u.int_in_range(0..=17)?);
            }
        }
    }
    let names = standard_names(arch);
    for _ in 0..u.int_in_range(0..=24)? {
        let name = if u.ratio(7, 8)? {
            *u.choose(names)?
        } else {
            HvRegisterName(u.arbitrary()?)
        };
        let value = HvRegisterValue::from(u.arbitrary::<u128>()?);
        b = b.register(
            *u.choose(&ids)?,
            u.int_in_range(0..=3)?,
            u.int_in_range(0..=2)?,
            name,
            value,
        );
    }
    let caller = if u.ratio(1, 16)? {
        u.arbitrary()?
    } else {
        *u.choose(&ids[..2])?
    };
    Ok(b.caller(caller, u.int_in_range(0..=2)?).build())
}

fn build_ram(u: &mut Unstructured) -> Result<GuestRam> {
    let mut ram = GuestRam::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let base = if u.ratio(1, 16)? {
            u.arbitrary::<u64>()? & !0xFFF
        } else {
            PAGE * u.int_in_range(0..=32u64)?
        };
        let _ = ram.add_region(base, PAGE * u.int_in_range(1..=4u64)?);
    }
    for _ in 0..u.int_in_range(0..=2)? {
        ram.add_overlay(PAGE * u.int_in_range(0..=32u64)?);
    }
    Ok(ram)
}

/// A GPA that is often near or inside RAM.
fn gpa(u: &mut Unstructured) -> Result<u64> {
    Ok(match u.int_in_range(0..=3)? {
        0 => u.arbitrary()?,
        1 => PAGE * u.int_in_range(0..=36u64)? + 8 * u.int_in_range(0..=511u64)?,
        _ => PAGE * u.int_in_range(0..=36u64)? + u.int_in_range(0..=4095u64)?,
    })
}

/// Registers for one call: arbitrary, often shaped like a real call, with
/// its input bytes written to RAM.
fn build_call(u: &mut Unstructured, c: Convention, ram: &mut GuestRam) -> Result<RegisterFile> {
    let mut r = RegisterFile {
        gprs: u.arbitrary()?,
        vectors: u.arbitrary()?,
    };
    if u.ratio(1, 8)? {
        return Ok(r);
    }
    let fast = u.ratio(1, 3)?;
    let n: u64 = if u.ratio(1, 8)? {
        u.int_in_range(0..=4095)?
    } else {
        u.int_in_range(0..=8)?
    };
    let s: u64 = if u.ratio(1, 8)? {
        u.int_in_range(0..=4095)?
    } else {
        u.int_in_range(0..=n)?
    };
    // HvCallGetVpRegisters, or one time in four HvCallSetVpRegisters.
    let set = u.ratio(1, 4)?;
    let code = if set { 0x51 } else { 0x50 };
    let mut control = code | (u64::from(fast) << 16) | (n << 32) | (s << 48);
    if u.ratio(1, 8)? {
        control ^= u.arbitrary::<u64>()? & u.arbitrary::<u64>()?;
    }
    let (input, output) = (
        gpa(u)?,
        if u.ratio(1, 4)? {
            gpa(u)?
        } else {
            PAGE * u.int_in_range(0..=36u64)?
        },
    );
    let lo = |v: u64| v & 0xFFFF_FFFF;
    match c {
        Convention::X64 => {
            r.gprs[1] = control;
            if !fast {
                r.gprs[2] = input;
                r.gprs[8] = output;
            }
        }
        Convention::X86 => {
            (r.gprs[2], r.gprs[0]) = (control >> 32, lo(control));
            if !fast {
                (r.gprs[3], r.gprs[1]) = (input >> 32, lo(input));
                (r.gprs[7], r.gprs[6]) = (output >> 32, lo(output));
            }
        }
        Convention::Arm64Hvc1 => {
            r.gprs[0] = control;
            if !fast {
                r.gprs[1] = input;
                r.gprs[2] = output;
            }
        }
        Convention::Arm64Smccc => {
            r.gprs[0] = if u.ratio(15, 16)? {
                0x4600_0001
            } else {
                u.arbitrary()?
            };
            r.gprs[1] = control;
            if !fast {
                r.gprs[2] = input;
                r.gprs[3] = output;
            }
        }
    }
    // A header that often names something that exists, then names.
    let pid: u64 = *u.choose(&[u64::MAX, u64::MAX, 1, 2, 3, 0])?;
    let vp: u32 = *u.choose(&[0xFFFF_FFFE, 0, 1, 2, u32::MAX])?;
    let vtl: u8 = if u.ratio(1, 2)? { 0 } else { u.arbitrary()? };
    let mut bytes = pid.to_le_bytes().to_vec();
    bytes.extend_from_slice(&vp.to_le_bytes());
    bytes.extend_from_slice(&[vtl, 0, 0, 0]);
    if u.ratio(1, 16)? {
        bytes[13] = u.arbitrary()?;
    }
    let names = standard_names(if matches!(c, Convention::X64 | Convention::X86) {
        Arch::X64
    } else {
        Arch::Arm64
    });
    for _ in 0..n.min(16) {
        let name = if u.ratio(7, 8)? {
            u.choose(names)?.0
        } else {
            u.arbitrary()?
        };
        bytes.extend_from_slice(&name.to_le_bytes());
        if set {
            // A 0x0051 element: reserved bytes (rarely not zero), a value.
            let reserved: [u8; 12] = if u.ratio(1, 16)? { u.arbitrary()? } else { [0; 12] };
            bytes.extend_from_slice(&reserved);
            bytes.extend_from_slice(&u.arbitrary::<[u8; 16]>()?);
        }
    }
    if fast {
        // Spread the input over the fast register file.
        for (k, w) in bytes.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..w.len()].copy_from_slice(w);
            let word = u64::from_le_bytes(word);
            match c {
                Convention::X64 if k < 2 => r.gprs[[2, 8][k]] = word,
                Convention::X64 if k < 14 => {
                    let v = &mut r.vectors[k / 2 - 1];
                    let shift = 64 * (k % 2);
                    *v = (*v & !(u128::from(u64::MAX) << shift)) | (u128::from(word) << shift);
                }
                Convention::Arm64Hvc1 if k < 17 => r.gprs[1 + k] = word,
                Convention::Arm64Smccc if k < 16 => r.gprs[2 + k] = word,
                _ => {}
            }
        }
    } else {
        let _ = ram.poke(input, &bytes);
    }
    Ok(r)
}

/// One dispatch with the memory checked against the declared lists and
/// the registers against what the call may change.
fn enter(
    ctx: &CallContext,
    regs: &mut RegisterFile,
    mem: &mut Checked,
    model: &mut Model,
    state: &mut VpState<hvcall_model::ModelSnapshot>,
    config: &DispatchConfig,
) -> Outcome {
    let c = ctx.convention;
    let (control, input, output) = decode(c, regs);
    let fast = control & (1 << 16) != 0;
    let n = u128::from((control >> 32) & 0xFFF);
    let s = u128::from((control >> 48) & 0xFFF);
    let set = control & 0xFFFF == 0x51;
    if fast {
        mem.read = (0, 0);
        mem.write = (0, 0);
    } else if set {
        // HvCallSetVpRegisters: 32-byte elements, no output list.
        mem.read = (u128::from(input), u128::from(input) + 16 + 32 * n);
        mem.write = (0, 0);
    } else {
        mem.read = (u128::from(input), u128::from(input) + 16 + 4 * n);
        mem.write = (u128::from(output) + 16 * s, u128::from(output) + 16 * n);
    }
    let before = regs.clone();
    let ram_before = (!ctx.privileged).then(|| mem.ram.clone());
    // The model never fails on the host side.
    let outcome = dispatch(ctx, regs, mem, model, state, config).unwrap_or_else(|never| match never {});
    if outcome == Outcome::InjectUndefined {
        assert_eq!(*regs, before, "#UD changed registers");
        if let Some(ram) = ram_before {
            assert!(ram == mem.ram, "#UD changed memory");
        }
    }
    for g in 0..regs.gprs.len() {
        if !may_change(c, fast && !set, Some(g), None) {
            assert_eq!(regs.gprs[g], before.gprs[g], "X/GPR {g} changed ({c:?})");
        }
    }
    for v in 0..regs.vectors.len() {
        if !may_change(c, fast && !set, None, Some(v)) {
            assert_eq!(
                regs.vectors[v], before.vectors[v],
                "vector {v} changed ({c:?})"
            );
        }
    }
    outcome
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let c = *u.choose(&CONVENTIONS)?;
    let arch = if matches!(c, Convention::X64 | Convention::X86) {
        Arch::X64
    } else {
        Arch::Arm64
    };
    let mut model = build_model(&mut u, arch)?;
    let mut mem = Checked {
        ram: build_ram(&mut u)?,
        read: (0, 0),
        write: (0, 0),
        lend: u.arbitrary()?,
    };
    let mut regs = build_call(&mut u, c, &mut mem.ram)?;
    let ctx = CallContext::new(c, u.ratio(15, 16)?, u.arbitrary()?);
    let config = DispatchConfig::default().with_max_reps_per_entry(if u.ratio(1, 2)? {
        u.int_in_range(0..=4)?
    } else {
        u.arbitrary()?
    });
    let mut state = VpState::new();
    for _ in 0..5000 {
        if enter(&ctx, &mut regs, &mut mem, &mut model, &mut state, &config) != Outcome::Continue {
            return Ok(());
        }
        assert!(state.is_pending(), "Continue without a pending call");
        // Sometimes another call comes in between (an interrupt handler).
        if u.ratio(1, 4).unwrap_or(false) {
            let mut other = build_call(&mut u, c, &mut mem.ram).unwrap_or_default();
            let other_ctx = CallContext::new(c, ctx.privileged, u.arbitrary().unwrap_or(0));
            let other_before = other.clone();
            let out = enter(
                &other_ctx, &mut other, &mut mem, &mut model, &mut state, &config,
            );
            // Unless it happens to be the parked call's own re-entry (same
            // instruction, control and GPA / first input registers).
            let reentry = other_ctx.instruction_pointer == ctx.instruction_pointer
                && decode(c, &other_before) == decode(c, &regs);
            assert!(
                reentry || state.is_pending(),
                "a call in between dropped the pending call ({out:?}): \
                 {other_ctx:?} {other_before:?}; parked: {ctx:?} {regs:?}"
            );
        }
    }
    panic!("a continued call never completed");
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
