//! A consistent view of one VP's registers: [`VpSnapshot`], filled group
//! by group (see [`crate::state::registers`] for the groups).
//!
//! A snapshot of the calling VP fills groups lazily, each at most once per
//! call; a snapshot of another VP is taken at once, on that VP's own thread
//! ([`VpSnapshot::capture_from`]), with exactly the [`Groups`](crate::state::registers::Groups) the call's
//! names need, and never filled later (that would mix two moments).
//!
//! Here: the state as plain data and its bookkeeping (which groups are
//! held, which MSRs are staged). Its encoding to and from HV register
//! values is in `encode`, its fetching from and setting to KVM in `kvm`;
//! the VMM's synthetic state it carries is [`SyntheticState`].

use hvcall_abi::value::InternalActivity;
use kvm_bindings::{
    kvm_debugregs, kvm_sync_regs, KVM_MP_STATE_HALTED, KVM_MP_STATE_INIT_RECEIVED,
    KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_SIPI_RECEIVED, KVM_MP_STATE_UNINITIALIZED,
};

use crate::hyperv::hypercall_page::SlotError;
use crate::hyperv::synthetic::SyntheticState;
use crate::state::registers::{Group, MSR_LIST};
use crate::state::validate::Invalid;

mod encode;
mod kvm;

/// Bit of the TSC in [`VpSnapshot::msrs_staged`] (entry 0 of [`MSR_LIST`]).
const TSC_STAGED: u16 = 1;

const _: () = assert!(MSR_LIST[0].1 == 0x10);

/// The x87/SSE state in FXSAVE layout (the legacy area of XSAVE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FpuState {
    fxsave: [u8; 512],
}

impl FpuState {
    /// From `KVM_GET_XSAVE`'s legacy area.
    pub fn from_xsave(x: &kvm_bindings::kvm_xsave) -> Self {
        let mut fxsave = [0u8; 512];
        for (dst, word) in fxsave.chunks_exact_mut(4).zip(x.region.iter()) {
            dst.copy_from_slice(&word.to_le_bytes());
        }
        Self { fxsave }
    }

    /// From `KVM_GET_FPU` (no MXCSR_MASK there: reads as 0).
    pub fn from_fpu(f: &kvm_bindings::kvm_fpu) -> Self {
        let mut s = [0u8; 512];
        s[0..2].copy_from_slice(&f.fcw.to_le_bytes());
        s[2..4].copy_from_slice(&f.fsw.to_le_bytes());
        s[4] = f.ftwx;
        s[6..8].copy_from_slice(&f.last_opcode.to_le_bytes());
        s[8..16].copy_from_slice(&f.last_ip.to_le_bytes());
        s[16..24].copy_from_slice(&f.last_dp.to_le_bytes());
        s[24..28].copy_from_slice(&f.mxcsr.to_le_bytes());
        for (i, st) in f.fpr.iter().enumerate() {
            s[32 + 16 * i..48 + 16 * i].copy_from_slice(st);
        }
        for (i, x) in f.xmm.iter().enumerate() {
            s[160 + 16 * i..176 + 16 * i].copy_from_slice(x);
        }
        Self { fxsave: s }
    }

    fn u128_at(&self, offset: usize) -> u128 {
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.fxsave[offset..offset + 16]);
        u128::from_le_bytes(b)
    }

    fn set_u128_at(&mut self, offset: usize, v: u128) {
        self.fxsave[offset..offset + 16].copy_from_slice(&v.to_le_bytes());
    }

    /// For `KVM_SET_FPU` (the legacy area; XSAVE's other components stay).
    fn to_fpu(&self) -> kvm_bindings::kvm_fpu {
        let s = &self.fxsave;
        let u16_at = |o: usize| u16::from_le_bytes([s[o], s[o + 1]]);
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&s[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let mut f = kvm_bindings::kvm_fpu {
            fcw: u16_at(0),
            fsw: u16_at(2),
            ftwx: s[4],
            last_opcode: u16_at(6),
            last_ip: u64_at(8),
            last_dp: u64_at(16),
            mxcsr: u32::from_le_bytes([s[24], s[25], s[26], s[27]]),
            ..Default::default()
        };
        for (i, st) in f.fpr.iter_mut().enumerate() {
            st.copy_from_slice(&s[32 + 16 * i..48 + 16 * i]);
        }
        for (i, x) in f.xmm.iter_mut().enumerate() {
            x.copy_from_slice(&s[160 + 16 * i..176 + 16 * i]);
        }
        f
    }
}

/// The slot of RIP among the general registers of [`Staged::Regs`].
pub const RIP_SLOT: usize = 16;
/// The slot of RFLAGS among the general registers of [`Staged::Regs`].
pub const RFLAGS_SLOT: usize = 17;

/// Where a value written to a snapshot is ([`VpSnapshot::stage`], or
/// [`VpSnapshot::write`] which also sets groups in the vCPU).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Staged {
    /// In the snapshot's copy of this group: [`VpSnapshot::flush`] it
    /// (done already after [`VpSnapshot::write`]).
    Group(Group),
    /// General register `n` (0–15 in HV order, [`RIP_SLOT`],
    /// [`RFLAGS_SLOT`]) changed in the snapshot's `regs` only: the owner
    /// commits it ([`crate::state::write::Pending`]).
    Regs(usize),
    /// This synthetic MSR of the VM is to take this value.
    SyntheticMsr(u32, u64),
}

/// Why a register write was not applied (contract §8).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Step 8b: hvcall does not write this register.
    #[error("register not writable")]
    Name,
    /// Step 8c: KVM refused the value, or did not hold it.
    #[error("value refused")]
    Value,
    /// Step 8c: the architecture refuses the value ([`crate::state::validate`]).
    #[error("value refused: {0}")]
    Invalid(#[from] Invalid),
    /// KVM could not read state the write needs.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// KVM could not write the state (other than refusing the value).
    #[error(transparent)]
    Flush(#[from] FlushError),
    /// The hypercall page could not be moved.
    #[error(transparent)]
    Slots(#[from] SlotError),
}

/// One VP's state, fetched group by group.
#[derive(Clone, Debug)]
pub struct VpSnapshot {
    sync: kvm_sync_regs,
    msrs: Option<[Option<u64>; MSR_LIST.len()]>,
    fpu: Option<FpuState>,
    debug: Option<kvm_debugregs>,
    xcr0: Option<u64>,
    /// `KVM_GET_MP_STATE`.
    mp_state: Option<u32>,
    synthetic: SyntheticState,
    /// MSRs of [`MSR_LIST`] staged for the next flush (bit i: entry i).
    msrs_staged: u16,
}

/// HvRegisterInternalActivityState of a vCPU in KVM MP state `mp_state`:
/// waiting for INIT/SIPI is StartupSuspend, HLT is HaltSuspend.
fn activity(mp_state: u32) -> InternalActivity {
    match mp_state {
        KVM_MP_STATE_UNINITIALIZED | KVM_MP_STATE_INIT_RECEIVED | KVM_MP_STATE_SIPI_RECEIVED => {
            InternalActivity::new().with_startup_suspend(true)
        }
        KVM_MP_STATE_HALTED => InternalActivity::new().with_halt_suspend(true),
        _ => InternalActivity::new(),
    }
}

/// A group could not be fetched from KVM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("fetching {group:?} state")]
pub struct FetchError {
    /// The group.
    pub group: Group,
    /// The ioctl error.
    #[source]
    pub source: kvm_ioctls::Error,
}

/// A group could not be written to KVM (for a reason other than KVM
/// refusing the value, which is step 8c).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("writing {group:?} state")]
pub struct FlushError {
    /// The group.
    pub group: Group,
    /// The ioctl error.
    #[source]
    pub source: kvm_ioctls::Error,
}

impl VpSnapshot {
    /// A snapshot with only the sync group (`sync` as seen at the exit,
    /// RIP already set to what the snapshot must report).
    pub fn from_sync(sync: kvm_sync_regs, synthetic: SyntheticState) -> Self {
        Self {
            sync,
            msrs: None,
            fpu: None,
            debug: None,
            xcr0: None,
            mp_state: None,
            synthetic,
            msrs_staged: 0,
        }
    }

    /// The same snapshot with the VMM's synthetic state `synthetic` (of
    /// the same VP, read now): for a copy of a snapshot parked earlier.
    pub fn with_synthetic(mut self: Box<Self>, synthetic: SyntheticState) -> Box<Self> {
        self.synthetic = synthetic;
        self
    }

    /// The VP this snapshot is of.
    pub fn vp_index(&self) -> u32 {
        self.synthetic.vp_index
    }

    /// The sync group: general, control and segment registers, events.
    pub fn sync(&self) -> &kvm_sync_regs {
        &self.sync
    }

    /// Fills the activity group of a VP known to be running (the caller of
    /// the hypercall being handled: it is executing the call), without
    /// `KVM_GET_MP_STATE`.
    pub fn fill_activity_running(&mut self) {
        self.mp_state.get_or_insert(KVM_MP_STATE_RUNNABLE);
    }

    /// Whether `group` is already fetched.
    pub fn has(&self, group: Group) -> bool {
        match group {
            Group::Sync | Group::Synthetic => true,
            Group::Msrs => self.msrs.is_some(),
            Group::Fpu => self.fpu.is_some(),
            Group::Debug => self.debug.is_some(),
            Group::Xcrs => self.xcr0.is_some(),
            Group::Activity => self.mp_state.is_some(),
        }
    }

    /// The MSRs staged since the last flush (bit i: entry i of
    /// [`MSR_LIST`]).
    pub fn msrs_staged(&self) -> u16 {
        self.msrs_staged
    }

    /// Marks the MSRs of `mask` (as [`Self::msrs_staged`]) for the next
    /// flush, with the values this snapshot holds: to put back what an
    /// earlier flush changed. The TSC is never put back: it ticks, so the
    /// value held would move it back in time.
    pub fn restage_msrs(&mut self, mask: u16) {
        self.msrs_staged |= mask & !TSC_STAGED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hyperv::cpuid::HypervLeaves;
    use hvcall_abi::{HvError, HvRegisterName};
    use kvm_bindings::kvm_dtable;

    fn snapshot() -> VpSnapshot {
        let mut sync = kvm_sync_regs::default();
        sync.regs.rax = 0x1111;
        sync.regs.r15 = 0xF15;
        sync.regs.rip = 0x10_0000;
        sync.sregs.cs = crate::boot::flat_segment(8, true);
        sync.sregs.gdt = kvm_dtable {
            base: 0x1000,
            limit: 0x2F,
            ..Default::default()
        };
        let synthetic = SyntheticState {
            vp_index: 1,
            guest_os_id: 7,
            hypercall: 0x3000_0001,
            time_ref_count: 5,
            vp_assist_page: 0x5000_0001,
            leaves: HypervLeaves::new(true, true, 2),
        };
        VpSnapshot::from_sync(sync, synthetic)
    }

    #[test]
    fn sync_group_values() {
        let s = snapshot();
        assert_eq!(
            s.value(HvRegisterName(0x0002_0000)).unwrap().as_u128(),
            0x1111
        );
        assert_eq!(
            s.value(HvRegisterName(0x0002_000F)).unwrap().as_u128(),
            0xF15
        );
        assert_eq!(
            s.value(HvRegisterName(0x0002_0010)).unwrap().as_u128(),
            0x10_0000
        );
    }

    #[test]
    fn segment_layout_section_5() {
        let v = snapshot().value(HvRegisterName(0x0006_0001)).unwrap();
        assert_eq!(v.low(), 0, "base");
        assert_eq!(v.high() & 0xFFFF_FFFF, 0xFFFF_FFFF, "limit");
        assert_eq!((v.high() >> 32) & 0xFFFF, 8, "selector");
        // type 11, S, P, L, G
        assert_eq!(v.high() >> 48, 0xB | 0x10 | 0x80 | 0x2000 | 0x8000);
    }

    #[test]
    fn table_layout_section_5() {
        let v = snapshot().value(HvRegisterName(0x0007_0001)).unwrap();
        assert_eq!((v.low() >> 48) & 0xFFFF, 0x2F);
        assert_eq!(v.high(), 0x1000);
        assert_eq!(v.low() & 0xFFFF_FFFF_FFFF, 0, "padding");
    }

    #[test]
    fn lazy_groups_are_absent_until_filled() {
        let s = snapshot();
        assert!(!s.has(Group::Msrs));
        assert_eq!(s.value(HvRegisterName(0x0008_0004)), None);
        assert_eq!(s.value(HvRegisterName(0x0003_0000)), None);
        assert_eq!(s.value(HvRegisterName(0x0005_0005)), None);
    }

    #[test]
    fn a_missing_group_is_refused_not_an_unknown_name() {
        let s = snapshot();
        assert_eq!(
            s.read_held(HvRegisterName(0x0002_0000))
                .map(|v| v.as_u128()),
            Ok(0x1111),
            "Rax: sync group"
        );
        for missing in [0x0008_0009, 0x0003_0000, 0x0005_0000, 0x0004_0005] {
            assert_eq!(
                s.read_held(HvRegisterName(missing)),
                Err(HvError::INVALID_VP_STATE),
                "{missing:#x}"
            );
        }
        assert_eq!(
            s.read_held(HvRegisterName(0x1234)),
            Err(HvError::INVALID_PARAMETER),
            "not served"
        );
    }

    #[test]
    fn synthetic_values() {
        let s = snapshot();
        assert_eq!(s.value(HvRegisterName(0x0009_0003)).unwrap().as_u128(), 1);
        assert_eq!(s.value(HvRegisterName(0x0009_0002)).unwrap().as_u128(), 7);
        assert_eq!(
            s.value(HvRegisterName(0x0009_0001)).unwrap().as_u128(),
            0x3000_0001
        );
        assert_eq!(
            s.value(HvRegisterName(0x000D_0003)).unwrap().as_u128(),
            1 << 16
        );
        assert_eq!(s.value(HvRegisterName(0x000D_0004)).unwrap().as_u128(), 1);
        let priv_info = s.value(HvRegisterName(0x0000_0200)).unwrap().as_u128();
        assert_eq!(priv_info as u32 & 0x60, 0x60);
        assert_ne!((priv_info >> 32) as u32 & (1 << 17), 0);
    }
}
