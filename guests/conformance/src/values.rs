//! docs/contract.md §4 (x64 calling convention: what a memory-form call may
//! change) and §5 (register values: the caller's RAX/RCX/RDX/R8 and RIP,
//! segment and table layouts, zero extension, another VP's registers).

use core::arch::asm;

use hvcall_abi::name::x64 as n;
use hvcall_abi::{partition_id, vp_index, HvStatus as S};

use crate::env::{
    control, fill, input, output, pattern_name, result, self_input, slot, write_input, Env,
    PATTERN_GPRS,
};
use crate::probe::{self, reg, CpuState};
use crate::report::{check, eq, Outcome, Report};

/// A memory-form call through the probe: RCX = `control`, RDX = input,
/// R8 = output, every other register a pattern.
fn probe_memory(env: &Env, control: u64) -> Result<(CpuState, CpuState), crate::report::Mismatch> {
    let mut before = CpuState::pattern();
    before.gpr[reg::RCX] = control;
    before.gpr[reg::RDX] = input();
    before.gpr[reg::R8] = output();
    let mut after = before;
    check(
        "no exception",
        probe::call(env.page_va(), &mut after).is_none(),
    )?;
    Ok((before, after))
}

fn rax(st: &CpuState) -> (u16, u16) {
    let v = st.gpr[reg::RAX];
    (v as u16, ((v >> 32) & 0xFFF) as u16)
}

/// Runs the §4 and §5 cases.
pub fn run(r: &mut Report, env: &Env) {
    let vp = if env.vps > 1 { 1 } else { 0 };
    r.case(
        "§4 x64",
        "memory-form call changes only RAX (and RCX's rep start): GPRs, XMM0-15 kept",
        || {
            let names: [u32; 4] = core::array::from_fn(|k| pattern_name(k, vp).0);
            write_input(input(), partition_id::SELF, vp, 0, [0; 3], &names);
            let (before, after) = probe_memory(env, control(4, 0))?;
            result(
                rax(&after),
                env.self_status(S::SUCCESS),
                env.self_reps(4, 0),
            )?;
            probe::only_changed(&before, &after, 0..0)
        },
    );
    r.case(
        "§4 x64",
        "a failing call (step 7) also changes only RAX and RCX's rep start",
        || {
            self_input(&[n::VP_INDEX.0, 0x0002_0012]);
            let (before, after) = probe_memory(env, control(2, 0))?;
            result(
                rax(&after),
                env.self_status(S::INVALID_PARAMETER),
                env.self_reps(1, 0),
            )?;
            probe::only_changed(&before, &after, 0..0)
        },
    );
    r.case(
        "§4 x64",
        "a call rejected at step 2 changes only RAX",
        || {
            self_input(&[n::VP_INDEX.0]);
            let (before, after) = probe_memory(env, control(1, 0) | (1 << 27))?;
            result(rax(&after), S::INVALID_HYPERCALL_INPUT.0, 0)?;
            probe::only_changed(&before, &after, 0..0)?;
            eq("RCX", after.gpr[reg::RCX], before.gpr[reg::RCX])
        },
    );
    if !env.privileged() {
        r.skip(
            "§5 values",
            "all value cases",
            "AccessVpRegisters withheld: self reads are denied",
        );
        return;
    }
    caller_values(r, env);
    system_values(r, env);
    other_vp_values(r, env);
}

/// The caller's own registers as at the call.
fn caller_values(r: &mut Report, env: &Env) {
    r.case(
        "§5 values",
        "own RAX, RCX, RDX, R8 read as at the call (RAX before the result)",
        || {
            self_input(&[n::RAX.0, n::RCX.0, n::RDX.0, n::R8.0]);
            fill(output(), 4);
            let (before, after) = probe_memory(env, control(4, 0))?;
            result(rax(&after), S::SUCCESS.0, 4)?;
            eq("RAX", slot(output(), 0).0, before.gpr[reg::RAX])?;
            eq("RCX (control)", slot(output(), 1).0, before.gpr[reg::RCX])?;
            eq("RDX (input GPA)", slot(output(), 2).0, input())?;
            eq("R8 (output GPA)", slot(output(), 3).0, output())
        },
    );
    r.case(
        "§5 values",
        "own RIP reads the hypercall instruction (inside the hypercall page)",
        || {
            self_input(&[n::RIP.0]);
            fill(output(), 1);
            result(env.call(control(1, 0), input(), output()), S::SUCCESS.0, 1)?;
            let rip = slot(output(), 0).0;
            check(
                "RIP inside the hypercall page",
                (env.page_va()..env.page_va() + 4096).contains(&rip),
            )
        },
    );
    r.case(
        "§5 values",
        "own RBX, RBP, RSI, RDI, R9-R15 and XMM1-15 read as loaded before the call",
        || {
            let mut names = [0u32; 27];
            for (k, (name, _)) in PATTERN_GPRS.iter().enumerate().skip(2) {
                names[k - 2] = *name;
            }
            for x in 0..15 {
                names[12 + x] = n::XMM0.0 + x as u32 + 1;
            }
            self_input(&names);
            let (before, _) = probe_memory(env, control(27, 0))?;
            for (k, (_, index)) in PATTERN_GPRS.iter().enumerate().skip(2) {
                eq(
                    "GPR value",
                    slot(output(), k as u64 - 2).0,
                    before.gpr[*index],
                )?;
            }
            for x in 0..15 {
                let v = slot(output(), 12 + x as u64);
                eq("XMM low", v.0, before.xmm[x + 1][0])?;
                eq("XMM high", v.1, before.xmm[x + 1][1])?;
            }
            Ok(())
        },
    );
}

fn read_self(names: &[u32], env: &Env, vtl: u8) -> Outcome {
    write_input(
        input(),
        partition_id::SELF,
        vp_index::SELF,
        vtl,
        [0; 3],
        names,
    );
    fill(output(), names.len() as u64);
    result(
        env.call(control(names.len() as u64, 0), input(), output()),
        S::SUCCESS.0,
        names.len() as u16,
    )
}

/// Segment, table and control registers of the caller.
fn system_values(r: &mut Report, env: &Env) {
    r.case("§5 values", "CS/SS/DS: base @0, limit @8, selector @12, attributes @14 (code: type 0xB, S, P, L)", || {
        read_self(&[n::CS.0, n::SS.0, n::DS.0], env, 0)?;
        let (cs, ss, ds): (u16, u16, u16);
        // SAFETY: reads segment selectors.
        unsafe { asm!("mov {0:x}, cs", "mov {1:x}, ss", "mov {2:x}, ds", out(reg) cs, out(reg) ss, out(reg) ds) };
        let c = slot(output(), 0);
        eq("CS base", c.0, 0)?;
        eq("CS selector", (c.1 >> 32) & 0xFFFF, u64::from(cs))?;
        let attr = c.1 >> 48;
        eq("CS type (execute/read, accessed)", attr & 0xB, 0xB)?;
        eq("CS S, P bits", attr & 0x90, 0x90)?;
        eq("CS DPL", (attr >> 5) & 3, 0)?;
        eq("CS L", (attr >> 13) & 1, 1)?;
        eq("CS D/B", (attr >> 14) & 1, 0)?;
        eq("SS selector", (slot(output(), 1).1 >> 32) & 0xFFFF, u64::from(ss))?;
        eq("DS selector", (slot(output(), 2).1 >> 32) & 0xFFFF, u64::from(ds))
    });
    r.case(
        "§5 values",
        "GDTR/IDTR: pad @0, limit @6, base @8, equal to SGDT/SIDT",
        || {
            read_self(&[n::GDTR.0, n::IDTR.0], env, 0)?;
            for (i, which) in [(0, "GDTR"), (1, "IDTR")] {
                let mut table = [0u8; 10];
                // SAFETY: SGDT/SIDT store 10 bytes into `table`.
                unsafe {
                    if i == 0 {
                        asm!("sgdt [{0}]", in(reg) table.as_mut_ptr());
                    } else {
                        asm!("sidt [{0}]", in(reg) table.as_mut_ptr());
                    }
                }
                let limit = u64::from(u16::from_le_bytes([table[0], table[1]]));
                let base = u64::from_le_bytes(table[2..10].try_into().unwrap_or([0; 8]));
                let v = slot(output(), i);
                eq(which, v.0, limit << 48)?;
                eq(which, v.1, base)?;
            }
            Ok(())
        },
    );
    r.case("§5 values", "CR0, CR3, CR4 and EFER equal what the CPU reports", || {
        read_self(&[n::CR0.0, n::CR3.0, n::CR4.0, n::EFER.0], env, 0)?;
        let (cr0, cr3, cr4): (u64, u64, u64);
        // SAFETY: reads control registers at CPL 0.
        unsafe { asm!("mov {0}, cr0", "mov {1}, cr3", "mov {2}, cr4", out(reg) cr0, out(reg) cr3, out(reg) cr4) };
        let efer = rt::fault::rdmsr(0xC000_0080).unwrap_or(u64::MAX);
        eq("CR0", slot(output(), 0).0, cr0)?;
        eq("CR3", slot(output(), 1).0, cr3)?;
        eq("CR4", slot(output(), 2).0, cr4)?;
        eq("EFER", slot(output(), 3).0, efer)
    });
    r.case(
        "§5 values",
        "narrow values are zero-extended (VP index, CS selector word)",
        || {
            read_self(&[n::VP_INDEX.0], env, 0)?;
            eq("VP index", slot(output(), 0).0, 0)?;
            eq("VP index high qword", slot(output(), 0).1, 0)
        },
    );
    r.case(
        "§5 values",
        "UseTargetVtl=1/TargetVtl=0 reads the same as the current VTL",
        || {
            let names = [n::GDTR.0, n::CR3.0, n::GUEST_OS_ID.0];
            read_self(&names, env, 0)?;
            let first = [slot(output(), 0), slot(output(), 1), slot(output(), 2)];
            read_self(&names, env, 0x10)?;
            for (i, v) in first.iter().enumerate() {
                eq("value", slot(output(), i as u64).0, v.0)?;
                eq("value", slot(output(), i as u64).1, v.1)?;
            }
            Ok(())
        },
    );
}

/// Registers of other VPs.
fn other_vp_values(r: &mut Report, env: &Env) {
    if env.vps < 2 {
        r.skip("§5 values", "another VP's registers", "one VP only");
        return;
    }
    r.case(
        "§5 values",
        "VP index register of every VP reads its index",
        || {
            for vp in 0..env.vps {
                write_input(input(), 2, vp, 0, [0; 3], &[n::VP_INDEX.0]);
                fill(output(), 1);
                result(env.call(control(1, 0), input(), output()), S::SUCCESS.0, 1)?;
                eq("VP index", slot(output(), 0).0, u64::from(vp))?;
            }
            Ok(())
        },
    );
    r.case(
        "§5 values",
        "running VP: all 14 pattern GPRs and XMM0/XMM15 in one call",
        || {
            for vp in 1..env.vps {
                let mut names = [0u32; 16];
                for (k, slot) in names.iter_mut().take(14).enumerate() {
                    *slot = pattern_name(k, vp).0;
                }
                names[14] = n::XMM0.0;
                names[15] = n::XMM15.0;
                write_input(input(), partition_id::SELF, vp, 0, [0; 3], &names);
                fill(output(), 16);
                result(
                    env.call(control(16, 0), input(), output()),
                    S::SUCCESS.0,
                    16,
                )?;
                for k in 0..14 {
                    eq("GPR", slot(output(), k as u64).0, pattern_name(k, vp).1)?;
                }
                eq("XMM0 low", slot(output(), 14).0, rt::pattern::XMM[0][0])?;
                eq("XMM0 high", slot(output(), 14).1, rt::pattern::XMM[0][1])?;
                eq("XMM15 low", slot(output(), 15).0, rt::pattern::XMM[1][0])?;
                eq("XMM15 high", slot(output(), 15).1, rt::pattern::XMM[1][1])?;
            }
            Ok(())
        },
    );
}
