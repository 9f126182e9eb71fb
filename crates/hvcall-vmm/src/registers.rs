//! HV_REGISTER_NAME → KVM state: the one table of the registers hvcall
//! serves, grouped by how the state is fetched, and the snapshot that
//! holds the fetched groups.
//!
//! | group | fetched with | registers |
//! |---|---|---|
//! | [`Group::Sync`] | `kvm_run` sync regs (free at an exit) | GPRs, RIP, RFLAGS, CR0/2/3/4/8, EFER, ApicBase, segments, GDTR/IDTR, PendingInterruption, InterruptState |
//! | [`Group::Msrs`] | one `KVM_GET_MSRS` | Tsc, KernelGsBase, Pat, Sysenter*, Star/Lstar/Cstar/Sfmask, TscAux |
//! | [`Group::Fpu`] | one `KVM_GET_XSAVE` (or `KVM_GET_FPU`) | Xmm0–15, FpMmx0–7, FpControlStatus, XmmControlStatus |
//! | [`Group::Debug`] | one `KVM_GET_DEBUGREGS` | Dr0–3, Dr6, Dr7 |
//! | [`Group::Xcrs`] | one `KVM_GET_XCRS` | Xfem |
//! | [`Group::Synthetic`] | VMM state, at snapshot time | VpIndex, GuestOsId, Hypercall, TimeRefCount, Vsm*Status, feature registers |
//!
//! A snapshot of the calling VP fills groups lazily, each at most once per
//! call; a snapshot of another VP is taken whole, on that VP's thread.
//! Value layouts follow behaviour.md §5 and digest §6.

use hvcall_abi::{HvRegisterName, HvRegisterValue};
use kvm_bindings::{kvm_debugregs, kvm_dtable, kvm_msr_entry, kvm_segment, kvm_sync_regs, Msrs};
use kvm_ioctls::VcpuFd;

use crate::cpuid::HypervLeaves;

/// How a register's state is fetched.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Group {
    /// `kvm_run` sync regs: regs, sregs, vCPU events.
    Sync,
    /// `KVM_GET_MSRS` of [`MSR_LIST`].
    Msrs,
    /// x87/SSE state.
    Fpu,
    /// Debug registers.
    Debug,
    /// Extended control registers.
    Xcrs,
    /// hvcall's own synthetic state.
    Synthetic,
}

/// Segment registers in HV_REGISTER_NAME order (0x00060000 + n).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Seg {
    Es,
    Cs,
    Ss,
    Ds,
    Fs,
    Gs,
    Ldtr,
    Tr,
}

/// Synthetic registers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Syn {
    Hypercall,
    GuestOsId,
    VpIndex,
    TimeRefCount,
    VsmVpStatus,
    VsmPartitionStatus,
    /// A feature register: the CPUID leaf it mirrors.
    Cpuid(u32),
}

/// Where one register comes from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Source {
    Gpr(usize),
    Rip,
    Rflags,
    Cr(u8),
    Efer,
    ApicBase,
    Segment(Seg),
    Gdtr,
    Idtr,
    PendingInterruption,
    InterruptState,
    Msr(usize),
    Xmm(usize),
    FpMmx(usize),
    FpControlStatus,
    XmmControlStatus,
    Dr(usize),
    Dr6,
    Dr7,
    Xfem,
    Synthetic(Syn),
}

impl Source {
    fn group(self) -> Group {
        match self {
            Source::Gpr(_)
            | Source::Rip
            | Source::Rflags
            | Source::Cr(_)
            | Source::Efer
            | Source::ApicBase
            | Source::Segment(_)
            | Source::Gdtr
            | Source::Idtr
            | Source::PendingInterruption
            | Source::InterruptState => Group::Sync,
            Source::Msr(_) => Group::Msrs,
            Source::Xmm(_)
            | Source::FpMmx(_)
            | Source::FpControlStatus
            | Source::XmmControlStatus => Group::Fpu,
            Source::Dr(_) | Source::Dr6 | Source::Dr7 => Group::Debug,
            Source::Xfem => Group::Xcrs,
            Source::Synthetic(_) => Group::Synthetic,
        }
    }
}

/// The MSRs of [`Group::Msrs`], fetched together: (HV_REGISTER_NAME, MSR).
pub const MSR_LIST: [(u32, u32); 11] = [
    (0x0008_0000, 0x10),        // Tsc: IA32_TIME_STAMP_COUNTER
    (0x0008_0002, 0xC000_0102), // KernelGsBase
    (0x0008_0004, 0x277),       // Pat
    (0x0008_0005, 0x174),       // SysenterCs
    (0x0008_0006, 0x176),       // SysenterEip
    (0x0008_0007, 0x175),       // SysenterEsp
    (0x0008_0008, 0xC000_0081), // Star
    (0x0008_0009, 0xC000_0082), // Lstar
    (0x0008_000A, 0xC000_0083), // Cstar
    (0x0008_000B, 0xC000_0084), // Sfmask
    (0x0008_007B, 0xC000_0103), // TscAux
];

/// The table: every register name hvcall serves (digest §5.1–§5.2),
/// grouped by fetch group. Any other name is not served.
fn source_of(name: HvRegisterName) -> Option<Source> {
    let n = name.0;
    let low = (n & 0xFF) as usize;
    Some(match n {
        // Sync: general registers, RIP, RFLAGS.
        0x0002_0000..=0x0002_000F => Source::Gpr(low),
        0x0002_0010 => Source::Rip,
        0x0002_0011 => Source::Rflags,
        // Sync: control registers (Cr0 Cr2 Cr3 Cr4 Cr8), EFER, APIC base.
        0x0004_0000 => Source::Cr(0),
        0x0004_0001 => Source::Cr(2),
        0x0004_0002 => Source::Cr(3),
        0x0004_0003 => Source::Cr(4),
        0x0004_0004 => Source::Cr(8),
        0x0008_0001 => Source::Efer,
        0x0008_0003 => Source::ApicBase,
        // Sync: segment and table registers.
        0x0006_0000 => Source::Segment(Seg::Es),
        0x0006_0001 => Source::Segment(Seg::Cs),
        0x0006_0002 => Source::Segment(Seg::Ss),
        0x0006_0003 => Source::Segment(Seg::Ds),
        0x0006_0004 => Source::Segment(Seg::Fs),
        0x0006_0005 => Source::Segment(Seg::Gs),
        0x0006_0006 => Source::Segment(Seg::Ldtr),
        0x0006_0007 => Source::Segment(Seg::Tr),
        0x0007_0000 => Source::Idtr,
        0x0007_0001 => Source::Gdtr,
        // Sync: vCPU events.
        0x0001_0002 => Source::PendingInterruption,
        0x0001_0003 => Source::InterruptState,
        // Msrs.
        _ if MSR_LIST.iter().any(|(name, _)| *name == n) => {
            Source::Msr(MSR_LIST.iter().position(|(name, _)| *name == n)?)
        }
        // Fpu.
        0x0003_0000..=0x0003_000F => Source::Xmm(low),
        0x0003_0010..=0x0003_0017 => Source::FpMmx(low - 0x10),
        0x0003_0018 => Source::FpControlStatus,
        0x0003_0019 => Source::XmmControlStatus,
        // Debug.
        0x0005_0000..=0x0005_0003 => Source::Dr(low),
        0x0005_0004 => Source::Dr6,
        0x0005_0005 => Source::Dr7,
        // Xcrs.
        0x0004_0005 => Source::Xfem,
        // Synthetic.
        0x0009_0001 => Source::Synthetic(Syn::Hypercall),
        0x0009_0002 => Source::Synthetic(Syn::GuestOsId),
        0x0009_0003 => Source::Synthetic(Syn::VpIndex),
        0x0009_0004 => Source::Synthetic(Syn::TimeRefCount),
        0x000D_0003 => Source::Synthetic(Syn::VsmVpStatus),
        0x000D_0004 => Source::Synthetic(Syn::VsmPartitionStatus),
        0x0000_0100 => Source::Synthetic(Syn::Cpuid(0x4000_0002)), // HypervisorVersion
        0x0000_0200 => Source::Synthetic(Syn::Cpuid(0x4000_0003)), // PrivilegesAndFeaturesInfo
        0x0000_0201 => Source::Synthetic(Syn::Cpuid(0x4000_0004)), // FeaturesInfo
        0x0000_0202 => Source::Synthetic(Syn::Cpuid(0x4000_0005)), // ImplementationLimitsInfo
        0x0000_0203 => Source::Synthetic(Syn::Cpuid(0x4000_0006)), // HardwareFeaturesInfo
        _ => return None,
    })
}

/// Whether hvcall serves register `name`.
pub fn is_served(name: HvRegisterName) -> bool {
    source_of(name).is_some()
}

/// The fetch group of a served register.
pub fn group_of(name: HvRegisterName) -> Option<Group> {
    source_of(name).map(Source::group)
}

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
    /// The CPUID leaves the feature registers mirror.
    pub leaves: HypervLeaves,
}

/// One VP's state, fetched group by group.
#[derive(Clone, Debug)]
pub struct VpSnapshot {
    sync: kvm_sync_regs,
    msrs: Option<[Option<u64>; MSR_LIST.len()]>,
    fpu: Option<FpuState>,
    debug: Option<kvm_debugregs>,
    xcr0: Option<u64>,
    synthetic: SyntheticState,
}

/// A group could not be fetched from KVM.
#[derive(Debug, thiserror::Error)]
#[error("fetching {group:?} state: {source}")]
pub struct FetchError {
    /// The group.
    pub group: Group,
    /// The ioctl error.
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
            synthetic,
        }
    }

    /// A whole snapshot of the vCPU owned by the calling thread.
    pub fn capture(vcpu: &VcpuFd, synthetic: SyntheticState) -> Result<Self, FetchError> {
        let mut s = Self::from_sync(vcpu.sync_regs(), synthetic);
        for g in [Group::Msrs, Group::Fpu, Group::Debug, Group::Xcrs] {
            s.fill(g, vcpu)?;
        }
        Ok(s)
    }

    /// The VP this snapshot is of.
    pub fn vp_index(&self) -> u32 {
        self.synthetic.vp_index
    }

    /// Whether `group` is already fetched.
    pub fn has(&self, group: Group) -> bool {
        match group {
            Group::Sync | Group::Synthetic => true,
            Group::Msrs => self.msrs.is_some(),
            Group::Fpu => self.fpu.is_some(),
            Group::Debug => self.debug.is_some(),
            Group::Xcrs => self.xcr0.is_some(),
        }
    }

    /// Fetches `group` from `vcpu` (the VP this snapshot is of, on its own
    /// thread) unless already present.
    pub fn fill(&mut self, group: Group, vcpu: &VcpuFd) -> Result<(), FetchError> {
        if self.has(group) {
            return Ok(());
        }
        let err = |source| FetchError { group, source };
        match group {
            Group::Sync | Group::Synthetic => {}
            Group::Msrs => self.msrs = Some(read_msrs(vcpu).map_err(err)?),
            Group::Fpu => {
                self.fpu = Some(match vcpu.get_xsave() {
                    Ok(x) => FpuState::from_xsave(&x),
                    Err(_) => FpuState::from_fpu(&vcpu.get_fpu().map_err(err)?),
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
            Source::Gpr(i) => u128::from(
                [
                    r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10,
                    r.r11, r.r12, r.r13, r.r14, r.r15,
                ][i],
            ),
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
            Source::InterruptState => {
                u128::from(e.interrupt.shadow != 0) | (u128::from(e.nmi.masked != 0) << 1)
            }
            Source::Msr(i) => u128::from(self.msrs.as_ref()?[i]?),
            Source::Xmm(i) => self.fpu.as_ref()?.u128_at(160 + 16 * i),
            // 80-bit value; bits 127:80 reserved (zero).
            Source::FpMmx(i) => self.fpu.as_ref()?.u128_at(32 + 16 * i) & ((1u128 << 80) - 1),
            // FCW, FSW, abridged FTW, reserved byte, FOP, FIP: the first 16
            // bytes of FXSAVE (byte 5 is reserved there too).
            Source::FpControlStatus => self.fpu.as_ref()?.u128_at(0) & !(0xFFu128 << 40),
            // FDP, MXCSR, MXCSR_MASK: FXSAVE bytes 16..32.
            Source::XmmControlStatus => self.fpu.as_ref()?.u128_at(16),
            Source::Dr(i) => u128::from(self.debug.as_ref()?.db[i]),
            Source::Dr6 => u128::from(self.debug.as_ref()?.dr6),
            Source::Dr7 => u128::from(self.debug.as_ref()?.dr7),
            Source::Xfem => u128::from(self.xcr0?),
            Source::Synthetic(syn) => self.synthetic_value(syn),
        };
        Some(HvRegisterValue::from(v))
    }

    fn synthetic_value(&self, syn: Syn) -> u128 {
        let st = &self.synthetic;
        match syn {
            Syn::Hypercall => u128::from(st.hypercall),
            Syn::GuestOsId => u128::from(st.guest_os_id),
            Syn::VpIndex => u128::from(st.vp_index),
            Syn::TimeRefCount => u128::from(st.time_ref_count),
            // ActiveVtl 0, EnabledVtlSet (31:16) = {VTL 0}.
            Syn::VsmVpStatus => 1 << 16,
            // EnabledVtlSet (15:0) = {VTL 0}, MaximumVtl (19:16) = 0.
            Syn::VsmPartitionStatus => 1,
            Syn::Cpuid(leaf) => st.leaves.leaf(leaf).packed(),
        }
    }
}

/// HV_X64_SEGMENT_REGISTER (behaviour.md §5).
fn segment_value(seg: &kvm_segment) -> u128 {
    let present = seg.present != 0 && seg.unusable == 0;
    let attributes = u16::from(seg.type_ & 0xF)
        | (u16::from(seg.s & 1) << 4)
        | (u16::from(seg.dpl & 3) << 5)
        | (u16::from(present) << 7)
        | (u16::from(seg.avl & 1) << 12)
        | (u16::from(seg.l & 1) << 13)
        | (u16::from(seg.db & 1) << 14)
        | (u16::from(seg.g & 1) << 15);
    u128::from(seg.base)
        | (u128::from(seg.limit) << 64)
        | (u128::from(seg.selector) << 96)
        | (u128::from(attributes) << 112)
}

/// HV_X64_TABLE_REGISTER: limit u16 @6, base u64 @8.
fn table_value(t: &kvm_dtable) -> u128 {
    (u128::from(t.limit) << 48) | (u128::from(t.base) << 64)
}

/// HV_X64_PENDING_INTERRUPTION_REGISTER from the vCPU events.
fn pending_interruption(e: &kvm_bindings::kvm_vcpu_events) -> u64 {
    let (kind, vector, error): (u64, u8, Option<u32>) =
        if e.exception.injected != 0 || e.exception.pending != 0 {
            (
                3,
                e.exception.nr,
                (e.exception.has_error_code != 0).then_some(e.exception.error_code),
            )
        } else if e.nmi.injected != 0 {
            (2, 2, None)
        } else if e.interrupt.injected != 0 {
            (
                if e.interrupt.soft != 0 { 4 } else { 0 },
                e.interrupt.nr,
                None,
            )
        } else {
            return 0;
        };
    1 | (kind << 1)
        | (u64::from(error.is_some()) << 4)
        | (u64::from(vector) << 16)
        | (u64::from(error.unwrap_or(0)) << 32)
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

    fn snapshot() -> VpSnapshot {
        let mut sync = kvm_sync_regs::default();
        sync.regs.rax = 0x1111;
        sync.regs.r15 = 0xF15;
        sync.regs.rip = 0x10_0000;
        sync.sregs.cs = kvm_segment {
            base: 0,
            limit: 0xFFFF_FFFF,
            selector: 8,
            type_: 11,
            present: 1,
            dpl: 0,
            db: 0,
            s: 1,
            l: 1,
            g: 1,
            avl: 0,
            unusable: 0,
            padding: 0,
        };
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

    #[test]
    fn unknown_names_are_not_served() {
        for n in [
            0,
            0x0002_0012,
            0x0004_0006,
            0x0008_000C,
            0x0009_0000,
            0x000D_0005,
            0x0003_001A,
        ] {
            assert!(!is_served(HvRegisterName(n)), "{n:#x}");
        }
        assert_eq!(group_of(HvRegisterName(0x0004_0005)), Some(Group::Xcrs));
        assert_eq!(group_of(HvRegisterName(0x0008_0001)), Some(Group::Sync));
        assert_eq!(group_of(HvRegisterName(0x0008_007B)), Some(Group::Msrs));
    }

    #[test]
    fn pending_interruption_layout() {
        let mut e = kvm_bindings::kvm_vcpu_events::default();
        assert_eq!(pending_interruption(&e), 0);
        e.exception.injected = 1;
        e.exception.nr = 13;
        e.exception.has_error_code = 1;
        e.exception.error_code = 0x18;
        assert_eq!(
            pending_interruption(&e),
            1 | (3 << 1) | (1 << 4) | (13 << 16) | (0x18 << 32)
        );
    }
}
