//! Kicking a vCPU thread out of `KVM_RUN`.
//!
//! A kick is a signal ([`kick_signal`]) sent to the vCPU's thread. Its
//! handler, installed without `SA_RESTART`, sets the `immediate_exit` byte
//! of that thread's own `kvm_run` (found through a thread-local pointer), so
//! a kick that lands just before `KVM_RUN` is not lost: the next `KVM_RUN`
//! returns `EINTR` at once. A kick that lands inside `KVM_RUN` makes it
//! return `EINTR` at an instruction boundary. Only the vCPU's own thread
//! (or the handler running on it) ever writes its `kvm_run`.
//!
//! The reason for a kick always lives in shared state that the vCPU thread
//! checks after every `EINTR`, so a kick carries no data.

use std::cell::Cell;
use std::sync::Once;

/// The signal used for kicks: the first real-time signal, which
/// applications embedding the VMM do not use the way they use SIGUSR1.
pub(crate) fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

thread_local! {
    /// The `immediate_exit` byte of the `kvm_run` owned by this thread, or null.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // `try_with` and a `const` thread local with no destructor: no
    // allocation, no lock, so this is async-signal-safe.
    let _ = IMMEDIATE_EXIT.try_with(|p| {
        let ptr = p.get();
        if !ptr.is_null() {
            // SAFETY: the pointer was registered by this very thread with
            // `register_current_thread` and points into its vCPU's
            // `kvm_run` mapping, which outlives the registration (see
            // `Registration`). A volatile byte store cannot tear.
            unsafe { ptr.write_volatile(1) };
        }
    });
}

/// Installs the kick handler once per process.
pub(crate) fn install_handler() -> Result<(), vmm_sys_util::errno::Error> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick);
    });
    result
}

/// While alive, kicks to the current thread set `immediate_exit` in the
/// given `kvm_run`. Dropping it unregisters the pointer. Not `Send`: it
/// must be dropped on the thread that registered.
pub(crate) struct Registration(std::marker::PhantomData<*mut u8>);

impl Registration {
    /// Registers `kvm_run` of the vCPU this thread owns: until the
    /// registration is dropped, a kick to this thread writes its
    /// `immediate_exit` byte.
    ///
    /// # Safety
    ///
    /// `kvm_run` must stay mapped (its `VcpuFd` alive) for as long as the
    /// returned registration lives, and the registration must be dropped on
    /// this thread: the signal handler writes through the pointer kept
    /// here, after the borrow of `kvm_run` has ended.
    pub(crate) unsafe fn register_current_thread(kvm_run: &mut kvm_bindings::kvm_run) -> Self {
        let ptr = std::ptr::addr_of_mut!(kvm_run.immediate_exit);
        IMMEDIATE_EXIT.with(|p| p.set(ptr));
        Registration(std::marker::PhantomData)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        IMMEDIATE_EXIT.with(|p| p.set(std::ptr::null_mut()));
    }
}

/// A handle to kick one thread.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Kicker(libc::pthread_t);

impl Kicker {
    /// A kicker for the calling thread.
    pub(crate) fn current() -> Self {
        // SAFETY: pthread_self has no preconditions.
        Kicker(unsafe { libc::pthread_self() })
    }

    /// Sends the kick signal.
    ///
    /// # Safety
    ///
    /// The thread must not have finished: `pthread_kill` on the id of a
    /// thread that has ended (and been joined) is undefined behaviour.
    pub(crate) unsafe fn kick(&self) {
        // SAFETY: the caller guarantees the thread is alive; the signal has
        // a handler: kickers are registered by vCPU threads, which start
        // after `install_handler` ran.
        let rc = unsafe { libc::pthread_kill(self.0, kick_signal()) };
        if rc != 0 {
            tracing::warn!(rc, "pthread_kill failed");
        }
    }
}
