//! `hvcall bench --json --quick` runs and prints every key with a sane
//! type. No timing is asserted: the figures vary from run to run and from
//! machine to machine (BENCHMARKS.md).

mod support;

use std::process::Command;

use support::kvm_available;

/// The timed figures, each `{"ns", "ratio", "vmm_ns", "ioctls"}`.
const FIGURES: [&str; 8] = [
    "null_exit",
    "self_rep1",
    "self_rep16",
    "self_rep256",
    "self_xmm_rep4",
    "cross_rep1",
    "cross_rep16",
    "cross_halted_rep1",
];

#[test]
fn bench_json_quick_prints_every_key() {
    let test = "bench_json_quick_prints_every_key";
    if !kvm_available(test) {
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .args(["bench", "--json", "--quick"])
        .output()
        .expect("run the hvcall binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let out = format!(
        "--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "exit status {}\n{out}",
        output.status
    );
    let value: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON: {e}\n{out}"));
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object\n{out}"));
    for figure in FIGURES {
        let f = object
            .get(figure)
            .and_then(|f| f.as_object())
            .unwrap_or_else(|| panic!("no object {figure}\n{out}"));
        for key in ["ns", "ratio", "ioctls"] {
            let v = f.get(key).and_then(|v| v.as_f64());
            assert!(
                v.is_some_and(|v| v.is_finite() && v >= 0.0),
                "{figure}.{key} is not a number >= 0\n{out}"
            );
        }
        // vmm_ns is a number, or null where the VMM cannot measure it.
        let vmm = f
            .get("vmm_ns")
            .unwrap_or_else(|| panic!("no {figure}.vmm_ns\n{out}"));
        assert!(
            vmm.is_null() || vmm.as_f64().is_some(),
            "{figure}.vmm_ns\n{out}"
        );
        assert_eq!(f.len(), 4, "{figure} has other keys\n{out}");
    }
    assert_eq!(object["null_exit"]["ratio"].as_f64(), Some(1.0), "{out}");
    for key in ["startup_us", "guest_main_us", "rss_overhead_kib"] {
        assert!(
            object.get(key).is_some_and(|v| v.is_number()),
            "no number {key}\n{out}"
        );
    }
    assert_eq!(object.len(), FIGURES.len() + 3, "unexpected keys\n{out}");
}

#[test]
fn bench_fails_when_its_report_cannot_be_written() {
    let test = "bench_fails_when_its_report_cannot_be_written";
    if !kvm_available(test) {
        return;
    }
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let output = Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .args(["bench", "--json", "--quick"])
        .stdout(full)
        .output()
        .expect("run the hvcall binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exit 0 with no report\n{stderr}");
    assert!(
        stderr.contains("cannot write the report"),
        "stderr: {stderr}"
    );
}

/// The bench's floor calls an unimplemented code on purpose; the VMM's
/// warning for it stays filtered out of the report (its log target is
/// `hvcall_vmm::vm`, whichever module logs it).
#[test]
fn bench_report_has_no_unimplemented_call_warning() {
    let test = "bench_report_has_no_unimplemented_call_warning";
    if !kvm_available(test) {
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .args(["bench", "--quick"])
        .output()
        .expect("run the hvcall binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    assert!(
        !stderr.contains("is not implemented"),
        "the unimplemented-call warning reached stderr: {stderr}"
    );
}
