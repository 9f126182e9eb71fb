//! docs/contract.md §2: continuation. The results must be right whatever
//! `--max-reps-per-entry` is (the integration tests run K = 1 too), and
//! the guest never sees a partial result: one call returns reps
//! completed = n.

use hvcall_abi::name::x64 as n;
use hvcall_abi::{partition_id, HvStatus as S};

use crate::env::{
    control, fill, input, output, pattern_name, result, self_input, slot, untouched, write_input,
    Env,
};
use crate::report::{eq, Outcome, Report};

/// Reads `count` pattern names of VP `vp` from rep start `s` (input and
/// output at `inp`/`out`) and checks every value.
fn read_pattern(env: &Env, vp: u32, count: usize, s: usize, inp: u64, out: u64) -> Outcome {
    let mut names = [0u32; 256];
    for (k, slot) in names[..count].iter_mut().enumerate() {
        *slot = pattern_name(k, vp).0;
    }
    write_input(inp, partition_id::SELF, vp, 0, [0; 3], &names[..count]);
    if inp != out {
        fill(out, count as u64);
    }
    let got = env.call(control(count as u64, s as u64), inp, out);
    result(got, S::SUCCESS.0, count as u16)?;
    for k in s..count {
        let v = slot(out, k as u64);
        eq("pattern value", v.0, pattern_name(k, vp).1)?;
        eq("high qword", v.1, 0)?;
    }
    if inp != out {
        untouched(out, 0..s as u64)?;
    }
    Ok(())
}

/// Runs the §2 cases.
pub fn run(r: &mut Report, env: &Env) {
    if !env.privileged() {
        r.skip(
            "§2 continuation",
            "all cases",
            "AccessVpRegisters withheld: self reads are denied",
        );
        return;
    }
    let other = if env.vps > 1 { 1 } else { 0 };
    if other == 0 {
        r.skip("§2 continuation", "reads of another VP", "one VP only");
    } else {
        r.case(
            "§2 continuation",
            "40 registers of running VP1 in one call: all right, reps completed 40",
            || read_pattern(env, 1, 40, 0, input(), output()),
        );
        r.case(
            "§2 continuation",
            "rep start 7 of 40: slots 7..39 right, 0..6 untouched",
            || read_pattern(env, 1, 40, 7, input(), output()),
        );
        r.case(
            "§2 continuation",
            "256 registers (a full output page) of VP1",
            || read_pattern(env, 1, 256, 0, input(), output()),
        );
        r.case(
            "§2 continuation",
            "overlapping lists, 60 names: input kept from the first entry",
            || read_pattern(env, 1, 60, 0, input(), input()),
        );
        r.case("§2 continuation", "last VP read with 30 names", || {
            read_pattern(env, env.vps - 1, 30, 0, input(), output())
        });
    }
    r.case(
        "§2 continuation",
        "self: VP index and guest OS ID 50 times each",
        || {
            let mut names = [0u32; 100];
            for (i, slot) in names.iter_mut().enumerate() {
                *slot = if i % 2 == 0 {
                    n::VP_INDEX.0
                } else {
                    n::GUEST_OS_ID.0
                };
            }
            self_input(&names);
            fill(output(), 100);
            result(
                env.call(control(100, 0), input(), output()),
                S::SUCCESS.0,
                100,
            )?;
            for i in 0..100 {
                eq(
                    "value",
                    slot(output(), i).0,
                    if i % 2 == 0 { 0 } else { rt::hv::GUEST_OS_ID },
                )?;
            }
            Ok(())
        },
    );
    r.case(
        "§2 continuation",
        "error at element 30 of 40 after earlier entries: reps completed 30",
        || {
            let mut names = [n::VP_INDEX.0; 40];
            names[30] = 0x0002_0012;
            self_input(&names);
            fill(output(), 40);
            result(
                env.call(control(40, 0), input(), output()),
                S::INVALID_PARAMETER.0,
                30,
            )?;
            for i in 0..30 {
                eq("value before the failure", slot(output(), i).0, 0)?;
            }
            untouched(output(), 30..40)
        },
    );
}
