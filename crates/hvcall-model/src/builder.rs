//! A small builder for [`Model`]s, and the standard configuration the
//! tests start from.

use std::collections::BTreeMap;

use hvcall_abi::{Arch, HvRegisterName, HvRegisterValue};

use crate::model::{Model, Partition, Vp, DEFAULT_PRIVILEGES, ROOT_PARTITION, VM_PARTITION};

/// Builds a [`Model`].
///
/// Starts with the root partition (id 1, one VP, VTL 0 enabled, default
/// privileges, both XMM fast bits) calling. Settings that name a missing
/// partition or VP are ignored, so arbitrary (fuzzed) configurations never
/// fail.
///
/// ```
/// use hvcall_abi::{Arch, HvRegisterName, HvRegisterValue};
/// use hvcall_model::Model;
/// let model = Model::builder(Arch::X64)
///     .partition(2, 1, 2)           // the VM: child of the root, 2 VPs
///     .vtls(2, 1, 0b11, 1)          // VP 1 runs in VTL 1, VTLs 0 and 1 enabled
///     .register(2, 1, 1, HvRegisterName(0x0002_0010), HvRegisterValue::from(0x1000u64))
///     .caller(2, 0)
///     .build();
/// assert_eq!(model.caller_id(), (2, 0));
/// ```
#[derive(Clone, Debug)]
pub struct ModelBuilder {
    model: Model,
}

fn new_partition(parent: Option<u64>, vp_count: u32) -> Partition {
    let mut vp = Vp::default();
    vp.enabled_vtls = 1;
    Partition {
        parent,
        privileges: DEFAULT_PRIVILEGES,
        xmm_fast_input: true,
        xmm_fast_output: true,
        vps: vec![vp; vp_count as usize],
    }
}

impl Model {
    /// Start building a model of `arch`.
    pub fn builder(arch: Arch) -> ModelBuilder {
        ModelBuilder::new(arch)
    }

    /// The configuration hvcall runs: the root (1, one VP) and the VM (2,
    /// child of the root, two VPs), VP 0 of the VM calling, VTL 0 only.
    /// Every VP has, in VTL 0, the registers of [`standard_names`] with the
    /// values of [`standard_value`].
    pub fn standard(arch: Arch) -> Model {
        let mut builder = Model::builder(arch)
            .partition(VM_PARTITION, ROOT_PARTITION, 2)
            .caller(VM_PARTITION, 0);
        for (pid, vp) in [(ROOT_PARTITION, 0), (VM_PARTITION, 0), (VM_PARTITION, 1)] {
            for &name in standard_names(arch) {
                builder = builder.register(pid, vp, 0, name, standard_value(pid, vp, 0, name));
            }
        }
        builder.build()
    }
}

/// The registers [`Model::standard`] gives every VP: on x64 RAX..R15, RIP,
/// RFLAGS, CR0, CR3 and EFER; on ARM64 X0..X28, PC, SCTLR_EL1 and
/// TTBR0_EL1.
pub fn standard_names(arch: Arch) -> &'static [HvRegisterName] {
    const X64: [HvRegisterName; 21] = {
        let mut names = [HvRegisterName(0); 21];
        let mut i = 0;
        while i < 16 {
            names[i] = HvRegisterName(0x0002_0000 + i as u32);
            i += 1;
        }
        names[16] = HvRegisterName(0x0002_0010); // RIP
        names[17] = HvRegisterName(0x0002_0011); // RFLAGS
        names[18] = HvRegisterName(0x0004_0000); // CR0
        names[19] = HvRegisterName(0x0004_0002); // CR3
        names[20] = HvRegisterName(0x0008_0001); // EFER
        names
    };
    const ARM64: [HvRegisterName; 32] = {
        let mut names = [HvRegisterName(0); 32];
        let mut i = 0;
        while i < 29 {
            names[i] = HvRegisterName(0x0002_0000 + i as u32);
            i += 1;
        }
        names[29] = HvRegisterName(0x0002_0022); // PC
        names[30] = HvRegisterName(0x0004_0002); // SCTLR_EL1
        names[31] = HvRegisterName(0x0004_0005); // TTBR0_EL1
        names
    };
    match arch {
        Arch::X64 => &X64,
        Arch::Arm64 => &ARM64,
    }
}

/// The value [`Model::standard`] gives a register: distinct for every
/// (partition, VP, VTL, name) and using all 16 bytes.
pub fn standard_value(partition: u64, vp: u32, vtl: u8, name: HvRegisterName) -> HvRegisterValue {
    let low =
        (partition << 48) ^ (u64::from(vp) << 40) ^ (u64::from(vtl) << 36) ^ u64::from(name.0);
    HvRegisterValue::from_parts(low, !low.rotate_left(17))
}

impl ModelBuilder {
    /// A model of `arch` with only the root partition, which calls.
    pub fn new(arch: Arch) -> Self {
        let mut partitions = BTreeMap::new();
        partitions.insert(ROOT_PARTITION, new_partition(None, 1));
        Self {
            model: Model {
                arch,
                partitions,
                caller: (ROOT_PARTITION, 0),
                snapshots_taken: 0,
                last_snapshot_names: Vec::new(),
                registers_read: 0,
                registers_written: 0,
            },
        }
    }

    /// Add (or replace) partition `id`, a child of `parent`, with
    /// `vp_count` VPs (at most 64 in the model).
    pub fn partition(mut self, id: u64, parent: u64, vp_count: u32) -> Self {
        self.model
            .partitions
            .insert(id, new_partition(Some(parent), vp_count.min(64)));
        self
    }

    /// Give the root partition `vp_count` VPs (at most 64).
    pub fn root_vps(mut self, vp_count: u32) -> Self {
        if let Some(root) = self.model.partitions.get_mut(&ROOT_PARTITION) {
            let vp = root.vps.first().cloned().unwrap_or_default();
            root.vps.resize(vp_count.min(64) as usize, vp);
        }
        self
    }

    /// Set the privilege mask of partition `id`.
    pub fn privileges(mut self, id: u64, mask: u64) -> Self {
        if let Some(p) = self.model.partitions.get_mut(&id) {
            p.privileges = mask;
        }
        self
    }

    /// Set which XMM fast forms partition `id` sees advertised.
    pub fn xmm_fast(mut self, id: u64, input: bool, output: bool) -> Self {
        if let Some(p) = self.model.partitions.get_mut(&id) {
            p.xmm_fast_input = input;
            p.xmm_fast_output = output;
        }
        self
    }

    /// Set the enabled VTL set and the active VTL of one VP.
    pub fn vtls(mut self, id: u64, vp: u32, enabled: u16, active: u8) -> Self {
        if let Some(v) = self.model.vp_mut(id, vp) {
            v.enabled_vtls = enabled;
            v.active_vtl = active;
        }
        self
    }

    /// Set a register of (partition, VP, VTL).
    pub fn register(
        mut self,
        id: u64,
        vp: u32,
        vtl: u8,
        name: HvRegisterName,
        value: HvRegisterValue,
    ) -> Self {
        self.model.set_register(id, vp, vtl, name, value);
        self
    }

    /// Make VP `vp` of partition `id` the caller.
    pub fn caller(mut self, id: u64, vp: u32) -> Self {
        self.model.caller = (id, vp);
        self
    }

    /// The model.
    pub fn build(self) -> Model {
        self.model
    }
}
