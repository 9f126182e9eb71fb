//! Where a VM's output goes ([`Console`]): guest console bytes and the
//! hypercall trace.
//!
//! vCPU threads never block on the process's stdout or stderr: their bytes
//! go into a bounded queue that one writer thread per stream empties. If the
//! stream stops taking bytes (a full pipe nobody reads), the queue fills
//! and later bytes are dropped (counted, and reported once), so the guest
//! and the watchdog keep running. At the end of a run the queue gets a
//! bounded time to drain ([`Console::flush`]).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::seccomp::{self, SeccompMode, ThreadRole};

/// Most bytes a [`Console::Buffer`] keeps; later bytes are dropped.
pub const CONSOLE_BUFFER_LIMIT: usize = 16 << 20;
/// Most bytes waiting for stdout or stderr; later bytes are dropped.
pub const STREAM_QUEUE_LIMIT: usize = 1 << 20;
/// How long the writer thread lets bytes gather after each write.
const COALESCE: Duration = Duration::from_millis(2);
/// How long [`Console::flush`] waits for a stream to take what is queued.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

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

    /// Starts this console's writer thread if it has none yet, under
    /// the console filter of `mode` (the first start decides: the writers
    /// live as long as the process). A VM starts its consoles before its
    /// vCPU threads, which may not start threads.
    pub(crate) fn start(&self, mode: SeccompMode) {
        match self {
            Console::Stdout => drop(Stream::stdout_with(mode)),
            Console::Stderr => drop(Stream::stderr_with(mode)),
            Console::Buffer(_) => {}
        }
    }

    /// Writes bytes without blocking: a stream's queue or the buffer keeps
    /// what fits (see the module doc); errors are ignored.
    pub(crate) fn write(&self, bytes: &[u8]) {
        match self {
            Console::Stdout => Stream::stdout().push(bytes),
            Console::Stderr => Stream::stderr().push(bytes),
            Console::Buffer(b) => {
                let mut b = lock(b);
                let room = CONSOLE_BUFFER_LIMIT.saturating_sub(b.len());
                b.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
        }
    }

    /// Waits at most [`FLUSH_TIMEOUT`] for a stream to take every queued
    /// byte (a buffer needs nothing).
    pub(crate) fn flush(&self) {
        match self {
            Console::Stdout => Stream::stdout().drain(FLUSH_TIMEOUT),
            Console::Stderr => Stream::stderr().drain(FLUSH_TIMEOUT),
            Console::Buffer(_) => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The queue in front of one process stream.
#[derive(Default)]
struct Queue {
    bytes: VecDeque<u8>,
    /// The writer holds bytes it took but has not written yet.
    writing: bool,
    dropped: u64,
}

/// One process stream and the thread that writes it.
struct Stream {
    queue: Mutex<Queue>,
    /// Signalled when bytes arrive (for the writer) and when the queue
    /// empties (for [`Stream::drain`]).
    changed: Condvar,
    name: &'static str,
}

impl Stream {
    /// The stdout stream (started unfiltered if no VM started it).
    fn stdout() -> &'static Stream {
        Self::stdout_with(SeccompMode::Off)
    }

    fn stdout_with(mode: SeccompMode) -> &'static Stream {
        static STDOUT: OnceLock<&'static Stream> = OnceLock::new();
        STDOUT.get_or_init(|| Stream::start("stdout", mode, || Box::new(std::io::stdout())))
    }

    /// The stderr stream (started unfiltered if no VM started it).
    fn stderr() -> &'static Stream {
        Self::stderr_with(SeccompMode::Off)
    }

    fn stderr_with(mode: SeccompMode) -> &'static Stream {
        static STDERR: OnceLock<&'static Stream> = OnceLock::new();
        STDERR.get_or_init(|| Stream::start("stderr", mode, || Box::new(std::io::stderr())))
    }

    /// A stream whose writer thread writes to `open()`. The stream lives
    /// as long as the process (one per process stream).
    fn start(
        name: &'static str,
        mode: SeccompMode,
        open: fn() -> Box<dyn Write + Send>,
    ) -> &'static Stream {
        let stream: &'static Stream = Box::leak(Box::new(Stream {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            name,
        }));
        let spawned = std::thread::Builder::new()
            .name(format!("hvcall-{name}"))
            .spawn(move || {
                if let Err(e) = seccomp::install(ThreadRole::Console, mode) {
                    // Output is not worth an unfiltered thread.
                    tracing::error!(%e, name, "console writer not started");
                    return;
                }
                stream.write_forever(open());
            });
        if let Err(e) = spawned {
            // Without a writer the queue fills and bytes are dropped.
            tracing::warn!(%e, name, "no writer thread: output will be dropped");
        }
        stream
    }

    fn push(&self, bytes: &[u8]) {
        let mut q = lock(&self.queue);
        let room = STREAM_QUEUE_LIMIT.saturating_sub(q.bytes.len());
        let taken = bytes.len().min(room);
        q.bytes.extend(&bytes[..taken]);
        let dropped = (bytes.len() - taken) as u64;
        if dropped > 0 {
            if q.dropped == 0 {
                tracing::warn!(
                    stream = self.name,
                    "the stream does not keep up: dropping output"
                );
            }
            q.dropped += dropped;
        }
        self.changed.notify_all();
    }

    fn write_forever(&self, mut out: Box<dyn Write + Send>) {
        loop {
            let chunk: Vec<u8> = {
                let mut q = lock(&self.queue);
                while q.bytes.is_empty() {
                    q = self.changed.wait(q).unwrap_or_else(|e| e.into_inner());
                }
                q.writing = true;
                q.bytes.drain(..).collect()
            };
            // Errors (closed pipe, full disk) drop the bytes.
            let _ = out.write_all(&chunk).and_then(|()| out.flush());
            lock(&self.queue).writing = false;
            self.changed.notify_all();
            // Let bytes gather: a guest printing byte by byte would
            // otherwise wake this thread (and take a core from the vCPUs)
            // once per byte.
            std::thread::sleep(COALESCE);
        }
    }

    fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut q = lock(&self.queue);
        while !q.bytes.is_empty() || q.writing {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            q = self
                .changed
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_keeps_at_most_its_limit() {
        let (console, buffer) = Console::buffer();
        console.write(b"abc");
        console.flush();
        assert_eq!(&*lock(&buffer), b"abc");
        console.write(&vec![0u8; CONSOLE_BUFFER_LIMIT]);
        assert_eq!(lock(&buffer).len(), CONSOLE_BUFFER_LIMIT);
    }

    /// A writer that never returns: the queue fills, pushes keep returning
    /// at once, and a drain gives up after its timeout.
    #[test]
    fn a_stuck_stream_never_blocks_the_writer_of_bytes() {
        struct Stuck;
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                loop {
                    std::thread::park();
                }
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let stream = Stream::start("test", SeccompMode::Off, || Box::new(Stuck));
        for _ in 0..3 {
            stream.push(&vec![b'x'; STREAM_QUEUE_LIMIT]);
        }
        stream.drain(Duration::from_millis(50));
        let q = lock(&stream.queue);
        assert!(
            q.dropped >= STREAM_QUEUE_LIMIT as u64,
            "dropped {}",
            q.dropped
        );
        assert!(q.bytes.len() <= STREAM_QUEUE_LIMIT);
    }
}
