//! Typed views of synthetic register values: the hypercall MSR, SynIC
//! SINTx, the VSM status registers and
//! HvRegisterInternalActivityState.

use bitfield_struct::bitfield;

use super::register_view;

/// HV_X64_MSR_HYPERCALL / HvX64RegisterHypercall (0x00090001).
///
/// ```
/// use hvcall_abi::value::HypercallMsr;
/// let m = HypercallMsr::new().with_enable(true).with_gpfn(0x123);
/// assert_eq!(m.into_bits(), 0x0012_3001);
/// assert_eq!(m.page_gpa(), 0x0012_3000);
/// assert_eq!(HypercallMsr::new().with_page_gpa(0x0012_3456), HypercallMsr::new().with_gpfn(0x123));
/// ```
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct HypercallMsr {
    /// The hypercall page is enabled (bit 0).
    pub enable: bool,
    /// Locked until reset (bit 1; exists when CPUID 0x40000003 EDX bit 18 is
    /// set).
    pub locked: bool,
    /// RsvdP (bits 11:2): ignore on read, preserve on write.
    #[bits(10)]
    pub reserved_p: u16,
    /// Guest page frame number of the hypercall page (bits 63:12).
    #[bits(52)]
    pub gpfn: u64,
}
register_view!(bits64 HypercallMsr);

/// The guest physical address of a GPFN field (bits 63:12): the page
/// number times [`PAGE_SIZE`](crate::PAGE_SIZE).
macro_rules! page_gpa {
    ($t:ty) => {
        impl $t {
            /// The GPA of the page: [`gpfn`](Self::gpfn) times 4 KiB.
            pub const fn page_gpa(&self) -> u64 {
                self.gpfn() << Self::GPFN_OFFSET
            }
            /// This value with the page at `gpa`; the low 12 bits of `gpa`
            /// (an offset inside the page) are dropped.
            pub const fn with_page_gpa(self, gpa: u64) -> Self {
                self.with_gpfn(gpa >> Self::GPFN_OFFSET)
            }
        }
        const _: () = assert!(1 << <$t>::GPFN_OFFSET == $crate::PAGE_SIZE);
    };
}
page_gpa!(HypercallMsr);

/// HV_X64_MSR_VP_ASSIST_PAGE / HvRegisterVpAssistPage (0x00090013).
///
/// ```
/// use hvcall_abi::value::VpAssistPage;
/// let m = VpAssistPage::new().with_enable(true).with_page_gpa(0x30_0000);
/// assert_eq!(m.into_bits(), 0x30_0001);
/// assert_eq!(VpAssistPage::from_bits(0x30_0FFF).with_reserved_p(0).into_bits(), 0x30_0001);
/// ```
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct VpAssistPage {
    /// The VP assist page is enabled (bit 0).
    pub enable: bool,
    /// RsvdP (bits 11:1): ignore on read, preserve on write.
    #[bits(11)]
    pub reserved_p: u16,
    /// Guest page frame number of the VP assist page (bits 63:12).
    #[bits(52)]
    pub gpfn: u64,
}
register_view!(bits64 VpAssistPage);
page_gpa!(VpAssistPage);

/// HvRegisterInternalActivityState (0x00000004, read-only): why a VP is
/// not running guest code (TLFS HV_INTERNAL_ACTIVITY_REGISTER).
///
/// ```
/// use hvcall_abi::value::InternalActivity;
/// let halted = InternalActivity::new().with_halt_suspend(true);
/// assert_eq!(halted.into_bits(), 0b10);
/// ```
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct InternalActivity {
    /// Waiting for a startup IPI, never started (bit 0).
    pub startup_suspend: bool,
    /// Halted by HLT until an interrupt (bit 1).
    pub halt_suspend: bool,
    /// Idle (bit 2).
    pub idle_suspend: bool,
    /// Reserved (bits 63:3).
    #[bits(61)]
    pub reserved: u64,
}
register_view!(bits64 InternalActivity);

/// HvRegisterSint0..15 / HV_X64_MSR_SINTx.
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct Sint {
    /// Interrupt vector, valid range 16–255 (bits 7:0).
    pub vector: u8,
    /// RsvdP (bits 15:8).
    pub reserved_p_8_15: u8,
    /// Masked (bit 16).
    pub masked: bool,
    /// Auto EOI (bit 17).
    pub auto_eoi: bool,
    /// Polling (bit 18).
    pub polling: bool,
    /// As intercept (bit 19; Linux).
    pub as_intercept: bool,
    /// Proxy (bit 20; Linux).
    pub proxy: bool,
    /// RsvdP (bits 63:21).
    #[bits(43)]
    pub reserved_p_21_63: u64,
}
register_view!(bits64 Sint);

/// HvRegisterVsmVpStatus (0x000D0003, read-only, per VP).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct VsmVpStatus {
    /// The VTL the VP is running in (bits 3:0).
    #[bits(4)]
    pub active_vtl: u8,
    /// MBEC is enabled for the active VTL (bit 4).
    pub active_mbec_enabled: bool,
    /// Reserved (bits 15:5).
    #[bits(11)]
    pub reserved_5_15: u16,
    /// Set of VTLs enabled on this VP, one bit per VTL (bits 31:16).
    pub enabled_vtl_set: u16,
    /// Reserved (bits 63:32).
    pub reserved_32_63: u32,
}
register_view!(bits64 VsmVpStatus);

/// HvRegisterVsmPartitionStatus (0x000D0004, read-only, partition-wide).
#[bitfield(u64)]
#[derive(PartialEq, Eq)]
pub struct VsmPartitionStatus {
    /// Set of VTLs enabled on the partition, one bit per VTL (bits 15:0).
    pub enabled_vtl_set: u16,
    /// Highest VTL the partition may enable (bits 19:16).
    #[bits(4)]
    pub maximum_vtl: u8,
    /// Set of VTLs with MBEC enabled (bits 35:20).
    pub mbec_enabled_vtl_set: u16,
    /// Set of VTLs with supervisor shadow stacks enabled (bits 39:36;
    /// OpenVMM).
    #[bits(4)]
    pub supervisor_shadow_stack_enabled_vtl_set: u8,
    /// Reserved (bits 63:40).
    #[bits(24)]
    pub reserved: u32,
}
register_view!(bits64 VsmPartitionStatus);

const _: () = assert!(core::mem::size_of::<HypercallMsr>() == 8);
const _: () = assert!(core::mem::size_of::<VpAssistPage>() == 8);
