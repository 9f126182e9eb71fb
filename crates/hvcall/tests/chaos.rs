//! The hostile guest against the reference model (README, "Hostile guest
//! (chaos)"): `hvcall run --guest chaos` in the configurations CI runs
//! (20,000 calls on 2 VPs with the default work budget and with one
//! element per entry, and without AccessVpRegisters), and regressions
//! for what comparing with the model found. Each run takes a few seconds.
//!
//! Both sides run the same `dispatch()`, so what this finds are faults of
//! the VMM around it: its guest-memory view (overlay page, RAM end), its
//! caller register file (RCX/RDX/R8/XMM, fast output), its snapshots (own
//! VP and others, running), the hypercall page and its continuation
//! handling. The generator, the oracle and the comparison are
//! `hvcall::chaos`, tested there without KVM.

mod support;

use hvcall::chaos::cases::{self, Batch, Case, FAST};
use hvcall::chaos::oracle::Oracle;
use hvcall::chaos::{compare, execute, Settings};
use hvcall_abi::name::x64;
use hvcall_abi::{partition_id, vp_index};
use hvcall_dispatch::DispatchConfig;
use support::hvcall_run;

/// Runs `hvcall run --guest chaos ARGS` and checks the final line
/// `N calls, 0 disagreements` with N = `calls`; returns stdout and stderr.
fn chaos(test: &str, calls: u64, args: &[&str]) -> Option<(String, String)> {
    let calls_arg = calls.to_string();
    let mut all = vec!["--guest", "chaos", "--calls", &calls_arg];
    all.extend_from_slice(args);
    let run = hvcall_run(test, &all)?;
    eprintln!("{test}: {}", run.stderr.trim_end());
    run.expect_status(0);
    let last = run.stdout.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("{calls} calls, 0 disagreements"),
        "stdout:\n{}",
        run.stdout
    );
    Some((run.stdout.clone(), run.stderr.clone()))
}

/// The number before `what` in `text` ("123 continued entries").
fn number_before(text: &str, what: &str) -> u64 {
    let at = text
        .find(what)
        .unwrap_or_else(|| panic!("{what:?} missing: {text}"));
    text[..at]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before {what:?}: {text}"))
}

#[test]
fn chaos_2_vps_default_work_budget_matches_the_model() {
    let test = "chaos_2_vps_default_work_budget_matches_the_model";
    if let Some((stdout, _)) = chaos(test, 20_000, &["--seed", "1", "--cpus", "2"]) {
        assert!(
            stdout.starts_with("chaos: seed 1, 20000 calls on 2 VPs, 256 reps per entry\n"),
            "{stdout}"
        );
    }
}

#[test]
fn chaos_2_vps_one_element_per_entry_section_2_continuation_matches_the_model() {
    let test = "chaos_2_vps_one_element_per_entry_section_2_continuation_matches_the_model";
    let args = ["--seed", "2", "--cpus", "2", "--max-reps-per-entry", "1"];
    if let Some((_, stderr)) = chaos(test, 20_000, &args) {
        assert!(
            number_before(&stderr, " continued entries") > 0,
            "K = 1 but no call was continued: {stderr}"
        );
    }
}

#[test]
fn chaos_without_access_vp_registers_step_6e_matches_the_model() {
    let test = "chaos_without_access_vp_registers_step_6e_matches_the_model";
    let args = ["--seed", "3", "--cpus", "3", "--no-access-vp-registers"];
    if let Some((_, stderr)) = chaos(test, 5_000, &args) {
        assert!(
            stderr.contains("0x6: "),
            "no ACCESS_DENIED expected: {stderr}"
        );
    }
}

#[test]
fn chaos_refuses_options_it_cannot_honour() {
    let test = "chaos_refuses_options_it_cannot_honour";
    for args in [
        &["--guest", "chaos", "--memory", "128"][..],
        &["--guest", "chaos", "--no-xmm-fast"],
        &["--guest", "demo", "--seed", "3"],
        &["--guest", "chaos", "--calls", "0"],
    ] {
        let Some(run) = hvcall_run(test, args) else {
            return;
        };
        assert_ne!(run.status, Some(0), "{args:?} accepted: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

/// Regression (found by this test): a continued fast call that reads the
/// caller's own XMM registers must see them as they were at the call
/// (docs/contract.md §5), not holding values this call wrote on an earlier
/// entry (§2: a continued call gives the same results). Elements 0 and 1
/// (VpIndex) go to XMM1 and XMM2; elements 2 and 3 read XMM2 and XMM3,
/// which elements 1 and 2 overwrite before them with one element per entry.
#[test]
fn section_5_fast_self_read_of_an_output_xmm_register_sees_it_at_the_call() {
    let test = "section_5_fast_self_read_of_an_output_xmm_register_sees_it_at_the_call";
    if !support::kvm_available(test) {
        return;
    }
    let guard = cases::guard(0);
    let (xmm2, xmm3) = ([0x2222, 0x2200], [0x3333, 0x3300]);
    let names = [x64::VP_INDEX, x64::VP_INDEX, x64::XMM2, x64::XMM3].map(|n| u64::from(n.0));
    let guard_word = u64::from_le_bytes([guard; 8]);
    let mut regs = [[guard_word; 2]; 7];
    regs[0] = [partition_id::SELF, u64::from(vp_index::SELF)];
    regs[1] = [names[0] | names[1] << 32, names[2] | names[3] << 32];
    regs[3] = xmm2;
    regs[4] = xmm3;
    let input = [regs[0][0], regs[0][1], regs[1][0], regs[1][1]]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let case = Case {
        vp: 0,
        record: 0,
        control: 0x50 | FAST | 4 << 32,
        regs,
        window: cases::ARENA,
        window_bytes: vec![guard; cases::WINDOW as usize],
        input,
    };
    let batch = Batch {
        vps: 2,
        stride: 1,
        cases: vec![case],
    };
    for k in [256, 1] {
        let mut settings = Settings::new(0, 1);
        settings.max_reps_per_entry = k;
        let got = execute(&batch, &settings).expect("the batch runs");
        let got = &got.effects[0];
        assert_eq!(got.result, 4 << 32, "K = {k}: success, 4 reps");
        assert_eq!(
            got.regs[2..6],
            [[0, 0], [0, 0], xmm2, xmm3],
            "K = {k}: XMM1..XMM4 after the call"
        );
        let mut oracle = Oracle::new(2, DispatchConfig::default(), true);
        let want = oracle.replay(&batch.cases[0]);
        assert_eq!(compare::compare(&batch.cases[0], &want, got), None);
    }
}

#[test]
fn chaos_watchdog_bounds_the_whole_run() {
    let test = "chaos_watchdog_bounds_the_whole_run";
    if !support::kvm_available(test) {
        return;
    }
    // Far more calls than 2 s allow: the run must stop at its limit, not
    // restart the limit with every batch.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .args(["run", "--guest", "chaos", "--calls", "100000000"])
        .args(["--watchdog", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the hvcall binary");
    let status = support::wait_within(&mut child, std::time::Duration::from_secs(30));
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let status = status.unwrap_or_else(|| panic!("still running after 30 s\n{stderr}"));
    assert_eq!(status.code(), Some(124), "stderr: {stderr}");
    assert!(stderr.contains("time limit"), "stderr: {stderr}");
}
