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
//! Modules, by concern: [`config`] (what a VM is built with), [`console`]
//! (where its output goes), [`memory`]
//! (guest RAM), [`loader`] (ELF), [`boot`] (boot protocol), [`linux`]
//! (the Linux boot protocol), [`mptable`], [`devices`] (COM1, i8042,
//! exit port, irqchip), [`cpuid`],
//! [`msr`] (synthetic MSRs), [`hypercall_page`] (the overlay),
//! [`registers`] (HV register names → KVM state), [`inspect`] (the host's
//! reads, writes and debugger control of a running VM), [`vm`] (the VM and
//! its run), [`validate`] (what values each writable register accepts),
//! [`trace`] (the hypercall trace) and [`stats`]. Private:
//! `vcpu` (run loop and exits), `hypercall` (dispatcher glue for a guest's
//! call), `snapshot` (one VP's state), `write` (applying a batch of
//! writes), `root` (the root partition's view for host reads and writes)
//! and `rendezvous` (the cross-VP path: requests, kicks, serving).
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
pub mod console;
pub mod cpuid;
pub mod devices;
mod hypercall;
pub mod hypercall_page;
pub mod inspect;
pub mod linux;
pub mod loader;
pub mod memory;
pub mod mptable;
pub mod msr;
pub mod registers;
mod rendezvous;
mod root;
pub mod seccomp;
mod snapshot;
pub mod stats;
pub mod trace;
pub mod validate;
mod vcpu;
pub mod vm;
mod write;

pub use config::VmConfig;
pub use console::Console;
pub use hypercall::{ROOT_PARTITION_ID, VM_PARTITION_ID};
pub use inspect::Inspector;
pub use rendezvous::DebugEvent;
pub use root::ReadError;
pub use stats::{GroupFetches, RunStats};
pub use vm::{Vm, VmExit};

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
    Slots(#[from] hypercall_page::SlotError),
    /// MSR exits.
    #[error(transparent)]
    Msr(#[from] msr::MsrSetupError),
    /// The kick signal handler.
    #[error("installing the vCPU kick signal handler: {0}")]
    Signal(String),
    /// The Linux boot protocol.
    #[error(transparent)]
    Linux(#[from] linux::LinuxError),
    /// The MP table.
    #[error(transparent)]
    MpTable(#[from] mptable::MpTableError),
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
