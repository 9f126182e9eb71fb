//! Hyper-V synthetic MSR numbers (TLFS feature discovery and
//! the synthetic MSR list), x64 only.
//!
//! The MSR-backed synthetic registers have register names too (see
//! [`register_name`]): e.g. MSR 0x40000001 is `HvX64RegisterHypercall`.

use crate::name::{x64, HvRegisterName};

/// The first MSR of the synthetic range: every Hyper-V synthetic MSR
/// (including the crash, reenlightenment and nested ones) lies in
/// `FIRST..FIRST + 0x2000`.
pub const FIRST: u32 = 0x4000_0000;
/// The number of MSRs of the synthetic range starting at [`FIRST`].
pub const COUNT: u32 = 0x2000;

/// HV_X64_MSR_GUEST_OS_ID.
pub const GUEST_OS_ID: u32 = 0x4000_0000;
/// HV_X64_MSR_HYPERCALL.
pub const HYPERCALL: u32 = 0x4000_0001;
/// HV_X64_MSR_VP_INDEX (read-only).
pub const VP_INDEX: u32 = 0x4000_0002;
/// HV_X64_MSR_RESET.
pub const RESET: u32 = 0x4000_0003;
/// HV_X64_MSR_VP_RUNTIME (read-only, 100 ns units).
pub const VP_RUNTIME: u32 = 0x4000_0010;
/// HV_X64_MSR_TIME_REF_COUNT (read-only, 100 ns units).
pub const TIME_REF_COUNT: u32 = 0x4000_0020;
/// HV_X64_MSR_REFERENCE_TSC.
pub const REFERENCE_TSC: u32 = 0x4000_0021;
/// HV_X64_MSR_TSC_FREQUENCY (Hz).
pub const TSC_FREQUENCY: u32 = 0x4000_0022;
/// HV_X64_MSR_APIC_FREQUENCY (Hz).
pub const APIC_FREQUENCY: u32 = 0x4000_0023;
/// HV_X64_MSR_NPIEP_CONFIG.
pub const NPIEP_CONFIG: u32 = 0x4000_0040;
/// HV_X64_MSR_EOI (write-only).
pub const EOI: u32 = 0x4000_0070;
/// HV_X64_MSR_ICR.
pub const ICR: u32 = 0x4000_0071;
/// HV_X64_MSR_TPR.
pub const TPR: u32 = 0x4000_0072;
/// HV_X64_MSR_VP_ASSIST_PAGE.
pub const VP_ASSIST_PAGE: u32 = 0x4000_0073;
/// HV_X64_MSR_SCONTROL.
pub const SCONTROL: u32 = 0x4000_0080;
/// HV_X64_MSR_SVERSION (read-only).
pub const SVERSION: u32 = 0x4000_0081;
/// HV_X64_MSR_SIEFP.
pub const SIEFP: u32 = 0x4000_0082;
/// HV_X64_MSR_SIMP.
pub const SIMP: u32 = 0x4000_0083;
/// HV_X64_MSR_EOM (write-only).
pub const EOM: u32 = 0x4000_0084;
/// HV_X64_MSR_SIRBP.
pub const SIRBP: u32 = 0x4000_0085;
/// HV_X64_MSR_SINT0; SINTn is `SINT0 + n` (see [`sint`]).
pub const SINT0: u32 = 0x4000_0090;
/// HV_X64_MSR_SINT15.
pub const SINT15: u32 = 0x4000_009F;
/// HV_X64_MSR_STIMER0_CONFIG; STIMERk_CONFIG is `+ 2k` (see [`stimer_config`]).
pub const STIMER0_CONFIG: u32 = 0x4000_00B0;
/// HV_X64_MSR_STIMER0_COUNT; STIMERk_COUNT is `+ 2k` (see [`stimer_count`]).
pub const STIMER0_COUNT: u32 = 0x4000_00B1;
/// HV_X64_MSR_GUEST_IDLE (read-only).
pub const GUEST_IDLE: u32 = 0x4000_00F0;
/// HV_X64_MSR_DEBUG_DEVICE_OPTIONS (HDK).
pub const DEBUG_DEVICE_OPTIONS: u32 = 0x4000_00FF;
/// HV_X64_MSR_CRASH_P0; P0..P4 are consecutive.
pub const CRASH_P0: u32 = 0x4000_0100;
/// HV_X64_MSR_CRASH_P1.
pub const CRASH_P1: u32 = 0x4000_0101;
/// HV_X64_MSR_CRASH_P2.
pub const CRASH_P2: u32 = 0x4000_0102;
/// HV_X64_MSR_CRASH_P3.
pub const CRASH_P3: u32 = 0x4000_0103;
/// HV_X64_MSR_CRASH_P4.
pub const CRASH_P4: u32 = 0x4000_0104;
/// HV_X64_MSR_CRASH_CTL.
pub const CRASH_CTL: u32 = 0x4000_0105;
/// HV_X64_MSR_REENLIGHTENMENT_CONTROL.
pub const REENLIGHTENMENT_CONTROL: u32 = 0x4000_0106;
/// HV_X64_MSR_TSC_EMULATION_CONTROL.
pub const TSC_EMULATION_CONTROL: u32 = 0x4000_0107;
/// HV_X64_MSR_TSC_EMULATION_STATUS.
pub const TSC_EMULATION_STATUS: u32 = 0x4000_0108;
/// HV_X64_MSR_SWATCHDOG_CONFIG (HDK).
pub const SWATCHDOG_CONFIG: u32 = 0x4000_0110;
/// HV_X64_MSR_SWATCHDOG_COUNT (HDK).
pub const SWATCHDOG_COUNT: u32 = 0x4000_0111;
/// HV_X64_MSR_SWATCHDOG_STATUS (HDK).
pub const SWATCHDOG_STATUS: u32 = 0x4000_0112;
/// HV_X64_MSR_STIME_UNHALTED_TIMER_CONFIG.
pub const STIME_UNHALTED_TIMER_CONFIG: u32 = 0x4000_0114;
/// HV_X64_MSR_STIME_UNHALTED_TIMER_COUNT.
pub const STIME_UNHALTED_TIMER_COUNT: u32 = 0x4000_0115;
/// HV_X64_MSR_MEMORY_ZEROING_CONTROL (HDK).
pub const MEMORY_ZEROING_CONTROL: u32 = 0x4000_0116;
/// HV_X64_MSR_TSC_INVARIANT_CONTROL (Linux).
pub const TSC_INVARIANT_CONTROL: u32 = 0x4000_0118;
/// HV_X64_MSR_NESTED_VP_INDEX.
pub const NESTED_VP_INDEX: u32 = 0x4000_1002;
/// HV_X64_MSR_NESTED_SCONTROL.
pub const NESTED_SCONTROL: u32 = 0x4000_1080;
/// HV_X64_MSR_NESTED_SVERSION.
pub const NESTED_SVERSION: u32 = 0x4000_1081;
/// HV_X64_MSR_NESTED_SIEFP.
pub const NESTED_SIEFP: u32 = 0x4000_1082;
/// HV_X64_MSR_NESTED_SIMP.
pub const NESTED_SIMP: u32 = 0x4000_1083;
/// HV_X64_MSR_NESTED_EOM.
pub const NESTED_EOM: u32 = 0x4000_1084;
/// HV_X64_MSR_NESTED_SINT0; NESTED_SINTn is `+ n`.
pub const NESTED_SINT0: u32 = 0x4000_1090;

const _: () = assert!(GUEST_OS_ID == FIRST && NESTED_SINT0 + 15 < FIRST + COUNT);

/// The MSR of SINT`n` (n = 0..15), or `None` for a larger `n`.
pub const fn sint(n: u32) -> Option<u32> {
    if n < 16 {
        Some(SINT0 + n)
    } else {
        None
    }
}

/// The MSR of STIMER`k`_CONFIG (k = 0..3), or `None` for a larger `k`.
pub const fn stimer_config(k: u32) -> Option<u32> {
    if k < 4 {
        Some(STIMER0_CONFIG + 2 * k)
    } else {
        None
    }
}

/// The MSR of STIMER`k`_COUNT (k = 0..3), or `None` for a larger `k`.
pub const fn stimer_count(k: u32) -> Option<u32> {
    if k < 4 {
        Some(STIMER0_COUNT + 2 * k)
    } else {
        None
    }
}

/// The x64 register name of a synthetic MSR that has one (the TLFS maps
/// each such MSR to a register name), or `None`.
///
/// ```
/// use hvcall_abi::{msr, name::x64};
/// assert_eq!(msr::register_name(msr::HYPERCALL), Some(x64::HYPERCALL));
/// assert_eq!(msr::register_name(msr::SINT0 + 3), Some(x64::SINT3));
/// assert_eq!(msr::register_name(0x4000_0003), None);
/// ```
pub const fn register_name(msr: u32) -> Option<HvRegisterName> {
    Some(match msr {
        GUEST_OS_ID => x64::GUEST_OS_ID,
        HYPERCALL => x64::HYPERCALL,
        VP_INDEX => x64::VP_INDEX,
        VP_RUNTIME => x64::VP_RUNTIME,
        TIME_REF_COUNT => x64::TIME_REF_COUNT,
        REFERENCE_TSC => x64::REFERENCE_TSC,
        VP_ASSIST_PAGE => x64::VP_ASSIST_PAGE,
        SCONTROL..=EOM => HvRegisterName(x64::SCONTROL.0 + (msr - SCONTROL)),
        SIRBP => x64::SIRBP,
        SINT0..=SINT15 => HvRegisterName(x64::SINT0.0 + (msr - SINT0)),
        0x4000_00B0..=0x4000_00B7 => HvRegisterName(x64::STIMER0_CONFIG.0 + (msr - STIMER0_CONFIG)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_msrs_stop_at_their_ranges() {
        assert_eq!(sint(15), Some(SINT15));
        assert_eq!(sint(16), None);
        assert_eq!(stimer_config(3), Some(0x4000_00B6));
        assert_eq!(stimer_count(3), Some(0x4000_00B7));
        assert_eq!(stimer_config(4), None);
        assert_eq!(sint(u32::MAX), None);
    }

    #[test]
    fn msr_backed_register_names_follow_the_digest_mapping() {
        assert_eq!(register_name(VP_RUNTIME), Some(x64::VP_RUNTIME));
        assert_eq!(register_name(SIEFP), Some(x64::SIFP));
        assert_eq!(register_name(SIMP), Some(x64::SIPP));
        assert_eq!(register_name(EOM), Some(x64::EOM));
        assert_eq!(register_name(SINT15), Some(x64::SINT15));
        assert_eq!(register_name(0x4000_00B7), Some(x64::STIMER3_COUNT));
        assert_eq!(register_name(0x4000_00B8), None);
        assert_eq!(register_name(TSC_FREQUENCY), None);
    }
}
