//! A consistent view of one VP's registers: [`VpSnapshot`], filled group
//! by group (see [`crate::state::registers`] for the groups).
//!
//! A snapshot of the calling VP fills groups lazily, each at most once per
//! call; a snapshot of another VP is taken at once, on that VP's own thread
//! ([`VpSnapshot::capture_from`]), with exactly the [`Groups`] the call's
//! names need, and never filled later (that would mix two moments).

use hvcall_abi::name::x64;
use hvcall_abi::value::{
    FpControlStatus, FpRegister, InternalActivity, InterruptState, VsmPartitionStatus, VsmVpStatus,
};
use hvcall_abi::{msr, HvError, HvRegisterName, HvRegisterValue};
use kvm_bindings::{
    kvm_debugregs, kvm_msr_entry, kvm_sync_regs, Msrs, KVM_MP_STATE_HALTED,
    KVM_MP_STATE_INIT_RECEIVED, KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_SIPI_RECEIVED,
    KVM_MP_STATE_UNINITIALIZED,
};
use kvm_ioctls::VcpuFd;

use crate::hyperv::cpuid::HypervLeaves;
use crate::hyperv::hypercall_page::SlotError;
use crate::state::registers::{
    gpr, gpr_mut, pending_interruption, segment_from, segment_value, source_of, table_from,
    table_value, Group, Groups, Seg, Source, Syn, MSR_LIST,
};
use crate::state::validate::{self, efer, Invalid};
use crate::stats::count_ioctl;

/// How far the TSC may have moved past a value written to it when it is
/// read back at once (2^36 ticks: about 20 s at 3.5 GHz); further, or
/// behind the value, and KVM did not hold it (step 8c).
const TSC_SLACK: u64 = 1 << 36;
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

/// hvcall's synthetic state of one VP, read at snapshot time.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SyntheticState {
    /// The VP's index.
    pub vp_index: u32,
    /// HV_X64_MSR_GUEST_OS_ID.
    pub guest_os_id: u64,
    /// HV_X64_MSR_HYPERCALL.
    pub hypercall: u64,
    /// Partition reference time, 100 ns units.
    pub time_ref_count: u64,
    /// HV_X64_MSR_VP_ASSIST_PAGE of the VP.
    pub vp_assist_page: u64,
    /// The CPUID leaves the feature registers mirror.
    pub leaves: HypervLeaves,
}

impl SyntheticState {
    /// The synthetic state of VP `vp_index` now, in a VM created at
    /// `created` (reference time 0).
    pub fn now(
        vp_index: u32,
        msrs: &crate::hyperv::msr::SyntheticMsrs,
        created: std::time::Instant,
        leaves: HypervLeaves,
    ) -> Self {
        Self {
            vp_index,
            guest_os_id: msrs.guest_os_id,
            hypercall: msrs.hypercall,
            time_ref_count: (created.elapsed().as_nanos() / 100) as u64,
            vp_assist_page: msrs
                .vp_assist_page
                .get(vp_index as usize)
                .copied()
                .unwrap_or(0),
            leaves,
        }
    }
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

    /// A snapshot of `groups` of the vCPU owned by the calling thread.
    pub fn capture(
        vcpu: &VcpuFd,
        synthetic: SyntheticState,
        groups: Groups,
    ) -> Result<Self, FetchError> {
        Self::capture_from(vcpu.sync_regs(), vcpu, synthetic, groups)
    }

    /// A snapshot of `groups` of the vCPU owned by the calling thread, with
    /// its sync group (`regs`, `sregs`, `events`) given by the caller. One
    /// ioctl per group in `groups` beyond sync and synthetic.
    pub fn capture_from(
        sync: kvm_sync_regs,
        vcpu: &VcpuFd,
        synthetic: SyntheticState,
        groups: Groups,
    ) -> Result<Self, FetchError> {
        let mut s = Self::from_sync(sync, synthetic);
        for g in groups.fetched() {
            s.fill(g, vcpu)?;
        }
        Ok(s)
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

    /// A snapshot of `groups` of a vCPU that is not running (no `KVM_RUN`
    /// in progress on any thread), through ioctls only.
    pub fn capture_stopped(
        vcpu: &VcpuFd,
        synthetic: SyntheticState,
        groups: Groups,
    ) -> Result<Self, FetchError> {
        let err = |source| FetchError {
            group: Group::Sync,
            source,
        };
        let sync = kvm_sync_regs {
            regs: vcpu.get_regs().map_err(err)?,
            sregs: vcpu.get_sregs().map_err(err)?,
            events: vcpu.get_vcpu_events().map_err(err)?,
        };
        let mut s = Self::from_sync(sync, synthetic);
        for g in groups.fetched() {
            s.fill(g, vcpu)?;
        }
        Ok(s)
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

    /// Fetches `group` from `vcpu` (the VP this snapshot is of, on its own
    /// thread) unless already present.
    pub fn fill(&mut self, group: Group, vcpu: &VcpuFd) -> Result<(), FetchError> {
        if self.has(group) {
            return Ok(());
        }
        let err = |source| FetchError { group, source };
        // One ioctl per group (counted for the VM's statistics); MSRs may
        // take several, which `read_msrs` counts itself.
        if matches!(
            group,
            Group::Fpu | Group::Debug | Group::Xcrs | Group::Activity
        ) {
            count_ioctl();
        }
        match group {
            Group::Sync | Group::Synthetic => {}
            Group::Msrs => self.msrs = Some(read_msrs(vcpu).map_err(err)?),
            Group::Fpu => {
                self.fpu = Some(match vcpu.get_xsave() {
                    Ok(x) => FpuState::from_xsave(&x),
                    Err(_) => {
                        count_ioctl();
                        FpuState::from_fpu(&vcpu.get_fpu().map_err(err)?)
                    }
                })
            }
            Group::Debug => self.debug = Some(vcpu.get_debug_regs().map_err(err)?),
            Group::Xcrs => {
                let xcrs = vcpu.get_xcrs().map_err(err)?;
                let n = (xcrs.nr_xcrs as usize).min(xcrs.xcrs.len());
                let xcr0 = xcrs.xcrs[..n]
                    .iter()
                    .find(|x| x.xcr == 0)
                    .map_or(0, |x| x.value);
                self.xcr0 = Some(xcr0);
            }
            Group::Activity => self.mp_state = Some(vcpu.get_mp_state().map_err(err)?.mp_state),
        }
        Ok(())
    }

    /// The value of `name`, or `None` if it is not served or its group is
    /// missing (fill it first).
    pub fn value(&self, name: HvRegisterName) -> Option<HvRegisterValue> {
        let source = source_of(name)?;
        let r = &self.sync.regs;
        let s = &self.sync.sregs;
        let e = &self.sync.events;
        let v: u128 = match source {
            Source::Gpr(i) => u128::from(gpr(r, i)?),
            Source::Rip => u128::from(r.rip),
            Source::Rflags => u128::from(r.rflags),
            Source::Cr(0) => u128::from(s.cr0),
            Source::Cr(2) => u128::from(s.cr2),
            Source::Cr(3) => u128::from(s.cr3),
            Source::Cr(4) => u128::from(s.cr4),
            Source::Cr(_) => u128::from(s.cr8),
            Source::Efer => u128::from(s.efer),
            Source::ApicBase => u128::from(s.apic_base),
            Source::Segment(seg) => segment_value(match seg {
                Seg::Es => &s.es,
                Seg::Cs => &s.cs,
                Seg::Ss => &s.ss,
                Seg::Ds => &s.ds,
                Seg::Fs => &s.fs,
                Seg::Gs => &s.gs,
                Seg::Ldtr => &s.ldt,
                Seg::Tr => &s.tr,
            }),
            Source::Gdtr => table_value(&s.gdt),
            Source::Idtr => table_value(&s.idt),
            Source::PendingInterruption => u128::from(pending_interruption(e)),
            Source::InterruptState => u128::from(
                InterruptState::new()
                    .with_interrupt_shadow(e.interrupt.shadow != 0)
                    .with_nmi_masked(e.nmi.masked != 0)
                    .into_bits(),
            ),
            Source::Msr(i) => u128::from(self.msrs.as_ref()?[i]?),
            Source::Xmm(i) => self.fpu.as_ref()?.u128_at(160 + 16 * i),
            // 80-bit value; bits 127:80 reserved (zero).
            Source::FpMmx(i) => FpRegister::from_bits(self.fpu.as_ref()?.u128_at(32 + 16 * i))
                .with_reserved(0)
                .into_bits(),
            // FCW, FSW, abridged FTW, reserved byte, FOP, FIP: the first 16
            // bytes of FXSAVE (byte 5 is reserved there too).
            Source::FpControlStatus => {
                let fxsave = HvRegisterValue::from(self.fpu.as_ref()?.u128_at(0));
                let status = FpControlStatus {
                    reserved: 0,
                    ..FpControlStatus::from(fxsave)
                };
                HvRegisterValue::from(status).as_u128()
            }
            // FDP, MXCSR, MXCSR_MASK: FXSAVE bytes 16..32.
            Source::XmmControlStatus => self.fpu.as_ref()?.u128_at(16),
            Source::Dr(i) => u128::from(self.debug.as_ref()?.db[i]),
            Source::Dr6 => u128::from(self.debug.as_ref()?.dr6),
            Source::Dr7 => u128::from(self.debug.as_ref()?.dr7),
            Source::Xfem => u128::from(self.xcr0?),
            Source::Activity => u128::from(activity(self.mp_state?).into_bits()),
            Source::Synthetic(syn) => self.synthetic_value(syn),
        };
        Some(HvRegisterValue::from(v))
    }

    /// The value of `name` from the groups held, for a call that named
    /// it: `HV_STATUS_INVALID_PARAMETER` if it is not served (or KVM
    /// refused that MSR), `HV_STATUS_INVALID_VP_STATE` if its group is
    /// missing. A snapshot of another VP holds every group its call named,
    /// so a missing group is a bug, refused rather than fetched later
    /// (that would mix two moments).
    pub fn read_held(&self, name: HvRegisterName) -> Result<HvRegisterValue, HvError> {
        let group = source_of(name).ok_or(HvError::INVALID_PARAMETER)?.group();
        if !self.has(group) {
            tracing::error!(
                vp = self.vp_index(),
                ?group,
                "group missing from a snapshot"
            );
            return Err(HvError::INVALID_VP_STATE);
        }
        self.value(name).ok_or(HvError::INVALID_PARAMETER)
    }

    /// Writes `value` into register `name` of this snapshot and, for
    /// every group but the general registers, of the vCPU `vcpu` (the VP
    /// this snapshot is of; it must not be in `KVM_RUN`), at once: refused
    /// values leave both unchanged (contract step 8c, never a half-applied
    /// register). What the caller still has to do is in the [`Staged`]:
    /// the general registers, RIP and RFLAGS stay in the snapshot (the
    /// caller commits them, through the sync registers or `KVM_SET_REGS`,
    /// where its own pending writes are), and the synthetic MSRs are the
    /// VM's state, not the vCPU's.
    pub fn write(
        &mut self,
        vcpu: &VcpuFd,
        name: HvRegisterName,
        value: HvRegisterValue,
    ) -> Result<Staged, WriteError> {
        let before = self.clone();
        let staged = self.stage(vcpu, name, value)?;
        if let Staged::Group(group) = staged {
            if let Err(e) = self.flush(vcpu, group) {
                *self = before;
                return Err(e);
            }
        }
        Ok(staged)
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

    /// The first half of [`Self::write`]: checks `value` as far as hvcall
    /// itself can and puts it into this snapshot only (the group fetched
    /// first if missing). A [`Staged::Group`] reaches the vCPU with
    /// [`Self::flush`], where KVM may still refuse it.
    pub fn stage(
        &mut self,
        vcpu: &VcpuFd,
        name: HvRegisterName,
        value: HvRegisterValue,
    ) -> Result<Staged, WriteError> {
        let source = source_of(name).ok_or(WriteError::Name)?;
        let group = source.group();
        self.fill(group, vcpu)?;
        let v = value.as_u128();
        let narrow = |bits: u32| -> Result<u64, WriteError> {
            if bits < 128 && v >> bits != 0 {
                Err(WriteError::Value)
            } else {
                Ok(v as u64)
            }
        };
        // Step 8c: what the architecture accepts, judged against the
        // VP's state as the elements before this one left it.
        let f = self.synthetic.leaves.arch;
        let sregs = &mut self.sync.sregs;
        let long_mode = sregs.efer & efer::LMA != 0;
        let bits = validate::linear_bits(sregs.cr4);
        match source {
            Source::Gpr(_) | Source::Rip | Source::Rflags => {
                let x = narrow(64)?;
                match source {
                    Source::Rip => validate::rip(x, long_mode && sregs.cs.l != 0, bits)?,
                    Source::Rflags => validate::rflags(x, long_mode)?,
                    _ => {}
                }
                let regs = &mut self.sync.regs;
                return Ok(Staged::Regs(match source {
                    Source::Gpr(i) => {
                        *gpr_mut(regs, i).ok_or(WriteError::Name)? = x;
                        i
                    }
                    Source::Rip => {
                        regs.rip = x;
                        RIP_SLOT
                    }
                    _ => {
                        regs.rflags = x;
                        RFLAGS_SLOT
                    }
                }));
            }
            Source::Cr(0) => {
                let x = narrow(64)?;
                validate::cr0(x)?;
                validate::control_state(x, sregs.cr4, sregs.efer)?;
                sregs.cr0 = x;
            }
            Source::Cr(2) => sregs.cr2 = narrow(64)?,
            Source::Cr(3) => {
                let x = narrow(64)?;
                validate::cr3(x, &f)?;
                sregs.cr3 = x;
            }
            Source::Cr(4) => {
                let x = narrow(64)?;
                validate::cr4(x, &f)?;
                validate::control_state(sregs.cr0, x, sregs.efer)?;
                sregs.cr4 = x;
            }
            Source::Cr(_) => sregs.cr8 = narrow(4)?,
            Source::Efer => {
                let x = narrow(64)?;
                validate::efer(x, &f)?;
                validate::control_state(sregs.cr0, sregs.cr4, x)?;
                sregs.efer = x;
            }
            Source::ApicBase => {
                let x = narrow(64)?;
                validate::apic_base(x, sregs.apic_base, &f)?;
                sregs.apic_base = x;
            }
            Source::Segment(seg) => {
                let k = segment_from(value).ok_or(WriteError::Value)?;
                // FS, GS, TR and a usable LDTR hold 64-bit bases; CS and a
                // usable SS, DS or ES 32-bit ones (the VM-entry checks).
                match seg {
                    Seg::Fs | Seg::Gs | Seg::Tr => validate::canonical(k.base, bits)?,
                    Seg::Ldtr if k.present != 0 => validate::canonical(k.base, bits)?,
                    Seg::Cs => validate::base32(k.base)?,
                    Seg::Ss | Seg::Ds | Seg::Es if k.present != 0 => validate::base32(k.base)?,
                    _ => {}
                }
                *match seg {
                    Seg::Es => &mut sregs.es,
                    Seg::Cs => &mut sregs.cs,
                    Seg::Ss => &mut sregs.ss,
                    Seg::Ds => &mut sregs.ds,
                    Seg::Fs => &mut sregs.fs,
                    Seg::Gs => &mut sregs.gs,
                    Seg::Ldtr => &mut sregs.ldt,
                    Seg::Tr => &mut sregs.tr,
                } = k;
            }
            Source::Gdtr | Source::Idtr => {
                let t = table_from(value).ok_or(WriteError::Value)?;
                validate::canonical(t.base, bits)?;
                *if source == Source::Gdtr {
                    &mut sregs.gdt
                } else {
                    &mut sregs.idt
                } = t;
            }
            Source::Msr(i) => {
                let x = narrow(64)?;
                match MSR_LIST[i].0 {
                    x64::KERNEL_GS_BASE
                    | x64::LSTAR
                    | x64::CSTAR
                    | x64::SYSENTER_EIP
                    | x64::SYSENTER_ESP => validate::canonical(x, bits)?,
                    x64::PAT => validate::pat(x)?,
                    x64::TSC_AUX | x64::SFMASK => validate::low32(x)?,
                    _ => {}
                }
                let held = self.msrs.as_mut().ok_or(WriteError::Name)?;
                held[i] = Some(x);
                self.msrs_staged |= 1 << i;
            }
            Source::Xmm(_)
            | Source::FpMmx(_)
            | Source::FpControlStatus
            | Source::XmmControlStatus => {
                let fpu = self.fpu.as_mut().ok_or(WriteError::Name)?;
                match source {
                    Source::Xmm(i) => fpu.set_u128_at(160 + 16 * i, v),
                    Source::FpMmx(i) => {
                        // An 80-bit register: bits 127:80 must be zero.
                        if v >> 80 != 0 {
                            return Err(WriteError::Value);
                        }
                        fpu.set_u128_at(32 + 16 * i, v);
                    }
                    Source::FpControlStatus => {
                        if FpControlStatus::from(value).reserved != 0 {
                            return Err(WriteError::Value);
                        }
                        fpu.set_u128_at(0, v);
                    }
                    _ => {
                        // FDP u64, MXCSR u32, MXCSR_MASK u32: MXCSR takes
                        // only the bits of the mask, and the mask is
                        // read-only (a write carries the value it reads).
                        let mask = (fpu.u128_at(16) >> 96) as u32;
                        if (v >> 96) as u32 != mask {
                            return Err(Invalid::Combination("MXCSR_MASK is read-only").into());
                        }
                        validate::mxcsr((v >> 64) as u32, mask)?;
                        fpu.set_u128_at(16, v);
                    }
                }
            }
            Source::Dr(_) | Source::Dr6 | Source::Dr7 => {
                let x = narrow(64)?;
                let debug = self.debug.as_mut().ok_or(WriteError::Name)?;
                match source {
                    Source::Dr(i) => debug.db[i] = x,
                    Source::Dr6 => {
                        validate::dr6(x)?;
                        debug.dr6 = x;
                    }
                    _ => {
                        validate::dr7(x, &f)?;
                        debug.dr7 = x;
                    }
                }
            }
            Source::Xfem => {
                let x = narrow(64)?;
                validate::xcr0(x, &f)?;
                self.xcr0 = Some(x);
            }
            Source::Synthetic(Syn::GuestOsId) => {
                return Ok(Staged::SyntheticMsr(msr::GUEST_OS_ID, narrow(64)?))
            }
            Source::Synthetic(Syn::Hypercall) => {
                return Ok(Staged::SyntheticMsr(msr::HYPERCALL, narrow(64)?))
            }
            Source::PendingInterruption
            | Source::InterruptState
            | Source::Activity
            | Source::Synthetic(_) => return Err(WriteError::Name),
        }
        Ok(Staged::Group(group))
    }

    /// The second half of [`Self::write`]: sets `group` of the vCPU to
    /// what this snapshot holds, with one ioctl (for MSRs: the ones
    /// staged since the last flush). `WriteError::Value` if KVM refuses
    /// it (`EINVAL`, or an MSR it does not take); the vCPU's group is
    /// then unchanged.
    pub fn flush(&mut self, vcpu: &VcpuFd, group: Group) -> Result<(), WriteError> {
        let fault = |source| WriteError::Flush(FlushError { group, source });
        // KVM says EINVAL for state it does not accept (step 8c); any other
        // failure is the host's.
        let refused = |e: kvm_ioctls::Error| {
            if e.errno() == libc::EINVAL {
                WriteError::Value
            } else {
                fault(e)
            }
        };
        count_ioctl();
        match group {
            Group::Sync => vcpu.set_sregs(&self.sync.sregs).map_err(refused)?,
            Group::Msrs => {
                let held = self.msrs.as_ref().ok_or(WriteError::Name)?;
                let entries: Vec<kvm_msr_entry> = (0..MSR_LIST.len())
                    .filter(|i| self.msrs_staged & 1 << i != 0)
                    .map(|i| kvm_msr_entry {
                        index: MSR_LIST[i].1,
                        data: held[i].unwrap_or(0),
                        ..Default::default()
                    })
                    .collect();
                let tsc = (self.msrs_staged & TSC_STAGED != 0).then(|| held[0].unwrap_or(0));
                self.msrs_staged = 0;
                let msrs = Msrs::from_entries(&entries).map_err(|_| WriteError::Value)?;
                // KVM_SET_MSRS returns how many entries it took, stopping
                // at the first it refuses.
                if vcpu.set_msrs(&msrs).map_err(fault)? != entries.len() {
                    return Err(WriteError::Value);
                }
                if let Some(written) = tsc {
                    check_tsc(vcpu, written).map_err(fault)??;
                }
            }
            Group::Fpu => {
                let fpu = self.fpu.as_ref().ok_or(WriteError::Name)?;
                // Through XSAVE where KVM has it (its other components
                // kept as they are), else the legacy KVM_SET_FPU.
                match vcpu.get_xsave() {
                    Ok(mut xsave) => {
                        for (word, bytes) in xsave.region.iter_mut().zip(fpu.fxsave.chunks_exact(4))
                        {
                            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                        }
                        // XSTATE_BV (the header's first qword, at byte 512):
                        // mark the x87 and SSE components as present, or
                        // the restore takes them in their initial state.
                        const XSTATE_BV_WORD: usize = 512 / 4;
                        const X87_AND_SSE: u32 = 0b11;
                        if let Some(bv) = xsave.region.get_mut(XSTATE_BV_WORD) {
                            *bv |= X87_AND_SSE;
                        }
                        // SAFETY: `xsave` came from KVM_GET_XSAVE on this vCPU
                        // and only its legacy area (the FXSAVE image) changed.
                        unsafe { vcpu.set_xsave(&xsave) }.map_err(refused)?;
                    }
                    Err(_) => vcpu.set_fpu(&fpu.to_fpu()).map_err(refused)?,
                }
            }
            Group::Debug => {
                let debug = self.debug.as_ref().ok_or(WriteError::Name)?;
                vcpu.set_debug_regs(debug).map_err(refused)?;
            }
            Group::Xcrs => {
                let mut xcrs = kvm_bindings::kvm_xcrs {
                    nr_xcrs: 1,
                    ..Default::default()
                };
                xcrs.xcrs[0] = kvm_bindings::kvm_xcr {
                    xcr: 0,
                    value: self.xcr0.unwrap_or(0),
                    ..Default::default()
                };
                vcpu.set_xcrs(&xcrs).map_err(refused)?;
            }
            Group::Activity | Group::Synthetic => return Err(WriteError::Name),
        }
        Ok(())
    }

    fn synthetic_value(&self, syn: Syn) -> u128 {
        let st = &self.synthetic;
        match syn {
            Syn::Hypercall => u128::from(st.hypercall),
            Syn::VpAssistPage => u128::from(st.vp_assist_page),
            Syn::GuestOsId => u128::from(st.guest_os_id),
            Syn::VpIndex => u128::from(st.vp_index),
            Syn::TimeRefCount => u128::from(st.time_ref_count),
            // ActiveVtl 0, EnabledVtlSet = {VTL 0}.
            Syn::VsmVpStatus => u128::from(VsmVpStatus::new().with_enabled_vtl_set(1).into_bits()),
            // EnabledVtlSet = {VTL 0}, MaximumVtl = 0.
            Syn::VsmPartitionStatus => u128::from(
                VsmPartitionStatus::new()
                    .with_enabled_vtl_set(1)
                    .into_bits(),
            ),
            Syn::Cpuid(leaf) => st.leaves.leaf(leaf).register_value().as_u128(),
        }
    }
}

/// Whether the TSC, just set to `written`, holds it: read back at once it
/// is at or past `written` by at most [`TSC_SLACK`] ticks (wrapping past
/// 2^64 counts as past). `Ok(Err(Value))` if not: some KVMs (kvm_pvm)
/// ignore a host's TSC write, and hvcall does not report what did not
/// happen as a success.
fn check_tsc(vcpu: &VcpuFd, written: u64) -> Result<Result<(), WriteError>, kvm_ioctls::Error> {
    let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
        index: MSR_LIST[0].1,
        ..Default::default()
    }])
    .map_err(|_| kvm_ioctls::Error::new(libc::EINVAL))?;
    count_ioctl();
    let n = vcpu.get_msrs(&mut msrs)?;
    let now = msrs.as_slice().first().filter(|_| n == 1).map(|e| e.data);
    Ok(match now {
        Some(now) if now.wrapping_sub(written) <= TSC_SLACK => Ok(()),
        _ => Err(WriteError::Value),
    })
}

/// Reads [`MSR_LIST`]; an MSR KVM refuses reads as absent (KVM_GET_MSRS
/// stops at the first failure, so the rest is retried after it).
fn read_msrs(vcpu: &VcpuFd) -> Result<[Option<u64>; MSR_LIST.len()], kvm_ioctls::Error> {
    let mut out = [None; MSR_LIST.len()];
    let mut start = 0;
    while start < MSR_LIST.len() {
        let entries: Vec<kvm_msr_entry> = MSR_LIST[start..]
            .iter()
            .map(|(_, index)| kvm_msr_entry {
                index: *index,
                ..Default::default()
            })
            .collect();
        let mut msrs =
            Msrs::from_entries(&entries).map_err(|_| kvm_ioctls::Error::new(libc::EINVAL))?;
        count_ioctl();
        let n = vcpu.get_msrs(&mut msrs)?;
        for (i, e) in msrs.as_slice().iter().take(n).enumerate() {
            out[start + i] = Some(e.data);
        }
        start += n + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
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
