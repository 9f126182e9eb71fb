//! docs/contract.md §1: the order of checks (steps 2–7) and the rules listed
//! under the table (partition ids, UseTargetVtl = 0, overlapping lists,
//! untouched slots, success). Memory form; every failing call must also
//! leave the whole output list untouched (a failure before step 7 writes
//! nothing).

use hvcall_abi::name::x64 as n;
use hvcall_abi::{partition_id, vp_index, HvStatus as S};

use crate::env::{
    control, fill, input, output, page, result, self_input, slot, untouched, write_input, Env,
};
use crate::report::{eq, Outcome, Report};

/// Two stable names of self: the VP index and the hypercall MSR image.
const NAMES: [u32; 2] = [n::VP_INDEX.0, n::GUEST_OS_ID.0];
/// A name no x64 hypervisor serves.
const UNKNOWN: u32 = 0x0002_0012;

/// Calls with `control` on a fresh SELF/SELF input of [`NAMES`] and
/// expects `status`, `reps` and an untouched output list.
fn rejected(env: &Env, control: u64, status: S, reps: u16) -> Outcome {
    self_input(&NAMES);
    fill(output(), 4);
    result(env.call(control, input(), output()), status.0, reps)?;
    untouched(output(), 0..4)
}

/// Like [`rejected`] for a header-level failure with a custom input.
fn header_rejected(
    env: &Env,
    partition: u64,
    vp: u32,
    vtl: u8,
    reserved: [u8; 3],
    s: u64,
    status: u16,
) -> Outcome {
    write_input(input(), partition, vp, vtl, reserved, &NAMES);
    fill(output(), 4);
    result(env.call(control(2, s), input(), output()), status, s as u16)?;
    untouched(output(), 0..4)
}

/// Expects `control` on SELF/SELF [`NAMES`] to succeed (or get ACCESS_DENIED
/// without the privilege) and the VP index / guest OS ID values.
fn accepted(env: &Env, partition: u64, vp: u32, vtl: u8) -> Outcome {
    write_input(input(), partition, vp, vtl, [0; 3], &NAMES);
    fill(output(), 4);
    let got = env.call(control(2, 0), input(), output());
    result(got, env.self_status(S::SUCCESS), env.self_reps(2, 0))?;
    names_read(env, u64::from(if vp == vp_index::SELF { 0 } else { vp }))
}

/// Fails unless output slots 0 and 1 hold [`NAMES`]' values (VP index
/// `vp`, the guest OS ID) and 2..4 are untouched; without the privilege
/// the call was denied and all of 0..4 must be untouched.
fn names_read(env: &Env, vp: u64) -> Outcome {
    if env.privileged() {
        eq("VP index value", slot(output(), 0).0, vp)?;
        eq(
            "guest OS ID value",
            slot(output(), 1).0,
            rt::hv::GUEST_OS_ID,
        )?;
        untouched(output(), 2..4)
    } else {
        untouched(output(), 0..4)
    }
}

/// Runs the §1 cases.
pub fn run(r: &mut Report, env: &Env) {
    for bit in [27, 30, 44, 47, 60, 63] {
        r.case("step 2", reserved_label(bit), || {
            rejected(
                env,
                control(2, 0) | (1 << bit),
                S::INVALID_HYPERCALL_INPUT,
                0,
            )
        });
    }
    r.case("step 3", "nested bit 31 -> INVALID_HYPERCALL_INPUT", || {
        rejected(
            env,
            control(2, 0) | (1 << 31),
            S::INVALID_HYPERCALL_INPUT,
            0,
        )
    });
    for code in [0x0001u64, 0x0052, 0x8001, 0xFFFF] {
        r.case(
            "step 4",
            "unimplemented call code (0x1, 0x52, 0x8001, 0xFFFF) -> INVALID_HYPERCALL_CODE",
            || {
                rejected(
                    env,
                    (control(2, 0) & !0xFFFF) | code,
                    S::INVALID_HYPERCALL_CODE,
                    0,
                )
            },
        );
    }
    r.case(
        "step 2 before 4",
        "reserved bit with an unknown code -> INVALID_HYPERCALL_INPUT",
        || {
            rejected(
                env,
                (control(2, 0) & !0xFFFF) | 1 | (1 << 28),
                S::INVALID_HYPERCALL_INPUT,
                0,
            )
        },
    );
    r.case("step 5a", "rep count 0 -> INVALID_HYPERCALL_INPUT", || {
        rejected(env, control(0, 0), S::INVALID_HYPERCALL_INPUT, 0)
    });
    r.case(
        "step 5a",
        "rep start == rep count -> INVALID_HYPERCALL_INPUT",
        || rejected(env, control(2, 2), S::INVALID_HYPERCALL_INPUT, 0),
    );
    r.case(
        "step 5a",
        "rep start > rep count -> INVALID_HYPERCALL_INPUT",
        || rejected(env, control(2, 3), S::INVALID_HYPERCALL_INPUT, 0),
    );
    r.case(
        "step 5a",
        "variable header size 1 -> INVALID_HYPERCALL_INPUT",
        || {
            rejected(
                env,
                control(2, 0) | (1 << 17),
                S::INVALID_HYPERCALL_INPUT,
                0,
            )
        },
    );
    r.case(
        "step 4 before 5a",
        "unknown code with rep count 0 -> INVALID_HYPERCALL_CODE",
        || {
            rejected(
                env,
                (control(0, 0) & !0xFFFF) | 1,
                S::INVALID_HYPERCALL_CODE,
                0,
            )
        },
    );
    memory_checks(r, env);
    header_checks(r, env);
    element_checks(r, env);
    list_rules(r, env);
}

fn reserved_label(bit: u32) -> &'static str {
    match bit {
        27 => "reserved control bit 27 -> INVALID_HYPERCALL_INPUT",
        30 => "reserved control bit 30 -> INVALID_HYPERCALL_INPUT",
        44 => "reserved control bit 44 -> INVALID_HYPERCALL_INPUT",
        47 => "reserved control bit 47 -> INVALID_HYPERCALL_INPUT",
        60 => "reserved control bit 60 -> INVALID_HYPERCALL_INPUT",
        _ => "reserved control bit 63 -> INVALID_HYPERCALL_INPUT",
    }
}

/// Steps 5d–5f: alignment, page crossing, GPAs outside RAM.
fn memory_checks(r: &mut Report, env: &Env) {
    let bad = |i: u64, o: u64| {
        fill(output(), 4);
        result(env.call(control(2, 0), i, o), S::INVALID_ALIGNMENT.0, 0)?;
        untouched(output(), 0..4)
    };
    r.case(
        "step 5d",
        "input GPA not 8-byte aligned -> INVALID_ALIGNMENT",
        || {
            write_input(
                input() + 4,
                partition_id::SELF,
                vp_index::SELF,
                0,
                [0; 3],
                &NAMES,
            );
            bad(input() + 4, output())
        },
    );
    r.case(
        "step 5d",
        "output GPA not 8-byte aligned -> INVALID_ALIGNMENT",
        || {
            self_input(&NAMES);
            bad(input(), output() + 4)
        },
    );
    let last = page(1) - 16;
    r.case(
        "step 5e",
        "input list crossing a page -> INVALID_ALIGNMENT",
        || {
            write_input(last, partition_id::SELF, vp_index::SELF, 0, [0; 3], &NAMES);
            bad(last, output())
        },
    );
    r.case(
        "step 5e",
        "output list crossing a page -> INVALID_ALIGNMENT",
        || {
            self_input(&NAMES);
            fill(page(3) - 16, 1);
            result(
                env.call(control(2, 0), input(), page(3) - 16),
                S::INVALID_ALIGNMENT.0,
                0,
            )?;
            untouched(page(3) - 16, 0..1)
        },
    );
    r.case(
        "step 5e",
        "lists ending exactly at a page end are accepted",
        || {
            let at = page(1) - 24;
            write_input(at, partition_id::SELF, vp_index::SELF, 0, [0; 3], &NAMES);
            let out = page(3) - 32;
            fill(out, 2);
            result(
                env.call(control(2, 0), at, out),
                env.self_status(S::SUCCESS),
                env.self_reps(2, 0),
            )
        },
    );
    r.case(
        "step 5f",
        "input GPA outside guest RAM (1 TiB) -> INVALID_ALIGNMENT",
        || {
            self_input(&NAMES);
            bad(1 << 40, output())
        },
    );
    r.case(
        "step 5f",
        "output GPA outside guest RAM (1 TiB) -> INVALID_ALIGNMENT",
        || {
            self_input(&NAMES);
            bad(input(), 1 << 40)
        },
    );
    r.case(
        "step 5f",
        "input list on the hypercall overlay page -> INVALID_ALIGNMENT",
        || {
            self_input(&NAMES);
            bad(env.page_va(), output())
        },
    );
    r.case(
        "step 5f",
        "output list on the hypercall overlay page -> INVALID_ALIGNMENT",
        || {
            self_input(&NAMES);
            bad(input(), env.page_va() + 64)
        },
    );
}

/// Steps 6a–6i and the partition-id rules.
fn header_checks(r: &mut Report, env: &Env) {
    let me = vp_index::SELF;
    r.case(
        "step 6a",
        "header byte 13 set -> INVALID_PARAMETER, reps completed = s (0)",
        || {
            header_rejected(
                env,
                partition_id::SELF,
                me,
                0,
                [1, 0, 0],
                0,
                S::INVALID_PARAMETER.0,
            )
        },
    );
    r.case(
        "step 6a",
        "header byte 15 set, rep start 1 -> INVALID_PARAMETER, reps completed 1",
        || {
            header_rejected(
                env,
                partition_id::SELF,
                me,
                0,
                [0, 0, 0x80],
                1,
                S::INVALID_PARAMETER.0,
            )
        },
    );
    r.case(
        "step 6b",
        "HV_INPUT_VTL bit 5 set -> INVALID_PARAMETER",
        || {
            header_rejected(
                env,
                partition_id::SELF,
                me,
                0x20,
                [0; 3],
                0,
                S::INVALID_PARAMETER.0,
            )
        },
    );
    r.case(
        "step 6b",
        "HV_INPUT_VTL bit 7 set, rep start 1 -> INVALID_PARAMETER, reps completed 1",
        || {
            header_rejected(
                env,
                partition_id::SELF,
                me,
                0x80,
                [0; 3],
                1,
                S::INVALID_PARAMETER.0,
            )
        },
    );
    for (id, label) in [
        (0, "partition id 0 (invalid) -> INVALID_PARTITION_ID"),
        (
            3,
            "partition id 3 (no such partition) -> INVALID_PARTITION_ID",
        ),
        (
            u64::MAX - 1,
            "partition id 0xFFFFFFFFFFFFFFFE -> INVALID_PARTITION_ID",
        ),
    ] {
        r.case("step 6c", label, || {
            header_rejected(env, id, me, 0, [0; 3], 0, S::INVALID_PARTITION_ID.0)
        });
    }
    r.case(
        "step 6c",
        "partition id 0 with rep start 1 -> reps completed 1",
        || header_rejected(env, 0, me, 0, [0; 3], 1, S::INVALID_PARTITION_ID.0),
    );
    r.case(
        "step 6d",
        "partition id 1 (root, not our child) -> ACCESS_DENIED",
        || header_rejected(env, 1, 0, 0, [0; 3], 0, S::ACCESS_DENIED.0),
    );
    r.case(
        "step 6d before 6f",
        "partition 1 with VP index SELF -> ACCESS_DENIED",
        || header_rejected(env, 1, me, 0, [0; 3], 0, S::ACCESS_DENIED.0),
    );
    r.case(
        "step 6e",
        "SELF partition, SELF VP: success with AccessVpRegisters, else ACCESS_DENIED",
        || accepted(env, partition_id::SELF, me, 0),
    );
    r.case(
        "step 6e",
        "own partition id 2 reads itself like SELF (or ACCESS_DENIED)",
        || accepted(env, 2, 0, 0),
    );
    r.skip(
        "step 6f",
        "VP index SELF for a partition other than our own",
        "a guest reaches no such partition: 6c/6d reject first",
    );
    let bad_vp = env.self_status(S::INVALID_VP_INDEX);
    r.case("step 6g", "VP index = VP count -> INVALID_VP_INDEX", || {
        header_rejected(env, partition_id::SELF, env.vps, 0, [0; 3], 0, bad_vp)
    });
    r.case(
        "step 6g",
        "VP index 0xFFFFFFFF (HV_ANY_VP) -> INVALID_VP_INDEX",
        || header_rejected(env, 2, vp_index::ANY, 0, [0; 3], 0, bad_vp),
    );
    r.case(
        "step 6g",
        "VP index = VP count - 1 (last VP) is accepted",
        || accepted(env, partition_id::SELF, env.vps - 1, 0),
    );
    let denied = env.self_status(S::ACCESS_DENIED);
    r.case(
        "step 6h",
        "UseTargetVtl with TargetVtl 1 (above ours) -> ACCESS_DENIED",
        || header_rejected(env, partition_id::SELF, me, 0x11, [0; 3], 0, denied),
    );
    r.case(
        "step 6h",
        "UseTargetVtl with TargetVtl 15 -> ACCESS_DENIED",
        || header_rejected(env, partition_id::SELF, me, 0x1F, [0; 3], 0, denied),
    );
    r.case(
        "step 6h",
        "UseTargetVtl with TargetVtl 0 (ours) is accepted",
        || accepted(env, partition_id::SELF, me, 0x10),
    );
    r.case(
        "§1 rules",
        "UseTargetVtl = 0 ignores TargetVtl (5)",
        || accepted(env, partition_id::SELF, me, 0x05),
    );
    r.skip(
        "step 6i",
        "target VTL not enabled",
        "only VTL0 exists and a guest cannot name a higher VTL past step 6h",
    );
    r.case(
        "step 6 order",
        "header errors win over element errors (byte 13 + unknown name)",
        || {
            write_input(
                input(),
                partition_id::SELF,
                me,
                0,
                [1, 0, 0],
                &[UNKNOWN, UNKNOWN],
            );
            fill(output(), 2);
            result(
                env.call(control(2, 0), input(), output()),
                S::INVALID_PARAMETER.0,
                0,
            )?;
            untouched(output(), 0..2)
        },
    );
}

/// Step 7: per-element failures.
fn element_checks(r: &mut Report, env: &Env) {
    let status = env.self_status(S::INVALID_PARAMETER);
    r.case(
        "step 7",
        "unknown name at element 2 -> INVALID_PARAMETER, reps completed 2",
        || {
            self_input(&[n::VP_INDEX.0, n::GUEST_OS_ID.0, UNKNOWN, n::VP_INDEX.0]);
            fill(output(), 4);
            result(
                env.call(control(4, 0), input(), output()),
                status,
                env.self_reps(2, 0),
            )?;
            names_read(env, 0)
        },
    );
    for (name, label) in [
        (
            0xFFFF_FFFFu32,
            "name 0xFFFFFFFF -> INVALID_PARAMETER at element 0",
        ),
        (
            0x000A_0014,
            "write-only name Eom (0x000A0014) -> INVALID_PARAMETER",
        ),
        (
            0x0004_0002 | 0x0100_0000,
            "name 0x01040002 (no such register) -> INVALID_PARAMETER",
        ),
    ] {
        r.case("step 7", label, || {
            self_input(&[name, n::VP_INDEX.0]);
            fill(output(), 2);
            result(env.call(control(2, 0), input(), output()), status, 0)?;
            untouched(output(), 0..2)
        });
    }
    r.case(
        "step 7",
        "names before the rep start are not read (unknown name at 1, s = 2)",
        || {
            self_input(&[n::VP_INDEX.0, UNKNOWN, n::VP_INDEX.0, n::GUEST_OS_ID.0]);
            fill(output(), 4);
            result(
                env.call(control(4, 2), input(), output()),
                env.self_status(S::SUCCESS),
                env.self_reps(4, 2),
            )?;
            untouched(output(), 0..2)
        },
    );
}

/// The rules under the §1 table: untouched slots, overlapping lists,
/// success.
fn list_rules(r: &mut Report, env: &Env) {
    if !env.privileged() {
        r.skip(
            "§1 rules",
            "slots outside s..n-1, overlapping lists",
            "AccessVpRegisters withheld: self reads are denied",
        );
        return;
    }
    r.case(
        "§1 rules",
        "only slots s..n-1 are written (s = 2, n = 5; slots 0, 1, 5, 6 untouched)",
        || {
            self_input(&[n::VP_INDEX.0; 5]);
            fill(output(), 7);
            result(env.call(control(5, 2), input(), output()), S::SUCCESS.0, 5)?;
            untouched(output(), 0..2)?;
            for i in 2..5 {
                eq("VP index value", slot(output(), i).0, 0)?;
                eq("high qword zero-extended", slot(output(), i).1, 0)?;
            }
            untouched(output(), 5..7)
        },
    );
    r.case(
        "§1 rules",
        "overlapping input and output (same GPA) are accepted, whole input read first",
        || {
            let names = [
                n::GUEST_OS_ID.0,
                n::VP_INDEX.0,
                n::GUEST_OS_ID.0,
                n::VP_INDEX.0,
                n::GUEST_OS_ID.0,
                n::VP_INDEX.0,
            ];
            self_input(&names);
            result(env.call(control(6, 0), input(), input()), S::SUCCESS.0, 6)?;
            for i in 0..6 {
                let want = if i % 2 == 0 { rt::hv::GUEST_OS_ID } else { 0 };
                eq("value", slot(input(), i).0, want)?;
            }
            Ok(())
        },
    );
    r.case(
        "§1 rules",
        "success: status 0, reps completed = n, call returns",
        || {
            self_input(&NAMES);
            result(env.call(control(2, 0), input(), output()), S::SUCCESS.0, 2)
        },
    );
}
