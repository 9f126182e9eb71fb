//! The guest half of `hvcall run --guest chaos` (`crates/hvcall/src/chaos`):
//! VP0 enables the hypercall page where the host asks; then every VP
//! executes its own table of hypercalls, written into RAM by the host
//! before the run, exactly as given, and stores each result word and
//! register file back into its records. VP0 exits once every VP is done.
//!
//! The table lives at [`TABLE_GPA`]: a [`Header`], one `u64` case count
//! per VP at [`COUNTS_OFFSET`], and from [`RECORDS_OFFSET`] `stride`
//! [`Case`] records per VP (VP v's first at record `v * stride`). Every
//! call goes through `HypercallPage::hypercall_fast`, so RDX, R8 and
//! XMM0–5 hold the case's register pairs at the call: the input and
//! output GPAs for the memory form (pair 0), the input for the fast
//! forms. Nothing is checked here; the host compares.
#![no_std]
#![no_main]

use core::ptr::{addr_of_mut, read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use hvcall_guest::{enable_hypercall_page, set_guest_os_id, FastRegisters, HypercallPage};
use rt::console::Hex;

rt::entry!(main);

/// Where the host writes the table.
pub const TABLE_GPA: u64 = 0x40_0000;
/// [`Header::magic`]: "hvchaos1".
pub const MAGIC: u64 = u64::from_le_bytes(*b"hvchaos1");
/// Offset of the per-VP case counts from [`TABLE_GPA`].
pub const COUNTS_OFFSET: u64 = 0x20;
/// Offset of the first record from [`TABLE_GPA`].
pub const RECORDS_OFFSET: u64 = 0x400;
/// Most VPs (the counts must end before the records).
pub const MAX_VPS: u64 = (RECORDS_OFFSET - COUNTS_OFFSET) / 8;
/// Most records the table may hold (keeps it below 1 MiB).
pub const MAX_RECORDS: u64 = 8000;

/// The start of the table.
#[repr(C)]
pub struct Header {
    /// [`MAGIC`], or the guest exits with status 2.
    pub magic: u64,
    /// Records reserved per VP.
    pub stride: u64,
    /// Page-aligned GPA at which to enable the hypercall page.
    pub hypercall_page: u64,
    /// Number of VPs the table is for (must be this VM's).
    pub vps: u64,
}

/// One hypercall: in `control` and `regs`, out `result` and `regs`.
#[repr(C)]
pub struct Case {
    /// The control word (RCX).
    pub control: u64,
    /// The result word (RAX) after the call.
    pub result: u64,
    /// RDX/R8 and XMM0–5 before the call, replaced by their values after it.
    pub regs: FastRegisters,
}

const _: () = assert!(core::mem::size_of::<Header>() == COUNTS_OFFSET as usize);
const _: () = assert!(core::mem::size_of::<Case>() == 128);

/// Set by VP0 once the hypercall page is enabled.
static READY: AtomicBool = AtomicBool::new(false);
/// VPs done with their table.
static DONE: AtomicU32 = AtomicU32::new(0);

fn main(vp: u32, vps: u32) {
    let header = TABLE_GPA as *const Header;
    // SAFETY: all RAM is identity-mapped (boot protocol) and the host keeps
    // the table's pages for this guest; the fields are plain integers.
    let (magic, stride, page_gpa, table_vps) = unsafe {
        (
            read_volatile(&raw const (*header).magic),
            read_volatile(&raw const (*header).stride),
            read_volatile(&raw const (*header).hypercall_page),
            read_volatile(&raw const (*header).vps),
        )
    };
    let fits = table_vps == u64::from(vps)
        && table_vps <= MAX_VPS
        && stride
            .checked_mul(table_vps)
            .is_some_and(|n| n <= MAX_RECORDS);
    if magic != MAGIC || !fits {
        if vp == 0 {
            rt::outln!(
                "chaos: no case table for this VM at ",
                Hex(TABLE_GPA),
                " (`hvcall run --guest chaos` writes it)"
            );
            rt::exit(2);
        }
        return;
    }
    let page = if vp == 0 {
        // SAFETY: CPL 0 under the hvcall VMM; the host reserved the page at
        // `page_gpa` (identity-mapped) for the overlay.
        let page = unsafe {
            set_guest_os_id(rt::hv::GUEST_OS_ID);
            enable_hypercall_page(page_gpa, page_gpa as *const u8)
        };
        let Ok(page) = page else {
            rt::outln!("chaos: hypercall page not enabled");
            rt::exit(5)
        };
        READY.store(true, Ordering::Release);
        page
    } else {
        while !READY.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
        // SAFETY: VP0 enabled the page at `page_gpa` (partition-wide MSR).
        unsafe { HypercallPage::from_raw(page_gpa as *const u8) }
    };
    let count_at = (TABLE_GPA + COUNTS_OFFSET + 8 * u64::from(vp)) as *const u64;
    // SAFETY: inside the table (vp < vps <= MAX_VPS), identity-mapped.
    let count = unsafe { read_volatile(count_at) }.min(stride);
    let first = TABLE_GPA + RECORDS_OFFSET + u64::from(vp) * stride * 128;
    let cases = first as *mut Case;
    for i in 0..count as usize {
        // SAFETY: record `i` of this VP lies inside the table (count <=
        // stride, stride * vps <= MAX_RECORDS) and belongs to this VP only;
        // no hypercall output overlaps it (the host places every list
        // elsewhere); CPL 0 with CR4.OSFXSR set (boot protocol).
        unsafe {
            let case = cases.add(i);
            let control = read_volatile(&raw const (*case).control);
            let result = page.hypercall_fast(control, &mut *addr_of_mut!((*case).regs));
            write_volatile(&raw mut (*case).result, result);
        }
    }
    DONE.fetch_add(1, Ordering::AcqRel);
    if vp != 0 {
        return;
    }
    while DONE.load(Ordering::Acquire) < vps {
        core::hint::spin_loop();
    }
    rt::exit(0);
}
