//! The entry point: `_start` (placed first by the linker script), the
//! zero-check of `.bss` (the loader must zero it) and the gate that holds
//! VPs other than VP0 until VP0 has checked `.bss` and built the IDT.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::{console, fault};

// Non-zero, so both live in `.data` (loaded from the file), never `.bss`.
const GATE_CLOSED: u32 = 0xC105_ED00;
const GATE_OPEN: u32 = 0x0BE7_0BE7;
static GATE: AtomicU32 = AtomicU32::new(GATE_CLOSED);

global_asm!(
    ".pushsection .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "and rsp, -16",
    "call {start}",
    "ud2",
    ".popsection",
    start = sym rt_start,
);

unsafe extern "C" {
    static __bss_start: u8;
    static __bss_end: u8;
    fn rt_guest_main(vp: u32, vps: u32);
}

extern "C" fn rt_start(vp: u64, vps: u64) -> ! {
    if vp == 0 {
        check_bss();
        fault::build_idt();
        GATE.store(GATE_OPEN, Ordering::Release);
    } else {
        while GATE.load(Ordering::Acquire) != GATE_OPEN {
            core::hint::spin_loop();
        }
    }
    fault::load_idt();
    // SAFETY: `rt_guest_main` is defined by the guest through `entry!`.
    unsafe { rt_guest_main(vp as u32, vps as u32) };
    crate::halt()
}

/// Exits with status 3 if any byte of `.bss` is not zero.
fn check_bss() {
    let start = (&raw const __bss_start) as usize;
    let end = (&raw const __bss_end) as usize;
    let mut p = start;
    while p + 8 <= end {
        // SAFETY: `p` is inside `.bss` (linker symbols), 8-byte aligned.
        if unsafe { core::ptr::read_volatile(p as *const u64) } != 0 {
            console::outln!("rt: .bss not zeroed at ", console::Hex(p as u64));
            crate::exit(3);
        }
        p += 8;
    }
}
