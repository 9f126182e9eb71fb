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
//! error on stderr names the VP, the status and the register). The
//! server is not trusted: its text (a refusal) is printed with control
//! characters escaped, and a reply that does not fit the request (a
//! success without a value per name, a failure at an element not asked
//! for) is an error of the server's.

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
    let all = args.vp == Vps::All;
    let numbers: Vec<HvRegisterName> = names.iter().map(|e| e.number).collect();
    let written: Vec<HvRegisterName> = writes.iter().map(|w| w.name).collect();
    let mut results = Vec::new();
    for vp in vps {
        if !writes.is_empty() {
            let reply = call(&Request::set(vp, &writes))?;
            if judge(vp, Op::Write, &written, reply, all)?.is_none() {
                break;
            }
        }
        if names.is_empty() {
            continue;
        }
        let reply = call(&Request::get(vp, &numbers))?;
        match judge(vp, Op::Read, &numbers, reply, all)? {
            Some(values) => results.push((vp, values)),
            None => break,
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

/// A call `hvcall regs` makes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Op {
    /// HvCallGetVpRegisters.
    Read,
    /// HvCallSetVpRegisters.
    Write,
}

/// Judges the server's `reply` to `op` of `names` on VP `vp`: the values
/// read (none for a write), `None` for a VP that does not exist when
/// `all` VPs are asked for (the end of the list), or the error to print.
/// A reply that does not fit the request (a success without a value per
/// name, a failure at an element that was not asked for) is an error of
/// the server's, never shown as a register's; the server's text is shown
/// with its control characters escaped.
fn judge(
    vp: u32,
    op: Op,
    names: &[HvRegisterName],
    reply: Reply,
    all: bool,
) -> Result<Option<Vec<HvRegisterValue>>, String> {
    let (status, reps, values) = match reply {
        Reply::Result {
            status,
            reps,
            values,
        } => (status, reps, values),
        Reply::Refused(why) => return Err(format!("VP {vp}: refused: {}", escaped(&why))),
    };
    let n = names.len();
    let (verb, wanted) = match op {
        Op::Read => ("reading", n),
        Op::Write => ("writing", 0),
    };
    if status == HvStatus::SUCCESS {
        if reps as usize != n || values.len() != wanted {
            return Err(format!(
                "VP {vp}: malformed reply from the server: success {verb} {n} registers \
                 with {reps} reps and {} values",
                values.len()
            ));
        }
        return Ok(Some(values));
    }
    if status == HvStatus::INVALID_VP_INDEX && all {
        return Ok(None);
    }
    match names.get(reps as usize) {
        Some(&name) => Err(format!("VP {vp}: {status} {verb} {}", short(name))),
        None => Err(format!(
            "VP {vp}: {status}, but the server's reply is inconsistent: it failed at \
             element {reps} of {n}"
        )),
    }
}

/// `text` with control characters (terminal escapes among them),
/// invisible formatting characters and backslashes escaped, for printing
/// text a server chose.
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let invisible = matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
        );
        if c.is_control() || invisible || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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

    fn result(status: HvStatus, reps: u32, values: usize) -> Reply {
        Reply::Result {
            status,
            reps,
            values: vec![HvRegisterValue::from(1u64); values],
        }
    }

    #[test]
    fn server_text_is_printed_with_its_control_characters_escaped() {
        let why = "no\x1b]0;owned\x07\x1b[2J\r\n\u{202E}tset \\ done\u{7f}";
        let e = judge(3, Op::Read, &[x64::RIP], Reply::Refused(why.into()), false).unwrap_err();
        assert!(!e.chars().any(|c| c.is_control()), "{e:?}");
        assert_eq!(
            e,
            "VP 3: refused: no\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\r\\n\\u{202e}tset \\\\ done\\u{7f}"
        );
        assert_eq!(escaped("rip: ok, ünïcode"), "rip: ok, ünïcode");
    }

    #[test]
    fn a_success_without_a_value_per_name_is_a_malformed_reply() {
        let names = [x64::RIP, x64::RSP];
        let ok = judge(0, Op::Read, &names, result(HvStatus::SUCCESS, 2, 2), false);
        assert_eq!(ok.unwrap().map(|v| v.len()), Some(2));
        for (reps, values) in [(2, 0), (2, 1), (2, 3), (1, 2), (3, 2)] {
            let e = judge(
                0,
                Op::Read,
                &names,
                result(HvStatus::SUCCESS, reps, values),
                false,
            )
            .unwrap_err();
            assert!(e.contains("malformed reply"), "{reps} {values}: {e}");
        }
        let write = judge(0, Op::Write, &names, result(HvStatus::SUCCESS, 2, 0), false);
        assert_eq!(write.unwrap().map(|v| v.len()), Some(0));
        let e = judge(0, Op::Write, &names, result(HvStatus::SUCCESS, 2, 1), false).unwrap_err();
        assert!(e.contains("malformed reply"), "{e}");
    }

    #[test]
    fn a_failure_at_an_element_not_asked_for_is_the_servers_inconsistency() {
        let names = [x64::RIP, x64::RSP];
        let bad = HvStatus::INVALID_PARAMETER;
        let e = judge(1, Op::Read, &names, result(bad, 1, 0), false).unwrap_err();
        assert!(e.ends_with("reading rsp"), "{e}");
        let e = judge(1, Op::Write, &names, result(bad, 0, 0), false).unwrap_err();
        assert!(e.ends_with("writing rip"), "{e}");
        for reps in [2, 3, u32::MAX] {
            let e = judge(1, Op::Read, &names, result(bad, reps, 0), false).unwrap_err();
            assert!(e.contains("inconsistent"), "{e}");
            assert!(!e.contains("reading"), "no register is blamed: {e}");
        }
        // INVALID_VP_INDEX ends `--vp all`, and is an error otherwise.
        let gone = result(HvStatus::INVALID_VP_INDEX, 0, 0);
        assert_eq!(judge(4, Op::Read, &names, gone.clone(), true), Ok(None));
        assert!(judge(4, Op::Read, &names, gone, false).is_err());
    }
}
