//! The HV side of a snapshot: a register's value in the encoding of the
//! TLFS (contract §5) from the state held ([`VpSnapshot::value`]), and a
//! value written into the state held ([`VpSnapshot::stage`]).

use hvcall_abi::name::x64;
use hvcall_abi::value::{
    FpControlStatus, FpRegister, InterruptState, VsmPartitionStatus, VsmVpStatus,
};
use hvcall_abi::{msr, HvError, HvRegisterName, HvRegisterValue};
use kvm_ioctls::VcpuFd;

use crate::state::registers::{
    gpr, gpr_mut, pending_interruption, segment_from, segment_value, source_of, table_from,
    table_value, Seg, Source, Syn, MSR_LIST,
};
use crate::state::validate::{self, efer, Invalid};

use super::{activity, Staged, VpSnapshot, WriteError, RFLAGS_SLOT, RIP_SLOT};

impl VpSnapshot {
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
