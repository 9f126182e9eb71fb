//! `hvcall run`: boots a guest (a built-in one, any ELF per the boot
//! protocol, or a Linux kernel) in the KVM VMM and turns how the VM ended
//! into the process exit status. `--guest soak` runs for `--seconds S`
//! under the watch of [`crate::soak`], which decides the status.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hvcall::api::ApiSocket;
use hvcall::chaos;
use hvcall_vmm::linux::{KernelKind, DEFAULT_CMDLINE};
use hvcall_vmm::memory::{MAX_RAM_MIB, MIN_RAM_MIB};
use hvcall_vmm::seccomp::{self, SeccompMode, ThreadRole};
use hvcall_vmm::{Console, Inspector, Vm, VmConfig, VmExit, VmmError};

use crate::guests::Guest;
use crate::inspect::InspectArgs;
use crate::{signals, soak};

/// Options of `hvcall run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Built-in guest to run.
    #[arg(long, value_enum, default_value = "demo")]
    pub guest: Guest,
    /// Run this image instead of a built-in guest: a Linux kernel (bzImage
    /// or vmlinux, booted with the Linux boot protocol) or a static ELF64
    /// x86-64 executable (hvcall's bare-metal boot protocol).
    #[arg(long, value_name = "FILE", conflicts_with = "guest")]
    pub kernel: Option<PathBuf>,
    /// The Linux kernel's command line [default: see `hvcall_vmm::linux::DEFAULT_CMDLINE`,
    /// printed by `--help`].
    #[arg(long, value_name = "STR", requires = "kernel", long_help = cmdline_help())]
    pub cmdline: Option<String>,
    /// An initrd (initramfs) for the Linux kernel.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Print one line per hypercall entry on stderr (`key=value` fields:
    /// vp, code, fast, rep, in, out, result, status, reps; for 0x0050 and 0x0051 also
    /// partition, target_vp, vtl, names).
    #[arg(long)]
    pub trace_hypercalls: bool,
    /// Number of virtual processors [default: 2].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub cpus: Option<u32>,
    /// Guest RAM in MiB, 2 to 65536 [default: 64].
    #[arg(long, value_name = "MiB", value_parser = parse_memory)]
    pub memory: Option<u64>,
    /// Work budget of one hypercall entry, in elements (docs/contract.md §2);
    /// smaller values make rep calls continue more often.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_reps_per_entry: Option<u16>,
    /// Withhold the AccessVpRegisters privilege (docs/contract.md step 6e).
    #[arg(long)]
    pub no_access_vp_registers: bool,
    /// Withhold both XMM fast hypercall CPUID bits (docs/contract.md step 5b).
    #[arg(long)]
    pub no_xmm_fast: bool,
    /// Stop a guest still running after this many seconds, or `off`
    /// [default: 10; off for a Linux kernel and --guest spin; with --guest
    /// soak at least the soak plus 30 s; with --guest chaos it bounds the
    /// whole run, default off].
    #[arg(long, value_name = "SECS|off", value_parser = parse_watchdog)]
    pub watchdog: Option<Duration>,
    /// Serve the VM's registers on a Unix socket at PATH (mode 0600; the
    /// path must not exist and is removed on exit), for `hvcall regs`.
    #[arg(long, value_name = "PATH")]
    pub api_socket: Option<PathBuf>,
    /// Serve a GDB remote stub on a Unix socket at PATH (mode 0600; the
    /// path must not exist and is removed on exit): `gdb -ex 'target
    /// remote PATH'`. VPs are threads; the VM stops while gdb is attached.
    #[arg(long, value_name = "PATH", value_parser = parse_gdb_path, conflicts_with = "gdb_port")]
    pub gdb: Option<PathBuf>,
    /// Serve the GDB remote stub on TCP 127.0.0.1:PORT instead, for remote
    /// debugging tools (`target remote :PORT`). A connection from a local
    /// process of another user is refused (its uid is looked up in
    /// /proc/net/tcp); prefer --gdb PATH.
    #[arg(long, value_name = "PORT")]
    pub gdb_port: Option<u16>,
    /// System-call filters: every thread of the run (main and watchdog,
    /// vCPUs, console writers, API and gdb servers, the inspector) under
    /// an allow-list of its own, installed before the guest's first
    /// instruction. `on`: a call outside the list ends hvcall with exit
    /// status 159 and a message naming the thread and the call; `log`: the
    /// kernel logs it and lets it through; `off`: no filter.
    #[arg(long, value_name = "on|off|log", default_value = "on")]
    pub seccomp: SeccompMode,
    /// Test hook: the named host thread (`host`, `api`) makes a system
    /// call outside its list once it is filtered.
    #[arg(long, hide = true, value_name = "THREAD")]
    pub seccomp_probe: Option<String>,
    /// How long the soak runs (--guest soak only) [default: 10].
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// Live inspection while the guest runs.
    #[command(flatten)]
    pub inspect: InspectArgs,
    /// `--guest chaos`: the generator's seed [default: 1].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// `--guest chaos`: how many calls, all VPs together [default: 10000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub calls: Option<u64>,
}

impl RunArgs {
    /// The VM configuration: the VMM's defaults with the given options;
    /// `linux` when the image is a Linux kernel (in-kernel irqchip, no
    /// watchdog unless asked for).
    pub fn config(&self, linux: bool) -> Result<VmConfig, String> {
        let mut config = VmConfig::default();
        if linux {
            config.irqchip = true;
            config.watchdog = Duration::MAX;
        }
        if self.guest == Guest::Spin && self.kernel.is_none() {
            // It runs until stopped, for tools to attach to.
            config.watchdog = Duration::MAX;
        }
        if self.trace_hypercalls {
            config.hypercall_trace = Some(Console::Stderr);
        }
        if let Some(cpus) = self.cpus {
            config.cpus = cpus;
        }
        if let Some(memory) = self.memory {
            config.memory_mib = memory;
        }
        if let Some(k) = self.max_reps_per_entry {
            config.max_reps_per_entry = k;
        }
        config.access_vp_registers = !self.no_access_vp_registers;
        // One VM per process: the thread running it is filtered too.
        config.seccomp = self.seccomp;
        config.seccomp_caller = true;
        config.xmm_fast = !self.no_xmm_fast;
        if let Some(watchdog) = self.watchdog {
            config.watchdog = watchdog;
        }
        if let Some(soak) = self.soak()? {
            soak::configure(&mut config, soak)?;
        }
        Ok(config)
    }

    /// How long the soak runs: `Some` for `--guest soak`, an error for
    /// `--seconds` with any other guest or a bad value.
    pub fn soak(&self) -> Result<Option<Duration>, String> {
        if self.guest != Guest::Soak || self.kernel.is_some() {
            return match self.seconds {
                Some(_) => Err("--seconds is only for --guest soak".into()),
                None => Ok(None),
            };
        }
        soak::duration(self.seconds.unwrap_or(soak::DEFAULT_SECONDS)).map(Some)
    }
}

/// Exit status when the VM could not be set up (no /dev/kvm, bad ELF, ...).
pub const SETUP_FAILED: u8 = 1;

/// `--watchdog SECS|off`: `off` (never), or any positive number of
/// seconds (see [`watchdog`]).
fn parse_watchdog(text: &str) -> Result<Duration, String> {
    if text == "off" {
        return Ok(Duration::MAX);
    }
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?}: expected seconds or `off`"))?;
    watchdog(secs)
}

/// `--watchdog SECS`: any positive number of seconds; below a nanosecond
/// it is one nanosecond, beyond what a `Duration` holds it is never.
fn watchdog(secs: f64) -> Result<Duration, String> {
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!(
            "--watchdog {secs}: expected a positive number of seconds"
        ));
    }
    Ok(Duration::try_from_secs_f64(secs)
        .unwrap_or(Duration::MAX)
        .max(Duration::from_nanos(1)))
}

/// `--memory MiB`: what the VMM can lay out
/// ([`MIN_RAM_MIB`]..=[`MAX_RAM_MIB`]).
fn parse_memory(text: &str) -> Result<u64, String> {
    let mib: u64 = text
        .parse()
        .map_err(|_| format!("{text:?}: expected a whole number of MiB"))?;
    if mib < MIN_RAM_MIB {
        return Err(format!("guest memory must be at least {MIN_RAM_MIB} MiB"));
    }
    if mib > MAX_RAM_MIB {
        return Err(format!(
            "guest memory must be at most {MAX_RAM_MIB} MiB ({} GiB)",
            MAX_RAM_MIB >> 10
        ));
    }
    Ok(mib)
}

/// `--gdb PATH`: a socket path; all digits is refused (the old `--gdb
/// PORT`, now `--gdb-port PORT`).
fn parse_gdb_path(text: &str) -> Result<PathBuf, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{text} looks like a port: --gdb takes a Unix socket path; \
             for TCP use --gdb-port {text} (for a file named {text}, write ./{text})"
        ));
    }
    Ok(PathBuf::from(text))
}

fn cmdline_help() -> String {
    format!(
        "The Linux kernel's command line (Linux kernels only). Default:\n  {DEFAULT_CMDLINE}\n\
         (serial console, reset on panic, and what this kind of host's instruction emulator needs)"
    )
}

/// Reads a kernel or initrd file: a regular file no larger than guest RAM
/// (no larger image could be loaded), read at most that far.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    // Non-blocking, so that opening a FIFO with no writer returns at once
    // instead of waiting for one; a regular file reads as usual.
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    // A device or FIFO (/dev/zero, a pipe) could feed bytes forever.
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "{} is larger than guest RAM ({limit} bytes); give the VM more memory (--memory)",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Writes a message line on stderr; a closed stderr is ignored.
pub fn say(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "hvcall run: {message}");
}

/// Runs `hvcall run`.
pub fn run(args: &RunArgs) -> ExitCode {
    match run_checked(args) {
        Ok(code) => code,
        Err(e) => {
            say(format_args!("{e}"));
            ExitCode::from(SETUP_FAILED)
        }
    }
}

fn run_checked(args: &RunArgs) -> Result<ExitCode, String> {
    if args.guest == Guest::Chaos {
        return run_chaos(args);
    }
    if args.seed.is_some() || args.calls.is_some() {
        return Err("--seed and --calls are options of --guest chaos".into());
    }
    // The memory limit comes from the options alone: read before the VM
    // exists, bounded by the RAM it will have.
    let ram_bytes = args
        .memory
        .unwrap_or(VmConfig::default().memory_mib)
        .saturating_mul(1 << 20);
    let kernel = match &args.kernel {
        Some(path) => Some(read_limited(path, ram_bytes)?),
        None => None,
    };
    let image = kernel.as_deref().unwrap_or_else(|| args.guest.elf());
    let linux = KernelKind::of(image).is_linux();
    if !linux && (args.cmdline.is_some() || args.initrd.is_some()) {
        return Err("--cmdline and --initrd need a Linux kernel (a bzImage or a vmlinux)".into());
    }
    let initrd = match &args.initrd {
        Some(path) => Some(read_limited(path, ram_bytes)?),
        None => None,
    };
    let config = args.config(linux)?;
    let sampler = args.inspect.sampler(&config)?;
    if sampler.is_some() && args.soak()?.is_some() {
        return Err(
            "--inspect cannot be combined with --guest soak, whose host thread \
                    is the inspector"
                .into(),
        );
    }
    if (args.api_socket.is_some() || args.gdb.is_some() || args.gdb_port.is_some())
        && args.soak()?.is_some()
    {
        return Err(
            "--api-socket, --gdb and --gdb-port cannot be combined with --guest soak".into(),
        );
    }
    let setup = |e: VmmError| format!("VM setup failed: {e}");
    let mut vm = Vm::new(&config).map_err(setup)?;
    if linux {
        let cmdline = args.cmdline.as_deref().unwrap_or(DEFAULT_CMDLINE);
        vm.load_linux(image, cmdline, initrd.as_deref())
            .map_err(setup)?;
    } else {
        vm.load_elf(image).map_err(setup)?;
    }
    if let Some(duration) = args.soak()? {
        let (exit, outcome) = soak::run(&mut vm, duration, args.seccomp).map_err(setup)?;
        report(&exit, &config);
        return Ok(ExitCode::from(outcome.finish(&exit)));
    }
    // Ctrl-C, a closed terminal or a kill end the VM cleanly, and the
    // sockets' paths are removed (crate::signals).
    signals::install()?;
    // Bound before the VM's threads exist (see `ApiSocket::bind`); removed
    // when this returns.
    let api = match &args.api_socket {
        Some(path) => Some(ApiSocket::bind(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let gdb = match (&args.gdb, args.gdb_port) {
        (Some(path), _) => Some(crate::gdb::Listener::unix(path).map_err(|e| e.to_string())?),
        (None, Some(port)) => Some(crate::gdb::Listener::tcp(port).map_err(|e| e.to_string())?),
        (None, None) => None,
    };
    if let Some(gdb) = &gdb {
        let at = gdb.target();
        say(format_args!(
            "gdb: waiting on {at} (gdb -ex 'target remote {at}')"
        ));
    }
    let start = Instant::now();
    let mode = args.seccomp;
    let probe = args.seccomp_probe.as_deref();
    let mut served = None;
    // The host's threads: the API and gdb servers, the sampler, and on the
    // inspector's own thread the watch for stop signals; each takes its
    // filter first.
    let exit = vm
        .run_inspected(|inspector| {
            std::thread::scope(|s| {
                let thread = |name: &str| std::thread::Builder::new().name(name.into());
                let api = api.as_ref().map(|api| {
                    thread("api").spawn_scoped(s, move || {
                        if filtered(inspector, ThreadRole::Api, mode, probe) {
                            api.serve(inspector, &signals::stop_requested);
                        }
                    })
                });
                let gdb = gdb.as_ref().map(|gdb| {
                    thread("gdb").spawn_scoped(s, move || {
                        filtered(inspector, ThreadRole::Gdb, mode, probe)
                            .then(|| crate::gdb::serve(gdb, inspector, &signals::stop_requested))
                    })
                });
                let sampler = sampler.as_ref().map(|sampler| {
                    thread("sampler").spawn_scoped(s, move || {
                        if filtered(inspector, ThreadRole::Host, mode, None) {
                            sampler.sample(inspector, start);
                        }
                    })
                });
                let failed = [
                    api.as_ref().and_then(|r| r.as_ref().err()),
                    gdb.as_ref().and_then(|r| r.as_ref().err()),
                    sampler.as_ref().and_then(|r| r.as_ref().err()),
                ];
                if let Some(e) = failed.into_iter().flatten().next() {
                    say(format_args!("cannot start a host thread: {e}"));
                    inspector.stop();
                }
                if filtered(inspector, ThreadRole::Host, mode, probe) {
                    signals::watch(inspector);
                }
                served = gdb
                    .and_then(Result::ok)
                    .and_then(|g| g.join().ok())
                    .flatten();
            })
        })
        .map_err(setup)?;
    if served == Some(crate::gdb::Served::Killed) && exit == VmExit::Stopped {
        say(format_args!(
            "stopped by gdb's kill request (exit status {})",
            exit.status()
        ));
    } else {
        report(&exit, &config);
    }
    Ok(ExitCode::from(exit.status()))
}

/// Puts the calling host thread under `role`'s filter; if that fails the
/// VM is stopped and false returned. With `probe` naming this role, then
/// makes a call outside the list (the `--seccomp-probe` test hook).
fn filtered(
    inspector: &Inspector<'_>,
    role: ThreadRole,
    mode: SeccompMode,
    probe: Option<&str>,
) -> bool {
    if let Err(e) = seccomp::install(role, mode) {
        say(format_args!("{e}; stopping the VM"));
        inspector.stop();
        return false;
    }
    if probe == Some(role.name()) {
        // SAFETY: getppid has no memory effects; no role's list allows it.
        unsafe { libc::getppid() };
    }
    true
}

/// `hvcall run --guest chaos`: the settings line, each disagreement,
/// progress once a second on a terminal, and `N calls, D disagreements`
/// on stdout; exit status 1 if D > 0.
fn run_chaos(args: &RunArgs) -> Result<ExitCode, String> {
    let refused = [
        (
            args.memory.is_some(),
            "--memory (chaos lays out its own 64 MiB)",
        ),
        (
            args.no_xmm_fast,
            "--no-xmm-fast (the chaos guest makes fast calls)",
        ),
        (args.inspect.inspect.is_some(), "--inspect"),
        (args.trace_hypercalls, "--trace-hypercalls"),
        (
            args.seconds.is_some(),
            "--seconds (an option of --guest soak)",
        ),
    ];
    if let Some((_, option)) = refused.iter().find(|(given, _)| *given) {
        return Err(format!("--guest chaos does not take {option}"));
    }
    let config = args.config(false)?;
    let mut settings = chaos::Settings::new(args.seed.unwrap_or(1), args.calls.unwrap_or(10_000));
    settings.vps = config.cpus;
    settings.max_reps_per_entry = config.max_reps_per_entry;
    settings.access_vp_registers = config.access_vp_registers;
    settings.seccomp = args.seccomp;
    // --watchdog bounds the whole run; each batch's VM keeps the
    // default guard against a hung guest.
    settings.time_limit = args.watchdog.filter(|&w| w != Duration::MAX);
    out(format_args!(
        "chaos: seed {}, {} calls on {} VPs, {} reps per entry{}",
        settings.seed,
        settings.calls,
        settings.vps,
        settings.max_reps_per_entry,
        if settings.access_vp_registers {
            ""
        } else {
            ", without AccessVpRegisters"
        }
    ));
    let mut printer = ChaosPrinter::new(settings.calls);
    let summary = match chaos::run(&settings, &mut printer) {
        Ok(summary) => summary,
        Err(e @ chaos::ChaosError::TimeLimit { .. }) => {
            printer.clear_progress();
            say(format_args!(
                "chaos: {e} (exit status {})",
                VmExit::Watchdog.status()
            ));
            return Ok(ExitCode::from(VmExit::Watchdog.status()));
        }
        Err(e) => return Err(format!("chaos: {e}")),
    };
    printer.clear_progress();
    let statuses: Vec<String> = summary
        .statuses
        .iter()
        .map(|(status, n)| format!("{status:#x}: {n}"))
        .collect();
    say(format_args!(
        "chaos: {} calls in {:.1} s ({:.0} calls/s), {} continued entries, expected statuses {}",
        summary.calls,
        summary.elapsed.as_secs_f64(),
        summary.calls as f64 / summary.elapsed.as_secs_f64().max(1e-9),
        summary.continuations,
        statuses.join(", ")
    ));
    out(format_args!(
        "{} calls, {} disagreements",
        summary.calls, summary.disagreements
    ));
    Ok(ExitCode::from(u8::from(summary.disagreements > 0)))
}

/// Writes a line on stdout; a closed stdout is ignored (the exit status
/// still tells).
fn out(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{message}");
}

/// Prints a chaos run as it goes.
struct ChaosPrinter {
    calls: u64,
    shown: u64,
    terminal: bool,
    last: Instant,
    progress_shown: bool,
}

impl ChaosPrinter {
    /// Disagreements printed in full; the rest are only counted.
    const SHOWN: u64 = 100;

    fn new(calls: u64) -> Self {
        Self {
            calls,
            shown: 0,
            terminal: std::io::stderr().is_terminal(),
            last: Instant::now(),
            progress_shown: false,
        }
    }

    fn clear_progress(&mut self) {
        if self.progress_shown {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
            self.progress_shown = false;
        }
    }
}

impl chaos::Report for ChaosPrinter {
    fn disagreement(&mut self, text: &str) {
        self.clear_progress();
        self.shown += 1;
        if self.shown <= Self::SHOWN {
            out(format_args!(
                "disagreement {}: {}",
                self.shown,
                text.trim_end()
            ));
        } else if self.shown == Self::SHOWN + 1 {
            out(format_args!(
                "(further disagreements are counted, not shown)"
            ));
        }
    }

    fn progress(&mut self, done: u64, disagreements: u64) {
        if self.terminal && self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            self.progress_shown = true;
            let _ = write!(
                std::io::stderr().lock(),
                "\r\x1b[Kchaos: {done}/{} calls, {disagreements} disagreements",
                self.calls
            );
        }
    }
}

/// Explains on stderr a VM end that is not the guest's own choice.
fn report(exit: &VmExit, config: &VmConfig) {
    match exit {
        VmExit::Exited(_) | VmExit::AllHalted => {}
        VmExit::Reset => say(format_args!(
            "the guest reset the machine (exit status {})",
            exit.status()
        )),
        VmExit::Fault { vp, reason } => say(format_args!(
            "guest fault on VP{vp}: {reason} (exit status {})",
            exit.status()
        )),
        VmExit::Stopped => say(format_args!(
            "stopped by {} (exit status {})",
            signals::received().map_or_else(|| "the host".to_string(), signals::name),
            exit.status()
        )),
        VmExit::Watchdog => say(format_args!(
            "watchdog: the guest was still running after {:?} and was stopped (exit status {}); \
             a guest that executes VMCALL or spins forever ends this way",
            config.watchdog,
            exit.status()
        )),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `hvcall run`'s options alone.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied())).map(|c| c.run)
    }

    #[test]
    fn no_options_give_the_demo_and_the_vmm_defaults() {
        let args = parse(&[]).expect("parses");
        assert_eq!(args.guest, Guest::Demo);
        let config = args.config(false).expect("valid");
        let default = VmConfig::default();
        assert_eq!(config.cpus, default.cpus);
        assert_eq!(config.memory_mib, default.memory_mib);
        assert_eq!(config.max_reps_per_entry, default.max_reps_per_entry);
        assert!(config.access_vp_registers && config.xmm_fast);
        assert_eq!(config.watchdog, default.watchdog);
    }

    #[test]
    fn every_option_reaches_the_vm_config() {
        let args = parse(&[
            "--guest",
            "conformance",
            "--cpus",
            "4",
            "--memory",
            "128",
            "--max-reps-per-entry",
            "1",
            "--no-access-vp-registers",
            "--no-xmm-fast",
            "--watchdog",
            "2.5",
        ])
        .expect("parses");
        assert_eq!(args.guest, Guest::Conformance);
        let config = args.config(false).expect("valid");
        assert_eq!(
            (config.cpus, config.memory_mib, config.max_reps_per_entry),
            (4, 128, 1)
        );
        assert!(!config.access_vp_registers && !config.xmm_fast);
        assert_eq!(config.watchdog, Duration::from_millis(2500));
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse(&["--cpus", "0"]).is_err());
        assert!(parse(&["--max-reps-per-entry", "0"]).is_err());
        assert!(parse(&["--guest", "nope"]).is_err());
        for (mib, says) in [
            ("0", "at least 2 MiB"),
            ("1", "at least 2 MiB"),
            ("65537", "at most 65536 MiB"),
            ("18446744073709551615", "at most 65536 MiB"),
            ("-1", "whole number of MiB"),
        ] {
            let arg = format!("--memory={mib}");
            let e = parse(&[&arg]).expect_err(mib).to_string();
            assert!(e.contains(says), "--memory {mib}: {e}");
        }
        assert!(parse(&["--memory", "2"]).is_ok());
        assert!(parse(&["--memory", "65536"]).is_ok());
        assert!(parse(&["--guest", "torn", "--kernel", "x.elf"]).is_err());
        for secs in ["0", "-1", "NaN", "-inf", "never", ""] {
            let arg = format!("--watchdog={secs}");
            assert!(parse(&[&arg]).is_err(), "--watchdog {secs:?} accepted");
        }
    }

    #[test]
    fn gdb_takes_a_socket_path_and_a_bare_port_points_to_gdb_port() {
        let args = parse(&["--guest", "spin", "--gdb", "/tmp/g.sock"]).expect("parses");
        assert_eq!(args.gdb, Some(PathBuf::from("/tmp/g.sock")));
        let args = parse(&["--gdb", "./1234"]).expect("a path");
        assert_eq!(args.gdb, Some(PathBuf::from("./1234")));
        let err = parse(&["--gdb", "1234"]).expect_err("refused").to_string();
        assert!(err.contains("--gdb-port 1234"), "{err}");
        let args = parse(&["--gdb-port", "1234"]).expect("parses");
        assert_eq!((args.gdb, args.gdb_port), (None, Some(1234)));
        assert!(parse(&["--gdb", "/tmp/g.sock", "--gdb-port", "1234"]).is_err());
    }

    #[test]
    fn seconds_go_with_the_soak_guest_only() {
        let soak = |args: &[&str]| parse(args).expect("parses").soak();
        assert_eq!(
            soak(&["--guest", "soak"]),
            Ok(Some(Duration::from_secs(10)))
        );
        assert_eq!(
            soak(&["--guest", "soak", "--seconds", "2.5"]),
            Ok(Some(Duration::from_millis(2500)))
        );
        assert_eq!(soak(&["--guest", "torn"]), Ok(None));
        assert!(soak(&["--guest", "torn", "--seconds", "5"]).is_err());
        assert!(soak(&["--seconds", "5"]).is_err(), "the demo");
        assert!(soak(&["--guest", "soak", "--seconds", "0"]).is_err());
        let config = parse(&["--guest", "soak", "--seconds", "60", "--watchdog", "5"])
            .expect("parses")
            .config(false)
            .expect("valid");
        assert_eq!(
            config.watchdog,
            Duration::from_secs(90),
            "not before the end"
        );
    }

    #[test]
    fn tiny_and_huge_watchdogs_are_accepted() {
        let watchdog = |secs: &str| {
            let arg = format!("--watchdog={secs}");
            parse(&[&arg])
                .expect("parses")
                .config(false)
                .expect("valid")
                .watchdog
        };
        assert_eq!(watchdog("1e-10"), Duration::from_nanos(1));
        assert_eq!(watchdog("18446744073709551615"), Duration::MAX);
        assert_eq!(watchdog("inf"), Duration::MAX);
        assert_eq!(watchdog("0.25"), Duration::from_millis(250));
        assert_eq!(watchdog("off"), Duration::MAX);
        assert!(parse(&["--watchdog", "never"]).is_err());
        assert!(parse(&["--watchdog", "0"]).is_err());
        let spin = parse(&["--guest", "spin"]).expect("parses");
        assert_eq!(spin.config(false).expect("valid").watchdog, Duration::MAX);
    }

    #[test]
    fn every_built_in_guest_is_an_elf() {
        for guest in [
            Guest::Demo,
            Guest::Conformance,
            Guest::Torn,
            Guest::TornWrite,
            Guest::Spin,
            Guest::Mutual,
            Guest::Groups,
            Guest::Vmcall,
            Guest::Chaos,
            Guest::Soak,
        ] {
            assert_eq!(&guest.elf()[..4], b"\x7fELF", "{guest:?}");
        }
    }
}
