//! KVM end-to-end tests of `hvcall run` itself: the default demo, the
//! watchdog, `--kernel` with an arbitrary ELF, and how VM ends map to the
//! exit status.

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

/// A kernel file larger than guest RAM is refused before it is read whole
/// (a hostile path such as /dev/zero cannot exhaust host memory).
#[test]
fn a_kernel_larger_than_guest_ram_is_refused() {
    let Some(run) = hvcall_run(
        "a_kernel_larger_than_guest_ram_is_refused",
        &["--kernel", "/dev/zero", "--memory", "4"],
    ) else {
        return;
    };
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
