//! The Hyper-V surface a guest discovers and programs (contract §6):
//! the CPUID leaves ([`cpuid`]), the synthetic MSRs and their per-VP state
//! ([`msr`]), the hypercall page overlay and the memory slots around it
//! ([`hypercall_page`]), the synthetic state the VPs share and the one
//! way to write a synthetic MSR (`synthetic`), and the trace of the
//! hypercalls made through the page ([`trace`]). The hypercalls
//! themselves are answered by [`hvcall_dispatch`] through the vCPU's
//! hypercall exit.

pub mod cpuid;
pub mod hypercall_page;
pub mod msr;
pub(crate) mod synthetic;
pub mod trace;
