//! The calls: a seeded, deterministic generator of HvCallGetVpRegisters
//! calls biased towards the edges of docs/contract.md §1 (every step's
//! boundary values), with HvCallSetVpRegisters calls among them (§8), and
//! where each call's bytes go in guest RAM.
//!
//! A write must not break the guest that runs the table, on any VP, so
//! the writes that can succeed name only registers its code never relies
//! on ([`HARMLESS`]: DR0–DR3, CR2, CR8, KernelGsBase, XMM6–XMM15) with
//! values KVM takes; the rest are refused by the dispatcher whatever the
//! backend (reserved bytes, unknown and read-only names, the caller's own
//! hypercall registers, bad headers and lists).
//!
//! Guest RAM layout (64 MiB; the boot tables below 20 KiB, the guest image
//! at 2 MiB, 64 KiB of stack per VP at the top): the hypercall page at
//! [`HYPERCALL_PAGE`], the case table at [`TABLE_GPA`] (layout of
//! `guests/chaos`), and one window of three pages per record from
//! [`ARENA`]. A case's lists either lie inside its own window (so no case
//! can see another's output, on any VP) or are invalid (misaligned,
//! crossing a page, beyond RAM, on the overlay page), in which case
//! nothing may be read or written; or the case reads its input from the
//! guest's own boot tables (GDT, TSS, page tables), or aims its output at
//! the boot tables or its own stack with a header the hypervisor must
//! refuse before writing anything.

use hvcall_abi::name::{common, x64};
use hvcall_abi::{partition_id, vp_index, HvRegisterName, PAGE_SIZE};
use hvcall_vmm::boot;

/// Guest RAM size in MiB (the model's one region must match).
pub const RAM_MIB: u64 = 64;
/// Guest RAM size in bytes.
pub const RAM_SIZE: u64 = RAM_MIB << 20;
/// Where the guest enables the hypercall page (an overlay, §1 step 5f).
pub const HYPERCALL_PAGE: u64 = 0x3F_F000;
/// The case table (`guests/chaos`: `TABLE_GPA`).
pub const TABLE_GPA: u64 = 0x40_0000;
/// `guests/chaos`: `MAGIC`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"hvchaos1");
/// `guests/chaos`: `COUNTS_OFFSET`, where the per-VP case counts start.
pub const COUNTS_OFFSET: u64 = 0x20;
/// `guests/chaos`: `RECORDS_OFFSET`, where the records start.
pub const RECORDS_OFFSET: u64 = 0x400;
/// Size of one case record: control, result, 7 register pairs
/// (`guests/chaos`: `Case`).
pub const RECORD_SIZE: u64 = 128;
/// Records one run of the VM holds (all VPs together; the guest's
/// `MAX_RECORDS` is larger).
pub const BATCH: usize = 2048;
/// Most VPs a table is for.
pub const MAX_VPS: u64 = 64;
/// The first case window.
pub const ARENA: u64 = 0x50_0000;
/// Size of one case window.
pub const WINDOW: u64 = 3 * PAGE_SIZE;
/// Control bit 16: the fast (register) form.
pub const FAST: u64 = 1 << 16;
/// The boot tables the VMM writes below the image (GDT and TSS page, PML4,
/// PDPT, page directory): GPAs `start..end`, read-only for the guest.
pub const BOOT_TABLES: (u64, u64) = (boot::GDT_ADDRESS, boot::PML4_ADDRESS + 3 * PAGE_SIZE);

const _: () = assert!(ARENA + BATCH as u64 * WINDOW <= RAM_SIZE - MAX_VPS * boot::STACK_SIZE);
const _: () = assert!(COUNTS_OFFSET + 8 * MAX_VPS <= RECORDS_OFFSET);
const _: () = assert!(TABLE_GPA + RECORDS_OFFSET + BATCH as u64 * RECORD_SIZE <= ARENA);

/// The GPA of record `index` (VP v's case i is record `v * stride + i`).
pub const fn record_gpa(index: usize) -> u64 {
    TABLE_GPA + RECORDS_OFFSET + index as u64 * RECORD_SIZE
}

/// What every window byte and unused register byte of VP `vp`'s cases
/// holds before the call: one value per VP, so a value one VP read from
/// another cannot pass for an untouched slot of the reader's.
pub const fn guard(vp: u32) -> u8 {
    0xA5 ^ (vp as u8).wrapping_mul(0x3B)
}

/// The register names the VMM serves (README "Registers served"), written
/// out here rather than taken from the VMM so that a name the VMM drops
/// or adds shows up as a difference.
#[rustfmt::skip]
pub const SERVED: &[HvRegisterName] = &[
    x64::RAX, x64::RCX, x64::RDX, x64::RBX, x64::RSP, x64::RBP, x64::RSI, x64::RDI,
    x64::R8, x64::R9, x64::R10, x64::R11, x64::R12, x64::R13, x64::R14, x64::R15,
    x64::RIP, x64::RFLAGS, x64::CR0, x64::CR2, x64::CR3, x64::CR4, x64::CR8, x64::XFEM,
    x64::DR0, x64::DR1, x64::DR2, x64::DR3, x64::DR6, x64::DR7,
    x64::ES, x64::CS, x64::SS, x64::DS, x64::FS, x64::GS, x64::LDTR, x64::TR,
    x64::GDTR, x64::IDTR, x64::TSC, x64::EFER, x64::KERNEL_GS_BASE, x64::APIC_BASE,
    x64::PAT, x64::SYSENTER_CS, x64::SYSENTER_EIP, x64::SYSENTER_ESP,
    x64::STAR, x64::LSTAR, x64::CSTAR, x64::SFMASK, x64::TSC_AUX,
    x64::XMM0, x64::XMM1, x64::XMM2, x64::XMM3, x64::XMM4, x64::XMM5, x64::XMM6, x64::XMM7,
    x64::XMM8, x64::XMM9, x64::XMM10, x64::XMM11, x64::XMM12, x64::XMM13, x64::XMM14,
    x64::XMM15, x64::FP_MMX0, x64::FP_MMX1, x64::FP_MMX2, x64::FP_MMX3, x64::FP_MMX4,
    x64::FP_MMX5, x64::FP_MMX6, x64::FP_MMX7, x64::FP_CONTROL_STATUS,
    x64::XMM_CONTROL_STATUS, x64::PENDING_INTERRUPTION, x64::INTERRUPT_STATE,
    common::INTERNAL_ACTIVITY_STATE, common::VP_ASSIST_PAGE,
    x64::VP_INDEX, x64::GUEST_OS_ID, x64::HYPERCALL, x64::TIME_REF_COUNT,
    x64::VSM_VP_STATUS, x64::VSM_PARTITION_STATUS, x64::HYPERVISOR_VERSION,
    x64::PRIVILEGES_AND_FEATURES_INFO, x64::FEATURES_INFO,
    x64::IMPLEMENTATION_LIMITS_INFO, x64::HARDWARE_FEATURES_INFO,
];
/// Names whose values both worlds know (see `oracle`), drawn more often.
#[rustfmt::skip]
const KNOWN_VALUE: &[HvRegisterName] = &[
    x64::VP_INDEX, x64::GUEST_OS_ID, x64::HYPERCALL, x64::RIP, x64::RCX, x64::RDX, x64::R8,
    x64::XMM0, x64::XMM1, x64::XMM2, x64::XMM3, x64::XMM4, x64::XMM5,
];

/// Registers a chaos write may change (see the module doc).
#[rustfmt::skip]
const HARMLESS: &[HvRegisterName] = &[
    x64::DR0, x64::DR1, x64::DR2, x64::DR3, x64::CR2, x64::CR8, x64::KERNEL_GS_BASE,
    x64::XMM6, x64::XMM7, x64::XMM8, x64::XMM9, x64::XMM10, x64::XMM11, x64::XMM12,
    x64::XMM13, x64::XMM14, x64::XMM15,
];

/// Names every writer refuses (step 8b, contract §8 "read only").
#[rustfmt::skip]
const READ_ONLY: &[HvRegisterName] = &[
    x64::VP_INDEX, x64::TIME_REF_COUNT, x64::VSM_VP_STATUS, x64::VSM_PARTITION_STATUS,
    common::INTERNAL_ACTIVITY_STATE, common::VP_ASSIST_PAGE, x64::HYPERVISOR_VERSION,
    x64::FEATURES_INFO,
];

/// Names no x64 writer serves (the unknown ones of [`NOT_SERVED`]; that
/// list also holds ARM64 numbers that are x64 names, such as Xfem).
const UNKNOWN: &[u32] = &[
    0,
    0xFFFF_FFFF,
    0x0002_0012,
    0x000C_0000,
    0x0009_0010,
    0x0003_001A,
];

/// The caller's own hypercall registers (step 8d), refused when a call
/// writes its own VP (XMM0–5 only in the fast form: a memory-form call
/// writes them).
#[rustfmt::skip]
const OWN_CALL_REGISTERS: &[HvRegisterName] = &[
    x64::RAX, x64::RCX, x64::RDX, x64::R8, x64::RIP, x64::XMM0, x64::XMM3, x64::XMM5,
];

/// Names the VMM does not serve: unknown numbers, TLFS names hvcall does
/// not implement, ARM64-only numbers.
#[rustfmt::skip]
const NOT_SERVED: &[u32] = &[
    0, 0xFFFF_FFFF, 0x0002_0012, 0x0001_0007, 0x000C_0000, 0x0009_0010, 0x0009_0004,
    0x0004_0005, 0x0008_0000, 0x0003_001A,
];

/// xorshift64*: small, seeded, the same sequence on every run.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent` %.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Picks from `(weight, value)` pairs.
    fn weighted<T: Copy>(&mut self, items: &[(u64, T)]) -> T {
        let total: u64 = items.iter().map(|(w, _)| w).sum();
        let mut r = self.below(total);
        for &(w, v) in items {
            if r < w {
                return v;
            }
            r -= w;
        }
        items[items.len() - 1].1
    }
}

/// One generated call and the guest state it starts from.
#[derive(Clone, Debug)]
pub struct Case {
    /// The calling VP.
    pub vp: u32,
    /// Its record in the table (also places its window).
    pub record: usize,
    /// RCX.
    pub control: u64,
    /// RDX/R8 (pair 0) and XMM0–5 at the call.
    pub regs: [[u64; 2]; 7],
    /// GPA of this case's window.
    pub window: u64,
    /// The window's bytes before the run (guard bytes and the input list).
    pub window_bytes: Vec<u8>,
    /// The input list (header and names) as generated, for diagnostics.
    pub input: Vec<u8>,
}

impl Case {
    /// Whether the fast bit is set.
    pub fn fast(&self) -> bool {
        self.control & FAST != 0
    }

    /// Rep count (control bits 43:32).
    pub fn rep_count(&self) -> u64 {
        (self.control >> 32) & 0xFFF
    }

    /// The (input, output) GPAs of the memory form.
    pub fn gpas(&self) -> (u64, u64) {
        (self.regs[0][0], self.regs[0][1])
    }
}

/// One run of the VM: VP v executes `counts[v]` cases from record
/// `v * stride`.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Number of VPs.
    pub vps: u32,
    /// Records reserved per VP.
    pub stride: usize,
    /// Every case, VP by VP.
    pub cases: Vec<Case>,
}

impl Batch {
    /// `calls` cases (at most [`BATCH`]) spread over `vps` VPs, drawn from
    /// `rng`.
    pub fn generate(rng: &mut Rng, vps: u32, calls: usize) -> Self {
        let vps = vps.max(1);
        let calls = calls.min(BATCH);
        let stride = calls.div_ceil(vps as usize);
        let mut cases = Vec::with_capacity(calls);
        for vp in 0..vps {
            let share = calls / vps as usize + usize::from((vp as usize) < calls % vps as usize);
            for i in 0..share {
                let record = vp as usize * stride + i;
                cases.push(one(rng, vp, vps, record));
            }
        }
        Self { vps, stride, cases }
    }

    /// How many cases VP `vp` executes.
    pub fn count(&self, vp: u32) -> usize {
        self.cases.iter().filter(|c| c.vp == vp).count()
    }
}

/// Where a memory-form list may go besides the case's own window.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Foreign {
    /// Nowhere else.
    No,
    /// The input on the boot tables.
    InputOnBootTables,
    /// The output on the boot tables or the caller's stack, with a
    /// header that is refused before any output.
    OutputOnGuestState,
}

fn one(rng: &mut Rng, vp: u32, vps: u32, record: usize) -> Case {
    // A clean case passes every check unless a name is not served: enough
    // successes to compare many output values.
    let clean = rng.chance(40);
    let fast = rng.chance(20);
    if rng.chance(12) {
        return one_write(rng, vp, vps, record, clean, fast);
    }
    let foreign = match (clean || fast, rng.below(100)) {
        (false, 0..=3) => Foreign::InputOnBootTables,
        (false, 4..=7) => Foreign::OutputOnGuestState,
        _ => Foreign::No,
    };
    let n = if fast && rng.chance(80) {
        1 + rng.below(4)
    } else {
        rep_count(rng)
    };
    let n = if clean { n.clamp(1, 256) } else { n };
    let mut input = header(rng, clean, vps).to_vec();
    if foreign == Foreign::OutputOnGuestState {
        // Partition 3 does not exist: refused before any output is written.
        input[..8].copy_from_slice(&3u64.to_le_bytes());
    }
    for _ in 0..n.min(1100) {
        input.extend_from_slice(&name(rng).to_le_bytes());
    }
    let control = control(rng, 0x50, fast, n, clean);
    place(rng, vp, record, control, input, foreign, clean)
}

/// A SetVpRegisters case: the header of a read, then 32-byte elements
/// (see the module doc for which can succeed).
fn one_write(rng: &mut Rng, vp: u32, vps: u32, record: usize, clean: bool, fast: bool) -> Case {
    let n = if fast && rng.chance(85) {
        1 + rng.below(4)
    } else if clean {
        1 + rng.below(40)
    } else {
        rep_count(rng).min(200)
    };
    let mut input = header(rng, clean, vps).to_vec();
    let partition = u64::from_le_bytes(input[..8].try_into().unwrap_or_default());
    let target = u32::from_le_bytes(input[8..12].try_into().unwrap_or_default());
    let own =
        matches!(partition, partition_id::SELF | 2) && (target == vp_index::SELF || target == vp);
    for _ in 0..n {
        let name = match rng.weighted(&[(80, 0), (6, 1), (5, 2), (5, 3), (4, 4)]) {
            0 => rng.pick(HARMLESS),
            1 => rng.pick(READ_ONLY),
            2 => HvRegisterName(rng.pick(UNKNOWN)),
            3 if own => rng.pick(OWN_CALL_REGISTERS),
            _ => rng.pick(HARMLESS),
        };
        let mut reserved = [0u8; 12];
        if rng.chance(if clean { 1 } else { 6 }) {
            reserved[rng.below(12) as usize] = 1 + rng.below(0xFF) as u8;
        }
        let low = rng.next();
        let value: [u64; 2] = match name {
            x64::CR8 => [low & 0xF, 0],
            x64::KERNEL_GS_BASE => [low & 0x7FFF_FFFF_FFFF, 0],
            n if HARMLESS.contains(&n) && !(x64::XMM6.0..=x64::XMM15.0).contains(&n.0) => [low, 0],
            _ => [low, rng.next()],
        };
        input.extend_from_slice(&name.0.to_le_bytes());
        input.extend_from_slice(&reserved);
        input.extend_from_slice(&value[0].to_le_bytes());
        input.extend_from_slice(&value[1].to_le_bytes());
    }
    let control = control(rng, 0x51, fast, n, clean);
    place(rng, vp, record, control, input, Foreign::No, clean)
}

/// Places a case's input: in the fast registers, or in its window (or
/// where `foreign` says), and draws the output GPA.
fn place(
    rng: &mut Rng,
    vp: u32,
    record: usize,
    control: u64,
    input: Vec<u8>,
    foreign: Foreign,
    clean: bool,
) -> Case {
    let window = ARENA + record as u64 * WINDOW;
    let fast = control & FAST != 0;
    let n = (control >> 32) & 0xFFF;
    let guard_word = u64::from_le_bytes([guard(vp); 8]);
    let mut regs = [[guard_word; 2]; 7];
    let mut window_bytes = vec![guard(vp); WINDOW as usize];
    if fast {
        for (i, chunk) in input.chunks(8).take(14).enumerate() {
            let mut word = [guard(vp); 8];
            word[..chunk.len()].copy_from_slice(chunk);
            regs[i / 2][i % 2] = u64::from_le_bytes(word);
        }
    } else {
        let in_len = input.len() as u64;
        let in_gpa = match foreign {
            Foreign::InputOnBootTables => {
                BOOT_TABLES.0 + 8 * rng.below((BOOT_TABLES.1 - BOOT_TABLES.0) / 8)
            }
            _ => input_gpa(rng, window, in_len, clean),
        };
        let out_gpa = match foreign {
            Foreign::OutputOnGuestState if rng.chance(50) => {
                BOOT_TABLES.0 + 8 * rng.below((BOOT_TABLES.1 - BOOT_TABLES.0) / 8)
            }
            Foreign::OutputOnGuestState => {
                let top = RAM_SIZE - u64::from(vp) * boot::STACK_SIZE;
                top - 8 * (1 + rng.below(boot::STACK_SIZE / 8))
            }
            _ => output_gpa(rng, window, in_gpa, 16 * n, clean),
        };
        regs[0] = [in_gpa, out_gpa];
        if in_gpa >= window && in_gpa < window + WINDOW {
            let at = (in_gpa - window) as usize;
            let len = input.len().min(window_bytes.len() - at);
            window_bytes[at..at + len].copy_from_slice(&input[..len]);
        }
    }
    Case {
        vp,
        record,
        control,
        regs,
        window,
        window_bytes,
        input,
    }
}

/// Rep counts around every boundary: 0, the fast limit 4, the page limits
/// of the output (256) and input (1020) lists, the 12-bit field's top.
fn rep_count(rng: &mut Rng) -> u64 {
    match rng.weighted(&[(3, 0), (30, 1), (45, 2), (12, 3), (5, 4), (5, 5)]) {
        0 => 0,
        1 => 1 + rng.below(4),
        2 => 5 + rng.below(36),
        3 => 41 + rng.below(216),
        4 => 257 + rng.below(764),
        _ => 1021 + rng.below(3075),
    }
}

/// The control word of a call of `code` (0x50 or 0x51; others are drawn
/// in for 12% of the cases that are not clean).
fn control(rng: &mut Rng, code: u64, fast: bool, n: u64, clean: bool) -> u64 {
    if clean {
        let start = if rng.chance(80) { 0 } else { rng.below(n) };
        return code | if fast { FAST } else { 0 } | n << 32 | start << 48;
    }
    let code = if rng.chance(88) {
        code
    } else {
        // Never 0x51 with another call's input: only `one_write` builds
        // elements a guest survives.
        let any = rng.below(0x1_0000);
        rng.pick(&[
            0x4F,
            0x52,
            0,
            1,
            0xFFFF,
            if any == 0x51 { 0x50 } else { any },
        ])
    };
    let start = match rng.weighted(&[(75, 0), (15, 1), (5, 2), (5, 3)]) {
        0 => 0,
        1 => rng.below(n.max(1)),
        2 => n,
        _ => rng.below(0x1000),
    };
    let mut control = code | (n & 0xFFF) << 32 | (start & 0xFFF) << 48;
    if fast {
        control |= FAST;
    }
    if rng.chance(4) {
        control |= (1 + rng.below(0x3FF)) << 17; // variable header size
    }
    if rng.chance(3) {
        control |= 1 << 31; // nested
    }
    if rng.chance(4) {
        control |= 1 << rng.pick(&[27, 28, 29, 30, 44, 45, 46, 47, 60, 61, 62, 63]);
    }
    control
}

/// The 16-byte input header: PartitionId u64, VpIndex u32, TargetVtl u8,
/// RsvdZ u8[3].
fn header(rng: &mut Rng, clean: bool, vps: u32) -> [u8; 16] {
    if clean {
        let partition = rng.pick(&[partition_id::SELF, 2]);
        let vp = if rng.chance(40) {
            vp_index::SELF
        } else {
            rng.below(u64::from(vps)) as u32
        };
        let vtl = rng.pick(&[0, 0, 0x10, 0x01]);
        let mut h = [0u8; 16];
        h[..8].copy_from_slice(&partition.to_le_bytes());
        h[8..12].copy_from_slice(&vp.to_le_bytes());
        h[12] = vtl;
        return h;
    }
    let (any_partition, any_vp, any_vtl) = (rng.next(), rng.next() as u32, rng.next() as u8);
    let partition = rng.weighted(&[
        (45, partition_id::SELF),
        (20, 2),
        (10, 1),
        (10, partition_id::INVALID),
        (5, 3),
        (10, any_partition),
    ]);
    let existing = rng.below(u64::from(vps)) as u32;
    let vp = rng.weighted(&[
        (40, vp_index::SELF),
        (20, 0),
        (20, existing),
        (4, vps),
        (4, vps + 1),
        (4, vp_index::ANY),
        (8, any_vp),
    ]);
    let vtl = if rng.chance(75) {
        0
    } else {
        rng.pick(&[0x10, 0x11, 0x01, 0x0F, 0x20, 0x80, 0x1F, any_vtl])
    };
    let rsvd = if rng.chance(92) {
        [0; 3]
    } else {
        let r = 1 + rng.below(0xFF_FFFF) as u32;
        [r as u8, (r >> 8) as u8, (r >> 16) as u8]
    };
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&partition.to_le_bytes());
    h[8..12].copy_from_slice(&vp.to_le_bytes());
    h[12] = vtl;
    h[13..].copy_from_slice(&rsvd);
    h
}

fn name(rng: &mut Rng) -> u32 {
    match rng.weighted(&[(70, 0), (25, 1), (3, 2), (2, 3)]) {
        0 => rng.pick(SERVED).0,
        1 => rng.pick(KNOWN_VALUE).0,
        2 => rng.pick(NOT_SERVED),
        _ => rng.next() as u32,
    }
}

/// GPAs a list must not use: beyond RAM (partly or wholly, or near 2^64).
fn beyond_ram(rng: &mut Rng) -> u64 {
    rng.pick(&[
        RAM_SIZE - 8,
        RAM_SIZE,
        RAM_SIZE + PAGE_SIZE,
        1 << 40,
        !7, // the last aligned qword below 2^64
    ])
}

/// An 8-aligned offset at which `len` bytes fit in one page (0 if none).
fn fitting(rng: &mut Rng, len: u64) -> u64 {
    8 * rng.below((PAGE_SIZE.saturating_sub(len)) / 8 + 1)
}

fn input_gpa(rng: &mut Rng, window: u64, len: u64, clean: bool) -> u64 {
    let weights = if clean {
        [70, 30, 0, 0, 0, 0]
    } else {
        [70, 8, 6, 6, 5, 5]
    };
    match rng.weighted(&weights.into_iter().zip(0..).collect::<Vec<_>>()) {
        0 => window + fitting(rng, len),
        1 => window + PAGE_SIZE + fitting(rng, len),
        2 => window + 8 * rng.below(64) + 1 + rng.below(7), // misaligned
        3 => window + PAGE_SIZE - 8 * (1 + rng.below(4)),   // crosses into page 2
        4 => beyond_ram(rng),
        _ => HYPERCALL_PAGE + 8 * rng.below(PAGE_SIZE / 8),
    }
}

fn output_gpa(rng: &mut Rng, window: u64, in_gpa: u64, len: u64, clean: bool) -> u64 {
    let in_window = in_gpa >= window && in_gpa < window + 2 * PAGE_SIZE;
    let weights = if clean {
        [75, 20, 5, 0, 0, 0, 0, 0]
    } else {
        [55, 12, 6, 6, 6, 5, 5, 5]
    };
    match rng.weighted(&weights.into_iter().zip(0..).collect::<Vec<_>>()) {
        1 if in_window => in_gpa,                             // the same list
        2 if in_window => in_gpa + 8 * (1 + rng.below(2)),    // partly overlapping
        3 => window + 2 * PAGE_SIZE + 1 + rng.below(7),       // misaligned
        4 => window + 2 * PAGE_SIZE - 8 * (1 + rng.below(4)), // crosses a page
        5 => beyond_ram(rng),
        6 => HYPERCALL_PAGE + 8 * rng.below(PAGE_SIZE / 8),
        7 => rng.next(),
        _ => window + 2 * PAGE_SIZE + fitting(rng, len),
    }
}
