//! An unmodified Linux 6.12 kernel booted on hvcall, the first client of
//! HvCallGetVpRegisters that nobody here wrote.
//!
//! The kernels and the initramfs come from `linux/build.sh` (Debian's
//! `linux-source-6.12`, tinyconfig plus `linux/config.fragment`), found
//! through `HVCALL_LINUX_DIR` or `linux/build.sh --print-dir`. Without them
//! each test prints a SKIP line and passes, unless `HVCALL_REQUIRE_LINUX=1`
//! (set by `.ci/run`, which builds them first).
//!
//! On this host user space cannot make system calls, so a boot ends where
//! the kernel starts /init: init faults, the kernel panics, and
//! `panic=-1` resets the machine through the i8042, which hvcall reports
//! as exit status 3.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use support::{hvcall_run, Run};

/// Exit status of a VM the guest reset.
const RESET: i32 = 3;
/// A safety net only: a boot takes about a minute here; a hung kernel
/// fails the test with status 124 instead of hanging CI.
const WATCHDOG_SECS: &str = "900";

/// The directory `linux/build.sh` fills, if it has been built.
fn linux_dir(test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("HVCALL_LINUX_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../linux/build.sh");
            let out = Command::new("bash")
                .args([script, "--print-dir"])
                .output()
                .expect("run linux/build.sh --print-dir");
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    if dir.join("done").is_file() {
        return Some(dir);
    }
    if std::env::var("HVCALL_REQUIRE_LINUX").as_deref() == Ok("1") {
        panic!(
            "{test}: no Linux kernel in {} and HVCALL_REQUIRE_LINUX=1 (run linux/build.sh)",
            dir.display()
        );
    }
    eprintln!(
        "SKIP {test}: ******** no Linux kernel built in {}; run linux/build.sh (about 5 minutes) ********",
        dir.display()
    );
    None
}

/// Boots `kernel` (relative to the build directory) with the test
/// initramfs and the hypercall trace.
fn boot(test: &str, kernel: &str, cpus: &str) -> Option<Run> {
    let dir = linux_dir(test)?;
    let kernel = dir.join(kernel);
    let initrd = dir.join("initramfs.cpio");
    hvcall_run(
        test,
        &[
            "--kernel",
            kernel.to_str().expect("UTF-8 path"),
            "--initrd",
            initrd.to_str().expect("UTF-8 path"),
            "--cpus",
            cpus,
            "--trace-hypercalls",
            "--watchdog",
            WATCHDOG_SECS,
        ],
    )
}

/// The trace lines of call `code`.
fn trace_lines(run: &Run, code: &str) -> Vec<BTreeMap<String, String>> {
    support::trace_lines(&run.stderr)
        .into_iter()
        .filter(|l| l.get("code").map(String::as_str) == Some(code))
        .collect()
}

fn field<'a>(line: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    line.get(key).map_or("", String::as_str)
}

/// Everything the README's "Booting Linux" section promises of a VTL-mode
/// boot: Hyper-V detected, the
/// `get_vtl()` call traced and answered HV_STATUS_SUCCESS, the initramfs
/// unpacked, /init started, and a prompt, documented end.
fn check_vtl_boot(run: &Run) {
    run.expect_status(RESET)
        .expect_stdout("Hypervisor detected: Microsoft Hyper-V")
        .expect_stdout("Linux runs in Hyper-V Virtual Trust Level")
        .expect_stdout("Unpacking initramfs")
        .expect_stdout("Run /init as init process");
    assert!(
        !run.stdout.contains("Failed to get VTL"),
        "get_vtl() failed:\n{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("Initramfs unpacking failed"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("the guest reset the machine"),
        "{}",
        run.stderr
    );

    let calls = trace_lines(run, "0x0050");
    let get_vtl: Vec<_> = calls
        .iter()
        .filter(|l| field(l, "names") == "vsm_vp_status")
        .collect();
    assert_eq!(get_vtl.len(), 1, "one get_vtl() call:\n{}", run.stderr);
    let l = get_vtl[0];
    assert_eq!(field(l, "vp"), "0");
    assert_eq!(field(l, "fast"), "0");
    assert_eq!(field(l, "rep"), "0/1");
    assert_eq!(field(l, "partition"), "self");
    assert_eq!(field(l, "target_vp"), "self");
    assert_eq!(field(l, "vtl"), "0x00");
    assert_eq!(field(l, "result"), "complete");
    assert_eq!(field(l, "status"), "0x0000", "HV_STATUS_SUCCESS");
    assert_eq!(field(l, "reps"), "1");
    // Linux 6.12 passes one page as both input and output (docs/contract.md
    // §1's overlapping-lists rule, for real).
    assert_eq!(field(l, "in"), field(l, "out"));
    assert_ne!(field(l, "in"), "0x0");
}

#[test]
fn linux_vtl_kernel_boots_to_init_and_reads_vsm_vp_status_on_one_vp() {
    let test = "linux_vtl_kernel_boots_to_init_and_reads_vsm_vp_status_on_one_vp";
    if let Some(run) = boot(test, "vtl/vmlinux", "1") {
        check_vtl_boot(&run);
    }
}

#[test]
fn linux_vtl_kernel_boots_to_init_with_two_vps() {
    let test = "linux_vtl_kernel_boots_to_init_with_two_vps";
    if let Some(run) = boot(test, "vtl/vmlinux", "2") {
        check_vtl_boot(&run);
    }
}

/// A bzImage (what distributions ship): its decompressor runs in this
/// host's instruction emulator first, about 30 s here.
#[test]
fn linux_bzimage_decompresses_and_boots_to_init() {
    let test = "linux_bzimage_decompresses_and_boots_to_init";
    if let Some(run) = boot(test, "vtl/bzImage", "1") {
        check_vtl_boot(&run);
    }
}

/// Without VTL mode Linux finds both CPUs in the MP table and starts the
/// second with INIT/SIPI through KVM's in-kernel local APIC.
#[test]
fn linux_smp_kernel_brings_up_the_second_vp_from_the_mp_table() {
    let test = "linux_smp_kernel_brings_up_the_second_vp_from_the_mp_table";
    if let Some(run) = boot(test, "smp/vmlinux", "2") {
        run.expect_status(RESET)
            .expect_stdout("Hypervisor detected: Microsoft Hyper-V")
            .expect_stdout("smp: Brought up 1 node, 2 CPUs")
            .expect_stdout("Run /init as init process");
    }
}
