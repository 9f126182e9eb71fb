//! `hvcall run --inspect VP --names a,b,... [--interval-ms N]`: samples
//! registers of one VP while the guest runs, as the root partition through
//! the same HvCallGetVpRegisters path a guest uses
//! ([`hvcall_vmm::Inspector`]), and prints one line per sample to stderr:
//!
//! ```text
//! inspect +12.3ms vp1 rbx=0x1f3a r12=0x1f39
//! ```
//!
//! Each line is one consistent snapshot of the VP (up to 256 names). The
//! guest's own output (stdout) and the exit status are unchanged.

use std::io::Write;
use std::time::{Duration, Instant};

use hvcall_abi::name::{self, Arch, RegisterEntry};
use hvcall_abi::{HvRegisterName, HvRegisterValue};
use hvcall_vmm::{Inspector, ReadError, VmConfig};

/// The default time between samples.
const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// The live-inspection options of `hvcall run`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// While the guest runs, sample registers of this VP (see --names) and
    /// print one line per sample to stderr.
    #[arg(long, value_name = "VP", requires = "names")]
    pub inspect: Option<u32>,
    /// Registers to sample with --inspect, comma-separated short or TLFS
    /// names (`hvcall registers` lists them), e.g. rip,rbx,HvX64RegisterDr0.
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        num_args = 1..,
        requires = "inspect"
    )]
    pub names: Vec<String>,
    /// Milliseconds between samples with --inspect [default: 100].
    #[arg(long, value_name = "N", requires = "inspect",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub interval_ms: Option<u64>,
}

/// What to sample: a VP, its registers, how often.
#[derive(Debug, PartialEq, Eq)]
pub struct Sampler {
    vp: u32,
    names: Vec<&'static RegisterEntry>,
    interval: Duration,
}

impl InspectArgs {
    /// The sampler these options ask for (`None` without `--inspect`),
    /// checked against the VM's configuration: a VP it has and register
    /// names x64 knows.
    pub fn sampler(&self, config: &VmConfig) -> Result<Option<Sampler>, String> {
        let Some(vp) = self.inspect else {
            return Ok(None);
        };
        if vp >= config.cpus {
            return Err(format!(
                "--inspect {vp}: the VM has {} VPs (0..={})",
                config.cpus,
                config.cpus - 1
            ));
        }
        let names = self
            .names
            .iter()
            .map(|text| {
                name::lookup(Arch::X64, text.trim()).ok_or_else(|| {
                    format!(
                        "--names: unknown x64 register name {text:?} \
                         (`hvcall registers` lists the short and TLFS names)"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if names.is_empty() {
            return Err("--names: no register names given".into());
        }
        let interval = self
            .interval_ms
            .map_or(DEFAULT_INTERVAL, Duration::from_millis);
        Ok(Some(Sampler {
            vp,
            names,
            interval,
        }))
    }
}

impl Sampler {
    /// Samples every interval until the VM ends (or a read fails, which
    /// is reported once); times are from `start`.
    pub fn sample(&self, inspector: &Inspector<'_>, start: Instant) {
        let numbers: Vec<HvRegisterName> = self.names.iter().map(|e| e.number).collect();
        loop {
            match inspector.get_vp_registers(self.vp, &numbers) {
                Ok(values) => {
                    // A closed stderr must not stop the sampling thread.
                    let line = self.line(start.elapsed(), &values);
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
                Err(ReadError::Ended) => return,
                Err(ReadError::Call { status, index }) => {
                    let name = self.names.get(index).map_or("?", |n| n.short);
                    crate::run::say(format_args!(
                        "inspect vp{}: {status} reading {name}; sampling stopped",
                        self.vp
                    ));
                    return;
                }
                Err(e) => {
                    crate::run::say(format_args!("inspect vp{}: {e}; sampling stopped", self.vp));
                    return;
                }
            }
            if inspector.wait_end(self.interval) {
                return;
            }
        }
    }

    /// One sample's line: `inspect +12.3ms vp1 rip=0x... rbx=0x...`.
    fn line(&self, elapsed: Duration, values: &[HvRegisterValue]) -> String {
        let mut line = format!(
            "inspect +{:.1}ms vp{}",
            elapsed.as_secs_f64() * 1000.0,
            self.vp
        );
        for (entry, value) in self.names.iter().zip(values) {
            line.push_str(&format!(" {}={:#x}", entry.short, value.as_u128()));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use hvcall_abi::name::x64;

    use super::*;

    /// The inspection options alone.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        inspect: InspectArgs,
    }

    fn sampler(args: &[&str]) -> Result<Option<Sampler>, String> {
        let cli = Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.inspect.sampler(&VmConfig::default())
    }

    #[test]
    fn short_and_tlfs_names_resolve_in_order() {
        let s = sampler(&[
            "--inspect",
            "1",
            "--names",
            "rip,HvX64RegisterRbx,DR0",
            "--interval-ms",
            "5",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.vp, 1);
        let numbers: Vec<_> = s.names.iter().map(|e| e.number).collect();
        assert_eq!(numbers, [x64::RIP, x64::RBX, x64::DR0]);
        assert_eq!(s.interval, Duration::from_millis(5));
        let s = sampler(&["--inspect", "0", "--names", "r12"])
            .unwrap()
            .unwrap();
        assert_eq!(s.interval, DEFAULT_INTERVAL);
    }

    #[test]
    fn no_inspect_means_no_sampler() {
        assert_eq!(sampler(&[]), Ok(None));
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        let err = sampler(&["--inspect", "1", "--names", "rip,bogus"]).unwrap_err();
        assert!(err.contains("unknown x64 register name \"bogus\""), "{err}");
        let err = sampler(&["--inspect", "2", "--names", "rip"]).unwrap_err();
        assert!(err.contains("the VM has 2 VPs"), "{err}");
        assert!(sampler(&["--inspect", "1"]).is_err(), "no names");
        assert!(sampler(&["--names", "rip"]).is_err(), "names without a VP");
        assert!(sampler(&["--inspect", "1", "--names", "rip", "--interval-ms", "0"]).is_err());
    }

    #[test]
    fn a_line_names_each_value() {
        let s = sampler(&["--inspect", "1", "--names", "rip,rbx"])
            .unwrap()
            .unwrap();
        let values = [
            HvRegisterValue::from(0x10_0000u128),
            HvRegisterValue::from(42u128),
        ];
        assert_eq!(
            s.line(Duration::from_micros(12_345), &values),
            "inspect +12.3ms vp1 rip=0x100000 rbx=0x2a"
        );
    }
}
