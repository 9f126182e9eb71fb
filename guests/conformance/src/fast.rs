//! docs/contract.md §3 (XMM fast forms) and steps 5b/5c, through
//! [`crate::probe`] so every register is checked: only the pairs that hold
//! completed output values change (pair 0 = RDX:R8, pair k = XMM(k-1)).
//! Without the XMM CPUID bits (`--no-xmm-fast`) a fast call must raise #UD
//! and change nothing (step 5b).

use hvcall_abi::{partition_id, HvStatus as S};
use rt::fault::UD;

use crate::env::{control, pattern_name, Env, FAST, PATTERN_GPRS};
use crate::probe::{self, reg, CpuState};
use crate::report::{check, eq, Report};

/// A fast call reading `names` of `vp` from rep start `s`: the state it
/// starts with.
fn fast_state(vp: u32, names: &[u32], s: u64) -> CpuState {
    let mut st = CpuState::pattern();
    st.gpr[reg::RCX] = control(names.len() as u64, s) | FAST;
    st.gpr[reg::RDX] = partition_id::SELF;
    st.gpr[reg::R8] = u64::from(vp);
    let mut packed = [0u64; 2];
    for (i, name) in names.iter().enumerate().take(4) {
        packed[i / 2] |= u64::from(*name) << (32 * (i % 2));
    }
    st.xmm[0] = packed;
    st
}

/// The value pattern name `k` must read on `vp`: VP1's pattern, or for
/// VP0 (reading itself when it is alone) what the probe loaded.
fn want(k: usize, vp: u32, before: &CpuState) -> u64 {
    if vp == 0 {
        before.gpr[PATTERN_GPRS[k % PATTERN_GPRS.len()].1]
    } else {
        pattern_name(k, vp).1
    }
}

/// Status and reps completed from RAX.
fn rax_result(st: &CpuState) -> (u16, u16) {
    let rax = st.gpr[reg::RAX];
    (rax as u16, ((rax >> 32) & 0xFFF) as u16)
}

/// Runs the fast-form cases.
pub fn run(r: &mut Report, env: &Env) {
    let page = env.page_va();
    if !env.xmm() {
        r.case("step 5b", "XMM fast call without the CPUID bits raises #UD on the hypercall instruction, nothing changed", || {
            let before = fast_state(0, &[hvcall_abi::name::x64::RBX.0], 0);
            let mut after = before;
            let fault = probe::call(page, &mut after);
            let fault = fault.map_or((u64::MAX, 0), |f| (f.vector, f.rip));
            eq("exception vector", fault.0, UD)?;
            check("RIP on the hypercall instruction (inside the page)", (page..page + 4096).contains(&fault.1))?;
            check("no register changed", after == before)
        });
        r.skip(
            "§3 fast",
            "XMM fast input and output",
            "XMM fast bits withheld (--no-xmm-fast)",
        );
        return;
    }
    r.skip(
        "step 5b",
        "#UD for XMM fast calls",
        "XMM fast bits advertised; run with --no-xmm-fast",
    );
    let denied = !env.privileged();
    let vp = if env.vps > 1 { 1 } else { 0 };
    r.case("step 5c", "XMM fast call with 5 names (does not fit) -> INVALID_HYPERCALL_INPUT, nothing else changed", || {
        let names = [pattern_name(0, vp).0; 5];
        let mut before = fast_state(vp, &names[..4], 0);
        before.gpr[reg::RCX] = control(5, 0) | FAST;
        before.xmm[1][0] = u64::from(names[4]);
        let mut after = before;
        check("no exception", probe::call(page, &mut after).is_none())?;
        eq("status", u64::from(rax_result(&after).0), u64::from(S::INVALID_HYPERCALL_INPUT.0))?;
        probe::only_changed(&before, &after, 0..0)
    });
    for count in 1..=4usize {
        r.case("§3 fast", fast_label(count), || {
            let mut names = [0u32; 4];
            for (k, slot) in names.iter_mut().enumerate() {
                *slot = pattern_name(k, vp).0;
            }
            let before = fast_state(vp, &names[..count], 0);
            let mut after = before;
            check("no exception", probe::call(page, &mut after).is_none())?;
            if denied {
                eq(
                    "status",
                    u64::from(rax_result(&after).0),
                    u64::from(S::ACCESS_DENIED.0),
                )?;
                return probe::only_changed(&before, &after, 0..0);
            }
            eq("status", u64::from(rax_result(&after).0), 0)?;
            eq(
                "reps completed",
                u64::from(rax_result(&after).1),
                count as u64,
            )?;
            for k in 0..count {
                eq(
                    "output value (XMM low)",
                    after.xmm[1 + k][0],
                    want(k, vp, &before),
                )?;
                eq("output value (XMM high)", after.xmm[1 + k][1], 0)?;
            }
            probe::only_changed(&before, &after, 1..1 + count)
        });
    }
    if denied {
        return;
    }
    r.case(
        "§3 fast",
        "rep start 2 of 4: only XMM3 and XMM4 written",
        || {
            let names: [u32; 4] = core::array::from_fn(|k| pattern_name(k, vp).0);
            let before = fast_state(vp, &names, 2);
            let mut after = before;
            check("no exception", probe::call(page, &mut after).is_none())?;
            eq("status", u64::from(rax_result(&after).0), 0)?;
            eq("reps completed", u64::from(rax_result(&after).1), 4)?;
            for k in 2..4 {
                eq("output value", after.xmm[1 + k][0], want(k, vp, &before))?;
            }
            probe::only_changed(&before, &after, 3..5)
        },
    );
    r.case(
        "§3 fast",
        "unknown name at element 2 of 4: reps completed 2, XMM1-2 written, XMM3-4 kept",
        || {
            let mut names: [u32; 4] = core::array::from_fn(|k| pattern_name(k, vp).0);
            names[2] = 0x0002_0012;
            let before = fast_state(vp, &names, 0);
            let mut after = before;
            check("no exception", probe::call(page, &mut after).is_none())?;
            eq(
                "status",
                u64::from(rax_result(&after).0),
                u64::from(S::INVALID_PARAMETER.0),
            )?;
            eq("reps completed", u64::from(rax_result(&after).1), 2)?;
            for k in 0..2 {
                eq("output value", after.xmm[1 + k][0], want(k, vp, &before))?;
            }
            probe::only_changed(&before, &after, 1..3)
        },
    );
}

fn fast_label(count: usize) -> &'static str {
    match count {
        1 => "1 name: value in XMM1; RDX, R8, XMM0 and XMM2-15 and other GPRs kept",
        2 => "2 names: values in XMM1-2; everything else kept",
        3 => "3 names: values in XMM1-3; everything else kept",
        _ => "4 names: values in XMM1-4; XMM5-15 and GPRs kept",
    }
}
