//! The library half of the `hvcall` command: what its integration tests
//! reuse besides running the binary. [`chaos`] is the hostile guest of
//! `hvcall run --guest chaos` with its generator, reference-model oracle
//! and comparison.

pub mod chaos;
