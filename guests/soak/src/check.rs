//! The soak invariant, as a pure function: no CPU access, no dependencies,
//! so the host compiles this same file into its unit tests
//! (`crates/hvcall/src/soak.rs`, `#[path]`) and checks it there; the
//! freestanding guests have no test harness.
//!
//! Each soaking VP counts `c = 1, 2, ...` and, per step, writes `c` in
//! this order: KERNEL_GS_BASE (an MSR, KVM's MSR state), DR0 (KVM's debug
//! registers), XMM15 (low half; the high half is always 0; KVM's FPU
//! state), then calls the hypercall page with R12 = `c` (KVM's general
//! registers). A snapshot taken between two of its instructions therefore
//! sees `MSR >= DR0 >= XMM15 >= MSR - 1`; and while its RIP is on the
//! hypercall page (at the `out`, or at the `ret` after it: docs/contract.md §5,
//! a snapshot lies between instructions) all of its step is done, so
//! `R12 == MSR == DR0 == XMM15`. Anything else mixes moments: torn.

/// The invariant registers of one snapshot of a soaking VP; `None` for a
/// register the read did not include (the XMM fast form carries at most
/// four names).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// KERNEL_GS_BASE, written first.
    pub msr: Option<u64>,
    /// DR0, written second.
    pub dr0: Option<u64>,
    /// XMM15 as `[low, high]`, written third (low = the counter, high = 0).
    pub xmm15: Option<[u64; 2]>,
    /// R12, the counter only while the VP is in its hypercall.
    pub r12: Option<u64>,
    /// Whether the VP's RIP was on the hypercall page.
    pub in_call: bool,
}

/// Whether `s` can be a snapshot taken between two instructions of the
/// soak loop (see the module docs); false means torn.
pub fn consistent(s: &Sample) -> bool {
    if s.xmm15.is_some_and(|[_, high]| high != 0) {
        return false;
    }
    // In write order, each value equals the one written before it or is
    // one behind it, and the first and last are at most one apart.
    let chain = [s.msr, s.dr0, s.xmm15.map(|[low, _]| low)];
    let mut first = None;
    let mut last: Option<u64> = None;
    for value in chain.into_iter().flatten() {
        if last.is_some_and(|previous| value > previous) {
            return false;
        }
        first.get_or_insert(value);
        last = Some(value);
    }
    if let (Some(first), Some(last)) = (first, last) {
        if first.abs_diff(last) > 1 {
            return false;
        }
    }
    // On the hypercall page the whole step is done: everything is equal.
    if s.in_call {
        let all = [s.msr, s.dr0, s.xmm15.map(|[low, _]| low), s.r12];
        let mut values = all.into_iter().flatten();
        if let Some(v) = values.next() {
            return values.all(|w| w == v);
        }
    }
    true
}
