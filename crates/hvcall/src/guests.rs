//! The guests embedded in the binary: built from `guests/` by `build.rs`
//! for `x86_64-unknown-none` and included here as ELF images.

/// A built-in guest, selected with `hvcall run --guest NAME`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Guest {
    /// VP0 reads its own and VP1's registers and prints a table.
    Demo,
    /// Every docs/contract.md row a guest can exercise; `N passed, M failed`.
    Conformance,
    /// Torn-read check: VP0 reads two registers VP1 keeps equal, 10,000 times.
    Torn,
    /// Torn-write check: VPs write generations across four register groups
    /// of running VPs, which check they never run with part of an entry's
    /// writes; writers also write each other.
    TornWrite,
    /// Every VP spins holding a known register pattern, forever (no
    /// watchdog unless asked), and reports on COM1 when its R12 is changed
    /// from outside: a target for `hvcall regs`.
    Spin,
    /// VP0 and VP1 read each other concurrently.
    Mutual,
    /// Each register group read from self and from a running VP1.
    Groups,
    /// Executes VMCALL, which never returns here: only the watchdog ends it.
    Vmcall,
    /// Random hostile hypercalls on every VP, each compared with the
    /// reference model (`--seed`, `--calls`); `N calls, D disagreements`.
    Chaos,
    /// Every VP reads every other VP while keeping an invariant across
    /// register groups, for `--seconds S`; `R reads, T torn, S stalls`.
    Soak,
}

impl Guest {
    /// The guest's ELF image.
    pub fn elf(self) -> &'static [u8] {
        match self {
            Guest::Demo => include_bytes!(env!("HVCALL_GUEST_DEMO")),
            Guest::Conformance => include_bytes!(env!("HVCALL_GUEST_CONFORMANCE")),
            Guest::Torn => include_bytes!(env!("HVCALL_GUEST_TORN")),
            Guest::TornWrite => include_bytes!(env!("HVCALL_GUEST_TORNWRITE")),
            Guest::Spin => include_bytes!(env!("HVCALL_GUEST_SPIN")),
            Guest::Mutual => include_bytes!(env!("HVCALL_GUEST_MUTUAL")),
            Guest::Groups => include_bytes!(env!("HVCALL_GUEST_GROUPS")),
            Guest::Vmcall => include_bytes!(env!("HVCALL_GUEST_VMCALL")),
            Guest::Chaos => hvcall::chaos::GUEST,
            Guest::Soak => include_bytes!(env!("HVCALL_GUEST_SOAK")),
        }
    }
}
