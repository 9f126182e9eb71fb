//! Time of one `dispatch` of HvCallGetVpRegisters against the reference
//! model: memory form with 1, 16 and 256 registers, x64 fast form with 4.
//!
//! Run with `cargo bench -p hvcall-dispatch --bench dispatch`. The model
//! copies the target's register map for its snapshot, so these numbers
//! include that cost; a VMM's register source has its own.

use hvcall_abi::{partition_id, vp_index, Arch, GetVpRegistersHeader, HvInputVtl};
use hvcall_dispatch::registers::{x64, RegisterFile};
use hvcall_dispatch::{dispatch, CallContext, Convention, DispatchConfig, Outcome, VpState};
use hvcall_model::{standard_names, GuestRam, Model};
use zerocopy::IntoBytes;

const IN_GPA: u64 = 0x1000;
const OUT_GPA: u64 = 0x2000;

fn main() {
    divan::main();
}

/// Input list bytes and a matching register file for `n` registers.
fn setup(n: usize, fast: bool) -> (Model, GuestRam, RegisterFile) {
    let model = Model::standard(Arch::X64);
    let mut ram = GuestRam::with_region(0, 0x10000).unwrap_or_default();
    let header = GetVpRegistersHeader::new(partition_id::SELF, vp_index::SELF, HvInputVtl::new());
    let mut input = header.as_bytes().to_vec();
    let names = standard_names(Arch::X64);
    for i in 0..n {
        if let Some(name) = names.get(i % names.len()) {
            input.extend_from_slice(&name.0.to_le_bytes());
        }
    }
    let mut regs = RegisterFile::default();
    let control = 0x50 | (u64::from(fast) << 16) | ((n as u64) << 32);
    if let Some(r) = regs.gprs.get_mut(x64::RCX) {
        *r = control;
    }
    if fast {
        let word = |k: usize| {
            let mut w = [0u8; 8];
            for (d, s) in w.iter_mut().zip(input.iter().skip(8 * k)) {
                *d = *s;
            }
            u64::from_le_bytes(w)
        };
        regs.gprs[x64::RDX] = word(0);
        regs.gprs[x64::R8] = word(1);
        regs.vectors[0] = u128::from(word(2)) | (u128::from(word(3)) << 64);
    } else {
        let _ = ram.poke(IN_GPA, &input);
        regs.gprs[x64::RDX] = IN_GPA;
        regs.gprs[x64::R8] = OUT_GPA;
    }
    (model, ram, regs)
}

fn bench(bencher: divan::Bencher, n: usize, fast: bool) {
    let (mut model, mut ram, regs) = setup(n, fast);
    let ctx = CallContext::new(Convention::X64, true, 0x1000);
    let config = DispatchConfig::default();
    let mut state = VpState::new();
    bencher.bench_local(|| {
        let mut r = regs.clone();
        let out = dispatch(&ctx, &mut r, &mut ram, &mut model, &mut state, &config);
        assert_eq!(out, Ok(Outcome::Complete));
        assert_eq!(r.gprs[x64::RAX], (n as u64) << 32);
        r
    });
}

/// Memory form, `n` registers.
#[divan::bench(args = [1, 16, 256])]
fn memory_form(bencher: divan::Bencher, n: usize) {
    bench(bencher, n, false);
}

/// XMM fast form, 4 registers (the most that fit).
#[divan::bench]
fn fast_form_4(bencher: divan::Bencher) {
    bench(bencher, 4, true);
}
