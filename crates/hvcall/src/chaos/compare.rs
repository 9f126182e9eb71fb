//! How a case's real outcome differs from the model's, and a readable
//! account of it.
//!
//! Compared: the whole result word (status and reps completed); RDX, R8
//! and XMM0–5 after the call (fast output lands there; every other pair
//! must keep its value, §3/§4); every byte of the case's three-page
//! window (output slots before the rep start and after a failing element
//! untouched, overlapping lists, nothing written for a refused call).
//! Where the model holds a wildcard (a value it cannot know), any value
//! passes, but the slot must have been written: a slot still holding the
//! caller's guard bytes is a miss, unless the wildcard is another VP's
//! register, which may by chance hold what it read from the caller (a
//! slot that held input bytes before may by chance get the same value).

use std::fmt::Write as _;

use super::cases::{Case, FAST};
use super::oracle::{is_wildcard, Effect};

/// How one case differs: what, and the window offset of the first
/// differing byte if that is where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// What differs.
    pub what: String,
    /// Window offset of the first differing byte.
    pub window_at: Option<usize>,
}

impl From<String> for Mismatch {
    fn from(what: String) -> Self {
        Self {
            what,
            window_at: None,
        }
    }
}

/// Whether a wildcard slot that still holds its bytes from before the
/// call proves nothing: they are not the caller's guard bytes (an input
/// list the output overlaps may hold a real value), or the wildcard is
/// another VP's register (which may hold what it read from the caller).
fn unprovable(case: &Case, wildcard: [u64; 2], before: &[u8]) -> bool {
    let guard = super::cases::guard(case.vp);
    wildcard[1] & 0xFFFF_FFFF != u64::from(case.vp) || before.iter().any(|&b| b != guard)
}

/// How `got` differs from `want`, after matching wildcard slots; `None`
/// if it does not.
pub fn compare(case: &Case, want: &Effect, got: &Effect) -> Option<Mismatch> {
    if want.result != got.result {
        return Some(String::from("result word").into());
    }
    let mut regs = got.regs;
    for (p, pair) in regs.iter_mut().enumerate() {
        if is_wildcard(want.regs[p]) {
            let before: Vec<u8> = case.regs[p].iter().flat_map(|w| w.to_le_bytes()).collect();
            if *pair == case.regs[p] && !unprovable(case, want.regs[p], &before) {
                return Some(format!("register pair {p} was not written").into());
            }
            *pair = want.regs[p];
        }
    }
    if let Some(p) = (0..7).find(|&p| regs[p] != want.regs[p]) {
        return Some(format!("register pair {p}").into());
    }
    let mut window = got.window.clone();
    if !case.fast() {
        let (_, out) = case.gpas();
        for i in 0..case.rep_count() {
            let Some(at) = out
                .checked_add(16 * i)
                .and_then(|gpa| gpa.checked_sub(case.window))
                .map(|a| a as usize)
                .filter(|&a| a + 16 <= window.len())
            else {
                continue;
            };
            let slot = |b: &[u8]| {
                let w = |o: usize| {
                    let mut word = [0; 8];
                    word.copy_from_slice(&b[at + o..at + o + 8]);
                    u64::from_le_bytes(word)
                };
                [w(0), w(8)]
            };
            let wanted = slot(&want.window);
            if is_wildcard(wanted) {
                let before = &case.window_bytes[at..at + 16];
                if got.window[at..at + 16] == *before && !unprovable(case, wanted, before) {
                    return Some(Mismatch {
                        what: format!("output slot {i} was not written"),
                        window_at: Some(at),
                    });
                }
                window[at..at + 16].copy_from_slice(&want.window[at..at + 16]);
            }
        }
    }
    let first = (0..window.len()).find(|&b| window[b] != want.window[b])?;
    Some(Mismatch {
        what: format!(
            "window byte {first:#x} (GPA {:#x})",
            case.window + first as u64
        ),
        window_at: Some(first),
    })
}

/// A readable account of one mismatch.
pub fn describe(case: &Case, want: &Effect, got: &Effect, why: &Mismatch) -> String {
    let result = |r: u64| {
        format!(
            "{r:#018x} (status {:#x}, reps {})",
            r & 0xFFFF,
            (r >> 32) & 0xFFF
        )
    };
    let h = &case.input;
    let word = |range: std::ops::Range<usize>| {
        let mut w = [0u8; 8];
        w[..range.len()].copy_from_slice(&h[range]);
        u64::from_le_bytes(w)
    };
    let mut s = format!(
        "VP{} record {}: {}\n  control {:#018x} (code {:#x}, {}, n {}, start {})\n  header partition {:#x} vp {:#x} vtl {:#04x} rsvd {:02x?}\n",
        case.vp,
        case.record,
        why.what,
        case.control,
        case.control & 0xFFFF,
        if case.control & FAST != 0 { "fast" } else { "memory" },
        case.rep_count(),
        (case.control >> 48) & 0xFFF,
        word(0..8),
        word(8..12),
        h[12],
        &h[13..16],
    );
    if case.control & 0xFFFF == 0x51 {
        // SetVpRegisters: 32-byte elements (name, reserved, value).
        let q = |c: &[u8], at: usize| {
            c.get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        let elements: Vec<String> = h[16..]
            .chunks(32)
            .take(8)
            .map(|c| {
                let name = q(c, 0) as u32;
                let reserved = q(c, 0) >> 32 | q(c, 8);
                format!(
                    "{name:#x}={:#x}:{:#x}{}",
                    q(c, 24),
                    q(c, 16),
                    if reserved != 0 { " (reserved set)" } else { "" }
                )
            })
            .collect();
        let _ = writeln!(s, "  elements {}", elements.join(" "));
    } else {
        let names: Vec<String> = h[16..]
            .chunks(4)
            .take(8)
            .map(|c| format!("{:#x}", c.try_into().map_or(0, u32::from_le_bytes)))
            .collect();
        let _ = writeln!(s, "  names {}", names.join(" "));
    }
    if !case.fast() {
        let (i, o) = case.gpas();
        let _ = writeln!(
            s,
            "  input GPA {i:#x} output GPA {o:#x} window {:#x}",
            case.window
        );
    }
    let _ = writeln!(
        s,
        "  expected result {}\n  actual   result {}",
        result(want.result),
        result(got.result)
    );
    if want.regs != got.regs {
        let _ = writeln!(
            s,
            "  expected pairs (d1ced1ce.. = any value) {:x?}\n  actual   pairs {:x?}",
            want.regs, got.regs
        );
    }
    if let Some(b) = why.window_at {
        let b = b & !15;
        let end = (b + 32).min(want.window.len());
        let _ = writeln!(
            s,
            "  window from {b:#x} (wildcards are any value): expected {:02x?}\n  {:>39} {:02x?}",
            &want.window[b..end],
            "actual",
            &got.window[b..end]
        );
    }
    s
}
