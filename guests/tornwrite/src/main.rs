//! Torn-write check (docs/contract.md §8: everything one entry writes to a
//! running VP takes effect between two of its instructions). VPs pair up:
//! even VP w writes odd VP w + 1 (a VP without a partner only writes).
//!
//! - The writer makes `WRITES` calls of HvCallSetVpRegisters, call k
//!   writing the generation k into R12 (a general register),
//!   SysenterEsp (an MSR), DR0 (a debug register) and XMM15 (both
//!   halves; the FPU state), in that order: four KVM groups.
//! - The target runs a loop of its own instructions (no hypercall) that
//!   reads R12, then XMM15, DR0, SysenterEsp and R12 again; if R12 changed
//!   a call landed meanwhile and it reads again. Otherwise the four values
//!   are one state of the VP, and must be one call's: all equal (else it
//!   counts a *partial* state). Between the entries of a continued call
//!   (`--max-reps-per-entry` below 4) the VP may run with part of a call
//!   written, but elements apply in order, so every state must satisfy
//!   `R12 >= SysenterEsp >= DR0 >= XMM15 >= R12 - 1` (else it counts a
//!   *torn* state).
//! - With two writers or more, each writer also writes DR3 and XMM14 of
//!   the next writer, which is itself inside its own hypercalls most of
//!   the time (writes that reach a VP waiting in its call, and cycles of
//!   writers waiting on each other); at the end each writer checks it
//!   holds the last values written.
//!
//! Output: one line per target, `VPt: N writes, C checks, P partial, T
//! torn`, then `torn-write: ok` (exit 0) or the failures (exit 1).
#![no_std]
#![no_main]

use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hvcall_abi::name::x64 as n;
use hvcall_abi::{partition_id, HvRegisterName, HypercallResult};
use hvcall_guest::HypercallPage;
use rt::console::Dec;
use rt::hv::{gpa, Page};
use rt::outln;

rt::entry!(main);

/// Calls per writer.
const WRITES: u64 = 1_000;
/// Most VPs (and so targets) this guest handles.
const MAX_VPS: usize = 8;
/// SysenterEsp.
const SYSENTER_ESP: u32 = 0x175;

/// What a target saw: written by its own loop, read by its writer.
#[repr(C)]
struct Seen {
    /// Consistent reads of the four registers.
    checks: AtomicU64,
    /// Of those, states with the four values not all equal.
    partial: AtomicU64,
    /// States breaking the order of the elements.
    torn: AtomicU64,
    /// XMM15 as stored by the loop (scratch).
    xmm15: [AtomicU64; 2],
    /// The last torn state: R12, SysenterEsp, DR0, XMM15.
    bad: [AtomicU64; 4],
}

static SEEN: [Seen; MAX_VPS] = [const {
    Seen {
        checks: AtomicU64::new(0),
        partial: AtomicU64::new(0),
        torn: AtomicU64::new(0),
        xmm15: [const { AtomicU64::new(0) }; 2],
        bad: [const { AtomicU64::new(0) }; 4],
    }
}; MAX_VPS];

/// Targets that set their registers to generation 0 and run their loop.
static TARGETS_READY: AtomicU32 = AtomicU32::new(0);
/// Writers that made all their calls.
static WRITERS_DONE: AtomicU32 = AtomicU32::new(0);
/// Writers whose checks failed.
static FAILED: AtomicU32 = AtomicU32::new(0);
static ZERO: [u64; 2] = [0; 2];

/// Per-VP input pages.
static mut INPUT: [Page; MAX_VPS] = [const { Page([0; 4096]) }; MAX_VPS];

fn main(vp: u32, vps: u32) {
    let vps = vps.min(MAX_VPS as u32);
    if vp >= vps {
        rt::halt();
    }
    if vps < 2 {
        outln!("torn-write: needs two VPs");
        rt::exit(2);
    }
    if vp % 2 == 1 {
        target(vp);
    }
    let page = if vp == 0 {
        rt::hv::enable().1
    } else {
        rt::hv::page()
    };
    writer(vp, vps, page);
}

/// The target's loop (never returns). See the module doc.
///
/// Several entries may land between two of the loop's instructions (its
/// thread serves every request waiting before it runs again), so the
/// registers are read in the reverse of the order the elements are
/// applied: XMM15, DR0, SysenterEsp, then R12. Each value only grows over
/// time, so a later read of an earlier element is at least an earlier
/// read of a later one, and the order checked holds for the values read
/// exactly when it holds at every moment. R12 read before and after (the
/// first element of every call) bounds the window to one call.
fn target(vp: u32) -> ! {
    let seen = &SEEN[vp as usize];
    // SAFETY: never returns; changes only registers no Rust code on this
    // VP uses any more (R8–R12, RAX, RCX, RDX, DR0, XMM15, SysenterEsp)
    // and `seen`'s fields (the counters atomically).
    unsafe {
        asm!(
            // Generation 0 everywhere, then ready.
            "xor r12d, r12d",
            "xor eax, eax",
            "xor edx, edx",
            "mov ecx, {msr}",
            "wrmsr",
            "mov dr0, rax",
            "movdqu xmm15, [rsi]",
            "lock inc dword ptr [rdi]",
            // Read in the reverse of the elements' order, between two
            // reads of R12 (see `target`).
            "2:",
            "mov r8, r12",
            "movdqu [r13 + 24], xmm15",
            "mov r11, [r13 + 24]",
            "mov r10, dr0",
            "mov ecx, {msr}",
            "rdmsr",
            "shl rdx, 32",
            "or rax, rdx",
            "mov r9, rax",
            "cmp r8, r12",
            "jne 2b",
            // One state: (R12, KGS, DR0, XMM15) = (r8, r9, r10, r11).
            "cmp r11, [r13 + 32]",
            "jne 4f",
            "cmp r8, r9",
            "jb 4f",
            "cmp r9, r10",
            "jb 4f",
            "cmp r10, r11",
            "jb 4f",
            "lea rax, [r11 + 1]",
            "cmp rax, r8",
            "jb 4f",
            "lock inc qword ptr [r13]",
            "cmp r8, r11",
            "je 2b",
            "lock inc qword ptr [r13 + 8]",
            "jmp 2b",
            "4:",
            "lock inc qword ptr [r13]",
            "lock inc qword ptr [r13 + 16]",
            "mov [r13 + 40], r8",
            "mov [r13 + 48], r9",
            "mov [r13 + 56], r10",
            "mov [r13 + 64], r11",
            "jmp 2b",
            msr = const SYSENTER_ESP,
            // Fixed registers the loop does not otherwise use.
            in("rsi") ZERO.as_ptr(),
            in("rdi") TARGETS_READY.as_ptr(),
            in("r13") seen as *const Seen,
            options(noreturn),
        )
    }
}

/// Writes the input of a SetVpRegisters of VP `vp` at `input`: the
/// header and one element per (name, low, high).
fn put_input(input: *mut u64, vp: u32, elements: &[(HvRegisterName, u64, u64)]) {
    // SAFETY: `input` is this VP's own input page; 16 + 32 * 4 bytes fit.
    unsafe {
        input.write_volatile(partition_id::SELF);
        input.add(1).write_volatile(u64::from(vp));
        for (i, &(name, low, high)) in elements.iter().enumerate() {
            let at = input.add(2 + 4 * i);
            at.write_volatile(u64::from(name.0));
            at.add(1).write_volatile(0);
            at.add(2).write_volatile(low);
            at.add(3).write_volatile(high);
        }
    }
}

/// One memory-form SetVpRegisters; true if it wrote every element.
fn set(
    page: &HypercallPage,
    input: *mut u64,
    vp: u32,
    elements: &[(HvRegisterName, u64, u64)],
) -> bool {
    put_input(input, vp, elements);
    let count = elements.len() as u64;
    let control = 0x51 | (count << 32);
    // SAFETY: CPL 0, enabled page; the call has no output list.
    let raw = unsafe { page.hypercall(control, gpa(input), 0) };
    let r = HypercallResult::from_bits(raw);
    r.status().is_success() && u64::from(r.reps_completed()) == count
}

fn writer(vp: u32, vps: u32, page: HypercallPage) -> ! {
    let target = (vp + 1 < vps).then_some(vp + 1);
    let writers = vps.div_ceil(2);
    let next_writer = (writers > 1).then_some((vp + 2) % (2 * writers));
    // SAFETY: each VP uses its own input page only.
    let input = unsafe { (&raw mut INPUT[vp as usize]).cast::<u64>() };
    while TARGETS_READY.load(Ordering::Acquire) < vps / 2 {
        core::hint::spin_loop();
    }
    let mut ok = true;
    for k in 1..=WRITES {
        if let Some(t) = target {
            let all = [
                (n::R12, k, 0),
                (n::SYSENTER_ESP, k, 0),
                (n::DR0, k, 0),
                (n::XMM15, k, k),
            ];
            ok &= set(&page, input, t, &all);
        }
        if let Some(w) = next_writer {
            ok &= set(&page, input, w, &[(n::DR3, k, 0), (n::XMM14, k, !k)]);
        }
        if !ok {
            outln!(
                "torn-write: VP",
                Dec(u64::from(vp)),
                ": a call failed at generation ",
                Dec(k)
            );
            break;
        }
    }
    WRITERS_DONE.fetch_add(1, Ordering::AcqRel);
    while WRITERS_DONE.load(Ordering::Acquire) < writers {
        core::hint::spin_loop();
    }
    if next_writer.is_some() {
        let (dr3, xmm14) = dr3_xmm14();
        if dr3 != WRITES || xmm14 != [WRITES, !WRITES] {
            outln!(
                "torn-write: VP",
                Dec(u64::from(vp)),
                ": DR3/XMM14 not the last values written: DR3 ",
                Dec(dr3)
            );
            ok = false;
        }
    }
    if let Some(t) = target {
        let seen = &SEEN[t as usize];
        let (checks, partial, torn) = (
            seen.checks.load(Ordering::Acquire),
            seen.partial.load(Ordering::Acquire),
            seen.torn.load(Ordering::Acquire),
        );
        outln!(
            "VP",
            Dec(u64::from(t)),
            ": ",
            Dec(WRITES),
            " writes, ",
            Dec(checks),
            " checks, ",
            Dec(partial),
            " partial, ",
            Dec(torn),
            " torn"
        );
        if torn != 0 {
            let bad = seen.bad.each_ref().map(|b| b.load(Ordering::Acquire));
            outln!(
                "VP",
                Dec(u64::from(t)),
                ": last torn state: R12 ",
                Dec(bad[0]),
                ", SysenterEsp ",
                Dec(bad[1]),
                ", DR0 ",
                Dec(bad[2]),
                ", XMM15 ",
                Dec(bad[3])
            );
        }
        ok &= torn == 0 && checks > 0;
    }
    if !ok {
        FAILED.fetch_add(1, Ordering::AcqRel);
    }
    WRITERS_DONE.fetch_add(1, Ordering::AcqRel);
    if vp != 0 {
        rt::halt();
    }
    while WRITERS_DONE.load(Ordering::Acquire) < 2 * writers {
        core::hint::spin_loop();
    }
    if FAILED.load(Ordering::Acquire) == 0 {
        outln!("torn-write: ok");
        rt::exit(0);
    }
    outln!("torn-write: FAIL");
    rt::exit(1)
}

/// DR3 and XMM14 of this VP.
fn dr3_xmm14() -> (u64, [u64; 2]) {
    let dr3: u64;
    let mut xmm14 = [0u64; 2];
    // SAFETY: reads DR3 and stores XMM14 (plain moves) at CPL 0.
    unsafe {
        asm!("mov {}, dr3", out(reg) dr3);
        asm!("movdqu [{}], xmm14", in(reg) xmm14.as_mut_ptr());
    }
    (dr3, xmm14)
}
