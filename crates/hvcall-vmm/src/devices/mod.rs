//! The legacy devices on the port I/O bus, and the in-kernel interrupt
//! controllers behind them.
//!
//! | ports | device |
//! |---|---|
//! | `0x3F8..=0x3FF` | COM1, a 16550 UART (`vm-superio`), output to [`Console`]; IRQ 4 through an irqfd when the VM has the in-kernel irqchip |
//! | `0x60`, `0x64` | an i8042 that only knows "reset CPU" (`0xFE` to `0x64`, `vm-superio`): the VM ends with [`crate::VmExit::Reset`] |
//! | `0xF4` | the exit port: a write of `v` ends the VM with status `v` |
//! | others | writes ignored, reads return all ones |
//!
//! With [`VmConfig::irqchip`](crate::VmConfig::irqchip), [`create_irqchip`]
//! gives the VM KVM's PIC, IOAPIC, local APICs and PIT, which is what a
//! Linux kernel expects of a PC; bare-metal guests run without them, so
//! that their HLT exits to the VMM.
//!
//! Owns the port I/O devices (here) and the [`console`] their output goes
//! to.

pub mod console;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kvm_bindings::{kvm_pit_config, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::VmFd;
use vm_superio::{I8042Device, Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::devices::console::Console;

/// COM1's first port.
pub const COM1_BASE: u16 = 0x3F8;
/// COM1's interrupt line (ISA IRQ 4, GSI 4).
pub const COM1_GSI: u32 = 4;
/// The i8042 data port.
pub const I8042_DATA: u16 = 0x60;
/// The i8042 command/status port.
pub const I8042_COMMAND: u16 = 0x64;
/// Port whose write ends the VM with the byte written as exit status.
pub const EXIT_PORT: u16 = 0xF4;

/// Raises COM1's interrupt line: an irqfd when the VM has an in-kernel
/// irqchip, nothing otherwise.
#[derive(Debug)]
pub struct IrqLine(Option<EventFd>);

impl Trigger for IrqLine {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        match &self.0 {
            Some(fd) => fd.write(1),
            None => Ok(()),
        }
    }
}

/// Records a reset request of the i8042.
#[derive(Debug, Default, Clone)]
pub struct ResetLine(Arc<AtomicBool>);

impl Trigger for ResetLine {
    type E = std::convert::Infallible;

    fn trigger(&self) -> Result<(), Self::E> {
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// The UART's output: the VM's console. Never fails, so a closed stdout
/// cannot stop the guest.
#[derive(Debug)]
pub struct ConsoleWriter(Console);

impl io::Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    /// Nothing: the UART flushes after every byte, and a vCPU must not
    /// wait for the process's stdout; the run drains the console at its
    /// end.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a port access asks of the vCPU thread.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PortEffect {
    /// Nothing more: carry on.
    None,
    /// The guest wrote `v` to the exit port.
    Exit(u8),
    /// The guest asked the i8042 to reset the machine.
    Reset,
}

/// The VM's port I/O devices.
#[derive(Debug)]
pub struct Devices {
    com1: Mutex<Serial<IrqLine, vm_superio::serial::NoEvents, ConsoleWriter>>,
    i8042: Mutex<I8042Device<ResetLine>>,
    reset: ResetLine,
}

impl Devices {
    /// The devices of a VM whose console is `console`; with `vm` (a VM that
    /// has the in-kernel irqchip), COM1's interrupt is wired to GSI 4.
    pub fn new(console: Console, vm: Option<&VmFd>) -> Result<Self, DeviceError> {
        let line = match vm {
            Some(vm) => {
                let fd = EventFd::new(libc::EFD_NONBLOCK).map_err(DeviceError::EventFd)?;
                vm.register_irqfd(&fd, COM1_GSI)
                    .map_err(|source| DeviceError::Kvm {
                        what: "KVM_IRQFD",
                        source,
                    })?;
                IrqLine(Some(fd))
            }
            None => IrqLine(None),
        };
        let reset = ResetLine::default();
        Ok(Self {
            com1: Mutex::new(Serial::new(line, ConsoleWriter(console))),
            i8042: Mutex::new(I8042Device::new(reset.clone())),
            reset,
        })
    }

    /// A guest's `out` of `data` to `port`. Several bytes are a string
    /// write (`rep outsb`) to that one port.
    pub fn write(&self, port: u16, data: &[u8]) -> PortEffect {
        let Some(&value) = data.first() else {
            return PortEffect::None;
        };
        match port {
            COM1_BASE..=0x3FF => {
                let offset = (port - COM1_BASE) as u8;
                let mut com1 = lock(&self.com1);
                for &byte in data {
                    if let Err(e) = com1.write(offset, byte) {
                        tracing::debug!(?e, "COM1 interrupt not delivered");
                    }
                }
                PortEffect::None
            }
            I8042_DATA | I8042_COMMAND => {
                let _ = lock(&self.i8042).write((port - I8042_DATA) as u8, value);
                if self.reset.0.swap(false, Ordering::SeqCst) {
                    PortEffect::Reset
                } else {
                    PortEffect::None
                }
            }
            EXIT_PORT => PortEffect::Exit(value),
            _ => {
                tracing::trace!(port, "ignored port write");
                PortEffect::None
            }
        }
    }

    /// A guest's `in` from `port` into `data`.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        let value = match port {
            COM1_BASE..=0x3FF => lock(&self.com1).read((port - COM1_BASE) as u8),
            I8042_DATA | I8042_COMMAND => lock(&self.i8042).read((port - I8042_DATA) as u8),
            _ => 0xFF,
        };
        data.fill(value);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why the devices could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// An eventfd could not be made.
    #[error("creating an eventfd: {0}")]
    EventFd(#[source] io::Error),
    /// A KVM ioctl failed.
    #[error("{what} failed: {source}")]
    Kvm {
        /// The ioctl.
        what: &'static str,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
}

/// Gives `vm` KVM's in-kernel PIC, IOAPIC and local APICs, and its PIT.
/// Call before creating vCPUs.
pub fn create_irqchip(vm: &VmFd) -> Result<(), DeviceError> {
    vm.create_irq_chip().map_err(|source| DeviceError::Kvm {
        what: "KVM_CREATE_IRQCHIP",
        source,
    })?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit).map_err(|source| DeviceError::Kvm {
        what: "KVM_CREATE_PIT2",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn com1_output_reaches_the_console_and_lsr_says_empty() {
        let (console, buffer) = Console::buffer();
        let d = Devices::new(console, None).unwrap();
        for b in b"hi" {
            assert_eq!(d.write(COM1_BASE, &[*b]), PortEffect::None);
        }
        assert_eq!(d.write(COM1_BASE, b" there"), PortEffect::None, "rep outsb");
        assert_eq!(&*buffer.lock().unwrap(), b"hi there");
        let mut lsr = [0u8];
        d.read(COM1_BASE + 5, &mut lsr);
        assert_eq!(lsr[0] & 0x60, 0x60, "transmitter empty");
    }

    #[test]
    fn i8042_reset_and_exit_port() {
        let d = Devices::new(Console::buffer().0, None).unwrap();
        let mut status = [0xAAu8];
        d.read(I8042_COMMAND, &mut status);
        assert_eq!(
            status[0] & 2,
            0,
            "input buffer empty: Linux's kb_wait passes"
        );
        assert_eq!(d.write(I8042_COMMAND, &[0x20]), PortEffect::None);
        assert_eq!(d.write(I8042_COMMAND, &[0xFE]), PortEffect::Reset);
        assert_eq!(d.write(EXIT_PORT, &[7]), PortEffect::Exit(7));
        assert_eq!(d.write(0x80, &[1]), PortEffect::None);
        assert_eq!(d.write(COM1_BASE, &[]), PortEffect::None);
        let mut other = [0u8; 2];
        d.read(0x1234, &mut other);
        assert_eq!(other, [0xFF, 0xFF]);
    }
}
