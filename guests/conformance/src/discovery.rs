//! docs/contract.md §6: CPUID discovery, the privilege mask on every VP, the
//! synthetic MSRs (guest OS ID, hypercall, VP index) and the overlay page.
//! Runs before anything else: the hypercall-MSR rules need a guest OS ID
//! of 0 at first.

use core::arch::x86_64::__cpuid;
use core::sync::atomic::{AtomicU64, Ordering};

use hvcall_abi::value::{HypercallMsr, VpAssistPage};
use hvcall_abi::{cpuid, msr, privilege};
use hvcall_guest::{discover, HypercallPage};
use rt::fault::{self, GP};
use rt::hv::{gpa, GUEST_OS_ID, HYPERCALL_PAGE};
use rt::outln;

use crate::env::Env;
use crate::report::{check, eq, no_fault, Outcome, Report};

/// Most VPs whose view is recorded.
const MAX_VPS: usize = 64;
/// A page far above the guest's RAM (1 TiB).
const OUTSIDE_RAM: u64 = 1 << 40;

/// What each VP saw: CPUID 0x40000003 EAX|EBX<<32, its EDX, and the VP
/// index MSR (+1, so 0 means "not recorded yet").
static PRIVILEGES: [AtomicU64; MAX_VPS] = [const { AtomicU64::new(0) }; MAX_VPS];
static FEATURES_EDX: [AtomicU64; MAX_VPS] = [const { AtomicU64::new(0) }; MAX_VPS];
static VP_INDEX_MSR: [AtomicU64; MAX_VPS] = [const { AtomicU64::new(0) }; MAX_VPS];

/// Records what VP `vp` sees (called on every VP but VP0 before it holds
/// its pattern).
pub fn record_other_vp(vp: u32) {
    record(vp);
}

fn record(vp: u32) {
    let i = vp as usize;
    if i >= MAX_VPS {
        return;
    }
    let leaf = __cpuid(cpuid::LEAF_FEATURES);
    PRIVILEGES[i].store(privilege::from_cpuid(leaf.eax, leaf.ebx), Ordering::Relaxed);
    FEATURES_EDX[i].store(u64::from(leaf.edx), Ordering::Relaxed);
    let index = fault::rdmsr(msr::VP_INDEX).map_or(u64::MAX, |v| v.wrapping_add(1));
    VP_INDEX_MSR[i].store(index, Ordering::Release);
}

/// Runs the §6 cases and enables the hypercall page; `None` (after
/// reporting) if the page cannot be used.
pub fn run(r: &mut Report, vps: u32) -> Option<Env> {
    record(0);
    r.case(
        "§6 discovery",
        "CPUID 0x1 ECX[31] (hypervisor present)",
        || {
            check(
                "ECX[31]",
                __cpuid(1).ecx & cpuid::HYPERVISOR_PRESENT_ECX != 0,
            )
        },
    );
    r.case(
        "§6 discovery",
        "CPUID 0x40000000: max leaf >= 0x40000005, \"Microsoft Hv\"",
        || {
            let l = __cpuid(cpuid::LEAF_VENDOR);
            check("max leaf", l.eax >= cpuid::MIN_MAX_LEAF)?;
            check(
                "vendor",
                cpuid::vendor_bytes(l.ebx, l.ecx, l.edx) == cpuid::VENDOR,
            )
        },
    );
    r.case("§6 discovery", "CPUID 0x40000001: \"Hv#1\"", || {
        eq(
            "EAX",
            u64::from(__cpuid(cpuid::LEAF_INTERFACE).eax),
            u64::from(cpuid::INTERFACE_SIGNATURE),
        )
    });
    let features = match discover() {
        Ok(f) => f,
        Err(e) => {
            outln!("FAIL §6 discovery: ", e);
            r.case("§6 discovery", "hvcall_guest::discover", || {
                check("discover", false)
            });
            return None;
        }
    };
    r.case(
        "§6 privileges",
        "AccessHypercallMsrs (EAX 5) and AccessVpIndex (EAX 6)",
        || {
            check(
                "AccessHypercallMsrs",
                features.has_privilege(privilege::ACCESS_HYPERCALL_MSRS),
            )?;
            check(
                "AccessVpIndex",
                features.has_privilege(privilege::ACCESS_VP_INDEX),
            )
        },
    );
    outln!(
        "note: AccessVpRegisters ",
        if features.can_access_vp_registers() {
            "advertised"
        } else {
            "withheld"
        },
        "; XMM fast input ",
        if features.xmm_fast_input() {
            "advertised"
        } else {
            "withheld"
        },
        ", output ",
        if features.xmm_fast_output() {
            "advertised"
        } else {
            "withheld"
        }
    );
    r.case(
        "§6 discovery",
        "XMM fast input (EDX 4) and output (EDX 15) advertised together",
        || {
            eq(
                "EDX bit 4",
                u64::from(features.xmm_fast_input()),
                u64::from(features.xmm_fast_output()),
            )
        },
    );
    r.case(
        "§6 privileges",
        "privilege mask, features and VP index MSR the same on every VP",
        || every_vp_agrees(vps),
    );
    msr_cases(r);
    let va = (&raw const HYPERCALL_PAGE).cast::<u8>();
    let enabled = enabled_at(gpa(va));
    r.case(
        "§6 MSRs",
        "hypercall MSR enables at a RAM page, reads back GPFN|1",
        || {
            no_fault(fault::wrmsr(msr::HYPERCALL, enabled))?;
            let back = HypercallMsr::from_bits(no_fault(fault::rdmsr(msr::HYPERCALL))?);
            eq(
                "hypercall MSR",
                back.with_reserved_p(0).into_bits(),
                enabled,
            )
        },
    );
    // SAFETY: the page is enabled at `va` if the case above passed; a
    // broken page is caught by the cases that call it.
    let page = unsafe { HypercallPage::from_raw(va) };
    let env = Env {
        page,
        features,
        vps,
    };
    overlay_cases(r, va);
    Some(env)
}

/// The hypercall MSR value that enables the page at `gpa`.
fn enabled_at(gpa: u64) -> u64 {
    HypercallMsr::new()
        .with_page_gpa(gpa)
        .with_enable(true)
        .into_bits()
}

fn every_vp_agrees(vps: u32) -> Outcome {
    let p0 = PRIVILEGES[0].load(Ordering::Relaxed);
    let f0 = FEATURES_EDX[0].load(Ordering::Relaxed);
    for vp in 0..(vps as usize).min(MAX_VPS) {
        let mut index = VP_INDEX_MSR[vp].load(Ordering::Acquire);
        while index == 0 {
            core::hint::spin_loop();
            index = VP_INDEX_MSR[vp].load(Ordering::Acquire);
        }
        eq("VP index MSR (+1)", index, vp as u64 + 1)?;
        eq("privilege mask", PRIVILEGES[vp].load(Ordering::Relaxed), p0)?;
        eq("features EDX", FEATURES_EDX[vp].load(Ordering::Relaxed), f0)?;
    }
    Ok(())
}

/// Expects a #GP from `result`.
fn gp<T>(result: Result<T, fault::Fault>) -> Outcome {
    match result {
        Ok(_) => eq("exception vector", u64::MAX, GP),
        Err(f) => eq("exception vector", f.vector, GP),
    }
}

fn msr_cases(r: &mut Report) {
    r.case(
        "§6 MSRs",
        "VP index MSR is read-only: WRMSR raises #GP",
        || {
            gp(fault::wrmsr(msr::VP_INDEX, 5))?;
            eq(
                "VP index after the write",
                fault::rdmsr(msr::VP_INDEX).unwrap_or(u64::MAX),
                0,
            )
        },
    );
    r.case(
        "§6 MSRs",
        "guest OS ID reads 0 before the guest sets it",
        || {
            eq(
                "guest OS ID",
                fault::rdmsr(msr::GUEST_OS_ID).unwrap_or(u64::MAX),
                0,
            )
        },
    );
    let page_gpa = gpa(&raw const HYPERCALL_PAGE);
    r.case(
        "§6 MSRs",
        "hypercall MSR enable has no effect while the guest OS ID is 0",
        || {
            check(
                "no #GP",
                fault::wrmsr(msr::HYPERCALL, enabled_at(page_gpa)).is_ok(),
            )?;
            let back = HypercallMsr::from_bits(fault::rdmsr(msr::HYPERCALL).unwrap_or(u64::MAX));
            eq("enable bit", u64::from(back.enable()), 0)
        },
    );
    r.case("§6 MSRs", "guest OS ID MSR is read/write", || {
        check(
            "no #GP",
            fault::wrmsr(msr::GUEST_OS_ID, GUEST_OS_ID).is_ok(),
        )?;
        eq(
            "guest OS ID",
            fault::rdmsr(msr::GUEST_OS_ID).unwrap_or(u64::MAX),
            GUEST_OS_ID,
        )
    });
    r.case(
        "§6 MSRs",
        "hypercall MSR with a GPFN outside guest RAM raises #GP",
        || {
            let before = fault::rdmsr(msr::HYPERCALL).unwrap_or(u64::MAX);
            gp(fault::wrmsr(msr::HYPERCALL, enabled_at(OUTSIDE_RAM)))?;
            eq(
                "hypercall MSR unchanged",
                fault::rdmsr(msr::HYPERCALL).unwrap_or(u64::MAX),
                before,
            )
        },
    );
    r.case(
        "§6 MSRs",
        "other synthetic MSRs raise #GP (0x40000010, 0x40000080 read; 0x40000003 write)",
        || {
            gp(fault::rdmsr(msr::VP_RUNTIME))?;
            gp(fault::rdmsr(msr::SCONTROL))?;
            gp(fault::wrmsr(msr::RESET, 1))
        },
    );
    r.case(
        "§6 MSRs",
        "TSC and APIC frequency MSRs read non-zero Hz and are read-only",
        || {
            let tsc = fault::rdmsr(msr::TSC_FREQUENCY).unwrap_or(0);
            let apic = fault::rdmsr(msr::APIC_FREQUENCY).unwrap_or(0);
            check("TSC Hz", tsc >= 1_000_000)?;
            check("APIC Hz", apic >= 1_000_000)?;
            gp(fault::wrmsr(msr::TSC_FREQUENCY, tsc))
        },
    );
    r.case(
        "§6 MSRs",
        "VP assist page MSR is read/write, a GPFN outside RAM raises #GP",
        || {
            let assist = |gpa| {
                VpAssistPage::new()
                    .with_page_gpa(gpa)
                    .with_enable(true)
                    .into_bits()
            };
            let page = assist(page_gpa + 0x1000);
            check("no #GP", fault::wrmsr(msr::VP_ASSIST_PAGE, page).is_ok())?;
            eq(
                "VP assist page",
                fault::rdmsr(msr::VP_ASSIST_PAGE).unwrap_or(u64::MAX),
                page,
            )?;
            gp(fault::wrmsr(msr::VP_ASSIST_PAGE, assist(OUTSIDE_RAM)))?;
            check("disable", fault::wrmsr(msr::VP_ASSIST_PAGE, 0).is_ok())?;
            eq(
                "VP assist page",
                fault::rdmsr(msr::VP_ASSIST_PAGE).unwrap_or(u64::MAX),
                0,
            )
        },
    );
}

fn overlay_cases(r: &mut Report, va: *const u8) {
    let read = |i: usize| {
        // SAFETY: `va` is the hypercall page (readable), `i` < 4096.
        unsafe { core::ptr::read_volatile(va.add(i)) }
    };
    r.case(
        "§6 overlay",
        "the page reads as hypercall code, not the zeroed RAM below",
        || check("non-zero code bytes", (0..16).any(|i| read(i) != 0)),
    );
    r.case(
        "§6 overlay",
        "guest writes to the page do not change it",
        || {
            let (first, last) = (read(0), read(4095));
            // SAFETY: writing to the overlay is what this case tests; the VMM
            // drops the write (if it did not, the later calls would show it).
            unsafe {
                core::ptr::write_volatile(va.cast_mut(), !first);
                core::ptr::write_volatile(va.add(4095).cast_mut(), !last);
            }
            eq("byte 0", u64::from(read(0)), u64::from(first))?;
            eq("byte 4095", u64::from(read(4095)), u64::from(last))
        },
    );
}
