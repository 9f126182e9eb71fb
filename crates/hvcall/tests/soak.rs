//! KVM end-to-end test of the soak: `hvcall run
//! --guest soak --cpus 4 --seconds 5` must read, never see a torn snapshot
//! and never stall, and say so in its last line, `R reads, T torn, S stalls`.

mod support;

use support::hvcall_run;

/// `(R, T, S)` from the last stdout line, if it has the soak's form.
fn totals(stdout: &str) -> Option<(u64, u64, u64)> {
    let line = stdout.lines().last()?;
    let mut parts = line.split(", ");
    let mut field = |suffix: &str| parts.next()?.strip_suffix(suffix)?.parse().ok();
    let totals = (field(" reads")?, field(" torn")?, field(" stalls")?);
    parts.next().is_none().then_some(totals)
}

#[test]
fn four_vps_soak_for_five_seconds_without_torn_reads_or_stalls() {
    let test = "four_vps_soak_for_five_seconds_without_torn_reads_or_stalls";
    let Some(run) = hvcall_run(test, &["--guest", "soak", "--cpus", "4", "--seconds", "5"]) else {
        return;
    };
    let out = format!("--- stdout\n{}\n--- stderr\n{}", run.stdout, run.stderr);
    let (reads, torn, stalls) =
        totals(&run.stdout).unwrap_or_else(|| panic!("no final soak line\n{out}"));
    assert!(reads > 0, "no reads\n{out}");
    assert_eq!((torn, stalls), (0, 0), "torn or stalled\n{out}");
    run.expect_status(0);
    // Every VP made progress and the reads caught targets in their calls
    // (where the R12 part of the invariant applies).
    assert!(run.stderr.contains("4 of 4 VPs stopped"), "{out}");
    assert!(!run.stderr.contains(" 0 caught the target"), "{out}");
    assert!(!run.stderr.contains(" 0 running;"), "{out}");
}

#[test]
fn the_final_line_parses() {
    assert_eq!(totals("x\n12 reads, 0 torn, 1 stalls\n"), Some((12, 0, 1)));
    assert_eq!(totals("12 reads, 0 torn\n"), None);
    assert_eq!(totals("12 reads, 0 torn, 1 stalls, 2 more\n"), None);
}
