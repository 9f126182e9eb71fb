//! Torn-read check (docs/contract.md §5: one consistent snapshot per call).
//! VP1 loops `inc rbx; mov dr0, rbx; mov r12, rbx`, keeping RBX, DR0 and
//! R12 equal apart from the one or two instructions in between, so between
//! any two of its instructions `r12 <= dr0 <= rbx <= r12 + 1`. VP0 reads
//! all three through HvCallGetVpRegisters (memory form) 10,000 times; a
//! read breaking that took registers from different moments (DR0 also
//! lives in different KVM state than the GPRs). VP0 also checks that VP1
//! really ran meanwhile (RBX grew), prints the counts and exits 0, or 1 on
//! a torn read or a failed call.
#![no_std]
#![no_main]

use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

use hvcall_abi::name::x64 as n;
use hvcall_abi::{partition_id, HypercallResult};
use rt::console::{Dec, Hex};
use rt::hv::{gpa, Page};
use rt::outln;

rt::entry!(main);

/// Reads of VP1.
const READS: u32 = 10_000;

static READY: AtomicU32 = AtomicU32::new(0);
static mut INPUT: Page = Page([0; 4096]);
static mut OUTPUT: Page = Page([0; 4096]);

fn main(vp: u32, vps: u32) {
    match vp {
        0 => vp0(vps),
        1 => vp1(),
        _ => {}
    }
}

fn vp1() -> ! {
    // SAFETY: never returns; changes only RBX, R12, DR0 (no breakpoint is
    // enabled in DR7) and the ready counter.
    unsafe {
        asm!(
            "xor ebx, ebx",
            "xor r12d, r12d",
            "mov dr0, rbx",
            "lock inc dword ptr [rax]",
            "2:",
            "inc rbx",
            "mov dr0, rbx",
            "mov r12, rbx",
            "jmp 2b",
            in("rax") READY.as_ptr(),
            options(noreturn),
        )
    }
}

fn vp0(vps: u32) {
    if vps < 2 {
        outln!("torn: needs two VPs");
        rt::exit(2);
    }
    let (_, page) = rt::hv::enable();
    while READY.load(Ordering::Acquire) == 0 {
        core::hint::spin_loop();
    }
    let input = gpa(&raw const INPUT);
    let output = gpa(&raw const OUTPUT);
    let words = input as *mut u64;
    // SAFETY: INPUT is ours; header (SELF, VP 1, VTL 0) and three names.
    unsafe {
        words.write(partition_id::SELF);
        words.add(1).write(1);
        words
            .add(2)
            .write(u64::from(n::RBX.0) | (u64::from(n::R12.0) << 32));
        words.add(3).write(u64::from(n::DR0.0));
    }
    let values = output as *const u64;
    let control = 0x50 | (3 << 32);
    let (mut equal, mut behind, mut torn) = (0u64, 0u64, 0u64);
    let mut first = None;
    let mut last = 0;
    for _ in 0..READS {
        // SAFETY: CPL 0, enabled page; the output list is OUTPUT.
        let raw = unsafe { page.hypercall(control, input, output) };
        let result = HypercallResult::from_bits(raw);
        if !result.status().is_success() || result.reps_completed() != 3 {
            outln!("torn: call failed, result ", Hex(raw));
            rt::exit(1);
        }
        // SAFETY: the hypervisor wrote three values into OUTPUT.
        let (rbx, r12, dr0) = unsafe {
            (
                values.read_volatile(),
                values.add(2).read_volatile(),
                values.add(4).read_volatile(),
            )
        };
        if r12 == rbx && dr0 == rbx {
            equal += 1;
        } else if r12 <= dr0 && dr0 <= rbx && rbx == r12.wrapping_add(1) {
            behind += 1;
        } else {
            torn += 1;
            if torn <= 5 {
                outln!(
                    "torn read: rbx ",
                    Hex(rbx),
                    " dr0 ",
                    Hex(dr0),
                    " r12 ",
                    Hex(r12)
                );
            }
        }
        first.get_or_insert(rbx);
        last = rbx;
    }
    let progressed = first.is_some_and(|f| last > f);
    outln!(
        "torn: ",
        Dec(u64::from(READS)),
        " reads of VP1: ",
        Dec(equal),
        " with rbx == dr0 == r12, ",
        Dec(behind),
        " mid-iteration, ",
        Dec(torn),
        " torn; rbx advanced ",
        Dec(last.wrapping_sub(first.unwrap_or(0)))
    );
    if torn != 0 || !progressed {
        outln!(
            "torn: FAIL",
            if progressed {
                ""
            } else {
                " (VP1 did not run between reads)"
            }
        );
        rt::exit(1);
    }
    outln!("torn: ok");
    rt::exit(0)
}
