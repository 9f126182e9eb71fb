//! Contract §8 step 8c for the host's writes to a stopped VM
//! (`Vm::set_vp_registers`): every writable register, written with edge
//! values (all ones, each bit flipped alone, the canonical boundary, good
//! values), either refuses the value with HV_STATUS_INVALID_REGISTER_VALUE
//! at its element and changes nothing, or reads back what was written.
//! The values the architecture refuses (issue 16 item 7) must be refused,
//! and good edge values must be taken.

mod common;

use common::{config, guests, kvm_available};
use hvcall_abi::name::x64;
use hvcall_abi::{HvRegisterName, HvRegisterValue, HvStatus, SetVpRegistersElement};
use hvcall_vmm::{loader, ReadError, Vm};

const VP: u32 = 1;
const CANONICAL_EDGES: [u64; 4] = [
    0x0000_7FFF_FFFF_FFFF,
    0x0000_8000_0000_0000,
    0xFFFF_7FFF_FFFF_FFFF,
    0xFFFF_8000_0000_0000,
];

/// What one write did.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Taken,
    Refused,
}

fn vm() -> Vm {
    let mut vm = Vm::new(&config(2)).unwrap();
    vm.load_elf(&loader::flat_elf(0x10_0000, guests::EXIT42, 0))
        .unwrap();
    vm
}

fn read(vm: &mut Vm, name: HvRegisterName) -> u128 {
    vm.get_vp_registers(VP, &[name]).unwrap()[0].as_u128()
}

fn set(name: HvRegisterName, v: u128) -> SetVpRegistersElement {
    SetVpRegistersElement::new(name, HvRegisterValue::from(v))
}

/// Puts `name` back to `value` (ApicBase through "disabled", the one
/// way back from x2APIC mode).
fn restore(vm: &mut Vm, name: HvRegisterName, value: u128) {
    if name == x64::APIC_BASE {
        vm.set_vp_registers(VP, &[set(name, value & !0xC00)])
            .unwrap();
    }
    vm.set_vp_registers(VP, &[set(name, value)])
        .unwrap_or_else(|e| panic!("{name:?} back to {value:#x}: {e:?}"));
}

/// Writes `name = v` as element 1 of [R9, it, R10]: a refusal must be
/// INVALID_REGISTER_VALUE at index 1 with R9 written, R10 and the
/// register unchanged; a success must read back `v`. The register is put
/// back after a success.
fn write(vm: &mut Vm, name: HvRegisterName, v: u128) -> Outcome {
    let before = read(vm, name);
    vm.set_vp_registers(VP, &[set(x64::R9, 0), set(x64::R10, 0)])
        .unwrap();
    let batch = [set(x64::R9, 0x99), set(name, v), set(x64::R10, 0x10)];
    match vm.set_vp_registers(VP, &batch) {
        Ok(()) => {
            assert_eq!(read(vm, name), v, "{name:?} = {v:#x}: reads back");
            restore(vm, name, before);
            Outcome::Taken
        }
        Err(e) => {
            assert_eq!(
                e,
                ReadError::Call {
                    status: HvStatus::INVALID_REGISTER_VALUE,
                    index: 1
                },
                "{name:?} = {v:#x}"
            );
            let after = vm.get_vp_registers(VP, &[name, x64::R9, x64::R10]).unwrap();
            assert_eq!(after[0].as_u128(), before, "{name:?} = {v:#x} changed");
            assert_eq!(after[1].as_u64(), 0x99, "the element before is written");
            assert_eq!(after[2].as_u64(), 0, "the element after is not");
            Outcome::Refused
        }
    }
}

/// The edge values of a 64-bit register holding `current`: all ones,
/// zero, the canonical boundary, and `current` with each bit flipped.
fn edges(current: u64) -> Vec<u64> {
    let mut v = vec![!0, 0];
    v.extend(CANONICAL_EDGES);
    v.extend((0..64).map(|b| current ^ 1 << b));
    v
}

/// CPUID 0x8000_0001 ECX bit 2 (SVM) as the VMM gives it to the guest.
fn guest_has_svm() -> bool {
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    let table = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .unwrap();
    table
        .as_slice()
        .iter()
        .any(|e| e.function == 0x8000_0001 && e.ecx & 1 << 2 != 0)
}

#[test]
fn step_8c_every_writable_register_refuses_or_reads_back_its_edge_values() {
    if !kvm_available("step_8c_every_writable_register_refuses_or_reads_back_its_edge_values") {
        return;
    }
    let mut vm = vm();
    // 64-bit registers: every edge value is refused or read back.
    let plain = [
        x64::RAX,
        x64::RIP,
        x64::RFLAGS,
        x64::CR0,
        x64::CR2,
        x64::CR3,
        x64::CR4,
        x64::CR8,
        x64::EFER,
        x64::APIC_BASE,
        x64::PAT,
        x64::TSC_AUX,
        x64::SYSENTER_CS,
        x64::SYSENTER_EIP,
        x64::SYSENTER_ESP,
        x64::STAR,
        x64::LSTAR,
        x64::CSTAR,
        x64::SFMASK,
        x64::KERNEL_GS_BASE,
        x64::DR0,
        x64::DR3,
        x64::DR6,
        x64::DR7,
        x64::XFEM,
    ];
    for name in plain {
        let current = read(&mut vm, name) as u64;
        for v in edges(current) {
            write(&mut vm, name, u128::from(v));
        }
    }
    // Segment bases (low qword), table bases (high qword), the FPU
    // control registers: each bit of the 128-bit value flipped alone.
    for name in [
        x64::ES,
        x64::CS,
        x64::SS,
        x64::DS,
        x64::FS,
        x64::GS,
        x64::LDTR,
        x64::TR,
        x64::GDTR,
        x64::IDTR,
        x64::XMM_CONTROL_STATUS,
        x64::FP_CONTROL_STATUS,
        x64::FP_MMX0,
        x64::XMM7,
    ] {
        let current = read(&mut vm, name);
        for b in 0..128 {
            write(&mut vm, name, current ^ 1 << b);
        }
        for edge in CANONICAL_EDGES {
            let base = if matches!(name, x64::GDTR | x64::IDTR) {
                (current & u128::from(u64::MAX)) | u128::from(edge) << 64
            } else {
                (current & !u128::from(u64::MAX)) | u128::from(edge)
            };
            write(&mut vm, name, base);
        }
    }
}

#[test]
fn step_8c_refuses_what_the_architecture_refuses() {
    if !kvm_available("step_8c_refuses_what_the_architecture_refuses") {
        return;
    }
    let mut vm = vm();
    let svme = read(&mut vm, x64::EFER) | 1 << 12;
    let mut refused = vec![
        (x64::EFER, u128::from(u64::MAX)),
        (x64::PAT, u128::from(u64::MAX)),
        (x64::PAT, 0x0007_0406_0007_0402), // memory type 2
        (x64::TSC_AUX, u128::from(u64::MAX)),
        (x64::TSC_AUX, 1 << 32),
        (x64::SFMASK, 1 << 32),
        (x64::SYSENTER_EIP, 0x0000_8000_0000_0000),
        (x64::SYSENTER_ESP, 0xFFFF_7FFF_FFFF_FFFF),
        (x64::LSTAR, 0x0000_8000_0000_0000),
        (x64::KERNEL_GS_BASE, 0xFFFF_7FFF_FFFF_FFFF),
        (x64::CR0, 0x8000_0031 | 1 << 8), // a reserved bit KVM would keep
        (x64::CR4, u128::from(u64::MAX)),
        (x64::DR6, 1 << 32),
        (x64::DR7, u128::from(u64::MAX)),
        (x64::RFLAGS, 0),             // bit 1 is fixed
        (x64::RFLAGS, 0x2 | 1 << 17), // VM in long mode
    ];
    if !guest_has_svm() {
        refused.push((x64::EFER, svme));
    }
    for (name, v) in refused {
        assert_eq!(
            write(&mut vm, name, v),
            Outcome::Refused,
            "{name:?} = {v:#x}"
        );
    }
    for name in [x64::FS, x64::GS, x64::TR] {
        let current = read(&mut vm, name);
        for bad in [0x0000_8000_0000_0000u64, 0xFFFF_7FFF_FFFF_FFFF] {
            let v = (current & !u128::from(u64::MAX)) | u128::from(bad);
            assert_eq!(
                write(&mut vm, name, v),
                Outcome::Refused,
                "{name:?} base {bad:#x}"
            );
        }
    }
    for name in [x64::GDTR, x64::IDTR] {
        let current = read(&mut vm, name);
        let v = (current & u128::from(u64::MAX)) | 0x0000_8000_0000_0000u128 << 64;
        assert_eq!(write(&mut vm, name, v), Outcome::Refused, "{name:?}");
    }
    // XmmControlStatus: MXCSR_MASK is read-only, MXCSR bits 31:16 reserved.
    let xmmcs = read(&mut vm, x64::XMM_CONTROL_STATUS);
    for v in [xmmcs ^ 1 << 96, xmmcs | 1 << 80] {
        assert_eq!(write(&mut vm, x64::XMM_CONTROL_STATUS, v), Outcome::Refused);
    }
}

#[test]
fn step_8c_takes_good_edge_values() {
    if !kvm_available("step_8c_takes_good_edge_values") {
        return;
    }
    let mut vm = vm();
    let efer = read(&mut vm, x64::EFER);
    let taken = [
        (x64::EFER, efer | 1),             // SCE
        (x64::PAT, 0x0706_0504_0100_0106), // types 0, 1, 4-7
        (x64::TSC_AUX, 0xFFFF_FFFF),
        (x64::SFMASK, 0xFFFF_FFFF),
        (x64::STAR, u128::from(u64::MAX)),
        (x64::SYSENTER_CS, 0xFFFF),
        (x64::SYSENTER_EIP, 0x0000_7FFF_FFFF_FFFF),
        (x64::SYSENTER_ESP, 0xFFFF_8000_0000_0000),
        (x64::LSTAR, 0xFFFF_8000_0000_0000),
        (x64::CSTAR, 0x0000_7FFF_FFFF_FFFF),
        (x64::KERNEL_GS_BASE, u128::from(u64::MAX)),
        (x64::DR0, u128::from(u64::MAX)),
        (x64::DR6, 0xFFFF_0FF0),
        (x64::DR7, 0x400),
        (x64::RFLAGS, 0x2 | 1 << 21), // ID
        (x64::CR8, 15),
    ];
    for (name, v) in taken {
        assert_eq!(write(&mut vm, name, v), Outcome::Taken, "{name:?} = {v:#x}");
    }
    for name in [x64::FS, x64::GS] {
        let current = read(&mut vm, name);
        for good in [0x0000_7FFF_FFFF_FFFFu64, 0xFFFF_8000_0000_0000] {
            let v = (current & !u128::from(u64::MAX)) | u128::from(good);
            assert_eq!(
                write(&mut vm, name, v),
                Outcome::Taken,
                "{name:?} base {good:#x}"
            );
        }
    }
    let gdtr = read(&mut vm, x64::GDTR);
    let v = (gdtr & u128::from(u64::MAX)) | 0xFFFF_8000_0000_0000u128 << 64;
    assert_eq!(write(&mut vm, x64::GDTR, v), Outcome::Taken);
}

/// The TSC ticks: a write that succeeds reads back at or just past the
/// value written (within 2^36 ticks); a KVM that does not hold the value
/// (kvm_pvm ignores a host's TSC write) makes the write fail with 0x50.
#[test]
fn step_8c_a_tsc_write_holds_or_is_refused() {
    if !kvm_available("step_8c_a_tsc_write_holds_or_is_refused") {
        return;
    }
    let mut vm = vm();
    for v in [u64::MAX, 0x1000, 1 << 40, 0x7FFF_FFFF_0000_0000] {
        let batch = [set(x64::R9, 0x99), set(x64::TSC, u128::from(v))];
        match vm.set_vp_registers(VP, &batch) {
            Ok(()) => {
                let now = read(&mut vm, x64::TSC) as u64;
                assert!(now.wrapping_sub(v) < 1 << 36, "TSC = {v:#x} reads {now:#x}");
            }
            Err(e) => {
                assert_eq!(
                    e,
                    ReadError::Call {
                        status: HvStatus::INVALID_REGISTER_VALUE,
                        index: 1
                    }
                );
                assert_eq!(read(&mut vm, x64::R9), 0x99, "the element before");
            }
        }
    }
}
