//! The default guest of `hvcall run`: VP0 enables the hypercall page and
//! reads its own registers and VP1's through HvCallGetVpRegisters while VP1
//! spins holding a known pattern in its general registers, then prints a
//! table (name, VP0, VP1) and ends the VM with status 0.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use hvcall_abi::name::x64 as n;
use hvcall_abi::{partition_id, vp_index, HvInputVtl, HvRegisterName, HvRegisterValue};
use hvcall_guest::{Hv, Scratch};
use rt::console::{Hex, Hex128, Pad};
use rt::hv::gpa;
use rt::outln;

rt::entry!(main);

/// The registers in the table.
const NAMES: [(&str, HvRegisterName); 33] = [
    ("rax", n::RAX),
    ("rcx", n::RCX),
    ("rdx", n::RDX),
    ("rbx", n::RBX),
    ("rsp", n::RSP),
    ("rbp", n::RBP),
    ("rsi", n::RSI),
    ("rdi", n::RDI),
    ("r8", n::R8),
    ("r9", n::R9),
    ("r10", n::R10),
    ("r11", n::R11),
    ("r12", n::R12),
    ("r13", n::R13),
    ("r14", n::R14),
    ("r15", n::R15),
    ("rip", n::RIP),
    ("rflags", n::RFLAGS),
    ("cr0", n::CR0),
    ("cr3", n::CR3),
    ("cr4", n::CR4),
    ("efer", n::EFER),
    ("cs", n::CS),
    ("ss", n::SS),
    ("ds", n::DS),
    ("tr", n::TR),
    ("gdtr", n::GDTR),
    ("idtr", n::IDTR),
    ("xmm0", n::XMM0),
    ("tsc", n::TSC),
    ("vp_index", n::VP_INDEX),
    ("guest_os_id", n::GUEST_OS_ID),
    ("hypercall", n::HYPERCALL),
];

/// Counts the VPs holding their pattern.
static READY: AtomicU32 = AtomicU32::new(0);

fn main(vp: u32, vps: u32) {
    match vp {
        0 => vp0(vps),
        _ => rt::pattern::hold(vp, &READY),
    }
}

fn vp0(vps: u32) {
    let (features, page) = rt::hv::enable();
    outln!(
        "hvcall demo: \"Microsoft Hv\" / \"Hv#1\", privileges ",
        Hex(features.privileges),
        ", features EDX ",
        Hex(u64::from(features.features_edx))
    );
    let mut scratch = Scratch::new();
    let scratch_gpa = gpa(&scratch);
    // SAFETY: CPL 0, enabled page, identity-mapped scratch.
    let mut hv = unsafe { Hv::new(page, features, &mut scratch, scratch_gpa) };
    let names = NAMES.map(|(_, name)| name);

    let mut own = [HvRegisterValue::default(); NAMES.len()];
    let vtl = HvInputVtl::new();
    if let Err(e) = hv.get_vp_registers(partition_id::SELF, vp_index::SELF, vtl, &names, &mut own) {
        outln!("reading VP0 failed: ", e);
        rt::exit(1);
    }

    let mut other = [HvRegisterValue::default(); NAMES.len()];
    let have_vp1 = vps > 1;
    if have_vp1 {
        while READY.load(Ordering::Acquire) < vps - 1 {
            core::hint::spin_loop();
        }
        if let Err(e) = hv.get_vp_registers(partition_id::SELF, 1, vtl, &names, &mut other) {
            outln!("reading VP1 failed: ", e);
            rt::exit(1);
        }
    }

    outln!(
        Pad("register", 12),
        Pad("VP0 (self)", 36),
        if have_vp1 {
            "VP1 (running)"
        } else {
            "VP1: none (--cpus 1)"
        }
    );
    for (i, (label, _)) in NAMES.iter().enumerate() {
        let a = own[i];
        let b = other[i];
        if have_vp1 {
            outln!(
                Pad(label, 12),
                Hex128(a.low(), a.high()),
                Pad("", 36 - width(a)),
                Hex128(b.low(), b.high())
            );
        } else {
            outln!(Pad(label, 12), Hex128(a.low(), a.high()));
        }
    }

    if have_vp1 && features.xmm_fast_input() && features.xmm_fast_output() {
        let mut fast = [HvRegisterValue::default(); 2];
        match hv.get_vp_registers_fast(partition_id::SELF, 1, vtl, &[n::RBX, n::R12], &mut fast) {
            Ok(()) => outln!(
                "XMM fast form, VP1: rbx ",
                Hex(fast[0].low()),
                ", r12 ",
                Hex(fast[1].low())
            ),
            Err(e) => {
                outln!("XMM fast form failed: ", e);
                rt::exit(1);
            }
        }
    }
    rt::exit(0)
}

/// Printed width of a value by [`Hex128`].
fn width(v: HvRegisterValue) -> usize {
    if v.high() != 0 {
        35
    } else {
        18
    }
}
