//! The library half of the `hvcall` command: what its integration tests
//! reuse besides running the binary. [`chaos`] is the hostile guest of
//! `hvcall run --guest chaos` with its generator, reference-model oracle
//! and comparison: it checks the VMM against the reference model on every
//! row of the hvcall contract a guest can reach (`docs/contract.md` in the
//! repository).
//! [`api`] is the API socket of `hvcall run --api-socket` (protocol, server
//! and client), which `hvcall regs` talks to; [`private_socket`] the
//! Unix socket only this user can reach, which it and `--gdb PATH` use.

pub mod api;
pub mod chaos;
pub mod private_socket;
