//! A tiny runtime for freestanding hvcall guests (the boot protocol
//! of the top-level README: every VP enters at `_start` in long mode at CPL 0 with RDI = VP
//! index, RSI = VP count, RSP = its own stack).
//!
//! - [`start`]: the `_start` entry, the `.bss` check and the gate that
//!   holds other VPs until VP0 has set up shared state;
//! - [`console`]: COM1 output without `core::fmt` (guest code is emulated
//!   at ~1 µs per instruction, so printing stays small);
//! - [`hv`]: discovery, guest OS ID and the hypercall page;
//! - [`pattern`]: a known register pattern a VP holds while others read it;
//! - [`fault`]: an IDT whose handlers let code expect #UD/#GP and recover;
//! - [`exit`] / [`halt`]: end the VM through port 0xF4 or park a VP.
//!
//! A guest names its main function with [`entry!`]: `fn(vp, vps)`; when
//! it returns, the VP halts.
#![no_std]

pub mod console;
pub mod fault;
pub mod hv;
pub mod pattern;
pub mod start;

use core::arch::asm;

/// The port whose write of v ends the VM with exit status v.
pub const EXIT_PORT: u16 = 0xF4;

/// Declares the guest's main function, called on every VP after the
/// runtime is set up: `fn main(vp: u32, vps: u32)`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// Called by the runtime on every VP.
        #[unsafe(no_mangle)]
        pub extern "C" fn rt_guest_main(vp: u32, vps: u32) {
            $main(vp, vps)
        }
    };
}

/// Ends the VM: the hvcall VMM exits with `status`.
pub fn exit(status: u8) -> ! {
    // SAFETY: a port write has no memory effects; the exit port is the boot
    // protocol's way to end the VM.
    unsafe {
        asm!("out dx, al", in("dx") EXIT_PORT, in("al") status, options(nomem, nostack, preserves_flags))
    };
    halt()
}

/// Parks this VP for good (interrupts off). When every VP is parked the
/// VMM ends the VM with status 0.
pub fn halt() -> ! {
    loop {
        // SAFETY: CLI; HLT only stops this VP.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::write_panic(info);
    exit(101)
}
