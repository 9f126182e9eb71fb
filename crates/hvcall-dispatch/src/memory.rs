//! Fallible access to the caller's guest memory.

/// Why a guest memory access failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// Some byte of the range is not ordinary guest RAM.
    #[error("guest physical range {gpa:#x}+{len:#x} is not guest RAM")]
    NotRam {
        /// Start of the range.
        gpa: u64,
        /// Length of the range.
        len: u64,
    },
}

/// The caller partition's guest-physical memory, as hypercalls may use it.
/// (Named apart from `vm_memory::GuestMemory`, which a VMM typically
/// implements this trait with.)
///
/// Implementations must never touch host memory outside guest RAM whatever
/// the GPA and length (including ranges that wrap around 2^64).
pub trait PartitionMemory {
    /// Whether every byte of `[gpa, gpa + len)` is ordinary guest RAM that a
    /// hypercall may read and write: not unbacked, not MMIO, not beyond the
    /// GPA space, and not an overlay page such as the hypercall page.
    fn is_ram(&self, gpa: u64, len: u64) -> bool;
    /// Read `buf.len()` bytes at `gpa`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError>;
    /// Write `data` at `gpa`.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError>;

    /// Optional fast path for an output list: `[gpa, gpa + len)` as one
    /// mutable slice of exactly `len` bytes, if it is all RAM (as
    /// [`PartitionMemory::is_ram`] means it) and this memory can lend it
    /// for the rest of the call's entry. The dispatcher then checks the
    /// bounds once per entry instead of once per element. Lend only memory
    /// nothing else writes meanwhile (a VMM's guest RAM, which other vCPUs
    /// may write at any time, should keep the default).
    ///
    /// The default, `None`, makes the dispatcher write element by element
    /// with [`PartitionMemory::write`].
    fn lend_mut(&mut self, gpa: u64, len: u64) -> Option<&mut [u8]> {
        let _ = (gpa, len);
        None
    }
}
