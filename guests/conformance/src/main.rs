//! `hvcall run --guest conformance`: every docs/contract.md row a guest can
//! exercise, through the real hypercall page. One line per case
//! (`ok <row> <what>` or `FAIL <row> <what>: <detail>`; `skip` for rows a
//! guest cannot reach or that need another configuration), then
//! `N passed, M failed`; the exit status is non-zero on any failure.
//!
//! The denial rows adapt to what CPUID advertises, so re-running with
//! `--no-access-vp-registers` (step 6e) and `--no-xmm-fast` (step 5b)
//! exercises them. VP0 runs the cases; every other VP records what it sees
//! of CPUID and the VP index MSR and then holds `rt::pattern` so it can be
//! read.
#![no_std]
#![no_main]

#[macro_use]
mod asm;
mod checks;
mod compat;
mod continuation;
mod cpl3;
mod discovery;
mod env;
mod fast;
mod probe;
mod report;
mod set;
mod values;

use core::sync::atomic::{AtomicU32, Ordering};

use report::Report;

rt::entry!(main);

/// Counts the VPs holding their pattern.
static READY: AtomicU32 = AtomicU32::new(0);

fn main(vp: u32, vps: u32) {
    if vp != 0 {
        discovery::record_other_vp(vp);
        rt::pattern::hold(vp, &READY);
    }
    while READY.load(Ordering::Acquire) < vps - 1 {
        core::hint::spin_loop();
    }
    let mut r = Report::default();
    let Some(env) = discovery::run(&mut r, vps) else {
        r.finish()
    };
    checks::run(&mut r, &env);
    continuation::run(&mut r, &env);
    fast::run(&mut r, &env);
    values::run(&mut r, &env);
    compat::run(&mut r, &env);
    cpl3::run(&mut r, &env);
    set::run(&mut r, &env);
    r.finish()
}
