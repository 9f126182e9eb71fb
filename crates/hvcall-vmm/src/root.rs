//! Host-side reads: the root partition (id 1), parent of the VM, reads a
//! VP's registers through the same [`hvcall_dispatch::dispatch()`] path a
//! guest's HvCallGetVpRegisters takes, with its input and output in a small
//! host buffer. Where the target's snapshot comes from is the caller's
//! choice: plain ioctls while no vCPU runs ([`crate::Vm::get_vp_registers`]
//! takes `&mut Vm`), or a rendezvous with the running VP
//! ([`crate::inspect::Inspector`]).

use hvcall_abi::{call_code, privilege, GetVpRegistersHeader, HvInputVtl};
use hvcall_abi::{HvRegisterName, HvRegisterValue, HvStatus, HypercallControl, HypercallResult};
use hvcall_dispatch::hypervisor::{Caller, PartitionInfo, Target};
use hvcall_dispatch::registers::{x64, RegisterFile};
use hvcall_dispatch::{dispatch, CallContext, Convention, DispatchConfig, Outcome, VpState};
use hvcall_dispatch::{GuestMemory, Hypervisor, MemoryError};
use zerocopy::IntoBytes;

use crate::hypercall::{partition_info, ROOT_PARTITION_ID, VM_PARTITION_ID};
use crate::registers::Groups;
use crate::snapshot::VpSnapshot;

/// Most names per call: the output list must fit one page.
const NAMES_PER_CALL: usize = 256;
const INPUT_GPA: u64 = 0;
const OUTPUT_GPA: u64 = 0x1000;

/// A root read that did not succeed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} at register {index}")]
pub struct RootReadError {
    /// The status the call returned.
    pub status: HvStatus,
    /// Index (in the caller's list) of the register being read.
    pub index: usize,
}

/// The root's "memory": one page of input and one of output.
struct RootMemory([u8; 0x2000]);

impl GuestMemory for RootMemory {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len)
            .is_some_and(|end| end <= self.0.len() as u64)
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let err = MemoryError::NotRam {
            gpa,
            len: buf.len() as u64,
        };
        let start = usize::try_from(gpa).map_err(|_| err)?;
        let src = self
            .0
            .get(start..start.checked_add(buf.len()).ok_or(err)?)
            .ok_or(err)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        let err = MemoryError::NotRam {
            gpa,
            len: data.len() as u64,
        };
        let start = usize::try_from(gpa).map_err(|_| err)?;
        let end = start.checked_add(data.len()).ok_or(err)?;
        self.0.get_mut(start..end).ok_or(err)?.copy_from_slice(data);
        Ok(())
    }
}

/// Takes one snapshot of VP `vp` (an existing VP of the VM) holding the
/// given groups; an error status fails the call.
pub(crate) type SnapshotSource<'a> = dyn FnMut(u32, Groups) -> Result<VpSnapshot, HvStatus> + 'a;

/// The root partition's view: the VM (`vp_count` VPs) is its child.
pub(crate) struct RootHypervisor<'a> {
    pub(crate) vp_count: u32,
    pub(crate) snapshot: &'a mut SnapshotSource<'a>,
}

impl Hypervisor for RootHypervisor<'_> {
    type Snapshot = VpSnapshot;

    fn caller(&self) -> Caller {
        Caller {
            partition_id: ROOT_PARTITION_ID,
            vp_index: 0,
            vtl: 0,
            privileges: privilege::ACCESS_VP_REGISTERS,
            xmm_fast_input: false,
            xmm_fast_output: false,
        }
    }

    fn partition(&self, id: u64) -> Option<PartitionInfo> {
        partition_info(id, self.vp_count)
    }

    fn enabled_vtls(&self, _partition_id: u64, _vp_index: u32) -> u16 {
        1
    }

    fn snapshot(
        &mut self,
        target: &Target,
        names: &[HvRegisterName],
    ) -> Result<VpSnapshot, HvStatus> {
        if target.partition_id != VM_PARTITION_ID || target.vp_index >= self.vp_count {
            return Err(HvStatus::INVALID_VP_INDEX);
        }
        (self.snapshot)(target.vp_index, Groups::of(names))
    }

    fn read_register(
        &mut self,
        snapshot: &mut VpSnapshot,
        name: HvRegisterName,
    ) -> Result<HvRegisterValue, HvStatus> {
        snapshot.read_held(name)
    }
}

/// Reads `names` of VP `vp_index` of the VM as the root partition, in calls
/// of at most 256 names, following continuations.
pub(crate) fn get_vp_registers(
    hv: &mut RootHypervisor<'_>,
    config: &DispatchConfig,
    vp_index: u32,
    names: &[HvRegisterName],
) -> Result<Vec<HvRegisterValue>, RootReadError> {
    let mut values = Vec::with_capacity(names.len());
    let ctx = CallContext {
        convention: Convention::X64,
        privileged: true,
        instruction_pointer: 0,
    };
    for (chunk_index, chunk) in names.chunks(NAMES_PER_CALL).enumerate() {
        let first = chunk_index * NAMES_PER_CALL;
        let fail = |status, index| RootReadError {
            status,
            index: first + index,
        };
        let mut memory = RootMemory([0; 0x2000]);
        let header = GetVpRegistersHeader::new(VM_PARTITION_ID, vp_index, HvInputVtl::new());
        let mut input = header.as_bytes().to_vec();
        input.extend(chunk.iter().flat_map(|n| n.0.to_le_bytes()));
        memory
            .write(INPUT_GPA, &input)
            .map_err(|_| fail(HvStatus::INVALID_PARAMETER, 0))?;
        let control = HypercallControl::new()
            .with_code(call_code::GET_VP_REGISTERS)
            .with_rep_count(chunk.len() as u16);
        let mut regs = RegisterFile::default();
        regs.gprs[x64::RCX] = control.into_bits();
        regs.gprs[x64::RDX] = INPUT_GPA;
        regs.gprs[x64::R8] = OUTPUT_GPA;
        let mut state = VpState::new();
        // Each entry completes at least one element, so this ends.
        loop {
            match dispatch(&ctx, &mut regs, &mut memory, hv, &mut state, config) {
                Outcome::Complete => break,
                Outcome::Continue => {}
                Outcome::InjectUndefined => return Err(fail(HvStatus::INVALID_HYPERCALL_INPUT, 0)),
            }
        }
        let result = HypercallResult::from_bits(regs.gprs[x64::RAX]);
        if !result.status().is_success() {
            return Err(fail(result.status(), usize::from(result.reps_completed())));
        }
        for i in 0..chunk.len() {
            let mut v = HvRegisterValue::default();
            memory
                .read(OUTPUT_GPA + 16 * i as u64, &mut v.0)
                .map_err(|_| fail(HvStatus::INVALID_PARAMETER, i))?;
            values.push(v);
        }
    }
    Ok(values)
}
