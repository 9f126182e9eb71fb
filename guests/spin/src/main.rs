//! `hvcall run --guest spin`: a guest to try the host tools on (`hvcall
//! regs`, gdb). Every VP holds a known pattern in its registers and spins
//! forever (`pause` in a loop); when its R12 is changed from outside it
//! prints `spin: VPn: r12 changed from OLD to NEW` on COM1 and goes on
//! spinning, now watching for a change from NEW.
//!
//! The pattern (x86 register numbers as in [`rt::pattern::gpr`]): RBX,
//! RCX, RDX, RBP, RSI, RDI, R8–R11, R13–R15 hold `rt::pattern::gpr(i,
//! vp)`; R12 starts as [`first_r12`]; XMM0 and XMM15 hold
//! `rt::pattern::XMM`; RAX holds the address of the VP's table.
#![no_std]
#![no_main]

use core::arch::global_asm;
use core::sync::atomic::{AtomicU32, Ordering};

use rt::console::{Dec, Hex};
use rt::outln;

rt::entry!(main);

/// R12 of VP `vp` when the guest starts.
const fn first_r12(vp: u32) -> u64 {
    0x1212_0000_0000_0000 | vp as u64
}

/// Table slots: 16 general registers (x86 numbering), then XMM0 and
/// XMM15 as two qwords each.
const SLOTS: usize = 20;

static STARTED: AtomicU32 = AtomicU32::new(0);

unsafe extern "sysv64" {
    /// Loads the pattern from `table`, R12 from its slot 12, and spins
    /// until R12 differs from that slot; returns R12's new value.
    fn spin_until_r12_changes(table: *const u64) -> u64;
}

global_asm!(
    ".global spin_until_r12_changes",
    "spin_until_r12_changes:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rax, rdi",
    "movdqu xmm0, [rax + 128]",
    "movdqu xmm15, [rax + 144]",
    "mov rcx, [rax + 8]",
    "mov rdx, [rax + 16]",
    "mov rbx, [rax + 24]",
    "mov rbp, [rax + 40]",
    "mov rsi, [rax + 48]",
    "mov rdi, [rax + 56]",
    "mov r8, [rax + 64]",
    "mov r9, [rax + 72]",
    "mov r10, [rax + 80]",
    "mov r11, [rax + 88]",
    "mov r12, [rax + 96]",
    "mov r13, [rax + 104]",
    "mov r14, [rax + 112]",
    "mov r15, [rax + 120]",
    "2:",
    "pause",
    "cmp r12, [rax + 96]",
    "je 2b",
    "mov rax, r12",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
);

fn main(vp: u32, vps: u32) {
    let mut table = [0u64; SLOTS];
    for (i, slot) in table.iter_mut().enumerate().take(16) {
        *slot = rt::pattern::gpr(i, vp).unwrap_or(0);
    }
    table[12] = first_r12(vp);
    table[16..18].copy_from_slice(&rt::pattern::XMM[0]);
    table[18..20].copy_from_slice(&rt::pattern::XMM[1]);
    if STARTED.fetch_add(1, Ordering::AcqRel) + 1 == vps {
        outln!("spin: ", Dec(u64::from(vps)), " VPs holding their pattern");
    }
    loop {
        // SAFETY: `table` is a valid 20-qword table; the routine keeps the
        // SysV callee-saved registers and clobbers only caller-saved ones
        // (XMM0 and XMM15 included).
        let new = unsafe { spin_until_r12_changes(table.as_ptr()) };
        outln!(
            "spin: VP",
            Dec(u64::from(vp)),
            ": r12 changed from ",
            Hex(table[12]),
            " to ",
            Hex(new)
        );
        table[12] = new;
    }
}
