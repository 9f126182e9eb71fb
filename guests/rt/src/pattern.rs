//! A known register pattern for VPs that are read by others: [`hold`]
//! loads it, announces it and spins forever without touching it, so a
//! reader can compare every value it gets with [`gpr`] and [`XMM`].

use core::arch::asm;
use core::sync::atomic::AtomicU32;

/// XMM0 and XMM15 while holding the pattern.
pub const XMM: [[u64; 2]; 2] = [
    [0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210],
    [0x0F0F_0F0F_0F0F_0F0F, 0xF0F0_F0F0_F0F0_F0F0],
];

/// The value general register `index` (x86 encoding order: 0 RAX, 1 RCX,
/// ... 15 R15) holds on VP `vp` while it runs [`hold`]; `None` for RAX
/// (the address of the ready counter) and RSP.
pub const fn gpr(index: usize, vp: u32) -> Option<u64> {
    match index {
        0 | 4 => None,
        15 => Some(0xF0F0_0000_0000_0000 | vp as u64),
        _ => Some(0x1111_1111_1111_1111 * index as u64),
    }
}

/// Loads the pattern, increments `ready` and spins forever.
pub fn hold(vp: u32, ready: &AtomicU32) -> ! {
    // SAFETY: never returns; writes only `ready` (atomically) and reads
    // the XMM pattern.
    unsafe {
        asm!(
            "movdqu xmm0, [rcx]",
            "movdqu xmm15, [rcx + 16]",
            "mov r14, 0xf0f0000000000000",
            "or r15, r14",
            "mov rcx, 0x1111111111111111",
            "mov rdx, 0x2222222222222222",
            "mov rbx, 0x3333333333333333",
            "mov rbp, 0x5555555555555555",
            "mov rsi, 0x6666666666666666",
            "mov rdi, 0x7777777777777777",
            "mov r8, 0x8888888888888888",
            "mov r9, 0x9999999999999999",
            "mov r10, 0xaaaaaaaaaaaaaaaa",
            "mov r11, 0xbbbbbbbbbbbbbbbb",
            "mov r12, 0xcccccccccccccccc",
            "mov r13, 0xdddddddddddddddd",
            "mov r14, 0xeeeeeeeeeeeeeeee",
            "lock inc dword ptr [rax]",
            "2:",
            "pause",
            "jmp 2b",
            in("r15") u64::from(vp),
            in("rax") ready.as_ptr(),
            in("rcx") XMM.as_ptr(),
            options(noreturn),
        )
    }
}
