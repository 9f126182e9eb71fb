//! docs/contract.md §8: HvCallSetVpRegisters (0x0051) as a guest reaches
//! it: writes to itself (registers of every KVM group, and a general
//! register the call does not use), steps 5c–5f, 6, 8a–8d, rep start and
//! continuation, the fast form, and writes to running VP1, each checked
//! by reading the registers back (with GetVpRegisters, and for the caller
//! itself also with its own instructions).
//!
//! The registers written are ones the guest's compiled code never relies
//! on: DR0–DR3 (no breakpoint is enabled in DR7), CR2, KernelGsBase,
//! XMM15 (the guest is built without SSE), R12/R13 around an asm call;
//! and for step 8c's value checks the SYSENTER MSRs, TscAux, Pat and FS
//! (unused by the guest's code; the last two are put back), with refused
//! values for EFER and GDTR too (put back should a refusal fail).

use core::arch::asm;

use hvcall_abi::name::x64 as n;
use hvcall_abi::{partition_id, vp_index, HvInputVtl, HvRegisterName, HvRegisterValue};
use hvcall_abi::{HvStatus as S, SetVpRegistersElement};
use hvcall_guest::set_registers::fast_input;

use rt::fault::UD;

use crate::env::{input, output, page, put64, result, slot, write_input, Env, FAST};
use crate::probe::{self, reg, CpuState};
use crate::report::{check, eq, Outcome, Report};

/// HvCallSetVpRegisters.
const SET: u64 = 0x0051;

/// A name no x64 hypervisor serves.
const UNKNOWN: u32 = 0x0002_0012;

/// The control word of SetVpRegisters with `n` reps from `s`.
const fn control(n: u64, s: u64) -> u64 {
    SET | (n << 32) | (s << 48)
}

/// One element: name, 128-bit value as (low, high), and a reserved byte
/// (index 4..16 of the element) set non-zero if `reserved` is given.
#[derive(Copy, Clone)]
struct El {
    name: u32,
    value: (u64, u64),
    reserved: Option<usize>,
}

const fn el(name: HvRegisterName, value: u64) -> El {
    El {
        name: name.0,
        value: (value, 0),
        reserved: None,
    }
}

/// Writes a SetVpRegisters input list at `at`: the header of §1 and the
/// 32-byte elements.
fn put_input(at: u64, partition: u64, vp: u32, elements: &[El]) {
    write_input(at, partition, vp, 0, [0; 3], &[]);
    for (i, e) in elements.iter().enumerate() {
        let base = at + 16 + 32 * i as u64;
        put64(base, u64::from(e.name));
        put64(base + 8, 0);
        if let Some(byte) = e.reserved {
            let qword = base + (byte as u64 & !7);
            put64(qword, crate::env::get64(qword) | 1 << (8 * (byte % 8)));
        }
        put64(base + 16, e.value.0);
        put64(base + 24, e.value.1);
    }
}

/// Writes `elements` to (`partition`, `vp`) with the memory form.
fn set(env: &Env, partition: u64, vp: u32, elements: &[El], s: u64) -> (u16, u16) {
    put_input(input(), partition, vp, elements);
    env.call(control(elements.len() as u64, s), input(), 0)
}

/// Reads `names` of VP `vp` (SELF for the caller) into the output buffer
/// and returns slot `i`'s low qword for each, through GetVpRegisters.
fn get(env: &Env, vp: u32, names: &[HvRegisterName], values: &mut [(u64, u64)]) -> Outcome {
    let mut raw = [0u32; 8];
    for (r, name) in raw.iter_mut().zip(names) {
        *r = name.0;
    }
    let names = &raw[..names.len()];
    write_input(page(1), partition_id::SELF, vp, 0, [0; 3], names);
    let got = env.call(
        crate::env::control(names.len() as u64, 0),
        page(1),
        output(),
    );
    result(got, S::SUCCESS.0, names.len() as u16)?;
    for (i, v) in values.iter_mut().enumerate() {
        *v = slot(output(), i as u64);
    }
    Ok(())
}

/// Expects register `name` of `vp` to read `want` (low qword, high 0).
fn reads(env: &Env, vp: u32, name: HvRegisterName, want: u64) -> Outcome {
    let mut v = [(0, 0)];
    get(env, vp, &[name], &mut v)?;
    eq("value read back", v[0].0, want)?;
    eq("value read back, high qword", v[0].1, 0)
}

fn dr(i: u32) -> u64 {
    let v: u64;
    // SAFETY: reading a debug register at CPL 0 has no side effect.
    unsafe {
        match i {
            0 => asm!("mov {}, dr0", out(reg) v),
            1 => asm!("mov {}, dr1", out(reg) v),
            2 => asm!("mov {}, dr2", out(reg) v),
            _ => asm!("mov {}, dr3", out(reg) v),
        }
    }
    v
}

fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 at CPL 0 has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) v) };
    v
}

fn xmm15() -> (u64, u64) {
    let mut v = [0u64; 2];
    // SAFETY: stores XMM15 (a plain move) into `v`; CR4.OSFXSR is set by
    // the boot code.
    unsafe { asm!("movdqu [{}], xmm15", in(reg) v.as_mut_ptr()) };
    (v[0], v[1])
}

fn kernel_gs_base() -> u64 {
    // SAFETY: a architectural MSR, readable at CPL 0.
    unsafe { hvcall_guest::hypercall_page::rdmsr(0xC000_0102) }
}

/// A memory-form SetVpRegisters of SELF writing R12 := `value`, made with
/// R12 = 0 and R13 = 0x13 before the call: returns (result, R12, R13)
/// after it.
fn set_r12(env: &Env, value: u64) -> (u64, u64, u64) {
    put_input(
        input(),
        partition_id::SELF,
        vp_index::SELF,
        &[el(n::R12, value)],
    );
    let (result, r12, r13);
    // SAFETY: CPL 0 and an enabled page; the call changes RAX, RCX and
    // (by the write asked) R12, all declared; RDX, R8 are clobbered.
    unsafe {
        asm!(
            "call {page}",
            page = in(reg) env.page_va(),
            inout("rcx") control(1, 0) => _,
            inout("rdx") input() => _,
            inout("r8") 0u64 => _,
            inout("r12") 0u64 => r12,
            inout("r13") 0x13u64 => r13,
            out("rax") result,
        );
    }
    (result, r12, r13)
}

/// Runs the §8 cases.
pub fn run(r: &mut Report, env: &Env) {
    let me = vp_index::SELF;
    if !env.privileged() {
        r.case(
            "step 6e (0x0051)",
            "self write without AccessVpRegisters -> ACCESS_DENIED, nothing written",
            || {
                let before = dr(1);
                let got = set(env, partition_id::SELF, me, &[el(n::DR1, !before)], 0);
                result(got, S::ACCESS_DENIED.0, 0)?;
                eq("DR1 unchanged", dr(1), before)
            },
        );
        r.skip("§8", "every other case", "AccessVpRegisters withheld");
        return;
    }
    r.case(
        "§8 self",
        "DR1, CR2, KernelGsBase, XMM15 in one call: all written, read back and seen by the VP",
        || {
            let mut x15 = El {
                name: n::XMM15.0,
                value: (0x1515_0000_AAAA_5555, 0x5151_FFFF_0000_1111),
                reserved: None,
            };
            let els = [
                el(n::DR1, 0x1000),
                el(n::CR2, 0xDEAD_B000),
                el(n::KERNEL_GS_BASE, 0xFFFF_8000_1234_5000),
                x15,
            ];
            result(set(env, partition_id::SELF, me, &els, 0), S::SUCCESS.0, 4)?;
            eq("DR1", dr(1), 0x1000)?;
            eq("CR2", cr2(), 0xDEAD_B000)?;
            eq("KernelGsBase", kernel_gs_base(), 0xFFFF_8000_1234_5000)?;
            eq("XMM15 low", xmm15().0, x15.value.0)?;
            eq("XMM15 high", xmm15().1, x15.value.1)?;
            reads(env, me, n::CR2, 0xDEAD_B000)?;
            x15.value = (7, 0);
            result(set(env, partition_id::SELF, me, &[x15], 0), S::SUCCESS.0, 1)?;
            reads(env, me, n::XMM15, 7)
        },
    );
    r.case(
        "§8 self",
        "R12 (not a register of the call): the VP resumes with the written value",
        || {
            let (raw, r12, r13) = set_r12(env, 0x1212_3434);
            eq("result", raw, 1 << 32)?;
            eq("R12", r12, 0x1212_3434)?;
            eq("R13 untouched", r13, 0x13)
        },
    );
    r.case(
        "§8",
        "the same register twice: the later element wins",
        || {
            let els = [el(n::DR2, 1), el(n::DR2, 2), el(n::DR3, 3)];
            result(set(env, partition_id::SELF, me, &els, 0), S::SUCCESS.0, 3)?;
            eq("DR2", dr(2), 2)?;
            eq("DR3", dr(3), 3)
        },
    );
    r.case(
        "§8 rep start",
        "rep start 2 of 3: elements 0 and 1 (RIP, an unknown name) not looked at",
        || {
            let els = [
                el(n::RIP, 0),
                el(HvRegisterName(UNKNOWN), 0),
                el(n::DR2, 0x22),
            ];
            result(set(env, partition_id::SELF, me, &els, 2), S::SUCCESS.0, 3)?;
            eq("DR2", dr(2), 0x22)
        },
    );
    r.case(
        "§2 continuation (0x0051)",
        "40 elements in one call: reps completed 40, the last writes win",
        || {
            let mut els = [el(n::DR0, 0); 40];
            for (i, e) in els.iter_mut().enumerate() {
                let name = [n::DR0, n::DR1, n::DR2, n::DR3][i % 4];
                *e = el(name, 0x100 * i as u64);
            }
            result(set(env, partition_id::SELF, me, &els, 0), S::SUCCESS.0, 40)?;
            for i in 0..4 {
                eq("DRi", dr(i), 0x100 * (36 + u64::from(i)))?;
            }
            Ok(())
        },
    );
    for (byte, what) in [
        (
            4,
            "8a: reserved byte 4 of element 1 -> INVALID_PARAMETER, element 0 written",
        ),
        (
            15,
            "8a: reserved byte 15 of element 1 -> INVALID_PARAMETER, element 0 written",
        ),
    ] {
        r.case("step 8a", what, || {
            let mut bad = el(n::DR3, 0x3333);
            bad.reserved = Some(byte);
            let els = [el(n::DR2, 0x2000 + byte as u64), bad, el(n::DR3, 0x4444)];
            let before = dr(3);
            result(
                set(env, partition_id::SELF, me, &els, 0),
                S::INVALID_PARAMETER.0,
                1,
            )?;
            eq("DR2 written", dr(2), 0x2000 + byte as u64)?;
            eq("DR3 not written", dr(3), before)
        });
    }
    for (name, what) in [
        (
            n::VP_INDEX,
            "8b: read-only VpIndex -> INVALID_PARAMETER, element 0 written",
        ),
        (
            n::TIME_REF_COUNT,
            "8b: read-only TimeRefCount -> INVALID_PARAMETER",
        ),
        (
            HvRegisterName(UNKNOWN),
            "8b: unknown name -> INVALID_PARAMETER",
        ),
    ] {
        r.case("step 8b", what, || {
            let els = [el(n::DR2, 0xB0), el(name, 5)];
            result(
                set(env, partition_id::SELF, me, &els, 0),
                S::INVALID_PARAMETER.0,
                1,
            )?;
            eq("DR2 written", dr(2), 0xB0)
        });
    }
    r.case(
        "step 8c",
        "CR8 = 16 (above 4 bits) -> INVALID_REGISTER_VALUE, nothing of it written",
        || {
            let got = set(env, partition_id::SELF, me, &[el(n::CR8, 16)], 0);
            result(got, S::INVALID_REGISTER_VALUE.0, 0)?;
            reads(env, me, n::CR8, 0)
        },
    );
    r.case(
        "step 8c",
        "a 64-bit register with value bits above 63 -> INVALID_REGISTER_VALUE",
        || {
            let before = dr(1);
            let wide = El {
                name: n::DR1.0,
                value: (1, 1),
                reserved: None,
            };
            let els = [el(n::DR2, 0xC0), wide];
            let got = set(env, partition_id::SELF, me, &els, 0);
            result(got, S::INVALID_REGISTER_VALUE.0, 1)?;
            eq("DR2 written", dr(2), 0xC0)?;
            eq("DR1 unchanged", dr(1), before)
        },
    );
    validation_cases(r, env);
    for (name, what) in [
        (n::RCX, "8d: own RCX (control) -> INVALID_PARAMETER"),
        (n::RDX, "8d: own RDX (input GPA) -> INVALID_PARAMETER"),
        (n::R8, "8d: own R8 (output GPA) -> INVALID_PARAMETER"),
        (n::RAX, "8d: own RAX (result) -> INVALID_PARAMETER"),
        (n::RIP, "8d: own RIP -> INVALID_PARAMETER"),
    ] {
        r.case("step 8d", what, || {
            let els = [el(n::DR2, 0xD0), el(name, 0)];
            result(
                set(env, partition_id::SELF, me, &els, 0),
                S::INVALID_PARAMETER.0,
                1,
            )?;
            eq("DR2 written", dr(2), 0xD0)
        });
    }
    r.case(
        "step 5d (0x0051)",
        "input list GPA not 8-byte aligned -> INVALID_ALIGNMENT",
        || {
            put_input(input() + 4, partition_id::SELF, me, &[el(n::DR2, 1)]);
            let got = env.call(control(1, 0), input() + 4, 0);
            result(got, S::INVALID_ALIGNMENT.0, 0)
        },
    );
    r.case(
        "step 5e (0x0051)",
        "input list crossing a page -> INVALID_ALIGNMENT",
        || {
            let at = page(1) - 24;
            put_input(at, partition_id::SELF, me, &[el(n::DR2, 1)]);
            result(env.call(control(1, 0), at, 0), S::INVALID_ALIGNMENT.0, 0)
        },
    );
    r.case(
        "step 5f (0x0051)",
        "input list beyond RAM -> INVALID_ALIGNMENT",
        || {
            result(
                env.call(control(1, 0), 1 << 40, 0),
                S::INVALID_ALIGNMENT.0,
                0,
            )
        },
    );
    r.case(
        "§8 (0x0051)",
        "the output GPA register is ignored (misaligned, beyond RAM): success",
        || {
            put_input(input(), partition_id::SELF, me, &[el(n::DR2, 0x0A)]);
            result(
                env.call(control(1, 0), input(), (1 << 40) + 3),
                S::SUCCESS.0,
                1,
            )?;
            eq("DR2", dr(2), 0x0A)
        },
    );
    r.case(
        "step 6b (0x0051)",
        "partition id 5 -> INVALID_PARTITION_ID",
        || {
            result(
                set(env, 5, 0, &[el(n::DR2, 1)], 0),
                S::INVALID_PARTITION_ID.0,
                0,
            )
        },
    );
    r.case(
        "step 6g (0x0051)",
        "VP index = VP count -> INVALID_VP_INDEX",
        || {
            let got = set(env, partition_id::SELF, env.vps, &[el(n::DR2, 1)], 0);
            result(got, S::INVALID_VP_INDEX.0, 0)
        },
    );
    fast_cases(r, env);
    other_vp_cases(r, env);
}

/// Makes a refused value of a register's current (low, high) value.
type Spoil = fn((u64, u64)) -> (u64, u64);

/// Step 8c on the caller itself: element 1 writes `name` with the value
/// `bad` makes of its current one and is refused
/// (INVALID_REGISTER_VALUE, reps completed 1); element 0 (DR2) is
/// written and `name` reads as before. A wrong success is undone before
/// the row fails, so the guest keeps running.
fn refused(env: &Env, name: HvRegisterName, bad: Spoil) -> Outcome {
    let me = vp_index::SELF;
    let mut before = [(0, 0)];
    get(env, me, &[name], &mut before)?;
    let wrong = El {
        name: name.0,
        value: bad(before[0]),
        reserved: None,
    };
    let got = set(env, partition_id::SELF, me, &[el(n::DR2, 0x8C8C), wrong], 0);
    if got.0 == S::SUCCESS.0 {
        let undo = El {
            value: before[0],
            ..wrong
        };
        set(env, partition_id::SELF, me, &[undo], 0);
    }
    result(got, S::INVALID_REGISTER_VALUE.0, 1)?;
    eq("DR2 written", dr(2), 0x8C8C)?;
    let mut after = [(0, 0)];
    get(env, me, &[name], &mut after)?;
    eq("unchanged, low qword", after[0].0, before[0].0)?;
    eq("unchanged, high qword", after[0].1, before[0].1)
}

/// Step 8c's value checks (docs/contract.md §8, "What 8c refuses") on the
/// caller itself: values the architecture refuses, and edge values it
/// takes, which read back as written.
fn validation_cases(r: &mut Report, env: &Env) {
    const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;
    let cases: [(&str, HvRegisterName, Spoil); 6] = [
        (
            "EFER = all ones -> INVALID_REGISTER_VALUE, EFER unchanged",
            n::EFER,
            |_| (!0, 0),
        ),
        (
            "Pat = all ones (memory type 0xFF) -> INVALID_REGISTER_VALUE",
            n::PAT,
            |_| (!0, 0),
        ),
        (
            "FS base 0x0000_8000_0000_0000 (not canonical) -> INVALID_REGISTER_VALUE",
            n::FS,
            |(_, high)| (NON_CANONICAL, high),
        ),
        (
            "GDTR base 0xFFFF_7FFF_FFFF_FFFF (not canonical) -> INVALID_REGISTER_VALUE",
            n::GDTR,
            |(low, _)| (low, 0xFFFF_7FFF_FFFF_FFFF),
        ),
        (
            "SysenterEip 0x0000_8000_0000_0000 (not canonical) -> INVALID_REGISTER_VALUE",
            n::SYSENTER_EIP,
            |_| (NON_CANONICAL, 0),
        ),
        (
            "TscAux = all ones (bits 63:32 reserved) -> INVALID_REGISTER_VALUE",
            n::TSC_AUX,
            |_| (!0, 0),
        ),
    ];
    for (what, name, bad) in cases {
        r.case("step 8c", what, || refused(env, name, bad));
    }
    r.case(
        "step 8c",
        "edge values taken: SysenterEip 0x0000_7FFF_FFFF_FFFF, SysenterEsp 0xFFFF_8000_0000_0000, TscAux 0xFFFF_FFFF, Pat of types 0,1,4-7, FS base 0xFFFF_8000_0000_0000: read back as written",
        || {
            let me = vp_index::SELF;
            let names = [n::SYSENTER_EIP, n::SYSENTER_ESP, n::TSC_AUX, n::PAT, n::FS];
            let mut before = [(0, 0); 5];
            get(env, me, &names, &mut before)?;
            let want = [
                (0x0000_7FFF_FFFF_FFFF, 0),
                (0xFFFF_8000_0000_0000, 0),
                (0xFFFF_FFFF, 0),
                (0x0706_0504_0100_0106, 0),
                (0xFFFF_8000_0000_0000, before[4].1),
            ];
            let mut els = [el(n::RBX, 0); 5];
            for ((e, name), value) in els.iter_mut().zip(names).zip(want) {
                *e = El {
                    name: name.0,
                    value,
                    reserved: None,
                };
            }
            let got = set(env, partition_id::SELF, me, &els, 0);
            let mut after = [(0, 0); 5];
            let read = get(env, me, &names, &mut after);
            // Pat and FS go back to what the guest runs with.
            for (e, value) in els.iter_mut().zip(before).skip(3) {
                e.value = value;
            }
            result(set(env, partition_id::SELF, me, &els[3..], 0), S::SUCCESS.0, 2)?;
            result(got, S::SUCCESS.0, 5)?;
            read?;
            for (got, want) in after.iter().zip(want) {
                check("read back as written", *got == want)?;
            }
            Ok(())
        },
    );
}

/// One XMM fast SetVpRegisters of SELF writing `elements` (at most 3).
fn set_fast(env: &Env, count: u64, elements: &[SetVpRegistersElement]) -> (u16, u16) {
    let mut regs = fast_input(
        partition_id::SELF,
        vp_index::SELF,
        HvInputVtl::new(),
        elements,
    );
    // SAFETY: CPL 0, CR4.OSFXSR set by the boot code.
    let raw = unsafe { env.page.hypercall_fast(control(count, 0) | FAST, &mut regs) };
    let r = hvcall_abi::HypercallResult::from_bits(raw);
    (r.status().0, r.reps_completed())
}

fn fast_cases(r: &mut Report, env: &Env) {
    if !env.features.xmm_fast_input() {
        r.case(
            "step 5b (0x0051)",
            "XMM fast write without the input bit raises #UD, nothing changed",
            || {
                let mut before = CpuState::pattern();
                before.gpr[reg::RCX] = control(1, 0) | FAST;
                before.gpr[reg::RDX] = partition_id::SELF;
                before.gpr[reg::R8] = u64::from(vp_index::SELF);
                before.xmm[0] = [u64::from(n::DR1.0), 0];
                before.xmm[1] = [0x5B, 0];
                let mut after = before;
                let fault = probe::call(env.page_va(), &mut after);
                eq("exception vector", fault.map_or(u64::MAX, |f| f.vector), UD)?;
                check("no register changed", after == before)
            },
        );
        r.skip(
            "§8 fast",
            "XMM fast writes",
            "XMM fast input not advertised",
        );
        return;
    }
    let e = |name, v: u64| SetVpRegistersElement::new(name, HvRegisterValue::from(v));
    r.case("§8 fast", "three elements in XMM0-5: all written", || {
        let els = [e(n::DR1, 0xF1), e(n::CR2, 0xF2_0000), e(n::DR3, 0xF3)];
        result(set_fast(env, 3, &els), S::SUCCESS.0, 3)?;
        eq("DR1", dr(1), 0xF1)?;
        eq("CR2", cr2(), 0xF2_0000)?;
        eq("DR3", dr(3), 0xF3)
    });
    r.case(
        "step 5c (0x0051)",
        "fast form with 4 elements (64 + 16 bytes > 112) -> INVALID_HYPERCALL_INPUT",
        || {
            let els = [e(n::DR1, 1), e(n::DR1, 2), e(n::DR1, 3)];
            result(set_fast(env, 4, &els), S::INVALID_HYPERCALL_INPUT.0, 0)
        },
    );
    r.case(
        "step 8d (0x0051)",
        "fast form: own XMM3 (the call's register file) -> INVALID_PARAMETER",
        || {
            let els = [e(n::DR1, 0x8D), e(n::XMM3, 0)];
            result(set_fast(env, 2, &els), S::INVALID_PARAMETER.0, 1)?;
            eq("DR1 written", dr(1), 0x8D)
        },
    );
}

fn other_vp_cases(r: &mut Report, env: &Env) {
    if env.vps < 2 {
        r.skip("§8 other VP", "writes to running VP1", "one VP only");
        return;
    }
    r.case(
        "§8 other VP",
        "R13, XMM15, DR1, KernelGsBase, CR2 of running VP1 in one call: read back, pattern restored",
        || {
            let x15 = El {
                name: n::XMM15.0,
                value: (0xAB, 0xCD),
                reserved: None,
            };
            let els = [
                el(n::R13, 0x1313_1313),
                x15,
                el(n::DR1, 0xD1),
                el(n::KERNEL_GS_BASE, 0x4000),
                el(n::CR2, 0xC2),
            ];
            result(set(env, partition_id::SELF, 1, &els, 0), S::SUCCESS.0, 5)?;
            let names = [n::R13, n::XMM15, n::DR1, n::KERNEL_GS_BASE, n::CR2];
            let mut v = [(0, 0); 5];
            get(env, 1, &names, &mut v)?;
            eq("R13", v[0].0, 0x1313_1313)?;
            check("XMM15", v[1] == (0xAB, 0xCD))?;
            eq("DR1", v[2].0, 0xD1)?;
            eq("KernelGsBase", v[3].0, 0x4000)?;
            eq("CR2", v[4].0, 0xC2)?;
            // VP1 is still running its loop (RIP moves on, RSP kept).
            let restore = [
                el(n::R13, rt::pattern::gpr(13, 1).unwrap_or(0)),
                El {
                    name: n::XMM15.0,
                    value: (rt::pattern::XMM[1][0], rt::pattern::XMM[1][1]),
                    reserved: None,
                },
            ];
            result(set(env, partition_id::SELF, 1, &restore, 0), S::SUCCESS.0, 2)?;
            reads(env, 1, n::R13, rt::pattern::gpr(13, 1).unwrap_or(0))
        },
    );
    r.case(
        "step 8c (0x0051)",
        "VP1: element 1 refused (CR8 = 16): element 0 written, VP1 runs on",
        || {
            let els = [el(n::DR2, 0x8C), el(n::CR8, 16)];
            let got = set(env, partition_id::SELF, 1, &els, 0);
            result(got, S::INVALID_REGISTER_VALUE.0, 1)?;
            reads(env, 1, n::DR2, 0x8C)
        },
    );
    r.case(
        "step 8d (0x0051)",
        "VP1's RCX is not ours: writable (8d is for the caller itself)",
        || {
            let rcx = rt::pattern::gpr(1, 1).unwrap_or(0);
            let els = [el(n::RCX, 0x0C0C), el(n::RCX, rcx)];
            result(set(env, partition_id::SELF, 1, &els, 0), S::SUCCESS.0, 2)?;
            reads(env, 1, n::RCX, rcx)
        },
    );
}
