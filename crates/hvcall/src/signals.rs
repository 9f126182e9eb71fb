//! Which signals stop `hvcall run`, and how a stop reaches the VM.
//!
//! Every signal whose default action ends the process and that can be
//! caught (SIGHUP from a closed terminal, SIGINT, SIGQUIT, SIGTERM,
//! SIGUSR1/2, SIGALRM, ...; the real-time signals except the VMM's own
//! kick signal) is turned into a request to stop: the handler records the
//! signal, and [`watch`] (run on the inspector's thread) stops the VM.
//! The run then ends as [`hvcall_vmm::VmExit::Stopped`] (exit status 130),
//! its threads return and its sockets are removed, whichever signal it
//! was. The faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP) and
//! SIGSYS (seccomp's) keep their meaning; SIGPIPE stays ignored (Rust's
//! default: a write to a closed pipe fails instead).

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use hvcall_vmm::Inspector;
use vmm_sys_util::signal::{register_signal_handler, SIGRTMAX, SIGRTMIN};

/// The first stop signal received, 0 before any.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop_signal(signal: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Async-signal-safe: one atomic operation. The first signal is kept.
    let _ = RECEIVED.compare_exchange(0, signal, Ordering::Relaxed, Ordering::Relaxed);
}

/// The signals [`install`] catches.
pub fn stop_signals() -> Vec<libc::c_int> {
    let mut signals = vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSTKFLT,
        libc::SIGXCPU,
        libc::SIGXFSZ,
    ];
    // SIGRTMIN is the VMM's kick (hvcall_vmm's rendezvous).
    signals.extend(SIGRTMIN() + 1..=SIGRTMAX());
    signals
}

/// Makes every signal of [`stop_signals`] a stop request instead of the
/// end of the process.
pub fn install() -> Result<(), String> {
    for signal in stop_signals() {
        register_signal_handler(signal, on_stop_signal)
            .map_err(|e| format!("cannot handle signal {}: {e}", name(signal)))?;
    }
    Ok(())
}

/// The signal that asked to stop, if one did.
pub fn received() -> Option<libc::c_int> {
    match RECEIVED.load(Ordering::Relaxed) {
        0 => None,
        signal => Some(signal),
    }
}

/// Whether a stop signal arrived.
pub fn stop_requested() -> bool {
    received().is_some()
}

/// How often [`watch`] looks at the flag.
const POLL: Duration = Duration::from_millis(20);

/// Stops the VM once a stop signal arrived; returns when the VM ended.
pub fn watch(inspector: &Inspector<'_>) {
    while !inspector.wait_end(POLL) {
        if stop_requested() {
            inspector.stop();
        }
    }
}

/// A signal's name ("SIGTERM", "SIGRTMIN+3").
pub fn name(signal: libc::c_int) -> String {
    let known = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGVTALRM, "SIGVTALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGIO, "SIGIO"),
        (libc::SIGPWR, "SIGPWR"),
        (libc::SIGSTKFLT, "SIGSTKFLT"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
    ];
    match known.iter().find(|(n, _)| *n == signal) {
        Some((_, name)) => (*name).to_string(),
        None if signal > SIGRTMIN() && signal <= SIGRTMAX() => {
            format!("SIGRTMIN+{}", signal - SIGRTMIN())
        }
        None => format!("signal {signal}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stop_signal_is_named_and_the_kick_and_faults_are_not_caught() {
        let signals = stop_signals();
        for &s in &signals {
            assert!(!name(s).starts_with("signal "), "{s} unnamed");
        }
        for kept in [
            SIGRTMIN(),
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGABRT,
            libc::SIGSYS,
            libc::SIGPIPE,
            libc::SIGKILL,
            libc::SIGSTOP,
        ] {
            assert!(!signals.contains(&kept), "{} caught", name(kept));
        }
        assert_eq!(name(SIGRTMIN() + 2), "SIGRTMIN+2");
    }
}
