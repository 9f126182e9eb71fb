//! `hvcall regs --api-socket PATH [--vp N|all] [--json] [NAME...]
//! [--set NAME=VALUE...]`: reads (and writes) registers of a running VM
//! through its API socket ([`hvcall::api`]), as its parent partition.
//!
//! Names are TLFS names, short names or numbers (`hvcall registers` lists
//! them), or groups: `gpr`, `cr`, `seg`, `msr`, `xmm`, `all` (every
//! register the VMM serves). Without names it reads `gpr`. The table
//! decodes segments (selector, base, limit, attributes), GDTR/IDTR (base,
//! limit) and RFLAGS (its flags); `--json` prints one object:
//! `{"vps":[{"vp":0,"registers":{"rip":"0x...",...}}]}` with every value
//! as a hex string, segments and tables as objects of hex strings.
//!
//! Exit status: 0, or 1 if the socket cannot be used or a call fails (the
//! error on stderr names the VP, the status and the register).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use hvcall::api::{Client, Reply, Request};
use hvcall_abi::name::{self, x64, Arch, RegisterEntry};
use hvcall_abi::value::{SegmentRegister, TableRegister};
use hvcall_abi::{HvRegisterName, HvRegisterValue, HvStatus, SetVpRegistersElement};

/// Most VPs `--vp all` asks for (the VMM's limit).
const MAX_VPS: u32 = 64;

/// Options of `hvcall regs`.
#[derive(Debug, clap::Args)]
pub struct RegsArgs {
    /// The VM's API socket (`hvcall run --api-socket PATH`).
    #[arg(long, value_name = "PATH")]
    pub api_socket: PathBuf,
    /// Which VP: a number or `all` [default: 0].
    #[arg(long, value_name = "N|all", default_value = "0", value_parser = parse_vp)]
    pub vp: Vps,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write registers first: NAME=VALUE (VALUE in hex with 0x, or
    /// decimal; up to 128 bits), repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Registers to read: names, numbers or groups (gpr, cr, seg, msr,
    /// xmm, all) [default: gpr, unless only --set is given].
    pub names: Vec<String>,
}

/// The VPs asked for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Vps {
    /// One VP.
    One(u32),
    /// Every VP of the VM.
    All,
}

fn parse_vp(text: &str) -> Result<Vps, String> {
    if text == "all" {
        return Ok(Vps::All);
    }
    text.parse()
        .map(Vps::One)
        .map_err(|_| format!("{text:?}: expected a VP number or `all`"))
}

/// The groups `hvcall regs` knows, as short names.
fn group(name: &str) -> Option<Vec<&'static RegisterEntry>> {
    let served = || name::entries(Arch::X64).filter(|e| hvcall_vmm::registers::is_served(e.number));
    let pick = |names: &[HvRegisterName]| -> Vec<&'static RegisterEntry> {
        names
            .iter()
            .filter_map(|n| served().find(|e| e.number == *n))
            .collect()
    };
    Some(match name {
        "gpr" => pick(&[&crate::gdb::GPRS[..], &[x64::RIP, x64::RFLAGS]].concat()),
        "cr" => pick(&[x64::CR0, x64::CR2, x64::CR3, x64::CR4, x64::CR8, x64::EFER]),
        "seg" => pick(&[
            x64::CS,
            x64::DS,
            x64::ES,
            x64::FS,
            x64::GS,
            x64::SS,
            x64::LDTR,
            x64::TR,
            x64::GDTR,
            x64::IDTR,
        ]),
        "msr" => pick(&[
            x64::TSC,
            x64::EFER,
            x64::KERNEL_GS_BASE,
            x64::APIC_BASE,
            x64::PAT,
            x64::SYSENTER_CS,
            x64::SYSENTER_EIP,
            x64::SYSENTER_ESP,
            x64::STAR,
            x64::LSTAR,
            x64::CSTAR,
            x64::SFMASK,
            x64::TSC_AUX,
        ]),
        "xmm" => served()
            .filter(|e| (x64::XMM0.0..=x64::XMM15.0).contains(&e.number.0))
            .collect(),
        "all" => served().collect(),
        _ => return None,
    })
}

/// The names asked for, groups expanded, in order, each once.
fn resolve(names: &[String]) -> Result<Vec<&'static RegisterEntry>, String> {
    let mut out: Vec<&'static RegisterEntry> = Vec::new();
    for text in names {
        let text = text.trim();
        let entries = match group(text) {
            Some(g) => g,
            None => vec![name::lookup(Arch::X64, text).ok_or_else(|| {
                format!(
                    "unknown x64 register or group {text:?} (`hvcall registers` lists the names)"
                )
            })?],
        };
        for e in entries {
            if !out.iter().any(|o| o.number == e.number) {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// `NAME=VALUE` of `--set`.
fn parse_set(text: &str) -> Result<SetVpRegistersElement, String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("--set {text:?}: expected NAME=VALUE"))?;
    let entry = name::lookup(Arch::X64, name.trim())
        .ok_or_else(|| format!("--set {text:?}: unknown x64 register {name:?}"))?;
    let value = value.trim();
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u128::from_str_radix(&hex.replace('_', ""), 16),
        None => value.replace('_', "").parse(),
    }
    .map_err(|_| format!("--set {text:?}: {value:?} is not a number of up to 128 bits"))?;
    Ok(SetVpRegistersElement::new(
        entry.number,
        HvRegisterValue::from(parsed),
    ))
}

/// Writes a line on stderr; a closed stderr is ignored.
fn say(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "hvcall regs: {message}");
}

/// Runs `hvcall regs`.
pub fn main(args: &RegsArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(format_args!("{e}"));
            ExitCode::FAILURE
        }
    }
}

fn run(args: &RegsArgs) -> Result<(), String> {
    let writes = args
        .set
        .iter()
        .map(|s| parse_set(s))
        .collect::<Result<Vec<_>, _>>()?;
    let names = if args.names.is_empty() && writes.is_empty() {
        resolve(&["gpr".to_owned()])?
    } else {
        resolve(&args.names)?
    };
    if writes.len() > hvcall::api::MAX_ELEMENTS || names.len() > hvcall::api::MAX_NAMES {
        return Err("too many registers for one call".into());
    }
    let mut client = Client::connect(&args.api_socket)
        .map_err(|e| format!("cannot connect to {}: {e}", args.api_socket.display()))?;
    let mut call = |request: &Request| {
        client
            .call(request)
            .map_err(|e| format!("the API socket failed: {e}"))
    };
    let vps: Vec<u32> = match args.vp {
        Vps::One(vp) => vec![vp],
        Vps::All => (0..MAX_VPS).collect(),
    };
    let mut results = Vec::new();
    for vp in vps {
        if !writes.is_empty() {
            match call(&Request::set(vp, &writes))? {
                Reply::Result { status, .. } if status == HvStatus::SUCCESS => {}
                Reply::Result { status, .. }
                    if status == HvStatus::INVALID_VP_INDEX && args.vp == Vps::All =>
                {
                    break;
                }
                Reply::Result { status, reps, .. } => {
                    let at = writes
                        .get(reps as usize)
                        .map_or(HvRegisterName(0), |w| w.name);
                    return Err(format!("VP {vp}: {status} writing {}", short(at)));
                }
                Reply::Refused(why) => return Err(format!("VP {vp}: refused: {why}")),
            }
        }
        if names.is_empty() {
            continue;
        }
        let numbers: Vec<HvRegisterName> = names.iter().map(|e| e.number).collect();
        match call(&Request::get(vp, &numbers))? {
            Reply::Result { status, values, .. } if status == HvStatus::SUCCESS => {
                results.push((vp, values));
            }
            Reply::Result { status, .. }
                if status == HvStatus::INVALID_VP_INDEX && args.vp == Vps::All =>
            {
                break;
            }
            Reply::Result { status, reps, .. } => {
                let at = numbers
                    .get(reps as usize)
                    .copied()
                    .unwrap_or(HvRegisterName(0));
                return Err(format!("VP {vp}: {status} reading {}", short(at)));
            }
            Reply::Refused(why) => return Err(format!("VP {vp}: refused: {why}")),
        }
    }
    let text = if args.json {
        json(&names, &results)
    } else {
        table(&names, &results)
    };
    // A closed stdout is not a failure worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(())
}

fn short(name: HvRegisterName) -> String {
    name::by_number(Arch::X64, name)
        .map_or_else(|| format!("{:#x}", name.0), |e| e.short.to_owned())
}

/// How a register's value is shown.
enum Shown {
    Segment(SegmentRegister),
    Table(TableRegister),
    Flags(u64),
    Plain(u128),
}

fn shown(name: HvRegisterName, value: HvRegisterValue) -> Shown {
    let segments = [
        x64::ES,
        x64::CS,
        x64::SS,
        x64::DS,
        x64::FS,
        x64::GS,
        x64::LDTR,
        x64::TR,
    ];
    if segments.contains(&name) {
        Shown::Segment(SegmentRegister::from(value))
    } else if name == x64::GDTR || name == x64::IDTR {
        Shown::Table(TableRegister::from(value))
    } else if name == x64::RFLAGS {
        Shown::Flags(value.as_u64())
    } else {
        Shown::Plain(value.as_u128())
    }
}

/// RFLAGS bits with names.
const FLAGS: [(u32, &str); 13] = [
    (0, "CF"),
    (2, "PF"),
    (4, "AF"),
    (6, "ZF"),
    (7, "SF"),
    (8, "TF"),
    (9, "IF"),
    (10, "DF"),
    (11, "OF"),
    (14, "NT"),
    (16, "RF"),
    (17, "VM"),
    (18, "AC"),
];

fn table(names: &[&RegisterEntry], results: &[(u32, Vec<HvRegisterValue>)]) -> String {
    let mut s = String::new();
    for (vp, values) in results {
        s.push_str(&format!("VP {vp}\n"));
        for (e, v) in names.iter().zip(values) {
            let text = match shown(e.number, *v) {
                Shown::Segment(seg) => {
                    let a = seg.attributes;
                    format!(
                        "selector {:#06x} base {:#x} limit {:#x} attributes {:#06x} (type {:#x}{}, dpl {}{}{}{}{})",
                        seg.selector,
                        seg.base,
                        seg.limit,
                        a.into_bits(),
                        a.segment_type(),
                        if a.non_system() { ", s" } else { "" },
                        a.dpl(),
                        if a.present() { ", p" } else { ", not present" },
                        if a.long() { ", l" } else { "" },
                        if a.default_big() { ", db" } else { "" },
                        if a.granularity() { ", g" } else { "" },
                    )
                }
                Shown::Table(t) => format!("base {:#x} limit {:#x}", t.base, t.limit),
                Shown::Flags(f) => {
                    let set: Vec<&str> = FLAGS
                        .iter()
                        .filter(|(bit, _)| f & 1 << bit != 0)
                        .map(|(_, n)| *n)
                        .collect();
                    format!("{f:#018x} [ {} ] iopl {}", set.join(" "), (f >> 12) & 3)
                }
                Shown::Plain(v) if v >> 64 != 0 => format!("{v:#034x}"),
                Shown::Plain(v) => format!("{v:#018x}"),
            };
            s.push_str(&format!("  {:<22} {text}\n", e.short));
        }
    }
    s
}

fn json(names: &[&RegisterEntry], results: &[(u32, Vec<HvRegisterValue>)]) -> String {
    let vps: Vec<String> = results
        .iter()
        .map(|(vp, values)| {
            let regs: Vec<String> = names
                .iter()
                .zip(values)
                .map(|(e, v)| {
                    let value = match shown(e.number, *v) {
                        Shown::Segment(seg) => format!(
                            "{{\"selector\":\"{:#x}\",\"base\":\"{:#x}\",\"limit\":\"{:#x}\",\"attributes\":\"{:#x}\"}}",
                            seg.selector,
                            seg.base,
                            seg.limit,
                            seg.attributes.into_bits()
                        ),
                        Shown::Table(t) => {
                            format!("{{\"base\":\"{:#x}\",\"limit\":\"{:#x}\"}}", t.base, t.limit)
                        }
                        Shown::Flags(f) => format!("\"{f:#x}\""),
                        Shown::Plain(v) => format!("\"{v:#x}\""),
                    };
                    // Short names are [a-z0-9_]: no escaping needed.
                    format!("\"{}\":{value}", e.short)
                })
                .collect();
            format!("{{\"vp\":{vp},\"registers\":{{{}}}}}", regs.join(","))
        })
        .collect();
    format!("{{\"vps\":[{}]}}\n", vps.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_names_resolve_once_in_order() {
        let r = resolve(&["rip".into(), "gpr".into(), "0x00060001".into()]).unwrap();
        assert_eq!(r[0].number, x64::RIP);
        assert_eq!(r.iter().filter(|e| e.number == x64::RIP).count(), 1);
        assert_eq!(r.last().unwrap().number, x64::CS);
        assert_eq!(r.len(), 19);
        assert!(resolve(&["bogus".into()]).is_err());
        let all = resolve(&["all".into()]).unwrap();
        assert!(all.len() > 80, "{}", all.len());
        assert_eq!(resolve(&["xmm".into()]).unwrap().len(), 16);
    }

    #[test]
    fn set_values_parse_in_hex_and_decimal() {
        let e = parse_set("r12=0x1234").unwrap();
        assert_eq!((e.name, e.value.as_u64()), (x64::R12, 0x1234));
        let e = parse_set("HvX64RegisterXmm0=340282366920938463463374607431768211455").unwrap();
        assert_eq!(e.value.as_u128(), u128::MAX);
        assert!(parse_set("r12").is_err());
        assert!(parse_set("r12=0x1_0000_0000_0000_0000_0000_0000_0000_0000").is_err());
        assert!(parse_set("nope=1").is_err());
    }

    #[test]
    fn the_table_decodes_segments_tables_and_flags() {
        let names = resolve(&["cs".into(), "gdtr".into(), "rflags".into()]).unwrap();
        let cs = SegmentRegister {
            base: 0,
            limit: 0xFFFF_FFFF,
            selector: 8,
            attributes: hvcall_abi::value::SegmentAttributes::from_bits(0xA09B),
        };
        let gdtr = TableRegister {
            pad: [0; 3],
            limit: 0x27,
            base: 0x1000,
        };
        let values = vec![
            HvRegisterValue::from(cs),
            HvRegisterValue::from(gdtr),
            HvRegisterValue::from(0x246u64),
        ];
        let t = table(&names, &[(1, values.clone())]);
        assert!(t.starts_with("VP 1\n"), "{t}");
        assert!(t.contains("selector 0x0008 base 0x0 limit 0xffffffff attributes 0xa09b (type 0xb, s, dpl 0, p, l, g)"), "{t}");
        assert!(t.contains("base 0x1000 limit 0x27"), "{t}");
        assert!(t.contains("[ PF ZF IF ]"), "{t}");
        let j = json(&names, &[(1, values)]);
        assert!(
            j.starts_with("{\"vps\":[{\"vp\":1,\"registers\":{\"cs\":{\"selector\":\"0x8\""),
            "{j}"
        );
    }
}
