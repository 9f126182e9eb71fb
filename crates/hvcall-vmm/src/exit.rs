//! How a run of a VM ends, and the exit status each end gives.

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmExit {
    /// The guest wrote `v` to port 0xF4: exit status `v`.
    Exited(u8),
    /// Every VP halted with interrupts disabled (with the in-kernel
    /// irqchip: or waiting for its startup IPI, at least one halted):
    /// status 0.
    AllHalted,
    /// A VP faulted (triple fault, emulation failure, KVM error): status 125.
    Fault {
        /// The VP that faulted.
        vp: u32,
        /// What happened.
        reason: String,
    },
    /// The watchdog stopped a guest that ran too long: status 124.
    Watchdog,
    /// The guest reset the machine (the i8042's "reset CPU" command, which
    /// is how Linux reboots a PC without ACPI): status 3.
    Reset,
    /// The host stopped the VM ([`crate::Inspector::stop`]; `hvcall run`
    /// does on SIGINT or SIGTERM): status 130.
    Stopped,
}

impl VmExit {
    /// The process exit status for this end (`hvcall run` exits with it).
    ///
    /// ```
    /// use hvcall_vmm::VmExit;
    /// assert_eq!(VmExit::Exited(7).status(), 7);
    /// assert_eq!(VmExit::AllHalted.status(), 0);
    /// assert_eq!(VmExit::Watchdog.status(), 124);
    /// assert_eq!(VmExit::Reset.status(), 3);
    /// assert_eq!(VmExit::Stopped.status(), 130);
    /// assert_eq!(VmExit::Fault { vp: 0, reason: String::new() }.status(), 125);
    /// ```
    pub fn status(&self) -> u8 {
        match self {
            VmExit::Exited(v) => *v,
            VmExit::AllHalted => 0,
            VmExit::Fault { .. } => 125,
            VmExit::Watchdog => 124,
            VmExit::Reset => 3,
            VmExit::Stopped => 130,
        }
    }
}

impl std::fmt::Display for VmExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmExit::Exited(v) => write!(f, "guest exited with status {v}"),
            VmExit::AllHalted => write!(f, "all VPs halted with interrupts disabled"),
            VmExit::Fault { vp, reason } => write!(f, "VP {vp} faulted: {reason}"),
            VmExit::Watchdog => write!(f, "watchdog: the guest was still running and was stopped"),
            VmExit::Reset => write!(f, "the guest reset the machine"),
            VmExit::Stopped => write!(f, "stopped by the host"),
        }
    }
}
