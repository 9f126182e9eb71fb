//! The vCPU side of a run: one thread per VP and what it does at each exit.
//!
//! Owns the run loop ([`run`]: every exit but the hypercall), the
//! hypercall exit ([`hypercall`]: the glue between a guest's call and
//! [`hvcall_dispatch::dispatch()`]) and exception injection ([`inject`]),
//! which both use. The run loop calls into the hypercall exit, never the
//! other way round.

pub(crate) mod hypercall;
pub(crate) mod inject;
mod run;

pub(crate) use run::run;
