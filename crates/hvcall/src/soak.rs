//! `hvcall run --guest soak --cpus N --seconds S`: the host half of the
//! soak. The guest (`guests/soak`) has every VP
//! read every other VP through HvCallGetVpRegisters, memory and XMM fast
//! forms, while each keeps an invariant across KERNEL_GS_BASE, DR0, XMM15
//! and R12 (four KVM register groups) and counts reads and torn snapshots.
//!
//! The run uses [`Vm::run_inspected`]: the inspector's host thread polls
//! the per-VP progress counters in guest RAM every [`POLL`] and counts a
//! stall when a VP's read counter has not moved for [`STALL`] (each VP
//! once per episode: it counts again only after it moved). After S
//! seconds it writes the stop flag; the VPs finish their step, VP0 waits
//! for all and ends the VM. The host then reads the totals from RAM and
//! prints, as the last line on stdout,
//!
//! ```text
//! R reads, T torn, S stalls
//! ```
//!
//! with details (reads per VP, snapshots caught inside the target's
//! hypercall, failed calls) on stderr. Exit status 0 only when the VM
//! stopped as asked, R > 0 and T, S and the failed calls are 0; otherwise
//! the VM's own non-zero status (1 from the guest after a torn or failed
//! read, 124 watchdog, 125 fault) or 1.
//!
//! The counters live at the fixed guest-physical address [`SHARED_GPA`]
//! (the same constant as in `guests/soak/src/main.rs`, whose docs give
//! the layout): above the guest image (the guest checks it) and below the
//! stacks at the top of RAM ([`configure`] checks the RAM size).

use std::io::Write;
use std::time::{Duration, Instant};

use hvcall_vmm::memory::GuestRam;
use hvcall_vmm::seccomp::{self, SeccompMode, ThreadRole};
use hvcall_vmm::{Inspector, Vm, VmConfig, VmExit, VmmError};

use crate::run::say;

/// Guest-physical address of the block shared with the guest.
pub const SHARED_GPA: u64 = 0x40_0000;
/// Word index of the stop flag.
const STOP: u64 = 0;
/// Word index of the number of VPs that stopped.
const DONE: usize = 1;
/// Word index of VP 0's four counters (reads, torn, failed, in call).
const PER_VP: usize = 2;
/// The VPs the block has counters for (`--cpus` allows 64).
const MAX_VPS: u64 = 64;
/// Size of the block.
const BLOCK_BYTES: u64 = 8 * (PER_VP as u64 + 4 * MAX_VPS);
/// Each VP's stack at the top of RAM (the boot protocol's).
const STACK_BYTES: u64 = 64 << 10;

/// Soak duration without `--seconds`.
pub const DEFAULT_SECONDS: f64 = 10.0;
/// How long after the soak's end the watchdog fires: stopping takes each
/// VP one more step (well under a millisecond), so this only bounds a
/// guest that does not stop.
pub const WATCHDOG_MARGIN: Duration = Duration::from_secs(30);
/// How often the host reads the counters.
pub const POLL: Duration = Duration::from_millis(100);
/// A VP whose read counter does not move for this long is stalled.
pub const STALL: Duration = Duration::from_secs(1);

/// `--seconds S`: any positive, finite number of seconds.
pub fn duration(secs: f64) -> Result<Duration, String> {
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!(
            "--seconds {secs}: expected a positive number of seconds"
        ));
    }
    Duration::try_from_secs_f64(secs)
        .map_err(|e| format!("--seconds {secs}: {e}"))
        .map(|d| d.max(Duration::from_nanos(1)))
}

/// Fits `config` to a soak of `soak`: the watchdog at least the soak
/// plus [`WATCHDOG_MARGIN`] (a shorter `--watchdog` or the 10 s default
/// would end the soak early), and enough RAM for the shared block below
/// the stacks.
pub fn configure(config: &mut VmConfig, soak: Duration) -> Result<(), String> {
    config.watchdog = config.watchdog.max(soak.saturating_add(WATCHDOG_MARGIN));
    let needed = SHARED_GPA + BLOCK_BYTES + u64::from(config.cpus) * STACK_BYTES;
    if config.memory_mib.saturating_mul(1 << 20) < needed {
        return Err(format!(
            "--guest soak needs at least {} MiB of RAM (--memory)",
            needed.div_ceil(1 << 20)
        ));
    }
    Ok(())
}

/// The shared block's counters as read from RAM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// VPs that stopped after the stop flag.
    pub done: u64,
    /// Reads done, per VP.
    pub reads: Vec<u64>,
    /// Torn snapshots, per VP.
    pub torn: Vec<u64>,
    /// Failed calls, per VP.
    pub failed: Vec<u64>,
    /// Snapshots that caught the target on the hypercall page, per VP.
    pub in_call: Vec<u64>,
}

impl Counters {
    /// Reads the counters of `vps` VPs.
    fn read(ram: &GuestRam, vps: usize) -> Option<Self> {
        let mut bytes = vec![0u8; 8 * (PER_VP + 4 * vps)];
        ram.read(SHARED_GPA, &mut bytes).ok()?;
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
            .collect();
        let per_vp = |which: usize| -> Vec<u64> {
            (0..vps)
                .map(|vp| words.get(PER_VP + 4 * vp + which).copied().unwrap_or(0))
                .collect()
        };
        Some(Self {
            done: words.get(DONE).copied().unwrap_or(0),
            reads: per_vp(0),
            torn: per_vp(1),
            failed: per_vp(2),
            in_call: per_vp(3),
        })
    }
}

/// Counts stall episodes from successive readings of the read counters.
#[derive(Debug)]
struct StallWatch {
    /// Each VP's last counter value, when it last changed, and whether the
    /// current episode was counted.
    vps: Vec<(u64, Duration, bool)>,
    /// Episodes counted.
    stalls: u64,
}

impl StallWatch {
    /// Every VP at 0 reads at time 0.
    fn new(vps: usize) -> Self {
        Self {
            vps: vec![(0, Duration::ZERO, false); vps],
            stalls: 0,
        }
    }

    /// Takes the counters read at `now` (time since the start); returns
    /// the VPs whose stall began to count now.
    fn observe(&mut self, now: Duration, reads: &[u64]) -> Vec<usize> {
        let mut stalled = Vec::new();
        for (vp, ((last, since, counted), &value)) in self.vps.iter_mut().zip(reads).enumerate() {
            if value != *last {
                (*last, *since, *counted) = (value, now, false);
            } else if !*counted && now.saturating_sub(*since) >= STALL {
                *counted = true;
                self.stalls += 1;
                stalled.push(vp);
            }
        }
        stalled
    }
}

/// What the host saw of one soak.
#[derive(Debug)]
pub struct Outcome {
    /// Whether the host wrote the stop flag (the VM ran the whole time).
    pub stopped: bool,
    /// How long the VM ran, as the host saw it.
    pub elapsed: Duration,
    /// Stall episodes.
    pub stalls: u64,
    /// The counters after the VM ended (`None` if RAM could not be read).
    pub counters: Option<Counters>,
}

impl Outcome {
    /// The totals `(reads, torn, failed, in call)`.
    fn totals(&self) -> (u64, u64, u64, u64) {
        self.counters.as_ref().map_or((0, 0, 0, 0), |c| {
            let sum = |v: &[u64]| v.iter().fold(0u64, |a, &b| a.saturating_add(b));
            (sum(&c.reads), sum(&c.torn), sum(&c.failed), sum(&c.in_call))
        })
    }

    /// The final line: `R reads, T torn, S stalls`.
    pub fn line(&self) -> String {
        let (reads, torn, _, _) = self.totals();
        format!("{reads} reads, {torn} torn, {} stalls", self.stalls)
    }

    /// Prints the details (stderr) and the final line (stdout, last), and
    /// returns the exit status for a VM that ended with `exit`.
    pub fn finish(&self, exit: &VmExit) -> u8 {
        let (reads, _, failed, in_call) = self.totals();
        match &self.counters {
            Some(c) => say(format_args!(
                "soak: {} VPs, {:.1} s: reads per VP {:?}; {in_call} caught the target inside \
                 its hypercall, {} running; {failed} failed calls; {} of {} VPs stopped",
                c.reads.len(),
                self.elapsed.as_secs_f64(),
                c.reads,
                reads.saturating_sub(in_call),
                c.done,
                c.reads.len()
            )),
            None => say(format_args!(
                "soak: the counters at {SHARED_GPA:#x} could not be read"
            )),
        }
        if !self.stopped {
            say(format_args!(
                "soak: the VM ended after {:.1} s, before the soak was over",
                self.elapsed.as_secs_f64()
            ));
        }
        // A closed stdout must not panic; the status still tells.
        let _ = writeln!(std::io::stdout().lock(), "{}", self.line());
        self.status(exit)
    }

    /// The exit status: the VM's if non-zero, else 1 unless the soak ran
    /// its course with reads and without torn reads, failed calls or
    /// stalls.
    fn status(&self, exit: &VmExit) -> u8 {
        let (reads, torn, failed, _) = self.totals();
        match exit.status() {
            0 => u8::from(!self.stopped || reads == 0 || torn > 0 || failed > 0 || self.stalls > 0),
            status => status,
        }
    }
}

/// Runs `vm` (loaded with the soak guest, configured with [`configure`])
/// for `soak`, watching it from the inspector thread.
/// The watching thread takes the host filter of `mode` first.
pub fn run(vm: &mut Vm, soak: Duration, mode: SeccompMode) -> Result<(VmExit, Outcome), VmmError> {
    let mut outcome = None;
    let mut filter = Ok(());
    let exit = vm.run_inspected(|inspector| {
        filter = seccomp::install(ThreadRole::Host, mode);
        match &filter {
            Ok(()) => outcome = Some(watch(inspector, soak)),
            Err(_) => inspector.stop(),
        }
    })?;
    filter?;
    let outcome = outcome.unwrap_or(Outcome {
        stopped: false,
        elapsed: Duration::ZERO,
        stalls: 0,
        counters: None,
    });
    Ok((exit, outcome))
}

/// The inspector thread: polls, counts stalls, stops the guest after
/// `soak`, waits for the VM's end and reads the totals.
fn watch(inspector: &Inspector<'_>, soak: Duration) -> Outcome {
    let ram = inspector.ram();
    let vps = inspector.vp_count() as usize;
    let start = Instant::now();
    let mut watch = StallWatch::new(vps);
    let mut stopped = false;
    while !inspector.wait_end(POLL) {
        let now = start.elapsed();
        if let Some(counters) = Counters::read(ram, vps) {
            for vp in watch.observe(now, &counters.reads) {
                say(format_args!(
                    "soak: VP{vp} made no progress for {:.1} s (at +{:.1} s)",
                    STALL.as_secs_f64(),
                    now.as_secs_f64()
                ));
            }
        }
        if now >= soak {
            match ram.write(SHARED_GPA + 8 * STOP, &1u64.to_le_bytes()) {
                Ok(()) => stopped = true,
                Err(e) => say(format_args!("soak: cannot write the stop flag: {e}")),
            }
            break;
        }
    }
    // The guest ends the VM once every VP stopped; the watchdog bounds it.
    while stopped && !inspector.wait_end(Duration::from_secs(1)) {}
    Outcome {
        stopped,
        elapsed: start.elapsed(),
        stalls: watch.stalls,
        counters: Counters::read(ram, vps),
    }
}

/// The guest's invariant checker, compiled here to be unit-tested on the
/// host (the freestanding guests have no test harness).
#[cfg(test)]
#[path = "../../../guests/soak/src/check.rs"]
mod check;

#[cfg(test)]
mod tests {
    use super::check::{consistent, Sample};
    use super::*;

    /// Every snapshot a VP stepping from `c - 1` to `c` can show: after
    /// 0, 1, 2 or 3 of its writes (MSR, DR0, XMM15), and on the hypercall
    /// page (all written, R12 = c).
    fn moments(c: u64) -> Vec<Sample> {
        let at = |written: u64| {
            let v = |order: u64| if written >= order { c } else { c - 1 };
            Sample {
                msr: Some(v(1)),
                dr0: Some(v(2)),
                xmm15: Some([v(3), 0]),
                r12: Some(0xDEAD),
                in_call: false,
            }
        };
        let mut all: Vec<Sample> = (0..=3).map(at).collect();
        all.push(Sample {
            r12: Some(c),
            in_call: true,
            ..at(3)
        });
        all
    }

    /// `s` with only the names of one read (memory form, both fast sets).
    fn as_read(s: &Sample) -> [Sample; 3] {
        [*s, Sample { r12: None, ..*s }, Sample { msr: None, ..*s }]
    }

    #[test]
    fn every_moment_of_the_loop_is_consistent() {
        for c in [1, 2, 1000, u64::MAX] {
            for s in moments(c) {
                for read in as_read(&s) {
                    assert!(consistent(&read), "{read:?}");
                }
            }
        }
        // Before the first step everything is 0.
        assert!(consistent(&Sample {
            msr: Some(0),
            dr0: Some(0),
            xmm15: Some([0, 0]),
            r12: Some(7),
            in_call: false,
        }));
    }

    #[test]
    fn values_from_different_moments_are_torn() {
        let good = moments(10)[3];
        let torn = [
            // Written later but newer: the order reversed.
            Sample {
                dr0: Some(11),
                ..good
            },
            Sample {
                xmm15: Some([11, 0]),
                dr0: Some(10),
                ..good
            },
            Sample {
                msr: Some(9),
                ..good
            },
            // More than one step apart.
            Sample {
                xmm15: Some([8, 0]),
                ..good
            },
            Sample {
                msr: Some(12),
                dr0: None,
                xmm15: Some([10, 0]),
                ..good
            },
            // A high half that was never written.
            Sample {
                xmm15: Some([10, 1]),
                ..good
            },
            // On the page every value is the step's.
            Sample {
                r12: Some(9),
                in_call: true,
                ..good
            },
            Sample {
                xmm15: Some([9, 0]),
                r12: Some(10),
                in_call: true,
                ..good
            },
        ];
        for s in torn {
            assert!(!consistent(&s), "{s:?}");
        }
    }

    #[test]
    fn a_stall_counts_once_per_episode() {
        let ms = Duration::from_millis;
        let mut w = StallWatch::new(2);
        assert!(w.observe(ms(100), &[1, 1]).is_empty());
        assert!(w.observe(ms(1000), &[2, 1]).is_empty());
        // VP1 last moved at 100 ms.
        assert_eq!(w.observe(ms(1100), &[3, 1]), [1]);
        assert!(w.observe(ms(2500), &[4, 1]).is_empty(), "counted once");
        // It moves, then stops again: a second episode.
        assert!(w.observe(ms(2600), &[5, 2]).is_empty());
        assert!(w.observe(ms(3500), &[6, 2]).is_empty());
        assert_eq!(w.observe(ms(3600), &[6, 2]), [1]);
        // VP0 stopped at 3500 ms.
        assert_eq!(w.observe(ms(4500), &[6, 2]), [0]);
        assert_eq!(w.stalls, 3);
        // A VP that never starts stalls from the start.
        let mut w = StallWatch::new(1);
        assert_eq!(w.observe(ms(1000), &[0]), [0]);
    }

    fn outcome(reads: u64, torn: u64, stalls: u64, stopped: bool) -> Outcome {
        Outcome {
            stopped,
            elapsed: Duration::from_secs(1),
            stalls,
            counters: Some(Counters {
                done: 2,
                reads: vec![reads, 0],
                torn: vec![0, torn],
                failed: vec![0, 0],
                in_call: vec![0, 0],
            }),
        }
    }

    #[test]
    fn the_status_fails_on_torn_stalls_no_reads_or_an_early_end() {
        let ok = VmExit::Exited(0);
        assert_eq!(outcome(5, 0, 0, true).line(), "5 reads, 0 torn, 0 stalls");
        assert_eq!(outcome(5, 0, 0, true).status(&ok), 0);
        assert_eq!(outcome(5, 2, 0, true).line(), "5 reads, 2 torn, 0 stalls");
        assert_eq!(outcome(5, 2, 0, true).status(&ok), 1);
        assert_eq!(outcome(5, 0, 1, true).status(&ok), 1);
        assert_eq!(outcome(0, 0, 0, true).status(&ok), 1);
        assert_eq!(outcome(5, 0, 0, false).status(&ok), 1);
        assert_eq!(outcome(5, 0, 0, true).status(&VmExit::Watchdog), 124);
    }

    #[test]
    fn seconds_are_checked_and_the_watchdog_outlasts_the_soak() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        assert_eq!(duration(0.5), Ok(Duration::from_millis(500)));
        let mut config = VmConfig::default();
        configure(&mut config, Duration::from_secs(60)).expect("fits");
        assert_eq!(config.watchdog, Duration::from_secs(60) + WATCHDOG_MARGIN);
        config.watchdog = Duration::from_secs(1000);
        configure(&mut config, Duration::from_secs(60)).expect("fits");
        assert_eq!(
            config.watchdog,
            Duration::from_secs(1000),
            "a longer one stays"
        );
        config.memory_mib = 4;
        let err = configure(&mut config, Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("needs at least 5 MiB"), "{err}");
    }
}
