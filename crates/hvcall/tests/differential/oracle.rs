//! The expected outcome of every case: each one replayed through
//! `hvcall_dispatch::dispatch` on the reference model (`hvcall-model`)
//! configured to mirror the VM the guest runs in.
//!
//! Mirror: the root partition 1 (no VPs) and the VM 2 (its child, two VPs,
//! VP 0 calling, VTL 0 only), the privileges of behaviour.md §6
//! (AccessHypercallMsrs, AccessVpIndex, and AccessVpRegisters unless the
//! VM withholds it), both XMM fast
//! bits, 16 MiB of RAM from GPA 0 with the hypercall page as an overlay,
//! the x64 convention at CPL 0 with the hypercall instruction at the
//! start of the hypercall page.
//!
//! Register values: the model cannot know most real values (RSP, CR3,
//! TSC, ...); those names hold a *wildcard* ([`wildcard`]), and the
//! comparison only checks that the VMM wrote the same slot. Names whose
//! value the test knows independently of the VMM hold it: VpIndex, the
//! guest OS ID and hypercall MSR the guest wrote (rt's `GUEST_OS_ID`, the
//! page GPA | enable), and for the calling VP (behaviour.md §5) RCX =
//! the control word, RDX/R8 = pair 0, XMM0–5 = pairs 1–6 and RIP = the
//! hypercall instruction.

use hvcall_abi::name::x64;
use hvcall_abi::{privilege, Arch, HvRegisterName, HvRegisterValue};
use hvcall_dispatch::registers::x64 as gpr;
use hvcall_dispatch::{
    dispatch, CallContext, Convention, DispatchConfig, GuestMemory, Outcome, RegisterFile, VpState,
};
use hvcall_model::{GuestRam, Model, ROOT_PARTITION, VM_PARTITION};

use crate::cases::{Case, HYPERCALL_PAGE, RAM_SIZE, SERVED, WINDOW};

/// The VM's VP count.
pub const VPS: u32 = 2;
/// rt's guest OS ID (`guests/rt/src/hv.rs`), which the guest writes.
pub const GUEST_OS_ID: u64 = (1 << 63) | (0x7F << 56) | 1;
/// What the model reports as the result of a call it answers with #UD
/// (never expected here: CPL 0 and both XMM bits advertised).
pub const INJECT_UD: u64 = u64::MAX;

/// What one case must leave behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    /// RAX after the call.
    pub result: u64,
    /// RDX/R8 and XMM0–5 after the call.
    pub regs: [[u64; 2]; 7],
    /// The case's window after the call.
    pub window: Vec<u8>,
}

/// The value the model holds for a register whose real value it cannot
/// know: a pattern no real register of this guest holds.
pub fn wildcard(vp: u32, name: HvRegisterName) -> HvRegisterValue {
    HvRegisterValue::from_parts(
        0xD1CE_D1CE_0000_0000 | u64::from(name.0),
        0xD1CE_0000_0000_0000 | u64::from(vp),
    )
}

/// Whether a 16-byte slot holds a [`wildcard`].
pub fn is_wildcard(slot: [u64; 2]) -> bool {
    slot[0] >> 32 == 0xD1CE_D1CE && slot[1] >> 48 == 0xD1CE
}

fn value(v: u128) -> HvRegisterValue {
    HvRegisterValue::from_parts(v as u64, (v >> 64) as u64)
}

fn mirror(access_vp_registers: bool) -> Model {
    let mut privileges = privilege::ACCESS_HYPERCALL_MSRS | privilege::ACCESS_VP_INDEX;
    if access_vp_registers {
        privileges |= privilege::ACCESS_VP_REGISTERS;
    }
    let mut builder = Model::builder(Arch::X64)
        .root_vps(0)
        .partition(VM_PARTITION, ROOT_PARTITION, VPS)
        .privileges(VM_PARTITION, privileges)
        .xmm_fast(VM_PARTITION, true, true)
        .caller(VM_PARTITION, 0);
    for vp in 0..VPS {
        for &name in SERVED {
            builder = builder.register(VM_PARTITION, vp, 0, name, wildcard(vp, name));
        }
        let known = [
            (x64::VP_INDEX, u128::from(vp)),
            (x64::GUEST_OS_ID, u128::from(GUEST_OS_ID)),
            (x64::HYPERCALL, u128::from(HYPERCALL_PAGE | 1)),
        ];
        for (name, v) in known {
            builder = builder.register(VM_PARTITION, vp, 0, name, value(v));
        }
    }
    builder.build()
}

/// Replays `cases` in order on one mirror model and one RAM, as VP 0 of
/// the VM; `config` is the dispatcher's work budget; the VM's partition
/// has AccessVpRegisters if `access_vp_registers`.
pub fn replay(cases: &[Case], config: &DispatchConfig, access_vp_registers: bool) -> Vec<Effect> {
    let mut model = mirror(access_vp_registers);
    let mut ram = GuestRam::with_region(0, RAM_SIZE).expect("16 MiB region");
    ram.add_overlay(HYPERCALL_PAGE);
    let mut state = VpState::new();
    let ctx = CallContext {
        convention: Convention::X64,
        privileged: true,
        instruction_pointer: HYPERCALL_PAGE,
    };
    cases
        .iter()
        .map(|case| {
            ram.poke(case.window, &case.window_bytes)
                .expect("window inside RAM");
            let mut regs = RegisterFile::default();
            regs.gprs[gpr::RCX] = case.control;
            regs.gprs[gpr::RDX] = case.regs[0][0];
            regs.gprs[gpr::R8] = case.regs[0][1];
            let pair = |p: [u64; 2]| u128::from(p[0]) | u128::from(p[1]) << 64;
            for k in 0..6 {
                regs.vectors[k] = pair(case.regs[k + 1]);
            }
            // The caller's own registers at the call (behaviour.md §5).
            let own = [
                (x64::RCX, u128::from(case.control)),
                (x64::RDX, u128::from(case.regs[0][0])),
                (x64::R8, u128::from(case.regs[0][1])),
                (x64::RIP, u128::from(HYPERCALL_PAGE)),
            ];
            let xmm = (0..6).map(|k| (HvRegisterName(x64::XMM0.0 + k as u32), regs.vectors[k]));
            for (name, v) in own.into_iter().chain(xmm) {
                model.set_register(VM_PARTITION, 0, 0, name, value(v));
            }
            let result = call(&ctx, &mut regs, &mut ram, &mut model, &mut state, config);
            let mut out = [[0u64; 2]; 7];
            out[0] = [regs.gprs[gpr::RDX], regs.gprs[gpr::R8]];
            for k in 0..6 {
                out[k + 1] = [regs.vectors[k] as u64, (regs.vectors[k] >> 64) as u64];
            }
            Effect {
                result,
                regs: out,
                window: ram
                    .peek(case.window, WINDOW as usize)
                    .expect("window inside RAM"),
            }
        })
        .collect()
}

/// One call to completion: the guest re-executes a continued call, so the
/// model does too (at most one entry per element plus one).
fn call(
    ctx: &CallContext,
    regs: &mut RegisterFile,
    ram: &mut impl GuestMemory,
    model: &mut Model,
    state: &mut VpState<<Model as hvcall_dispatch::Hypervisor>::Snapshot>,
    config: &DispatchConfig,
) -> u64 {
    for _ in 0..=4096 {
        match dispatch(ctx, regs, ram, model, state, config) {
            Outcome::Complete => return regs.gprs[gpr::RAX],
            Outcome::Continue => {}
            Outcome::InjectUndefined => return INJECT_UD,
        }
    }
    panic!("the model did not complete a call in 4097 entries");
}
