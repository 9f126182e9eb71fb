//! `hvcall run --gdb PATH` (or `--gdb-port PORT`): a GDB remote stub (the
//! `gdbstub` crate) for the running VM, as its parent partition: VPs are
//! threads (VP n is thread n + 1), register reads and writes go through
//! the dispatcher's host entry points (HvCallGetVpRegisters and
//! HvCallSetVpRegisters as the root partition, [`hvcall_vmm::Inspector`]),
//! memory through the guest's own page tables.
//!
//! This module owns the listening socket, the connection, the session
//! and the breakpoint table.
//!
//! Access: `--gdb PATH` is a Unix socket created like the API socket
//! (mode 0600 from its creation, refused if PATH exists, removed on exit
//! if it is still a socket), so only this user (and root) can connect:
//! `gdb -ex 'target remote PATH'`. `--gdb-port PORT` listens on
//! 127.0.0.1:PORT for remote debugging tools; a connection whose peer
//! socket is not owned by this process's uid (looked up in
//! `/proc/net/tcp` and `/proc/net/tcp6`) is closed at once.
//!
//! The VM stops when gdb attaches (and on Ctrl-C, a breakpoint or a step
//! done); `continue` runs every VP, `stepi` runs the selected VP alone for
//! one instruction (KVM's single-step; the other VPs stay stopped). When
//! gdb detaches the VM runs on and the stub waits for the next gdb; `kill`
//! stops the VM ([`Served::Killed`]). The connection waits in slices of
//! [`SLICE`]: whatever gdb does (active, silent, not reading), the session
//! ends within one slice of the VM's end or of a stop request, and
//! [`serve`] returns.
//!
//! Software breakpoints: the stub writes `int3` (0xCC) at the address
//! (translated through VP 0's page tables) and keeps the byte it
//! replaced, once per guest-physical byte however many virtual aliases
//! gdb sets breakpoints at; the byte comes back when the last alias's
//! breakpoint goes, and every one goes when the session ends (detach,
//! kill, a hang-up, the VM's end). Memory reads show the saved bytes and
//! memory writes over a breakpoint change the saved byte. On this host
//! CPL-0 guest code runs in KVM's instruction emulator, which cannot
//! execute `int3`: it reports an emulation failure at the byte, which the
//! VMM turns into a stop for gdb (RIP on the breakpoint) instead of a #BP.
//! Hardware breakpoints and watchpoints are not offered. Non-canonical
//! addresses (bits 63:47 not all equal) are refused for breakpoints,
//! memory reads and writes.
//!
//! Registers gdb writes: the general registers, RIP, RFLAGS and XMM0–15
//! (only those that changed). Segment selectors, the x87 state and MXCSR
//! are shown but not written (a selector alone is not a segment): a write
//! that changes them fails in gdb and changes nothing.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use gdbstub::common::{Signal, Tid};
use gdbstub::conn::{Connection, ConnectionExt};
use gdbstub::stub::{run_blocking, DisconnectReason, GdbStub, MultiThreadStopReason};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints as BreakpointsExt, BreakpointsOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use gdbstub_arch::x86::X86_64_SSE;
use hvcall::private_socket::{PrivateSocket, PrivateSocketError};
use hvcall_abi::name::x64;
use hvcall_abi::value::{FpControlStatus, SegmentRegister, XmmControlStatus};
use hvcall_abi::{HvRegisterName, HvRegisterValue, SetVpRegistersElement};
use hvcall_vmm::memory::GuestRam;
use hvcall_vmm::{DebugEvent, Inspector};

/// The general registers in gdb's order (rax, rbx, rcx, rdx, rsi, rdi,
/// rbp, rsp, r8–r15), which `hvcall regs` shows too.
pub const GPRS: [HvRegisterName; 16] = [
    x64::RAX,
    x64::RBX,
    x64::RCX,
    x64::RDX,
    x64::RSI,
    x64::RDI,
    x64::RBP,
    x64::RSP,
    x64::R8,
    x64::R9,
    x64::R10,
    x64::R11,
    x64::R12,
    x64::R13,
    x64::R14,
    x64::R15,
];
/// gdb's segment order.
const SEGMENTS: [HvRegisterName; 6] = [x64::CS, x64::SS, x64::DS, x64::ES, x64::FS, x64::GS];

/// Every register the stub reads, in the order [`regs_from`] takes them.
fn names() -> Vec<HvRegisterName> {
    let mut n = GPRS.to_vec();
    n.extend([x64::RIP, x64::RFLAGS]);
    n.extend(SEGMENTS);
    n.extend((0..8).map(|i| HvRegisterName(x64::FP_MMX0.0 + i)));
    n.extend([x64::FP_CONTROL_STATUS, x64::XMM_CONTROL_STATUS]);
    n.extend((0..16).map(|i| HvRegisterName(x64::XMM0.0 + i)));
    n
}

/// gdb's register file from the values of [`names`].
fn regs_from(v: &[HvRegisterValue]) -> X86_64CoreRegs {
    let mut r = X86_64CoreRegs::default();
    for (i, reg) in r.regs.iter_mut().enumerate() {
        *reg = v[i].as_u64();
    }
    r.rip = v[16].as_u64();
    r.eflags = v[17].as_u64() as u32;
    let sel = |k: usize| u32::from(SegmentRegister::from(v[18 + k]).selector);
    r.segments.cs = sel(0);
    r.segments.ss = sel(1);
    r.segments.ds = sel(2);
    r.segments.es = sel(3);
    r.segments.fs = sel(4);
    r.segments.gs = sel(5);
    for (k, st) in r.st.iter_mut().enumerate() {
        st.copy_from_slice(&v[24 + k].0[..10]);
    }
    let fp = FpControlStatus::from(v[32]);
    r.fpu.fctrl = u32::from(fp.fp_control);
    r.fpu.fstat = u32::from(fp.fp_status);
    // The abridged tag (a bit per register: valid) as the full tag word
    // gdb shows (00 valid, 11 empty).
    r.fpu.ftag = (0..8)
        .map(|k| {
            if fp.fp_tag & 1 << k != 0 {
                0
            } else {
                3 << (2 * k)
            }
        })
        .sum();
    r.fpu.fop = u32::from(fp.last_fp_op);
    r.fpu.fioff = fp.last_fp_eip();
    r.fpu.fiseg = u32::from(fp.last_fp_cs());
    let xs = XmmControlStatus::from(v[33]);
    r.fpu.fooff = xs.last_fp_dp();
    r.fpu.foseg = u32::from(xs.last_fp_ds());
    r.mxcsr = xs.xmm_status_control;
    for (k, x) in r.xmm.iter_mut().enumerate() {
        *x = v[34 + k].as_u128();
    }
    r
}

/// The writes that turn `old` into `new` (registers the stub writes).
fn changes(old: &X86_64CoreRegs, new: &X86_64CoreRegs) -> Vec<SetVpRegistersElement> {
    let mut w = Vec::new();
    let mut put =
        |name, v: u128| w.push(SetVpRegistersElement::new(name, HvRegisterValue::from(v)));
    for (i, name) in GPRS.iter().enumerate() {
        if old.regs[i] != new.regs[i] {
            put(*name, u128::from(new.regs[i]));
        }
    }
    if old.rip != new.rip {
        put(x64::RIP, u128::from(new.rip));
    }
    if old.eflags != new.eflags {
        put(x64::RFLAGS, u128::from(new.eflags));
    }
    for k in 0..16 {
        if old.xmm[k] != new.xmm[k] {
            put(HvRegisterName(x64::XMM0.0 + k as u32), new.xmm[k]);
        }
    }
    w
}

/// Whether `new` differs from `old` only in registers the stub writes
/// (not in segment selectors, the x87 registers or MXCSR).
fn writable_only(old: &X86_64CoreRegs, new: &X86_64CoreRegs) -> bool {
    old.segments == new.segments && old.st == new.st && old.fpu == new.fpu && old.mxcsr == new.mxcsr
}

/// The paging state an address is translated with.
#[derive(Copy, Clone, Debug, Default)]
pub struct Paging {
    cr0: u64,
    cr3: u64,
    cr4: u64,
    efer: u64,
}

const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LMA: u64 = 1 << 10;
const PRESENT: u64 = 1;
const LARGE: u64 = 1 << 7;
const ADDRESS: u64 = 0x000F_FFFF_FFFF_F000;

/// Whether `va` is canonical for 4-level paging: bits 63:47 all equal.
fn canonical(va: u64) -> bool {
    ((va << 16) as i64 >> 16) as u64 == va
}

/// The guest-physical address of virtual address `gva` under `paging`,
/// reading page-table entries with `read` (None: not mapped, or not
/// canonical). Paging off: the address itself; 4-level long-mode paging
/// with 1 GiB and 2 MiB pages; other modes (32-bit paging, PAE without
/// long mode, 5-level) are not walked.
fn translate(paging: Paging, gva: u64, read: impl Fn(u64) -> Option<u64>) -> Option<u64> {
    // A non-canonical address would otherwise alias a canonical one
    // (the walk uses bits 47:0 only).
    if !canonical(gva) {
        return None;
    }
    if paging.cr0 & CR0_PG == 0 {
        return Some(gva);
    }
    if paging.cr4 & CR4_PAE == 0 || paging.efer & EFER_LMA == 0 {
        return None;
    }
    let mut table = paging.cr3 & ADDRESS;
    for level in (1..=4u32).rev() {
        let shift = 12 + 9 * (level - 1);
        let entry = read(table + 8 * ((gva >> shift) & 0x1FF))?;
        if entry & PRESENT == 0 {
            return None;
        }
        if level == 1 || (level <= 3 && entry & LARGE != 0) {
            let page = entry & ADDRESS & !((1u64 << shift) - 1);
            return Some(page | (gva & ((1u64 << shift) - 1)));
        }
        table = entry & ADDRESS;
    }
    None
}

/// Why the gdb socket could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// `--gdb PATH`: the Unix socket.
    #[error("--gdb: {0}")]
    Unix(#[from] PrivateSocketError),
    /// `--gdb-port PORT`: listening failed.
    #[error("--gdb-port {port}: cannot listen on 127.0.0.1:{port}: {source}")]
    Tcp {
        /// The port.
        port: u16,
        /// Why.
        source: io::Error,
    },
}

/// Where the stub listens for gdb.
#[derive(Debug)]
pub enum Listener {
    /// A Unix socket private to this user (mode 0600 from its creation);
    /// its path is removed when this is dropped, if still a socket.
    Unix(PrivateSocket),
    /// 127.0.0.1:PORT; peers of another uid are refused.
    Tcp(TcpListener),
}

impl Listener {
    /// Creates a Unix socket at `path`, which must not exist (see
    /// [`PrivateSocket::bind`]: before the VM's threads exist).
    pub fn unix(path: &Path) -> Result<Self, ListenError> {
        Ok(Self::Unix(PrivateSocket::bind(path)?))
    }

    /// Listens on 127.0.0.1:`port` (0: a free port).
    pub fn tcp(port: u16) -> Result<Self, ListenError> {
        TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .map(Self::Tcp)
            .map_err(|source| ListenError::Tcp { port, source })
    }

    /// What gdb's `target remote` takes to reach this listener.
    pub fn target(&self) -> String {
        match self {
            Self::Unix(socket) => socket.path().display().to_string(),
            Self::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "127.0.0.1:?".into(), |a| a.to_string()),
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Self::Unix(socket) => socket.listener().set_nonblocking(true),
            Self::Tcp(l) => l.set_nonblocking(true),
        }
    }

    /// The next connection, nonblocking; a TCP peer whose socket is not
    /// owned by our uid is closed at once (a `PermissionDenied` error).
    fn accept(&self) -> io::Result<Box<dyn Socket>> {
        match self {
            Self::Unix(socket) => {
                let (stream, _) = socket.listener().accept()?;
                stream.set_nonblocking(true)?;
                Ok(Box::new(stream))
            }
            Self::Tcp(l) => {
                let (stream, peer) = l.accept()?;
                let local = stream.local_addr()?;
                // SAFETY: geteuid has no memory effects and cannot fail.
                let ours = unsafe { libc::geteuid() };
                let theirs = peer_uid(local, peer);
                if theirs != Some(ours) {
                    let who = theirs.map_or_else(|| "unknown".into(), |u| u.to_string());
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("refused {peer}: its uid ({who}) is not ours ({ours})"),
                    ));
                }
                stream.set_nonblocking(true)?;
                stream.set_nodelay(true)?;
                Ok(Box::new(stream))
            }
        }
    }
}

/// The uid owning the loopback socket at `peer` connected to `local`:
/// the row of `/proc/net/tcp` or `/proc/net/tcp6` whose local address is
/// `peer` and whose remote address is `local`. None if there is none (the
/// peer is gone, or not on this host).
fn peer_uid(local: SocketAddr, peer: SocketAddr) -> Option<u32> {
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (local, peer) = (canon(local), canon(peer));
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let file = std::fs::File::open(table).ok()?;
            io::BufReader::new(file)
                .lines()
                .skip(1)
                .map_while(Result::ok)
                .filter_map(|line| tcp_row(&line))
                .find(|row| row.local == peer && row.remote == local)
                .map(|row| row.uid)
        })
}

/// One socket of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, PartialEq, Eq)]
struct TcpRow {
    local: SocketAddr,
    remote: SocketAddr,
    uid: u32,
}

/// Parses a row of `/proc/net/tcp` or `/proc/net/tcp6` (`sl local_address
/// rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...`); the
/// addresses are canonical (an IPv4-mapped IPv6 address is IPv4).
fn tcp_row(line: &str) -> Option<TcpRow> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?;
    let local = proc_address(fields.next()?)?;
    let remote = proc_address(fields.next()?)?;
    // State, queues, timer and retransmits come before the uid.
    let uid = fields.nth(4)?.parse().ok()?;
    Some(TcpRow { local, remote, uid })
}

/// `ADDR:PORT` as `/proc/net/tcp*` shows them: the address as 32-bit
/// words in this host's byte order (one for IPv4, four for IPv6), each
/// in 8 hex digits, and the port in hex.
fn proc_address(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    // Exactly `n` hex digits (from_str_radix alone takes a sign too).
    let digits =
        |text: &str, n: usize| text.len() == n && text.bytes().all(|b| b.is_ascii_hexdigit());
    let hex = |text: &str| {
        digits(text, 8)
            .then(|| u32::from_str_radix(text, 16).ok())
            .flatten()
    };
    let ip = match address.len() {
        8 => IpAddr::from(Ipv4Addr::from(hex(address)?.to_ne_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for (k, word) in bytes.chunks_exact_mut(4).enumerate() {
                word.copy_from_slice(&hex(address.get(8 * k..8 * k + 8)?)?.to_ne_bytes());
            }
            IpAddr::from(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    let port = digits(port, 4)
        .then(|| u16::from_str_radix(port, 16).ok())
        .flatten()?;
    Some(SocketAddr::new(ip.to_canonical(), port))
}

/// A connected socket gdb talks on (TCP or Unix), nonblocking.
trait Socket: Read + Write + AsRawFd {}

impl Socket for TcpStream {}
impl Socket for UnixStream {}

/// How long the connection waits at once before it looks again whether
/// the VM ended or a stop was requested.
pub const SLICE: Duration = Duration::from_millis(100);

/// Bytes buffered before a write goes out, and read at once.
const CHUNK: usize = 4096;

/// gdb's connection: waits for gdb in slices of [`SLICE`], and fails
/// (ending the session) once the VM ended or `stop()` asked for it (then
/// it stops the VM first). Writes are buffered until a flush or
/// [`CHUNK`] bytes.
struct Conn<'a, 'b> {
    stream: Box<dyn Socket>,
    insp: &'a Inspector<'b>,
    stop: &'a (dyn Fn() -> bool + Sync),
    input: Vec<u8>,
    /// `input[at..len]` is unread.
    at: usize,
    len: usize,
    output: Vec<u8>,
    /// Bytes handed to the stub so far, shared with [`VmTarget`].
    received: Rc<Cell<u64>>,
}

impl<'a, 'b> Conn<'a, 'b> {
    fn new(
        stream: Box<dyn Socket>,
        insp: &'a Inspector<'b>,
        stop: &'a (dyn Fn() -> bool + Sync),
        received: Rc<Cell<u64>>,
    ) -> Self {
        Self {
            stream,
            insp,
            stop,
            input: vec![0; CHUNK],
            at: 0,
            len: 0,
            output: Vec::with_capacity(CHUNK),
            received,
        }
    }

    /// Whether the VM still runs; a stop request stops it here.
    fn vm_running(&self) -> bool {
        if (self.stop)() {
            self.insp.stop();
        }
        self.insp.is_running()
    }

    /// An error once the VM ended (see [`Self::vm_running`]).
    fn alive(&self) -> io::Result<()> {
        if self.vm_running() {
            Ok(())
        } else {
            Err(io::Error::other("the VM ended"))
        }
    }

    /// Waits at most one [`SLICE`] for `events` on the socket.
    fn wait(&self, events: libc::c_short) -> io::Result<()> {
        let mut fd = libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, borrowed for the call only.
        let n = unsafe { libc::poll(&mut fd, 1, SLICE.as_millis() as libc::c_int) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Reads what gdb sent, without waiting; false if nothing came.
    fn fill(&mut self) -> io::Result<bool> {
        match self.stream.read(&mut self.input) {
            Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "gdb hung up")),
            Ok(n) => {
                (self.at, self.len) = (0, n);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends the buffered output, waiting in slices while gdb does not
    /// take it.
    fn send(&mut self) -> io::Result<()> {
        let mut sent = 0;
        let result = loop {
            if sent == self.output.len() {
                break Ok(());
            }
            match self.stream.write(&self.output[sent..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => sent += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    if let Err(e) = self.alive().and_then(|()| self.wait(libc::POLLOUT)) {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        self.output.clear();
        result
    }
}

impl Connection for Conn<'_, '_> {
    type Error = io::Error;

    fn write(&mut self, byte: u8) -> io::Result<()> {
        self.output.push(byte);
        if self.output.len() >= CHUNK {
            self.send()?;
        }
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.output.extend_from_slice(buf);
        if self.output.len() >= CHUNK {
            self.send()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl ConnectionExt for Conn<'_, '_> {
    fn read(&mut self) -> io::Result<u8> {
        loop {
            if self.at < self.len {
                let byte = self.input[self.at];
                self.at += 1;
                self.received.set(self.received.get().wrapping_add(1));
                return Ok(byte);
            }
            self.alive()?;
            self.wait(libc::POLLIN)?;
            self.fill()?;
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        if self.at < self.len || self.fill()? {
            Ok(Some(self.input[self.at]))
        } else {
            Ok(None)
        }
    }
}

/// The most breakpoints one session holds; gdb's further ones fail.
const MAX_BREAKPOINTS: usize = 4096;

/// Guest-physical bytes, and the VMM's set of breakpoint bytes, as the
/// breakpoint table uses them.
trait Memory {
    /// The byte at `gpa`, if it is RAM.
    fn byte(&self, gpa: u64) -> Option<u8>;
    /// Writes the byte at `gpa`; false if it is not RAM.
    fn set_byte(&self, gpa: u64, byte: u8) -> bool;
    /// Tells the VMM whether the `int3` at `gpa` is the debugger's.
    fn mark(&self, gpa: u64, on: bool);
}

/// The running VM's RAM and breakpoint set.
struct Guest<'a, 'b>(&'a Inspector<'b>);

impl Memory for Guest<'_, '_> {
    fn byte(&self, gpa: u64) -> Option<u8> {
        let mut b = [0u8];
        self.0.ram().read(gpa, &mut b).ok().map(|()| b[0])
    }

    fn set_byte(&self, gpa: u64, byte: u8) -> bool {
        self.0.ram().write(gpa, &[byte]).is_ok()
    }

    fn mark(&self, gpa: u64, on: bool) {
        self.0.set_breakpoint(gpa, on);
    }
}

const INT3: u8 = 0xCC;

/// A guest-physical byte holding our `int3`.
#[derive(Copy, Clone, Debug)]
struct Saved {
    /// The byte the `int3` replaced (the guest's, as it would read now).
    byte: u8,
    /// How many of gdb's breakpoint addresses map to it.
    aliases: usize,
}

/// The session's software breakpoints, keyed by the guest-physical byte
/// they replace: one saved byte per GPA however many virtual aliases.
#[derive(Debug, Default)]
struct BreakpointTable {
    /// Each address gdb set a breakpoint at → the GPA it mapped to then.
    by_va: BTreeMap<u64, u64>,
    /// Each GPA holding our `int3`.
    by_gpa: BTreeMap<u64, Saved>,
}

impl BreakpointTable {
    /// A breakpoint at `va`, which maps to `gpa`: the first at a GPA saves
    /// its byte and writes `int3` (marked for the VMM first, so a VP never
    /// takes it for the guest's own). False if it cannot be set.
    fn add(&mut self, va: u64, gpa: u64, mem: &impl Memory) -> bool {
        match self.by_va.get(&va) {
            Some(&at) if at == gpa => return true,
            // The page tables changed since: the old one goes first.
            Some(_) => {
                self.remove(va, mem);
            }
            None => {}
        }
        if self.by_va.len() >= MAX_BREAKPOINTS {
            return false;
        }
        if let Some(saved) = self.by_gpa.get_mut(&gpa) {
            saved.aliases += 1;
        } else {
            let Some(byte) = mem.byte(gpa) else {
                return false;
            };
            mem.mark(gpa, true);
            if !mem.set_byte(gpa, INT3) {
                mem.mark(gpa, false);
                return false;
            }
            self.by_gpa.insert(gpa, Saved { byte, aliases: 1 });
        }
        self.by_va.insert(va, gpa);
        true
    }

    /// Removes the breakpoint at `va`: the last alias of a GPA puts its
    /// byte back (then unmarks it). False if there was none, or the byte
    /// could not be written.
    fn remove(&mut self, va: u64, mem: &impl Memory) -> bool {
        let Some(gpa) = self.by_va.remove(&va) else {
            return false;
        };
        let Some(saved) = self.by_gpa.get_mut(&gpa) else {
            return false;
        };
        saved.aliases -= 1;
        if saved.aliases > 0 {
            return true;
        }
        let byte = saved.byte;
        self.by_gpa.remove(&gpa);
        let restored = mem.set_byte(gpa, byte);
        mem.mark(gpa, false);
        restored
    }

    /// Removes every breakpoint.
    fn clear(&mut self, mem: &impl Memory) {
        while let Some((&va, _)) = self.by_va.first_key_value() {
            self.remove(va, mem);
        }
    }

    /// The saved bytes at GPAs `gpa..gpa + n`: (offset, byte).
    fn saved_in(&self, gpa: u64, n: usize) -> impl Iterator<Item = (usize, u8)> + '_ {
        self.by_gpa
            .range(gpa..gpa.saturating_add(n as u64))
            .map(move |(&g, s)| ((g - gpa) as usize, s.byte))
    }

    /// After a memory write of `data` at `gpa`: a breakpoint byte it
    /// covered keeps the `int3` and saves the written byte instead.
    fn written(&mut self, gpa: u64, data: &[u8], mem: &impl Memory) {
        let end = gpa.saturating_add(data.len() as u64);
        for (&g, saved) in self.by_gpa.range_mut(gpa..end) {
            saved.byte = data[(g - gpa) as usize];
            mem.set_byte(g, INT3);
        }
    }
}

/// The most bytes one `m` packet reads: gdb asks for at most a packet's
/// worth; a longer request gets this many and an error.
const MAX_READ: usize = 64 * 1024;

/// The VM as gdb's target.
struct VmTarget<'a, 'b> {
    insp: &'a Inspector<'b>,
    vps: u32,
    breakpoints: BreakpointTable,
    /// The VP resumed for one instruction, if any.
    step: Option<u32>,
    /// The VPs resumed with "continue" (bit n: VP n).
    continued: u64,
    /// Scheduler locking: only the VPs resumed run.
    locked: bool,
    /// Bytes gdb sent so far (counted by [`Conn`]): a new count is a new
    /// packet.
    received: Rc<Cell<u64>>,
    /// The count at the last memory read, and the bytes read since.
    read_mark: (u64, usize),
}

const NO_SUCH_VP: &str = "no such VP";

/// Copies between guest virtual memory at `addr` and a buffer, page by
/// page as far as it is mapped RAM, translating with `paging`: `op(gpa,
/// offset, n)`; the bytes done.
fn access(
    ram: &GuestRam,
    paging: Paging,
    addr: u64,
    len: usize,
    mut op: impl FnMut(u64, usize, usize) -> bool,
) -> usize {
    let mut done = 0;
    while done < len {
        let va = addr.wrapping_add(done as u64);
        let in_page = (4096 - (va & 0xFFF)) as usize;
        let n = in_page.min(len - done);
        let gpa = translate(paging, va, |gpa| {
            let mut b = [0u8; 8];
            ram.read(gpa, &mut b).ok()?;
            Some(u64::from_le_bytes(b))
        });
        match gpa {
            Some(gpa) if op(gpa, done, n) => done += n,
            _ => break,
        }
    }
    done
}

impl VmTarget<'_, '_> {
    fn vp(&self, tid: Tid) -> Result<u32, TargetError<&'static str>> {
        let vp = u32::try_from(tid.get() - 1).map_err(|_| TargetError::NonFatal)?;
        if vp < self.vps {
            Ok(vp)
        } else {
            Err(TargetError::NonFatal)
        }
    }

    fn paging(&self, vp: u32) -> Result<Paging, TargetError<&'static str>> {
        let v = self
            .insp
            .get_vp_registers(vp, &[x64::CR0, x64::CR3, x64::CR4, x64::EFER])
            .map_err(|_| TargetError::NonFatal)?;
        Ok(Paging {
            cr0: v[0].as_u64(),
            cr3: v[1].as_u64(),
            cr4: v[2].as_u64(),
            efer: v[3].as_u64(),
        })
    }

    /// The GPA of `gva` in VP `vp`'s address space.
    fn gpa(&self, vp: u32, gva: u64) -> Option<u64> {
        let mut found = None;
        access(
            self.insp.ram(),
            self.paging(vp).ok()?,
            gva,
            1,
            |gpa, _, _| {
                found = Some(gpa);
                true
            },
        );
        found
    }
}

impl Target for VmTarget<'_, '_> {
    type Arch = X86_64_SSE;
    type Error = &'static str;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadBase for VmTarget<'_, '_> {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        let vp = self.vp(tid)?;
        let values = self
            .insp
            .get_vp_registers(vp, &names())
            .map_err(|_| TargetError::NonFatal)?;
        *regs = regs_from(&values);
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        let vp = self.vp(tid)?;
        let values = self
            .insp
            .get_vp_registers(vp, &names())
            .map_err(|_| TargetError::NonFatal)?;
        let now = regs_from(&values);
        if !writable_only(&now, regs) {
            // A selector or x87 change the stub cannot make: gdb reports
            // the write as failed, and nothing is written.
            return Err(TargetError::NonFatal);
        }
        let writes = changes(&now, regs);
        if !writes.is_empty() {
            self.insp
                .set_vp_registers(vp, &writes)
                .map_err(|_| TargetError::NonFatal)?;
        }
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        let vp = self.vp(tid)?;
        // gdbstub reads a long `m` in buffer-sized pieces: bound the
        // packet's total (a new packet starts a new count).
        let packet = self.received.get();
        if self.read_mark.0 != packet {
            self.read_mark = (packet, 0);
        }
        let len = data.len().min(MAX_READ - self.read_mark.1);
        if len == 0 && !data.is_empty() {
            return Err(TargetError::NonFatal);
        }
        let paging = self.paging(vp)?;
        let table = &self.breakpoints;
        let ram = self.insp.ram();
        let done = access(ram, paging, start, len, |gpa, at, n| {
            let chunk = &mut data[at..at + n];
            if ram.read(gpa, chunk).is_err() {
                return false;
            }
            // Breakpoint bytes read as what they replaced.
            for (i, byte) in table.saved_in(gpa, n) {
                chunk[i] = byte;
            }
            true
        });
        self.read_mark.1 += done;
        if done == 0 && !data.is_empty() {
            return Err(TargetError::NonFatal);
        }
        Ok(done)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        let vp = self.vp(tid)?;
        let paging = self.paging(vp)?;
        let table = &mut self.breakpoints;
        let insp = self.insp;
        let done = access(insp.ram(), paging, start, data.len(), |gpa, at, n| {
            let chunk = &data[at..at + n];
            if insp.ram().write(gpa, chunk).is_err() {
                return false;
            }
            table.written(gpa, chunk, &Guest(insp));
            true
        });
        if done == data.len() {
            Ok(())
        } else {
            Err(TargetError::NonFatal)
        }
    }

    fn list_active_threads(&mut self, register: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        for vp in 0..self.vps {
            if let Some(tid) = Tid::new(vp as usize + 1) {
                register(tid);
            }
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadResume for VmTarget<'_, '_> {
    fn resume(&mut self) -> Result<(), Self::Error> {
        // A step runs its VP alone (the others stay stopped, as with
        // scheduler locking); a continue runs every VP unless locked.
        let only = (self.locked || self.step.is_some()).then_some(if self.step.is_some() {
            0
        } else {
            self.continued
        });
        self.insp.debug_resume(only, self.step);
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.step = None;
        self.continued = 0;
        self.locked = false;
        Ok(())
    }

    fn set_resume_action_continue(
        &mut self,
        tid: Tid,
        signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        if signal.is_some() {
            return Err("signals cannot be delivered to a VP");
        }
        let vp = self.vp(tid).map_err(|_| NO_SUCH_VP)?;
        self.continued |= 1u64.checked_shl(vp).unwrap_or(0);
        Ok(())
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSchedulerLocking for VmTarget<'_, '_> {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        self.locked = true;
        Ok(())
    }
}

impl MultiThreadSingleStep for VmTarget<'_, '_> {
    fn set_resume_action_step(
        &mut self,
        tid: Tid,
        signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        if signal.is_some() {
            return Err("signals cannot be delivered to a VP");
        }
        self.step = Some(self.vp(tid).map_err(|_| NO_SUCH_VP)?);
        Ok(())
    }
}

impl BreakpointsExt for VmTarget<'_, '_> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for VmTarget<'_, '_> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let Some(gpa) = self.gpa(0, addr) else {
            return Ok(false);
        };
        Ok(self.breakpoints.add(addr, gpa, &Guest(self.insp)))
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.breakpoints.remove(addr, &Guest(self.insp)))
    }
}

/// The event loop: the VM stops on its own (breakpoint, step), gdb sends
/// a byte (Ctrl-C), or the VM ends (then gdb hears that it exited).
struct EventLoop<'a, 'b>(std::marker::PhantomData<&'a Inspector<'b>>);

impl<'a, 'b> run_blocking::BlockingEventLoop for EventLoop<'a, 'b> {
    type Target = VmTarget<'a, 'b>;
    type Connection = Conn<'a, 'b>;
    type StopReason = MultiThreadStopReason<u64>;

    #[allow(clippy::type_complexity)]
    fn wait_for_stop_reason(
        target: &mut Self::Target,
        conn: &mut Self::Connection,
    ) -> Result<
        run_blocking::Event<Self::StopReason>,
        run_blocking::WaitForStopReasonError<&'static str, io::Error>,
    > {
        let tid = |vp: u32| Tid::new(vp as usize + 1);
        loop {
            match target.insp.debug_wait(Duration::from_millis(20)) {
                Some(DebugEvent::Breakpoint(vp)) => {
                    if let Some(tid) = tid(vp) {
                        return Ok(run_blocking::Event::TargetStopped(
                            MultiThreadStopReason::SwBreak(tid),
                        ));
                    }
                }
                Some(DebugEvent::Stepped(vp)) => {
                    // With the thread, so gdb stays on the VP it stepped.
                    if let Some(tid) = tid(vp) {
                        return Ok(run_blocking::Event::TargetStopped(
                            MultiThreadStopReason::SignalWithThread {
                                tid,
                                signal: Signal::SIGTRAP,
                            },
                        ));
                    }
                }
                None => {}
            }
            if !conn.vm_running() {
                return Ok(run_blocking::Event::TargetStopped(
                    MultiThreadStopReason::Exited(0),
                ));
            }
            if conn
                .peek()
                .map_err(run_blocking::WaitForStopReasonError::Connection)?
                .is_some()
            {
                let byte = conn
                    .read()
                    .map_err(run_blocking::WaitForStopReasonError::Connection)?;
                return Ok(run_blocking::Event::IncomingData(byte));
            }
        }
    }

    fn on_interrupt(target: &mut Self::Target) -> Result<Option<Self::StopReason>, &'static str> {
        target.insp.debug_stop();
        // Reported on VP 0, so gdb knows which thread it is on.
        Ok(Some(match Tid::new(1) {
            Some(tid) => MultiThreadStopReason::SignalWithThread {
                tid,
                signal: Signal::SIGINT,
            },
            None => MultiThreadStopReason::Signal(Signal::SIGINT),
        }))
    }
}

/// How [`serve`] ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// The VM ended: on its own, by the watchdog, or stopped because
    /// `stop()` asked for it.
    VmEnded,
    /// gdb's `kill` stopped the VM ([`Inspector::stop`]).
    Killed,
    /// The listening socket could not be polled; nothing was served.
    Unavailable,
}

/// Serves gdb sessions on `listener` until the VM ends: one at a time;
/// the VM stops while one is attached and runs on after a detach. Once
/// `stop()` returns true the VM is stopped ([`Inspector::stop`]), within
/// about a [`SLICE`] whatever the gdb attached does; every `int3` of the
/// session is gone from guest memory when it ends.
pub fn serve(
    listener: &Listener,
    insp: &Inspector<'_>,
    stop: &(dyn Fn() -> bool + Sync),
) -> Served {
    if listener.set_nonblocking().is_err() {
        tracing::warn!("gdb: cannot poll the listening socket; not served");
        return Served::Unavailable;
    }
    while insp.is_running() {
        if stop() {
            insp.stop();
            break;
        }
        let stream = match listener.accept() {
            Ok(stream) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                tracing::warn!("gdb: {e}");
                continue;
            }
            Err(e) => {
                tracing::debug!("gdb accept: {e}");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        insp.debug_stop();
        let received = Rc::new(Cell::new(0));
        let conn = Conn::new(stream, insp, stop, Rc::clone(&received));
        let mut target = VmTarget {
            insp,
            vps: insp.vp_count(),
            breakpoints: BreakpointTable::default(),
            step: None,
            continued: 0,
            locked: false,
            received,
            read_mark: (0, 0),
        };
        let end = GdbStub::new(conn).run_blocking::<EventLoop<'_, '_>>(&mut target);
        // Whatever happened, no int3 of ours stays in the guest.
        target.breakpoints.clear(&Guest(insp));
        match end {
            Ok(DisconnectReason::Kill) => {
                insp.stop();
                return Served::Killed;
            }
            Ok(_) => {}
            Err(e) if insp.is_running() => tracing::warn!("gdb session ended: {e}"),
            Err(e) => tracing::debug!("gdb session ended with the VM: {e}"),
        }
        insp.debug_resume(None, None);
    }
    Served::VmEnded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4-level table set in a map: PML4 at 0x1000 → PDPT 0x2000 → PD
    /// 0x3000 (2 MiB page at 0x20_0000 for VA 0x40_0000) → PT 0x4000 (4 KiB
    /// page 0x9000 for VA 0x60_1000); PDPT entry 1 is a 1 GiB page at 0.
    fn tables() -> impl Fn(u64) -> Option<u64> {
        let mut m = std::collections::HashMap::new();
        m.insert(0x1000, 0x2000 | PRESENT);
        m.insert(0x2000, 0x3000 | PRESENT);
        m.insert(0x2008, LARGE | PRESENT);
        m.insert(0x3000 + 8 * 2, 0x20_0000 | LARGE | PRESENT);
        m.insert(0x3000 + 8 * 3, 0x4000 | PRESENT);
        m.insert(0x4008, 0x9000 | PRESENT);
        move |a| Some(*m.get(&a).unwrap_or(&0))
    }

    #[test]
    fn long_mode_walks_4k_2m_and_1g_pages() {
        let p = Paging {
            cr0: CR0_PG | 1,
            cr3: 0x1000,
            cr4: CR4_PAE,
            efer: EFER_LMA,
        };
        assert_eq!(translate(p, 0x40_0123, tables()), Some(0x20_0123));
        assert_eq!(translate(p, 0x60_1FFF, tables()), Some(0x9FFF));
        assert_eq!(
            translate(p, 0x4000_1234, tables()),
            Some(0x1234),
            "1 GiB page"
        );
        assert_eq!(translate(p, 0x60_2000, tables()), None, "not present");
        let real = Paging::default();
        assert_eq!(
            translate(real, 0x1234, tables()),
            Some(0x1234),
            "paging off"
        );
        let pae32 = Paging { efer: 0, ..p };
        assert_eq!(translate(pae32, 0x1234, tables()), None);
    }

    #[test]
    fn non_canonical_addresses_do_not_alias_canonical_ones() {
        let p = Paging {
            cr0: CR0_PG | 1,
            cr3: 0x1000,
            cr4: CR4_PAE,
            efer: EFER_LMA,
        };
        assert_eq!(translate(p, 0x40_0123, tables()), Some(0x20_0123));
        // Bits 47:0 as above, the high bits not all equal to bit 47.
        for va in [
            0x8000_0000_0040_0123,
            0x0001_0000_0040_0123,
            0x0000_8000_0040_0123,
            0xFFFF_0000_0040_0123,
        ] {
            assert!(!canonical(va), "{va:#x}");
            assert_eq!(translate(p, va, tables()), None, "{va:#x}");
            assert_eq!(translate(Paging::default(), va, tables()), None, "{va:#x}");
        }
        for va in [0, 0x7FFF_FFFF_FFFF, 0xFFFF_8000_0000_0000, u64::MAX] {
            assert!(canonical(va), "{va:#x}");
        }
    }

    /// RAM of 16 bytes at GPA 0x100 and the VMM's marked GPAs.
    #[derive(Default)]
    struct FakeRam {
        bytes: std::cell::RefCell<[u8; 16]>,
        marked: std::cell::RefCell<std::collections::BTreeSet<u64>>,
    }

    impl Memory for FakeRam {
        fn byte(&self, gpa: u64) -> Option<u8> {
            let i = usize::try_from(gpa.checked_sub(0x100)?).ok()?;
            self.bytes.borrow().get(i).copied()
        }
        fn set_byte(&self, gpa: u64, byte: u8) -> bool {
            let Some(i) = gpa.checked_sub(0x100).and_then(|i| usize::try_from(i).ok()) else {
                return false;
            };
            match self.bytes.borrow_mut().get_mut(i) {
                Some(b) => {
                    *b = byte;
                    true
                }
                None => false,
            }
        }
        fn mark(&self, gpa: u64, on: bool) {
            let mut m = self.marked.borrow_mut();
            if on {
                m.insert(gpa);
            } else {
                m.remove(&gpa);
            }
        }
    }

    fn ram() -> FakeRam {
        let ram = FakeRam::default();
        for (i, b) in ram.bytes.borrow_mut().iter_mut().enumerate() {
            *b = 0x90 + i as u8;
        }
        ram
    }

    #[test]
    fn two_aliases_of_one_byte_save_it_once_and_restore_it_last() {
        // VA A and its alias B both map GPA 0x104 (original byte 0x94).
        let (a, b, gpa) = (0x20_0104, 0x80_0020_0104, 0x104);
        for remove_a_first in [true, false] {
            let mem = ram();
            let mut t = BreakpointTable::default();
            assert!(t.add(a, gpa, &mem));
            assert!(t.add(b, gpa, &mem));
            assert!(t.add(b, gpa, &mem), "again: no change");
            assert_eq!(mem.byte(gpa), Some(INT3));
            assert_eq!(t.saved_in(gpa, 1).collect::<Vec<_>>(), [(0, 0x94)]);
            assert!(mem.marked.borrow().contains(&gpa));
            let (first, second) = if remove_a_first { (a, b) } else { (b, a) };
            assert!(t.remove(first, &mem));
            assert_eq!(mem.byte(gpa), Some(INT3), "the other alias still holds it");
            assert!(mem.marked.borrow().contains(&gpa));
            assert!(!t.remove(first, &mem), "already gone");
            assert!(t.remove(second, &mem));
            assert_eq!(mem.byte(gpa), Some(0x94));
            assert!(mem.marked.borrow().is_empty());
        }
        // Cleared at the session's end, in whatever order.
        let mem = ram();
        let mut t = BreakpointTable::default();
        for (va, gpa) in [(a, gpa), (b, gpa), (0x20_0105, 0x105)] {
            assert!(t.add(va, gpa, &mem));
        }
        t.clear(&mem);
        assert_eq!(mem.byte(0x104), Some(0x94));
        assert_eq!(mem.byte(0x105), Some(0x95));
        assert!(mem.marked.borrow().is_empty());
        assert!(t.by_va.is_empty() && t.by_gpa.is_empty());
    }

    #[test]
    fn breakpoint_writes_reads_remaps_and_limits() {
        let mem = ram();
        let mut t = BreakpointTable::default();
        assert!(!t.add(0x1000, 0x200, &mem), "not RAM");
        assert!(mem.marked.borrow().is_empty());
        assert!(t.add(0x1000, 0x102, &mem));
        // A memory write over the breakpoint changes the saved byte.
        t.written(0x101, &[1, 2, 3], &mem);
        assert_eq!(mem.byte(0x102), Some(INT3));
        assert_eq!(t.saved_in(0x100, 16).collect::<Vec<_>>(), [(2, 2)]);
        // The address now maps elsewhere: the old byte comes back.
        assert!(t.add(0x1000, 0x103, &mem));
        assert_eq!(mem.byte(0x102), Some(2));
        assert_eq!(mem.byte(0x103), Some(INT3));
        t.clear(&mem);
        assert_eq!(mem.byte(0x103), Some(0x93));
        // At most MAX_BREAKPOINTS addresses, aliases included.
        for va in 0..MAX_BREAKPOINTS as u64 {
            assert!(t.add(va, 0x100 + va % 16, &mem));
        }
        assert!(!t.add(u64::MAX, 0x100, &mem));
        t.clear(&mem);
        assert_eq!(mem.byte(0x100), Some(0x90));
        assert!(mem.marked.borrow().is_empty());
    }

    #[test]
    fn proc_net_tcp_rows_parse() {
        // Real rows (x86, little-endian): 127.0.0.1:40000 -> 127.0.0.1:1234
        // of uid 1000; the listener; an IPv4-mapped IPv6 peer of uid 65534.
        let v4 = "   1: 0100007F:9C40 0100007F:04D2 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 30 10 -1";
        let row = tcp_row(v4).expect("parses");
        assert_eq!(row.local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(row.remote, "127.0.0.1:1234".parse().unwrap());
        assert_eq!(row.uid, 1000);
        let listen = "   0: 0100007F:04D2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4241 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            tcp_row(listen).map(|r| (r.remote, r.uid)),
            Some(("0.0.0.0:0".parse().unwrap(), 0))
        );
        let v6 = "   2: 0000000000000000FFFF00000100007F:A000 0000000000000000FFFF00000100007F:04D2 01 00000000:00000000 00:00000000 00000000 65534        0 4343 1 0000000000000000 20 4 30 10 -1";
        let row = tcp_row(v6).expect("parses");
        assert_eq!(row.local, "127.0.0.1:40960".parse().unwrap(), "v4-mapped");
        assert_eq!(row.uid, 65534);
        let loop6 = "   3: 00000000000000000000000001000000:A000 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  7        0 1 1";
        assert_eq!(
            tcp_row(loop6).map(|r| r.local),
            Some("[::1]:40960".parse().unwrap())
        );
        // The header and damaged rows are not rows.
        for bad in [
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
            "",
            "   1: 0100007F:9C40",
            "   1: 0100007F:9C40 0100007F:04D2 01 00000000:00000000 00:00000000 00000000",
            "   1: 0100007F:9C40 0100007F:04D2 01 00000000:00000000 00:00000000 00000000 x",
            "   1: 100007F:9C40 0100007F:04D2 01 00000000:00000000 00:00000000 00000000 0",
            "   1: +100007F:9C40 0100007F:04D2 01 00000000:00000000 00:00000000 00000000 0",
            "   1: 0100007F:+C40 0100007F:04D2 01 00000000:00000000 00:00000000 00000000 0",
            "   1: 0100007F9C40 0100007F:04D2 01 00000000:00000000 00:00000000 00000000 0",
            "   1: 0000000000000000FFFF0000010000é:A000 0100007F:04D2 01 0:0 0:0 0 0",
        ] {
            assert_eq!(tcp_row(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn our_own_loopback_connection_is_found_with_our_uid() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        // SAFETY: geteuid has no memory effects.
        let ours = unsafe { libc::geteuid() };
        assert_eq!(peer_uid(server.local_addr().unwrap(), peer), Some(ours));
        // A peer that is not connected to us is not found.
        let elsewhere: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(peer_uid(elsewhere, peer), None);
    }

    #[test]
    fn registers_round_trip_and_only_changes_are_written() {
        let mut values: Vec<HvRegisterValue> = (0..names().len())
            .map(|i| HvRegisterValue::from(0x100 + i as u64))
            .collect();
        values[18] = HvRegisterValue::from(SegmentRegister {
            selector: 8,
            ..Default::default()
        });
        let r = regs_from(&values);
        assert_eq!(r.regs[0], 0x100, "rax");
        assert_eq!(r.regs[12], 0x10C, "r12");
        assert_eq!(r.rip, 0x110);
        assert_eq!(r.segments.cs, 8);
        assert_eq!(r.xmm[15], 0x100 + 34 + 15);
        let mut new = r.clone();
        new.regs[12] = 5;
        new.xmm[3] = 7;
        assert!(writable_only(&r, &new));
        let w = changes(&r, &new);
        let got: Vec<(HvRegisterName, u128)> =
            w.iter().map(|e| (e.name, e.value.as_u128())).collect();
        assert_eq!(got, [(x64::R12, 5), (x64::XMM3, 7)]);
        // A selector or x87 change is refused as a whole.
        let mut seg = new.clone();
        seg.segments.ds = 0x30;
        assert!(!writable_only(&r, &seg));
        let mut x87 = new;
        x87.st[0][0] ^= 1;
        assert!(!writable_only(&r, &x87));
    }
}
