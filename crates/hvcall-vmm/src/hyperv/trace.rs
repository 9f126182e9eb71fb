//! The hypercall trace (`hvcall run --trace-hypercalls`): one line per
//! hypercall entry, as space-separated `key=value` fields a script can
//! split on:
//!
//! ```text
//! hypercall vp=0 code=0x0050 fast=0 rep=0/1 in=0x3fa000 out=0x3fa000 result=complete status=0x0000 reps=1 partition=self target_vp=self vtl=0x00 names=vsm_vp_status
//! ```
//!
//! | key | value |
//! |---|---|
//! | `vp` | the calling VP |
//! | `code` | call code, 4 hex digits |
//! | `fast` | 1 for the register (fast) form |
//! | `rep` | rep start / rep count of this entry's control word |
//! | `in`, `out` | input and output GPAs (memory form; 0 for fast calls) |
//! | `result` | `complete`, `continue` (the call goes on at `reps`) or `ud` (#UD injected) |
//! | `status` | HV_STATUS written, 4 hex digits (`-` unless complete) |
//! | `reps` | reps completed (complete) or the next rep start (continue) |
//!
//! For HvCallGetVpRegisters (0x0050) and HvCallSetVpRegisters (0x0051) the
//! input header and list follow, as the guest wrote them: `partition` and
//! `target_vp` (`self` for the SELF values), `vtl` (the HV_INPUT_VTL byte)
//! and `names` (comma-separated short names of the registers read or
//! written, hex numbers for names hvcall does not know; values are not
//! shown). They are left out when the input cannot be read (it lies
//! outside RAM).

use std::fmt::Write as _;

use hvcall_abi::input::{HEADER_SIZE, NAME_SIZE, SET_ELEMENT_SIZE};
use hvcall_abi::name::Arch;
use hvcall_abi::{
    call_code, partition_id, vp_index, GetVpRegistersHeader, HvRegisterName, HypercallControl,
    HypercallResult,
};
use hvcall_dispatch::Outcome;
use zerocopy::FromBytes;

use crate::memory::GuestRam;

/// What a trace line says of the call before it runs.
#[derive(Clone, Debug)]
pub struct TracedCall {
    vp: u32,
    control: HypercallControl,
    input_gpa: u64,
    output_gpa: u64,
    /// The input block as the guest wrote it (header, then names), if
    /// readable; at most one page.
    input: Option<Vec<u8>>,
}

impl TracedCall {
    /// A memory-form or fast call of VP `vp`. `fast_input` gives the fast
    /// input registers in order (RDX, R8, then XMM0..) as bytes; it is
    /// called only for fast calls.
    pub fn new(
        vp: u32,
        control: u64,
        input_gpa: u64,
        output_gpa: u64,
        ram: &GuestRam,
        fast_input: impl FnOnce() -> Vec<u8>,
    ) -> Self {
        let control = HypercallControl::from_bits(control);
        let input = if element_size(control.code()).is_none() {
            None
        } else if control.fast() {
            Some(fast_input())
        } else {
            // The header and list, cut at the end of the input page.
            let element = element_size(control.code()).unwrap_or(NAME_SIZE);
            let want = HEADER_SIZE + u64::from(control.rep_count()) * element;
            let room = hvcall_abi::PAGE_SIZE - (input_gpa & (hvcall_abi::PAGE_SIZE - 1));
            let mut buf = vec![0u8; want.min(room) as usize];
            ram.read(input_gpa, &mut buf).ok().map(|()| buf)
        };
        Self {
            vp,
            control,
            input_gpa: if control.fast() { 0 } else { input_gpa },
            output_gpa: if control.fast() { 0 } else { output_gpa },
            input,
        }
    }

    /// The trace line (with its newline) once the entry ended with
    /// `outcome`; `result` is the value in the result register, `control`
    /// the control register after the entry.
    pub fn line(&self, outcome: Outcome, result: u64, control_after: u64) -> String {
        let c = self.control;
        let mut l = format!(
            "hypercall vp={} code={:#06x} fast={} rep={}/{} in={:#x} out={:#x}",
            self.vp,
            c.code(),
            u8::from(c.fast()),
            c.rep_start(),
            c.rep_count(),
            self.input_gpa,
            self.output_gpa,
        );
        let _ = match outcome {
            Outcome::Complete => {
                let r = HypercallResult::from_bits(result);
                write!(
                    l,
                    " result=complete status={:#06x} reps={}",
                    r.status().0,
                    r.reps_completed()
                )
            }
            Outcome::Continue => write!(
                l,
                " result=continue status=- reps={}",
                HypercallControl::from_bits(control_after).rep_start()
            ),
            Outcome::InjectUndefined => write!(l, " result=ud status=- reps=0"),
            other => write!(l, " result={other:?} status=- reps=0"),
        };
        if let (Some(input), Some(element)) = (&self.input, element_size(c.code())) {
            append_registers_input(&mut l, input, element, c.rep_count());
        }
        l.push('\n');
        l
    }
}

/// The size of one input list element of a call whose input the trace
/// decodes (each starts with a register name), or None.
fn element_size(code: u16) -> Option<u64> {
    match code {
        call_code::GET_VP_REGISTERS => Some(NAME_SIZE),
        call_code::SET_VP_REGISTERS => Some(SET_ELEMENT_SIZE),
        _ => None,
    }
}

/// Appends the header and the register names found in `input`, a 0x0050
/// or 0x0051 input whose elements are `element` bytes long.
fn append_registers_input(l: &mut String, input: &[u8], element: u64, count: u16) {
    let Ok((h, list)) = GetVpRegistersHeader::read_from_prefix(input) else {
        return;
    };
    let partition = if h.partition_id == partition_id::SELF {
        "self".to_string()
    } else {
        format!("{:#x}", h.partition_id)
    };
    let vp = if h.vp_index == vp_index::SELF {
        "self".to_string()
    } else {
        h.vp_index.to_string()
    };
    let _ = write!(
        l,
        " partition={partition} target_vp={vp} vtl={:#04x} names=",
        h.input_vtl.into_bits()
    );
    let names = list
        .chunks_exact(element as usize)
        .take(usize::from(count))
        .filter_map(|b| <[u8; 4]>::try_from(b.get(..4)?).ok())
        .map(|b| HvRegisterName(u32::from_le_bytes(b)));
    for (i, name) in names.enumerate() {
        if i > 0 {
            l.push(',');
        }
        let _ = match name.entry(Arch::X64) {
            Some(e) => write!(l, "{}", e.short),
            None => write!(l, "{:#x}", name.0),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hvcall_abi::name::x64;
    use hvcall_abi::{HvInputVtl, HvStatus};
    use zerocopy::IntoBytes;

    fn fields(line: &str) -> Vec<(&str, &str)> {
        line.split_whitespace()
            .skip(1)
            .filter_map(|f| f.split_once('='))
            .collect()
    }

    #[test]
    fn a_memory_call_names_its_header_and_registers() {
        let ram = GuestRam::new(4).unwrap();
        let header =
            GetVpRegistersHeader::new(partition_id::SELF, vp_index::SELF, HvInputVtl::new());
        ram.write(0x20_0000, header.as_bytes()).unwrap();
        ram.write(0x20_0010, &0x000D_0003u32.to_le_bytes()).unwrap();
        ram.write(0x20_0014, &x64::RIP.0.to_le_bytes()).unwrap();
        ram.write(0x20_0018, &0x1234_5678u32.to_le_bytes()).unwrap();
        let control = 0x50 | (3u64 << 32);
        let t = TracedCall::new(0, control, 0x20_0000, 0x20_0000, &ram, Vec::new);
        let ok = HypercallResult::of(HvStatus::SUCCESS, 3).into_bits();
        let line = t.line(Outcome::Complete, ok, control);
        assert!(line.starts_with("hypercall ") && line.ends_with('\n'));
        assert_eq!(
            fields(&line),
            [
                ("vp", "0"),
                ("code", "0x0050"),
                ("fast", "0"),
                ("rep", "0/3"),
                ("in", "0x200000"),
                ("out", "0x200000"),
                ("result", "complete"),
                ("status", "0x0000"),
                ("reps", "3"),
                ("partition", "self"),
                ("target_vp", "self"),
                ("vtl", "0x00"),
                ("names", "vsm_vp_status,rip,0x12345678"),
            ]
        );
    }

    #[test]
    fn other_calls_continuations_and_unreadable_input() {
        let ram = GuestRam::new(4).unwrap();
        let t = TracedCall::new(1, 0x0002_0001, 0x1000, 0, &ram, Vec::new);
        let r = HypercallResult::of(HvStatus::INVALID_HYPERCALL_CODE, 0).into_bits();
        let line = t.line(Outcome::Complete, r, 0);
        assert!(line.contains(" code=0x0001 "), "{line}");
        assert!(line.contains(" status=0x0002 reps=0\n"), "{line}");
        assert!(!line.contains("names="));

        let control = 0x50 | (300u64 << 32);
        let t = TracedCall::new(0, control, u64::MAX - 5, 0, &ram, Vec::new);
        let line = t.line(Outcome::Continue, 0, control | (256 << 48));
        assert!(
            line.contains(" result=continue status=- reps=256\n"),
            "{line}"
        );
    }

    #[test]
    fn a_set_vp_registers_call_names_the_registers_it_writes() {
        let ram = GuestRam::new(4).unwrap();
        let header = GetVpRegistersHeader::new(partition_id::SELF, 1, HvInputVtl::new());
        ram.write(0x20_0000, header.as_bytes()).unwrap();
        ram.write(0x20_0010, &x64::R12.0.to_le_bytes()).unwrap();
        ram.write(0x20_0020, &[0xAA; 16]).unwrap(); // its value
        ram.write(0x20_0030, &x64::DR0.0.to_le_bytes()).unwrap();
        let control = 0x51 | (2u64 << 32);
        let t = TracedCall::new(0, control, 0x20_0000, 0, &ram, Vec::new);
        let ok = HypercallResult::of(HvStatus::SUCCESS, 2).into_bits();
        let line = t.line(Outcome::Complete, ok, control);
        assert!(
            line.ends_with(" partition=self target_vp=1 vtl=0x00 names=r12,dr0\n"),
            "{line}"
        );
    }

    #[test]
    fn a_fast_call_reads_its_registers() {
        let ram = GuestRam::new(4).unwrap();
        let mut regs = Vec::new();
        regs.extend_from_slice(&2u64.to_le_bytes()); // RDX: partition 2
        regs.extend_from_slice(&1u64.to_le_bytes()); // R8: VP 1, VTL 0
        regs.extend_from_slice(&x64::RIP.0.to_le_bytes()); // XMM0: rip
        let control = 0x50 | (1 << 16) | (1u64 << 32);
        let t = TracedCall::new(0, control, 2, 1, &ram, || regs);
        let line = t.line(Outcome::InjectUndefined, 0, control);
        assert!(
            line.contains(" fast=1 rep=0/1 in=0x0 out=0x0 result=ud status=- reps=0 partition=0x2 target_vp=1 vtl=0x00 names=rip\n"),
            "{line}"
        );
    }
}
