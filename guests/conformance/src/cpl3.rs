//! docs/contract.md §1 step 1 and the §4 note on CPL 3: a caller at CPL 3
//! with I/O permission (the TSS I/O bitmap) reaches the hypervisor through
//! the page's port write and gets #UD with RIP on the hypercall
//! instruction and nothing changed; without I/O permission the CPU raises
//! #GP itself. (IOPL 3 is not used: this KVM raised #GP at CPL 3 for a
//! port write with IOPL 3; the TSS bitmap is honoured.)
//!
//! Needs user-accessible state, so VP0 switches to its own GDT (with user
//! segments and a TSS whose RSP0 takes exceptions from CPL 3) and its own
//! identity map with the U bit (the boot page tables are supervisor-only).
//! This runs last.

use core::arch::{asm, global_asm};

use hvcall_abi::name::x64 as n;
use rt::fault::{self, Fault, GP, RECOVER_RIP, RECOVER_RSP, UD};
use rt::hv::{gpa, Page};

use crate::env::{control, fill, input, output, self_input, untouched, Env};
use crate::report::{check, eq, Outcome, Report};

const USER_DATA: u64 = 0x30 | 3;
const USER_CODE: u64 = 0x38 | 3;
const TSS_SELECTOR: u16 = 0x20;
/// RFLAGS for the user code: IOPL 0, interrupts off (bit 1 is fixed).
const USER_RFLAGS: u64 = 2;
/// Size of the TSS with an I/O permission bitmap covering ports 0..0x107
/// and its terminating byte.
const TSS_SIZE: usize = 104 + 33 + 1;

/// null, 0x08 code64, 0x10 data, 0x18 code32, 0x20 TSS (two slots),
/// 0x30 user data, 0x38 user code64.
static mut GDT: [u64; 8] = [
    0,
    0x00AF_9B00_0000_FFFF,
    0x00CF_9300_0000_FFFF,
    0x00CF_9B00_0000_FFFF,
    0,
    0,
    0x00CF_F300_0000_FFFF,
    0x00AF_FB00_0000_FFFF,
];
static mut TSS: [u8; TSS_SIZE] = [0xFF; TSS_SIZE];
static mut TABLES: [Page; 3] = [const { Page([0; 4096]) }; 3];
static mut USER_STACK: Page = Page([0; 4096]);
static mut KERNEL_STACK: Page = Page([0; 4096]);
/// Hypercall page address and registers for the user code.
static mut USER_ARGS: [u64; 4] = [0; 4];

unsafe extern "C" {
    fn conf_cpl3(rflags: u64, user_rsp: u64);
}

/// A static as a mutable reference.
///
/// # Safety
/// Only VP0 runs this module, and no other reference to the static is
/// alive while the returned one is used.
unsafe fn exclusive<T>(p: *mut T) -> &'static mut T {
    // SAFETY: forwarded from the caller.
    unsafe { &mut *p }
}

/// Loads the GDT, TSS and user-accessible page tables on this VP.
fn setup() {
    // SAFETY: VP0 alone touches these statics; the new GDT keeps the
    // selectors in use (0x08, 0x10) with the same meaning, and the new page
    // tables identity-map the first GiB (all of RAM the tests use) like the
    // boot tables, adding only the U bit.
    unsafe {
        let tss = gpa(&raw const TSS);
        let rsp0 = gpa(&raw const KERNEL_STACK) + 4096;
        let tss_bytes = exclusive(&raw mut TSS);
        tss_bytes[..104].fill(0);
        tss_bytes[4..12].copy_from_slice(&rsp0.to_le_bytes());
        tss_bytes[102..104].copy_from_slice(&104u16.to_le_bytes());
        let gdt = exclusive(&raw mut GDT);
        gdt[4] = (TSS_SIZE as u64 - 1)
            | ((tss & 0xFF_FFFF) << 16)
            | (0x89 << 40)
            | (((tss >> 24) & 0xFF) << 56);
        gdt[5] = tss >> 32;
        #[repr(C, packed)]
        struct Pointer {
            limit: u16,
            base: u64,
        }
        let p = Pointer {
            limit: 8 * 8 - 1,
            base: gpa(&raw const GDT),
        };
        asm!("lgdt [{0}]", "ltr {1:x}", in(reg) &p, in(reg) TSS_SELECTOR);

        let tables = exclusive(&raw mut TABLES);
        let (pdpt, pd) = (gpa(&tables[1]), gpa(&tables[2]));
        let write = |page: &mut Page, i: usize, v: u64| {
            page.0[8 * i..8 * i + 8].copy_from_slice(&v.to_le_bytes())
        };
        write(&mut tables[0], 0, pdpt | 0x7);
        write(&mut tables[1], 0, pd | 0x7);
        for i in 0..512 {
            write(&mut tables[2], i, ((i as u64) << 21) | 0x87);
        }
        asm!("mov cr3, {0}", in(reg) gpa(&tables[0]));
    }
}

/// Grants or denies CPL 3 access to `port` in the TSS I/O bitmap.
fn allow_port(port: u16, allow: bool) {
    let byte = 104 + usize::from(port / 8);
    let bit = 1u8 << (port % 8);
    // SAFETY: VP0 alone uses TSS; `byte` is inside the bitmap.
    unsafe {
        let tss = exclusive(&raw mut TSS);
        tss[byte] = if allow {
            tss[byte] & !bit
        } else {
            tss[byte] | bit
        };
    }
}

/// The port the page's code writes: the first byte must be `out imm8, al`
/// (0xE6), as in hvcall's page; `None` if the page uses something else.
fn page_port(env: &Env) -> Option<u16> {
    let page = env.page_va() as *const u8;
    // SAFETY: the hypercall page is readable.
    let (op, port) = unsafe { (page.read_volatile(), page.add(1).read_volatile()) };
    (op == 0xE6).then_some(u16::from(port))
}

/// Calls the hypercall page from CPL 3 with `rflags`; the fault taken.
fn call_from_user(env: &Env, rflags: u64) -> Option<Fault> {
    // SAFETY: VP0 alone uses USER_ARGS.
    unsafe { *exclusive(&raw mut USER_ARGS) = [env.page_va(), control(1, 0), input(), output()] };
    let guard = fault::expect();
    // SAFETY: conf_cpl3 arms recovery and returns through it after the
    // user code's fault; it preserves the callee-saved registers.
    unsafe { conf_cpl3(rflags, gpa(&raw const USER_STACK) + 4096) };
    guard.finish()
}

fn expect_fault(f: Option<Fault>, vector: u64, page: u64) -> Outcome {
    let (v, rip) = f.map_or((u64::MAX, 0), |f| (f.vector, f.rip));
    eq("exception vector", v, vector)?;
    check(
        "RIP on the hypercall instruction (inside the page)",
        (page..page + 4096).contains(&rip),
    )?;
    untouched(output(), 0..1)
}

/// Runs the CPL 3 cases.
pub fn run(r: &mut Report, env: &Env) {
    let Some(port) = page_port(env) else {
        r.skip(
            "step 1",
            "CPL 3 caller",
            "the hypercall page does not start with `out imm8, al`",
        );
        return;
    };
    setup();
    r.case("step 1", "CPL 3 caller with I/O permission (TSS bitmap): #UD on the hypercall instruction, nothing written", || {
        allow_port(port, true);
        self_input(&[n::VP_INDEX.0]);
        fill(output(), 1);
        expect_fault(call_from_user(env, USER_RFLAGS), UD, env.page_va())
    });
    r.case(
        "§4 CPL 3",
        "CPL 3 caller without I/O permission: #GP from the CPU at the port write",
        || {
            allow_port(port, false);
            self_input(&[n::VP_INDEX.0]);
            fill(output(), 1);
            expect_fault(call_from_user(env, USER_RFLAGS), GP, env.page_va())
        },
    );
}

// conf_cpl3(rdi = user RFLAGS, rsi = user RSP): arm recovery at label 2,
// load the call's registers, IRETQ to conf_user at CPL 3. The user code
// calls the page; the expected fault resumes at label 2 at CPL 0, where
// the data segments are reloaded.
global_asm!(
    ".global conf_cpl3",
    "conf_cpl3:",
    save_callee_saved!(),
    "lea rax, [rip + 2f]",
    "mov [rip + {rrip}], rax",
    "mov [rip + {rrsp}], rsp",
    "mov rcx, [rip + {args} + 8]",
    "mov rdx, [rip + {args} + 16]",
    "mov r8, [rip + {args} + 24]",
    "push {user_data}",
    "push rsi",
    "push rdi",
    "push {user_code}",
    "lea rax, [rip + conf_user]",
    "push rax",
    "iretq",
    "conf_user:",
    "call [rip + {args}]",
    "ud2",
    "2:",
    reload_flat_data!(),
    restore_callee_saved!(),
    "ret",
    rrip = sym RECOVER_RIP,
    rrsp = sym RECOVER_RSP,
    args = sym USER_ARGS,
    user_data = const USER_DATA,
    user_code = const USER_CODE,
);
