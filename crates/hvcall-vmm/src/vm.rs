//! A VM: KVM objects, guest RAM, the synthetic MSR state and the vCPU
//! threads of a run.
//!
//! [`Vm::new`] builds everything the boot protocol needs except the image,
//! [`Vm::load_elf`] loads one and points every vCPU at its entry, and
//! [`Vm::run`] runs one thread per vCPU plus a watchdog until the VM ends.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hvcall_abi::name::x64;
use hvcall_abi::value::InternalActivity;

use hvcall_abi::{HvRegisterName, HvRegisterValue, SetVpRegistersElement};
use hvcall_dispatch::{DispatchConfig, HostTarget, SourceError, VpState, WriteFailure};
use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};

use crate::boot;
use crate::boot::loader::{self, LoadedImage};
use crate::boot::{linux, mptable};
use crate::cpu::CpuFeatures;
use crate::devices::{self, Devices};
use crate::host::inspect::{EndOnPanic, Inspector};
use crate::host::root::{ReadError, RootHypervisor};
use crate::hyperv::cpuid::{guest_cpuid, HypervLeaves};
use crate::hyperv::hypercall_page::Memslots;
use crate::hyperv::msr::{self, SyntheticMsrs};
use crate::hyperv::synthetic::{HypervState, SlotChange};
use crate::memory::GuestRam;
use crate::mutex::lock;
use crate::rendezvous::kick;
use crate::rendezvous::Rendezvous;
use crate::seccomp::{self, ThreadRole};
use crate::shared::{Shared, StartGate};
use crate::state::registers::Groups;
use crate::state::snapshot::VpSnapshot;
use crate::state::SnapshotError;
use crate::stats::{Counters, RunStats};
use crate::{VmConfig, VmmError};

/// The frequency of KVM's local APIC timer (its APIC bus runs at 1 GHz).
const KVM_APIC_BUS_HZ: u64 = 1_000_000_000;

pub use crate::exit::VmExit;
pub use crate::topology::MAX_CPUS;

/// A VM.
pub struct Vm {
    // Drop order matters: vCPUs and the VM go before the memory they map.
    vcpus: Vec<VcpuFd>,
    vm_fd: VmFd,
    /// Leaves, synthetic MSRs, the overlay's memory slots.
    hv: HypervState,
    ram: GuestRam,
    devices: Devices,
    _kvm: Kvm,
    config: VmConfig,
    states: Vec<VpState<VpSnapshot>>,
    image: Option<LoadedImage>,
    /// A load was tried (see `begin_load`).
    load_started: bool,
    counters: Counters,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("config", &self.config)
            .field("image", &self.image)
            .finish()
    }
}

fn kvm_err(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> VmmError {
    move |source| VmmError::Kvm { what, source }
}

impl Vm {
    /// Creates the VM: RAM, boot structures, CPUID, MSR exits, vCPUs in
    /// long mode (pointing nowhere until an image is loaded).
    pub fn new(config: &VmConfig) -> Result<Self, VmmError> {
        if config.cpus == 0 || config.cpus > MAX_CPUS {
            return Err(VmmError::Config(format!(
                "cpus must be 1..={MAX_CPUS}, not {}",
                config.cpus
            )));
        }
        let ram = GuestRam::new(config.memory_mib)?;
        if boot::stacks_start(ram.size(), config.cpus) <= loader::IMAGE_MIN_ADDRESS {
            return Err(VmmError::Config(format!(
                "{} MiB of RAM leaves no room for an image above 1 MiB and {} stacks of 64 KiB",
                config.memory_mib, config.cpus
            )));
        }
        let kvm = Kvm::new().map_err(VmmError::NoKvm)?;
        let max = kvm.get_max_vcpus();
        if config.cpus as usize > max {
            return Err(VmmError::Config(format!("KVM allows at most {max} vCPUs")));
        }
        let vm_fd = kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
        if config.irqchip {
            devices::create_irqchip(&vm_fd)?;
        }
        let devices = Devices::new(config.console.clone(), config.irqchip.then_some(&vm_fd))?;
        let memslots = Memslots::new(&vm_fd, &ram)?;
        msr::install_filter(&vm_fd)?;
        boot::write_boot_structures(&ram)?;

        let leaves = HypervLeaves::new(config.access_vp_registers, config.xmm_fast, config.cpus);
        let supported = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
        // What register writes accept (step 8c): the features of the table
        // every vCPU gets (the tables differ only in the APIC ID).
        let table = guest_cpuid(&supported, &leaves, 0)
            .map_err(|e| VmmError::Config(format!("CPUID table: {e:?}")))?;
        let leaves = leaves.with_arch(CpuFeatures::from_entries(table.as_slice()));
        let mut vcpus = Vec::with_capacity(config.cpus as usize);
        for i in 0..config.cpus {
            let vcpu = vm_fd
                .create_vcpu(u64::from(i))
                .map_err(kvm_err("KVM_CREATE_VCPU"))?;
            let cpuid = guest_cpuid(&supported, &leaves, i)
                .map_err(|e| VmmError::Config(format!("CPUID table: {e:?}")))?;
            vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;
            let sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
            vcpu.set_sregs(&boot::initial_sregs(&sregs))
                .map_err(kvm_err("KVM_SET_SREGS"))?;
            vcpus.push(vcpu);
        }
        // KVM_GET_TSC_KHZ; without it the frequency MSR raises #GP.
        let tsc_hz = vcpus
            .first()
            .and_then(|v| v.get_tsc_khz().ok())
            .map_or(0, |khz| u64::from(khz) * 1000);
        Ok(Self {
            vcpus,
            vm_fd,
            hv: HypervState {
                leaves,
                created: Instant::now(),
                msrs: Mutex::new(SyntheticMsrs {
                    tsc_hz,
                    apic_hz: KVM_APIC_BUS_HZ,
                    ..SyntheticMsrs::default()
                }),
                memslots: Mutex::new(memslots),
            },
            ram,
            devices,
            _kvm: kvm,
            config: config.clone(),
            states: (0..config.cpus).map(|_| VpState::new()).collect(),
            image: None,
            load_started: false,
            counters: Counters::default(),
        })
    }

    /// Loads a static ELF64 image (README, "Boot protocol") and sets every vCPU's
    /// registers to the boot protocol's. A VM takes one image.
    pub fn load_elf(&mut self, elf: &[u8]) -> Result<(), VmmError> {
        self.begin_load()?;
        let image_end = boot::stacks_start(self.ram.size(), self.config.cpus);
        let image = loader::load_elf(&self.ram, elf, image_end)?;
        for (i, vcpu) in self.vcpus.iter().enumerate() {
            let regs = boot::initial_regs(image.entry, i as u32, self.config.cpus, self.ram.size());
            vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))?;
        }
        self.image = Some(image);
        Ok(())
    }

    /// Loads a Linux kernel (a bzImage or a vmlinux, see [`crate::boot::linux`])
    /// with its command line and an optional initrd, describes the VPs in
    /// an MP table, and points VP 0 at the kernel's 64-bit entry. The VM
    /// must have been built with [`VmConfig::irqchip`]: the other VPs wait
    /// for the kernel's INIT/SIPI.
    pub fn load_linux(
        &mut self,
        kernel: &[u8],
        cmdline: &str,
        initrd: Option<&[u8]>,
    ) -> Result<(), VmmError> {
        if !self.config.irqchip {
            return Err(VmmError::Config(
                "a Linux kernel needs the in-kernel irqchip (VmConfig::irqchip)".into(),
            ));
        }
        self.begin_load()?;
        let entry = linux::load(&self.ram, kernel, cmdline, initrd)?;
        boot::write_linux_gdt(&self.ram)?;
        mptable::write(&self.ram, self.config.cpus)?;
        let vcpu = self
            .vcpus
            .first()
            .ok_or_else(|| VmmError::Config("no vCPU".into()))?;
        let sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
        vcpu.set_sregs(&boot::linux_sregs(&sregs))
            .map_err(kvm_err("KVM_SET_SREGS"))?;
        vcpu.set_regs(&boot::linux_regs(entry.entry, entry.boot_params))
            .map_err(kvm_err("KVM_SET_REGS"))?;
        self.image = Some(LoadedImage { entry: entry.entry });
        Ok(())
    }

    /// One load per VM: loaders rely on fresh RAM (a `.bss` is not
    /// zeroed), and a load that failed may have written part of its image.
    fn begin_load(&mut self) -> Result<(), VmmError> {
        if self.load_started {
            return Err(VmmError::Config(
                "an image is already loaded in this VM (or a load failed): build a new VM".into(),
            ));
        }
        self.load_started = true;
        Ok(())
    }

    /// Guest RAM (for the host side: inspect or prepare guest memory while
    /// the VM is not running).
    pub fn ram(&self) -> &GuestRam {
        &self.ram
    }

    /// The synthetic MSR state (guest OS ID, hypercall MSR).
    pub fn synthetic_msrs(&self) -> SyntheticMsrs {
        *lock(&self.hv.msrs)
    }

    /// Reads registers of VP `vp_index` as the root partition (the VM's
    /// parent) through the dispatcher, while the VM is not running: before
    /// the first run or after a run ended. Any number of names; the values
    /// come in the same order.
    ///
    /// ```no_run
    /// use hvcall_abi::name::x64;
    /// # let config = hvcall_vmm::VmConfig::default();
    /// let mut vm = hvcall_vmm::Vm::new(&config).unwrap();
    /// let v = vm.get_vp_registers(1, &[x64::RIP, x64::VP_INDEX]).unwrap();
    /// assert_eq!(v[1].as_u32(), 1);
    /// ```
    pub fn get_vp_registers(
        &mut self,
        vp_index: u32,
        names: &[HvRegisterName],
    ) -> Result<Vec<HvRegisterValue>, ReadError> {
        let vcpus = &self.vcpus;
        let synthetic = self.hv.view(&self.vm_fd, &self.ram);
        let mut snapshot = |vp: u32, groups| {
            let vcpu = vcpus.get(vp as usize).ok_or(SnapshotError::NoVcpu(vp))?;
            VpSnapshot::capture_stopped(vcpu, synthetic.state(vp), groups)
                .map_err(SnapshotError::Fetch)
        };
        let mut hv = RootHypervisor {
            vp_count: self.config.cpus,
            snapshot: &mut snapshot,
            write: None,
        };
        let target = HostTarget::new(crate::topology::VM_PARTITION_ID, vp_index);
        crate::host::root::get_vp_registers(&mut hv, &target, names)
    }

    /// Writes registers of VP `vp_index` as the root partition (the VM's
    /// parent) would with HvCallSetVpRegisters (docs/contract.md §8),
    /// through the dispatcher's typed host write: the same checks, then
    /// each element in order, straight into KVM, before the first run or
    /// after a run ended. The registers of §8 "writable" that live in the
    /// vCPU are written (GPRs, RIP, RFLAGS, control and segment registers,
    /// EFER, ApicBase, the MSRs served, XMM/x87 state, debug registers,
    /// Xfem); the synthetic, PendingInterruption and InterruptState
    /// registers are refused (INVALID_PARAMETER) for now. On failure the
    /// elements before the failing one are written, it is not.
    ///
    /// ```no_run
    /// use hvcall_abi::{name::x64, HvRegisterValue, SetVpRegistersElement};
    /// # let config = hvcall_vmm::VmConfig::default();
    /// let mut vm = hvcall_vmm::Vm::new(&config).unwrap();
    /// let rbx = SetVpRegistersElement::new(x64::RBX, HvRegisterValue::from(7u64));
    /// vm.set_vp_registers(1, &[rbx]).unwrap();
    /// ```
    pub fn set_vp_registers(
        &mut self,
        vp_index: u32,
        elements: &[SetVpRegistersElement],
    ) -> Result<(), ReadError> {
        let vcpus = &self.vcpus;
        let synthetic = self.hv.view(&self.vm_fd, &self.ram);
        let mut snapshot = |_: u32, _| {
            Err(SnapshotError::Internal(
                "a snapshot from the write-only view",
            ))
        };
        let mut write = |vp: u32, batch: &[SetVpRegistersElement]| {
            let host = |e: SnapshotError| WriteFailure {
                applied: 0,
                error: SourceError::Host(e),
            };
            let vcpu = vcpus
                .get(vp as usize)
                .ok_or(host(SnapshotError::NoVcpu(vp)))?;
            let mut state = VpSnapshot::capture_stopped(vcpu, synthetic.state(vp), Groups::NONE)
                .map_err(|e| host(SnapshotError::Fetch(e)))?;
            // No vCPU runs: a move of the hypercall page needs no pause.
            let mut synthetic_msr = |index, value| {
                let at_once = |change: &mut SlotChange<'_>| Some(change());
                crate::state::write::write_synthetic(&synthetic, index, vp, value, at_once)
            };
            let applied = crate::state::write::apply(&mut state, vcpu, batch, &mut synthetic_msr);
            applied
                .pending
                .commit_stopped(vcpu, &state)
                .map_err(|e| host(SnapshotError::Write(e)))?;
            applied.result
        };
        let mut hv = RootHypervisor {
            vp_count: self.config.cpus,
            snapshot: &mut snapshot,
            write: Some(&mut write),
        };
        let target = HostTarget::new(crate::topology::VM_PARTITION_ID, vp_index);
        crate::host::root::set_vp_registers(&mut hv, &target, elements)
    }

    /// What the VM did so far (all runs).
    pub fn stats(&self) -> RunStats {
        self.counters.get()
    }

    /// Runs every vCPU until the VM ends: a guest exit, all VPs halted, a
    /// fault, or the watchdog.
    pub fn run(&mut self) -> Result<VmExit, VmmError> {
        self.run_with(None::<fn(&Inspector<'_>)>)
    }

    /// Like [`Vm::run`], and meanwhile runs `inspect` on a host thread of
    /// its own with an [`Inspector`]: the root partition's live view of the
    /// running VM (see [`crate::host::inspect`] for an example). The run returns
    /// once the VM ended AND `inspect` returned, so `inspect` must stop
    /// when the VM ends ([`Inspector::wait_end`] returns true, reads fail
    /// with [`crate::ReadError::Ended`]). A panic in `inspect`
    /// ends the VM and is passed on.
    pub fn run_inspected<F>(&mut self, inspect: F) -> Result<VmExit, VmmError>
    where
        F: FnOnce(&Inspector<'_>) + Send,
    {
        self.run_with(Some(inspect))
    }

    fn run_with<F>(&mut self, inspect: Option<F>) -> Result<VmExit, VmmError>
    where
        F: FnOnce(&Inspector<'_>) + Send,
    {
        if self.image.is_none() {
            return Err(VmmError::Config("no image loaded".into()));
        }
        kick::install_handler().map_err(|e| VmmError::Signal(e.to_string()))?;
        // Before any vCPU thread (which may not start threads) writes.
        self.config.console.start(self.config.seccomp);
        if let Some(trace) = &self.config.hypercall_trace {
            trace.start(self.config.seccomp);
        }
        let shared = Shared {
            config: &self.config,
            ram: &self.ram,
            devices: &self.devices,
            synthetic: self.hv.view(&self.vm_fd, &self.ram),
            rendezvous: Rendezvous::new(self.config.cpus),
            breakpoints: Mutex::new(BTreeSet::new()),
            dispatch: DispatchConfig::default()
                .with_max_reps_per_entry(self.config.max_reps_per_entry),
            counters: &self.counters,
            unimplemented: Mutex::new(BTreeSet::new()),
            start: StartGate::default(),
        };
        let shared = &shared;
        std::thread::scope(|s| {
            for (vp, (vcpu, state)) in self
                .vcpus
                .iter_mut()
                .zip(self.states.iter_mut())
                .enumerate()
            {
                let spawned = std::thread::Builder::new()
                    .name(format!("vcpu{vp}"))
                    .spawn_scoped(s, move || crate::vcpu::run(shared, vp as u32, vcpu, state));
                if let Err(e) = spawned {
                    // The threads already started must stop before the
                    // scope can join them.
                    let reason = format!("cannot start its thread: {e}");
                    shared.rendezvous.end(VmExit::Fault {
                        vp: vp as u32,
                        reason,
                    });
                    shared.start.open(false);
                    return Err(VmmError::Thread(e));
                }
            }
            if let Some(inspect) = inspect {
                let spawned = std::thread::Builder::new()
                    .name("inspector".into())
                    .spawn_scoped(s, move || {
                        let _guard = EndOnPanic(shared);
                        // Once the VM has started, as the vCPUs do.
                        if shared.start.pass() {
                            inspect(&Inspector::new(shared));
                        }
                    });
                if let Err(e) = spawned {
                    let reason = format!("cannot start the inspector thread: {e}");
                    shared.rendezvous.end(VmExit::Fault { vp: 0, reason });
                    shared.start.open(false);
                    return Err(VmmError::Thread(e));
                }
            }
            // The caller's own filter, before any vCPU runs the guest.
            if self.config.seccomp_caller {
                if let Err(e) = seccomp::install(ThreadRole::Main, self.config.seccomp) {
                    shared.start.open(false);
                    shared.rendezvous.end(VmExit::Fault {
                        vp: 0,
                        reason: e.to_string(),
                    });
                    return Err(e.into());
                }
            }
            shared.start.open(true);
            supervise(shared);
            Ok(())
        })?;
        self.config.console.flush();
        if let Some(trace) = &self.config.hypercall_trace {
            trace.flush();
        }
        Ok(shared.rendezvous.ended().unwrap_or(VmExit::Fault {
            vp: 0,
            reason: "the run ended without a reason".into(),
        }))
    }
}

/// How often a VM with the in-kernel irqchip is checked for "every VP
/// halted": there HLT does not exit to the VMM.
const HALT_PROBE_INTERVAL: Duration = Duration::from_millis(250);
const RFLAGS_IF: u64 = 1 << 9;

/// Waits for the VM to end; ends it when the watchdog runs out or, with
/// the in-kernel irqchip, when every VP is halted with interrupts off or
/// still waiting for its startup IPI.
fn supervise(shared: &Shared<'_>) {
    let config = shared.config;
    let deadline = Instant::now().checked_add(config.watchdog);
    let step = if config.irqchip {
        HALT_PROBE_INTERVAL
    } else {
        Duration::MAX
    };
    loop {
        let left = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        if shared.rendezvous.wait_end(left.min(step)) {
            return;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            tracing::warn!(watchdog = ?config.watchdog, "watchdog fired");
            shared.rendezvous.end(VmExit::Watchdog);
            return;
        }
        if config.irqchip && all_halted(&Inspector::new(shared)) {
            shared.rendezvous.end(VmExit::AllHalted);
            return;
        }
    }
}

/// Whether every VP is halted with interrupts disabled or waits for its
/// startup IPI, and at least one is halted: read as the root partition
/// (HvRegisterInternalActivityState and RFLAGS of each VP).
fn all_halted(inspector: &Inspector<'_>) -> bool {
    let names = [x64::INTERNAL_ACTIVITY_STATE, x64::RFLAGS];
    let mut halted = 0;
    for vp in 0..inspector.vp_count() {
        let Ok(v) = inspector.get_vp_registers(vp, &names) else {
            return false;
        };
        let (Some(activity), Some(rflags)) = (v.first(), v.get(1)) else {
            return false;
        };
        let activity = InternalActivity::from_bits(activity.as_u64());
        if activity.halt_suspend() && rflags.as_u64() & RFLAGS_IF == 0 {
            halted += 1;
        } else if !activity.startup_suspend() {
            return false;
        }
    }
    halted > 0
}
