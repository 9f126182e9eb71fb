//! COM1 output (port 0x3F8) without `core::fmt`: values implement [`Show`]
//! and [`outln!`] prints a list of them as one line under a lock, so lines
//! of different VPs do not interleave.
//!
//! The hvcall VMM's line status register always reports the transmitter
//! empty, so bytes are written without polling.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

/// COM1's data port.
pub const COM1: u16 = 0x3F8;

static LOCK: AtomicBool = AtomicBool::new(false);

/// Writes one byte to COM1.
pub fn put(byte: u8) {
    // SAFETY: a port write with no memory effects.
    unsafe {
        asm!("out dx, al", in("dx") COM1, in("al") byte, options(nomem, nostack, preserves_flags))
    };
}

/// Something printable on the console.
pub trait Show {
    /// Writes `self` to COM1.
    fn show(&self);
}

impl Show for str {
    fn show(&self) {
        self.bytes().for_each(put);
    }
}

impl<T: Show + ?Sized> Show for &T {
    fn show(&self) {
        (**self).show()
    }
}

/// A number printed as `0x` and 16 hex digits.
#[derive(Copy, Clone)]
pub struct Hex(pub u64);

impl Show for Hex {
    fn show(&self) {
        "0x".show();
        digits(self.0);
    }
}

fn digits(v: u64) {
    for i in (0..16).rev() {
        put(b"0123456789abcdef"[((v >> (4 * i)) & 0xF) as usize]);
    }
}

/// A number printed in decimal.
#[derive(Copy, Clone)]
pub struct Dec(pub u64);

impl Show for Dec {
    fn show(&self) {
        let mut buf = [0u8; 20];
        let mut v = self.0;
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        buf[i..].iter().copied().for_each(put);
    }
}

/// Text padded with spaces to a width.
#[derive(Copy, Clone)]
pub struct Pad<'a>(pub &'a str, pub usize);

impl Show for Pad<'_> {
    fn show(&self) {
        self.0.show();
        (self.0.len()..self.1).for_each(|_| put(b' '));
    }
}

/// Holds the console lock while alive.
pub struct Guard(());

/// Takes the console lock.
pub fn lock() -> Guard {
    while LOCK.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    Guard(())
}

impl Drop for Guard {
    fn drop(&mut self) {
        LOCK.store(false, Ordering::Release);
    }
}

/// Prints its arguments (each [`Show`]) and a newline, as one locked line.
#[macro_export]
macro_rules! outln {
    ($($item:expr),* $(,)?) => {{
        let _guard = $crate::console::lock();
        $( $crate::console::Show::show(&$item); )*
        $crate::console::put(b'\n');
    }};
}
pub use outln;

/// Prints a panic without taking the lock (the panicking VP may hold it).
pub(crate) fn write_panic(info: &core::panic::PanicInfo<'_>) {
    struct Raw;
    impl core::fmt::Write for Raw {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            s.show();
            Ok(())
        }
    }
    let _ = core::fmt::write(&mut Raw, format_args!("\npanic: {info}\n"));
}
