//! The expected outcome of every case: each one replayed through
//! `hvcall_dispatch::dispatch` on the reference model (`hvcall-model`)
//! configured to mirror the VM the guest runs in.
//!
//! Mirror: the root partition 1 (no VPs) and the VM 2 (its child, as many
//! VPs as the VM, VTL 0 only; one model per VP, calling as that VP), the
//! privileges of docs/contract.md §6 (AccessHypercallMsrs, AccessVpIndex, and
//! AccessVpRegisters unless the VM withholds it), both XMM fast bits,
//! 64 MiB of RAM from GPA 0 with the hypercall page as an overlay and the
//! VM's boot tables copied in, the x64 convention at CPL 0 with the
//! hypercall instruction at the start of the hypercall page.
//!
//! Register values: the model cannot know most real values (RSP, CR3,
//! TSC, ...); those names hold a *wildcard* ([`wildcard`]), and the
//! comparison only checks that the VMM wrote the same slot. Names whose
//! value the test knows independently of the VMM hold it: VpIndex, the
//! guest OS ID and hypercall MSR the guest wrote (rt's `GUEST_OS_ID`, the
//! page GPA | enable), and for the calling VP (docs/contract.md §5) RCX =
//! the control word, RDX/R8 = pair 0, XMM0–5 = pairs 1–6 and RIP = the
//! hypercall instruction.

use hvcall_abi::name::x64;
use hvcall_abi::{privilege, Arch, HvRegisterName, HvRegisterValue};
use hvcall_dispatch::registers::x64 as gpr;
use hvcall_dispatch::{
    dispatch, CallContext, Convention, DispatchConfig, Outcome, PartitionMemory, ReadRegisters,
    RegisterFile, VpState,
};
use hvcall_model::{GuestRam, Model, ROOT_PARTITION, VM_PARTITION};

use super::cases::{Case, HYPERCALL_PAGE, RAM_SIZE, SERVED, WINDOW};

/// rt's guest OS ID (`guests/rt/src/hv.rs`), which the guest writes.
pub const GUEST_OS_ID: u64 = (1 << 63) | (0x7F << 56) | 1;
/// What the model reports as the result of a call it answers with #UD
/// (never expected here: CPL 0 and both XMM bits advertised).
pub const INJECT_UD: u64 = u64::MAX;
/// What the model reports for a call it did not complete in 4097 entries
/// (or that ended in an outcome this oracle does not know).
pub const RUNAWAY: u64 = u64::MAX - 1;

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

/// The registers of VP `vp` whose values the test knows (and no write of
/// a chaos case changes).
fn known(vp: u32) -> [(HvRegisterName, u128); 3] {
    [
        (x64::VP_INDEX, u128::from(vp)),
        (x64::GUEST_OS_ID, u128::from(GUEST_OS_ID)),
        (x64::HYPERCALL, u128::from(HYPERCALL_PAGE | 1)),
    ]
}

fn mirror(vps: u32, caller: u32, access_vp_registers: bool) -> Model {
    let mut privileges = privilege::ACCESS_HYPERCALL_MSRS | privilege::ACCESS_VP_INDEX;
    if access_vp_registers {
        privileges |= privilege::ACCESS_VP_REGISTERS;
    }
    let mut builder = Model::builder(Arch::X64)
        .root_vps(0)
        .partition(VM_PARTITION, ROOT_PARTITION, vps)
        .privileges(VM_PARTITION, privileges)
        .xmm_fast(VM_PARTITION, true, true)
        .caller(VM_PARTITION, caller);
    for vp in 0..vps {
        for &name in SERVED {
            builder = builder.register(VM_PARTITION, vp, 0, name, wildcard(vp, name));
        }
        for (name, v) in known(vp) {
            builder = builder.register(VM_PARTITION, vp, 0, name, value(v));
        }
    }
    builder.build()
}

/// The model side of a run: one mirror model per VP (each the caller of
/// its own cases) over one RAM.
pub struct Oracle {
    config: DispatchConfig,
    ram: GuestRam,
    models: Vec<Model>,
    vps: u32,
}

impl Oracle {
    /// A mirror of a VM with `vps` VPs whose partition has
    /// AccessVpRegisters if `access_vp_registers`; `config` is the
    /// dispatcher's work budget (results must not depend on it, §2).
    pub fn new(vps: u32, config: DispatchConfig, access_vp_registers: bool) -> Self {
        // The model's regions hold at most 16 MiB each; they touch, and no
        // list crosses a page, so the seams are invisible to a call.
        let mut ram = GuestRam::new();
        for base in (0..RAM_SIZE).step_by(16 << 20) {
            ram.add_region(base, (16 << 20).min(RAM_SIZE - base))
                .expect("16 MiB regions that touch");
        }
        ram.add_overlay(HYPERCALL_PAGE);
        let models = (0..vps)
            .map(|caller| mirror(vps, caller, access_vp_registers))
            .collect();
        Self {
            config,
            ram,
            models,
            vps,
        }
    }

    /// Copies guest bytes the cases may read besides their windows (the
    /// boot tables) into the model's RAM.
    pub fn set_ram(&mut self, gpa: u64, bytes: &[u8]) {
        self.ram.poke(gpa, bytes).expect("inside RAM");
    }

    /// Replays `case` as its VP would execute it: what it must leave behind.
    pub fn replay(&mut self, case: &Case) -> Effect {
        let model = &mut self.models[case.vp as usize];
        self.ram
            .poke(case.window, &case.window_bytes)
            .expect("window inside RAM");
        let mut regs = RegisterFile::default();
        regs.gprs[gpr::RCX] = case.control;
        regs.gprs[gpr::RDX] = case.regs[0][0];
        regs.gprs[gpr::R8] = case.regs[0][1];
        let pair = |p: [u64; 2]| u128::from(p[0]) | u128::from(p[1]) << 64;
        for k in 0..6 {
            regs.vectors[k] = pair(case.regs[k + 1]);
        }
        // The caller's own registers at the call (docs/contract.md §5).
        let own = [
            (x64::RCX, u128::from(case.control)),
            (x64::RDX, u128::from(case.regs[0][0])),
            (x64::R8, u128::from(case.regs[0][1])),
            (x64::RIP, u128::from(HYPERCALL_PAGE)),
        ];
        let xmm = (0..6).map(|k| (HvRegisterName(x64::XMM0.0 + k as u32), regs.vectors[k]));
        for (name, v) in own.into_iter().chain(xmm) {
            model.set_register(VM_PARTITION, case.vp, 0, name, value(v));
        }
        let ctx = CallContext::new(Convention::X64, true, HYPERCALL_PAGE);
        let mut state = VpState::new();
        let result = call(
            &ctx,
            &mut regs,
            &mut self.ram,
            model,
            &mut state,
            &self.config,
        );
        let mut out = [[0u64; 2]; 7];
        out[0] = [regs.gprs[gpr::RDX], regs.gprs[gpr::R8]];
        for k in 0..6 {
            out[k + 1] = [regs.vectors[k] as u64, (regs.vectors[k] >> 64) as u64];
        }
        if case.control & 0xFFFF == 0x51 {
            // A memory-form call may write the caller's own XMM0–5: the
            // guest records them after the call, so they must hold what
            // the model now holds.
            for (k, pair) in out.iter_mut().skip(1).enumerate() {
                let name = HvRegisterName(x64::XMM0.0 + k as u32);
                let v = model
                    .vp(VM_PARTITION, case.vp)
                    .and_then(|v| v.register(Arch::X64, 0, name));
                if let Some(v) = v {
                    let v = v.as_u128();
                    *pair = [v as u64, (v >> 64) as u64];
                }
            }
            // Other VPs write this VP's registers too, in an order the
            // mirror does not know: after a write every register holds
            // "any value" again (its slot is still checked as written).
            for vp in 0..self.vps {
                for &name in SERVED {
                    if !known(vp).iter().any(|(k, _)| *k == name) {
                        model.set_register(VM_PARTITION, vp, 0, name, wildcard(vp, name));
                    }
                }
            }
        }
        Effect {
            result,
            regs: out,
            window: self
                .ram
                .peek(case.window, WINDOW as usize)
                .expect("window inside RAM"),
        }
    }
}

/// One call to completion: the guest re-executes a continued call, so the
/// model does too (at most one entry per element plus one).
fn call(
    ctx: &CallContext,
    regs: &mut RegisterFile,
    ram: &mut impl PartitionMemory,
    model: &mut Model,
    state: &mut VpState<<Model as ReadRegisters>::Snapshot>,
    config: &DispatchConfig,
) -> u64 {
    for _ in 0..=4096 {
        match dispatch(ctx, regs, ram, model, state, config) {
            Ok(Outcome::Complete) => return regs.gprs[gpr::RAX],
            Ok(Outcome::Continue) => {}
            Ok(Outcome::InjectUndefined) => return INJECT_UD,
            Ok(_) => return RUNAWAY,
            Err(never) => match never {},
        }
    }
    // Every call completes within one entry per element plus one (§2); a
    // model that does not is a bug the comparison reports.
    RUNAWAY
}
