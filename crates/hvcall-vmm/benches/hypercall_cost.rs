//! What a hypercall costs compared with the cheapest exit, on real KVM.
//!
//! `cargo bench -p hvcall-vmm --bench hypercall_cost` runs the guest loop
//! of `tests/guests/bench.S` N times per case and reports the time per
//! iteration (minus a run with N = 0) and its ratio to a null port-I/O
//! exit. Guest code at CPL 0 is emulated on this KVM, so absolute numbers
//! vary a lot between machines; the ratios are what to compare.
//!
//! It times whole VM runs itself instead of using divan (which the
//! dispatcher's bench uses): each sample is one guest-side loop of N
//! hypercalls with the VM's boot subtracted, and the report is a ratio to
//! a floor measured in the same run, which divan does not compute.

#[allow(dead_code, reason = "the benchmark runs only the BENCH guest")]
#[path = "../tests/common/guests.rs"]
mod guests;

use std::time::{Duration, Instant};

use hvcall_vmm::{loader, Console, Vm, VmConfig};

const N: u64 = 20_000;

/// One case: hypercall control (mode 1) or `None` for a null OUT (mode 0),
/// and the input block at 0x220000.
struct Case {
    name: &'static str,
    control: Option<u64>,
    input: Vec<u8>,
}

fn input(partition: u64, vp: u32, names: &[u32]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&partition.to_le_bytes());
    b.extend_from_slice(&vp.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    for n in names {
        b.extend_from_slice(&n.to_le_bytes());
    }
    b
}

fn time_run(case: &Case, iterations: u64) -> Duration {
    let config = VmConfig {
        cpus: 2,
        memory_mib: 16,
        watchdog: Duration::from_secs(60),
        console: Console::buffer().0,
        ..Default::default()
    };
    let mut vm = Vm::new(&config).expect("VM");
    vm.load_elf(&loader::flat_elf(0x10_0000, guests::BENCH, 0))
        .expect("load");
    let ram = vm.ram();
    ram.write(0x20_0000, &iterations.to_le_bytes()).unwrap();
    ram.write(0x20_0008, &case.control.unwrap_or(0).to_le_bytes())
        .unwrap();
    ram.write(0x20_0010, &u64::from(case.control.is_some()).to_le_bytes())
        .unwrap();
    ram.write(0x22_0000, &case.input).unwrap();
    let start = Instant::now();
    let exit = vm.run().expect("run");
    let elapsed = start.elapsed();
    assert_eq!(exit, hvcall_vmm::VmExit::Exited(0), "{}", case.name);
    elapsed
}

fn main() {
    if !std::path::Path::new("/dev/kvm").exists() {
        eprintln!("SKIP hypercall_cost: /dev/kvm is missing");
        return;
    }
    let get = |n: u64| 0x50 | (n << 32);
    let self_names = [0x0002_0000, 0x0002_0001, 0x0002_0002, 0x0002_0003];
    let cases = [
        Case {
            name: "null OUT exit",
            control: None,
            input: Vec::new(),
        },
        Case {
            name: "unimplemented call (0x52)",
            control: Some(0x52),
            input: Vec::new(),
        },
        Case {
            name: "GetVpRegisters self, 1 GPR",
            control: Some(get(1)),
            input: input(u64::MAX, 0xFFFF_FFFE, &[0x0002_0000]),
        },
        Case {
            name: "GetVpRegisters self, 4 GPRs",
            control: Some(get(4)),
            input: input(u64::MAX, 0xFFFF_FFFE, &self_names),
        },
        Case {
            name: "GetVpRegisters self, Lstar (1 MSR ioctl)",
            control: Some(get(1)),
            input: input(u64::MAX, 0xFFFF_FFFE, &[0x0008_0009]),
        },
        Case {
            name: "GetVpRegisters VP 1 (running), 1 GPR",
            control: Some(get(1)),
            input: input(2, 1, &[0x0002_0000]),
        },
        Case {
            name: "GetVpRegisters VP 1 (running), Lstar+Xmm0+Dr0",
            control: Some(get(3)),
            input: input(2, 1, &[0x0008_0009, 0x0003_0000, 0x0005_0000]),
        },
    ];
    let mut null = None;
    println!("{:<44} {:>12} {:>8}", "case", "ns/iter", "ratio");
    for case in &cases {
        let base = time_run(case, 0);
        let full = time_run(case, N);
        let per = full.saturating_sub(base).as_nanos() as f64 / N as f64;
        let reference = *null.get_or_insert(per);
        println!("{:<44} {:>12.0} {:>8.2}", case.name, per, per / reference);
    }
}
