//! Hyper-V setup shared by the guests: discovery, the guest OS ID and the
//! hypercall page at a page of this image. Guest RAM is identity-mapped by
//! the boot protocol, so a pointer's value is its guest-physical address.

use core::sync::atomic::{AtomicBool, Ordering};

use hvcall_guest::{discover, enable_hypercall_page, set_guest_os_id, HvFeatures, HypercallPage};

use crate::console::{outln, Dec, Hex, Show};

/// An open-source guest OS ID (bit 63), OS type 0x7F, build 1.
pub const GUEST_OS_ID: u64 = (1 << 63) | (0x7F << 56) | 1;

/// A page-aligned page of RAM.
#[repr(C, align(4096))]
pub struct Page(pub [u8; 4096]);

/// The page the hypercall page overlays.
pub static mut HYPERCALL_PAGE: Page = Page([0; 4096]);

static ENABLED: AtomicBool = AtomicBool::new(false);

/// The guest-physical address of `p` (identity mapping).
pub fn gpa<T: ?Sized>(p: *const T) -> u64 {
    p.cast::<u8>() as u64
}

/// Discovery, guest OS ID and hypercall page (once, by one VP); ends the
/// VM with status 5 if the hypervisor is not usable.
pub fn enable() -> (HvFeatures, HypercallPage) {
    let features = match discover() {
        Ok(f) => f,
        Err(e) => {
            outln!("hv: discovery failed: ", e);
            crate::exit(5)
        }
    };
    let va = (&raw const HYPERCALL_PAGE).cast::<u8>();
    // SAFETY: CPL 0 under "Hv#1" (checked above); HYPERCALL_PAGE is
    // reserved for the overlay and never used as data.
    let page = unsafe {
        set_guest_os_id(GUEST_OS_ID);
        enable_hypercall_page(gpa(va), va)
    };
    match page {
        Ok(page) => {
            ENABLED.store(true, Ordering::Release);
            (features, page)
        }
        Err(e) => {
            outln!("hv: hypercall page not enabled: ", e);
            crate::exit(5)
        }
    }
}

/// The hypercall page once some VP ran [`enable`] (the MSR is
/// partition-wide), waiting for it.
pub fn page() -> HypercallPage {
    while !ENABLED.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // SAFETY: `enable` enabled the page at HYPERCALL_PAGE.
    unsafe { HypercallPage::from_raw((&raw const HYPERCALL_PAGE).cast::<u8>()) }
}

/// Shows several items in a row (inside an already locked line).
macro_rules! outline {
    ($($item:expr),*) => {{ $( Show::show(&$item); )* }};
}

impl Show for hvcall_guest::DiscoveryError {
    fn show(&self) {
        use hvcall_guest::DiscoveryError as E;
        match self {
            E::NoHypervisor => "no hypervisor (CPUID 0x1 ECX[31] clear)".show(),
            E::WrongVendor { .. } => "vendor is not \"Microsoft Hv\"".show(),
            E::MaxLeafTooLow { max_leaf } => outline!(
                "max hypervisor leaf ",
                Hex(u64::from(*max_leaf)),
                " below 0x40000005"
            ),
            E::NotHv1 { signature } => {
                outline!("interface ", Hex(u64::from(*signature)), " is not \"Hv#1\"")
            }
        }
    }
}

impl Show for hvcall_guest::PageError {
    fn show(&self) {
        use hvcall_guest::PageError as E;
        match self {
            E::Misaligned { gpa } => outline!("page ", Hex(*gpa), " not aligned"),
            E::Locked { msr } => outline!("MSR locked: ", Hex(*msr)),
            E::NotEnabled { written, readback } => {
                outline!(
                    "MSR reads back ",
                    Hex(*readback),
                    " after writing ",
                    Hex(*written)
                )
            }
        }
    }
}

impl Show for hvcall_guest::GetError {
    fn show(&self) {
        use hvcall_guest::GetError as E;
        match self {
            E::LengthMismatch { .. } => "names and values differ in length".show(),
            E::Failed {
                status,
                reps_completed,
                index,
            } => outline!(
                "status ",
                Hex(u64::from(status.0)),
                " reps completed ",
                Dec(u64::from(*reps_completed)),
                " at name #",
                Dec(*index as u64)
            ),
            E::NoProgress { index } => outline!("no progress at name #", Dec(*index as u64)),
            E::FastNotAdvertised { .. } => "XMM fast hypercalls not advertised".show(),
            E::TooManyForFast { .. } => "more than 4 names for the fast form".show(),
        }
    }
}
