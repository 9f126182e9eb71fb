//! `hvcall bench [--json] [--quick]`: what a hypercall costs in this VMM,
//! as a ratio to the cheapest call through the hypercall page, measured in
//! the same run.
//!
//! One VM (2 VPs, the `bench` guest of `guests/bench`) runs everything.
//! The host drives it from the inspector thread of [`Vm::run_inspected`]
//! through a table in guest RAM (layout in `guests/bench/src/main.rs`):
//! each *segment* is a guest loop of N identical calls through the page;
//! the host times it from writing its number to seeing it done (host
//! clock, polled every [`POLL`]) and reads the VM's counters
//! ([`hvcall_vmm::RunStats`]) before and after, while the guest waits
//! between segments without exits. Per figure and repetition a floor
//! segment (an unimplemented call code, [`NULL_CODE`], answered
//! HV_STATUS_INVALID_HYPERCALL_CODE) runs just before the figure's; the
//! figure's `ratio` is the median over repetitions of figure / floor.
//!
//! Two stages: first VP1 spins (no exits) for `cross_rep1` and
//! `cross_rep16`, compared with floors measured while it spins; then VP1
//! halts for `null_exit`, the `self_*` figures and `cross_halted_rep1`.
//!
//! Per figure: `ns` (median ns per call), `ratio`, `vmm_ns` (median of the
//! VMM's time from a call's exit to the caller's next `KVM_RUN`, host
//! clock, per call) and `ioctls` (median per call of the vCPU ioctls
//! beyond the call's own `KVM_RUN`: state reads and writes, and the extra
//! `KVM_RUN`s of a kicked VP or a continuation). Then `startup_us`: from
//! the start of `main` to the guest's first instruction (a vCPU's first
//! `KVM_RUN`); `guest_main_us`: to VP0's first instruction of the guest's
//! `main` (after the runtime's `.bss` check and IDT, which run in this
//! host's CPL-0 instruction emulator), seen in RAM by the host; and
//! `rss_overhead_kib`: the process's VmRSS after the run minus the guest
//! RAM the host has backed.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hvcall::chaos::cases::SERVED;

use hvcall_abi::name::x64 as n;
use hvcall_abi::{
    partition_id, vp_index, GetVpRegistersHeader, HvInputVtl, HvRegisterName, HvStatus,
    HypercallResult,
};
use hvcall_vmm::memory::GuestRam;
use hvcall_vmm::{Console, Inspector, RunStats, Vm, VmConfig, VmExit};

/// The bench guest's ELF image.
const GUEST: &[u8] = include_bytes!(env!("HVCALL_GUEST_BENCH"));

/// The table shared with the guest and its words (`guests/bench`).
const TABLE_GPA: u64 = 0x40_0000;
const INPUT_GPA: u64 = 0x40_1000;
const OUTPUT_GPA: u64 = 0x40_2000;
const ENTERED: u64 = 0;
const GO: u64 = 1;
const DONE: u64 = 2;
const ITERATIONS: u64 = 3;
const CONTROL: u64 = 4;
const RDX: u64 = 5;
const R8: u64 = 6;
const XMM0: u64 = 7;
const RESULT: u64 = 9;
const VP1_HALT: u64 = 10;
const VP1_STATE: u64 = 11;
const STOP: u64 = 12;

/// A call code hvcall does not implement: the floor.
pub const NULL_CODE: u64 = 0x0052;
/// HvCallGetVpRegisters.
const GET_VP_REGISTERS: u64 = 0x0050;
/// The control word's fast bit.
const FAST: u64 = 1 << 16;
/// How often the host looks at the table while a segment runs.
const POLL: Duration = Duration::from_micros(100);

/// Options of `hvcall bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// A few iterations only (checks that the bench runs; the numbers mean
    /// little).
    #[arg(long)]
    pub quick: bool,
}

/// How much to measure.
#[derive(Copy, Clone, Debug)]
struct Effort {
    /// Calls per segment.
    calls: u64,
    /// Segments per figure (each with its floor).
    repetitions: usize,
}

impl Effort {
    fn of(args: &BenchArgs) -> Self {
        if args.quick {
            Self {
                calls: 20,
                repetitions: 2,
            }
        } else {
            Self {
                calls: 2_000,
                repetitions: 7,
            }
        }
    }
}

/// What VP1 does during a stage.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Vp1 {
    Spins,
    Halted,
}

/// One kind of call the guest loops on.
#[derive(Clone, Debug)]
struct Call {
    control: u64,
    rdx: u64,
    r8: u64,
    xmm0: [u64; 2],
    /// The memory form's input list (empty for the fast form and the floor).
    input: Vec<u8>,
    /// Names read (0 for the floor).
    reps: u64,
}

impl Call {
    fn null() -> Self {
        Self {
            control: NULL_CODE,
            rdx: INPUT_GPA,
            r8: OUTPUT_GPA,
            xmm0: [0; 2],
            input: Vec::new(),
            reps: 0,
        }
    }

    /// The memory form of GetVpRegisters of `names` of VP `vp`.
    fn memory(vp: u32, names: &[HvRegisterName]) -> Self {
        let header = GetVpRegistersHeader::new(partition_id::SELF, vp, HvInputVtl::new());
        let mut input: Vec<u8> = header
            .qwords()
            .iter()
            .flat_map(|q| q.to_le_bytes())
            .collect();
        for name in names {
            input.extend_from_slice(&u32::from(*name).to_le_bytes());
        }
        let reps = names.len() as u64;
        Self {
            control: GET_VP_REGISTERS | (reps << 32),
            rdx: INPUT_GPA,
            r8: OUTPUT_GPA,
            xmm0: [0; 2],
            input,
            reps,
        }
    }

    /// The XMM fast form of GetVpRegisters of four names of VP `vp`.
    fn fast(vp: u32, names: [HvRegisterName; 4]) -> Self {
        let [rdx, r8] =
            GetVpRegistersHeader::new(partition_id::SELF, vp, HvInputVtl::new()).qwords();
        let [a, b, c, d] = names.map(|name| u64::from(u32::from(name)));
        Self {
            control: GET_VP_REGISTERS | FAST | (4 << 32),
            rdx,
            r8,
            xmm0: [a | (b << 32), c | (d << 32)],
            input: Vec::new(),
            reps: 4,
        }
    }

    /// Whether `rax` is this call's expected result.
    fn answered(&self, rax: u64) -> bool {
        let result = HypercallResult::from_bits(rax);
        if self.reps == 0 {
            result.status() == HvStatus::INVALID_HYPERCALL_CODE
        } else {
            result.status() == HvStatus::SUCCESS && u64::from(result.reps_completed()) == self.reps
        }
    }
}

/// GPR, RIP, control and segment registers: 16 names.
#[rustfmt::skip]
const SIXTEEN: [HvRegisterName; 16] = [
    n::RAX, n::RCX, n::RDX, n::RBX, n::RSP, n::RBP, n::RSI, n::RDI,
    n::RIP, n::RFLAGS, n::CR0, n::CR3, n::CR4, n::CS, n::SS, n::DS,
];

/// The timed figures in output order, with their call and VP1's stage.
fn figures() -> Vec<(&'static str, Call, Vp1)> {
    // Names from every register group the VMM serves (the chaos guest's
    // list, README "Registers served"), cycled to 256.
    let every: Vec<HvRegisterName> = SERVED.iter().copied().cycle().take(256).collect();
    vec![
        ("null_exit", Call::null(), Vp1::Halted),
        (
            "self_rep1",
            Call::memory(vp_index::SELF, &[n::RAX]),
            Vp1::Halted,
        ),
        (
            "self_rep16",
            Call::memory(vp_index::SELF, &SIXTEEN),
            Vp1::Halted,
        ),
        (
            "self_rep256",
            Call::memory(vp_index::SELF, &every),
            Vp1::Halted,
        ),
        (
            "self_xmm_rep4",
            Call::fast(vp_index::SELF, [n::RAX, n::RIP, n::CR0, n::CS]),
            Vp1::Halted,
        ),
        ("cross_rep1", Call::memory(1, &[n::RAX]), Vp1::Spins),
        ("cross_rep16", Call::memory(1, &SIXTEEN), Vp1::Spins),
        ("cross_halted_rep1", Call::memory(1, &[n::RAX]), Vp1::Halted),
    ]
}

/// One segment's figures, per call.
#[derive(Copy, Clone, Debug)]
struct Sample {
    ns: f64,
    vmm_ns: f64,
    ioctls: f64,
}

/// A figure's result.
#[derive(Clone, Debug)]
struct Figure {
    name: &'static str,
    ns: f64,
    ratio: f64,
    vmm_ns: f64,
    ioctls: f64,
}

/// The whole report.
#[derive(Clone, Debug)]
struct Report {
    figures: Vec<Figure>,
    startup_us: f64,
    guest_main_us: f64,
    rss_overhead_kib: f64,
}

/// Runs `hvcall bench`; `started` is when the process's `main` began.
pub fn main(args: &BenchArgs, started: Instant) -> ExitCode {
    match bench(Effort::of(args), started) {
        Ok(report) => {
            let text = if args.json {
                json(&report)
            } else {
                table(&report)
            };
            // The report is the command's product: if it cannot be
            // written (a full disk, a closed pipe) the run failed.
            let mut stdout = std::io::stdout().lock();
            match write!(stdout, "{text}").and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    say(format_args!("cannot write the report: {e}"));
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            say(format_args!("{e}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes a message line on stderr; a closed stderr is ignored.
fn say(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "hvcall bench: {message}");
}

fn bench(effort: Effort, started: Instant) -> Result<Report, String> {
    let config = VmConfig {
        cpus: 2,
        memory_mib: 16,
        watchdog: Duration::from_secs(if effort.repetitions > 2 { 900 } else { 120 }),
        console: Console::Stderr,
        ..VmConfig::default()
    };
    let setup = |e: hvcall_vmm::VmmError| format!("VM setup failed: {e}");
    let mut vm = Vm::new(&config).map_err(setup)?;
    vm.load_elf(GUEST).map_err(setup)?;
    let mut outcome = Err("the host side did not run".to_string());
    let exit = vm
        .run_inspected(|inspector| outcome = drive(inspector, effort, started))
        .map_err(setup)?;
    let (figures, startup_us, guest_main_us) = outcome?;
    if exit != VmExit::Exited(0) {
        return Err(format!("the bench guest ended badly: {exit}"));
    }
    Ok(Report {
        figures,
        startup_us,
        guest_main_us,
        rss_overhead_kib: rss_overhead_kib(vm.ram())?,
    })
}

/// The host side, on the inspector thread: waits for the guest's entry,
/// runs every segment, then stops the guest (also on an error).
fn drive(
    inspector: &Inspector<'_>,
    effort: Effort,
    started: Instant,
) -> Result<(Vec<Figure>, f64, f64), String> {
    let mut table = Table {
        inspector,
        ram: inspector.ram(),
        next: 0,
        progress: Progress::new(),
    };
    let result = table.measure_all(effort, started);
    table.progress.clear();
    // Ends the VM: the guest exits 0 when it sees the flag (the run
    // returns once it did and this thread returned).
    table.set(STOP, 1)?;
    result
}

/// The host's view of the shared table, and the segments run so far.
struct Table<'a> {
    inspector: &'a Inspector<'a>,
    ram: &'a GuestRam,
    next: u64,
    progress: Progress,
}

impl Table<'_> {
    fn get(&self, word: u64) -> Result<u64, String> {
        let mut bytes = [0u8; 8];
        self.ram
            .read(TABLE_GPA + 8 * word, &mut bytes)
            .map_err(|e| e.to_string())?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn set(&self, word: u64, value: u64) -> Result<(), String> {
        self.ram
            .write(TABLE_GPA + 8 * word, &value.to_le_bytes())
            .map_err(|e| e.to_string())
    }

    /// Waits until `word` holds `value`; an error if the VM ends first.
    fn wait_for(&self, word: u64, value: u64, poll: Duration) -> Result<(), String> {
        while self.get(word)? != value {
            if self.inspector.wait_end(poll) {
                return Err(format!(
                    "the VM ended while the host waited for word {word} = {value}"
                ));
            }
        }
        Ok(())
    }

    fn measure_all(
        &mut self,
        effort: Effort,
        started: Instant,
    ) -> Result<(Vec<Figure>, f64, f64), String> {
        self.wait_for(ENTERED, 1, Duration::from_micros(20))?;
        let guest_main_us = started.elapsed().as_secs_f64() * 1e6;
        let startup_us = self.inspector.stats().first_entry.map_or(f64::NAN, |t| {
            t.saturating_duration_since(started).as_secs_f64() * 1e6
        });
        // A first call makes sure VP0 enabled the page and waits; VP1 spins.
        self.segment(&Call::null(), 1)?;
        self.wait_for(VP1_STATE, 1, POLL)?;

        let figures = figures();
        let segments = figures.len() * effort.repetitions * 2;
        self.progress.total = segments;
        let mut samples: Vec<Vec<(Sample, Sample)>> = vec![Vec::new(); figures.len()];
        for stage in [Vp1::Spins, Vp1::Halted] {
            if stage == Vp1::Halted {
                self.set(VP1_HALT, 1)?;
                self.wait_for(VP1_STATE, 2, POLL)?;
                // Let its HLT reach the VMM.
                self.inspector.wait_end(Duration::from_millis(20));
            }
            for _ in 0..effort.repetitions {
                for (i, (name, call, vp1)) in figures.iter().enumerate() {
                    if *vp1 != stage {
                        continue;
                    }
                    self.progress.show(name);
                    let floor = self.segment(&Call::null(), effort.calls)?;
                    self.progress.show(name);
                    let figure = self.segment(call, effort.calls)?;
                    samples[i].push((floor, figure));
                }
            }
        }
        let figures = figures
            .iter()
            .zip(&samples)
            .map(|((name, _, _), pairs)| summarize(name, pairs))
            .collect();
        Ok((figures, startup_us, guest_main_us))
    }

    /// Runs one segment of `calls` calls and measures it.
    fn segment(&mut self, call: &Call, calls: u64) -> Result<Sample, String> {
        if !call.input.is_empty() {
            self.ram
                .write(INPUT_GPA, &call.input)
                .map_err(|e| e.to_string())?;
        }
        self.set(ITERATIONS, calls)?;
        self.set(CONTROL, call.control)?;
        self.set(RDX, call.rdx)?;
        self.set(R8, call.r8)?;
        self.set(XMM0, call.xmm0[0])?;
        self.set(XMM0 + 1, call.xmm0[1])?;
        self.next += 1;
        let before = self.inspector.stats();
        let start = Instant::now();
        self.set(GO, self.next)?;
        self.wait_for(DONE, self.next, POLL)?;
        let elapsed = start.elapsed();
        let after = self.inspector.stats();
        let rax = self.get(RESULT)?;
        if !call.answered(rax) {
            return Err(format!(
                "call {:#x} answered {rax:#x}, not what the bench expects",
                call.control
            ));
        }
        Ok(sample(elapsed, &before, &after, calls))
    }
}

/// A segment's figures per call from its time and the counters around it.
fn sample(elapsed: Duration, before: &RunStats, after: &RunStats, calls: u64) -> Sample {
    let calls_f = calls.max(1) as f64;
    let exits = after.exits.saturating_sub(before.exits);
    let state = after.state_ioctls.saturating_sub(before.state_ioctls);
    let vmm = after
        .hypercall_vmm_ns
        .saturating_sub(before.hypercall_vmm_ns);
    Sample {
        ns: elapsed.as_secs_f64() * 1e9 / calls_f,
        vmm_ns: vmm as f64 / calls_f,
        // Each call's own KVM_RUN is not counted.
        ioctls: (exits + state).saturating_sub(calls) as f64 / calls_f,
    }
}

/// The medians of a figure's (floor, figure) pairs.
fn summarize(name: &'static str, pairs: &[(Sample, Sample)]) -> Figure {
    let of = |f: &dyn Fn(&(Sample, Sample)) -> f64| median(pairs.iter().map(f).collect());
    // The floor's own figures come from its segments; its ratio is 1.
    let floor = name == "null_exit";
    let pick = move |p: &(Sample, Sample)| if floor { p.0 } else { p.1 };
    Figure {
        name,
        ns: of(&|p| pick(p).ns),
        ratio: if floor { 1.0 } else { of(&|p| p.1.ns / p.0.ns) },
        vmm_ns: of(&|p| pick(p).vmm_ns),
        ioctls: of(&|p| pick(p).ioctls),
    }
}

/// The median (the mean of the middle two for an even count; NaN if empty).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// VmRSS of this process minus the guest RAM the host backed, in KiB.
fn rss_overhead_kib(ram: &GuestRam) -> Result<f64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no VmRSS in /proc/self/status")?;
    let guest = ram
        .resident_bytes()
        .map_err(|e| format!("mincore of guest RAM: {e}"))?;
    Ok(rss_kib as f64 - (guest / 1024) as f64)
}

/// A progress line on stderr, only when stderr is a terminal.
struct Progress {
    terminal: bool,
    shown: bool,
    done: usize,
    total: usize,
}

impl Progress {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            shown: false,
            done: 0,
            total: 0,
        }
    }

    fn show(&mut self, figure: &str) {
        self.done += 1;
        if self.terminal {
            self.shown = true;
            let _ = write!(
                std::io::stderr().lock(),
                "\r\x1b[Kbench: segment {}/{} ({figure})",
                self.done,
                self.total
            );
        }
    }

    fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
            self.shown = false;
        }
    }
}

/// A JSON number, or `null` for a value that is not finite.
fn number(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "null".into()
    }
}

/// The report as one JSON object.
fn json(report: &Report) -> String {
    let mut parts: Vec<String> = report
        .figures
        .iter()
        .map(|f| {
            format!(
                "\"{}\":{{\"ns\":{},\"ratio\":{},\"vmm_ns\":{},\"ioctls\":{}}}",
                f.name,
                number(f.ns, 0),
                number(f.ratio, 3),
                number(f.vmm_ns, 0),
                number(f.ioctls, 2)
            )
        })
        .collect();
    parts.push(format!("\"startup_us\":{}", number(report.startup_us, 0)));
    parts.push(format!(
        "\"guest_main_us\":{}",
        number(report.guest_main_us, 0)
    ));
    parts.push(format!(
        "\"rss_overhead_kib\":{}",
        number(report.rss_overhead_kib, 0)
    ));
    format!("{{{}}}\n", parts.join(","))
}

/// The report as a text table.
fn table(report: &Report) -> String {
    let mut out = format!(
        "{:<18} {:>10} {:>7} {:>10} {:>8}\n",
        "figure", "ns/call", "ratio", "vmm ns", "ioctls"
    );
    for f in &report.figures {
        out.push_str(&format!(
            "{:<18} {:>10} {:>7} {:>10} {:>8}\n",
            f.name,
            number(f.ns, 0),
            number(f.ratio, 2),
            number(f.vmm_ns, 0),
            number(f.ioctls, 2)
        ));
    }
    out.push_str(&format!(
        "startup_us {}\nguest_main_us {}\nrss_overhead_kib {}\n",
        number(report.startup_us, 0),
        number(report.guest_main_us, 0),
        number(report.rss_overhead_kib, 0)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ns: f64) -> Sample {
        Sample {
            ns,
            vmm_ns: ns / 2.0,
            ioctls: 0.0,
        }
    }

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
        let pairs = [(s(10.0), s(20.0)), (s(20.0), s(30.0)), (s(10.0), s(40.0))];
        let f = summarize("self_rep1", &pairs);
        assert_eq!((f.ns, f.ratio, f.vmm_ns), (30.0, 2.0, 15.0));
        let floor = summarize("null_exit", &pairs);
        assert_eq!((floor.ns, floor.ratio), (10.0, 1.0));
    }

    #[test]
    fn ioctls_leave_out_each_calls_own_run() {
        let before = RunStats::default();
        let after = RunStats {
            exits: 10,
            state_ioctls: 5,
            hypercall_vmm_ns: 1000,
            ..RunStats::default()
        };
        let s = sample(Duration::from_micros(10), &before, &after, 10);
        assert_eq!((s.ns, s.vmm_ns, s.ioctls), (1000.0, 100.0, 0.5));
    }

    #[test]
    fn json_has_every_key_and_no_nan() {
        let report = Report {
            figures: figures()
                .iter()
                .map(|(name, _, _)| Figure {
                    name,
                    ns: 1.0,
                    ratio: f64::NAN,
                    vmm_ns: 2.0,
                    ioctls: 0.0,
                })
                .collect(),
            startup_us: 3.0,
            guest_main_us: 5.0,
            rss_overhead_kib: 4.0,
        };
        let text = json(&report);
        assert!(text.contains("\"cross_halted_rep1\":{\"ns\":1,\"ratio\":null"));
        assert!(text.ends_with("\"startup_us\":3,\"guest_main_us\":5,\"rss_overhead_kib\":4}\n"));
    }

    #[test]
    fn every_call_fits_its_pages() {
        for (name, call, _) in figures() {
            assert!(call.input.len() <= 4096, "{name}");
            assert!(call.reps * 16 <= 4096, "{name}");
        }
    }
}
