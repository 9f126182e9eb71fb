//! Mutual reads: every VP reads the next one (VP i reads VP (i+1) mod n)
//! through HvCallGetVpRegisters at the same time, so VP0 and VP1 read each
//! other concurrently. Each read checks the target's VP index register.
//! VP0 waits for everyone, prints the counts and exits 0 (1 on a failed or
//! wrong read). A deadlock in the VMM ends in its watchdog instead.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use hvcall_abi::name::x64 as n;
use hvcall_abi::{partition_id, vp_index, HvInputVtl, HvRegisterValue};
use hvcall_guest::{Hv, Scratch};
use rt::console::Dec;
use rt::hv::gpa;
use rt::outln;

rt::entry!(main);

/// Reads per VP.
const READS: u32 = 2_000;

static STARTED: AtomicU32 = AtomicU32::new(0);
static DONE: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);

fn main(vp: u32, vps: u32) {
    if vps < 2 {
        outln!("mutual: needs two VPs");
        rt::exit(2);
    }
    let (features, page) = if vp == 0 {
        rt::hv::enable()
    } else {
        (discover(), rt::hv::page())
    };
    let mut scratch = Scratch::new();
    let scratch_gpa = gpa(&scratch);
    // SAFETY: CPL 0, enabled page, identity-mapped scratch on this stack.
    let mut hv = unsafe { Hv::new(page, features, &mut scratch, scratch_gpa) };
    let target = (vp + 1) % vps;
    STARTED.fetch_add(1, Ordering::AcqRel);
    while STARTED.load(Ordering::Acquire) < vps {
        core::hint::spin_loop();
    }
    let mut values = [HvRegisterValue::default(); 2];
    for _ in 0..READS {
        let ok = hv
            .get_vp_registers(
                partition_id::SELF,
                target,
                HvInputVtl::new(),
                &[n::VP_INDEX, n::RIP],
                &mut values,
            )
            .is_ok();
        if !ok || values[0].as_u64() != u64::from(target) {
            FAILED.fetch_add(1, Ordering::AcqRel);
            break;
        }
    }
    let mut own = [HvRegisterValue::default(); 1];
    let self_ok = hv.get_vp_registers(
        partition_id::SELF,
        vp_index::SELF,
        HvInputVtl::new(),
        &[n::VP_INDEX],
        &mut own,
    );
    if self_ok.is_err() || own[0].as_u64() != u64::from(vp) {
        FAILED.fetch_add(1, Ordering::AcqRel);
    }
    DONE.fetch_add(1, Ordering::AcqRel);
    if vp != 0 {
        return;
    }
    while DONE.load(Ordering::Acquire) < vps {
        core::hint::spin_loop();
    }
    let failed = FAILED.load(Ordering::Acquire);
    outln!(
        "mutual: ",
        Dec(u64::from(vps)),
        " VPs each read the next one ",
        Dec(u64::from(READS)),
        " times; ",
        Dec(u64::from(failed)),
        " failed"
    );
    rt::exit(if failed == 0 { 0 } else { 1 })
}

fn discover() -> hvcall_guest::HvFeatures {
    match hvcall_guest::discover() {
        Ok(f) => f,
        Err(e) => {
            outln!("mutual: discovery failed: ", e);
            rt::exit(5)
        }
    }
}
