//! Differential test: the real KVM VMM (`hvcall-vmm`, through the real
//! hypercall page) against the reference model (`hvcall-model`, the
//! oracle of issue 2), on a few hundred seeded HvCallGetVpRegisters calls.
//!
//! - [`cases`] generates the calls (fixed seed, biased towards every
//!   boundary of behaviour.md §1: reserved, nested and fast control bits,
//!   call codes, rep counts and starts, partition ids, VP indexes, VTL and
//!   RsvdZ bytes, served and unserved names, GPAs misaligned, crossing a
//!   page, beyond RAM, on the hypercall overlay page, overlapping lists)
//!   and lays them out in guest RAM;
//! - the guest `guests/differential` executes them in order on VP0 (VP1
//!   halts, so cross-VP reads have a target) and stores each result word
//!   and its register pairs (RDX/R8, XMM0–5) back into the table;
//! - [`oracle`] replays them through `hvcall_dispatch::dispatch` on a
//!   model that mirrors the VM.
//!
//! Compared, per case: the whole result word (status and reps completed);
//! RDX, R8 and XMM0–5 after the call (fast output lands there; every other
//! pair must keep its value, §3/§4); every byte of the case's three-page
//! window (output slots before the rep start and after a failing element
//! untouched, overlapping lists, nothing written for a refused call).
//! Deliberately not compared: the *values* of registers the model cannot
//! know (RSP, CR3, TSC, segment state, VP1's state, ...). There the model
//! writes a wildcard and the test only checks that the VMM wrote the same
//! slot (changed it from its guard bytes). Values the test knows on its
//! own are compared exactly: VpIndex, the guest OS ID and hypercall MSR,
//! and the caller's RCX, RDX, R8, XMM0–5 and RIP at the call (§5).
//!
//! Both sides run the same `dispatch()`, so what this finds are faults of
//! the VMM around it: its guest-memory view (overlay page, RAM end), its
//! caller register file (RCX/RDX/R8/XMM, fast output), its snapshots (own
//! VP and another), the hypercall page and its continuation handling.
//! `--no-xmm-fast` is not run here (fast calls would raise #UD, which
//! this guest does not handle); the conformance guest covers step 5b.
//!
//! The VM runs three times: with the default work budget, with one
//! element per entry (behaviour.md §2: continuation must not change any
//! result), and without the AccessVpRegisters privilege (step 6e).

mod cases;
mod oracle;
#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hvcall_abi::name::x64;
use hvcall_abi::{partition_id, vp_index};
use hvcall_dispatch::DispatchConfig;
use hvcall_vmm::{Console, Vm, VmConfig, VmExit};

use cases::{Case, FAST, HEADER_SIZE, HYPERCALL_PAGE, MAGIC, RECORD_SIZE, TABLE_GPA};
use oracle::{is_wildcard, Effect, VPS};

/// The guest, built by `build.rs` from `guests/differential`.
const GUEST: &[u8] = include_bytes!(env!("HVCALL_GUEST_DIFFERENTIAL"));
/// The generator's seed (any fixed value; change it to explore).
const SEED: u64 = 0x4856_4341_4C4C_0050;
/// Number of cases per run.
const CASES: usize = 500;
/// How many mismatches a failure prints in full.
const SHOWN: usize = 12;

#[test]
fn vmm_matches_the_model_with_the_default_work_budget() {
    differential(
        "vmm_matches_the_model_with_the_default_work_budget",
        DispatchConfig::default().max_reps_per_entry,
        true,
    );
}

#[test]
fn vmm_matches_the_model_with_one_element_per_entry_section_2_continuation() {
    differential(
        "vmm_matches_the_model_with_one_element_per_entry_section_2_continuation",
        1,
        true,
    );
}

#[test]
fn vmm_matches_the_model_without_access_vp_registers_step_6e() {
    differential(
        "vmm_matches_the_model_without_access_vp_registers_step_6e",
        DispatchConfig::default().max_reps_per_entry,
        false,
    );
}

/// Regression (found by this test): a continued fast call that reads the
/// caller's own XMM registers must see them as they were at the call
/// (behaviour.md §5), not holding values this call wrote on an earlier
/// entry (§2: a continued call gives the same results). Elements 0 and 1
/// (VpIndex) go to XMM1 and XMM2; elements 2 and 3 read XMM2 and XMM3,
/// which elements 1 and 2 overwrite before them with one element per entry.
#[test]
fn section_5_fast_self_read_of_an_output_xmm_register_sees_it_at_the_call() {
    let test = "section_5_fast_self_read_of_an_output_xmm_register_sees_it_at_the_call";
    if !support::kvm_available(test) {
        return;
    }
    let (xmm2, xmm3) = ([0x2222, 0x2200], [0x3333, 0x3300]);
    let names = [x64::VP_INDEX, x64::VP_INDEX, x64::XMM2, x64::XMM3].map(|n| u64::from(n.0));
    let guard = u64::from_le_bytes([cases::GUARD; 8]);
    let mut regs = [[guard; 2]; 7];
    regs[0] = [partition_id::SELF, u64::from(vp_index::SELF)];
    regs[1] = [names[0] | names[1] << 32, names[2] | names[3] << 32];
    regs[3] = xmm2;
    regs[4] = xmm3;
    let case = Case {
        control: 0x50 | FAST | 4 << 32,
        regs,
        window: cases::ARENA,
        window_bytes: vec![cases::GUARD; cases::WINDOW as usize],
        input: words(&[regs[0][0], regs[0][1], regs[1][0], regs[1][1]]),
    };
    for k in [256, 1] {
        let (got, _) = run_vm(std::slice::from_ref(&case), k, true);
        assert_eq!(got[0].result, 4 << 32, "K = {k}: success, 4 reps");
        assert_eq!(
            got[0].regs[2..6],
            [[0, 0], [0, 0], xmm2, xmm3],
            "K = {k}: XMM1..XMM4 after the call"
        );
    }
}

/// Runs the seeded cases on the VMM (work budget `max_reps_per_entry`,
/// AccessVpRegisters granted or not) and on the model, and compares.
fn differential(test: &str, max_reps_per_entry: u16, access_vp_registers: bool) {
    if !support::kvm_available(test) {
        return;
    }
    let cases = cases::generate(SEED, CASES);
    let expected = oracle::replay(&cases, &DispatchConfig::default(), access_vp_registers);
    let started = Instant::now();
    let (actual, continuations) = run_vm(&cases, max_reps_per_entry, access_vp_registers);
    let statuses: Vec<String> = status_counts(&expected)
        .iter()
        .map(|(s, n)| format!("{s:#x}: {n}"))
        .collect();
    eprintln!(
        "{test}: {} cases (expected statuses {}), VM run {:?}, {continuations} continuations",
        cases.len(),
        statuses.join(", "),
        started.elapsed()
    );
    if max_reps_per_entry == 1 {
        assert!(continuations > 0, "K = 1 but no call was continued");
    }
    if access_vp_registers {
        coverage_is_broad(&cases, &expected);
    }

    let mismatches: Vec<String> = cases
        .iter()
        .zip(&expected)
        .zip(&actual)
        .enumerate()
        .filter_map(|(k, ((case, want), got))| compare(case, want, got).map(|why| (k, why)))
        .map(|(k, why)| describe(k, &cases[k], &expected[k], &actual[k], &why))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ between the VMM and the model (K = {max_reps_per_entry}); first {}:\n{}",
        mismatches.len(),
        cases.len(),
        SHOWN.min(mismatches.len()),
        mismatches[..SHOWN.min(mismatches.len())].join("\n")
    );
}

/// Runs the guest on the cases; returns what each left behind and the
/// number of continued entries.
fn run_vm(
    cases: &[Case],
    max_reps_per_entry: u16,
    access_vp_registers: bool,
) -> (Vec<Effect>, u64) {
    let (console, output) = Console::buffer();
    let config = VmConfig {
        cpus: VPS,
        memory_mib: cases::RAM_MIB,
        max_reps_per_entry,
        access_vp_registers,
        watchdog: Duration::from_secs(120),
        console,
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&config).expect("create the VM");
    vm.load_elf(GUEST).expect("load the differential guest");
    let ram = vm.ram();
    let header = [MAGIC, cases.len() as u64, HYPERCALL_PAGE, 0];
    ram.write(TABLE_GPA, &words(&header)).expect("table header");
    for (k, case) in cases.iter().enumerate() {
        let mut record = vec![case.control, 0];
        record.extend(case.regs.iter().flatten());
        ram.write(record_gpa(k), &words(&record))
            .expect("case record");
        ram.write(case.window, &case.window_bytes)
            .expect("case window");
    }
    let exit = vm.run().expect("run the VM");
    let console = String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
    assert_eq!(exit, VmExit::Exited(0), "guest console:\n{console}");

    let ram = vm.ram();
    let effects = cases
        .iter()
        .enumerate()
        .map(|(k, case)| {
            let mut record = vec![0u8; RECORD_SIZE as usize];
            ram.read(record_gpa(k), &mut record).expect("case record");
            let w: Vec<u64> = record
                .chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let mut regs = [[0u64; 2]; 7];
            for (p, pair) in regs.iter_mut().enumerate() {
                *pair = [w[2 + 2 * p], w[3 + 2 * p]];
            }
            let mut window = vec![0u8; case.window_bytes.len()];
            ram.read(case.window, &mut window).expect("case window");
            Effect {
                result: w[1],
                regs,
                window,
            }
        })
        .collect();
    (effects, vm.stats().continuations)
}

fn record_gpa(k: usize) -> u64 {
    TABLE_GPA + HEADER_SIZE + k as u64 * RECORD_SIZE
}

fn words(w: &[u64]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// How one case differs: what, and the window offset of the first
/// differing byte if that is where.
struct Mismatch {
    what: String,
    window_at: Option<usize>,
}

impl From<String> for Mismatch {
    fn from(what: String) -> Self {
        Self {
            what,
            window_at: None,
        }
    }
}

/// How `got` differs from `want`, after matching wildcard slots; `None`
/// if it does not.
fn compare(case: &Case, want: &Effect, got: &Effect) -> Option<Mismatch> {
    if want.result != got.result {
        return Some(String::from("result word").into());
    }
    let mut regs = got.regs;
    for (p, pair) in regs.iter_mut().enumerate() {
        if is_wildcard(want.regs[p]) {
            if *pair == case.regs[p] {
                return Some(format!("register pair {p} was not written").into());
            }
            *pair = want.regs[p];
        }
    }
    if let Some(p) = (0..7).find(|&p| regs[p] != want.regs[p]) {
        return Some(format!("register pair {p}").into());
    }
    let mut window = got.window.clone();
    if !case.fast() {
        let (_, out) = case.gpas();
        for i in 0..case.rep_count() {
            let Some(at) = out
                .checked_add(16 * i)
                .and_then(|gpa| gpa.checked_sub(case.window))
                .map(|a| a as usize)
                .filter(|&a| a + 16 <= window.len())
            else {
                continue;
            };
            let slot = |b: &[u8]| {
                let w = |o: usize| u64::from_le_bytes(b[at + o..at + o + 8].try_into().unwrap());
                [w(0), w(8)]
            };
            if is_wildcard(slot(&want.window)) {
                if got.window[at..at + 16] == case.window_bytes[at..at + 16] {
                    return Some(Mismatch {
                        what: format!("output slot {i} was not written"),
                        window_at: Some(at),
                    });
                }
                window[at..at + 16].copy_from_slice(&want.window[at..at + 16]);
            }
        }
    }
    let first = (0..window.len()).find(|&b| window[b] != want.window[b])?;
    Some(Mismatch {
        what: format!(
            "window byte {first:#x} (GPA {:#x})",
            case.window + first as u64
        ),
        window_at: Some(first),
    })
}

/// A readable account of one mismatch.
fn describe(k: usize, case: &Case, want: &Effect, got: &Effect, why: &Mismatch) -> String {
    let result = |r: u64| {
        format!(
            "{r:#018x} (status {:#x}, reps {})",
            r & 0xFFFF,
            (r >> 32) & 0xFFF
        )
    };
    let h = &case.input;
    let mut s = format!(
        "case {k}: {}\n  control {:#018x} (code {:#x}, {}, n {}, start {})\n  header partition {:#x} vp {:#x} vtl {:#04x} rsvd {:02x?}\n",
        why.what,
        case.control,
        case.control & 0xFFFF,
        if case.control & FAST != 0 { "fast" } else { "memory" },
        case.rep_count(),
        (case.control >> 48) & 0xFFF,
        u64::from_le_bytes(h[..8].try_into().unwrap()),
        u32::from_le_bytes(h[8..12].try_into().unwrap()),
        h[12],
        &h[13..16],
    );
    let names: Vec<String> = h[16..]
        .chunks(4)
        .take(8)
        .map(|c| format!("{:#x}", u32::from_le_bytes(c.try_into().unwrap())))
        .collect();
    let _ = writeln!(s, "  names {}", names.join(" "));
    if !case.fast() {
        let (i, o) = case.gpas();
        let _ = writeln!(
            s,
            "  input GPA {i:#x} output GPA {o:#x} window {:#x}",
            case.window
        );
    }
    let _ = writeln!(
        s,
        "  expected result {}\n  actual   result {}",
        result(want.result),
        result(got.result)
    );
    if want.regs != got.regs {
        let _ = writeln!(
            s,
            "  expected pairs (d1ced1ce.. = any value) {:x?}\n  actual   pairs {:x?}",
            want.regs, got.regs
        );
    }
    if let Some(b) = why.window_at {
        let b = b & !15;
        let end = (b + 32).min(want.window.len());
        let _ = writeln!(
            s,
            "  window from {b:#x} (wildcards are any value): expected {:02x?}\n  {:>39} {:02x?}",
            &want.window[b..end],
            "actual",
            &got.window[b..end]
        );
    }
    s
}

/// How many expected results have each status.
fn status_counts(expected: &[Effect]) -> BTreeMap<u64, usize> {
    let mut statuses = BTreeMap::new();
    for e in expected {
        *statuses.entry(e.result & 0xFFFF).or_default() += 1;
    }
    statuses
}

/// Guards against a generator that drifts into testing nothing: the
/// expected outcomes must include successes (memory and fast), each
/// refusal of §1, and failures in the middle of a list.
fn coverage_is_broad(cases: &[Case], expected: &[Effect]) {
    let statuses = status_counts(expected);
    for status in [0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0xD, 0xE] {
        assert!(
            statuses.contains_key(&status),
            "no case ended with status {status:#x}: {statuses:x?}"
        );
    }
    let mid_list = expected
        .iter()
        .filter(|e| e.result & 0xFFFF == 0x5 && (e.result >> 32) & 0xFFF > 0)
        .count();
    assert!(mid_list > 0, "no case failed in the middle of its list");
    let wrote_memory = cases
        .iter()
        .zip(expected)
        .filter(|(c, e)| e.window != c.window_bytes)
        .count();
    let wrote_registers = cases
        .iter()
        .zip(expected)
        .filter(|(c, e)| e.regs != c.regs)
        .count();
    assert!(
        wrote_memory > 0 && wrote_registers > 0,
        "no output was written to memory ({wrote_memory}) or registers ({wrote_registers})"
    );
}
