//! Hyper-V CPUID leaves and bits (digest §8.1).

/// Leaf 0x1 ECX bit 31: a hypervisor is present.
pub const HYPERVISOR_PRESENT_ECX: u32 = 1 << 31;
/// Vendor and max leaf.
pub const LEAF_VENDOR: u32 = 0x4000_0000;
/// Interface signature ("Hv#1").
pub const LEAF_INTERFACE: u32 = 0x4000_0001;
/// Privileges (EAX/EBX) and features (ECX/EDX).
pub const LEAF_FEATURES: u32 = 0x4000_0003;
/// "Hv#1" as read from EAX of [`LEAF_INTERFACE`].
pub const INTERFACE_SIGNATURE: u32 = 0x3123_7648;
/// EDX bit 4 of [`LEAF_FEATURES`]: XMM fast hypercall input.
pub const XMM_FAST_INPUT_EDX: u32 = 1 << 4;
/// EDX bit 15 of [`LEAF_FEATURES`]: XMM fast hypercall output.
pub const XMM_FAST_OUTPUT_EDX: u32 = 1 << 15;
