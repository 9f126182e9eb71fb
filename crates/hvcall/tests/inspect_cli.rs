//! KVM end-to-end tests of `hvcall run --inspect VP --names ...`: sample
//! lines on stderr while the guest runs, each one consistent snapshot; the
//! guest's output and exit status unchanged.

mod support;

use support::hvcall_run;

/// The `name=value` pairs of the `inspect +…ms vpN` lines of `stderr`.
fn samples(stderr: &str, vp: u32) -> Vec<Vec<(String, u128)>> {
    stderr
        .lines()
        .filter(|l| l.starts_with("inspect +"))
        .map(|l| {
            let mut words = l.split_whitespace().skip(1);
            let time = words.next().unwrap();
            assert!(time.ends_with("ms"), "{l}");
            assert_eq!(words.next(), Some(format!("vp{vp}").as_str()), "{l}");
            words
                .map(|w| {
                    let (name, value) = w.split_once("=0x").unwrap_or_else(|| panic!("{l}"));
                    (name.to_owned(), u128::from_str_radix(value, 16).unwrap())
                })
                .collect()
        })
        .collect()
}

#[test]
fn inspecting_the_torn_guest_prints_consistent_samples_and_keeps_its_exit() {
    let Some(run) = hvcall_run(
        "inspecting_the_torn_guest_prints_consistent_samples_and_keeps_its_exit",
        &[
            "--guest",
            "torn",
            "--inspect",
            "1",
            "--names",
            "rbx,HvX64RegisterR12",
            "--interval-ms",
            "5",
        ],
    ) else {
        return;
    };
    run.expect_status(0)
        .expect_stdout(" 0 torn")
        .expect_stdout("torn: ok");
    assert!(
        !run.stdout.contains("inspect"),
        "samples go to stderr only\n{}",
        run.stdout
    );
    let samples = samples(&run.stderr, 1);
    assert!(!samples.is_empty(), "no sample lines\n{}", run.stderr);
    let mut last_rbx = 0;
    for s in &samples {
        let names: Vec<&str> = s.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["rbx", "r12"], "short names, in --names order");
        let (rbx, r12) = (s[0].1, s[1].1);
        // VP1 loops inc rbx; mov dr0, rbx; mov r12, rbx.
        assert!(r12 <= rbx && rbx <= r12 + 1, "torn sample {s:?}");
        assert!(rbx >= last_rbx, "RBX went back: {s:?}");
        last_rbx = rbx;
    }
}

#[test]
fn inspecting_keeps_a_non_zero_exit_status() {
    // The vmcall guest only ends through the watchdog (status 124).
    let Some(run) = hvcall_run(
        "inspecting_keeps_a_non_zero_exit_status",
        &[
            "--guest",
            "vmcall",
            "--watchdog",
            "2",
            "--inspect",
            "0",
            "--names",
            "rip,vp_index",
            "--interval-ms",
            "50",
        ],
    ) else {
        return;
    };
    run.expect_status(124).expect_stdout("executing VMCALL");
    let samples = samples(&run.stderr, 0);
    assert!(!samples.is_empty(), "no sample lines\n{}", run.stderr);
    for s in &samples {
        assert_eq!(s[1], ("vp_index".to_owned(), 0), "{s:?}");
    }
}

#[test]
fn an_unknown_register_name_is_refused_before_the_guest_runs() {
    let Some(run) = hvcall_run(
        "an_unknown_register_name_is_refused_before_the_guest_runs",
        &["--inspect", "1", "--names", "rip,nosuchreg"],
    ) else {
        return;
    };
    run.expect_status(1);
    assert!(
        run.stderr
            .contains("unknown x64 register name \"nosuchreg\""),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "the guest ran\n{}", run.stdout);
}

/// Regression: a closed or full stderr used to panic the inspector
/// thread (exit 101, the guest's status lost). Now samples that cannot be
/// written are dropped and the run ends with the guest's own status.
#[test]
fn a_closed_or_full_stderr_does_not_change_the_exit_status() {
    use std::process::{Command, Stdio};
    if !support::kvm_available("a_closed_or_full_stderr_does_not_change_the_exit_status") {
        return;
    }
    let args = [
        "run",
        "--guest",
        "torn",
        "--inspect",
        "1",
        "--names",
        "rip,rbx",
        "--interval-ms",
        "1",
    ];
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let status = Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(full)
        .status()
        .expect("run hvcall");
    assert_eq!(status.code(), Some(0), "stderr on /dev/full");

    let mut child = Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hvcall");
    drop(child.stderr.take()); // the reader goes away: writes fail with EPIPE
    let status = child.wait().expect("wait for hvcall");
    assert_eq!(status.code(), Some(0), "stderr a closed pipe");
}

/// Regression: log lines carry no colour codes when stderr is not a
/// terminal.
#[test]
fn logs_to_a_file_have_no_colour_codes() {
    let Some(run) = hvcall_run(
        "logs_to_a_file_have_no_colour_codes",
        &["--guest", "vmcall", "--watchdog", "0.5"],
    ) else {
        return;
    };
    run.expect_status(124);
    assert!(run.stderr.contains("watchdog fired"), "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
}
