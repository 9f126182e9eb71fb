//! The default guest of `hvcall run`: VP0 enables the hypercall page and
//! reads its own registers and VP1's through HvCallGetVpRegisters while VP1
//! spins holding a known pattern in its general registers, then prints a
//! table (name, VP0, VP1) and ends the VM with status 0. Segment and table
//! registers are decoded (`sel=0x0008 base=0x0 limit=0xffffffff
//! attr=0xa09b`, `base=0x1000 limit=0x2f`); everything else is hex.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use hvcall_abi::name::x64 as n;
use hvcall_abi::value::{SegmentRegister, TableRegister};
use hvcall_abi::{partition_id, vp_index, HvInputVtl, HvRegisterName, HvRegisterValue};
use hvcall_guest::{Hv, Scratch};
use rt::console::{put, Hex, Pad, Show};
use rt::hv::gpa;
use rt::outln;

rt::entry!(main);

/// How a value is shown in the table.
#[derive(Copy, Clone)]
enum Kind {
    /// `0x` and 16 hex digits; 32 (high `_` low) when the high half is
    /// not zero.
    Plain,
    /// A segment register: selector, base, limit, attributes.
    Segment,
    /// GDTR or IDTR: base and limit.
    Table,
}

/// The registers in the table.
const NAMES: [(&str, HvRegisterName, Kind); 33] = [
    ("rax", n::RAX, Kind::Plain),
    ("rcx", n::RCX, Kind::Plain),
    ("rdx", n::RDX, Kind::Plain),
    ("rbx", n::RBX, Kind::Plain),
    ("rsp", n::RSP, Kind::Plain),
    ("rbp", n::RBP, Kind::Plain),
    ("rsi", n::RSI, Kind::Plain),
    ("rdi", n::RDI, Kind::Plain),
    ("r8", n::R8, Kind::Plain),
    ("r9", n::R9, Kind::Plain),
    ("r10", n::R10, Kind::Plain),
    ("r11", n::R11, Kind::Plain),
    ("r12", n::R12, Kind::Plain),
    ("r13", n::R13, Kind::Plain),
    ("r14", n::R14, Kind::Plain),
    ("r15", n::R15, Kind::Plain),
    ("rip", n::RIP, Kind::Plain),
    ("rflags", n::RFLAGS, Kind::Plain),
    ("cr0", n::CR0, Kind::Plain),
    ("cr3", n::CR3, Kind::Plain),
    ("cr4", n::CR4, Kind::Plain),
    ("efer", n::EFER, Kind::Plain),
    ("cs", n::CS, Kind::Segment),
    ("ss", n::SS, Kind::Segment),
    ("ds", n::DS, Kind::Segment),
    ("tr", n::TR, Kind::Segment),
    ("gdtr", n::GDTR, Kind::Table),
    ("idtr", n::IDTR, Kind::Table),
    ("xmm0", n::XMM0, Kind::Plain),
    ("tsc", n::TSC, Kind::Plain),
    ("vp_index", n::VP_INDEX, Kind::Plain),
    ("guest_os_id", n::GUEST_OS_ID, Kind::Plain),
    ("hypercall", n::HYPERCALL, Kind::Plain),
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
    let names = NAMES.map(|(_, name, _)| name);

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
        Pad("VP0 (self)", COLUMN),
        if have_vp1 {
            "VP1 (running)"
        } else {
            "VP1: none (--cpus 1)"
        }
    );
    for (i, &(label, _, kind)) in NAMES.iter().enumerate() {
        let a = Cell::of(kind, own[i]);
        if have_vp1 {
            let gap = COLUMN.saturating_sub(a.len).max(1);
            outln!(Pad(label, 12), a, Pad("", gap), Cell::of(kind, other[i]));
        } else {
            outln!(Pad(label, 12), a);
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

/// Width of the VP0 column.
const COLUMN: usize = 50;

/// One table cell rendered into a buffer, so that the next column can be
/// padded to its width. Text past the buffer is dropped.
#[derive(Copy, Clone)]
struct Cell {
    bytes: [u8; 64],
    len: usize,
}

impl Cell {
    /// `value` shown as `kind` says.
    fn of(kind: Kind, value: HvRegisterValue) -> Self {
        let mut cell = Cell {
            bytes: [0; 64],
            len: 0,
        };
        match kind {
            Kind::Plain if value.high() != 0 => {
                cell.hex(value.high(), 16).text("_").digits(value.low(), 16)
            }
            Kind::Plain => cell.hex(value.low(), 16),
            Kind::Segment => {
                let s = SegmentRegister::from(value);
                cell.text("sel=")
                    .hex(s.selector.into(), 4)
                    .text(" base=")
                    .hex(s.base, 1)
                    .text(" limit=")
                    .hex(s.limit.into(), 1)
                    .text(" attr=")
                    .hex(s.attributes.into_bits().into(), 4)
            }
            Kind::Table => {
                let t = TableRegister::from(value);
                cell.text("base=")
                    .hex(t.base, 1)
                    .text(" limit=")
                    .hex(t.limit.into(), 1)
            }
        };
        cell
    }

    /// Appends `byte` (dropped when the buffer is full).
    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    /// Appends `s`.
    fn text(&mut self, s: &str) -> &mut Self {
        s.bytes().for_each(|b| self.push(b));
        self
    }

    /// `0x` and the hex digits of `v`, at least `min` of them.
    fn hex(&mut self, v: u64, min: usize) -> &mut Self {
        self.text("0x").digits(v, min)
    }

    /// The hex digits of `v` without leading zeros, at least `min` of them.
    fn digits(&mut self, v: u64, min: usize) -> &mut Self {
        let needed = (64 - v.leading_zeros() as usize).div_ceil(4);
        for i in (0..needed.max(min).min(16)).rev() {
            self.push(b"0123456789abcdef"[((v >> (4 * i)) & 0xF) as usize]);
        }
        self
    }
}

impl Show for Cell {
    fn show(&self) {
        self.bytes[..self.len].iter().copied().for_each(put);
    }
}
