//! KVM end-to-end tests of `hvcall run` itself: the default demo, the
//! watchdog, `--kernel` with an arbitrary ELF, and how VM ends map to the
//! exit status; and, without KVM, what is refused before the VM exists
//! (a FIFO as a file, `--memory` out of range).

mod support;

use support::hvcall_run;

#[test]
fn demo_prints_the_register_table_and_exits_0() {
    let Some(run) = hvcall_run("demo_prints_the_register_table_and_exits_0", &[]) else {
        return;
    };
    run.expect_status(0)
        .expect_stdout("register    VP0 (self)")
        .expect_stdout("VP1 (running)");
    // VP1's RBX and R12 hold rt::pattern values; its VP index is 1.
    let line = |name: &str| {
        run.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row\n{}", run.stdout))
            .to_owned()
    };
    assert!(
        line("rbx").ends_with("0x3333333333333333"),
        "{}",
        run.stdout
    );
    assert!(
        line("r12").ends_with("0xcccccccccccccccc"),
        "{}",
        run.stdout
    );
    assert!(
        line("vp_index").ends_with("0x0000000000000001"),
        "{}",
        run.stdout
    );
    // Segments are decoded: both VPs run in the boot protocol's flat
    // 64-bit code segment (selector 0x08, type 0xB, S, P, L, G).
    assert_eq!(
        line("cs")
            .matches("sel=0x0008 base=0x0 limit=0xffffffff attr=0xa09b")
            .count(),
        2,
        "{}",
        run.stdout
    );
}

#[test]
fn a_guest_stuck_on_vmcall_ends_through_the_watchdog() {
    let Some(run) = hvcall_run(
        "a_guest_stuck_on_vmcall_ends_through_the_watchdog",
        &["--guest", "vmcall", "--watchdog", "1"],
    ) else {
        return;
    };
    run.expect_status(124).expect_stdout("executing VMCALL");
    assert!(!run.stdout.contains("VMCALL returned"), "{}", run.stdout);
    assert!(
        run.stderr.contains("watchdog"),
        "no watchdog message: {}",
        run.stderr
    );
}

/// Writes a minimal ELF whose code is `code` at 1 MiB.
fn kernel(name: &str, code: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("hvcall-test-{}-{name}.elf", std::process::id()));
    std::fs::write(&path, hvcall_vmm::loader::flat_elf(0x10_0000, code, 0))
        .expect("write the kernel");
    path
}

#[test]
fn kernel_runs_an_arbitrary_elf_and_exits_with_its_status() {
    // mov al, 42; out 0xF4, al; hlt
    let path = kernel("exit42", &[0xB0, 42, 0xE6, 0xF4, 0xF4]);
    let run = hvcall_run(
        "kernel_runs_an_arbitrary_elf_and_exits_with_its_status",
        &["--kernel", path.to_str().expect("utf-8 path")],
    );
    let _ = std::fs::remove_file(&path);
    if let Some(run) = run {
        run.expect_status(42);
    }
}

#[test]
fn a_faulting_kernel_ends_with_status_125_and_a_message() {
    // ud2 with no IDT: #UD, then double and triple fault.
    let path = kernel("ud2", &[0x0F, 0x0B]);
    let run = hvcall_run(
        "a_faulting_kernel_ends_with_status_125_and_a_message",
        &[
            "--kernel",
            path.to_str().expect("utf-8 path"),
            "--cpus",
            "1",
        ],
    );
    let _ = std::fs::remove_file(&path);
    if let Some(run) = run {
        run.expect_status(125);
        assert!(run.stderr.contains("guest fault on VP0"), "{}", run.stderr);
    }
}

#[test]
fn a_missing_kernel_file_is_a_setup_error() {
    let Some(run) = hvcall_run(
        "a_missing_kernel_file_is_a_setup_error",
        &["--kernel", "/nonexistent/hvcall-kernel.elf"],
    ) else {
        return;
    };
    run.expect_status(1);
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);
}

#[test]
fn cmdline_and_initrd_need_a_linux_kernel() {
    let path = kernel("cmdline", &[0xF4]);
    let run = hvcall_run(
        "cmdline_and_initrd_need_a_linux_kernel",
        &[
            "--kernel",
            path.to_str().expect("utf-8 path"),
            "--cmdline",
            "quiet",
        ],
    );
    let _ = std::fs::remove_file(&path);
    if let Some(run) = run {
        run.expect_status(1);
        assert!(run.stderr.contains("need a Linux kernel"), "{}", run.stderr);
    }
}

/// Regression: `--kernel /dev/zero` used to grow without bound.
/// Devices are refused, and a file larger than guest RAM is refused
/// before it is read whole.
#[test]
fn a_kernel_that_is_no_regular_file_or_larger_than_ram_is_refused() {
    let test = "a_kernel_that_is_no_regular_file_or_larger_than_ram_is_refused";
    let Some(run) = hvcall_run(test, &["--kernel", "/dev/zero"]) else {
        return;
    };
    run.expect_status(1);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);

    let path = std::env::temp_dir().join(format!("hvcall-test-{}-sparse.elf", std::process::id()));
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(5 << 20).expect("a sparse 5 MiB file");
    let run = hvcall_run(
        test,
        &[
            "--kernel",
            path.to_str().expect("utf-8 path"),
            "--memory",
            "4",
        ],
    );
    let _ = std::fs::remove_file(&path);
    let run = run.expect("KVM was available a moment ago");
    run.expect_status(1);
    assert!(
        run.stderr.contains("larger than guest RAM"),
        "{}",
        run.stderr
    );
}

/// A bzImage-looking file whose header linux-loader rejects: a clear
/// setup error, not a panic.
#[test]
fn a_malformed_bzimage_is_a_setup_error() {
    let path = std::env::temp_dir().join(format!("hvcall-test-{}-bad.bzImage", std::process::id()));
    let mut image = vec![0u8; 0x400];
    image[0x202..0x206].copy_from_slice(b"HdrS");
    std::fs::write(&path, &image).expect("write the kernel");
    let run = hvcall_run(
        "a_malformed_bzimage_is_a_setup_error",
        &["--kernel", path.to_str().expect("utf-8 path")],
    );
    let _ = std::fs::remove_file(&path);
    if let Some(run) = run {
        run.expect_status(1);
        assert!(run.stderr.contains("loading the kernel"), "{}", run.stderr);
    }
}

/// The conformance guest with one element per entry makes every kind of
/// call: memory and fast forms, continued calls, #UD from CPL 3 and
/// unimplemented codes. Every entry is one trace line with every field.
#[test]
fn trace_hypercalls_prints_one_line_per_entry_with_every_field() {
    let Some(run) = hvcall_run(
        "trace_hypercalls_prints_one_line_per_entry_with_every_field",
        &[
            "--guest",
            "conformance",
            "--max-reps-per-entry",
            "1",
            "--trace-hypercalls",
        ],
    ) else {
        return;
    };
    run.expect_status(0).expect_stdout(" passed, 0 failed");
    let lines = support::trace_lines(&run.stderr);
    assert!(lines.len() > 100, "{} trace lines", lines.len());
    for l in &lines {
        for key in [
            "vp", "code", "fast", "rep", "in", "out", "result", "status", "reps",
        ] {
            assert!(l.contains_key(key), "{key} missing in {l:?}");
        }
        assert_eq!(l["code"].len(), 6, "4 hex digits: {l:?}");
        if l["result"] == "complete" {
            assert_eq!(l["status"].len(), 6, "4 hex digits: {l:?}");
        }
        if l["code"] == "0x0050" && l["result"] != "ud" && l.contains_key("names") {
            for key in ["partition", "target_vp", "vtl"] {
                assert!(l.contains_key(key), "{key} missing in {l:?}");
            }
        }
    }
    let has = |f: &dyn Fn(&std::collections::BTreeMap<String, String>) -> bool| lines.iter().any(f);
    assert!(has(&|l| l["result"] == "continue"), "a continued entry");
    assert!(has(&|l| l["result"] == "ud"), "a #UD (CPL 3 caller)");
    assert!(
        has(&|l| l["fast"] == "1" && l["status"] == "0x0000"),
        "a fast call"
    );
    assert!(
        has(&|l| l["code"] == "0x0052" && l["status"] == "0x0002"),
        "0x0052 answered INVALID_HYPERCALL_CODE"
    );
    assert!(
        run.stderr.contains("hypercall 0x0052 is not implemented"),
        "unimplemented calls are logged:\n{}",
        run.stderr
    );
}

#[test]
fn without_trace_hypercalls_nothing_is_traced() {
    let Some(run) = hvcall_run("without_trace_hypercalls_nothing_is_traced", &[]) else {
        return;
    };
    run.expect_status(0);
    assert!(
        support::trace_lines(&run.stderr).is_empty(),
        "{}",
        run.stderr
    );
}

/// Regression: console bytes used to be written to stdout on the
/// vCPU thread, so a guest printing into a pipe nobody reads blocked that
/// thread and the run outlived its watchdog. Now the output queue fills,
/// later bytes are dropped, and the watchdog ends the run (status 124).
#[test]
fn a_guest_printing_into_a_full_pipe_still_ends_by_its_watchdog() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    if !support::kvm_available("a_guest_printing_into_a_full_pipe_still_ends_by_its_watchdog") {
        return;
    }
    // mov dx, 0x3F8; mov al, 'x'; loop: out dx, al; jmp loop
    let path = kernel(
        "printer",
        &[0x66, 0xBA, 0xF8, 0x03, 0xB0, 0x78, 0xEE, 0xEB, 0xFD],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .args([
            "run",
            "--kernel",
            path.to_str().expect("utf-8 path"),
            "--cpus",
            "1",
        ])
        .args(["--watchdog", "2"])
        .stdout(Stdio::piped()) // never read
        .stderr(Stdio::null())
        .spawn()
        .expect("run hvcall");
    // A generous bound that only a hang exceeds: the run ends about 4 s
    // in (2 s watchdog, 2 s flush timeout).
    let give_up = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > give_up {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = std::fs::remove_file(&path);
    let status = status.expect("hvcall hung on a full stdout pipe");
    assert_eq!(status.code(), Some(124));
}

/// Runs `hvcall run ARGS`, killing it after 10 s: (exit status, stderr),
/// or `None` if it was still running (a hang).
fn run_bounded(args: &[&std::ffi::OsStr]) -> Option<(Option<i32>, String)> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .arg("run")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hvcall");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    Some((status.code(), stderr))
}

/// Issue 16 item 8: a FIFO as `--kernel` or `--initrd` used to block in
/// open() for ever, waiting for a writer. Needs no KVM: files are read
/// before the VM exists.
#[test]
fn a_fifo_as_kernel_or_initrd_is_refused_at_once() {
    let dir = std::env::temp_dir().join(format!("hvcall-test-{}-fifo", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8 path")).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    // A file that looks like a bzImage, so that --initrd is read.
    let bz = dir.join("bzImage");
    let mut image = vec![0u8; 0x400];
    image[0x202..0x206].copy_from_slice(b"HdrS");
    std::fs::write(&bz, &image).expect("write the kernel");
    let cases: [&[&std::ffi::OsStr]; 2] = [
        &["--kernel".as_ref(), fifo.as_os_str()],
        &[
            "--kernel".as_ref(),
            bz.as_os_str(),
            "--initrd".as_ref(),
            fifo.as_os_str(),
        ],
    ];
    let results: Vec<_> = cases.iter().map(|args| run_bounded(args)).collect();
    let _ = std::fs::remove_dir_all(&dir);
    for (args, result) in cases.iter().zip(results) {
        let (status, stderr) = result.unwrap_or_else(|| panic!("{args:?}: hung on the FIFO"));
        assert_eq!(status, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("fifo is not a regular file"), "{stderr}");
    }
}

/// Issue 16 item 10: `--memory 0 --kernel K` used to say K is larger than
/// guest RAM; a size out of the VMM's range is refused as such, before
/// any file is read.
#[test]
fn memory_out_of_range_is_refused_with_the_limit() {
    let path = kernel("memory0", &[0xF4]);
    let k = path.as_os_str();
    let results: Vec<_> = [("0", "at least 2 MiB"), ("70000", "at most 65536 MiB")]
        .iter()
        .map(|(mib, says)| {
            (
                *mib,
                *says,
                run_bounded(&["--memory".as_ref(), mib.as_ref(), "--kernel".as_ref(), k]),
            )
        })
        .collect();
    let _ = std::fs::remove_file(&path);
    for (mib, says, result) in results {
        let (status, stderr) = result.expect("hvcall hung");
        assert_eq!(status, Some(2), "--memory {mib}: a usage error: {stderr}");
        assert!(stderr.contains(says), "--memory {mib}: {stderr}");
        assert!(!stderr.contains("larger than guest RAM"), "{stderr}");
    }
}
