//! Each register group read from self (VP0) and from a running VP (VP1)
//! through HvCallGetVpRegisters, against values the guest set or reads
//! itself: general registers and XMM (VP1 holds `rt::pattern`), segments
//! (FS/GS bases written through their MSRs), tables (SGDT/SIDT), control
//! registers and EFER, debug registers (DR0–3 written), the syscall and
//! sysenter MSRs and PAT (written), and the synthetic registers.
//! One line per group and VP, then exit 0, or 1 on any mismatch.
#![no_std]
#![no_main]

use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

use hvcall_abi::name::x64 as n;
use hvcall_abi::{partition_id, HvInputVtl, HvRegisterName, HvRegisterValue};
use hvcall_guest::{Hv, Scratch};
use rt::console::{Dec, Hex};
use rt::hv::gpa;
use rt::outln;

rt::entry!(main);

/// Counts VPs that set their state and hold their pattern.
static READY: AtomicU32 = AtomicU32::new(0);

/// What a value must be.
#[derive(Copy, Clone)]
enum Want {
    /// Both qwords.
    Exact(u64, u64),
    /// `low & mask == value`.
    Bits(u64, u64),
    /// Low qword in `lo..hi`.
    Within(u64, u64),
    /// `high & mask == value`.
    HighBits(u64, u64),
}

/// MSRs the guest writes, with a value per VP: (MSR, register name, value).
fn msr_values(vp: u32) -> [(u32, HvRegisterName, u64); 11] {
    let v = u64::from(vp);
    [
        (0xC000_0100, n::FS, 0x0000_1000_0000_0F00 | v << 4),
        (0xC000_0101, n::GS, 0x0000_2000_0000_0E00 | v << 4),
        (
            0xC000_0102,
            n::KERNEL_GS_BASE,
            0x0000_3000_0000_0D00 | v << 4,
        ),
        (0xC000_0081, n::STAR, 0x0023_0010_0000_0000 | v),
        (0xC000_0082, n::LSTAR, 0x0000_4000_0000_0C00 | v << 4),
        (0xC000_0083, n::CSTAR, 0x0000_5000_0000_0B00 | v << 4),
        (0xC000_0084, n::SFMASK, 0x4700 | v),
        (0x174, n::SYSENTER_CS, 0x10 + 8 * v),
        (0x175, n::SYSENTER_ESP, 0x0000_6000_0000_0A00 | v << 4),
        (0x176, n::SYSENTER_EIP, 0x0000_7000_0000_0900 | v << 4),
        (0x277, n::PAT, 0x0006_0504_0100_0706 ^ (v << 56)),
    ]
}

/// DR0–3 values per VP.
fn dr_values(vp: u32) -> [u64; 4] {
    let v = u64::from(vp) << 8;
    [0x1000 | v, 0x2000 | v, 0x3000 | v, 0x4000 | v]
}

/// Writes this VP's MSRs and DR0–3; false if a write faulted.
fn set_state(vp: u32) -> bool {
    let mut ok = true;
    for (msr, _, value) in msr_values(vp) {
        ok &= rt::fault::wrmsr(msr, value).is_ok();
    }
    let d = dr_values(vp);
    // SAFETY: DR0–3 only arm breakpoints when DR7 enables them; it stays 0.
    unsafe {
        asm!("mov dr0, {0}", "mov dr1, {1}", "mov dr2, {2}", "mov dr3, {3}", in(reg) d[0], in(reg) d[1], in(reg) d[2], in(reg) d[3])
    };
    ok
}

fn main(vp: u32, vps: u32) {
    if vp != 0 {
        if !set_state(vp) {
            outln!("groups: VP", Dec(u64::from(vp)), " could not set its MSRs");
        }
        rt::pattern::hold(vp, &READY);
    }
    let (features, page) = rt::hv::enable();
    let state_ok = set_state(0);
    while READY.load(Ordering::Acquire) < vps - 1 {
        core::hint::spin_loop();
    }
    let mut scratch = Scratch::new();
    let scratch_gpa = gpa(&scratch);
    // SAFETY: CPL 0, enabled page, identity-mapped scratch.
    let mut hv = unsafe { Hv::new(page, features, &mut scratch, scratch_gpa) };
    let mut failed = u64::from(!state_ok);
    let targets: &[u32] = if vps > 1 { &[0, 1] } else { &[0] };
    for &target in targets {
        for group in Group::ALL {
            failed += u64::from(!check_group(&mut hv, group, target, page.address() as u64));
        }
    }
    outln!("groups: ", Dec(failed), " failed");
    rt::exit(if failed == 0 { 0 } else { 1 })
}

/// The register groups.
#[derive(Copy, Clone)]
enum Group {
    General,
    Xmm,
    Segments,
    Tables,
    Control,
    Debug,
    Msrs,
    Synthetic,
}

impl Group {
    const ALL: [Group; 8] = [
        Group::General,
        Group::Xmm,
        Group::Segments,
        Group::Tables,
        Group::Control,
        Group::Debug,
        Group::Msrs,
        Group::Synthetic,
    ];

    fn label(self) -> &'static str {
        match self {
            Group::General => "general registers",
            Group::Xmm => "XMM",
            Group::Segments => "segments (FS/GS base, CS)",
            Group::Tables => "GDTR/IDTR",
            Group::Control => "CR0/CR3/CR4/EFER",
            Group::Debug => "DR0-3, DR7",
            Group::Msrs => "syscall/sysenter MSRs, KernelGsBase, PAT",
            Group::Synthetic => "synthetic (VP index, guest OS ID, hypercall MSR)",
        }
    }
}

/// Up to 16 (name, want) pairs of `group` on VP `vp`.
fn expectations(group: Group, vp: u32, page: u64) -> ([(HvRegisterName, Want); 16], usize) {
    let mut list = [(n::RAX, Want::Exact(0, 0)); 16];
    let mut len = 0;
    let mut push = |name, want| {
        list[len] = (name, want);
        len += 1;
    };
    match group {
        Group::General => {
            if vp == 0 {
                push(n::RIP, Want::Within(0x20_0000, 0x40_0000));
                push(n::RFLAGS, Want::Bits(0x2, 0x2));
            } else {
                let names = [
                    n::RCX,
                    n::RDX,
                    n::RBX,
                    n::RBP,
                    n::RSI,
                    n::RDI,
                    n::R8,
                    n::R9,
                    n::R10,
                    n::R11,
                    n::R12,
                    n::R13,
                    n::R14,
                    n::R15,
                ];
                let indexes = [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
                for (name, i) in names.into_iter().zip(indexes) {
                    push(name, Want::Exact(rt::pattern::gpr(i, vp).unwrap_or(0), 0));
                }
                push(n::RIP, Want::Within(0x20_0000, 0x40_0000));
                push(n::RFLAGS, Want::Bits(0x2, 0x2));
            }
        }
        Group::Xmm => {
            if vp != 0 {
                push(
                    n::XMM0,
                    Want::Exact(rt::pattern::XMM[0][0], rt::pattern::XMM[0][1]),
                );
                push(
                    n::XMM15,
                    Want::Exact(rt::pattern::XMM[1][0], rt::pattern::XMM[1][1]),
                );
            }
            // MXCSR (bytes 8..12) at its reset value: nothing here changes it.
            push(n::XMM_CONTROL_STATUS, Want::HighBits(0xFFFF_FFFF, 0x1F80));
        }
        Group::Segments => {
            let cs: u16;
            // SAFETY: reads CS.
            unsafe { asm!("mov {0:x}, cs", out(reg) cs) };
            let msrs = msr_values(vp);
            push(n::FS, Want::Bits(u64::MAX, msrs[0].2));
            push(n::GS, Want::Bits(u64::MAX, msrs[1].2));
            // Selector (bytes 12..14) and the L attribute (bit 13 of bytes 14..16).
            push(
                n::CS,
                Want::HighBits(
                    (0xFFFF << 32) | (1 << 61),
                    (u64::from(cs) << 32) | (1 << 61),
                ),
            );
        }
        Group::Tables => {
            let (g, i) = (table(false), table(true));
            push(n::GDTR, Want::Exact(g.0 << 48, g.1));
            push(n::IDTR, Want::Exact(i.0 << 48, i.1));
        }
        Group::Control => {
            let (cr0, cr3, cr4): (u64, u64, u64);
            // SAFETY: reads control registers at CPL 0.
            unsafe {
                asm!("mov {0}, cr0", "mov {1}, cr3", "mov {2}, cr4", out(reg) cr0, out(reg) cr3, out(reg) cr4)
            };
            push(n::CR0, Want::Exact(cr0, 0));
            push(n::CR3, Want::Exact(cr3, 0));
            push(n::CR4, Want::Exact(cr4, 0));
            push(
                n::EFER,
                Want::Exact(rt::fault::rdmsr(0xC000_0080).unwrap_or(0), 0),
            );
        }
        Group::Debug => {
            let d = dr_values(vp);
            for (name, value) in [n::DR0, n::DR1, n::DR2, n::DR3].into_iter().zip(d) {
                push(name, Want::Exact(value, 0));
            }
            push(n::DR7, Want::Bits(0x400, 0x400));
        }
        Group::Msrs => {
            for (_, name, value) in msr_values(vp).into_iter().skip(2) {
                push(name, Want::Exact(value, 0));
            }
        }
        Group::Synthetic => {
            push(n::VP_INDEX, Want::Exact(u64::from(vp), 0));
            push(n::GUEST_OS_ID, Want::Exact(rt::hv::GUEST_OS_ID, 0));
            push(n::HYPERCALL, Want::Bits(!0xFFE, page | 1));
        }
    }
    (list, len)
}

/// SGDT (`idt` false) or SIDT: (limit, base).
fn table(idt: bool) -> (u64, u64) {
    let mut t = [0u8; 10];
    // SAFETY: SGDT/SIDT store 10 bytes into `t`.
    unsafe {
        if idt {
            asm!("sidt [{0}]", in(reg) t.as_mut_ptr());
        } else {
            asm!("sgdt [{0}]", in(reg) t.as_mut_ptr());
        }
    }
    let limit = u64::from(u16::from_le_bytes([t[0], t[1]]));
    (
        limit,
        u64::from_le_bytes([t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9]]),
    )
}

/// Reads one group of VP `vp` and compares; prints one line.
fn check_group(hv: &mut Hv<'_>, group: Group, vp: u32, page: u64) -> bool {
    let (list, len) = expectations(group, vp, page);
    let names: [HvRegisterName; 16] = core::array::from_fn(|i| list[i].0);
    let mut values = [HvRegisterValue::default(); 16];
    let who = if vp == 0 { "self" } else { "VP1 (running)" };
    if let Err(e) = hv.get_vp_registers(
        partition_id::SELF,
        vp,
        HvInputVtl::new(),
        &names[..len],
        &mut values[..len],
    ) {
        outln!("FAIL ", group.label(), " from ", who, ": ", e);
        return false;
    }
    for i in 0..len {
        let v = values[i];
        let ok = match list[i].1 {
            Want::Exact(lo, hi) => v.low() == lo && v.high() == hi,
            Want::Bits(mask, value) => v.low() & mask == value,
            Want::Within(lo, hi) => (lo..hi).contains(&v.low()),
            Want::HighBits(mask, value) => v.high() & mask == value,
        };
        if !ok {
            outln!(
                "FAIL ",
                group.label(),
                " from ",
                who,
                ": name ",
                Hex(u64::from(names[i].0)),
                " = ",
                Hex(v.low()),
                " ",
                Hex(v.high())
            );
            return false;
        }
    }
    outln!("ok ", group.label(), " from ", who);
    true
}
