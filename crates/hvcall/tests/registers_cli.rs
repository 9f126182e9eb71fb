//! `hvcall registers` run as a process: the JSON lists exactly the register
//! table of each architecture (every HV_REGISTER_NAME hvcall-abi knows),
//! the text form has one aligned row per name, and bad arguments fail.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use hvcall_abi::name::{self, Arch};
use serde_json::Value;

fn hvcall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hvcall"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run hvcall")
}

fn json_for(args: &[&str]) -> Vec<Value> {
    let out = hvcall(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    v.as_array().expect("a JSON array").clone()
}

#[test]
fn json_lists_every_table_name_of_each_arch() {
    for arch in Arch::ALL {
        let items = json_for(&["registers", "--arch", arch.as_str(), "--json"]);
        let listed: BTreeSet<(String, String, u64)> = items
            .iter()
            .map(|o| {
                let obj = o.as_object().expect("object");
                assert_eq!(obj.len(), 4, "{o}");
                assert_eq!(obj["arch"], arch.as_str());
                (
                    obj["name"].as_str().expect("name").to_string(),
                    obj["short"].as_str().expect("short").to_string(),
                    obj["value"].as_u64().expect("numeric value"),
                )
            })
            .collect();
        let table: BTreeSet<(String, String, u64)> = name::entries(arch)
            .map(|e| {
                (
                    e.name.to_string(),
                    e.short.to_string(),
                    u64::from(e.number.0),
                )
            })
            .collect();
        assert_eq!(items.len(), table.len(), "{arch}: duplicates in the output");
        let values: Vec<u64> = items.iter().filter_map(|o| o["value"].as_u64()).collect();
        assert!(values.is_sorted(), "{arch}: not ascending by number");
        assert_eq!(listed, table, "{arch}");
    }
}

#[test]
fn json_values_are_the_digest_numbers() {
    let x64 = json_for(&["registers", "--json"]);
    let find = |items: &[Value], n: &str| {
        items
            .iter()
            .find(|o| o["name"] == n)
            .unwrap_or_else(|| panic!("{n} missing"))["value"]
            .as_u64()
    };
    assert_eq!(find(&x64, "HvX64RegisterRip"), Some(0x20010));
    assert_eq!(find(&x64, "HvRegisterVpIndex"), Some(0x90003));
    assert_eq!(find(&x64, "HvX64RegisterHypercall"), Some(0x90001));
    let arm64 = json_for(&["registers", "--arch", "arm64", "--json"]);
    assert_eq!(find(&arm64, "HvArm64RegisterX0"), Some(0x20000));
    assert_eq!(find(&arm64, "HvRegisterVpIndex"), Some(0x90003));
    assert!(arm64.iter().all(|o| o["name"] != "HvX64RegisterRip"));
}

#[test]
fn text_has_a_header_and_one_aligned_row_per_name() {
    let out = hvcall(&["registers"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + name::entries(Arch::X64).count());
    let column = lines[0].find("NUMBER").expect("header");
    let rip = lines
        .iter()
        .find(|l| l.starts_with("HvX64RegisterRip "))
        .expect("rip row");
    assert_eq!(&rip[column..], "0x00020010");
    assert!(rip
        .split_whitespace()
        .eq(["HvX64RegisterRip", "rip", "0x00020010"]));
    assert!(lines[1..].iter().all(|l| l.len() == lines[1].len()));
}

#[test]
fn unknown_arch_is_a_usage_error() {
    let out = hvcall(&["registers", "--arch", "riscv"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("riscv"));
}
