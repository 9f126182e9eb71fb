//! The Intel MultiProcessor Specification 1.4 table: how a guest without
//! ACPI finds its processors, the ISA bus, the I/O APIC and the interrupt
//! wiring of KVM's in-kernel irqchip.
//!
//! Layout in the BIOS area at [`MPTABLE_START`] (all fields little-endian):
//!
//! | GPA | what |
//! |---|---|
//! | `0xF_0000` | MP floating pointer structure (16 bytes, `_MP_`) |
//! | `0xF_0010` | MP configuration table header (44 bytes, `PCMP`) |
//! | `0xF_003C` | `cpus` processor entries (20 bytes each), APIC ID *i* = VP *i* |
//! | then | ISA bus entry (bus 0), I/O APIC entry (ID = `cpus`, `0xFEC0_0000`) |
//! | then | 16 I/O interrupt entries: ISA IRQ *n* → I/O APIC pin *n* |
//! | then | 2 local interrupt entries: ExtINT → LINT0, NMI → LINT1 (all APICs) |
//!
//! Entries follow the specification's order (by entry type); there is no
//! extended table. The wiring matches KVM's default GSI routing, which sends
//! ISA IRQ *n* (*n* < 16) to I/O APIC pin *n* and PIC pin *n*.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::memory::{GuestRam, RamError};

/// First byte of the BIOS area the MP table lives in; e820 marks
/// [MPTABLE_START, 0x10_0000) reserved.
pub const MPTABLE_START: u64 = 0xF_0000;

/// End (exclusive) of the BIOS area the table must fit in.
const MPTABLE_END: u64 = 0x10_0000;

/// Most processors a table can describe: APIC IDs are 8 bits, `0xFF` is the
/// broadcast ID, and the I/O APIC takes the ID after the last processor.
pub const MAX_CPUS: u32 = 254;

/// Errors writing the MP table.
#[derive(Debug, thiserror::Error)]
pub enum MpTableError {
    /// A table needs at least the bootstrap processor.
    #[error("an MP table needs at least one CPU")]
    NoCpus,
    /// More processors than 8-bit APIC IDs can name.
    #[error(
        "{0} CPUs do not fit in an MP table (at most {MAX_CPUS}: APIC IDs are 8-bit \
         and the I/O APIC takes ID = CPU count)"
    )]
    TooManyCpus(u32),
    /// Writing the table to guest RAM failed.
    #[error("writing the MP table: {0}")]
    Ram(#[from] RamError),
}

const FLOATING_SIGNATURE: [u8; 4] = *b"_MP_";
const CONFIG_SIGNATURE: [u8; 4] = *b"PCMP";
/// Specification revision 1.4.
const SPEC_REV: u8 = 4;
const OEM_ID: [u8; 8] = *b"HVCALL  ";
const PRODUCT_ID: [u8; 12] = *b"HVCALL VMM  ";

const LOCAL_APIC_ADDRESS: u32 = 0xFEE0_0000;
const IO_APIC_ADDRESS: u32 = 0xFEC0_0000;
/// An integrated xAPIC (versions 0x10.. are integrated, 0x14.. xAPIC).
const LOCAL_APIC_VERSION: u8 = 0x14;
/// The 82093AA-compatible I/O APIC KVM emulates.
const IO_APIC_VERSION: u8 = 0x11;

const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IO_APIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;

const CPU_ENABLED: u8 = 1 << 0;
const CPU_BOOTSTRAP: u8 = 1 << 1;
const IO_APIC_ENABLED: u8 = 1 << 0;

/// Family 6, model 0xA, stepping 3 (CPUID.1:EAX layout).
const CPU_SIGNATURE: u32 = (6 << 8) | (0xA << 4) | 3;
/// CPUID.1:EDX: FPU (bit 0) and on-chip APIC (bit 9).
const CPU_FEATURES: u32 = (1 << 0) | (1 << 9);

const BUS_ISA: [u8; 6] = *b"ISA   ";
const ISA_BUS_ID: u8 = 0;
const ISA_IRQS: u8 = 16;

const INT_TYPE_INT: u8 = 0;
const INT_TYPE_NMI: u8 = 1;
const INT_TYPE_EXTINT: u8 = 3;
/// Polarity and trigger mode both "conforms to the bus".
const INT_FLAGS_CONFORMING: u16 = 0;
/// Destination local APIC ID meaning "every local APIC".
const ALL_LOCAL_APICS: u8 = 0xFF;

/// MP floating pointer structure (spec §4.1).
#[derive(IntoBytes, FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct FloatingPointer {
    signature: [u8; 4],
    /// Physical address of the configuration table.
    config_table: u32,
    /// Length in 16-byte paragraphs (1).
    length: u8,
    spec_rev: u8,
    /// Makes the 16 bytes sum to 0.
    checksum: u8,
    /// Byte 1: 0 = a configuration table is present. Byte 2 bit 7 (IMCRP)
    /// clear: virtual wire mode. Bytes 3..=5 reserved.
    features: [u8; 5],
}

/// MP configuration table header (spec §4.2).
#[derive(IntoBytes, FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct ConfigHeader {
    signature: [u8; 4],
    /// Length of the header and base entries in bytes.
    base_length: u16,
    spec_rev: u8,
    /// Makes the base table sum to 0.
    checksum: u8,
    oem_id: [u8; 8],
    product_id: [u8; 12],
    oem_table: u32,
    oem_table_size: u16,
    entry_count: u16,
    local_apic: u32,
    extended_length: u16,
    extended_checksum: u8,
    reserved: u8,
}

/// Processor entry (spec §4.3.1).
#[derive(IntoBytes, FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct ProcessorEntry {
    entry_type: u8,
    local_apic_id: u8,
    local_apic_version: u8,
    flags: u8,
    signature: u32,
    features: u32,
    reserved: [u8; 8],
}

/// Bus entry (spec §4.3.2).
#[derive(IntoBytes, FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct BusEntry {
    entry_type: u8,
    bus_id: u8,
    bus_type: [u8; 6],
}

/// I/O APIC entry (spec §4.3.3).
#[derive(IntoBytes, FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct IoApicEntry {
    entry_type: u8,
    id: u8,
    version: u8,
    flags: u8,
    address: u32,
}

/// I/O (type 3) and local (type 4) interrupt assignment entries (spec
/// §4.3.4, §4.3.5): the same layout, the destination being an I/O APIC
/// ID and INTIN pin or a local APIC ID and LINTIN pin.
#[derive(IntoBytes, FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct InterruptEntry {
    entry_type: u8,
    interrupt_type: u8,
    flags: u16,
    source_bus: u8,
    source_irq: u8,
    destination_id: u8,
    destination_pin: u8,
}

const _: () = assert!(core::mem::size_of::<FloatingPointer>() == 16);
const _: () = assert!(core::mem::offset_of!(FloatingPointer, config_table) == 4);
const _: () = assert!(core::mem::offset_of!(FloatingPointer, checksum) == 10);
const _: () = assert!(core::mem::offset_of!(FloatingPointer, features) == 11);
const _: () = assert!(core::mem::size_of::<ConfigHeader>() == 44);
const _: () = assert!(core::mem::offset_of!(ConfigHeader, checksum) == 7);
const _: () = assert!(core::mem::offset_of!(ConfigHeader, oem_table) == 28);
const _: () = assert!(core::mem::offset_of!(ConfigHeader, entry_count) == 34);
const _: () = assert!(core::mem::offset_of!(ConfigHeader, local_apic) == 36);
const _: () = assert!(core::mem::offset_of!(ConfigHeader, extended_length) == 40);
const _: () = assert!(core::mem::size_of::<ProcessorEntry>() == 20);
const _: () = assert!(core::mem::offset_of!(ProcessorEntry, signature) == 4);
const _: () = assert!(core::mem::offset_of!(ProcessorEntry, features) == 8);
const _: () = assert!(core::mem::size_of::<BusEntry>() == 8);
const _: () = assert!(core::mem::size_of::<IoApicEntry>() == 8);
const _: () = assert!(core::mem::offset_of!(IoApicEntry, address) == 4);
const _: () = assert!(core::mem::size_of::<InterruptEntry>() == 8);
const _: () = assert!(core::mem::offset_of!(InterruptEntry, source_bus) == 4);
// The fields are stored in host order; the MP table is little-endian.
const _: () = assert!(cfg!(target_endian = "little"));

/// GPA of the configuration table: right after the floating pointer.
const CONFIG_TABLE_GPA: u64 = MPTABLE_START + core::mem::size_of::<FloatingPointer>() as u64;
const _: () = assert!(CONFIG_TABLE_GPA <= u32::MAX as u64);

/// Number of base-table entries that do not depend on the CPU count: the
/// bus, the I/O APIC, the ISA IRQs and the two local interrupts.
const FIXED_ENTRIES: u16 = 1 + 1 + ISA_IRQS as u16 + 2;
/// Bytes of the base table that do not depend on the CPU count.
const FIXED_BYTES: usize = core::mem::size_of::<ConfigHeader>()
    + core::mem::size_of::<BusEntry>()
    + core::mem::size_of::<IoApicEntry>()
    + (ISA_IRQS as usize + 2) * core::mem::size_of::<InterruptEntry>();
// The largest table fits in the BIOS area below 1 MiB.
const _: () = assert!(
    MPTABLE_START
        + core::mem::size_of::<FloatingPointer>() as u64
        + FIXED_BYTES as u64
        + MAX_CPUS as u64 * core::mem::size_of::<ProcessorEntry>() as u64
        <= MPTABLE_END
);

/// The byte that makes `bytes` sum to 0 (mod 256) when added to them.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |sum, b| sum.wrapping_add(*b)))
}

/// The configuration table (header and base entries) for `cpus` processors,
/// checksummed. `cpus` is in `1..=MAX_CPUS`.
fn config_table(cpus: u8) -> Result<Vec<u8>, MpTableError> {
    let too_many = || MpTableError::TooManyCpus(u32::from(cpus));
    let io_apic_id = cpus;
    let length = core::mem::size_of::<ProcessorEntry>()
        .checked_mul(usize::from(cpus))
        .and_then(|p| p.checked_add(FIXED_BYTES))
        .ok_or_else(too_many)?;
    let base_length = u16::try_from(length).map_err(|_| too_many())?;
    let entry_count = FIXED_ENTRIES
        .checked_add(u16::from(cpus))
        .ok_or_else(too_many)?;

    let header = ConfigHeader {
        signature: CONFIG_SIGNATURE,
        base_length,
        spec_rev: SPEC_REV,
        checksum: 0,
        oem_id: OEM_ID,
        product_id: PRODUCT_ID,
        oem_table: 0,
        oem_table_size: 0,
        entry_count,
        local_apic: LOCAL_APIC_ADDRESS,
        extended_length: 0,
        extended_checksum: 0,
        reserved: 0,
    };
    let mut table = Vec::with_capacity(length);
    table.extend_from_slice(header.as_bytes());

    for id in 0..cpus {
        let bootstrap = if id == 0 { CPU_BOOTSTRAP } else { 0 };
        let entry = ProcessorEntry {
            entry_type: ENTRY_PROCESSOR,
            local_apic_id: id,
            local_apic_version: LOCAL_APIC_VERSION,
            flags: CPU_ENABLED | bootstrap,
            signature: CPU_SIGNATURE,
            features: CPU_FEATURES,
            reserved: [0; 8],
        };
        table.extend_from_slice(entry.as_bytes());
    }

    let bus = BusEntry {
        entry_type: ENTRY_BUS,
        bus_id: ISA_BUS_ID,
        bus_type: BUS_ISA,
    };
    table.extend_from_slice(bus.as_bytes());

    let io_apic = IoApicEntry {
        entry_type: ENTRY_IO_APIC,
        id: io_apic_id,
        version: IO_APIC_VERSION,
        flags: IO_APIC_ENABLED,
        address: IO_APIC_ADDRESS,
    };
    table.extend_from_slice(io_apic.as_bytes());

    for irq in 0..ISA_IRQS {
        let entry = InterruptEntry {
            entry_type: ENTRY_IO_INTERRUPT,
            interrupt_type: INT_TYPE_INT,
            flags: INT_FLAGS_CONFORMING,
            source_bus: ISA_BUS_ID,
            source_irq: irq,
            destination_id: io_apic_id,
            destination_pin: irq,
        };
        table.extend_from_slice(entry.as_bytes());
    }

    for (interrupt_type, lint) in [(INT_TYPE_EXTINT, 0), (INT_TYPE_NMI, 1)] {
        let entry = InterruptEntry {
            entry_type: ENTRY_LOCAL_INTERRUPT,
            interrupt_type,
            flags: INT_FLAGS_CONFORMING,
            source_bus: ISA_BUS_ID,
            source_irq: 0,
            destination_id: ALL_LOCAL_APICS,
            destination_pin: lint,
        };
        table.extend_from_slice(entry.as_bytes());
    }

    let sum = checksum(&table);
    if let Some(byte) = table.get_mut(core::mem::offset_of!(ConfigHeader, checksum)) {
        *byte = sum;
    }
    Ok(table)
}

/// Writes the floating pointer structure and the configuration table for
/// `cpus` processors (APIC ID i = VP index i, VP 0 the bootstrap processor)
/// at MPTABLE_START.
pub fn write(ram: &GuestRam, cpus: u32) -> Result<(), MpTableError> {
    if cpus == 0 {
        return Err(MpTableError::NoCpus);
    }
    let cpus8 = u8::try_from(cpus)
        .ok()
        .filter(|&c| u32::from(c) <= MAX_CPUS)
        .ok_or(MpTableError::TooManyCpus(cpus))?;
    let table = config_table(cpus8)?;

    let mut pointer = FloatingPointer {
        signature: FLOATING_SIGNATURE,
        // Checked at compile time: the table is below 1 MiB.
        config_table: CONFIG_TABLE_GPA as u32,
        length: 1,
        spec_rev: SPEC_REV,
        checksum: 0,
        features: [0; 5],
    };
    pointer.checksum = checksum(pointer.as_bytes());

    ram.write(MPTABLE_START, pointer.as_bytes())?;
    ram.write(CONFIG_TABLE_GPA, &table)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIOS_END: u64 = 0x10_0000;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
    }

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    /// Finds the floating pointer the way Linux's `smp_scan_config` does:
    /// 16-byte steps through 0xF0000..0x100000, "_MP_", length 1, revision
    /// 1 or 4, bytes summing to 0. Returns its GPA and bytes.
    fn scan_floating_pointer(ram: &GuestRam) -> Option<(u64, [u8; 16])> {
        let mut gpa = 0xF_0000;
        while gpa < BIOS_END {
            let mut mpf = [0u8; 16];
            ram.read(gpa, &mut mpf).unwrap();
            if &mpf[0..4] == b"_MP_"
                && mpf[8] == 1
                && (mpf[9] == 1 || mpf[9] == 4)
                && sum(&mpf) == 0
            {
                return Some((gpa, mpf));
            }
            gpa += 16;
        }
        None
    }

    /// A parsed base-table entry.
    #[derive(Debug, Clone, PartialEq)]
    enum Entry {
        Processor {
            apic_id: u8,
            version: u8,
            flags: u8,
            signature: u32,
        },
        Bus {
            id: u8,
            kind: [u8; 6],
        },
        IoApic {
            id: u8,
            version: u8,
            flags: u8,
            address: u32,
        },
        IoInterrupt {
            kind: u8,
            flags: u16,
            bus: u8,
            irq: u8,
            apic: u8,
            pin: u8,
        },
        LocalInterrupt {
            kind: u8,
            flags: u16,
            bus: u8,
            irq: u8,
            apic: u8,
            lint: u8,
        },
    }

    struct Parsed {
        gpa: u64,
        header: Vec<u8>,
        base: Vec<u8>,
        entries: Vec<Entry>,
    }

    /// Follows the floating pointer to the configuration table and walks
    /// its entries by type, as the guest would.
    fn parse(ram: &GuestRam) -> Parsed {
        let (_, mpf) = scan_floating_pointer(ram).expect("no MP floating pointer");
        assert_eq!(
            mpf[11], 0,
            "feature byte 1: a configuration table is present"
        );
        let gpa = u64::from(u32_at(&mpf, 4));
        let mut header = vec![0u8; 44];
        ram.read(gpa, &mut header).unwrap();
        assert_eq!(&header[0..4], b"PCMP");
        let length = usize::from(u16_at(&header, 4));
        let mut base = vec![0u8; length];
        ram.read(gpa, &mut base).unwrap();
        let count = u16_at(&header, 34);
        let mut entries = Vec::new();
        let mut off = 44;
        for _ in 0..count {
            let e = &base[off..];
            let (entry, len) = match e[0] {
                0 => (
                    Entry::Processor {
                        apic_id: e[1],
                        version: e[2],
                        flags: e[3],
                        signature: u32_at(e, 4),
                    },
                    20,
                ),
                1 => (
                    Entry::Bus {
                        id: e[1],
                        kind: e[2..8].try_into().unwrap(),
                    },
                    8,
                ),
                2 => (
                    Entry::IoApic {
                        id: e[1],
                        version: e[2],
                        flags: e[3],
                        address: u32_at(e, 4),
                    },
                    8,
                ),
                3 => (
                    Entry::IoInterrupt {
                        kind: e[1],
                        flags: u16_at(e, 2),
                        bus: e[4],
                        irq: e[5],
                        apic: e[6],
                        pin: e[7],
                    },
                    8,
                ),
                4 => (
                    Entry::LocalInterrupt {
                        kind: e[1],
                        flags: u16_at(e, 2),
                        bus: e[4],
                        irq: e[5],
                        apic: e[6],
                        lint: e[7],
                    },
                    8,
                ),
                t => panic!("unknown entry type {t} at offset {off}"),
            };
            entries.push(entry);
            off += len;
        }
        assert_eq!(off, length, "base table length matches the entries");
        Parsed {
            gpa,
            header,
            base,
            entries,
        }
    }

    fn written(cpus: u32) -> (GuestRam, Parsed) {
        let ram = GuestRam::new(2).unwrap();
        write(&ram, cpus).unwrap();
        let parsed = parse(&ram);
        (ram, parsed)
    }

    fn io_apic_id(entries: &[Entry]) -> u8 {
        let ids: Vec<u8> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::IoApic { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 1, "one I/O APIC");
        ids[0]
    }

    #[test]
    fn floating_pointer_is_found_like_linux_scans() {
        let ram = GuestRam::new(2).unwrap();
        assert!(scan_floating_pointer(&ram).is_none());
        write(&ram, 2).unwrap();
        let (gpa, mpf) = scan_floating_pointer(&ram).unwrap();
        assert_eq!(gpa, MPTABLE_START);
        assert_eq!(gpa % 16, 0);
        assert_eq!(sum(&mpf), 0);
        assert_eq!(mpf[9], 4, "spec revision 1.4");
        assert_eq!(
            &mpf[11..16],
            &[0; 5],
            "no default configuration, virtual wire"
        );
        let table = u64::from(u32_at(&mpf, 4));
        assert!((0xF_0000..BIOS_END).contains(&table));
        assert!(
            table >= gpa + 16 || table + 44 <= gpa,
            "table overlaps the pointer"
        );
    }

    #[test]
    fn config_table_checksum_and_length_match_entries() {
        for cpus in [1, 2, 3, 8, 64, MAX_CPUS] {
            let (_, p) = written(cpus);
            assert_eq!(sum(&p.base), 0, "base table checksum, {cpus} CPUs");
            assert_eq!(p.header[6], 4, "spec revision 1.4");
            assert_eq!(u32_at(&p.header, 36), 0xFEE0_0000, "local APIC address");
            assert_eq!(u16_at(&p.header, 40), 0, "no extended table");
            assert_eq!(u32_at(&p.header, 28), 0, "no OEM table");
            assert!(p.header[8..28]
                .iter()
                .all(|c| c.is_ascii_graphic() || *c == b' '));
            // parse() checked that the entries end exactly at the base length.
            assert_eq!(p.entries.len(), usize::from(u16_at(&p.header, 34)));
        }
    }

    #[test]
    fn one_processor_entry_per_cpu_only_cpu0_is_bsp() {
        for cpus in [1u32, 2, 5, MAX_CPUS] {
            let (_, p) = written(cpus);
            let procs: Vec<_> = p
                .entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Processor {
                        apic_id,
                        version,
                        flags,
                        signature,
                    } => Some((*apic_id, *version, *flags, *signature)),
                    _ => None,
                })
                .collect();
            assert_eq!(procs.len() as u32, cpus);
            for (i, (apic_id, version, flags, signature)) in procs.into_iter().enumerate() {
                assert_eq!(u32::from(apic_id), i as u32, "APIC ID = VP index");
                assert_eq!(version, 0x14, "integrated xAPIC");
                assert_ne!(flags & 1, 0, "CPU {i} enabled");
                assert_eq!(flags & 2 != 0, i == 0, "only CPU 0 is the BSP");
                assert_ne!(signature, 0);
            }
        }
    }

    #[test]
    fn isa_bus_and_io_apic_entries() {
        for cpus in [1u32, 4, MAX_CPUS] {
            let (_, p) = written(cpus);
            let buses: Vec<_> = p
                .entries
                .iter()
                .filter(|e| matches!(e, Entry::Bus { .. }))
                .collect();
            assert_eq!(
                buses,
                [&Entry::Bus {
                    id: 0,
                    kind: *b"ISA   "
                }]
            );
            let io_apic = p
                .entries
                .iter()
                .find(|e| matches!(e, Entry::IoApic { .. }))
                .unwrap();
            assert_eq!(
                io_apic,
                &Entry::IoApic {
                    id: cpus as u8,
                    version: 0x11,
                    flags: 1,
                    address: 0xFEC0_0000,
                }
            );
            assert_eq!(u32::from(io_apic_id(&p.entries)), cpus);
        }
    }

    #[test]
    fn sixteen_isa_irqs_go_to_the_matching_io_apic_pin() {
        let (_, p) = written(3);
        let io_apic = io_apic_id(&p.entries);
        let irqs: Vec<_> = p
            .entries
            .iter()
            .filter(|e| matches!(e, Entry::IoInterrupt { .. }))
            .cloned()
            .collect();
        assert_eq!(irqs.len(), 16);
        for (n, e) in irqs.into_iter().enumerate() {
            assert_eq!(
                e,
                Entry::IoInterrupt {
                    kind: 0,
                    flags: 0,
                    bus: 0,
                    irq: n as u8,
                    apic: io_apic,
                    pin: n as u8,
                },
                "ISA IRQ {n}"
            );
        }
    }

    #[test]
    fn extint_on_lint0_and_nmi_on_lint1_of_all_local_apics() {
        let (_, p) = written(2);
        let lints: Vec<_> = p
            .entries
            .iter()
            .filter(|e| matches!(e, Entry::LocalInterrupt { .. }))
            .cloned()
            .collect();
        let lint = |kind, lint| Entry::LocalInterrupt {
            kind,
            flags: 0,
            bus: 0,
            irq: 0,
            apic: 0xFF,
            lint,
        };
        assert_eq!(lints, [lint(3, 0), lint(1, 1)]);
    }

    #[test]
    fn entries_are_in_spec_order() {
        let (_, p) = written(4);
        let kind = |e: &Entry| match e {
            Entry::Processor { .. } => 0,
            Entry::Bus { .. } => 1,
            Entry::IoApic { .. } => 2,
            Entry::IoInterrupt { .. } => 3,
            Entry::LocalInterrupt { .. } => 4,
        };
        let kinds: Vec<u8> = p.entries.iter().map(kind).collect();
        assert!(kinds.windows(2).all(|w| w[0] <= w[1]), "{kinds:?}");
        assert_eq!(kinds.first(), Some(&0));
        assert_eq!(kinds.last(), Some(&4));
    }

    #[test]
    fn zero_and_too_many_cpus_are_errors() {
        let ram = GuestRam::new(2).unwrap();
        assert!(matches!(write(&ram, 0), Err(MpTableError::NoCpus)));
        for cpus in [MAX_CPUS + 1, 255, 256, 1000, u32::MAX] {
            assert!(
                matches!(write(&ram, cpus), Err(MpTableError::TooManyCpus(n)) if n == cpus),
                "{cpus} CPUs"
            );
        }
        // Nothing was written.
        assert!(scan_floating_pointer(&ram).is_none());
        write(&ram, MAX_CPUS).unwrap();
    }

    #[test]
    fn largest_table_fits_below_1_mib() {
        let (ram, p) = written(MAX_CPUS);
        let end = p.gpa + p.base.len() as u64;
        assert!(p.gpa >= MPTABLE_START && end <= BIOS_END, "{end:#x}");
        // The table is the last thing written: the rest of the area is untouched.
        let mut rest = vec![0u8; (BIOS_END - end) as usize];
        ram.read(end, &mut rest).unwrap();
        assert!(rest.iter().all(|b| *b == 0));
        // Every APIC ID, processors and I/O APIC, is distinct and not broadcast.
        let mut ids: Vec<u8> = p
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Processor { apic_id, .. } => Some(*apic_id),
                Entry::IoApic { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), MAX_CPUS as usize + 1);
        assert!(!ids.contains(&0xFF));
    }
}
