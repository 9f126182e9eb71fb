//! `hvcall registers`: prints every register name of the TLFS for one
//! architecture (its own names and the common ones), ascending by number.
//!
//! Text output is one aligned row per register: TLFS name, short name and
//! the number in hex. `--json` prints an array of objects
//! `{"name": "HvX64RegisterRip", "short": "rip", "arch": "x64", "value": 131088}`
//! where `value` is the register number as a JSON number (decimal, as JSON
//! has no hex literals).

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use hvcall_abi::name::{self, Arch, RegisterEntry};

/// Options of `hvcall registers`.
#[derive(Debug, clap::Args)]
pub struct RegistersArgs {
    /// Architecture whose register names to list.
    #[arg(long, value_enum, default_value_t = ArchArg::X64)]
    pub arch: ArchArg,
    /// Print a JSON array of {"name","short","arch","value"} objects
    /// ("value" is the register number as a JSON number).
    #[arg(long)]
    pub json: bool,
}

/// The `--arch` values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchArg {
    /// x86-64.
    X64,
    /// ARM64.
    Arm64,
}

impl From<ArchArg> for Arch {
    fn from(a: ArchArg) -> Arch {
        match a {
            ArchArg::X64 => Arch::X64,
            ArchArg::Arm64 => Arch::Arm64,
        }
    }
}

/// Runs `hvcall registers`: 0 on success (also when stdout is closed
/// early, e.g. by `head`), 1 if stdout cannot be written.
pub fn main(args: RegistersArgs) -> ExitCode {
    let arch = Arch::from(args.arch);
    let mut entries: Vec<&RegisterEntry> = name::entries(arch).collect();
    entries.sort_by_key(|e| e.number);
    tracing::debug!(%arch, count = entries.len(), json = args.json, "listing register names");
    let mut out = BufWriter::new(io::stdout().lock());
    let written = if args.json {
        write_json(&mut out, arch, &entries)
    } else {
        write_text(&mut out, &entries)
    }
    .and_then(|()| out.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(
                io::stderr().lock(),
                "hvcall registers: cannot write to stdout: {e}"
            );
            ExitCode::FAILURE
        }
    }
}

/// Aligned columns: name, short name, number.
fn write_text(out: &mut impl Write, entries: &[&RegisterEntry]) -> io::Result<()> {
    let name_width = entries.iter().map(|e| e.name.len()).max().unwrap_or(0);
    let short_width = entries.iter().map(|e| e.short.len()).max().unwrap_or(0);
    writeln!(
        out,
        "{:name_width$}  {:short_width$}  NUMBER",
        "NAME", "SHORT"
    )?;
    for e in entries {
        writeln!(
            out,
            "{:name_width$}  {:short_width$}  {:#010x}",
            e.name, e.short, e.number.0
        )?;
    }
    Ok(())
}

/// A JSON array with one object per line.
fn write_json(out: &mut impl Write, arch: Arch, entries: &[&RegisterEntry]) -> io::Result<()> {
    writeln!(out, "[")?;
    for (i, e) in entries.iter().enumerate() {
        let comma = if i + 1 < entries.len() { "," } else { "" };
        writeln!(
            out,
            "  {{\"name\": {}, \"short\": {}, \"arch\": {}, \"value\": {}}}{comma}",
            json_string(e.name),
            json_string(e.short),
            json_string(arch.as_str()),
            e.number.0
        )?;
    }
    writeln!(out, "]")
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("rip"), "\"rip\"");
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn text_rows_are_aligned_and_show_hex_numbers() {
        let entries: Vec<&RegisterEntry> = name::entries(Arch::X64).take(3).collect();
        let mut out = Vec::new();
        write_text(&mut out, &entries).expect("write to a Vec");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        let column = lines[0].find("NUMBER").expect("header");
        for (line, e) in lines[1..].iter().zip(&entries) {
            assert!(line.starts_with(e.name));
            assert_eq!(&line[column..], format!("{:#010x}", e.number.0));
        }
    }

    #[test]
    fn json_has_one_object_per_entry_without_trailing_comma() {
        let entries: Vec<&RegisterEntry> = name::entries(Arch::Arm64).take(2).collect();
        let mut out = Vec::new();
        write_json(&mut out, Arch::Arm64, &entries).expect("write to a Vec");
        let text = String::from_utf8(out).expect("utf-8");
        let e = entries[1];
        let last = format!(
            "  {{\"name\": \"{}\", \"short\": \"{}\", \"arch\": \"arm64\", \"value\": {}}}",
            e.name, e.short, e.number.0
        );
        assert_eq!(text.lines().nth(2), Some(last.as_str()));
        assert_eq!(text.lines().last(), Some("]"));
    }
}
