//! Soak: every VP keeps reading every other VP
//! through HvCallGetVpRegisters while it keeps an invariant across
//! registers that live in different KVM state, until the host says stop.
//! Run it with `hvcall run --guest soak --cpus N --seconds S`, whose host
//! side (`crates/hvcall/src/soak.rs`) watches the progress counters, sets
//! the stop flag and prints `R reads, T torn, S stalls`.
//!
//! Each step of VP v: `c += 1`, then `c` is written to KERNEL_GS_BASE
//! (WRMSR), DR0 and XMM15 (`movdqu`, high half 0; the compiler never uses
//! SSE on this target, and SSE arithmetic is not emulated here). Every
//! [`STEPS`]th step ends in a read: a hypercall made with R12 = `c`,
//! loaded by the same asm block that writes DR0 and XMM15 and calls the
//! page. The reads target the other VPs in turn and alternate the two
//! forms:
//!
//! - memory form: one call whose name list is a list of every register
//!   the VMM serves (every KVM register group, synthetic ones included)
//!   followed by the invariant names R12, XMM15, DR0, KERNEL_GS_BASE, RIP.
//!   The rep start index rotates over the served part (docs/contract.md §1:
//!   only elements s..n-1 are read), so successive calls read different
//!   suffixes of it, needing different sets of register groups, and the
//!   input list never has to be rewritten (only the header's VP index);
//! - XMM fast form (when advertised): four names, alternately
//!   KERNEL_GS_BASE, DR0, XMM15, RIP and R12, DR0, XMM15, RIP.
//!
//! Every snapshot's invariant values go through [`check::consistent`]; a
//! failure counts as torn (the first three per VP are printed). A call
//! that fails counts as failed (printed once per VP).
//!
//! The counters the host reads live at the fixed guest-physical address
//! [`SHARED_GPA`] (4 MiB, above this image, which is checked, and below
//! the stacks at the top of RAM; the host checks RAM is large enough),
//! the simplest place both sides know without passing anything: word 0
//! the stop flag (the host writes non-zero), word 1 the number of VPs that
//! stopped, then four words per VP: reads done, torn snapshots, failed
//! calls, snapshots that caught the target on the hypercall page. Each VP
//! writes only its own words. After the stop every VP counts itself done;
//! VP0 waits for all and exits 0, or 1 if any read was torn or failed.
#![no_std]
#![no_main]

mod check;

use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hvcall_abi::input::{HEADER_SIZE, NAME_SIZE, VALUE_SIZE};
use hvcall_abi::name::x64 as n;
use hvcall_abi::{partition_id, HvInputVtl, HvRegisterName, HypercallResult, PAGE_SIZE};
use hvcall_guest::hypercall_page::wrmsr;
use hvcall_guest::registers::{control, fast_input, fast_output_pair, header};
use hvcall_guest::{FastRegisters, HypercallPage, Scratch};
use rt::console::{Dec, Hex};
use rt::hv::gpa;
use rt::outln;

use check::Sample;

rt::entry!(main);

/// Guest-physical address of the block shared with the host (same layout
/// in `crates/hvcall/src/soak.rs`).
pub const SHARED_GPA: u64 = 0x40_0000;
/// Most VPs the block has counters for (`hvcall run --cpus` allows 64).
pub const MAX_VPS: u32 = 64;
/// Word index of the stop flag.
const STOP: usize = 0;
/// Word index of the number of VPs that stopped.
const DONE: usize = 1;
/// Word index of VP 0's counters; VP v's are at `PER_VP + 4 v`.
const PER_VP: usize = 2;
/// Offsets of one VP's counters.
const READS: usize = 0;
const TORN: usize = 1;
const FAILED: usize = 2;
const IN_CALL: usize = 3;

/// IA32_KERNEL_GS_BASE: an MSR KVM keeps and the VMM serves; nothing in
/// this guest uses GS.
const KERNEL_GS_BASE: u32 = 0xC000_0102;

/// Every register the VMM serves (README "Registers served"), read in
/// rotating suffixes by the memory form.
#[rustfmt::skip]
const SERVED: [HvRegisterName; 94] = [
    n::RAX, n::RCX, n::RDX, n::RBX, n::RSP, n::RBP, n::RSI, n::RDI,
    n::R8, n::R9, n::R10, n::R11, n::R12, n::R13, n::R14, n::R15,
    n::RIP, n::RFLAGS, n::CR0, n::CR2, n::CR3, n::CR4, n::CR8, n::XFEM,
    n::DR0, n::DR1, n::DR2, n::DR3, n::DR6, n::DR7,
    n::ES, n::CS, n::SS, n::DS, n::FS, n::GS, n::LDTR, n::TR,
    n::GDTR, n::IDTR, n::TSC, n::EFER, n::KERNEL_GS_BASE, n::APIC_BASE,
    n::PAT, n::SYSENTER_CS, n::SYSENTER_EIP, n::SYSENTER_ESP,
    n::STAR, n::LSTAR, n::CSTAR, n::SFMASK, n::TSC_AUX,
    n::XMM0, n::XMM1, n::XMM2, n::XMM3, n::XMM4, n::XMM5, n::XMM6, n::XMM7,
    n::XMM8, n::XMM9, n::XMM10, n::XMM11, n::XMM12, n::XMM13, n::XMM14,
    n::XMM15, n::FP_MMX0, n::FP_MMX1, n::FP_MMX2, n::FP_MMX3, n::FP_MMX4,
    n::FP_MMX5, n::FP_MMX6, n::FP_MMX7, n::FP_CONTROL_STATUS,
    n::XMM_CONTROL_STATUS, n::PENDING_INTERRUPTION, n::INTERRUPT_STATE,
    n::INTERNAL_ACTIVITY_STATE,
    n::VP_INDEX, n::GUEST_OS_ID, n::HYPERCALL, n::VP_ASSIST_PAGE, n::TIME_REF_COUNT,
    n::VSM_VP_STATUS, n::VSM_PARTITION_STATUS, n::HYPERVISOR_VERSION,
    n::PRIVILEGES_AND_FEATURES_INFO, n::FEATURES_INFO,
    n::IMPLEMENTATION_LIMITS_INFO, n::HARDWARE_FEATURES_INFO,
];

/// The invariant names, after [`SERVED`] in the memory form's list.
const INVARIANT: [HvRegisterName; 5] = [n::R12, n::XMM15, n::DR0, n::KERNEL_GS_BASE, n::RIP];
/// Names in the memory form's list.
const NAMES: usize = SERVED.len() + INVARIANT.len();
const _: () = assert!(HEADER_SIZE as usize + NAMES * NAME_SIZE as usize <= PAGE_SIZE as usize);
const _: () = assert!(NAMES * VALUE_SIZE as usize <= PAGE_SIZE as usize);

/// The two name sets of the fast form (four names fit).
const FAST: [[HvRegisterName; 4]; 2] = [
    [n::KERNEL_GS_BASE, n::DR0, n::XMM15, n::RIP],
    [n::R12, n::DR0, n::XMM15, n::RIP],
];

/// Steps of the invariant per read. A VP spends most of its time inside
/// its own call (waiting for its target's snapshot), where it stands
/// still; the steps between reads let the others catch it running,
/// mid-step, where a snapshot mixing moments would show.
const STEPS: u64 = 8;

/// Torn snapshots printed per VP.
const SHOW_TORN: u64 = 3;

static STARTED: AtomicU32 = AtomicU32::new(0);

unsafe extern "C" {
    /// End of this image (linker script).
    static __bss_end: u8;
}

fn main(vp: u32, vps: u32) {
    if vp == 0 {
        check_layout(vps);
    }
    let (features, page) = if vp == 0 {
        rt::hv::enable()
    } else {
        match hvcall_guest::discover() {
            Ok(f) => (f, rt::hv::page()),
            Err(e) => {
                outln!("soak: discovery failed: ", e);
                rt::exit(5)
            }
        }
    };
    let fast = features.xmm_fast_input() && features.xmm_fast_output();
    STARTED.fetch_add(1, Ordering::AcqRel);
    while STARTED.load(Ordering::Acquire) < vps {
        core::hint::spin_loop();
    }
    soak(vp, vps, page, fast);
    word(DONE).fetch_add(1, Ordering::AcqRel);
    if vp != 0 {
        return;
    }
    while word(DONE).load(Ordering::Acquire) < u64::from(vps) {
        core::hint::spin_loop();
    }
    let bad = (0..vps).any(|v| counter(v, TORN).load(Ordering::Acquire) != 0)
        || (0..vps).any(|v| counter(v, FAILED).load(Ordering::Acquire) != 0);
    rt::exit(u8::from(bad))
}

/// Exits with status 2 unless there are 2..=64 VPs and this image ends
/// below the shared block.
fn check_layout(vps: u32) {
    if !(2..=MAX_VPS).contains(&vps) {
        outln!("soak: needs 2 to 64 VPs");
        rt::exit(2);
    }
    let end = (&raw const __bss_end) as u64;
    if end > SHARED_GPA {
        outln!("soak: image ends at ", Hex(end), " above the shared block");
        rt::exit(2);
    }
}

/// Word `index` of the shared block.
fn word(index: usize) -> &'static AtomicU64 {
    // SAFETY: RAM is identity-mapped (boot protocol), the block lies in RAM
    // above this image (`check_layout`; the host checks the RAM size) and
    // is used only through atomics here; the host reads it and writes only
    // the stop flag. The pointer is 8-byte aligned.
    unsafe { AtomicU64::from_ptr((SHARED_GPA as *mut u64).add(index)) }
}

/// Counter `which` of VP `vp`.
fn counter(vp: u32, which: usize) -> &'static AtomicU64 {
    word(PER_VP + 4 * vp as usize + which)
}

/// Adds one to a counter only this VP writes.
fn bump(c: &AtomicU64) -> u64 {
    let v = c.load(Ordering::Relaxed) + 1;
    c.store(v, Ordering::Release);
    v
}

/// What one read returned: the raw result, the number of names, the
/// invariant values and the target's RIP.
struct Read {
    raw: u64,
    names: usize,
    sample: Sample,
    rip: u64,
}

impl Read {
    fn new(raw: u64, names: usize) -> Self {
        Self {
            raw,
            names,
            sample: Sample::default(),
            rip: 0,
        }
    }

    /// Files the value of `name` (one of the invariant names).
    fn record(&mut self, name: HvRegisterName, [low, high]: [u64; 2]) {
        match name {
            n::KERNEL_GS_BASE => self.sample.msr = Some(low),
            n::DR0 => self.sample.dr0 = Some(low),
            n::XMM15 => self.sample.xmm15 = Some([low, high]),
            n::R12 => self.sample.r12 = Some(low),
            _ => self.rip = low,
        }
    }
}

/// The soak loop of VP `vp` until the host sets the stop flag.
fn soak(vp: u32, vps: u32, page: HypercallPage, fast: bool) {
    let mut scratch = Scratch::new();
    let [partition, _] = header(partition_id::SELF, 0, HvInputVtl::new());
    scratch.input[..8].copy_from_slice(&partition.to_le_bytes());
    let list = &mut scratch.input[HEADER_SIZE as usize..];
    for (slot, name) in list
        .chunks_exact_mut(NAME_SIZE as usize)
        .zip(SERVED.iter().chain(&INVARIANT))
    {
        slot.copy_from_slice(&name.0.to_le_bytes());
    }
    let templates = FAST.map(|names| fast_input(partition_id::SELF, 0, HvInputVtl::new(), &names));
    let page_va = page.address() as u64;
    let (mut c, mut i, mut start) = (0u64, 0u64, 0usize);
    let mut target = vp;
    while word(STOP).load(Ordering::Acquire) == 0 {
        i += 1;
        for _ in 1..STEPS {
            c += 1;
            step(c);
        }
        c += 1;
        // The other VPs in turn.
        target = (target + 1) % vps;
        if target == vp {
            target = (target + 1) % vps;
        }
        let [_, vp_word] = header(partition_id::SELF, target, HvInputVtl::new());
        // SAFETY: CPL 0; nothing in this guest uses GS, so its base MSRs
        // are free.
        unsafe { wrmsr(KERNEL_GS_BASE, c) };
        let read = if fast && i % 2 == 0 {
            let set = (i / 2 % 2) as usize;
            let mut regs = templates[set];
            regs.pairs[0][1] = vp_word;
            // SAFETY: CPL 0, enabled page, XMM fast form advertised.
            let raw =
                unsafe { step_and_call_fast(page, control(4, 0, true).into_bits(), &mut regs, c) };
            let mut read = Read::new(raw, 4);
            for (name, value) in FAST[set].iter().zip(&regs.pairs[fast_output_pair(4)..]) {
                read.record(*name, *value);
            }
            read
        } else {
            scratch.input[8..16].copy_from_slice(&vp_word.to_le_bytes());
            let control = control(NAMES, start as u16, false).into_bits();
            start = (start + 1) % SERVED.len();
            let base = gpa(&raw mut scratch);
            // SAFETY: CPL 0, enabled page; the hypervisor reads the input
            // page and writes at most the output page, both `scratch`'s,
            // whose address escaped through `gpa`.
            let raw = unsafe { step_and_call(page, control, base, base + PAGE_SIZE, c) };
            let mut read = Read::new(raw, NAMES);
            let values = (&raw const scratch.output).cast::<[u64; 2]>();
            for (i, name) in INVARIANT.iter().enumerate() {
                // SAFETY: slot SERVED.len() + i of the output page (in
                // bounds: the const asserts above), written by the call.
                let value = unsafe { values.add(SERVED.len() + i).read_volatile() };
                read.record(*name, value);
            }
            read
        };
        let result = HypercallResult::from_bits(read.raw);
        if !result.status().is_success() || usize::from(result.reps_completed()) != read.names {
            if bump(counter(vp, FAILED)) == 1 {
                outln!(
                    "soak: VP",
                    Dec(u64::from(vp)),
                    " reading VP",
                    Dec(u64::from(target)),
                    " failed, result ",
                    Hex(read.raw)
                );
            }
            continue;
        }
        let mut sample = read.sample;
        sample.in_call = read.rip.wrapping_sub(page_va) < PAGE_SIZE;
        if sample.in_call {
            bump(counter(vp, IN_CALL));
        }
        if !check::consistent(&sample) && bump(counter(vp, TORN)) <= SHOW_TORN {
            show_torn(vp, target, &sample, read.rip);
        }
        bump(counter(vp, READS));
    }
}

/// Prints one torn snapshot.
fn show_torn(vp: u32, target: u32, s: &Sample, rip: u64) {
    let value = |v: Option<u64>| Hex(v.unwrap_or(u64::MAX));
    outln!(
        "soak: torn: VP",
        Dec(u64::from(vp)),
        " read VP",
        Dec(u64::from(target)),
        ": kernel_gs_base ",
        value(s.msr),
        " dr0 ",
        value(s.dr0),
        " xmm15 ",
        value(s.xmm15.map(|[low, _]| low)),
        "/",
        value(s.xmm15.map(|[_, high]| high)),
        " r12 ",
        value(s.r12),
        " rip ",
        Hex(rip),
        " (all ones: not read)"
    );
}

/// One step of the invariant without a read: KERNEL_GS_BASE, DR0 and
/// XMM15 = `c`.
fn step(c: u64) {
    // SAFETY: as for the WRMSR in `soak`.
    unsafe { wrmsr(KERNEL_GS_BASE, c) };
    let xmm15 = [c, 0u64];
    // SAFETY: DR0 and XMM15 are free (see `step_and_call`); the block
    // reads `xmm15` only.
    unsafe {
        asm!(
            "mov dr0, {c}",
            "movdqu xmm15, [{xmm15}]",
            c = in(reg) c,
            xmm15 = in(reg) xmm15.as_ptr(),
            options(nostack, preserves_flags, readonly),
        );
    }
}

/// Finishes step `c` (KERNEL_GS_BASE was written before): DR0 = XMM15 =
/// `c`, then the memory-form call `control` with R12 = `c`; returns RAX.
///
/// # Safety
/// CPL 0, `page` enabled; the hypervisor may write the page at `output`.
unsafe fn step_and_call(page: HypercallPage, control: u64, input: u64, output: u64, c: u64) -> u64 {
    let xmm15 = [c, 0u64];
    let result;
    // SAFETY: DR0 is free (no breakpoint is enabled in DR7) and XMM15 is
    // used by nothing else (the compiler emits no SSE for this target; the
    // fast-form helpers touch only XMM0-5); R12 is an input the block
    // leaves unchanged; the page returns with `ret` and changes RAX and
    // RCX, with RDX and R8 declared clobbered as in `HypercallPage`. Not
    // `nomem`: the hypervisor writes the output list.
    unsafe {
        asm!(
            "mov dr0, {c}",
            "movdqu xmm15, [{xmm15}]",
            "call {page}",
            c = in(reg) c,
            xmm15 = in(reg) xmm15.as_ptr(),
            page = in(reg) page.address(),
            in("r12") c,
            inout("rcx") control => _,
            inout("rdx") input => _,
            inout("r8") output => _,
            out("rax") result,
        );
    }
    result
}

/// Finishes step `c` like [`step_and_call`], then makes the XMM fast call
/// `control` with four names: RDX, R8 and XMM0 from `regs` pairs 0 and 1,
/// the values come back in XMM1-4 (pairs 2-5, stored into `regs`). XMM0-4
/// are saved and restored around the call.
///
/// # Safety
/// CPL 0, `page` enabled, CR4.OSFXSR set, the XMM fast form advertised.
unsafe fn step_and_call_fast(
    page: HypercallPage,
    control: u64,
    regs: &mut FastRegisters,
    c: u64,
) -> u64 {
    let xmm15 = [c, 0u64];
    let result;
    // SAFETY: as in `step_and_call`; `regs` is a valid 112-byte buffer;
    // the save area is below RSP and released before the block ends; with
    // four names the hypervisor writes only RAX, RCX and XMM1-4
    // (docs/contract.md §3: other pairs keep their values), and XMM0-4 are
    // restored.
    unsafe {
        asm!(
            "mov dr0, {c}",
            "movdqu xmm15, [{xmm15}]",
            "sub rsp, 80",
            "movdqu [rsp], xmm0",
            "movdqu [rsp + 16], xmm1",
            "movdqu [rsp + 32], xmm2",
            "movdqu [rsp + 48], xmm3",
            "movdqu [rsp + 64], xmm4",
            "mov rdx, [{regs}]",
            "mov r8, [{regs} + 8]",
            "movdqu xmm0, [{regs} + 16]",
            "call {page}",
            "movdqu [{regs} + 32], xmm1",
            "movdqu [{regs} + 48], xmm2",
            "movdqu [{regs} + 64], xmm3",
            "movdqu [{regs} + 80], xmm4",
            "movdqu xmm0, [rsp]",
            "movdqu xmm1, [rsp + 16]",
            "movdqu xmm2, [rsp + 32]",
            "movdqu xmm3, [rsp + 48]",
            "movdqu xmm4, [rsp + 64]",
            "add rsp, 80",
            c = in(reg) c,
            xmm15 = in(reg) xmm15.as_ptr(),
            regs = in(reg) regs as *mut FastRegisters,
            page = in(reg) page.address(),
            in("r12") c,
            inout("rcx") control => _,
            out("rdx") _,
            out("r8") _,
            out("rax") result,
        );
    }
    result
}
