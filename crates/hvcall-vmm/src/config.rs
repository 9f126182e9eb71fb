//! What a VM is built with: [`VmConfig`] and where its console goes.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hvcall_dispatch::DispatchConfig;

/// Most bytes a [`Console::Buffer`] keeps; later bytes are dropped.
pub const CONSOLE_BUFFER_LIMIT: usize = 16 << 20;

/// Where bytes written to COM1 (port 0x3F8) go, or the hypercall trace.
#[derive(Clone, Debug, Default)]
pub enum Console {
    /// The process's standard output.
    #[default]
    Stdout,
    /// The process's standard error.
    Stderr,
    /// A shared buffer (at most [`CONSOLE_BUFFER_LIMIT`] bytes are kept).
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl Console {
    /// A console that collects output in a buffer, and the buffer.
    pub fn buffer() -> (Self, Arc<Mutex<Vec<u8>>>) {
        let b = Arc::new(Mutex::new(Vec::new()));
        (Console::Buffer(b.clone()), b)
    }

    /// Writes guest console bytes (a buffer keeps at most
    /// [`CONSOLE_BUFFER_LIMIT`] bytes; write errors are ignored).
    pub(crate) fn write(&self, bytes: &[u8]) {
        match self {
            Console::Stdout => {
                // A closed stdout must not stop the guest.
                let _ = std::io::stdout().lock().write_all(bytes);
            }
            Console::Stderr => {
                let _ = std::io::stderr().lock().write_all(bytes);
            }
            Console::Buffer(b) => {
                let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
                let room = CONSOLE_BUFFER_LIMIT.saturating_sub(b.len());
                b.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
        }
    }

    /// Flushes stdout (a buffer needs nothing).
    pub(crate) fn flush(&self) {
        if let Console::Stdout = self {
            let _ = std::io::stdout().lock().flush();
        }
    }
}

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
    /// [`crate::trace`].
    pub hypercall_trace: Option<Console>,
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
        }
    }
}
