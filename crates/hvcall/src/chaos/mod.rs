//! `hvcall run --guest chaos`: a hostile guest checked against the
//! reference model. Seeded random HvCallGetVpRegisters calls ([`cases`]:
//! reserved and nested control bits, rep fields, both forms, GPAs that
//! are misaligned, beyond RAM, on the hypercall page, crossing a page,
//! overlapping, on the guest's boot tables and stack, random names, VP
//! indexes, partition ids and VTL bytes) run on every VP at once through
//! the real hypercall page of the KVM VMM (`guests/chaos`), and each is
//! replayed on the model ([`oracle`]); [`compare`] names every
//! disagreement in status, reps completed, output bytes and the caller's
//! registers.
//!
//! The calls go in batches of at most [`cases::BATCH`]: each batch is one
//! fresh VM that runs its cases and ends, so a million calls need neither
//! a million records in RAM nor a host hook inside the run.
//!
//! ```no_run
//! use hvcall::chaos::{self, Report, Settings};
//!
//! struct Quiet;
//! impl Report for Quiet {
//!     fn disagreement(&mut self, _text: &str) {}
//!     fn progress(&mut self, _done: u64, _disagreements: u64) {}
//! }
//! let summary = chaos::run(&Settings::new(1, 10_000), &mut Quiet).unwrap();
//! assert_eq!(summary.disagreements, 0);
//! ```

pub mod cases;
pub mod compare;
pub mod oracle;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hvcall_dispatch::DispatchConfig;
use hvcall_vmm::boot;
use hvcall_vmm::memory::RamError;
use hvcall_vmm::seccomp::SeccompMode;
use hvcall_vmm::{Console, Vm, VmConfig, VmExit, VmmError};

use cases::{Batch, Case, Rng, BOOT_TABLES, COUNTS_OFFSET, RECORD_SIZE, TABLE_GPA};
use oracle::{Effect, Oracle};

/// The chaos guest, built by `build.rs` from `guests/chaos`.
pub const GUEST: &[u8] = include_bytes!(env!("HVCALL_GUEST_CHAOS"));

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// Seed of the generator: the same seed, calls and VPs give the same
    /// calls.
    pub seed: u64,
    /// Number of calls, all VPs together.
    pub calls: u64,
    /// Number of VPs, all calling at once.
    pub vps: u32,
    /// The VMM's work budget per entry (docs/contract.md §2).
    pub max_reps_per_entry: u16,
    /// Whether the VM has AccessVpRegisters (docs/contract.md step 6e).
    pub access_vp_registers: bool,
    /// How long one batch's VM may run before it is stopped (a guard
    /// against a hung guest).
    pub watchdog: Duration,
    /// How long the whole run may take (`hvcall run --guest chaos
    /// --watchdog S`); `None`: no limit. Each batch's VM gets at most what
    /// is left, and a run that reaches the limit ends with
    /// [`ChaosError::TimeLimit`].
    pub time_limit: Option<Duration>,
    /// seccomp filters for each batch VM's vCPU threads (the thread that
    /// runs the batches starts one VM after another and is not filtered).
    pub seccomp: SeccompMode,
}

impl Settings {
    /// `calls` calls from `seed` on the VMM's default VM (2 VPs, default
    /// work budget, every privilege, default watchdog per batch).
    pub fn new(seed: u64, calls: u64) -> Self {
        let vm = VmConfig::default();
        Self {
            seed,
            calls,
            vps: vm.cpus,
            max_reps_per_entry: vm.max_reps_per_entry,
            access_vp_registers: vm.access_vp_registers,
            watchdog: vm.watchdog,
            time_limit: None,
            seccomp: vm.seccomp,
        }
    }
}

/// How a run went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Calls made and compared.
    pub calls: u64,
    /// Calls whose outcome differs from the model's.
    pub disagreements: u64,
    /// Hypercall entries the VMM continued (docs/contract.md §2).
    pub continuations: u64,
    /// Calls per expected status.
    pub statuses: BTreeMap<u16, u64>,
    /// Time spent, VMs and model together.
    pub elapsed: Duration,
}

/// Where a run reports as it goes.
pub trait Report {
    /// One disagreement, described on several lines.
    fn disagreement(&mut self, text: &str);
    /// After each batch: calls compared and disagreements so far.
    fn progress(&mut self, done: u64, disagreements: u64);
}

/// Why a run could not compare its calls.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The VM could not be set up or run.
    #[error("VM: {0}")]
    Vmm(#[from] VmmError),
    /// The case table could not be written or read back.
    #[error("guest RAM: {0}")]
    Ram(#[from] RamError),
    /// The guest did not finish its table.
    #[error("the chaos guest ended with {exit:?} instead of exiting 0; its console:\n{console}")]
    Guest {
        /// How the VM ended.
        exit: VmExit,
        /// What the guest printed.
        console: String,
    },
    /// The run's time limit ([`Settings::time_limit`]) passed.
    #[error("stopped after {limit:?} (the run's time limit), {calls} calls compared")]
    TimeLimit {
        /// The limit.
        limit: Duration,
        /// Calls compared before it.
        calls: u64,
    },
    /// More VPs than the table holds.
    #[error("{0} VPs: the chaos guest's table holds at most {max}", max = cases::MAX_VPS)]
    TooManyVps(u32),
}

/// Runs `settings.calls` calls in batches, comparing each with the model;
/// disagreements and progress go to `report`.
pub fn run(settings: &Settings, report: &mut dyn Report) -> Result<Summary, ChaosError> {
    if u64::from(settings.vps) > cases::MAX_VPS || settings.vps == 0 {
        return Err(ChaosError::TooManyVps(settings.vps));
    }
    let started = Instant::now();
    let mut rng = Rng::new(settings.seed);
    let mut oracle = Oracle::new(
        settings.vps,
        DispatchConfig::default(),
        settings.access_vp_registers,
    );
    let mut summary = Summary::default();
    let deadline = settings
        .time_limit
        .map(|limit| (limit, started.checked_add(limit)));
    while summary.calls < settings.calls {
        let mut batch_settings = settings.clone();
        if let Some((limit, end)) = deadline {
            let time_left = end.map_or(Duration::MAX, |end| {
                end.saturating_duration_since(Instant::now())
            });
            if time_left.is_zero() {
                return Err(ChaosError::TimeLimit {
                    limit,
                    calls: summary.calls,
                });
            }
            batch_settings.watchdog = settings.watchdog.min(time_left);
        }
        let left = settings.calls - summary.calls;
        let batch = Batch::generate(
            &mut rng,
            settings.vps,
            usize::try_from(left).unwrap_or(usize::MAX),
        );
        let executed = match execute(&batch, &batch_settings) {
            Err(ChaosError::Guest {
                exit: VmExit::Watchdog,
                ..
            }) if batch_settings.watchdog < settings.watchdog => {
                // Stopped by what was left of the run's time, not by the
                // batch's own guard.
                let limit = deadline.map_or(Duration::ZERO, |(limit, _)| limit);
                return Err(ChaosError::TimeLimit {
                    limit,
                    calls: summary.calls,
                });
            }
            other => other?,
        };
        oracle.set_ram(BOOT_TABLES.0, &executed.boot_tables);
        for (case, got) in batch.cases.iter().zip(&executed.effects) {
            let want = oracle.replay(case);
            *summary
                .statuses
                .entry((want.result & 0xFFFF) as u16)
                .or_default() += 1;
            if let Some(why) = compare::compare(case, &want, got) {
                summary.disagreements += 1;
                report.disagreement(&compare::describe(case, &want, got, &why));
            }
        }
        summary.calls += batch.cases.len() as u64;
        summary.continuations += executed.continuations;
        report.progress(summary.calls, summary.disagreements);
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// What one batch left behind in the VM.
#[derive(Clone, Debug)]
pub struct Executed {
    /// Per case, in the batch's order.
    pub effects: Vec<Effect>,
    /// Continued entries.
    pub continuations: u64,
    /// The boot tables' bytes ([`BOOT_TABLES`]), for the model's RAM.
    pub boot_tables: Vec<u8>,
}

/// Runs one batch in a fresh VM and reads back what each case left.
/// Fails if the guest does not finish, or if it changed its boot tables
/// (some case wrote where it must not have).
pub fn execute(batch: &Batch, settings: &Settings) -> Result<Executed, ChaosError> {
    let (console, output) = Console::buffer();
    let config = VmConfig {
        cpus: batch.vps,
        memory_mib: cases::RAM_MIB,
        max_reps_per_entry: settings.max_reps_per_entry,
        access_vp_registers: settings.access_vp_registers,
        watchdog: settings.watchdog,
        seccomp: settings.seccomp,
        console,
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&config)?;
    vm.load_elf(GUEST)?;
    let ram = vm.ram();
    let header = [
        cases::MAGIC,
        batch.stride as u64,
        cases::HYPERCALL_PAGE,
        u64::from(batch.vps),
    ];
    ram.write(TABLE_GPA, &words(&header))?;
    let counts: Vec<u64> = (0..batch.vps).map(|v| batch.count(v) as u64).collect();
    ram.write(TABLE_GPA + COUNTS_OFFSET, &words(&counts))?;
    for case in &batch.cases {
        let mut record = vec![case.control, 0];
        record.extend(case.regs.iter().flatten());
        ram.write(cases::record_gpa(case.record), &words(&record))?;
        ram.write(case.window, &case.window_bytes)?;
    }
    let boot_tables = settle_page_tables(ram)?;

    let exit = vm.run()?;
    if exit != VmExit::Exited(0) {
        let console =
            String::from_utf8_lossy(&output.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
        return Err(ChaosError::Guest { exit, console });
    }
    let ram = vm.ram();
    let mut after = vec![0; boot_tables.len()];
    ram.read(BOOT_TABLES.0, &mut after)?;
    if after != boot_tables {
        return Err(ChaosError::Guest {
            exit,
            console: "(the boot tables changed during the run: a call wrote into them)".into(),
        });
    }
    let effects = batch
        .cases
        .iter()
        .map(|case| read_effect(ram, case))
        .collect::<Result<_, RamError>>()?;
    Ok(Executed {
        effects,
        continuations: vm.stats().continuations,
        boot_tables,
    })
}

/// Sets the accessed and dirty bits of every present entry of the boot
/// page tables before the run, as the processor would on first use, so
/// that the boot tables do not change while the guest runs (a case may
/// read them as its input, and any change after the run is a stray
/// write); returns the boot tables' bytes.
fn settle_page_tables(ram: &hvcall_vmm::memory::GuestRam) -> Result<Vec<u8>, RamError> {
    const PRESENT: u64 = 1;
    const ACCESSED_DIRTY: u64 = 3 << 5;
    let mut tables = vec![0; (BOOT_TABLES.1 - BOOT_TABLES.0) as usize];
    ram.read(BOOT_TABLES.0, &mut tables)?;
    let first = (boot::PML4_ADDRESS - BOOT_TABLES.0) as usize;
    for entry in tables[first..].chunks_exact_mut(8) {
        let mut word = [0; 8];
        word.copy_from_slice(entry);
        let value = u64::from_le_bytes(word);
        if value & PRESENT != 0 {
            entry.copy_from_slice(&(value | ACCESSED_DIRTY).to_le_bytes());
        }
    }
    ram.write(BOOT_TABLES.0, &tables)?;
    Ok(tables)
}

fn read_effect(ram: &hvcall_vmm::memory::GuestRam, case: &Case) -> Result<Effect, RamError> {
    let mut record = [0u8; RECORD_SIZE as usize];
    ram.read(cases::record_gpa(case.record), &mut record)?;
    let w = |i: usize| u64::from_le_bytes(record[8 * i..8 * i + 8].try_into().unwrap_or_default());
    let mut regs = [[0u64; 2]; 7];
    for (p, pair) in regs.iter_mut().enumerate() {
        *pair = [w(2 + 2 * p), w(3 + 2 * p)];
    }
    let mut window = vec![0u8; case.window_bytes.len()];
    ram.read(case.window, &mut window)?;
    Ok(Effect {
        result: w(1),
        regs,
        window,
    })
}

fn words(w: &[u64]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::cases::{guard, Batch, Rng, BATCH};
    use super::*;

    fn replayed(seed: u64, vps: u32, calls: usize) -> (Batch, Vec<Effect>) {
        let batch = Batch::generate(&mut Rng::new(seed), vps, calls);
        let mut oracle = Oracle::new(vps, DispatchConfig::default(), true);
        let effects = batch.cases.iter().map(|c| oracle.replay(c)).collect();
        (batch, effects)
    }

    #[test]
    fn batches_are_deterministic_and_split_calls_over_the_vps() {
        let a = Batch::generate(&mut Rng::new(7), 3, 1000);
        let b = Batch::generate(&mut Rng::new(7), 3, 1000);
        let controls = |x: &Batch| x.cases.iter().map(|c| c.control).collect::<Vec<_>>();
        assert_eq!(controls(&a), controls(&b));
        assert_ne!(
            controls(&a),
            controls(&Batch::generate(&mut Rng::new(8), 3, 1000))
        );
        assert_eq!([a.count(0), a.count(1), a.count(2)], [334, 333, 333]);
        assert_eq!(a.stride, 334);
        let mut records: Vec<usize> = a.cases.iter().map(|c| c.record).collect();
        records.dedup();
        assert_eq!(records.len(), 1000, "every case has a record of its own");
        assert!(a.cases.iter().all(|c| c.record / a.stride == c.vp as usize));
        assert_eq!(
            Batch::generate(&mut Rng::new(1), 2, 1 << 20).cases.len(),
            BATCH
        );
    }

    /// Guards against a generator that drifts into testing nothing: the
    /// expected outcomes include successes, each refusal of §1, failures
    /// in the middle of a list, output in memory and in registers, calls
    /// on every VP and aimed at other VPs.
    #[test]
    fn generated_calls_reach_every_outcome_of_section_1() {
        let (batch, expected) = replayed(0x4856_4341_4C4C_0050, 2, BATCH);
        let mut statuses = BTreeMap::new();
        for e in &expected {
            *statuses.entry(e.result & 0xFFFF).or_insert(0) += 1;
        }
        for status in [0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0xD, 0xE] {
            assert!(
                statuses.contains_key(&status),
                "no {status:#x}: {statuses:x?}"
            );
        }
        let mid_list = expected
            .iter()
            .filter(|e| e.result & 0xFFFF == 0x5 && (e.result >> 32) & 0xFFF > 0)
            .count();
        assert!(mid_list > 0, "no call failed in the middle of its list");
        let wrote_memory = batch
            .cases
            .iter()
            .zip(&expected)
            .filter(|(c, e)| e.window != c.window_bytes)
            .count();
        let wrote_registers = batch
            .cases
            .iter()
            .zip(&expected)
            .filter(|(c, e)| e.regs != c.regs)
            .count();
        assert!(wrote_memory > 100 && wrote_registers > 100);
        let on_boot_tables = batch
            .cases
            .iter()
            .filter(|c| !c.fast() && c.gpas().0 < BOOT_TABLES.1)
            .count();
        assert!(on_boot_tables > 0, "no input on the boot tables");
        assert!(batch.cases.iter().any(|c| c.vp == 1));
    }

    /// The comparison is not blind: a wrong result word, an output slot
    /// left untouched, a stray byte and a changed register pair are each
    /// reported.
    #[test]
    fn compare_reports_each_kind_of_difference() {
        let (batch, expected) = replayed(11, 1, 400);
        let pick = |f: &dyn Fn(&Case, &Effect) -> bool| {
            batch
                .cases
                .iter()
                .zip(&expected)
                .find(|(c, e)| f(c, e))
                .expect("such a case")
        };
        let (case, want) = pick(&|_, _| true);
        let mut got = want.clone();
        assert_eq!(compare::compare(case, want, &got), None);
        got.result ^= 1 << 32;
        assert!(compare::compare(case, want, &got).is_some());

        // A successful memory-form call whose first slot is a wildcard:
        // leaving the caller's guard bytes there is a miss.
        let (case, want) = pick(&|c, e| {
            let at = (c.gpas().1.wrapping_sub(c.window)) as usize;
            !c.fast()
                && e.result & 0xFFFF == 0
                && c.rep_count() > 0
                && c.control >> 48 == 0
                && at + 16 <= e.window.len()
                && oracle::is_wildcard([
                    u64::from_le_bytes(e.window[at..at + 8].try_into().unwrap()),
                    u64::from_le_bytes(e.window[at + 8..at + 16].try_into().unwrap()),
                ])
                && c.window_bytes[at..at + 16].iter().all(|&b| b == guard(0))
        });
        let at = (case.gpas().1 - case.window) as usize;
        let mut got = want.clone();
        got.window[at..at + 16].fill(guard(0));
        let why = compare::compare(case, want, &got).expect("an unwritten slot");
        assert!(why.what.contains("was not written"), "{}", why.what);
        assert!(compare::describe(case, want, &got, &why).contains("VP0 record"));

        let mut got = want.clone();
        got.window[0] ^= 0xFF;
        assert!(compare::compare(case, want, &got).is_some(), "stray byte");
        let mut got = want.clone();
        got.regs[6][1] ^= 1;
        assert!(compare::compare(case, want, &got).is_some(), "XMM5");
    }
}
