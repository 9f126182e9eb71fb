//! docs/contract.md §4, x86 32-bit row: a caller in compatibility mode
//! (EFER.LMA = 1, CS.L = 0; the boot GDT's 32-bit code segment 0x18)
//! passes the control in EDX:EAX, the input GPA in EBX:ECX and the output
//! GPA in EDI:ESI, and gets the result in EDX:EAX; step 5c: 32-bit callers
//! have no fast output.

use core::arch::global_asm;

use hvcall_abi::name::x64 as n;
use hvcall_abi::HvStatus as S;
use rt::fault::{self, RECOVER_RIP, RECOVER_RSP};

use crate::env::{control, fill, input, output, self_input, slot, untouched, Env, FAST};
use crate::report::{check, eq, no_fault, Mismatch, Report};

/// Selector of the boot GDT's flat 32-bit code segment.
const CODE32: u64 = 0x18;

/// What the 32-bit code reads and writes (below 4 GiB, like the image).
#[repr(C)]
struct Args {
    control: u64,
    input: u64,
    output: u64,
    result: u64,
    page: u32,
    _pad: u32,
    /// EBX, ECX, ESI, EDI after the call.
    after: [u32; 4],
}

static mut ARGS: Args = Args {
    control: 0,
    input: 0,
    output: 0,
    result: 0,
    page: 0,
    _pad: 0,
    after: [0; 4],
};
static mut SAVED_RSP: u64 = 0;

unsafe extern "C" {
    fn conf_call32();
    static conf_back64: u8;
}

/// One hypercall from compatibility mode; returns (result, EBX, ECX, ESI,
/// EDI after the call).
fn call32(env: &Env, control: u64, input: u64, output: u64) -> Result<(u64, [u32; 4]), Mismatch> {
    let args = &raw mut ARGS;
    // SAFETY: VP0 alone uses ARGS; the page address fits 32 bits (the
    // image is linked at 2 MiB).
    unsafe {
        (*args).control = control;
        (*args).input = input;
        (*args).output = output;
        (*args).page = env.page_va() as u32;
    }
    let guard = fault::expect();
    // SAFETY: as above; recovery resumes at conf_back64, which restores RSP.
    unsafe {
        RECOVER_RSP.store(0, core::sync::atomic::Ordering::SeqCst);
        RECOVER_RIP.store(
            (&raw const conf_back64) as u64,
            core::sync::atomic::Ordering::SeqCst,
        );
        conf_call32();
    }
    no_fault(guard.finish().map_or(Ok(()), Err))?;
    // SAFETY: written by the 32-bit code.
    unsafe { Ok(((*args).result, (*args).after)) }
}

/// Runs the 32-bit caller cases.
pub fn run(r: &mut Report, env: &Env) {
    r.case(
        "§4 x86 32-bit",
        "compatibility-mode caller: EDX:EAX control/result, EBX:ECX input, EDI:ESI output",
        || {
            self_input(&[n::VP_INDEX.0, n::CS.0, n::RIP.0]);
            fill(output(), 4);
            let (result, after) = call32(env, control(3, 0), input(), output())?;
            eq(
                "status (EAX)",
                result & 0xFFFF,
                u64::from(env.self_status(S::SUCCESS)),
            )?;
            eq(
                "ECX (input GPA low)",
                u64::from(after[1]),
                input() & 0xFFFF_FFFF,
            )?;
            eq("EBX (input GPA high)", u64::from(after[0]), input() >> 32)?;
            eq(
                "ESI (output GPA low)",
                u64::from(after[2]),
                output() & 0xFFFF_FFFF,
            )?;
            eq("EDI (output GPA high)", u64::from(after[3]), output() >> 32)?;
            if !env.privileged() {
                return untouched(output(), 0..4);
            }
            eq("reps completed (EDX)", result >> 32 & 0xFFF, 3)?;
            eq("VP index", slot(output(), 0).0, 0)?;
            let cs = slot(output(), 1).1;
            eq("CS selector", cs >> 32 & 0xFFFF, CODE32)?;
            eq("CS L = 0, D = 1", cs >> 61 & 3, 2)?;
            check(
                "RIP inside the hypercall page",
                (env.page_va()..env.page_va() + 4096).contains(&slot(output(), 2).0),
            )?;
            untouched(output(), 3..4)
        },
    );
    r.case(
        "§4 x86 32-bit",
        "reserved control bit 60 (EDX bit 28) -> INVALID_HYPERCALL_INPUT in EAX",
        || {
            self_input(&[n::VP_INDEX.0]);
            fill(output(), 1);
            let (result, _) = call32(env, control(1, 0) | 1 << 60, input(), output())?;
            eq("result", result, u64::from(S::INVALID_HYPERCALL_INPUT.0))?;
            untouched(output(), 0..1)
        },
    );
    if env.xmm() {
        r.case(
            "step 5c",
            "fast call from a 32-bit caller (no fast output) -> INVALID_HYPERCALL_INPUT",
            || {
                let (result, _) =
                    call32(env, control(1, 0) | FAST, u64::MAX, n::VP_INDEX.0.into())?;
                eq("result", result, u64::from(S::INVALID_HYPERCALL_INPUT.0))
            },
        );
    } else {
        r.skip(
            "step 5c",
            "fast call from a 32-bit caller",
            "XMM fast bits withheld: step 5b decides first",
        );
    }
}

// conf_call32: save callee-saved registers and RSP, far-return into the
// 32-bit segment, make the call with the x86 register pairs, store the
// results, far-return to conf_back64, restore.
global_asm!(
    ".global conf_call32",
    ".global conf_back64",
    "conf_call32:",
    save_callee_saved!(),
    "mov [rip + {saved}], rsp",
    "push {code32}",
    "lea rax, [rip + 2f]",
    "push rax",
    ".byte 0x48, 0xcb",
    ".code32",
    "2:",
    "mov eax, dword ptr [{args}]",
    "mov edx, dword ptr [{args} + 4]",
    "mov ecx, dword ptr [{args} + 8]",
    "mov ebx, dword ptr [{args} + 12]",
    "mov esi, dword ptr [{args} + 16]",
    "mov edi, dword ptr [{args} + 20]",
    "call dword ptr [{args} + 32]",
    "mov dword ptr [{args} + 24], eax",
    "mov dword ptr [{args} + 28], edx",
    "mov dword ptr [{args} + 40], ebx",
    "mov dword ptr [{args} + 44], ecx",
    "mov dword ptr [{args} + 48], esi",
    "mov dword ptr [{args} + 52], edi",
    "push 0x08",
    ".byte 0x68",
    ".long conf_back64",
    "retf",
    ".code64",
    "conf_back64:",
    "mov rsp, [rip + {saved}]",
    reload_flat_data!(),
    restore_callee_saved!(),
    "ret",
    saved = sym SAVED_RSP,
    args = sym ARGS,
    code32 = const CODE32,
);
