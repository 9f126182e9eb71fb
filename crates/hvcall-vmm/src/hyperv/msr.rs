//! The synthetic MSRs (docs/contract.md §6).
//!
//! KVM is told to send every access to `0x40000000..0x40002000` to user
//! space (`KVM_CAP_X86_USER_SPACE_MSR` with an MSR filter that denies the
//! range). [`SyntheticMsrs`] then gives them meaning:
//!
//! - `0x40000000` guest OS ID: read/write, partition-wide.
//! - `0x40000001` hypercall: bit 0 Enable, bit 1 Locked, bits 11:2 RsvdP
//!   (ignored on write, read as 0), bits 63:12 GPFN. While the guest OS ID
//!   is 0 a write stores only the GPFN (Enable and Locked read back 0).
//!   Setting Enable with a GPFN outside guest RAM raises #GP. Once Locked
//!   is set, every write raises #GP until the VM ends. Writing 0 to the
//!   guest OS ID clears Enable unless the MSR is locked.
//! - `0x40000002` VP index: read-only, #GP on write.
//! - `0x40000022` TSC frequency and `0x40000023` APIC timer frequency, in
//!   Hz (AccessFrequencyRegs): read-only, #GP on write.
//! - `0x40000073` VP assist page, per VP: bit 0 Enable, bits 11:1 RsvdP,
//!   bits 63:12 GPFN; read/write (Linux writes it whatever the privileges
//!   say, so it is answered rather than faulted; hvcall puts nothing in the
//!   page). Setting Enable with a GPFN outside guest RAM raises #GP.
//! - every other MSR of the range raises #GP.

use hvcall_abi::value::{HypercallMsr, VpAssistPage};
use hvcall_abi::{msr, PAGE_SIZE};
use kvm_bindings::{kvm_enable_cap, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER};
use kvm_ioctls::{MsrFilterDefaultAction, MsrFilterRange, MsrFilterRangeFlags, VmFd};

/// First MSR sent to user space: the first of the synthetic range.
pub const SYNTHETIC_BASE: u32 = msr::FIRST;
/// Number of MSRs sent to user space (covers every Hyper-V synthetic MSR,
/// including the crash, reenlightenment and nested ones).
pub const SYNTHETIC_COUNT: u32 = msr::COUNT;

/// Most VPs whose VP assist page MSR is kept ([`crate::topology::MAX_CPUS`]).
const MAX_VPS: usize = crate::topology::MAX_CPUS as usize;

/// Whether the page holding `gpa` lies inside RAM.
fn page_in_ram(gpa: u64, ram_size: u64) -> bool {
    let page = gpa & !(PAGE_SIZE - 1);
    page.checked_add(PAGE_SIZE)
        .is_some_and(|end| end <= ram_size)
}

/// Errors setting up the MSR exits.
#[derive(Debug, thiserror::Error)]
pub enum MsrSetupError {
    /// KVM refused `KVM_CAP_X86_USER_SPACE_MSR`.
    #[error("enabling user-space MSR exits: {0}")]
    UserSpaceMsr(kvm_ioctls::Error),
    /// KVM refused the MSR filter.
    #[error("installing the MSR filter: {0}")]
    Filter(kvm_ioctls::Error),
}

/// Makes accesses to the synthetic MSR range exit to user space.
pub fn install_filter(vm: &VmFd) -> Result<(), MsrSetupError> {
    let cap = kvm_enable_cap {
        cap: KVM_CAP_X86_USER_SPACE_MSR,
        args: [u64::from(KVM_MSR_EXIT_REASON_FILTER), 0, 0, 0],
        ..Default::default()
    };
    vm.enable_cap(&cap).map_err(MsrSetupError::UserSpaceMsr)?;
    // A clear bit denies the access, which sends it to user space.
    let bitmap = vec![0u8; (SYNTHETIC_COUNT / 8) as usize];
    let range = MsrFilterRange {
        flags: MsrFilterRangeFlags::READ | MsrFilterRangeFlags::WRITE,
        base: SYNTHETIC_BASE,
        msr_count: SYNTHETIC_COUNT,
        bitmap: &bitmap,
    };
    vm.set_msr_filter(MsrFilterDefaultAction::ALLOW, &[range])
        .map_err(MsrSetupError::Filter)
}

/// The access raises #GP.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct GeneralProtection;

/// One VP's own synthetic MSRs: the per-VP part of [`SyntheticMsrs`]
/// (the unit a bank per VTL will repeat).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct VpSyntheticMsrs {
    /// HV_X64_MSR_VP_ASSIST_PAGE.
    pub vp_assist_page: u64,
}

/// The synthetic MSR state: partition-wide, plus each VP's own.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SyntheticMsrs {
    /// HV_X64_MSR_GUEST_OS_ID.
    pub guest_os_id: u64,
    /// HV_X64_MSR_HYPERCALL.
    pub hypercall: u64,
    /// HV_X64_MSR_TSC_FREQUENCY, Hz (0 reads as #GP: not known).
    pub tsc_hz: u64,
    /// HV_X64_MSR_APIC_FREQUENCY, Hz (0 reads as #GP: not known).
    pub apic_hz: u64,
    /// Each VP's own synthetic MSRs, by VP index.
    pub vps: [VpSyntheticMsrs; MAX_VPS],
}

impl Default for SyntheticMsrs {
    fn default() -> Self {
        Self {
            guest_os_id: 0,
            hypercall: 0,
            tsc_hz: 0,
            apic_hz: 0,
            vps: [VpSyntheticMsrs::default(); MAX_VPS],
        }
    }
}

impl SyntheticMsrs {
    /// GPA of the hypercall page while it is enabled.
    pub fn overlay_page(&self) -> Option<u64> {
        let hypercall = HypercallMsr::from_bits(self.hypercall);
        hypercall.enable().then_some(hypercall.page_gpa())
    }

    /// VP `vp_index`'s own synthetic MSRs, if the VP can exist.
    pub fn vp(&self, vp_index: u32) -> Option<&VpSyntheticMsrs> {
        self.vps.get(vp_index as usize)
    }

    /// RDMSR by VP `vp_index`.
    pub fn read(&self, index: u32, vp_index: u32) -> Result<u64, GeneralProtection> {
        match index {
            msr::GUEST_OS_ID => Ok(self.guest_os_id),
            msr::HYPERCALL => Ok(self.hypercall),
            msr::VP_INDEX => Ok(u64::from(vp_index)),
            msr::TSC_FREQUENCY if self.tsc_hz != 0 => Ok(self.tsc_hz),
            msr::APIC_FREQUENCY if self.apic_hz != 0 => Ok(self.apic_hz),
            msr::VP_ASSIST_PAGE => self
                .vp(vp_index)
                .map(|vp| vp.vp_assist_page)
                .ok_or(GeneralProtection),
            _ => Err(GeneralProtection),
        }
    }

    /// WRMSR in a VM with `ram_size` bytes of RAM.
    pub fn write(
        &mut self,
        index: u32,
        vp_index: u32,
        value: u64,
        ram_size: u64,
    ) -> Result<(), GeneralProtection> {
        match index {
            msr::VP_ASSIST_PAGE => {
                let new = VpAssistPage::from_bits(value).with_reserved_p(0);
                if new.enable() && !page_in_ram(new.page_gpa(), ram_size) {
                    return Err(GeneralProtection);
                }
                let vp = self
                    .vps
                    .get_mut(vp_index as usize)
                    .ok_or(GeneralProtection)?;
                vp.vp_assist_page = new.into_bits();
                Ok(())
            }
            msr::GUEST_OS_ID => {
                self.guest_os_id = value;
                let hypercall = HypercallMsr::from_bits(self.hypercall);
                if value == 0 && !hypercall.locked() {
                    self.hypercall = hypercall.with_enable(false).into_bits();
                }
                Ok(())
            }
            msr::HYPERCALL => {
                if HypercallMsr::from_bits(self.hypercall).locked() {
                    return Err(GeneralProtection);
                }
                let mut new = HypercallMsr::from_bits(value).with_reserved_p(0);
                if new.enable() && !page_in_ram(new.page_gpa(), ram_size) {
                    return Err(GeneralProtection);
                }
                if self.guest_os_id == 0 {
                    new = HypercallMsr::new().with_gpfn(new.gpfn());
                }
                self.hypercall = new.into_bits();
                Ok(())
            }
            _ => Err(GeneralProtection),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: u64 = 64 << 20;

    impl SyntheticMsrs {
        fn write_vp0(&mut self, index: u32, value: u64, ram: u64) -> Result<(), GeneralProtection> {
            self.write(index, 0, value, ram)
        }
    }

    #[test]
    fn frequencies_read_only_and_vp_assist_page_per_vp() {
        let mut m = SyntheticMsrs {
            tsc_hz: 2_000_000_000,
            apic_hz: 1_000_000_000,
            ..Default::default()
        };
        assert_eq!(m.read(msr::TSC_FREQUENCY, 0), Ok(2_000_000_000));
        assert_eq!(m.read(msr::APIC_FREQUENCY, 1), Ok(1_000_000_000));
        assert_eq!(
            m.write_vp0(msr::TSC_FREQUENCY, 5, RAM),
            Err(GeneralProtection)
        );
        assert_eq!(
            SyntheticMsrs::default().read(msr::TSC_FREQUENCY, 0),
            Err(GeneralProtection)
        );
        m.write(msr::VP_ASSIST_PAGE, 1, 0x30_0000 | 0xFFE | 1, RAM)
            .unwrap();
        assert_eq!(m.read(msr::VP_ASSIST_PAGE, 1), Ok(0x30_0001));
        assert_eq!(m.read(msr::VP_ASSIST_PAGE, 0), Ok(0));
        assert_eq!(
            m.write(msr::VP_ASSIST_PAGE, 0, RAM | 1, RAM),
            Err(GeneralProtection)
        );
        assert_eq!(
            m.write(msr::VP_ASSIST_PAGE, 0, RAM, RAM),
            Ok(()),
            "disabled: not checked"
        );
        assert_eq!(
            m.write(msr::VP_ASSIST_PAGE, 9999, 0, RAM),
            Err(GeneralProtection)
        );
    }

    #[test]
    fn enable_has_no_effect_while_guest_os_id_is_zero() {
        let mut m = SyntheticMsrs::default();
        m.write_vp0(msr::HYPERCALL, 0x20_0000 | 1, RAM).unwrap();
        assert_eq!(m.read(msr::HYPERCALL, 0), Ok(0x20_0000));
        assert_eq!(m.overlay_page(), None);
        m.write_vp0(msr::GUEST_OS_ID, 0x8000_0000_0000_0001, RAM)
            .unwrap();
        m.write_vp0(msr::HYPERCALL, 0x20_0000 | 1, RAM).unwrap();
        assert_eq!(m.overlay_page(), Some(0x20_0000));
    }

    #[test]
    fn gpfn_outside_ram_is_gp() {
        let mut m = SyntheticMsrs {
            guest_os_id: 1,
            hypercall: 0,
            ..Default::default()
        };
        assert_eq!(
            m.write_vp0(msr::HYPERCALL, RAM | 1, RAM),
            Err(GeneralProtection)
        );
        assert_eq!(
            m.write_vp0(msr::HYPERCALL, 0xFFFF_FFFF_FFFF_F001, RAM),
            Err(GeneralProtection)
        );
        assert_eq!(m.write_vp0(msr::HYPERCALL, RAM - 0x1000 + 1, RAM), Ok(()));
        assert_eq!(
            m.write_vp0(msr::HYPERCALL, RAM, RAM),
            Ok(()),
            "disabled: GPFN not checked"
        );
    }

    #[test]
    fn reserved_bits_ignored_and_lock_sticks() {
        let mut m = SyntheticMsrs {
            guest_os_id: 1,
            hypercall: 0,
            ..Default::default()
        };
        m.write_vp0(msr::HYPERCALL, 0x30_0000 | 0xFFC | 3, RAM)
            .unwrap();
        assert_eq!(m.read(msr::HYPERCALL, 0), Ok(0x30_0003));
        assert_eq!(
            m.write_vp0(msr::HYPERCALL, 0x40_0001, RAM),
            Err(GeneralProtection)
        );
        m.write_vp0(msr::GUEST_OS_ID, 0, RAM).unwrap();
        assert_eq!(m.overlay_page(), Some(0x30_0000), "locked page stays");
    }

    #[test]
    fn guest_os_id_zero_disables_page() {
        let mut m = SyntheticMsrs {
            guest_os_id: 1,
            hypercall: 0,
            ..Default::default()
        };
        m.write_vp0(msr::HYPERCALL, 0x30_0001, RAM).unwrap();
        m.write_vp0(msr::GUEST_OS_ID, 0, RAM).unwrap();
        assert_eq!(m.overlay_page(), None);
        assert_eq!(m.read(msr::HYPERCALL, 0), Ok(0x30_0000));
    }

    #[test]
    fn vp_index_is_read_only_and_others_gp() {
        let mut m = SyntheticMsrs::default();
        assert_eq!(m.read(msr::VP_INDEX, 3), Ok(3));
        assert_eq!(m.write_vp0(msr::VP_INDEX, 3, RAM), Err(GeneralProtection));
        assert_eq!(m.read(msr::TIME_REF_COUNT, 0), Err(GeneralProtection));
        assert_eq!(m.write_vp0(msr::EOI, 0, RAM), Err(GeneralProtection));
    }
}
