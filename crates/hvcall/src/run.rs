//! `hvcall run`: boots a guest (a built-in one or any ELF per the boot
//! protocol) in the KVM VMM and turns how the VM ended into the process
//! exit status.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hvcall_vmm::{VmConfig, VmExit};

use crate::guests::Guest;
use crate::inspect::InspectArgs;

/// Options of `hvcall run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Built-in guest to run.
    #[arg(long, value_enum, default_value = "demo")]
    pub guest: Guest,
    /// Run this static ELF64 x86-64 image instead of a built-in guest.
    #[arg(long, value_name = "FILE", conflicts_with = "guest")]
    pub kernel: Option<PathBuf>,
    /// Number of virtual processors [default: 2].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub cpus: Option<u32>,
    /// Guest RAM in MiB [default: 64].
    #[arg(long, value_name = "MiB")]
    pub memory: Option<u64>,
    /// Work budget of one hypercall entry, in elements (behaviour.md §2);
    /// smaller values make rep calls continue more often.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_reps_per_entry: Option<u16>,
    /// Withhold the AccessVpRegisters privilege (behaviour.md step 6e).
    #[arg(long)]
    pub no_access_vp_registers: bool,
    /// Withhold both XMM fast hypercall CPUID bits (behaviour.md step 5b).
    #[arg(long)]
    pub no_xmm_fast: bool,
    /// Stop a guest still running after this many seconds [default: 10].
    #[arg(long, value_name = "SECS")]
    pub watchdog: Option<f64>,
    /// Live inspection while the guest runs.
    #[command(flatten)]
    pub inspect: InspectArgs,
}

impl RunArgs {
    /// The VM configuration: the VMM's defaults with the given options.
    pub fn config(&self) -> Result<VmConfig, String> {
        let mut config = VmConfig::default();
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
        config.xmm_fast = !self.no_xmm_fast;
        if let Some(secs) = self.watchdog {
            config.watchdog = Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    format!("--watchdog {secs}: expected a positive number of seconds")
                })?;
        }
        Ok(config)
    }
}

/// Exit status when the VM could not be set up (no /dev/kvm, bad ELF, ...).
pub const SETUP_FAILED: u8 = 1;

/// Runs `hvcall run`.
pub fn run(args: &RunArgs) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hvcall run: {e}");
            return ExitCode::from(SETUP_FAILED);
        }
    };
    let sampler = match args.inspect.sampler(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hvcall run: {e}");
            return ExitCode::from(SETUP_FAILED);
        }
    };
    let kernel;
    let elf = match &args.kernel {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => {
                kernel = bytes;
                &kernel[..]
            }
            Err(e) => {
                eprintln!("hvcall run: cannot read {}: {e}", path.display());
                return ExitCode::from(SETUP_FAILED);
            }
        },
        None => args.guest.elf(),
    };
    let result = match &sampler {
        Some(sampler) => sampler.run_elf(&config, elf),
        None => hvcall_vmm::run_elf(&config, elf),
    };
    match result {
        Ok(exit) => {
            report(&exit, &config);
            ExitCode::from(exit.status())
        }
        Err(e) => {
            eprintln!("hvcall run: VM setup failed: {e}");
            ExitCode::from(SETUP_FAILED)
        }
    }
}

/// Explains on stderr a VM end that is not the guest's own choice.
fn report(exit: &VmExit, config: &VmConfig) {
    match exit {
        VmExit::Exited(_) | VmExit::AllHalted => {}
        VmExit::Fault { vp, reason } => {
            eprintln!("hvcall run: guest fault on VP{vp}: {reason} (exit status {})", exit.status());
        }
        VmExit::Watchdog => eprintln!(
            "hvcall run: watchdog: the guest was still running after {:?} and was stopped (exit status {}); \
             a guest that executes VMCALL or spins forever ends this way",
            config.watchdog,
            exit.status()
        ),
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
        let config = args.config().expect("valid");
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
        let config = args.config().expect("valid");
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
        assert!(parse(&["--guest", "torn", "--kernel", "x.elf"]).is_err());
        for secs in ["0", "-1", "NaN", "inf"] {
            let arg = format!("--watchdog={secs}");
            let args = parse(&[&arg]).expect("parses as f64");
            assert!(args.config().is_err(), "--watchdog {secs} accepted");
        }
    }

    #[test]
    fn every_built_in_guest_is_an_elf() {
        for guest in [
            Guest::Demo,
            Guest::Conformance,
            Guest::Torn,
            Guest::Mutual,
            Guest::Groups,
            Guest::Vmcall,
        ] {
            assert_eq!(&guest.elf()[..4], b"\x7fELF", "{guest:?}");
        }
    }
}
