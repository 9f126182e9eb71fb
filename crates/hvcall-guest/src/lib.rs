//! Guest-side Hyper-V library (`no_std`): discovery, the hypercall page and
//! HvCallGetVpRegisters.
//!
//! The usual sequence (TLFS digest §4.8):
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
//!
//! Nothing here depends on the hvcall VMM: the library works on any
//! hypervisor that implements the TLFS interface. The logic that does not
//! touch the CPU (batching, the rep loop, the fast register-file layout) is
//! written against the [`Transport`] trait so it is unit-tested on the host.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod discovery;
pub mod hypercall_page;
pub mod registers;
pub mod rep;

pub use discovery::{discover, DiscoveryError, HvFeatures};
pub use hypercall_page::{
    enable_hypercall_page, set_guest_os_id, FastRegisters, HypercallPage, PageError,
};
pub use registers::{get_vp_registers, get_vp_registers_fast, GetError, Hv, Scratch, Transport};
pub use rep::{run_rep_call, RepError};
