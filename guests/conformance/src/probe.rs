//! A hypercall with every register under control: [`call`] loads all
//! general registers but RSP and XMM0–15 from a [`CpuState`], calls the
//! hypercall page and stores them back, also when the call faults (#UD),
//! so cases can check which registers a call changed (docs/contract.md §3, §4,
//! §5; [`only_changed`]) and that a #UD changed nothing (step 5b).

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use rt::fault::{self, Fault, RECOVER_RIP, RECOVER_RSP};

use crate::report::{eq, Outcome};

/// Register indexes in x86 encoding order.
pub mod reg {
    /// RAX.
    pub const RAX: usize = 0;
    /// RCX.
    pub const RCX: usize = 1;
    /// RDX.
    pub const RDX: usize = 2;
    /// RSP (not loaded).
    pub const RSP: usize = 4;
    /// R8.
    pub const R8: usize = 8;
}

/// General registers (x86 order; RSP's slot is ignored) and XMM0–15.
#[derive(Copy, Clone, PartialEq, Eq)]
#[repr(C)]
pub struct CpuState {
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8–R15.
    pub gpr: [u64; 16],
    /// XMM0–15 as (low, high).
    pub xmm: [[u64; 2]; 16],
}

impl CpuState {
    /// Distinct values in every register.
    pub fn pattern() -> Self {
        let mut s = CpuState {
            gpr: [0; 16],
            xmm: [[0; 2]; 16],
        };
        for i in 0..16 {
            s.gpr[i] = 0xA5A5_0000_0000_0000 | (i as u64 * 0x0001_0001_0001);
            s.xmm[i] = [
                0xC3C3_0000_0000_0000 | i as u64,
                0x3C3C_0000_0000_0000 | (i as u64) << 8,
            ];
        }
        s
    }
}

/// Fails unless `after` equals `before` outside RAX, RCX and XMM
/// `outputs` (XMM indexes), and RCX differs at most in its rep start.
pub fn only_changed(
    before: &CpuState,
    after: &CpuState,
    outputs: core::ops::Range<usize>,
) -> Outcome {
    for i in 0..16 {
        if i != reg::RAX && i != reg::RCX && i != reg::RSP {
            eq("general register kept", after.gpr[i], before.gpr[i])?;
        }
    }
    eq(
        "RCX apart from rep start",
        after.gpr[reg::RCX] & !(0xFFF << 48),
        before.gpr[reg::RCX] & !(0xFFF << 48),
    )?;
    for x in 0..16 {
        if !outputs.contains(&x) {
            eq("XMM low qword kept", after.xmm[x][0], before.xmm[x][0])?;
            eq("XMM high qword kept", after.xmm[x][1], before.xmm[x][1])?;
        }
    }
    Ok(())
}

/// Address `conf_probe` calls (every register is loaded, so it comes from
/// memory).
static TARGET: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    fn conf_probe(state: *mut CpuState);
}

/// Calls `target` (the hypercall page) with `state` loaded and stores the
/// registers back into it; reports an exception taken meanwhile.
pub fn call(target: u64, state: &mut CpuState) -> Option<Fault> {
    let guard = fault::expect();
    TARGET.store(target, Ordering::SeqCst);
    // SAFETY: `conf_probe` preserves the callee-saved registers and RSP,
    // reads and writes only `state`, TARGET and the recovery statics; the
    // target is the hypercall page, which returns with `ret` (or faults and
    // is recovered at the store sequence with the saved RSP).
    unsafe { conf_probe(state) };
    guard.finish()
}

// conf_probe(rdi = state): push callee-saved registers and the state
// pointer, arm recovery at label 9 (right after the call, same RSP), load
// everything, call, then (also after a recovered fault) swap the state
// pointer back in and store everything.
global_asm!(
    ".global conf_probe",
    "conf_probe:",
    save_callee_saved!(),
    "push rdi",
    "lea rax, [rip + 9f]",
    "mov [rip + {rrip}], rax",
    "mov [rip + {rrsp}], rsp",
    "movdqu xmm0, [rdi + 128]",
    "movdqu xmm1, [rdi + 144]",
    "movdqu xmm2, [rdi + 160]",
    "movdqu xmm3, [rdi + 176]",
    "movdqu xmm4, [rdi + 192]",
    "movdqu xmm5, [rdi + 208]",
    "movdqu xmm6, [rdi + 224]",
    "movdqu xmm7, [rdi + 240]",
    "movdqu xmm8, [rdi + 256]",
    "movdqu xmm9, [rdi + 272]",
    "movdqu xmm10, [rdi + 288]",
    "movdqu xmm11, [rdi + 304]",
    "movdqu xmm12, [rdi + 320]",
    "movdqu xmm13, [rdi + 336]",
    "movdqu xmm14, [rdi + 352]",
    "movdqu xmm15, [rdi + 368]",
    "mov rax, [rdi]",
    "mov rcx, [rdi + 8]",
    "mov rdx, [rdi + 16]",
    "mov rbx, [rdi + 24]",
    "mov rbp, [rdi + 40]",
    "mov rsi, [rdi + 48]",
    "mov r8, [rdi + 64]",
    "mov r9, [rdi + 72]",
    "mov r10, [rdi + 80]",
    "mov r11, [rdi + 88]",
    "mov r12, [rdi + 96]",
    "mov r13, [rdi + 104]",
    "mov r14, [rdi + 112]",
    "mov r15, [rdi + 120]",
    "mov rdi, [rdi + 56]",
    "call [rip + {target}]",
    "9:",
    "xchg rdi, [rsp]",
    "mov [rdi], rax",
    "mov [rdi + 8], rcx",
    "mov [rdi + 16], rdx",
    "mov [rdi + 24], rbx",
    "mov [rdi + 40], rbp",
    "mov [rdi + 48], rsi",
    "mov [rdi + 64], r8",
    "mov [rdi + 72], r9",
    "mov [rdi + 80], r10",
    "mov [rdi + 88], r11",
    "mov [rdi + 96], r12",
    "mov [rdi + 104], r13",
    "mov [rdi + 112], r14",
    "mov [rdi + 120], r15",
    "mov rax, [rsp]",
    "mov [rdi + 56], rax",
    "movdqu [rdi + 128], xmm0",
    "movdqu [rdi + 144], xmm1",
    "movdqu [rdi + 160], xmm2",
    "movdqu [rdi + 176], xmm3",
    "movdqu [rdi + 192], xmm4",
    "movdqu [rdi + 208], xmm5",
    "movdqu [rdi + 224], xmm6",
    "movdqu [rdi + 240], xmm7",
    "movdqu [rdi + 256], xmm8",
    "movdqu [rdi + 272], xmm9",
    "movdqu [rdi + 288], xmm10",
    "movdqu [rdi + 304], xmm11",
    "movdqu [rdi + 320], xmm12",
    "movdqu [rdi + 336], xmm13",
    "movdqu [rdi + 352], xmm14",
    "movdqu [rdi + 368], xmm15",
    "mov qword ptr [rip + {rrip}], 0",
    "pop rdi",
    restore_callee_saved!(),
    "ret",
    rrip = sym RECOVER_RIP,
    rrsp = sym RECOVER_RSP,
    target = sym TARGET,
);
