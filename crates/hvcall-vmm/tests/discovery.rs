//! Hyper-V discovery as a guest sees it: CPUID and the synthetic MSRs
//! (docs/contract.md §6), and the hypercall page overlay.

mod common;

use common::{config, guests, kvm_available, read_u32, read_u64, run};
use hvcall_vmm::cpuid::HypervLeaves;
use hvcall_vmm::{VmConfig, VmExit};

fn cpuid_leaves(cfg: &VmConfig) -> Vec<[u32; 4]> {
    let (vm, exit) = run(cfg, guests::CPUID);
    assert_eq!(exit, VmExit::Exited(0));
    (0..7)
        .map(|i| {
            let at = |r: u64| read_u32(&vm, 0x20_0000 + 16 * i + 4 * r);
            [at(0), at(1), at(2), at(3)]
        })
        .collect()
}

#[test]
fn section_6_cpuid_leaves_seen_by_the_guest() {
    if !kvm_available("section_6_cpuid_leaves_seen_by_the_guest") {
        return;
    }
    let cfg = config(1);
    let leaves = cpuid_leaves(&cfg);
    let vendor = leaves[0];
    assert!(vendor[0] >= 0x4000_0005, "max leaf {:#x}", vendor[0]);
    let name: Vec<u8> = vendor[1..].iter().flat_map(|r| r.to_le_bytes()).collect();
    assert_eq!(name, b"Microsoft Hv");
    assert_eq!(leaves[1][0].to_le_bytes(), *b"Hv#1");
    let features = leaves[3];
    assert_eq!(
        features[0] & 0x60,
        0x60,
        "AccessHypercallMsrs | AccessVpIndex"
    );
    assert_ne!(features[1] & (1 << 17), 0, "AccessVpRegisters");
    assert_eq!(features[3] & 0x8010, 0x8010, "XMM fast input and output");
    assert_ne!(
        leaves[6][2] & (1 << 31),
        0,
        "leaf 1 ECX[31] hypervisor present"
    );
    // What the guest sees is exactly what the VMM's registers report.
    let expected = HypervLeaves::new(true, true, 1);
    for (i, seen) in leaves[..6].iter().enumerate() {
        let l = expected.leaf(0x4000_0000 + i as u32);
        assert_eq!(
            *seen,
            [l.eax, l.ebx, l.ecx, l.edx],
            "leaf {:#x}",
            0x4000_0000 + i
        );
    }
}

#[test]
fn withheld_privilege_and_xmm_bits() {
    if !kvm_available("withheld_privilege_and_xmm_bits") {
        return;
    }
    let cfg = VmConfig {
        access_vp_registers: false,
        xmm_fast: false,
        ..config(1)
    };
    let features = cpuid_leaves(&cfg)[3];
    assert_eq!(features[1] & (1 << 17), 0, "--no-access-vp-registers");
    assert_eq!(features[3] & 0x8010, 0, "--no-xmm-fast withholds both bits");
    assert_eq!(features[0] & 0x60, 0x60);
}

#[test]
fn section_6_synthetic_msrs_and_overlay_page() {
    if !kvm_available("section_6_synthetic_msrs_and_overlay_page") {
        return;
    }
    let (vm, exit) = run(&config(1), guests::MSR);
    assert_eq!(exit, VmExit::Exited(0));
    let at = |i: u64| read_u64(&vm, 0x20_0000 + 8 * i);
    assert_eq!(at(0), 0, "guest OS ID resets to 0");
    assert_eq!(
        at(1),
        0x30_0000,
        "enable has no effect while the guest OS ID is 0"
    );
    assert_eq!(at(2), 0x8000_0000_0000_1234, "guest OS ID reads back");
    assert_eq!(at(3), 0x30_0001, "page enabled, RsvdP bits ignored");
    assert_eq!(at(4), 0, "VP index");
    assert_eq!(
        at(5) as u32 & 0xFF_FFFF,
        0xC3_E8E6,
        "the page reads as out 0xE8, al; ret"
    );
    assert_eq!(
        at(6) as u32 & 0xFF_FFFF,
        0xC3_E8E6,
        "guest writes do not change it"
    );
    assert_eq!(at(7), 2, "unimplemented call code through the page: 0x2");
    assert_eq!(at(8), 0x30_0003, "locked MSR keeps its value");
    assert_eq!(
        read_u64(&vm, 0x20_1068),
        4,
        "#GP on: VP index write, other synthetic MSR, GPFN outside RAM, locked write"
    );
    assert_eq!(
        read_u32(&vm, 0x30_0000),
        0,
        "the RAM page under the overlay is untouched"
    );
    let msrs = vm.synthetic_msrs();
    assert_eq!(
        (msrs.guest_os_id, msrs.hypercall),
        (0x8000_0000_0000_1234, 0x30_0003)
    );
}
