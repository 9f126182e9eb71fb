//! The vCPU side of a run: one thread per VP and what it does at each exit.
//!
//! Owns the run loop ([`run`]: every exit but the hypercall), the
//! hypercall exit ([`hypercall`]: the glue between a guest's call and
//! [`hvcall_dispatch::dispatch()`]), exception injection ([`inject`]),
//! which both use, and the two places a VP's thread serves other VPs'
//! requests: `between` (outside a call) and `hypercall::InCall`. The run
//! loop calls into the hypercall exit, never the other way round.

mod between;
pub(crate) mod hypercall;
pub(crate) mod inject;
mod run;

pub(crate) use run::run;
