//! The hypercall page: an overlay at the GPA the guest picks (docs/contract.md
//! §6).
//!
//! KVM here never passes VMCALL to user space, so the page holds hvcall's
//! own code: `out 0xE8, al` (`E6 E8`), which exits to the VMM on the
//! hypercall port [`HYPERCALL_PORT`] without changing any register, then
//! `ret` (`C3`). The same bytes work for 64-bit and 32-bit callers. The
//! rest of the page is `int3`.
//!
//! Only the page's own `out` starts a hypercall ([`CallSite`]): an exit on
//! the port counts when it wrote one byte and its RIP (past the `out`)
//! translates to the page's GPA + 2. Any other write to the port (`out dx,
//! al`, `out 0xE8, ax`, `outsb`, the same bytes copied elsewhere, or before
//! the page is enabled) is an ordinary write to an unused port: ignored.
//!
//! The page is a read-only KVM memory slot laid over the RAM page, so the
//! guest can read and execute it, and its writes come back as MMIO exits
//! that the VMM drops. [`slot_layout`] computes the memory slots for RAM
//! with or without the overlay; [`Memslots`] applies them (only while no
//! vCPU is inside `KVM_RUN`; the rendezvous takes care of that).

use hvcall_abi::PAGE_SIZE;
use kvm_bindings::{kvm_userspace_memory_region, KVM_MEM_READONLY};
use kvm_ioctls::VmFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::memory::{GuestRam, RamError};

/// The I/O port the hypercall page writes to (only the page's own `out`
/// is a hypercall, see [`CallSite`]).
pub const HYPERCALL_PORT: u16 = 0xE8;
/// Length of the exiting instruction (`out imm8, al`, at offset 0 of the
/// page): at the exit RIP points past it, so the hypercall instruction is
/// at RIP − 2.
pub const HYPERCALL_INSTRUCTION_LEN: u64 = 2;

const EFER_LMA: u64 = 1 << 10;

/// Recognises the hypercall page's own instruction at a port exit of one
/// VP. Guests reach the page through their own mappings, so the exit RIP is
/// translated to a GPA; the last translation is kept (keyed by CR3 and the
/// virtual page), so a guest calling from the same mapping costs no ioctl
/// after its first call. A guest that remaps that virtual page without
/// changing CR3 can only misreport its own calls.
#[derive(Debug, Default)]
pub struct CallSite {
    /// (CR3, virtual page, guest-physical page) of the last translation.
    cached: Option<(u64, u64, u64)>,
}

impl CallSite {
    /// Whether the port exit `vcpu` just took (`len` bytes written to
    /// [`HYPERCALL_PORT`]) is the `out` at offset 0 of the hypercall page at
    /// `overlay` (its GPA, if enabled).
    pub fn is_page_instruction(
        &mut self,
        vcpu: &kvm_ioctls::VcpuFd,
        len: usize,
        overlay: Option<u64>,
    ) -> bool {
        let Some(page) = overlay else {
            return false;
        };
        if len != 1 {
            return false;
        }
        let sync = vcpu.sync_regs();
        let (regs, sregs) = (&sync.regs, &sync.sregs);
        // Outside long mode RIP is relative to CS (32-bit offsets).
        let linear = if sregs.efer & EFER_LMA != 0 && sregs.cs.l != 0 {
            regs.rip
        } else {
            sregs.cs.base.wrapping_add(regs.rip) & 0xFFFF_FFFF
        };
        let virtual_page = linear & !(PAGE_SIZE - 1);
        let physical_page = match self.cached {
            Some((cr3, v, p)) if cr3 == sregs.cr3 && v == virtual_page => p,
            _ => match vcpu.translate_gva(virtual_page) {
                Ok(t) if t.valid != 0 => {
                    let p = t.physical_address & !(PAGE_SIZE - 1);
                    self.cached = Some((sregs.cr3, virtual_page, p));
                    p
                }
                _ => return false,
            },
        };
        physical_page == page && linear & (PAGE_SIZE - 1) == HYPERCALL_INSTRUCTION_LEN
    }
}

/// The page contents.
pub fn page_contents() -> [u8; PAGE_SIZE as usize] {
    let mut page = [0xCC; PAGE_SIZE as usize];
    page[..3].copy_from_slice(&[0xE6, HYPERCALL_PORT as u8, 0xC3]);
    page
}

/// Errors changing memory slots.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// Allocating the overlay page.
    #[error("allocating the hypercall page: {0}")]
    Alloc(#[from] vm_memory::mmap::FromRangesError),
    /// A guest address without host memory.
    #[error(transparent)]
    Ram(#[from] RamError),
    /// KVM refused a slot.
    #[error("KVM_SET_USER_MEMORY_REGION slot {slot} at {gpa:#x}+{size:#x}: {source}")]
    Kvm {
        /// Slot number.
        slot: u32,
        /// Guest address.
        gpa: u64,
        /// Size.
        size: u64,
        /// The error.
        source: kvm_ioctls::Error,
    },
}

/// One memory slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// KVM slot number.
    pub slot: u32,
    /// First guest-physical address.
    pub gpa: u64,
    /// Size in bytes.
    pub size: u64,
    /// Whether this is the read-only overlay page.
    pub overlay: bool,
}

/// The slots for `ram_size` bytes of RAM with the overlay at `page` (page
/// aligned, inside RAM): RAM below the page (slot 0), the page (slot 2,
/// read-only) and RAM above it (slot 1). Empty pieces are left out.
pub fn slot_layout(ram_size: u64, page: Option<u64>) -> Vec<Slot> {
    match page {
        None => vec![Slot {
            slot: 0,
            gpa: 0,
            size: ram_size,
            overlay: false,
        }],
        Some(p) => [
            Slot {
                slot: 0,
                gpa: 0,
                size: p,
                overlay: false,
            },
            Slot {
                slot: 2,
                gpa: p,
                size: PAGE_SIZE,
                overlay: true,
            },
            Slot {
                slot: 1,
                gpa: p + PAGE_SIZE,
                size: ram_size - p - PAGE_SIZE,
                overlay: false,
            },
        ]
        .into_iter()
        .filter(|s| s.size != 0)
        .collect(),
    }
}

/// The VM's memory slots and the host page holding the overlay code.
#[derive(Debug)]
pub struct Memslots {
    overlay_page: GuestMemoryMmap,
    current: Vec<Slot>,
    overlay: Option<u64>,
}

impl Memslots {
    /// Registers all of `ram` as slot 0.
    pub fn new(vm: &VmFd, ram: &GuestRam) -> Result<Self, SlotError> {
        let overlay_page = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), PAGE_SIZE as usize)])?;
        overlay_page
            .write_slice(&page_contents(), GuestAddress(0))
            .map_err(|_| RamError::OutOfRange {
                gpa: 0,
                len: PAGE_SIZE,
            })?;
        let mut slots = Self {
            overlay_page,
            current: Vec::new(),
            overlay: None,
        };
        slots.set_overlay(vm, ram, None)?;
        Ok(slots)
    }

    /// The overlay page's GPA, if mapped.
    pub fn overlay(&self) -> Option<u64> {
        self.overlay
    }

    /// Maps the overlay at `page` (or removes it). Every vCPU must be
    /// outside `KVM_RUN`.
    pub fn set_overlay(
        &mut self,
        vm: &VmFd,
        ram: &GuestRam,
        page: Option<u64>,
    ) -> Result<(), SlotError> {
        if page == self.overlay && !self.current.is_empty() {
            return Ok(());
        }
        let layout = slot_layout(ram.size(), page);
        for old in std::mem::take(&mut self.current) {
            self.set(vm, old, 0, 0)?;
        }
        for new in &layout {
            let host = if new.overlay {
                self.overlay_page
                    .get_host_address(GuestAddress(0))
                    .map_err(|_| RamError::OutOfRange {
                        gpa: new.gpa,
                        len: PAGE_SIZE,
                    })? as u64
            } else {
                ram.host_address(new.gpa)?
            };
            self.set(vm, *new, new.size, host)?;
        }
        tracing::debug!(?page, slots = layout.len(), "memory slots changed");
        self.current = layout;
        self.overlay = page;
        Ok(())
    }

    fn set(&self, vm: &VmFd, slot: Slot, size: u64, host: u64) -> Result<(), SlotError> {
        let region = kvm_userspace_memory_region {
            slot: slot.slot,
            flags: if slot.overlay { KVM_MEM_READONLY } else { 0 },
            guest_phys_addr: slot.gpa,
            memory_size: size,
            userspace_addr: host,
        };
        // SAFETY: `host` is the start of `size` bytes of host memory owned
        // by guest RAM or by `self.overlay_page`; both live until the VM
        // (and so the slot) is dropped: `Vm` keeps them in fields declared
        // after the `VmFd`. Size 0 deletes the slot.
        unsafe { vm.set_user_memory_region(region) }.map_err(|source| SlotError::Kvm {
            slot: slot.slot,
            gpa: slot.gpa,
            size,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_out_then_ret() {
        let p = page_contents();
        assert_eq!(&p[..3], &[0xE6, 0xE8, 0xC3]);
    }

    #[test]
    fn layouts_cover_ram_once() {
        let ram = 4 << 20;
        for page in [None, Some(0), Some(0x10_0000), Some(ram - PAGE_SIZE)] {
            let l = slot_layout(ram, page);
            let total: u64 = l.iter().map(|s| s.size).sum();
            assert_eq!(total, ram, "{page:?}");
            let mut sorted = l.clone();
            sorted.sort_by_key(|s| s.gpa);
            let mut next = 0;
            for s in &sorted {
                assert_eq!(s.gpa, next);
                next += s.size;
                assert_eq!(s.overlay, Some(s.gpa) == page);
            }
        }
    }
}
