//! Property tests: random control words, headers, names, GPAs, memory
//! layouts and model configurations, checked against a deliberately
//! simple oracle written here from docs/contract.md (straight-line code that
//! computes the expected registers and RAM), and continuation splitting
//! checked against one uninterrupted call.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use hvcall_abi::{Arch, HvRegisterName};
use hvcall_dispatch::registers::RegisterFile;
use hvcall_dispatch::{dispatch, CallContext, Convention, DispatchConfig, Outcome, VpState};
use hvcall_model::{standard_names, standard_value, GuestRam, Model};
use proptest::prelude::*;

const PAGES: u64 = 16;
const PAGE: u64 = 4096;

#[derive(Clone, Debug)]
struct Scenario {
    conv: Convention,
    fast: bool,
    privileged: bool,
    smccc_id: u64,
    control: u64,
    header: [u8; 16],
    names: Vec<u32>,
    in_gpa: u64,
    out_gpa: u64,
    /// Bit p: page p of [0, 64 KiB) is RAM.
    present: u16,
    overlay: Option<u64>,
    caller_root: bool,
    root_privileged: bool,
    vm_privileged: bool,
    xmm_in: bool,
    xmm_out: bool,
    vm_vps: u32,
    /// Enabled VTL sets of root VP 0 and VM VPs 0..3.
    enabled: [u16; 4],
    active_vtl: u8,
}

fn conv_strategy() -> impl Strategy<Value = Convention> {
    prop::sample::select(CONVENTIONS.to_vec())
}

fn name_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => prop::sample::select((0..29u32).map(|i| 0x0002_0000 + i).collect::<Vec<_>>()),
        2 => prop::sample::select(vec![0x0002_0010u32, 0x0002_0011, 0x0004_0000, 0x0004_0002, 0x0008_0001, 0x0002_0022, 0x0004_0005]),
        1 => any::<u32>(),
    ]
}

fn header_strategy() -> impl Strategy<Value = [u8; 16]> {
    let pid = prop_oneof![
        4 => Just(u64::MAX),
        3 => Just(2u64),
        2 => Just(1u64),
        1 => Just(0u64),
        1 => Just(3u64),
        1 => any::<u64>(),
    ];
    let vp = prop_oneof![
        4 => Just(0xFFFF_FFFEu32),
        3 => 0..4u32,
        1 => any::<u32>(),
    ];
    let vtl = prop_oneof![
        4 => Just(0u8),
        3 => (0..3u8).prop_map(|v| 0x10 | v),
        1 => 0..16u8,
        1 => any::<u8>(),
    ];
    let rsvd = prop_oneof![9 => Just([0u8; 3]), 1 => any::<[u8; 3]>()];
    (pid, vp, vtl, rsvd).prop_map(|(p, v, t, r)| {
        let mut h = header(p, v, t);
        h[13..16].copy_from_slice(&r);
        h
    })
}

fn gpa_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => (0..PAGES + 2, 0..512u64).prop_map(|(p, o)| p * PAGE + 8 * o),
        2 => (0..PAGES + 2, 0..4096u64).prop_map(|(p, o)| p * PAGE + o),
        1 => (1..64u64).prop_map(|k| (PAGE * (k % 16 + 1)).wrapping_sub(8 * k)),
        1 => any::<u64>(),
    ]
}

#[derive(Clone, Debug)]
struct CallPart {
    conv: Convention,
    fast: bool,
    privileged: bool,
    smccc_id: u64,
    control: u64,
    names: Vec<u32>,
}

prop_compose! {
    fn call_part()(
        conv in conv_strategy(),
        fast in any::<bool>(),
        privileged in prop::bool::weighted(0.95),
        smccc_id in prop_oneof![19 => Just(0x4600_0001u64), 1 => any::<u64>()],
        code in prop_oneof![19 => Just(0x50u64), 1 => any::<u16>().prop_map(u64::from)],
        varhead in prop_oneof![19 => Just(0u64), 1 => 0..0x400u64],
        rsvd in prop_oneof![19 => Just(0u64), 1 => any::<u64>().prop_map(|v| v & ((0xF << 27) | (0xF << 44) | (0xF << 60) | (1 << 31)))],
        names in prop_oneof![
            12 => prop::collection::vec(name_strategy(), 0..8),
            1 => prop::collection::vec(name_strategy(), 250..260),
        ],
        start_pick in prop_oneof![12 => Just(None), 3 => (0..300u16).prop_map(Some)],
        start_frac in 0..100u16,
    ) -> CallPart {
        let n = names.len() as u64;
        let start = start_pick.unwrap_or(if n == 0 { 0 } else { (u64::from(start_frac) * n / 100) as u16 });
        let control = code | (u64::from(fast) << 16) | (varhead << 17) | rsvd | ((n & 0xFFF) << 32) | (u64::from(start & 0xFFF) << 48);
        CallPart { conv, fast, privileged, smccc_id, control, names }
    }
}

prop_compose! {
    fn memory_part()(
        in_gpa in gpa_strategy(),
        out_pick in prop_oneof![6 => gpa_strategy().prop_map(Some), 1 => Just(None)],
        out_delta in prop::sample::select(vec![0i64, 8, 16, 24, -16, -8]),
        present in prop_oneof![3 => Just(0xFFFFu16), 2 => any::<u16>().prop_map(|m| m | 0x00FF)],
        overlay in prop_oneof![2 => Just(None), 1 => (0..PAGES).prop_map(|p| Some(p * PAGE))],
    ) -> (u64, u64, u16, Option<u64>) {
        (in_gpa, out_pick.unwrap_or(in_gpa.wrapping_add_signed(out_delta)), present, overlay)
    }
}

prop_compose! {
    fn model_part()(
        caller_root in prop::bool::weighted(0.3),
        privileges in (prop::bool::weighted(0.8), prop::bool::weighted(0.8)),
        xmm in (prop::bool::weighted(0.9), prop::bool::weighted(0.9)),
        vm_vps in 1..4u32,
        enabled in prop::array::uniform4(prop_oneof![3 => Just(1u16), 3 => Just(0b111u16), 1 => any::<u16>()]),
        active_vtl in prop_oneof![3 => Just(0u8), 1 => 0..3u8],
    ) -> (bool, (bool, bool), (bool, bool), u32, [u16; 4], u8) {
        (caller_root, privileges, xmm, vm_vps, enabled, active_vtl)
    }
}

prop_compose! {
    fn scenario()(
        call in call_part(),
        header in header_strategy(),
        memory in memory_part(),
        model in model_part(),
        end_fit in prop_oneof![4 => Just(None), 1 => (any::<bool>(), 0..PAGES, -1..2i64).prop_map(Some)],
    ) -> Scenario {
        let (mut in_gpa, mut out_gpa, present, overlay) = memory;
        // Sometimes place one list to end exactly at (or 8 bytes around)
        // a page end, where the page-crossing rule (5e) is decided.
        if let Some((input, page, delta)) = end_fit {
            let n = (call.control >> 32) & 0xFFF;
            let len = if input { 16 + 4 * n } else { 16 * n };
            let gpa = (page + 1) * PAGE - len.min(PAGE);
            let gpa = gpa.wrapping_add_signed(8 * delta);
            if input { in_gpa = gpa } else { out_gpa = gpa }
        }
        let (caller_root, (root_privileged, vm_privileged), (xmm_in, xmm_out), vm_vps, enabled, active_vtl) = model;
        Scenario {
            conv: call.conv, fast: call.fast, privileged: call.privileged, smccc_id: call.smccc_id,
            control: call.control, header, names: call.names, in_gpa, out_gpa, present, overlay,
            caller_root, root_privileged, vm_privileged, xmm_in, xmm_out, vm_vps, enabled, active_vtl,
        }
    }
}

/// The model, RAM and registers a scenario starts from.
fn setup(s: &Scenario) -> (Model, GuestRam, RegisterFile) {
    let arch = arch(s.conv);
    let priv_of = |on: bool| {
        if on {
            hvcall_model::DEFAULT_PRIVILEGES
        } else {
            0
        }
    };
    let mut b = Model::builder(arch)
        .partition(2, 1, s.vm_vps)
        .privileges(1, priv_of(s.root_privileged))
        .privileges(2, priv_of(s.vm_privileged))
        .xmm_fast(1, s.xmm_in, s.xmm_out)
        .xmm_fast(2, s.xmm_in, s.xmm_out);
    let vps = [(1u64, 0u32), (2, 0), (2, 1), (2, 2)];
    for (k, &(p, v)) in vps.iter().enumerate() {
        let caller = (p, v) == if s.caller_root { (1, 0) } else { (2, 0) };
        b = b.vtls(p, v, s.enabled[k], if caller { s.active_vtl } else { 0 });
        for vtl in 0..3u8 {
            for &name in standard_names(arch) {
                b = b.register(p, v, vtl, name, standard_value(p, v, vtl, name));
            }
        }
    }
    let model = b.caller(if s.caller_root { 1 } else { 2 }, 0).build();

    let mut ram = GuestRam::new();
    for p in 0..PAGES {
        if s.present & (1 << p) != 0 {
            ram.add_region(p * PAGE, PAGE).unwrap();
            let fill: Vec<u8> = (0..PAGE)
                .map(|i| (p as u8).wrapping_mul(31) ^ (i as u8))
                .collect();
            ram.poke(p * PAGE, &fill).unwrap();
        }
    }
    if let Some(o) = s.overlay {
        ram.add_overlay(o);
    }
    let input = input_bytes(&s.header, &s.names);
    if !s.fast {
        // Put the input where it fits (bytes outside RAM are dropped).
        for (i, b) in input.iter().enumerate() {
            let _ = ram.poke(s.in_gpa.wrapping_add(i as u64), &[*b]);
        }
    }
    let mut regs = junk_regs();
    let form = if s.fast { Form::Fast } else { Form::Memory };
    place(
        s.conv, &mut regs, s.control, form, &input, s.in_gpa, s.out_gpa,
    );
    if s.conv == Convention::Arm64Smccc {
        regs.gprs[0] = s.smccc_id;
    }
    (model, ram, regs)
}

/// Whether every byte of `[gpa, gpa + len)` is RAM a hypercall may use.
fn oracle_is_ram(s: &Scenario, gpa: u64, len: u64) -> bool {
    let Some(end) = gpa.checked_add(len) else {
        return false;
    };
    (gpa..end).all(|a| {
        let page = a / PAGE;
        page < PAGES && s.present & (1 << page) != 0 && s.overlay != Some(page * PAGE)
    })
}

/// What the oracle expects: the outcome, and the registers and RAM after.
fn oracle(
    s: &Scenario,
    model: &Model,
    ram: &GuestRam,
    regs: &RegisterFile,
) -> (Outcome, RegisterFile, Vec<(u64, Vec<u8>)>) {
    let mut regs = regs.clone();
    let mut ram = ram.clone();
    let c = s.conv;
    let arch = arch(c);
    if !s.privileged {
        return (Outcome::InjectUndefined, regs, ram_image(&ram));
    }
    if c == Convention::Arm64Smccc && s.smccc_id != 0x4600_0001 {
        regs.gprs[0] = u64::MAX;
        return (Outcome::Complete, regs, ram_image(&ram));
    }
    let ctl = s.control;
    let code = ctl & 0xFFFF;
    let fast = ctl & (1 << 16) != 0;
    let varhead = (ctl >> 17) & 0x3FF;
    let n = ((ctl >> 32) & 0xFFF) as usize;
    let start = ((ctl >> 48) & 0xFFF) as usize;
    let finish = |regs: &mut RegisterFile, status: u16, reps: usize| {
        let result = u64::from(status) | ((reps as u64) << 32);
        match c {
            Convention::X64 => regs.gprs[RAX] = result,
            Convention::X86 => {
                regs.gprs[RDX] = result >> 32;
                regs.gprs[RAX] = result & 0xFFFF_FFFF;
            }
            _ => regs.gprs[0] = result,
        }
    };
    let reserved = ctl & ((0xF << 27) | (0xF << 44) | (0xF << 60));
    let nested = ctl & (1 << 31);
    let status_before_6 = if reserved != 0 || nested != 0 {
        Some(3)
    } else if code != 0x50 {
        Some(2)
    } else if n == 0 || start >= n || varhead != 0 {
        Some(3)
    } else {
        None
    };
    if let Some(st) = status_before_6 {
        finish(&mut regs, st, 0);
        return (Outcome::Complete, regs, ram_image(&ram));
    }
    let in_len = 16 + 4 * n as u64;
    let out_len = 16 * n as u64;
    let input: Vec<u8> = if fast {
        if c == Convention::X64 && (!s.xmm_in || !s.xmm_out) {
            return (Outcome::InjectUndefined, regs, ram_image(&ram));
        }
        if !fast_fits(c, n as u16) {
            finish(&mut regs, 3, 0);
            return (Outcome::Complete, regs, ram_image(&ram));
        }
        input_bytes(&s.header, &s.names)
    } else {
        let (i, o) = (s.in_gpa, s.out_gpa);
        let bad = i % 8 != 0
            || o % 8 != 0
            || i % PAGE + in_len > PAGE
            || o % PAGE + out_len > PAGE
            || !oracle_is_ram(s, i, in_len)
            || !oracle_is_ram(s, o, out_len);
        if bad {
            finish(&mut regs, 4, 0);
            return (Outcome::Complete, regs, ram_image(&ram));
        }
        ram.peek(i, in_len as usize).unwrap()
    };
    // Step 6, straight from the table.
    let pid = u64::from_le_bytes(input[0..8].try_into().unwrap());
    let vp = u32::from_le_bytes(input[8..12].try_into().unwrap());
    let vtl_byte = input[12];
    let (caller_pid, caller_vp) = if s.caller_root { (1u64, 0u32) } else { (2, 0) };
    let caller_vtl = s.active_vtl;
    let is_self = pid == u64::MAX || pid == caller_pid;
    let privileged = if s.caller_root {
        s.root_privileged
    } else {
        s.vm_privileged
    };
    let vp_count = |p: u64| if p == 1 { 1 } else { s.vm_vps };
    let check = || -> Result<(u64, u32, u8), u16> {
        if input[13..16] != [0, 0, 0] || vtl_byte & 0xE0 != 0 {
            return Err(5);
        }
        let target_pid = if is_self {
            caller_pid
        } else {
            if pid != 1 && pid != 2 {
                return Err(0xD);
            }
            // The root (1) has no parent; the VM's (2) parent is the root.
            if !(pid == 2 && caller_pid == 1) {
                return Err(6);
            }
            pid
        };
        if is_self && !privileged {
            return Err(6);
        }
        let target_vp = if vp == 0xFFFF_FFFE {
            if !is_self {
                return Err(0xE);
            }
            caller_vp
        } else if vp >= vp_count(target_pid) {
            return Err(0xE);
        } else {
            vp
        };
        let use_target = vtl_byte & 0x10 != 0;
        let target_vtl = if use_target {
            vtl_byte & 0xF
        } else {
            caller_vtl
        };
        if use_target && is_self && target_vtl > caller_vtl {
            return Err(6);
        }
        let k = if target_pid == 1 {
            0
        } else {
            1 + target_vp as usize
        };
        if s.enabled[k] & (1 << target_vtl) == 0 {
            return Err(0x51);
        }
        Ok((target_pid, target_vp, target_vtl))
    };
    let (tp, tv, tvtl) = match check() {
        Ok(t) => t,
        Err(st) => {
            finish(&mut regs, st, start);
            return (Outcome::Complete, regs, ram_image(&ram));
        }
    };
    // Step 7: read names start..n, write values until one fails.
    let target = model.vp(tp, tv).unwrap();
    let mut status = 0u16;
    let mut done = n;
    for i in start..n {
        let name = u32::from_le_bytes(input[16 + 4 * i..20 + 4 * i].try_into().unwrap());
        let Some(value) = target.register(arch, tvtl, HvRegisterName(name)) else {
            status = 5;
            done = i;
            break;
        };
        let v = value.as_u128();
        if fast {
            let out = fast_output_regs(c, n as u16, i as u16);
            for (k, r) in out.iter().enumerate() {
                let part = if out.len() == 1 {
                    v
                } else {
                    (v >> (64 * k)) & u128::from(u64::MAX)
                };
                match *r {
                    Reg::Gpr(g) => regs.gprs[g] = part as u64,
                    Reg::Vector(x) => regs.vectors[x] = part,
                }
            }
        } else {
            ram.poke(s.out_gpa + 16 * i as u64, &v.to_le_bytes())
                .unwrap();
        }
    }
    finish(&mut regs, status, done);
    (Outcome::Complete, regs, ram_image(&ram))
}

fn ctx(s: &Scenario) -> CallContext {
    CallContext::new(s.conv, s.privileged, IP)
}

/// Run a scenario to completion with a budget; (last outcome, entries,
/// registers, RAM).
/// Every byte of every RAM region.
type RamImage = Vec<(u64, Vec<u8>)>;

fn run(s: &Scenario, budget: u16) -> (Outcome, usize, RegisterFile, RamImage, Model) {
    let (mut model, mut ram, mut regs) = setup(s);
    let mut state = VpState::new();
    let config = DispatchConfig::default().with_max_reps_per_entry(budget);
    let mut entries = 0;
    loop {
        let out = dispatch(
            &ctx(s),
            &mut regs,
            &mut ram,
            &mut model,
            &mut state,
            &config,
        )
        .unwrap_or_else(|never| match never {});
        entries += 1;
        assert!(entries <= 300);
        if out != Outcome::Continue {
            assert!(!state.is_pending());
            return (out, entries, regs, ram_image(&ram), model);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn prop_dispatch_matches_the_oracle(s in scenario()) {
        let (model, ram, regs) = setup(&s);
        let (want_out, want_regs, want_ram) = oracle(&s, &model, &ram, &regs);
        let (out, entries, got_regs, got_ram, _) = run(&s, 256);
        prop_assert_eq!(entries, 1);
        prop_assert_eq!(out, want_out);
        prop_assert_eq!(got_regs, want_regs);
        // Every byte of RAM, including the guard bytes around the output
        // list, is as the oracle says.
        prop_assert!(got_ram == want_ram, "RAM differs");
    }

    #[test]
    fn prop_continuation_at_any_point_matches_one_call(s in scenario(), budget in 1..12u16) {
        let (out1, _, regs1, ram1, model1) = run(&s, 256);
        let (out2, entries, regs2, ram2, model2) = run(&s, budget);
        prop_assert_eq!(out1, out2);
        prop_assert_eq!(regs1, regs2);
        prop_assert!(ram1 == ram2, "RAM differs");
        prop_assert_eq!(model1.snapshots_taken(), model2.snapshots_taken());
        let _ = (entries, Arch::X64);
    }
}
