//! The `hvcall` command line: parses the arguments, sets up logging and
//! hands over to one module per subcommand, whose return value is the
//! process exit status.
//!
//! - `hvcall registers [--arch x64|arm64] [--json]` ([`registers`]): every
//!   TLFS register name of one architecture with its number.
//! - `hvcall run [--guest NAME | --kernel FILE] ...` ([`run`]): boots a
//!   guest in the KVM VMM; the built-in guests are in [`guests`];
//!   `--inspect VP --names ...` samples a running VP's registers
//!   ([`inspect`]); `--guest soak --seconds S` is watched by [`soak`];
//!   `--guest chaos` runs `hvcall::chaos` (the library half).
//! - `hvcall bench [--json] [--quick]` ([`bench`]): what a hypercall costs
//!   in the VMM, as ratios to a floor measured in the same run.
//! - `hvcall regs --api-socket PATH ...` ([`regs`]): reads and writes a
//!   running VM's registers through its API socket (`hvcall::api`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod bench;
mod gdb;
mod guests;
mod inspect;
mod registers;
mod regs;
mod run;
mod signals;
mod soak;

/// Hyper-V hypercalls (HvCallGetVpRegisters, HvCallSetVpRegisters) on KVM,
/// end to end.
#[derive(Debug, Parser)]
#[command(name = "hvcall", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// List every HV_REGISTER_NAME of one architecture with its number.
    Registers(registers::RegistersArgs),
    /// Boot a guest (default: the demo) in the KVM VMM.
    Run(Box<run::RunArgs>),
    /// Measure what hypercalls cost in the VMM (ratios to a null call).
    Bench(bench::BenchArgs),
    /// Read or write registers of a running VM through its API socket.
    Regs(regs::RegsArgs),
}

fn main() -> ExitCode {
    // `hvcall bench` reports the time from here to the guest's entry.
    let started = Instant::now();
    let cli = Cli::parse();
    // The chaos guest and the bench's floor call unimplemented codes on
    // purpose: the VMM's warning for each would bury their reports.
    let chaos = matches!(&cli.command, Command::Run(args) if args.guest == guests::Guest::Chaos);
    let bench = matches!(&cli.command, Command::Bench(_));
    init_logging(if chaos || bench {
        "warn,hvcall_vmm::vm=error"
    } else {
        "warn"
    });
    match cli.command {
        Command::Registers(args) => registers::main(args),
        Command::Run(args) => run::run(&args),
        Command::Bench(args) => bench::main(&args, started),
        Command::Regs(args) => regs::main(&args),
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: `default`).
fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only for a terminal; tracing-subscriber drops lines it cannot
    // write, so a closed or full stderr never panics.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn registers_defaults_to_x64_text() {
        let cli = Cli::try_parse_from(["hvcall", "registers"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Registers(ref args) if args.arch == registers::ArchArg::X64 && !args.json
        ));
    }
}
