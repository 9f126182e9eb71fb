//! What a VM is built with: [`VmConfig`].

use std::time::Duration;

use hvcall_dispatch::DispatchConfig;

use crate::devices::console::Console;
use crate::seccomp::SeccompMode;

/// How to build a VM.
///
/// ```
/// let config = hvcall_vmm::VmConfig { cpus: 1, ..Default::default() };
/// assert_eq!(config.memory_mib, 64);
/// ```
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// Number of vCPUs (default 2).
    pub cpus: u32,
    /// Guest RAM in MiB (default 64).
    pub memory_mib: u64,
    /// Work budget of one hypercall entry, in rep elements (default:
    /// [`DispatchConfig::default`]); `--max-reps-per-entry`.
    pub max_reps_per_entry: u16,
    /// Grant AccessVpRegisters (default true); false =
    /// `--no-access-vp-registers`.
    pub access_vp_registers: bool,
    /// Advertise XMM fast input and output (default true); false =
    /// `--no-xmm-fast`.
    pub xmm_fast: bool,
    /// A guest still running after this long is stopped (default 10 s;
    /// `Duration::MAX`: never).
    pub watchdog: Duration,
    /// Where COM1 output goes (default stdout).
    pub console: Console,
    /// Give the VM KVM's in-kernel PIC, IOAPIC, local APICs and PIT, with
    /// COM1 on IRQ 4: the PC a Linux kernel expects (default false). The
    /// VPs other than 0 then wait for INIT/SIPI, and HLT no longer exits
    /// to the VMM, so [`crate::VmExit::AllHalted`] cannot happen.
    pub irqchip: bool,
    /// Where to write one line per hypercall entry (default: nowhere); see
    /// [`crate::hyperv::trace`].
    pub hypercall_trace: Option<Console>,
    /// seccomp filters ([`crate::seccomp`]) for the vCPU threads and the
    /// console writers (default off: the embedding program decides).
    pub seccomp: SeccompMode,
    /// Also filter the thread that calls [`crate::Vm::run`] (the main
    /// role), once the vCPU threads are started and before they run the
    /// guest. The filter stays after the run: for a program that runs one
    /// VM on that thread and then exits (default false).
    pub seccomp_caller: bool,
}

impl Default for VmConfig {
    fn default() -> Self {
        Self {
            cpus: 2,
            memory_mib: 64,
            max_reps_per_entry: DispatchConfig::default().max_reps_per_entry,
            access_vp_registers: true,
            xmm_fast: true,
            watchdog: Duration::from_secs(10),
            console: Console::Stdout,
            irqchip: false,
            hypercall_trace: None,
            seccomp: SeccompMode::Off,
            seccomp_caller: false,
        }
    }
}
