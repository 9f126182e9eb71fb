//! Bench: the guest half of `hvcall bench` (`crates/hvcall/src/bench.rs`
//! is the host half, which times what this guest does).
//!
//! VP0 marks its entry, enables the hypercall page, then runs segments the
//! host asks for, one at a time: each is a loop of N identical calls
//! through the hypercall page with the control word, RDX, R8 and XMM0 the
//! host put in the table (memory form: the host wrote the input list at
//! [`INPUT_GPA`]; XMM fast form: the header is RDX/R8 and the names XMM0).
//! The loop is six instructions around the call, the same for every
//! figure, so the floor (an unimplemented call code) pays the same loop
//! as the figures. VP1 spins in a loop that makes no exit until the host
//! tells it to halt (`cli; hlt`). Any further VP halts at once.
//!
//! The table the host shares lives at the fixed guest-physical address
//! [`TABLE_GPA`] (4 MiB, above this image, which is checked), as
//! little-endian u64 words; their indexes are the constants below (same
//! layout in the host's `bench.rs`).
#![no_std]
#![no_main]

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use rt::console::Hex;
use rt::outln;

rt::entry!(main);

/// Guest-physical address of the table shared with the host.
pub const TABLE_GPA: u64 = 0x40_0000;
/// The memory form's input list (written by the host).
pub const INPUT_GPA: u64 = 0x40_1000;
/// The memory form's output list.
pub const OUTPUT_GPA: u64 = 0x40_2000;

/// VP0 writes 1 here first thing (the host timestamps it).
const ENTERED: usize = 0;
/// The host writes the number of the next segment to run here.
const GO: usize = 1;
/// VP0 writes the number of the segment it finished here.
const DONE: usize = 2;
/// Calls in a segment.
const ITERATIONS: usize = 3;
/// The calls' control word (RCX).
const CONTROL: usize = 4;
/// The calls' RDX (memory form: the input GPA; fast form: header qword 0).
const RDX: usize = 5;
/// The calls' R8 (memory form: the output GPA; fast form: header qword 1).
const R8: usize = 6;
/// The calls' XMM0, low then high qword (fast form: the names).
const XMM0: usize = 7;
/// VP0 writes the last call's RAX (its result) here.
const RESULT: usize = 9;
/// The host writes 1 here to have VP1 halt.
const VP1_HALT: usize = 10;
/// VP1 writes 1 here once it spins, 2 just before it halts.
const VP1_STATE: usize = 11;
/// The host writes 1 here to end the VM (VP0 exits 0).
const STOP: usize = 12;

unsafe extern "C" {
    /// End of this image (linker script).
    static __bss_end: u8;
}

fn main(vp: u32, _vps: u32) {
    match vp {
        0 => vp0(),
        1 => vp1(),
        _ => {}
    }
}

fn vp0() {
    word(ENTERED).store(1, Ordering::Release);
    let end = (&raw const __bss_end) as u64;
    if end > TABLE_GPA {
        outln!("bench: image ends at ", Hex(end), " above the table");
        rt::exit(2);
    }
    let (_, page) = rt::hv::enable();
    let mut done = 0;
    loop {
        let go = loop {
            if word(STOP).load(Ordering::Acquire) != 0 {
                rt::exit(0);
            }
            let go = word(GO).load(Ordering::Acquire);
            if go != done {
                break go;
            }
            core::hint::spin_loop();
        };
        let n = word(ITERATIONS).load(Ordering::Acquire);
        let xmm0 = [
            word(XMM0).load(Ordering::Acquire),
            word(XMM0 + 1).load(Ordering::Acquire),
        ];
        let result = if n == 0 {
            0
        } else {
            // SAFETY: CPL 0 with the page enabled (`rt::hv::enable`); the
            // host chose the control word and a memory form's GPAs (the
            // table's input and output pages, above this image).
            unsafe {
                calls(
                    page.address() as u64,
                    n,
                    word(CONTROL).load(Ordering::Acquire),
                    word(RDX).load(Ordering::Acquire),
                    word(R8).load(Ordering::Acquire),
                    &xmm0,
                )
            }
        };
        word(RESULT).store(result, Ordering::Release);
        word(DONE).store(go, Ordering::Release);
        done = go;
    }
}

/// Spins without exits until the host asks for a halt.
fn vp1() {
    word(VP1_STATE).store(1, Ordering::Release);
    while word(VP1_HALT).load(Ordering::Acquire) == 0 {
        core::hint::spin_loop();
    }
    word(VP1_STATE).store(2, Ordering::Release);
    rt::halt()
}

/// Makes `n` (at least 1) calls through the page at `page` with RCX =
/// `control`, RDX = `rdx`, R8 = `r8` and XMM0 = `xmm0`; returns the last
/// call's RAX.
///
/// # Safety
/// CPL 0, `page` enabled, CR4.OSFXSR set; a memory form's output GPA may
/// be written by the hypervisor.
unsafe fn calls(page: u64, n: u64, control: u64, rdx: u64, r8: u64, xmm0: &[u64; 2]) -> u64 {
    let result;
    // SAFETY: the page returns with `ret` and changes RAX, RCX, RDX, R8
    // (declared) and, in the fast form, the XMM output pairs after XMM0,
    // which nothing here uses (the compiler emits no SSE for this
    // target). Not `nomem`: the hypervisor writes the output list.
    unsafe {
        asm!(
            "movdqu xmm0, [{xmm0}]",
            "2:",
            "mov rcx, {control}",
            "mov rdx, {rdx}",
            "mov r8, {r8}",
            "call {page}",
            "dec {n}",
            "jnz 2b",
            xmm0 = in(reg) xmm0.as_ptr(),
            control = in(reg) control,
            rdx = in(reg) rdx,
            r8 = in(reg) r8,
            page = in(reg) page,
            n = inout(reg) n => _,
            out("rax") result,
            out("rcx") _,
            out("rdx") _,
            out("r8") _,
        );
    }
    result
}

/// Word `index` of the table.
fn word(index: usize) -> &'static AtomicU64 {
    // SAFETY: RAM is identity-mapped (boot protocol), the table lies in RAM
    // above this image (checked by VP0 before it calls; the host gives the
    // VM enough RAM) and is used only through atomics here. The pointer is
    // 8-byte aligned.
    unsafe { AtomicU64::from_ptr((TABLE_GPA as *mut u64).add(index)) }
}
