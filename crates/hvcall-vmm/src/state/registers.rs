//! HV_REGISTER_NAME → KVM state: the one table of the registers hvcall
//! serves, grouped by how the state is fetched, and the value layouts of
//! docs/contract.md §5.
//!
//! | group | fetched with | registers |
//! |---|---|---|
//! | [`Group::Sync`] | `kvm_run` sync regs (free at an exit) | GPRs, RIP, RFLAGS, CR0/2/3/4/8, EFER, ApicBase, segments, GDTR/IDTR, PendingInterruption, InterruptState |
//! | [`Group::Msrs`] | one `KVM_GET_MSRS` | Tsc, KernelGsBase, Pat, Sysenter*, Star/Lstar/Cstar/Sfmask, TscAux |
//! | [`Group::Fpu`] | one `KVM_GET_XSAVE` (or `KVM_GET_FPU`) | Xmm0–15, FpMmx0–7, FpControlStatus, XmmControlStatus |
//! | [`Group::Debug`] | one `KVM_GET_DEBUGREGS` | Dr0–3, Dr6, Dr7 |
//! | [`Group::Xcrs`] | one `KVM_GET_XCRS` | Xfem |
//! | [`Group::Activity`] | one `KVM_GET_MP_STATE` | InternalActivityState |
//! | [`Group::Synthetic`] | VMM state, at snapshot time | VpIndex, GuestOsId, Hypercall, TimeRefCount, Vsm*Status, feature registers |
//!
//! The sync and synthetic groups come free with every snapshot; the others
//! cost one ioctl each. A snapshot of another VP fetches exactly the
//! [`Groups`] of the names the call reads.
//!
//! The state itself is held by [`crate::state::snapshot::VpSnapshot`].

use hvcall_abi::cpuid;
use hvcall_abi::name::x64;
use hvcall_abi::value::x64::interruption_type;
use hvcall_abi::value::{PendingInterruption, SegmentAttributes, SegmentRegister, TableRegister};
use hvcall_abi::{HvRegisterName, HvRegisterValue};
use kvm_bindings::{kvm_dtable, kvm_segment};

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
    /// The VP's activity (running, halted, waiting for SIPI).
    Activity,
    /// hvcall's own synthetic state.
    Synthetic,
}

impl Group {
    /// The groups that cost an ioctl to fetch, in fetch order.
    pub const FETCHED: [Group; 5] = [
        Group::Msrs,
        Group::Fpu,
        Group::Debug,
        Group::Xcrs,
        Group::Activity,
    ];

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`Group`]s: which state a snapshot must hold.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Groups(u8);

impl Groups {
    /// No group beyond the free ones (sync and synthetic are always held).
    pub const NONE: Groups = Groups(0);
    /// Every group.
    pub const ALL: Groups = Groups(0x7F);

    /// The groups the served names among `names` need (names hvcall does
    /// not serve need none).
    pub fn of(names: &[HvRegisterName]) -> Self {
        names
            .iter()
            .filter_map(|&n| group_of(n))
            .fold(Self::NONE, Self::with)
    }

    /// This set and `group`.
    #[must_use]
    pub fn with(self, group: Group) -> Self {
        Self(self.0 | group.bit())
    }

    /// This set and `other`.
    #[must_use]
    pub fn union(self, other: Groups) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether `group` is in the set.
    pub fn contains(self, group: Group) -> bool {
        self.0 & group.bit() != 0
    }

    /// The groups of the set that cost an ioctl, in fetch order.
    pub fn fetched(self) -> impl Iterator<Item = Group> {
        Group::FETCHED
            .into_iter()
            .filter(move |&g| self.contains(g))
    }
}

/// Segment registers in HV_REGISTER_NAME order (0x00060000 + n).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
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
pub(crate) enum Syn {
    Hypercall,
    VpAssistPage,
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
pub(crate) enum Source {
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
    Activity,
    Synthetic(Syn),
}

impl Source {
    /// The group of VP state this source is read with.
    pub(crate) fn group(self) -> Group {
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
            Source::Activity => Group::Activity,
            Source::Synthetic(_) => Group::Synthetic,
        }
    }
}

/// The MSRs of [`Group::Msrs`], fetched together: (register name, MSR).
pub const MSR_LIST: [(HvRegisterName, u32); 11] = [
    (x64::TSC, 0x10),
    (x64::KERNEL_GS_BASE, 0xC000_0102),
    (x64::PAT, 0x277),
    (x64::SYSENTER_CS, 0x174),
    (x64::SYSENTER_EIP, 0x176),
    (x64::SYSENTER_ESP, 0x175),
    (x64::STAR, 0xC000_0081),
    (x64::LSTAR, 0xC000_0082),
    (x64::CSTAR, 0xC000_0083),
    (x64::SFMASK, 0xC000_0084),
    (x64::TSC_AUX, 0xC000_0103),
];

/// The table: every register name hvcall serves (the README lists them),
/// grouped by fetch group. Any other name is not served.
pub(crate) fn source_of(name: HvRegisterName) -> Option<Source> {
    let n = name.0;
    // Offset of `name` from the first of a numbered run of names.
    let from = |first: HvRegisterName| n.wrapping_sub(first.0) as usize;
    Some(match name {
        // Sync: general registers, RIP, RFLAGS.
        _ if (x64::RAX.0..=x64::R15.0).contains(&n) => Source::Gpr(from(x64::RAX)),
        x64::RIP => Source::Rip,
        x64::RFLAGS => Source::Rflags,
        // Sync: control registers, EFER, APIC base.
        x64::CR0 => Source::Cr(0),
        x64::CR2 => Source::Cr(2),
        x64::CR3 => Source::Cr(3),
        x64::CR4 => Source::Cr(4),
        x64::CR8 => Source::Cr(8),
        x64::EFER => Source::Efer,
        x64::APIC_BASE => Source::ApicBase,
        // Sync: segment and table registers.
        x64::ES => Source::Segment(Seg::Es),
        x64::CS => Source::Segment(Seg::Cs),
        x64::SS => Source::Segment(Seg::Ss),
        x64::DS => Source::Segment(Seg::Ds),
        x64::FS => Source::Segment(Seg::Fs),
        x64::GS => Source::Segment(Seg::Gs),
        x64::LDTR => Source::Segment(Seg::Ldtr),
        x64::TR => Source::Segment(Seg::Tr),
        x64::IDTR => Source::Idtr,
        x64::GDTR => Source::Gdtr,
        // Sync: vCPU events.
        x64::PENDING_INTERRUPTION => Source::PendingInterruption,
        x64::INTERRUPT_STATE => Source::InterruptState,
        // Msrs: one KVM_GET_MSRS for all of MSR_LIST.
        _ if MSR_LIST.iter().any(|(m, _)| *m == name) => {
            Source::Msr(MSR_LIST.iter().position(|(m, _)| *m == name)?)
        }
        // Fpu.
        _ if (x64::XMM0.0..=x64::XMM15.0).contains(&n) => Source::Xmm(from(x64::XMM0)),
        _ if (x64::FP_MMX0.0..=x64::FP_MMX7.0).contains(&n) => Source::FpMmx(from(x64::FP_MMX0)),
        x64::FP_CONTROL_STATUS => Source::FpControlStatus,
        x64::XMM_CONTROL_STATUS => Source::XmmControlStatus,
        // Debug.
        _ if (x64::DR0.0..=x64::DR3.0).contains(&n) => Source::Dr(from(x64::DR0)),
        x64::DR6 => Source::Dr6,
        x64::DR7 => Source::Dr7,
        // Xcrs.
        x64::XFEM => Source::Xfem,
        // Synthetic.
        x64::INTERNAL_ACTIVITY_STATE => Source::Activity,
        x64::HYPERCALL => Source::Synthetic(Syn::Hypercall),
        x64::VP_ASSIST_PAGE => Source::Synthetic(Syn::VpAssistPage),
        x64::GUEST_OS_ID => Source::Synthetic(Syn::GuestOsId),
        x64::VP_INDEX => Source::Synthetic(Syn::VpIndex),
        x64::TIME_REF_COUNT => Source::Synthetic(Syn::TimeRefCount),
        x64::VSM_VP_STATUS => Source::Synthetic(Syn::VsmVpStatus),
        x64::VSM_PARTITION_STATUS => Source::Synthetic(Syn::VsmPartitionStatus),
        x64::HYPERVISOR_VERSION => Source::Synthetic(Syn::Cpuid(cpuid::LEAF_VERSION)),
        x64::PRIVILEGES_AND_FEATURES_INFO => Source::Synthetic(Syn::Cpuid(cpuid::LEAF_FEATURES)),
        x64::FEATURES_INFO => Source::Synthetic(Syn::Cpuid(cpuid::LEAF_RECOMMENDATIONS)),
        x64::IMPLEMENTATION_LIMITS_INFO => {
            Source::Synthetic(Syn::Cpuid(cpuid::LEAF_IMPLEMENTATION_LIMITS))
        }
        x64::HARDWARE_FEATURES_INFO => Source::Synthetic(Syn::Cpuid(cpuid::LEAF_HARDWARE_FEATURES)),
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

/// General register `i` (x86 encoding order) of `regs`.
pub(crate) fn gpr_mut(regs: &mut kvm_bindings::kvm_regs, i: usize) -> Option<&mut u64> {
    Some(match i {
        0 => &mut regs.rax,
        1 => &mut regs.rcx,
        2 => &mut regs.rdx,
        3 => &mut regs.rbx,
        4 => &mut regs.rsp,
        5 => &mut regs.rbp,
        6 => &mut regs.rsi,
        7 => &mut regs.rdi,
        8 => &mut regs.r8,
        9 => &mut regs.r9,
        10 => &mut regs.r10,
        11 => &mut regs.r11,
        12 => &mut regs.r12,
        13 => &mut regs.r13,
        14 => &mut regs.r14,
        15 => &mut regs.r15,
        _ => return None,
    })
}

/// General register `i` (x86 encoding order) of `regs`.
pub(crate) fn gpr(regs: &kvm_bindings::kvm_regs, i: usize) -> Option<u64> {
    let mut copy = *regs;
    gpr_mut(&mut copy, i).map(|r| *r)
}

/// HV_X64_SEGMENT_REGISTER (docs/contract.md §5).
pub(crate) fn segment_value(seg: &kvm_segment) -> u128 {
    // An unusable segment reads as not present; each KVM field keeps only
    // the bits its attribute has.
    let attributes = SegmentAttributes::new()
        .with_segment_type(seg.type_ & 0xF)
        .with_non_system(seg.s & 1 != 0)
        .with_dpl(seg.dpl & 3)
        .with_present(seg.present != 0 && seg.unusable == 0)
        .with_available(seg.avl & 1 != 0)
        .with_long(seg.l & 1 != 0)
        .with_default_big(seg.db & 1 != 0)
        .with_granularity(seg.g & 1 != 0);
    HvRegisterValue::from(SegmentRegister {
        base: seg.base,
        limit: seg.limit,
        selector: seg.selector,
        attributes,
    })
    .as_u128()
}

/// The KVM segment an HV_X64_SEGMENT_REGISTER value describes; `None` if
/// reserved attribute bits (11:8) are set (contract step 8c). A segment
/// that is not present is unusable.
pub(crate) fn segment_from(value: HvRegisterValue) -> Option<kvm_segment> {
    let v = SegmentRegister::from(value);
    let a = v.attributes;
    if a.reserved() != 0 {
        return None;
    }
    Some(kvm_segment {
        base: v.base,
        limit: v.limit,
        selector: v.selector,
        type_: a.segment_type(),
        present: u8::from(a.present()),
        dpl: a.dpl(),
        db: u8::from(a.default_big()),
        s: u8::from(a.non_system()),
        l: u8::from(a.long()),
        g: u8::from(a.granularity()),
        avl: u8::from(a.available()),
        unusable: u8::from(!a.present()),
        padding: 0,
    })
}

/// The KVM descriptor table an HV_X64_TABLE_REGISTER value describes;
/// `None` if its padding is not zero (step 8c).
pub(crate) fn table_from(value: HvRegisterValue) -> Option<kvm_dtable> {
    let t = TableRegister::from(value);
    (t.pad == [0; 3]).then_some(kvm_dtable {
        base: t.base,
        limit: t.limit,
        padding: [0; 3],
    })
}

/// HV_X64_TABLE_REGISTER: limit u16 @6, base u64 @8.
pub(crate) fn table_value(t: &kvm_dtable) -> u128 {
    HvRegisterValue::from(TableRegister {
        pad: [0; 3],
        limit: t.limit,
        base: t.base,
    })
    .as_u128()
}

/// HV_X64_PENDING_INTERRUPTION_REGISTER from the vCPU events.
pub(crate) fn pending_interruption(e: &kvm_bindings::kvm_vcpu_events) -> u64 {
    // The architectural NMI vector.
    const NMI_VECTOR: u8 = 2;
    let (kind, vector, error): (u8, u8, Option<u32>) =
        if e.exception.injected != 0 || e.exception.pending != 0 {
            (
                interruption_type::HARDWARE_EXCEPTION,
                e.exception.nr,
                (e.exception.has_error_code != 0).then_some(e.exception.error_code),
            )
        } else if e.nmi.injected != 0 {
            (interruption_type::NMI, NMI_VECTOR, None)
        } else if e.interrupt.injected != 0 {
            (
                if e.interrupt.soft != 0 {
                    interruption_type::SOFTWARE_INTERRUPT
                } else {
                    interruption_type::EXTERNAL_INTERRUPT
                },
                e.interrupt.nr,
                None,
            )
        } else {
            return 0;
        };
    PendingInterruption::new()
        .with_interruption_pending(true)
        .with_interruption_type(kind)
        .with_deliver_error_code(error.is_some())
        .with_interruption_vector(u16::from(vector))
        .with_error_code(error.unwrap_or(0))
        .into_bits()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn groups_of_names_are_the_groups_they_need() {
        let names = |n: &[u32]| n.iter().map(|&n| HvRegisterName(n)).collect::<Vec<_>>();
        let sync_only = Groups::of(&names(&[
            0x0002_0000,
            0x0002_0010,
            0x0006_0001,
            0x0009_0003,
        ]));
        assert_eq!(sync_only.fetched().count(), 0, "{sync_only:?}");
        let three = Groups::of(&names(&[0x0008_0009, 0x0003_0000, 0x0005_0000, 0x1234]));
        assert_eq!(
            three.fetched().collect::<Vec<_>>(),
            [Group::Msrs, Group::Fpu, Group::Debug]
        );
        assert!(!three.contains(Group::Xcrs));
        assert_eq!(
            Groups::NONE
                .with(Group::Xcrs)
                .union(three)
                .fetched()
                .count(),
            4
        );
        assert_eq!(Groups::ALL.fetched().collect::<Vec<_>>(), Group::FETCHED);
        assert_eq!(Groups::of(&[]), Groups::NONE);
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
        let mut nmi = kvm_bindings::kvm_vcpu_events::default();
        nmi.nmi.injected = 1;
        assert_eq!(pending_interruption(&nmi), 1 | (2 << 1) | (2 << 16), "NMI");
        let mut int = kvm_bindings::kvm_vcpu_events::default();
        int.interrupt.injected = 1;
        int.interrupt.nr = 0x30;
        assert_eq!(pending_interruption(&int), 1 | (0x30 << 16), "external");
        int.interrupt.soft = 1;
        assert_eq!(
            pending_interruption(&int),
            1 | (4 << 1) | (0x30 << 16),
            "INT n"
        );
    }

    #[test]
    fn segment_and_table_layouts_section_5() {
        let cs = kvm_segment {
            base: 0x1234,
            ..crate::boot::flat_segment(8, true)
        };
        let v = segment_value(&cs);
        assert_eq!(v as u64, 0x1234, "base @0");
        assert_eq!((v >> 64) as u32, 0xFFFF_FFFF, "limit @8");
        assert_eq!((v >> 96) as u16, 8, "selector @12");
        assert_eq!(
            (v >> 112) as u16,
            0xB | 0x10 | 0x80 | 0x2000 | 0x8000,
            "attributes @14"
        );
        let unusable = kvm_segment { unusable: 1, ..cs };
        assert_eq!(
            (segment_value(&unusable) >> 112) as u16 & 0x80,
            0,
            "unusable reads not present"
        );
        let t = table_value(&kvm_dtable {
            base: 0x1000,
            limit: 0x2F,
            ..Default::default()
        });
        assert_eq!(t, (0x1000 << 64) | (0x2F << 48));
    }

    #[test]
    fn segment_value_bytes_and_field_masks() {
        let ss = kvm_segment {
            base: 0x0123_4567_89AB_CDEF,
            limit: 0x000F_FFFF,
            selector: 0x2B,
            type_: 0x13, // only bits 3:0 are the type
            present: 1,
            dpl: 7, // only bits 1:0 are the DPL
            db: 1,
            s: 1,
            l: 0,
            g: 0,
            avl: 1,
            unusable: 0,
            padding: 0,
        };
        let bytes = segment_value(&ss).to_le_bytes();
        assert_eq!(
            bytes,
            [
                0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01, // base
                0xFF, 0xFF, 0x0F, 0x00, // limit
                0x2B, 0x00, // selector
                0xF3, 0x50, // type 3, S, DPL 3, P; AVL, D/B
            ]
        );
    }
}
