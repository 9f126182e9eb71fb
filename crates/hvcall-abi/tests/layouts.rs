//! Byte-by-byte layouts of the register-value views and wire structs,
//! checked against the offsets and bit positions the TLFS gives for
//! them (each expected value is built from those positions here, not
//! from the types under test).

use hvcall_abi::value::{
    x64::{event_type, interruption_type},
    FpControlStatus, FpRegister, HypercallMsr, InterruptState, PendingExceptionEvent,
    PendingInterruption, SegmentAttributes, SegmentRegister, Sint, TableRegister,
    VsmPartitionStatus, VsmVpStatus, XmmControlStatus,
};
use hvcall_abi::{GetVpRegistersHeader, HvInputVtl, HvRegisterValue};
use zerocopy::IntoBytes;

/// 16 bytes with `fields` = (offset, little-endian bytes) written in.
fn bytes(fields: &[(usize, &[u8])]) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (off, f) in fields {
        b[*off..*off + f.len()].copy_from_slice(f);
    }
    b
}

/// A 128-bit value with `value` placed at bit `shift`.
fn at(shift: u32, value: u128) -> u128 {
    value << shift
}

#[test]
fn register_value_is_16_le_bytes_zero_extended() {
    let v = HvRegisterValue::from(0x1122_3344u32);
    assert_eq!(v.0, bytes(&[(0, &[0x44, 0x33, 0x22, 0x11])]));
    let v = HvRegisterValue::from_parts(0x0102_0304_0506_0708, 0x1112_1314_1516_1718);
    assert_eq!(v.0[0], 0x08);
    assert_eq!(v.0[7], 0x01);
    assert_eq!(v.0[8], 0x18);
    assert_eq!(v.0[15], 0x11);
    assert_eq!(
        (v.low(), v.high()),
        (0x0102_0304_0506_0708, 0x1112_1314_1516_1718)
    );
    assert_eq!(v.as_u8(), 0x08);
    assert_eq!(v.as_u16(), 0x0708);
}

#[test]
fn segment_register_base_limit_selector_attributes() {
    let seg = SegmentRegister {
        base: 0x1122_3344_5566_7788,
        limit: 0xAABB_CCDD,
        selector: 0x1234,
        attributes: SegmentAttributes::from_bits(0xF0A5),
    };
    let expect = bytes(&[
        (0, &0x1122_3344_5566_7788u64.to_le_bytes()),
        (8, &0xAABB_CCDDu32.to_le_bytes()),
        (12, &0x1234u16.to_le_bytes()),
        (14, &0xF0A5u16.to_le_bytes()),
    ]);
    assert_eq!(seg.as_bytes(), &expect);
    assert_eq!(HvRegisterValue::from(seg).0, expect);
    assert_eq!(SegmentRegister::from(HvRegisterValue(expect)), seg);
}

#[test]
fn segment_attribute_bits() {
    let a = |bits: u16| SegmentAttributes::from_bits(bits);
    assert_eq!(a(0x000F).segment_type(), 0xF);
    assert!(a(1 << 4).non_system());
    assert_eq!(a(3 << 5).dpl(), 3);
    assert!(a(1 << 7).present());
    assert_eq!(a(0xF << 8).reserved(), 0xF);
    assert!(a(1 << 12).available());
    assert!(a(1 << 13).long());
    assert!(a(1 << 14).default_big());
    assert!(a(1 << 15).granularity());
    // Flat 64-bit code segment: type 0xB, S, P, L, G = 0xA09B.
    let code = SegmentAttributes::new()
        .with_segment_type(0xB)
        .with_non_system(true)
        .with_present(true)
        .with_long(true)
        .with_granularity(true);
    assert_eq!(code.into_bits(), 0xA09B);
}

#[test]
fn table_register_pad_limit_base() {
    let t = TableRegister {
        pad: [0; 3],
        limit: 0x0FFF,
        base: 0xFFFF_8000_0000_1000,
    };
    let expect = bytes(&[
        (6, &0x0FFFu16.to_le_bytes()),
        (8, &0xFFFF_8000_0000_1000u64.to_le_bytes()),
    ]);
    assert_eq!(HvRegisterValue::from(t).0, expect);
    assert_eq!(TableRegister::from(HvRegisterValue(expect)), t);
}

#[test]
fn fp_register_mantissa_exponent_sign() {
    let v = FpRegister::new()
        .with_mantissa(0x8000_0000_0000_0001)
        .with_biased_exponent(0x7FFF)
        .with_sign(true);
    let raw = at(0, 0x8000_0000_0000_0001) | at(64, 0x7FFF) | at(79, 1);
    assert_eq!(HvRegisterValue::from(v).as_u128(), raw);
    assert_eq!(
        FpRegister::from(HvRegisterValue::from(at(80, 0xFFFF_FFFF_FFFF))).reserved(),
        0xFFFF_FFFF_FFFF
    );
}

#[test]
fn fp_control_status_fields() {
    let f = FpControlStatus {
        fp_control: 0x037F,
        fp_status: 0x1234,
        fp_tag: 0xA5,
        reserved: 0x01,
        last_fp_op: 0x07FF,
        last_fp_rip: 0x0000_0033_DEAD_BEEF,
    };
    let expect = bytes(&[
        (0, &0x037Fu16.to_le_bytes()),
        (2, &0x1234u16.to_le_bytes()),
        (4, &[0xA5, 0x01]),
        (6, &0x07FFu16.to_le_bytes()),
        (8, &0xDEAD_BEEFu32.to_le_bytes()),
        (12, &0x0033u16.to_le_bytes()),
    ]);
    assert_eq!(HvRegisterValue::from(f).0, expect);
    let back = FpControlStatus::from(HvRegisterValue(expect));
    assert_eq!(back, f);
    assert_eq!((back.last_fp_eip(), back.last_fp_cs()), (0xDEAD_BEEF, 0x33));
}

#[test]
fn xmm_control_status_fields() {
    let x = XmmControlStatus {
        last_fp_rdp: 0x0000_002B_1234_5678,
        xmm_status_control: 0x1F80,
        xmm_status_control_mask: 0xFFFF,
    };
    let expect = bytes(&[
        (0, &0x1234_5678u32.to_le_bytes()),
        (4, &0x002Bu16.to_le_bytes()),
        (8, &0x1F80u32.to_le_bytes()),
        (12, &0xFFFFu32.to_le_bytes()),
    ]);
    assert_eq!(HvRegisterValue::from(x).0, expect);
    let back = XmmControlStatus::from(HvRegisterValue(expect));
    assert_eq!((back.last_fp_dp(), back.last_fp_ds()), (0x1234_5678, 0x2B));
}

#[test]
fn pending_interruption_bits() {
    let p = PendingInterruption::new()
        .with_interruption_pending(true)
        .with_interruption_type(interruption_type::HARDWARE_EXCEPTION)
        .with_deliver_error_code(true)
        .with_instruction_length(0xF)
        .with_nested_event(true)
        .with_interruption_vector(0x0E)
        .with_error_code(0xDEAD_BEEF);
    let raw =
        1 | (3 << 1) | (1 << 4) | (0xF << 5) | (1 << 9) | (0x0E << 16) | (0xDEAD_BEEFu64 << 32);
    let v = HvRegisterValue::from(p);
    assert_eq!(v.as_u128(), u128::from(raw), "zero-extended to 128 bits");
    assert_eq!(PendingInterruption::from(v), p);
    assert_eq!(PendingInterruption::from_bits(0x3F << 10).reserved(), 0x3F);
    // A 64-bit view ignores the high qword of the value.
    assert_eq!(
        PendingInterruption::from(HvRegisterValue::from_parts(raw, u64::MAX)),
        p
    );
}

#[test]
fn interrupt_state_bits() {
    let s = InterruptState::new()
        .with_interrupt_shadow(true)
        .with_nmi_masked(true);
    assert_eq!(HvRegisterValue::from(s).as_u128(), 0b11);
    assert_eq!(
        InterruptState::from_bits(u64::MAX).reserved(),
        u64::MAX >> 2
    );
}

#[test]
fn pending_exception_event_bits() {
    let e = PendingExceptionEvent::new()
        .with_event_pending(true)
        .with_event_type(event_type::EXCEPTION)
        .with_deliver_error_code(true)
        .with_vector(14)
        .with_error_code(0x2)
        .with_exception_parameter(0xFFFF_8000_DEAD_0000);
    let raw = at(0, 1) | at(8, 1) | at(16, 14) | at(32, 2) | at(64, 0xFFFF_8000_DEAD_0000);
    assert_eq!(HvRegisterValue::from(e).as_u128(), raw);
    assert_eq!(PendingExceptionEvent::from(HvRegisterValue::from(raw)), e);
    let r = PendingExceptionEvent::from_bits(at(4, 0xF) | at(9, 0x7F) | at(1, 7));
    assert_eq!(
        (r.reserved_4_7(), r.reserved_9_15(), r.event_type()),
        (0xF, 0x7F, 7)
    );
}

#[test]
fn hypercall_msr_bits() {
    let m = HypercallMsr::new()
        .with_enable(true)
        .with_locked(true)
        .with_gpfn(0xF_FFFF_FFFF_FFFF);
    assert_eq!(m.into_bits(), 0b11 | (0xF_FFFF_FFFF_FFFF << 12));
    let rsvd = HypercallMsr::from_bits(0x3FF << 2);
    assert_eq!(
        (rsvd.reserved_p(), rsvd.enable(), rsvd.gpfn()),
        (0x3FF, false, 0)
    );
    assert_eq!(
        HvRegisterValue::from(HypercallMsr::from_bits(0x0123_5001)).as_u64(),
        0x0123_5001
    );
}

#[test]
fn sint_bits() {
    let s = Sint::new()
        .with_vector(0xEF)
        .with_masked(true)
        .with_auto_eoi(true)
        .with_polling(true)
        .with_as_intercept(true)
        .with_proxy(true);
    assert_eq!(s.into_bits(), 0xEF | (0x1F << 16));
    assert_eq!(Sint::from_bits(0xFF00).reserved_p_8_15(), 0xFF);
    assert_eq!(Sint::from_bits(u64::MAX).reserved_p_21_63(), u64::MAX >> 21);
}

#[test]
fn vsm_vp_status_bits() {
    let s = VsmVpStatus::new()
        .with_active_vtl(1)
        .with_active_mbec_enabled(true)
        .with_enabled_vtl_set(0b11);
    assert_eq!(s.into_bits(), 1 | (1 << 4) | (0b11 << 16));
    let r = VsmVpStatus::from_bits(u64::MAX);
    assert_eq!((r.reserved_5_15(), r.reserved_32_63()), (0x7FF, u32::MAX));
    assert_eq!(VsmVpStatus::from(HvRegisterValue::from(s.into_bits())), s);
}

#[test]
fn vsm_partition_status_bits() {
    let s = VsmPartitionStatus::new()
        .with_enabled_vtl_set(0b101)
        .with_maximum_vtl(2)
        .with_mbec_enabled_vtl_set(0xFFFF)
        .with_supervisor_shadow_stack_enabled_vtl_set(0xF);
    assert_eq!(
        s.into_bits(),
        0b101 | (2 << 16) | (0xFFFF << 20) | (0xF << 36)
    );
    assert_eq!(
        VsmPartitionStatus::from_bits(u64::MAX).reserved(),
        0xFF_FFFF
    );
}

#[test]
fn get_vp_registers_header_and_input_vtl() {
    let h = GetVpRegistersHeader::new(
        0x1122_3344_5566_7788,
        0xAABB_CCDD,
        HvInputVtl::new()
            .with_target_vtl(2)
            .with_use_target_vtl(true),
    );
    let expect = bytes(&[
        (0, &0x1122_3344_5566_7788u64.to_le_bytes()),
        (8, &0xAABB_CCDDu32.to_le_bytes()),
        (12, &[0x12]),
    ]);
    assert_eq!(h.as_bytes(), &expect);
    assert_eq!(HvInputVtl::from_bits(0xE0).reserved(), 0b111);
}

mod round_trips {
    use super::*;
    use proptest::prelude::*;

    fn full<T: From<HvRegisterValue> + Into<HvRegisterValue>>(
        v: HvRegisterValue,
    ) -> HvRegisterValue {
        T::from(v).into()
    }

    proptest! {
        /// 128-bit views keep every byte; 64-bit views keep the low qword and
        /// zero-extend (docs/contract.md §5).
        #[test]
        fn views_preserve_their_bits(raw in any::<[u8; 16]>()) {
            let v = HvRegisterValue(raw);
            let low_only = HvRegisterValue::from(v.as_u64());
            prop_assert_eq!(full::<SegmentRegister>(v), v);
            prop_assert_eq!(full::<TableRegister>(v), v);
            prop_assert_eq!(full::<FpRegister>(v), v);
            prop_assert_eq!(full::<FpControlStatus>(v), v);
            prop_assert_eq!(full::<XmmControlStatus>(v), v);
            prop_assert_eq!(full::<PendingExceptionEvent>(v), v);
            prop_assert_eq!(full::<PendingInterruption>(v), low_only);
            prop_assert_eq!(full::<InterruptState>(v), low_only);
            prop_assert_eq!(full::<HypercallMsr>(v), low_only);
            prop_assert_eq!(full::<Sint>(v), low_only);
            prop_assert_eq!(full::<VsmVpStatus>(v), low_only);
            prop_assert_eq!(full::<VsmPartitionStatus>(v), low_only);
            prop_assert_eq!(HvRegisterValue::from_cpuid(v.cpuid_words()), v);
        }
    }
}
