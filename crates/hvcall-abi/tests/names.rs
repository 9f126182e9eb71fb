//! Invariants of the register-name tables (TLFS HV_REGISTER_NAME) and their lookups.

use std::collections::BTreeSet;

use hvcall_abi::name::{self, arm64, common, x64, Arch, HvRegisterName, RegisterEntry};

fn all(arch: Arch) -> Vec<&'static RegisterEntry> {
    name::entries(arch).collect()
}

#[test]
fn numbers_short_names_and_tlfs_names_are_unique_per_arch() {
    for arch in Arch::ALL {
        let entries = all(arch);
        let numbers: BTreeSet<u32> = entries.iter().map(|e| e.number.0).collect();
        let shorts: BTreeSet<String> = entries.iter().map(|e| e.short.to_lowercase()).collect();
        let names: BTreeSet<String> = entries.iter().map(|e| e.name.to_lowercase()).collect();
        assert_eq!(numbers.len(), entries.len(), "{arch}: duplicate number");
        assert_eq!(shorts.len(), entries.len(), "{arch}: duplicate short name");
        assert_eq!(names.len(), entries.len(), "{arch}: duplicate TLFS name");
    }
}

#[test]
fn every_entry_belongs_to_the_arch_it_is_listed_for() {
    for arch in Arch::ALL {
        for e in name::entries(arch) {
            assert!(e.applies_to(arch), "{e:?}");
            let prefix_ok = match (e.arch, arch) {
                (None, _) => e.name.starts_with("HvRegister"),
                (Some(Arch::X64), Arch::X64) => {
                    e.name.starts_with("HvX64Register") || e.name.starts_with("HvRegister")
                }
                (Some(Arch::Arm64), Arch::Arm64) => e.name.starts_with("HvArm64Register"),
                _ => false,
            };
            assert!(prefix_ok, "{arch}: {e:?}");
        }
    }
}

#[test]
fn short_names_are_lowercase_snake_case_of_the_tlfs_name() {
    for arch in Arch::ALL {
        for e in name::entries(arch) {
            assert!(
                e.short
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{e:?}"
            );
            let suffix = ["HvX64Register", "HvArm64Register", "HvRegister"]
                .iter()
                .find_map(|p| e.name.strip_prefix(p))
                .expect("prefix");
            assert_eq!(e.short.replace('_', ""), suffix.to_lowercase(), "{e:?}");
        }
    }
}

#[test]
fn every_entry_round_trips_through_each_lookup() {
    for arch in Arch::ALL {
        for e in name::entries(arch) {
            assert_eq!(name::by_tlfs_name(arch, e.name), Some(e));
            assert_eq!(name::by_tlfs_name(arch, &e.name.to_uppercase()), Some(e));
            assert_eq!(name::by_short_name(arch, e.short), Some(e));
            assert_eq!(name::by_short_name(arch, &e.short.to_uppercase()), Some(e));
            assert_eq!(name::by_number(arch, e.number), Some(e));
            assert_eq!(e.number.entry(arch), Some(e));
            assert_eq!(name::lookup(arch, &format!("{:#x}", e.number.0)), Some(e));
            assert_eq!(name::lookup(arch, &e.number.0.to_string()), Some(e));
        }
    }
}

#[test]
fn arch_specific_names_are_not_found_on_the_other_arch() {
    assert_eq!(name::by_tlfs_name(Arch::Arm64, "HvX64RegisterRip"), None);
    assert_eq!(name::by_tlfs_name(Arch::X64, "HvArm64RegisterPc"), None);
    assert_eq!(name::by_short_name(Arch::Arm64, "hypercall"), None);
    assert_eq!(name::by_short_name(Arch::X64, "partition_info_page"), None);
    assert_eq!(name::by_number(Arch::Arm64, x64::XMM0).unwrap().short, "q0");
    assert_eq!(name::by_number(Arch::X64, HvRegisterName(0x2FFFE)), None);
    assert_eq!(name::lookup(Arch::X64, "no_such_register"), None);
    assert_eq!(name::lookup(Arch::X64, "0xZZ"), None);
    assert_eq!(name::lookup(Arch::X64, ""), None);
}

#[test]
fn aliases_resolve_to_the_digest_name_and_never_shadow_one() {
    for a in name::ALIASES {
        for arch in Arch::ALL {
            if a.arch.is_some_and(|x| x != arch) {
                continue;
            }
            let by_alias = name::by_tlfs_name(arch, a.alias).or(name::by_short_name(arch, a.alias));
            assert_eq!(by_alias.map(|e| e.number), Some(a.number), "{a:?}");
            assert!(
                name::entries(arch).all(|e| !e.name.eq_ignore_ascii_case(a.alias)
                    && !e.short.eq_ignore_ascii_case(a.alias)),
                "{a:?} shadows a table name"
            );
        }
    }
    let eip = name::by_tlfs_name(Arch::X64, "HvX64RegisterSysenterRip").unwrap();
    assert_eq!(eip.name, "HvX64RegisterSysenterEip");
    assert_eq!(
        name::by_short_name(Arch::Arm64, "x29").unwrap().number,
        arm64::FP
    );
}

/// Spot checks typed independently from the TLFS register list (first, last and odd
/// members of each block, and the names code depends on).
#[test]
fn spot_checks_against_the_digest() {
    let x64_expect: &[(&str, u32)] = &[
        ("HvX64RegisterRax", 0x0002_0000),
        ("HvX64RegisterR15", 0x0002_000F),
        ("HvX64RegisterRip", 0x0002_0010),
        ("HvX64RegisterRflags", 0x0002_0011),
        ("HvX64RegisterXmm15", 0x0003_000F),
        ("HvX64RegisterFpMmx7", 0x0003_0017),
        ("HvX64RegisterXmmControlStatus", 0x0003_0019),
        ("HvX64RegisterCr8", 0x0004_0004),
        ("HvX64RegisterXfem", 0x0004_0005),
        ("HvX64RegisterIntermediateCr3", 0x0004_1002),
        ("HvX64RegisterDr7", 0x0005_0005),
        ("HvX64RegisterTr", 0x0006_0007),
        ("HvX64RegisterGdtr", 0x0007_0001),
        ("HvX64RegisterSysenterEsp", 0x0008_0007),
        ("HvX64RegisterMsrMtrrPhysMaskF", 0x0008_004F),
        ("HvX64RegisterMsrMtrrFix4kF8000", 0x0008_007A),
        ("HvX64RegisterXfdErr", 0x0008_009A),
        ("HvX64RegisterAmdVmCr", 0x0008_00B4),
        ("HvX64RegisterRtitCr3Match", 0x0008_100C),
        ("HvX64RegisterLbrInfo0", 0x0008_3300),
        ("HvX64RegisterApicIrr7", 0x0008_4827),
        ("HvX64RegisterApicSelfIpi", 0x0008_483F),
        ("HvX64RegisterYmm15High", 0x000C_001F),
        ("HvX64RegisterCrInterceptIa32MiscEnableMask", 0x000E_0003),
        ("HvX64RegisterPendingDebugException", 0x0001_0007),
        ("HvX64RegisterHypercall", 0x0009_0001),
        ("HvX64RegisterSyntheticTpr", 0x0009_0012),
        ("HvX64RegisterSevAvicGpa", 0x0009_0043),
        ("HvX64RegisterNestedVmxInvVpid", 0x0009_0053),
        ("HvRegisterStimeUnhaltedTimerCount", 0x000B_0101),
    ];
    let arm64_expect: &[(&str, u32)] = &[
        ("HvArm64RegisterX0", 0x0002_0000),
        ("HvArm64RegisterX28", 0x0002_001C),
        ("HvArm64RegisterFp", 0x0002_001D),
        ("HvArm64RegisterLr", 0x0002_001E),
        ("HvArm64RegisterPc", 0x0002_0022),
        ("HvArm64RegisterPstate", 0x0002_0023),
        ("HvArm64RegisterXzr", 0x0002_FFFE),
        ("HvArm64RegisterSpsrElx", 0x0002_100D),
        ("HvArm64RegisterIdAa64Mmfr4El1", 0x0002_203C),
        ("HvArm64RegisterQ31", 0x0003_001F),
        ("HvArm64RegisterZ31", 0x0003_011F),
        ("HvArm64RegisterP15", 0x0003_012F),
        ("HvArm64RegisterFfr", 0x0003_0130),
        ("HvArm64RegisterApiBKeyLoEl1", 0x0004_002F),
        ("HvArm64RegisterZcrEl1", 0x0004_0071),
        ("HvArm64RegisterTtbr1Elx", 0x0004_007F),
        ("HvArm64RegisterZcrElx", 0x0004_0081),
        ("HvArm64RegisterDbgwvr15El1", 0x0005_003F),
        ("HvArm64RegisterTrfcrElx", 0x0005_0057),
        ("HvArm64RegisterPmevcntr30El0", 0x0005_2025),
        ("HvArm64RegisterPmevtyper30El0", 0x0005_2044),
        ("HvArm64RegisterPmxevtyperEl0", 0x0005_204E),
        ("HvArm64RegisterAmevcntr03El0", 0x0005_3003),
        ("HvArm64RegisterPmsnevfrEl1", 0x0005_400C),
        ("HvArm64RegisterErxstatusEl1", 0x0005_600D),
        ("HvArm64RegisterCntvTvalElx", 0x0005_8019),
        ("HvArm64RegisterGicrBaseGpa", 0x0006_3000),
        ("HvArm64RegisterPartitionInfoPage", 0x0009_0015),
    ];
    let common_expect: &[(&str, u32)] = &[
        ("HvRegisterExplicitSuspend", 0x0000_0000),
        ("HvRegisterHypervisorVersion", 0x0000_0100),
        ("HvRegisterIsolationConfiguration", 0x0000_0209),
        ("HvRegisterGuestCrashCtl", 0x0000_0215),
        ("HvRegisterPowerStateTriggerC3", 0x0000_0225),
        ("HvRegisterMemoryZeroingControl", 0x0000_0270),
        ("HvRegisterPendingInterruption", 0x0001_0002),
        ("HvRegisterInterruptState", 0x0001_0003),
        ("HvRegisterPendingEvent3", 0x0001_0009),
        ("HvRegisterVpRuntime", 0x0009_0000),
        ("HvRegisterGuestOsId", 0x0009_0002),
        ("HvRegisterVpIndex", 0x0009_0003),
        ("HvRegisterTimeRefCount", 0x0009_0004),
        ("HvRegisterStatsVpInternal", 0x0009_0023),
        ("HvRegisterNestedVpIndex", 0x0009_1003),
        ("HvRegisterSint15", 0x000A_000F),
        ("HvRegisterSirbp", 0x000A_0015),
        ("HvRegisterNestedSirbp", 0x000A_1015),
        ("HvRegisterStimer3Count", 0x000B_0007),
        ("HvRegisterVsmVpStatus", 0x000D_0003),
        ("HvRegisterVsmPartitionStatus", 0x000D_0004),
        ("HvRegisterVsmVpSecureConfigVtl14", 0x000D_001E),
        ("HvRegisterIsolationCapabilities", 0x000D_0100),
    ];
    for (arch, list) in [
        (Arch::X64, x64_expect),
        (Arch::Arm64, arm64_expect),
        (Arch::X64, common_expect),
        (Arch::Arm64, common_expect),
    ] {
        for (tlfs, number) in list {
            let e = name::by_tlfs_name(arch, tlfs).unwrap_or_else(|| panic!("{arch}: {tlfs}"));
            assert_eq!(e.number.0, *number, "{arch}: {tlfs}");
        }
    }
}

#[test]
fn table_sizes_match_the_expanded_digest_ranges() {
    // §5.1 common: 134; §5.2 x64 + x64-only §5.1: 413; §5.3 ARM64 +
    // ARM64-only §5.1: 432.
    assert_eq!(
        name::entries(Arch::X64)
            .filter(|e| e.arch.is_none())
            .count(),
        134
    );
    assert_eq!(all(Arch::X64).len(), 134 + 413);
    assert_eq!(all(Arch::Arm64).len(), 134 + 432);
}

#[test]
fn constants_used_by_code_have_the_digest_numbers() {
    assert_eq!(x64::RAX.0, 0x0002_0000);
    assert_eq!(x64::RSP.0, 0x0002_0004);
    assert_eq!(x64::RIP.0, 0x0002_0010);
    assert_eq!(x64::ES.0, 0x0006_0000);
    assert_eq!(x64::IDTR.0, 0x0007_0000);
    assert_eq!(x64::EFER.0, 0x0008_0001);
    assert_eq!(x64::XMM0.0 + 15, x64::XMM15.0);
    assert_eq!(x64::FP_CONTROL_STATUS.0, 0x0003_0018);
    assert_eq!(x64::VP_INDEX, common::VP_INDEX);
    assert_eq!(arm64::VP_INDEX, common::VP_INDEX);
    assert_eq!(x64::GUEST_OS_ID.0, 0x0009_0002);
    assert_eq!(x64::HYPERCALL.0, 0x0009_0001);
    assert_eq!(common::SINT0.0 + 15, common::SINT15.0);
    assert_eq!(common::PRIVILEGES_AND_FEATURES_INFO.0, 0x200);
    assert_eq!(common::VSM_PARTITION_STATUS.0, 0x000D_0004);
    assert_eq!(arm64::X0, x64::RAX);
    assert_eq!(arm64::PC.0, 0x0002_0022);
}
