//! Guest-side Hyper-V library (`no_std`): discovery, the hypercall page,
//! HvCallGetVpRegisters (0x0050) and HvCallSetVpRegisters (0x0051), as a
//! guest kernel or firmware running on Hyper-V (or on hvcall's VMM) uses
//! them.
//!
//! What the hypervisor does with each call (the order of checks, the
//! statuses, continuation of rep calls, the XMM fast forms) is the hvcall
//! contract, `docs/contract.md` in the hvcall source tree (shipped in this
//! crate's package as `contract.md`); this
//! library relies only on what the TLFS promises, so it also works on real
//! Hyper-V.
//!
//! The usual sequence on x64 (check CPUID, write a guest OS ID, enable the
//! hypercall page, then call):
//!
//! 1. [`discovery::discover`] checks CPUID for a Microsoft hypervisor and
//!    returns its privileges and features.
//! 2. [`hypercall_page::set_guest_os_id`] writes a non-zero guest OS ID.
//! 3. [`hypercall_page::enable_hypercall_page`] turns the hypercall page on at
//!    a page the caller provides and returns a [`HypercallPage`].
//! 4. [`Hv`] pairs that page with a page-aligned [`Scratch`] and reads
//!    registers with [`Hv::get_vp_registers`] (memory form, batched by page,
//!    with the continuation loop) or [`Hv::get_vp_registers_fast`] (XMM fast
//!    form, up to four names).
//! 5. The same [`Hv`] writes registers with [`Hv::set_vp_registers`]
//!    (memory form, 127 elements per call) or [`Hv::set_vp_registers_fast`]
//!    (XMM fast form, up to three elements); each element is a
//!    [`SetVpRegistersElement`](hvcall_abi::SetVpRegistersElement).
//!
//! ```no_run
//! # #[cfg(target_arch = "x86_64")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hvcall_abi::{name::x64, partition_id, vp_index};
//! use hvcall_abi::{HvInputVtl, HvRegisterValue, SetVpRegistersElement};
//! use hvcall_guest::{discover, enable_hypercall_page, set_guest_os_id, Hv, Scratch};
//!
//! // Runs at CPL 0 with guest RAM identity-mapped (virtual = physical).
//! const PAGE_GPA: u64 = 0x5000; // a free page for the hypercall page
//! let features = discover()?;
//! // SAFETY: CPL 0 under a "Hv#1" hypervisor; the page at PAGE_GPA is unused.
//! let page = unsafe {
//!     set_guest_os_id((1 << 63) | 1);
//!     enable_hypercall_page(PAGE_GPA, PAGE_GPA as *const u8)?
//! };
//! let mut scratch = Scratch::new();
//! let scratch_gpa = &scratch as *const Scratch as u64;
//! // SAFETY: CPL 0, an enabled page, and the scratch area's GPA.
//! let mut hv = unsafe { Hv::new(page, features, &mut scratch, scratch_gpa) };
//!
//! let names = [x64::RIP, x64::RSP, x64::CR3];
//! let mut values = [HvRegisterValue::default(); 3];
//! hv.get_vp_registers(partition_id::SELF, vp_index::SELF, HvInputVtl::new(), &names, &mut values)?;
//!
//! let rbx = SetVpRegistersElement::new(x64::RBX, HvRegisterValue::from(7u64));
//! hv.set_vp_registers(partition_id::SELF, vp_index::SELF, HvInputVtl::new(), &[rbx])?;
//! # Ok(())
//! # }
//! # #[cfg(not(target_arch = "x86_64"))]
//! # fn main() {}
//! ```
//!
//! The CPU-touching parts ([`discover`], the MSR functions, the calls
//! through the page and [`Hv`]) exist on x86-64 only; the rest (batching,
//! the rep loop, the fast register-file layout, the ABI types) builds on
//! any target. Nothing here depends on the hvcall VMM or dispatcher. The
//! logic that does not touch the CPU is written against the [`Transport`]
//! trait, so it is unit-tested on the host and can drive another transport
//! (see [`get_vp_registers`] and [`set_vp_registers`]).
#![no_std]

#[cfg(test)]
extern crate std;

pub mod discovery;
pub mod hypercall_page;
pub mod registers;
pub mod rep;
pub mod set_registers;

#[cfg(target_arch = "x86_64")]
pub use discovery::discover;
pub use discovery::{DiscoveryError, HvFeatures};
#[cfg(target_arch = "x86_64")]
pub use hypercall_page::{enable_hypercall_page, set_guest_os_id};
pub use hypercall_page::{FastRegisters, HypercallPage, PageError};
#[cfg(target_arch = "x86_64")]
pub use registers::Hv;
pub use registers::{get_vp_registers, get_vp_registers_fast, GetError, Scratch, Transport};
pub use rep::{run_rep_call, RepError};
pub use set_registers::{set_vp_registers, set_vp_registers_fast, SetError};
