//! KVM end-to-end tests of the built-in guests through `hvcall run`
//! (README, "Tests"): the conformance guest in every
//! configuration the denial rows need, the torn-read, mutual-read and
//! register-group guests. Each run takes well under a second or two.

mod support;

use support::hvcall_run;

/// Runs the conformance guest with `args` and checks `N passed, 0 failed`
/// with N > 0 and exit status 0; returns stdout.
fn conformance(test: &str, args: &[&str]) -> Option<String> {
    let mut all = vec!["--guest", "conformance"];
    all.extend_from_slice(args);
    let run = hvcall_run(test, &all)?;
    run.expect_status(0).expect_stdout(" passed, 0 failed");
    let summary = run.stdout.lines().last().unwrap_or_default().to_owned();
    let passed: u32 = summary
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        passed > 50,
        "too few cases ran: {summary:?}\n{}",
        run.stdout
    );
    assert!(!run.stdout.contains("\nFAIL "), "{}", run.stdout);
    Some(run.stdout)
}

#[test]
fn conformance_passes_with_defaults() {
    if let Some(out) = conformance("conformance_passes_with_defaults", &[]) {
        // §2, §3 and §5 rows ran (they need the privilege and XMM bits).
        assert!(out.contains("ok §2 continuation"), "{out}");
        assert!(out.contains("ok §3 fast"), "{out}");
        assert!(out.contains("ok §5 values running VP"), "{out}");
        // Step 1 from CPL 3 and the 32-bit convention ran.
        assert!(out.contains("ok step 1 "), "{out}");
        assert!(out.contains("ok §4 x86 32-bit"), "{out}");
        // §8: writes to the caller itself, to running VP1, fast, refused.
        for row in ["§8 self", "§8 other VP", "§8 fast", "step 8a", "step 8b"] {
            assert!(out.contains(&format!("ok {row} ")), "{row}:\n{out}");
        }
        for row in ["step 8c", "step 8d", "§2 continuation (0x0051)"] {
            assert!(out.contains(&format!("ok {row} ")), "{row}:\n{out}");
        }
    }
}

#[test]
fn conformance_passes_with_four_cpus() {
    conformance("conformance_passes_with_four_cpus", &["--cpus", "4"]);
}

#[test]
fn conformance_passes_with_one_rep_per_entry() {
    // §2 continuation: K = 1 must still give correct results.
    conformance(
        "conformance_passes_with_one_rep_per_entry",
        &["--max-reps-per-entry", "1"],
    );
}

#[test]
fn conformance_denies_self_access_without_the_privilege() {
    // Step 6e: without AccessVpRegisters self reads get ACCESS_DENIED.
    if let Some(out) = conformance(
        "conformance_denies_self_access_without_the_privilege",
        &["--no-access-vp-registers"],
    ) {
        assert!(out.contains("note: AccessVpRegisters withheld"), "{out}");
        assert!(out.contains("ok step 6e"), "{out}");
        assert!(out.contains("ok step 6e (0x0051)"), "{out}");
    }
}

#[test]
fn conformance_raises_ud_for_fast_calls_without_the_xmm_bits() {
    // Step 5b: fast calls without the CPUID bits raise #UD.
    if let Some(out) = conformance(
        "conformance_raises_ud_for_fast_calls_without_the_xmm_bits",
        &["--no-xmm-fast"],
    ) {
        assert!(out.contains("ok step 5b"), "{out}");
        assert!(out.contains("ok step 5b (0x0051)"), "{out}");
    }
}

#[test]
fn torn_read_never_sees_two_moments_in_one_call() {
    if let Some(run) = hvcall_run(
        "torn_read_never_sees_two_moments_in_one_call",
        &["--guest", "torn"],
    ) {
        run.expect_status(0)
            .expect_stdout("10000 reads of VP1")
            .expect_stdout(" 0 torn");
    }
}

#[test]
fn torn_read_with_one_rep_per_entry_keeps_one_snapshot_across_entries() {
    // §2: a continued call keeps the other VP's snapshot from its first entry.
    if let Some(run) = hvcall_run(
        "torn_read_with_one_rep_per_entry_keeps_one_snapshot_across_entries",
        &["--guest", "torn", "--max-reps-per-entry", "1"],
    ) {
        run.expect_status(0).expect_stdout(" 0 torn");
    }
}

/// Runs the torn-write guest with `args` and returns (partial, torn)
/// summed over its targets, after checking it passed and every target
/// counted some checks.
fn torn_write(test: &str, cpus: &str, args: &[&str]) -> Option<(u64, u64)> {
    let mut all = vec!["--guest", "torn-write", "--cpus", cpus, "--watchdog", "120"];
    all.extend_from_slice(args);
    let run = hvcall_run(test, &all)?;
    run.expect_status(0).expect_stdout("torn-write: ok");
    let targets: Vec<Vec<u64>> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("VP") && l.ends_with(" torn"))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .collect();
    let cpus: usize = cpus.parse().unwrap_or(0);
    assert_eq!(
        targets.len(),
        cpus / 2,
        "one line per target:\n{}",
        run.stdout
    );
    // VPt: N writes, C checks, P partial, T torn
    for t in &targets {
        assert!(
            t.len() == 5 && t[2] > 0,
            "a target that never checked:\n{}",
            run.stdout
        );
    }
    Some(
        targets
            .iter()
            .fold((0, 0), |(p, t), v| (p + v[3], t + v[4])),
    )
}

#[test]
fn torn_write_section_8_two_vps_never_run_with_part_of_an_entry() {
    let test = "torn_write_section_8_two_vps_never_run_with_part_of_an_entry";
    if let Some(seen) = torn_write(test, "2", &[]) {
        assert_eq!(seen, (0, 0), "(partial, torn) states seen");
    }
}

#[test]
fn torn_write_section_8_four_vps_writing_each_other_never_run_with_part_of_an_entry() {
    let test = "torn_write_section_8_four_vps_writing_each_other_never_run_with_part_of_an_entry";
    if let Some(seen) = torn_write(test, "4", &[]) {
        assert_eq!(seen, (0, 0), "(partial, torn) states seen");
    }
}

#[test]
fn torn_write_section_8_one_element_per_entry_applies_elements_in_order() {
    // Between the entries of a continued call the target may run with a
    // prefix of the call written (partial states), never out of order.
    for cpus in ["2", "4"] {
        let test = "torn_write_section_8_one_element_per_entry_applies_elements_in_order";
        if let Some((_, torn)) = torn_write(test, cpus, &["--max-reps-per-entry", "1"]) {
            assert_eq!(torn, 0, "torn states with {cpus} VPs");
        }
    }
}

#[test]
fn mutual_reads_of_two_vps_finish() {
    if let Some(run) = hvcall_run("mutual_reads_of_two_vps_finish", &["--guest", "mutual"]) {
        run.expect_status(0)
            .expect_stdout("2 VPs each read the next one");
    }
}

#[test]
fn mutual_reads_of_four_vps_finish_with_continuations() {
    if let Some(run) = hvcall_run(
        "mutual_reads_of_four_vps_finish_with_continuations",
        &[
            "--guest",
            "mutual",
            "--cpus",
            "4",
            "--max-reps-per-entry",
            "1",
        ],
    ) {
        run.expect_status(0)
            .expect_stdout("4 VPs each read the next one");
    }
}

#[test]
fn every_register_group_reads_right_from_self_and_a_running_vp() {
    if let Some(run) = hvcall_run(
        "every_register_group_reads_right_from_self_and_a_running_vp",
        &["--guest", "groups"],
    ) {
        run.expect_status(0).expect_stdout("groups: 0 failed");
        for group in [
            "general registers",
            "XMM",
            "segments",
            "GDTR/IDTR",
            "CR0",
            "DR0-3",
            "syscall/sysenter",
            "synthetic",
        ] {
            for who in ["from self", "from VP1 (running)"] {
                let line = format!("ok {group}");
                assert!(
                    run.stdout
                        .lines()
                        .any(|l| l.starts_with(&line) && l.ends_with(who)),
                    "no {line:?} {who:?} line\n{}",
                    run.stdout
                );
            }
        }
    }
}
