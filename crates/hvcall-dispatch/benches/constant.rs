//! Time of one `dispatch` of HvCallGetVpRegisters against a backend that
//! answers every register with a constant, so what is measured is the
//! dispatcher itself: memory form with 1, 16 and 256 elements (names
//! 0x20000 + i % 16), x64 XMM fast form with 1, and the per-element slope
//! `(t(256) - t(1)) / 255`, printed after divan's table.
//!
//! Run with `cargo bench -p hvcall-dispatch --bench constant`. The guest
//! memory is a flat byte vector behind a bounds check, which lends output
//! lists (`PartitionMemory::lend_mut`).

use std::hint::black_box;
use std::time::Instant;

use std::convert::Infallible;

use hvcall_abi::{
    partition_id, privilege, vp_index, GetVpRegistersHeader, HvInputVtl, HvRegisterName,
    HvRegisterValue,
};
use hvcall_dispatch::registers::{x64, RegisterFile};
use hvcall_dispatch::{
    dispatch, CallContext, Caller, Convention, DispatchConfig, GetVpRegisters, MemoryError, Offers,
    Outcome, PartitionInfo, PartitionMemory, Partitions, ReadRegisters, SnapshotRequest,
    SourceError, VpState,
};
use zerocopy::IntoBytes;

const IN_GPA: u64 = 0x1000;
const OUT_GPA: u64 = 0x2000;

fn main() {
    divan::main();
    // Only in a full run (`cargo bench` passes just `--bench`), not when
    // divan was asked to list or filter.
    if std::env::args().skip(1).all(|a| a == "--bench") {
        slope();
    }
}

/// One partition (2, child of 1) with one VP, every privilege, both XMM
/// bits; every register reads as its name.
struct Constant;

impl Partitions for Constant {
    fn caller(&self) -> Caller {
        Caller::new(2, 0)
            .with_privileges(privilege::ACCESS_VP_REGISTERS)
            .with_xmm_fast(true, true)
    }
    fn partition(&self, partition_id: u64) -> Option<PartitionInfo> {
        (partition_id == 2).then_some(PartitionInfo::new(Some(1), 1))
    }
    fn enabled_vtls(&self, _: u64, _: u32) -> u16 {
        1
    }
}

/// It offers HvCallGetVpRegisters only.
impl Offers for Constant {
    type Calls = (GetVpRegisters,);
}

impl ReadRegisters for Constant {
    type Snapshot = ();
    type Error = Infallible;

    fn snapshot(&mut self, _: &SnapshotRequest<'_>) -> Result<(), SourceError<Infallible>> {
        Ok(())
    }
    fn read(
        &mut self,
        _: &mut (),
        name: HvRegisterName,
    ) -> Result<HvRegisterValue, SourceError<Infallible>> {
        Ok(HvRegisterValue::from(u64::from(name.0)))
    }
}

/// 16 KiB of RAM from GPA 0.
struct Flat(Vec<u8>);

impl Flat {
    fn range(&self, gpa: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(gpa).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.0.len()).then_some(start..end)
    }
}

impl PartitionMemory for Flat {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        usize::try_from(len).is_ok_and(|len| self.range(gpa, len).is_some())
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let not_ram = MemoryError::NotRam {
            gpa,
            len: buf.len() as u64,
        };
        let range = self.range(gpa, buf.len()).ok_or(not_ram)?;
        buf.copy_from_slice(self.0.get(range).ok_or(not_ram)?);
        Ok(())
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        let not_ram = MemoryError::NotRam {
            gpa,
            len: data.len() as u64,
        };
        let range = self.range(gpa, data.len()).ok_or(not_ram)?;
        self.0.get_mut(range).ok_or(not_ram)?.copy_from_slice(data);
        Ok(())
    }
    fn lend_mut(&mut self, gpa: u64, len: u64) -> Option<&mut [u8]> {
        let range = self.range(gpa, usize::try_from(len).ok()?)?;
        self.0.get_mut(range)
    }
}

/// Memory and registers for a call of `n` elements.
fn setup(n: usize, fast: bool) -> (Flat, RegisterFile) {
    let mut ram = Flat(vec![0; 0x4000]);
    let header = GetVpRegistersHeader::new(partition_id::SELF, vp_index::SELF, HvInputVtl::new());
    let mut input = header.as_bytes().to_vec();
    for i in 0..n {
        input.extend_from_slice(&(0x2_0000 + (i as u32 % 16)).to_le_bytes());
    }
    let mut regs = RegisterFile::default();
    regs.gprs[x64::RCX] = 0x50 | (u64::from(fast) << 16) | ((n as u64) << 32);
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
        ram.0[IN_GPA as usize..IN_GPA as usize + input.len()].copy_from_slice(&input);
        regs.gprs[x64::RDX] = IN_GPA;
        regs.gprs[x64::R8] = OUT_GPA;
    }
    (ram, regs)
}

const CTX: CallContext = CallContext::new(Convention::X64, true, 0x1000);

/// One call on fresh registers; checks it completed with `n` reps.
fn call(ram: &mut Flat, regs: &RegisterFile, state: &mut VpState<()>, n: usize) -> RegisterFile {
    let mut r = regs.clone();
    let config = DispatchConfig::default();
    let out = dispatch(&CTX, &mut r, ram, &mut Constant, state, &config);
    assert_eq!(out, Ok(Outcome::Complete));
    assert_eq!(r.gprs[x64::RAX], (n as u64) << 32);
    r
}

fn bench(bencher: divan::Bencher, n: usize, fast: bool) {
    let (mut ram, regs) = setup(n, fast);
    let mut state = VpState::new();
    bencher.bench_local(|| call(&mut ram, black_box(&regs), &mut state, n));
}

/// Memory form, `n` elements.
#[divan::bench(args = [1, 16, 256])]
fn memory_form(bencher: divan::Bencher, n: usize) {
    bench(bencher, n, false);
}

/// XMM fast form, 1 element.
#[divan::bench]
fn fast_form_1(bencher: divan::Bencher) {
    bench(bencher, 1, true);
}

/// The per-element cost: the best of 20 rounds of 20,000 calls at 1 and
/// at 256 elements, then the difference over 255.
fn slope() {
    let best = |n: usize| {
        let (mut ram, regs) = setup(n, false);
        let mut state = VpState::new();
        (0..20)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..20_000 {
                    black_box(call(&mut ram, black_box(&regs), &mut state, n));
                }
                started.elapsed().as_secs_f64() * 1e9 / 20_000.0
            })
            .fold(f64::INFINITY, f64::min)
    };
    let (one, many) = (best(1), best(256));
    let _ = std::io::Write::write_all(
        &mut std::io::stdout(),
        format!(
            "per element: {:.2} ns (best of 20 × 20,000 calls: {one:.1} ns at 1, {many:.1} ns at 256)\n",
            (many - one) / 255.0
        )
        .as_bytes(),
    );
}
