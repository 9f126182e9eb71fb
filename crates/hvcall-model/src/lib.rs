//! In-memory reference model of what a VMM hands the hvcall dispatcher:
//! a partition hierarchy with VPs and VTL-banked register files
//! ([`Model`], an implementation of
//! [`Partitions`](hvcall_dispatch::Partitions) and
//! [`ReadRegisters`](hvcall_dispatch::ReadRegisters) and
//! [`WriteRegisters`](hvcall_dispatch::WriteRegisters), offering 0x0050 and
//! 0x0051; [`ReadOnly`] offers 0x0050 only) and guest memory with holes
//! and overlay pages ([`GuestRam`], an implementation of
//! [`PartitionMemory`](hvcall_dispatch::PartitionMemory)).
//!
//! Tests and benches drive the dispatcher against it, and it is the oracle
//! the hostile-guest tests compare the real VMM with. It models the
//! partitions, privileges, VTLs and register sharing of the hvcall
//! contract, `docs/contract.md` in the repository
//! (§1 partition ids and steps 6c–6i, §5 shared and private registers).
//!
//! - partitions: the root is id 1 (no parent), the VM id 2 (child of 1);
//!   any other ids can be added with any parent;
//! - privileges and the XMM fast CPUID bits are per partition;
//! - each VP has an active VTL, an enabled-VTL set, shared registers (one
//!   copy, [`hvcall_abi::vtl::is_shared`]) and private registers (one copy per VTL);
//! - a register that was never set does not exist (reads give
//!   `HV_STATUS_INVALID_PARAMETER`);
//! - a snapshot copies the target's registers once per call.
//!
//! ```
//! use hvcall_abi::Arch;
//! use hvcall_dispatch::{dispatch, CallContext, Convention, DispatchConfig, Outcome, VpState};
//! use hvcall_dispatch::registers::{x64, RegisterFile};
//! use hvcall_model::{GuestRam, Model};
//!
//! let mut model = Model::standard(Arch::X64); // VP 0 of the VM calls
//! let mut ram = GuestRam::with_region(0, 0x10000).unwrap();
//! // Input at 0x1000: SELF, VP SELF, VTL byte 0, then one name (RIP).
//! ram.poke(0x1000, &u64::MAX.to_le_bytes()).unwrap();
//! ram.poke(0x1008, &0xFFFF_FFFEu32.to_le_bytes()).unwrap();
//! ram.poke(0x1010, &0x0002_0010u32.to_le_bytes()).unwrap();
//! let mut regs = RegisterFile::default();
//! regs.gprs[x64::RCX] = 0x50 | (1 << 32);
//! regs.gprs[x64::RDX] = 0x1000;
//! regs.gprs[x64::R8] = 0x2000;
//! let ctx = CallContext::new(Convention::X64, true, 0);
//! let mut state = VpState::new();
//! let out = dispatch(&ctx, &mut regs, &mut ram, &mut model, &mut state, &DispatchConfig::default());
//! assert_eq!(out, Ok(Outcome::Complete));
//! assert_eq!(regs.gprs[x64::RAX], 1 << 32); // success, 1 rep
//! ```

mod builder;
mod memory;
mod model;

pub use builder::{standard_names, standard_value, ModelBuilder};
pub use memory::{GuestRam, LayoutError};
pub use model::{
    Model, ModelSnapshot, Partition, ReadOnly, Vp, DEFAULT_PRIVILEGES, READ_ONLY, ROOT_PARTITION,
    VM_PARTITION,
};
