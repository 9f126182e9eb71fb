//! Mutual reads: every VP reads the next one (VP i reads VP (i+1) mod n)
//! through HvCallGetVpRegisters at the same time, so VP0 and VP1 read each
//! other concurrently. Each read checks the target's VP index register.
//! VP0 waits for everyone, prints the counts and exits 0 (1 on a failed or
//! wrong read). A deadlock in the VMM ends in its watchdog instead.
//!
//! The target is often inside its own hypercall (reading its neighbour)
//! when it is read, so each read also checks that the snapshot lies between
//! two instructions (docs/contract.md §5): RIP on the page's `out` means the
//! call has not happened yet, so RCX still holds a GetVpRegisters control
//! word; RIP on the page's `ret` means it has completed, so RAX holds its
//! successful result with all of RCX's reps completed.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use hvcall_abi::name::x64 as n;
use hvcall_abi::{
    call_code, partition_id, vp_index, HvInputVtl, HvRegisterValue, HypercallControl,
    HypercallResult,
};
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
/// Reads that caught the target on its hypercall instruction.
static AT_CALL: AtomicU32 = AtomicU32::new(0);
/// Reads that caught the target just after its hypercall completed.
static AFTER_CALL: AtomicU32 = AtomicU32::new(0);

/// Length of the hypercall page's `out imm8, al`.
const OUT_LEN: u64 = 2;

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
    let page_va = page.address() as u64;
    let mut values = [HvRegisterValue::default(); 4];
    for _ in 0..READS {
        let ok = hv
            .get_vp_registers(
                partition_id::SELF,
                target,
                HvInputVtl::new(),
                &[n::VP_INDEX, n::RIP, n::RAX, n::RCX],
                &mut values,
            )
            .is_ok();
        let [index, rip, rax, rcx] = values.map(|v| v.as_u64());
        if !ok || index != u64::from(target) || !between_instructions(page_va, rip, rax, rcx) {
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
        " failed; caught on the call ",
        Dec(u64::from(AT_CALL.load(Ordering::Acquire))),
        ", just after it ",
        Dec(u64::from(AFTER_CALL.load(Ordering::Acquire)))
    );
    rt::exit(if failed == 0 { 0 } else { 1 })
}

/// Whether RIP, RAX and RCX of a read VP are consistent with a snapshot
/// taken between two of its instructions, around its own hypercall.
fn between_instructions(page_va: u64, rip: u64, rax: u64, rcx: u64) -> bool {
    let control = HypercallControl::from_bits(rcx);
    if rip == page_va {
        AT_CALL.fetch_add(1, Ordering::AcqRel);
        return control.code() == call_code::GET_VP_REGISTERS;
    }
    if rip == page_va + OUT_LEN {
        AFTER_CALL.fetch_add(1, Ordering::AcqRel);
        let result = HypercallResult::from_bits(rax);
        let reserved = rax & !(0xFFFF | (0xFFF << 32));
        return result.status().is_success()
            && reserved == 0
            && result.reps_completed() == control.rep_count();
    }
    true
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
