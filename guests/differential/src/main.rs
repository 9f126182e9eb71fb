//! The guest half of the differential test
//! (`crates/hvcall/tests/differential/`): VP0 enables the hypercall page
//! where the host asks, then executes a table of hypercalls the host wrote
//! into RAM before the run, exactly as given, and stores each result word
//! and register file back into the table. Other VPs halt at once (a
//! halted VP still serves other VPs' reads of its registers).
//!
//! The table lives at [`TABLE_GPA`]: a [`Header`], then `count` [`Case`]
//! records. Every call goes through `HypercallPage::hypercall_fast`, so
//! RDX, R8 and XMM0–5 hold the case's register pairs at the call: the
//! input and output GPAs for the memory form (pair 0), the input for the
//! fast forms. Nothing is checked here; the host compares.
#![no_std]
#![no_main]

use core::ptr::{addr_of_mut, read_volatile, write_volatile};

use hvcall_guest::{enable_hypercall_page, set_guest_os_id, FastRegisters};
use rt::console::Hex;

rt::entry!(main);

/// Where the host writes the table.
pub const TABLE_GPA: u64 = 0x40_0000;
/// [`Header::magic`]: "hvdiff01".
pub const MAGIC: u64 = u64::from_le_bytes(*b"hvdiff01");
/// Most cases a table may hold (keeps the table below 1 MiB).
pub const MAX_CASES: u64 = 8000;

/// The start of the table.
#[repr(C)]
pub struct Header {
    /// [`MAGIC`], or the guest exits with status 2.
    pub magic: u64,
    /// Number of [`Case`] records that follow.
    pub count: u64,
    /// Page-aligned GPA at which to enable the hypercall page.
    pub hypercall_page: u64,
    /// Zero.
    pub reserved: u64,
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

const _: () = assert!(core::mem::size_of::<Header>() == 32);
const _: () = assert!(core::mem::size_of::<Case>() == 128);

fn main(vp: u32, _vps: u32) {
    if vp != 0 {
        return;
    }
    let header = TABLE_GPA as *const Header;
    // SAFETY: all RAM is identity-mapped (boot protocol) and the host keeps
    // the table's page for this guest; the fields are plain integers.
    let (magic, count, page_gpa) = unsafe {
        (
            read_volatile(&raw const (*header).magic),
            read_volatile(&raw const (*header).count),
            read_volatile(&raw const (*header).hypercall_page),
        )
    };
    if magic != MAGIC || count > MAX_CASES {
        rt::outln!(
            "differential: no case table at ",
            Hex(TABLE_GPA),
            " (the host test crates/hvcall/tests/differential writes it)"
        );
        rt::exit(2);
    }
    // SAFETY: CPL 0 under the hvcall VMM; the host reserved the page at
    // `page_gpa` (identity-mapped) for the overlay.
    let page = unsafe {
        set_guest_os_id(rt::hv::GUEST_OS_ID);
        enable_hypercall_page(page_gpa, page_gpa as *const u8)
    };
    let Ok(page) = page else {
        rt::outln!("differential: hypercall page not enabled");
        rt::exit(5)
    };
    let cases = (TABLE_GPA + core::mem::size_of::<Header>() as u64) as *mut Case;
    for i in 0..count as usize {
        // SAFETY: case `i` lies inside the table (count <= MAX_CASES), which
        // no hypercall output overlaps (the host places every list
        // elsewhere); CPL 0 with CR4.OSFXSR set (boot protocol).
        unsafe {
            let case = cases.add(i);
            let control = read_volatile(&raw const (*case).control);
            let result = page.hypercall_fast(control, &mut *addr_of_mut!((*case).regs));
            write_volatile(&raw mut (*case).result, result);
        }
    }
    rt::exit(0);
}
