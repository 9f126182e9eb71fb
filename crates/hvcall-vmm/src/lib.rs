//! hvcall's KVM VMM: runs a static ELF64 guest or a Linux kernel on KVM
//! and gives it the Hyper-V discovery interface (CPUID leaves, synthetic
//! MSRs, hypercall page) and HvCallGetVpRegisters, answered from real vCPU
//! state through [`hvcall_dispatch::dispatch()`].
//!
//! It implements the VMM's part of the hvcall contract, `docs/contract.md`
//! in the repository: the
//! discovery interface of §6, the x64 and 32-bit calling conventions of §4
//! through the hypercall page, the work budget and re-entry of §2, and the
//! register values and snapshots of §5. The boot protocol for bare-metal
//! guests and Linux is in the repository's README.
//!
//! ```no_run
//! let elf = std::fs::read("guest.elf").unwrap();
//! let exit = hvcall_vmm::run_elf(&hvcall_vmm::VmConfig::default(), &elf).unwrap();
//! std::process::exit(exit.status().into());
//! ```
//!
//! Modules, by concern (each folder's module doc says what it owns):
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | what a VM is built with |
//! | [`vm`] | the VM and its run; `shared` (private): what its threads share, by concern; `exit`: [`VmExit`] |
//! | [`cpu`] | the guest processor's features, from its CPUID table |
//! | [`memory`] | guest RAM |
//! | [`boot`] | getting a guest into RAM: boot protocol, [`loader`] (ELF), [`linux`], [`boot::mptable`] |
//! | [`devices`] | port I/O devices, the irqchip, the [`Console`] |
//! | [`hyperv`] | the Hyper-V surface: [`cpuid`], [`hyperv::msr`] (synthetic MSRs), [`hyperv::hypercall_page`], the synthetic state the VPs share, [`hyperv::trace`] |
//! | [`topology`] | which partitions and VPs exist, and who may address them |
//! | [`state`] | register state: [`registers`] (HV names → KVM state), snapshots (data, HV encoding, KVM I/O), the pending write and its commits, [`state::validate`], [`SnapshotError`] |
//! | `vcpu` (private) | the run loop and its exits, the hypercall exit, the two servers of other VPs' requests |
//! | `rendezvous` (private) | the cross-VP path: requests, kicks, serving |
//! | [`host`] | the root partition's view, the [`Inspector`] |
//! | [`seccomp`], [`stats`] | thread filters; what a run did |
//!
//! No two of these import each other, directly or through others: the
//! order is `memory`, `topology`, `cpu` → `hyperv` → `state` → `stats`,
//! `rendezvous` → `shared` → `vcpu`, `host` → `vm`.
//!
//! Host side of a run, with the root partition's view afterwards:
//!
//! ```no_run
//! use hvcall_abi::name::x64;
//! use hvcall_vmm::{loader, Vm, VmConfig, VmExit};
//! let mut vm = Vm::new(&VmConfig::default()).unwrap();
//! vm.load_elf(&loader::flat_elf(0x10_0000, &[0xFA, 0xF4], 0)).unwrap(); // cli; hlt
//! assert_eq!(vm.run().unwrap(), VmExit::AllHalted);
//! let rip = vm.get_vp_registers(0, &[x64::RIP]).unwrap()[0].as_u64();
//! assert_eq!(rip, 0x10_0002);
//! ```

pub mod boot;
pub mod config;
pub mod cpu;
pub mod devices;
mod exit;
pub mod host;
pub mod hyperv;
pub mod memory;
mod mutex;
mod rendezvous;
pub mod seccomp;
mod shared;
pub mod state;
pub mod stats;
pub mod topology;
mod vcpu;
pub mod vm;

// Paths other crates use, kept where they were before the folders.
pub use boot::{linux, loader};
pub use hyperv::cpuid;
pub use state::registers;

pub use config::VmConfig;
pub use devices::console::Console;
pub use exit::VmExit;
pub use host::inspect::Inspector;
pub use host::root::ReadError;
pub use rendezvous::DebugEvent;
pub use state::snapshot::{FetchError, FlushError};
pub use state::SnapshotError;
pub use stats::{GroupFetches, RunStats};
pub use topology::{ROOT_PARTITION_ID, VM_PARTITION_ID};
pub use vm::Vm;

/// Why a VM could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// `/dev/kvm` is missing or cannot be opened.
    #[error("cannot open /dev/kvm: {0}")]
    NoKvm(kvm_ioctls::Error),
    /// A KVM ioctl failed during setup.
    #[error("{what} failed: {source}")]
    Kvm {
        /// The ioctl.
        what: &'static str,
        /// The error.
        source: kvm_ioctls::Error,
    },
    /// The configuration cannot be run.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Guest RAM.
    #[error(transparent)]
    Ram(#[from] memory::RamError),
    /// The image.
    #[error("cannot load the guest image: {0}")]
    Load(#[from] loader::LoadError),
    /// Memory slots.
    #[error(transparent)]
    Slots(#[from] hyperv::hypercall_page::SlotError),
    /// MSR exits.
    #[error(transparent)]
    Msr(#[from] hyperv::msr::MsrSetupError),
    /// The kick signal handler.
    #[error("installing the vCPU kick signal handler: {0}")]
    Signal(String),
    /// The Linux boot protocol.
    #[error(transparent)]
    Linux(#[from] linux::LinuxError),
    /// The MP table.
    #[error(transparent)]
    MpTable(#[from] boot::mptable::MpTableError),
    /// The port I/O devices or the in-kernel irqchip.
    #[error(transparent)]
    Devices(#[from] devices::DeviceError),
    /// A thread's seccomp filter could not be installed.
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    /// A vCPU thread could not be started.
    #[error("starting a vCPU thread: {0}")]
    Thread(std::io::Error),
}

/// Builds a VM, loads `elf` (the boot protocol of the README) and runs it until it
/// ends.
pub fn run_elf(config: &VmConfig, elf: &[u8]) -> Result<VmExit, VmmError> {
    let mut vm = Vm::new(config)?;
    vm.load_elf(elf)?;
    vm.run()
}
