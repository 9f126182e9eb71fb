//! seccomp filters (with `seccompiler`): which system calls each kind of
//! hvcall thread may make, and what happens when one makes another.
//!
//! Every thread of a VM run takes the filter of its [`ThreadRole`] before
//! it handles anything a guest or a client controls: a vCPU thread before
//! its first `KVM_RUN`, the thread that runs the VM (the watchdog) before
//! the vCPUs are let go, the API and gdb servers before their first
//! `accept`. A filter is an allow-list: a system call outside it, in
//! [`SeccompMode::On`], sends `SIGSYS`; the handler installed here writes
//! one line naming the thread and the call on stderr and ends the process
//! with [`VIOLATION_EXIT_STATUS`]. [`SeccompMode::Log`] lets the call
//! through and has the kernel log it (audit), for finding what a list
//! lacks. Filters stack: a thread started by a filtered thread keeps its
//! parent's filter as well as its own, so a role that starts threads
//! allows what they need before they take their own filter (starting a
//! thread: `clone3`, its stack, its signal stack, its name).
//!
//! `ioctl` is allowed for KVM's requests only (type `0xAE`), and for
//! `FIONBIO` on the roles that switch a socket to non-blocking.
//!
//! ```no_run
//! use hvcall_vmm::seccomp::{self, SeccompMode, ThreadRole};
//! // On a thread that serves a socket of the host's tools:
//! seccomp::install(ThreadRole::Api, SeccompMode::On).expect("filter installed");
//! ```

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Once;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// How threads are filtered.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum SeccompMode {
    /// No filter.
    #[default]
    Off,
    /// Calls outside a thread's list are allowed and logged by the kernel.
    Log,
    /// Calls outside a thread's list end the process
    /// ([`VIOLATION_EXIT_STATUS`]).
    On,
}

impl std::str::FromStr for SeccompMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "on" => Ok(Self::On),
            "off" => Ok(Self::Off),
            "log" => Ok(Self::Log),
            other => Err(format!("{other:?}: expected on, off or log")),
        }
    }
}

/// The exit status of a process one of whose threads made a system call
/// outside its list (128 + SIGSYS, as a shell shows a death by SIGSYS).
pub const VIOLATION_EXIT_STATUS: i32 = 128 + libc::SIGSYS;

/// The kinds of thread, each with its own allow-list.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ThreadRole {
    /// The thread that runs the VM and is its watchdog ([`crate::Vm::run`]'s
    /// caller), filtered once it started the vCPU and inspector threads:
    /// waits, kicks, and after the run closes the VM, removes sockets and
    /// exits.
    Main,
    /// A vCPU thread: `KVM_RUN` and the vCPU's state ioctls, memory slots
    /// when the hypercall page moves, kicks to other vCPUs.
    Vcpu,
    /// A console writer: writes the guest's serial output.
    Console,
    /// A host thread that reads and writes the running VM through an
    /// [`crate::Inspector`] and writes on stderr (the inspector's own
    /// thread once it started the others, the sampler).
    Host,
    /// The API socket's server and its client threads (it starts them).
    Api,
    /// The gdb stub's server (Unix socket or TCP, `/proc/net/tcp` for the
    /// peer's uid).
    Gdb,
}

impl ThreadRole {
    /// Every role.
    pub const ALL: [ThreadRole; 6] = [
        ThreadRole::Main,
        ThreadRole::Vcpu,
        ThreadRole::Console,
        ThreadRole::Host,
        ThreadRole::Api,
        ThreadRole::Gdb,
    ];

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            ThreadRole::Main => "main",
            ThreadRole::Vcpu => "vcpu",
            ThreadRole::Console => "console",
            ThreadRole::Host => "host",
            ThreadRole::Api => "api",
            ThreadRole::Gdb => "gdb",
        }
    }
}

/// Why a filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The filter could not be built or compiled.
    #[error("seccomp filter for the {role} thread: {source}")]
    Build {
        /// The thread's role.
        role: &'static str,
        /// Why.
        source: seccompiler::BackendError,
    },
    /// The kernel refused it, or `SIGSYS` could not be handled.
    #[error("seccomp filter for the {role} thread: {source}")]
    Apply {
        /// The thread's role.
        role: &'static str,
        /// Why.
        source: seccompiler::Error,
    },
    /// The `SIGSYS` handler could not be installed.
    #[error("cannot handle SIGSYS: {0}")]
    Signal(vmm_sys_util::errno::Error),
}

/// A system call by name, for the lists and the violation message.
macro_rules! sys {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), libc::$name)),*]
    };
}

type Calls = &'static [(&'static str, i64)];

/// What every thread does: memory, locks, sleeping, signals (the VMM's
/// kick and its return), stderr, thread exit, and the violation report.
const BASE: Calls = sys![
    SYS_futex,
    SYS_sched_yield,
    SYS_nanosleep,
    SYS_clock_nanosleep,
    SYS_clock_gettime,
    SYS_gettid,
    SYS_getpid,
    SYS_mmap,
    SYS_munmap,
    SYS_mremap,
    SYS_madvise,
    SYS_mprotect,
    SYS_brk,
    SYS_sigaltstack,
    SYS_rt_sigprocmask,
    SYS_rt_sigreturn,
    SYS_getrandom,
    SYS_write,
    SYS_exit,
    SYS_exit_group,
];

/// What starting a (named, Rust) thread and waiting for it takes.
const SPAWN: Calls = sys![
    SYS_clone,
    SYS_clone3,
    SYS_set_robust_list,
    SYS_rseq,
    SYS_prctl,
    SYS_sched_getaffinity,
];

/// Kicking another vCPU (`pthread_kill`).
const KICK: Calls = sys![SYS_tgkill];

/// Serving a socket.
const SOCKET: Calls = sys![
    SYS_accept,
    SYS_accept4,
    SYS_read,
    SYS_recvfrom,
    SYS_recvmsg,
    SYS_sendto,
    SYS_sendmsg,
    SYS_poll,
    SYS_ppoll,
    SYS_setsockopt,
    SYS_getsockopt,
    SYS_getsockname,
    SYS_getpeername,
    SYS_shutdown,
    SYS_fcntl,
    SYS_close,
];

/// The gdb stub's peer check: reading `/proc/net/tcp*` and our own uid.
const PEER_CHECK: Calls = sys![
    SYS_openat,
    SYS_read,
    SYS_fstat,
    SYS_newfstatat,
    SYS_statx,
    SYS_lseek,
    SYS_getuid,
    SYS_geteuid,
];

/// Ending the run: closing the VM (`fcntl(F_GETFD)`: debug builds check
/// each descriptor before closing it) and removing sockets.
const TEARDOWN: Calls = sys![
    SYS_close,
    SYS_fcntl,
    SYS_unlink,
    SYS_unlinkat,
    SYS_newfstatat,
    SYS_statx,
    SYS_fstat,
    SYS_lstat,
];

/// Other calls named in a violation message.
const NOTABLE: Calls = sys![
    SYS_open,
    SYS_execve,
    SYS_execveat,
    SYS_fork,
    SYS_vfork,
    SYS_kill,
    SYS_tkill,
    SYS_ptrace,
    SYS_socket,
    SYS_connect,
    SYS_bind,
    SYS_listen,
    SYS_getppid,
    SYS_mount,
    SYS_chmod,
    SYS_setuid,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
];

/// The lists of a role: (calls, `ioctl` requests allowed).
fn lists(role: ThreadRole) -> (Vec<Calls>, Ioctls) {
    match role {
        ThreadRole::Main => (vec![BASE, KICK, TEARDOWN], Ioctls::Kvm),
        ThreadRole::Vcpu => (vec![BASE, KICK], Ioctls::Kvm),
        ThreadRole::Console => (vec![BASE], Ioctls::None),
        ThreadRole::Host => (vec![BASE, KICK], Ioctls::None),
        ThreadRole::Api => (vec![BASE, SPAWN, KICK, SOCKET], Ioctls::Sockets),
        ThreadRole::Gdb => (vec![BASE, KICK, SOCKET, PEER_CHECK], Ioctls::Sockets),
    }
}

/// Which `ioctl` requests a role may make.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Ioctls {
    None,
    /// KVM's (type 0xAE).
    Kvm,
    /// `FIONBIO` (set a socket non-blocking).
    Sockets,
}

/// KVM's ioctl type (`KVMIO`), bits 15:8 of the request.
const KVMIO: u64 = 0xAE;

fn ioctl_rules(ioctls: Ioctls) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    let request = |op, value| {
        SeccompCondition::new(1, SeccompCmpArgLen::Dword, op, value)
            .and_then(|c| SeccompRule::new(vec![c]))
    };
    Ok(match ioctls {
        Ioctls::None => Vec::new(),
        Ioctls::Kvm => vec![request(SeccompCmpOp::MaskedEq(0xFF00), KVMIO << 8)?],
        Ioctls::Sockets => vec![request(SeccompCmpOp::Eq, libc::FIONBIO)?],
    })
}

/// The BPF program of `role` in `mode` (not `Off`).
fn program(role: ThreadRole, mode: SeccompMode) -> Result<BpfProgram, seccompiler::BackendError> {
    let (calls, ioctls) = lists(role);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = calls
        .iter()
        .flat_map(|list| list.iter())
        .map(|&(_, nr)| (nr, Vec::new()))
        .collect();
    let ioctl = ioctl_rules(ioctls)?;
    if !ioctl.is_empty() {
        rules.insert(libc::SYS_ioctl, ioctl);
    }
    let mismatch = if mode == SeccompMode::Log {
        SeccompAction::Log
    } else {
        SeccompAction::Trap
    };
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, TargetArch::x86_64)?;
    filter.try_into()
}

thread_local! {
    /// This thread's role, for the violation message.
    static ROLE: Cell<Option<ThreadRole>> = const { Cell::new(None) };
}

/// Puts the calling thread under `role`'s filter (nothing in `Off`).
/// Irreversible for this thread and every thread it starts afterwards.
pub fn install(role: ThreadRole, mode: SeccompMode) -> Result<(), SeccompError> {
    if mode == SeccompMode::Off {
        return Ok(());
    }
    let program = program(role, mode).map_err(|source| SeccompError::Build {
        role: role.name(),
        source,
    })?;
    prepare_process()?;
    ROLE.with(|r| r.set(Some(role)));
    seccompiler::apply_filter(&program).map_err(|source| SeccompError::Apply {
        role: role.name(),
        source,
    })
}

/// What the process needs once before its first filter: the `SIGSYS`
/// handler, and a fixed limit on glibc's malloc arenas. Without that limit
/// glibc computes one the first time a thread needs a new arena, from
/// `/sys/devices/system/cpu/online`, an `openat` no thread's list allows.
fn prepare_process() -> Result<(), SeccompError> {
    static ONCE: Once = Once::new();
    /// Arenas for the threads of one VM (the vCPUs share them).
    const ARENA_MAX: libc::c_int = 8;
    let mut result = Ok(());
    ONCE.call_once(|| {
        // SAFETY: mallopt only changes malloc's tuning; it takes malloc's
        // own locks, so other threads may allocate meanwhile.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) };
        result = vmm_sys_util::signal::register_signal_handler(libc::SIGSYS, on_sigsys)
            .map_err(SeccompError::Signal);
    });
    result
}

/// The `SIGSYS` fields of a `siginfo_t` on x86-64 (after signo, errno,
/// code and padding: the call's address, its number, its audit arch).
#[repr(C)]
struct SigsysInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: u64,
    syscall: i32,
    arch: u32,
}

/// `si_code` of a seccomp `SIGSYS`.
const SYS_SECCOMP: i32 = 1;

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t (SA_SIGINFO); its
    // SIGSYS layout starts as SigsysInfo does and is at least as large.
    let info = unsafe { &*(info as *const SigsysInfo) };
    if info.code != SYS_SECCOMP {
        return;
    }
    // Only async-signal-safe work from here: a stack buffer, write, _exit.
    let mut line = Line::default();
    match ROLE.with(Cell::get) {
        Some(role) => {
            line.push(b"hvcall: seccomp: the ");
            line.push(role.name().as_bytes());
            line.push(b" thread");
        }
        // A thread started by a filtered one (an API client's) runs under
        // its parent's filter.
        None => line.push(b"hvcall: seccomp: a thread under its parent's filter"),
    }
    line.push(b" made system call ");
    let nr = i64::from(info.syscall);
    match [BASE, SPAWN, KICK, SOCKET, PEER_CHECK, TEARDOWN, NOTABLE]
        .iter()
        .flat_map(|l| l.iter())
        .find(|(_, n)| *n == nr)
    {
        Some((name, _)) => line.push(name.trim_start_matches("SYS_").as_bytes()),
        None if nr == libc::SYS_ioctl => line.push(b"ioctl"),
        None => line.push(b"number"),
    }
    line.push(b" (");
    line.number(nr);
    line.push(b"), which its filter does not allow; exiting with status ");
    line.number(i64::from(VIOLATION_EXIT_STATUS));
    line.push(b"\n");
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is
    // ours and `len` bytes long.
    unsafe {
        libc::write(2, line.buf.as_ptr().cast(), line.len);
        libc::_exit(VIOLATION_EXIT_STATUS);
    }
}

/// A fixed buffer for the violation message (no allocation in a signal
/// handler); what does not fit is cut.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
        }
    }
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    fn number(&mut self, n: i64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut v = n.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 || at == 0 {
                break;
            }
        }
        if n < 0 {
            self.push(b"-");
        }
        self.push(&digits[at..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_compiles_in_both_modes() {
        for role in ThreadRole::ALL {
            for mode in [SeccompMode::On, SeccompMode::Log] {
                assert!(program(role, mode).is_ok(), "{role:?} {mode:?}");
            }
        }
    }

    #[test]
    fn only_the_roles_that_need_them_may_start_threads_or_touch_sockets() {
        let allows = |role, nr| {
            lists(role)
                .0
                .iter()
                .any(|l| l.iter().any(|&(_, n)| n == nr))
        };
        assert!(!allows(ThreadRole::Vcpu, libc::SYS_clone3));
        assert!(!allows(ThreadRole::Vcpu, libc::SYS_openat));
        assert!(!allows(ThreadRole::Console, libc::SYS_accept4));
        assert!(!allows(ThreadRole::Api, libc::SYS_openat));
        assert!(allows(ThreadRole::Gdb, libc::SYS_openat));
        assert!(allows(ThreadRole::Api, libc::SYS_clone3));
        for role in [
            ThreadRole::Main,
            ThreadRole::Vcpu,
            ThreadRole::Host,
            ThreadRole::Gdb,
        ] {
            assert!(!allows(role, libc::SYS_clone3), "{role:?}");
        }
        for nr in [libc::SYS_execve, libc::SYS_socket, libc::SYS_ptrace] {
            for role in ThreadRole::ALL {
                assert!(!allows(role, nr), "{role:?} {nr}");
            }
        }
    }

    #[test]
    fn the_violation_line_formats_numbers_without_allocating() {
        let mut line = Line::default();
        line.number(0);
        line.push(b" ");
        line.number(159);
        line.push(b" ");
        line.number(-12);
        assert_eq!(&line.buf[..line.len], b"0 159 -12");
        let mut full = Line::default();
        full.push(&[b'x'; 300]);
        assert_eq!(full.len, 256, "cut, not overflowed");
    }

    #[test]
    fn modes_parse() {
        assert_eq!("on".parse(), Ok(SeccompMode::On));
        assert_eq!("log".parse(), Ok(SeccompMode::Log));
        assert_eq!("off".parse(), Ok(SeccompMode::Off));
        assert!("yes".parse::<SeccompMode>().is_err());
    }
}
