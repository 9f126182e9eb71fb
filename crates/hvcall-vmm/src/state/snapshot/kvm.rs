//! The KVM side of a snapshot: fetching its groups from a vCPU
//! (`capture*`, [`VpSnapshot::fill`]) and setting them back
//! ([`VpSnapshot::flush`], [`VpSnapshot::write`]), one ioctl per group.

use hvcall_abi::{HvRegisterName, HvRegisterValue};
use kvm_bindings::{kvm_msr_entry, kvm_sync_regs, Msrs};
use kvm_ioctls::VcpuFd;

use crate::hyperv::synthetic::SyntheticState;
use crate::state::count_ioctl;
use crate::state::registers::{Group, Groups, MSR_LIST};

use super::{FetchError, FlushError, FpuState, Staged, VpSnapshot, WriteError, TSC_STAGED};

/// How far the TSC may have moved past a value written to it when it is
/// read back at once (2^36 ticks: about 20 s at 3.5 GHz); further, or
/// behind the value, and KVM did not hold it (step 8c).
const TSC_SLACK: u64 = 1 << 36;

impl VpSnapshot {
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
