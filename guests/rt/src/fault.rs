//! Exceptions: an IDT for vectors 0–31 whose handlers either resume at a
//! recovery point the running code armed (so a test can expect #UD or #GP
//! and go on) or print the exception and end the VM with status 4.
//!
//! Recovery state is global, so one VP at a time may expect a fault:
//! [`expect`] takes a lock for that. Code arms recovery by storing a resume
//! address in [`RECOVER_RIP`] and the stack pointer to resume with in
//! [`RECOVER_RSP`] (`recoverable!` does it for inline asm, see [`rdmsr`]);
//! the handler disarms it, records the fault and resumes there at CPL 0.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::console::{outln, Hex};

/// Invalid opcode.
pub const UD: u64 = 6;
/// General protection.
pub const GP: u64 = 13;

/// Resume address of the armed recovery point; 0 when none is armed.
pub static RECOVER_RIP: AtomicU64 = AtomicU64::new(0);
/// Stack pointer to resume with.
pub static RECOVER_RSP: AtomicU64 = AtomicU64::new(0);
static FAULT_VECTOR: AtomicU64 = AtomicU64::new(NONE);
static FAULT_ERROR: AtomicU64 = AtomicU64::new(0);
static FAULT_RIP: AtomicU64 = AtomicU64::new(0);
static LOCK: AtomicBool = AtomicBool::new(false);
const NONE: u64 = u64::MAX;

/// An exception taken and recovered from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The vector (6 = #UD, 13 = #GP, ...).
    pub vector: u64,
    /// The error code (0 for vectors without one).
    pub error: u64,
    /// RIP of the faulting instruction.
    pub rip: u64,
}

/// Ownership of the recovery state; [`Expect::finish`] reports the fault.
pub struct Expect(());

/// Takes the recovery lock and clears the fault record.
pub fn expect() -> Expect {
    while LOCK.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    FAULT_VECTOR.store(NONE, Ordering::SeqCst);
    RECOVER_RIP.store(0, Ordering::SeqCst);
    Expect(())
}

impl Expect {
    /// The fault taken since [`expect`], if any; releases the lock.
    pub fn finish(self) -> Option<Fault> {
        RECOVER_RIP.store(0, Ordering::SeqCst);
        let vector = FAULT_VECTOR.load(Ordering::SeqCst);
        (vector != NONE).then(|| Fault {
            vector,
            error: FAULT_ERROR.load(Ordering::SeqCst),
            rip: FAULT_RIP.load(Ordering::SeqCst),
        })
    }
}

impl Drop for Expect {
    fn drop(&mut self) {
        LOCK.store(false, Ordering::Release);
    }
}

/// Inline asm running one instruction that may fault, with recovery armed
/// around it: a fault resumes right after the instruction with the same
/// RSP (and is then reported by [`Expect::finish`]). The operands follow
/// the instruction. Use inside `unsafe`, holding an [`Expect`].
macro_rules! recoverable {
    ($instruction:literal, $($operands:tt)*) => {
        asm!(
            "lea {tmp}, [rip + 2f]",
            "mov [{rip}], {tmp}",
            "mov [{rsp}], rsp",
            $instruction,
            "mov qword ptr [{rip}], 0",
            "2:",
            rip = in(reg) RECOVER_RIP.as_ptr(),
            rsp = in(reg) RECOVER_RSP.as_ptr(),
            tmp = out(reg) _,
            $($operands)*
        )
    };
}

/// RDMSR that reports a fault (#GP) instead of dying.
pub fn rdmsr(msr: u32) -> Result<u64, Fault> {
    let guard = expect();
    let (lo, hi): (u32, u32);
    // SAFETY: RDMSR at CPL 0 either works or faults; a fault resumes
    // after it with the same RSP. The asm writes only the recovery statics.
    unsafe {
        recoverable!(
            "rdmsr",
            in("ecx") msr,
            out("eax") lo,
            out("edx") hi,
        );
    }
    match guard.finish() {
        Some(f) => Err(f),
        None => Ok(u64::from(lo) | (u64::from(hi) << 32)),
    }
}

/// WRMSR that reports a fault (#GP) instead of dying.
pub fn wrmsr(msr: u32, value: u64) -> Result<(), Fault> {
    let guard = expect();
    // SAFETY: as in `rdmsr`; the caller picks an MSR whose write does not
    // break the running program.
    unsafe {
        recoverable!(
            "wrmsr",
            in("ecx") msr,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
        );
    }
    guard.finish().map_or(Ok(()), Err)
}

const VECTORS: usize = 32;

/// The IDT: 32 interrupt gates of 16 bytes.
#[repr(C, align(16))]
struct Idt([[u64; 2]; VECTORS]);

static mut IDT: Idt = Idt([[0; 2]; VECTORS]);

unsafe extern "C" {
    static rt_vector_table: [u64; VECTORS];
}

/// Fills the IDT with interrupt gates to the vector stubs (VP0, once).
pub(crate) fn build_idt() {
    let cs: u16;
    // SAFETY: reads CS.
    unsafe { asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags)) };
    // SAFETY: the table is defined in the global asm below.
    let handlers = unsafe { &rt_vector_table };
    let idt = (&raw mut IDT).cast::<[u64; 2]>();
    for (v, &handler) in handlers.iter().enumerate() {
        let low = (handler & 0xFFFF)
            | (u64::from(cs) << 16)
            | (0x8E << 40) // present, DPL 0, 64-bit interrupt gate
            | ((handler >> 16) & 0xFFFF) << 48;
        // SAFETY: `v` < VECTORS; only VP0 writes, before the gate opens.
        unsafe { idt.add(v).write([low, handler >> 32]) };
    }
}

/// Loads the IDT on this VP.
pub(crate) fn load_idt() {
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let p = Pointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: (&raw const IDT) as u64,
    };
    // SAFETY: the IDT is built and lives forever.
    unsafe { asm!("lidt [{0}]", in(reg) &p, options(readonly, nostack, preserves_flags)) };
}

extern "C" fn unexpected(vector: u64, error: u64, rip: u64) -> ! {
    outln!(
        "rt: unexpected exception ",
        Hex(vector),
        " error ",
        Hex(error),
        " at ",
        Hex(rip)
    );
    crate::exit(4)
}

// Stubs push a dummy error code when the CPU pushes none, then the vector.
// The common handler records the fault and, if a recovery point is armed,
// rewrites the frame to resume there at CPL 0 (CS/SS of the handler).
// Frame after `push rax`: rax 0, vector 8, error 16, rip 24, cs 32,
// rflags 40, rsp 48, ss 56.
global_asm!(
    ".macro rt_stub vec, err",
    "rt_vector_\\vec:",
    ".if \\err == 0",
    "push 0",
    ".endif",
    "push \\vec",
    "jmp rt_fault_common",
    ".endm",
    ".irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31",
    "rt_stub \\v, 0",
    ".endr",
    ".irp v, 8,10,11,12,13,14,17,21,29,30",
    "rt_stub \\v, 1",
    ".endr",
    "rt_fault_common:",
    "push rax",
    "mov rax, [rsp + 8]",
    "mov [rip + {vector}], rax",
    "mov rax, [rsp + 16]",
    "mov [rip + {error}], rax",
    "mov rax, [rsp + 24]",
    "mov [rip + {frip}], rax",
    "mov rax, [rip + {rrip}]",
    "test rax, rax",
    "jz 3f",
    "mov [rsp + 24], rax",
    "mov rax, [rip + {rrsp}]",
    "mov [rsp + 48], rax",
    "mov ax, cs",
    "movzx eax, ax",
    "mov [rsp + 32], rax",
    "mov ax, ss",
    "movzx eax, ax",
    "mov [rsp + 56], rax",
    "mov qword ptr [rip + {rrip}], 0",
    "pop rax",
    "add rsp, 16",
    "iretq",
    "3:",
    "mov rdi, [rsp + 8]",
    "mov rsi, [rsp + 16]",
    "mov rdx, [rsp + 24]",
    "and rsp, -16",
    "call {unexpected}",
    "ud2",
    ".pushsection .rodata",
    ".balign 8",
    ".global rt_vector_table",
    "rt_vector_table:",
    ".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    ".quad rt_vector_\\v",
    ".endr",
    ".popsection",
    vector = sym FAULT_VECTOR,
    error = sym FAULT_ERROR,
    frip = sym FAULT_RIP,
    rrip = sym RECOVER_RIP,
    rrsp = sym RECOVER_RSP,
    unexpected = sym unexpected,
);
