//! Hand-annotated CONNECT packets for the rules that differ between MQTT
//! 3.1, 3.1.1 and 5.0: each rule is applied to the versions whose
//! specification states it, and the same shape is shown under the others
//! (the rule → version table is in docs/PARSER.md).

use super::{assert_prefix_consistent, connect_of};
use crate::packet::encode::{ConnectBuilder, Will};
use crate::packet::{parse_connect, InvalidReason, Parsed, ProtocolLevel};

const LIMIT: usize = 4096;

/// What a vector must parse as.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// A valid CONNECT.
    Accepted,
    /// Refused for this rule, with this level known.
    Refused(InvalidReason, Option<ProtocolLevel>),
}
use Expect::{Accepted, Refused};

const V31: Option<ProtocolLevel> = Some(ProtocolLevel::V31);
const V311: Option<ProtocolLevel> = Some(ProtocolLevel::V311);
const V5: Option<ProtocolLevel> = Some(ProtocolLevel::V5);

/// (description, bytes, outcome)
#[rustfmt::skip]
const VECTORS: &[(&str, &[u8], Expect)] = &[
    // Connect Flags bit 0: unused in 3.1, must be 0 in 3.1.1 and 5.0
    // [MQTT-3.1.2-3]. (3.1.1 is in vectors.rs.)
    ("v3.1 reserved connect flag", &[
        0x10, 0x11, // CONNECT, remaining length 17
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, // "MQIsdp", level 3
        0x03, // flags: clean session + bit 0
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c', // keep alive 60; ClientId "abc"
    ], Accepted),
    ("v5 reserved connect flag", &[
        0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, // "MQTT", level 5
        0x03, // flags: clean start + bit 0
        0x00, 0x3C, 0x00, 0x00, 0x03, b'a', b'b', b'c', // keep alive; no properties; "abc"
    ], Refused(InvalidReason::ReservedFlag, V5)),

    // Fixed header flags: DUP/QoS/RETAIN, unused by a 3.1 CONNECT;
    // reserved, 0, in 3.1.1 [MQTT-2.2.2-1] and 5.0 [MQTT-2.1.3-1].
    ("v3.1 fixed header flags 1111", &[
        0x1F, 0x11, // CONNECT with DUP, QoS 3, RETAIN; remaining length 17
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x02, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], Accepted),
    ("v3.1 fixed header DUP flag", &[
        0x18, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x02, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], Accepted),
    ("v3.1.1 fixed header QoS 1", &[
        0x12, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, // level 4
        0x02, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], Refused(InvalidReason::FixedHeaderFlags, V311)),
    ("v5 fixed header RETAIN", &[
        0x11, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, // level 5
        0x02, 0x00, 0x3C, 0x00, 0x00, 0x03, b'a', b'b', b'c',
    ], Refused(InvalidReason::FixedHeaderFlags, V5)),
    ("v5 fixed header flags before a bad connect flag", &[
        0x18, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
        0x03, // reserved connect flag too: the fixed header comes first
        0x00, 0x3C, 0x00, 0x00, 0x03, b'a', b'b', b'c',
    ], Refused(InvalidReason::FixedHeaderFlags, V5)),

    // Will QoS and Will Retain without the Will Flag: "disregarded" in
    // 3.1, must be 0 in 3.1.1 [MQTT-3.1.2-13/15] and 5.0 [MQTT-3.1.2-11/13].
    ("v3.1 will QoS 1 without will", &[
        0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x0A, // flags: will QoS 1, clean session; no will
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], Accepted),
    ("v3.1 will retain without will", &[
        0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x22, // flags: will retain, clean session; no will
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], Accepted),
    ("v3.1 will QoS 3 without will", &[
        0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x1A, // flags: will QoS 3, clean session; no will
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], Accepted),
    ("v3.1 will QoS 3 with will", &[
        0x10, 0x16, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x1E, // flags: will QoS 3, will, clean session
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
        0x00, 0x01, b't', 0x00, 0x00, // will topic "t"; will message ""
    ], Refused(InvalidReason::WillQos, V31)),
    ("v3.1.1 will QoS 3 without will", &[
        0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,
        0x1A, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], Refused(InvalidReason::WillQos, V311)),
    ("v5 will retain without will", &[
        0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
        0x22, 0x00, 0x3C, 0x00, 0x00, 0x03, b'a', b'b', b'c',
    ], Refused(InvalidReason::WillFlagsWithoutWill, V5)),

    // 3.1: "the Remaining Length field takes precedence over the User Name
    // flag" (and the Password flag); 3.1.1 [MQTT-3.1.2-19], 5.0
    // [MQTT-3.1.2-17]: the field must be present.
    ("v3.1 user name flag, packet ends after the ClientId", &[
        0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x82, // flags: user name, clean session
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c', // ends here
    ], Accepted),
    ("v3.1 password flag, packet ends after the user name", &[
        0x10, 0x14, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0xC2, // flags: user name, password, clean session
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c', 0x00, 0x01, b'u', // "abc"; user "u"
    ], Accepted),
    ("v3.1 user name half there", &[
        0x10, 0x12, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x82, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
        0x00, // one byte of a length prefix
    ], Refused(InvalidReason::Truncated, V31)),
    ("v5 user name flag, packet ends after the ClientId", &[
        0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
        0x82, 0x00, 0x3C, 0x00, 0x00, 0x03, b'a', b'b', b'c',
    ], Refused(InvalidReason::Truncated, V5)),

    // U+0000: excluded from every string in 3.1.1 [MQTT-1.5.3-2] and 5.0
    // [MQTT-1.5.4-2], from topics only in 3.1 (appendix A).
    ("v3.1 ClientId with U+0000", &[
        0x10, 0x11, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x02, 0x00, 0x3C, 0x00, 0x03, b'a', 0x00, b'b', // "a\0b"
    ], Accepted),
    ("v3.1 user name with U+0000", &[
        0x10, 0x15, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x82, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
        0x00, 0x02, b'u', 0x00, // user name "u\0"
    ], Accepted),
    ("v3.1 will topic with U+0000", &[
        0x10, 0x17, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x06, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c', // flags: will, clean session
        0x00, 0x02, b'a', 0x00, 0x00, 0x00, // will topic "a\0"; will message ""
    ], Refused(InvalidReason::NullCharacter, V31)),
    ("v5 ClientId with U+0000", &[
        0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
        0x02, 0x00, 0x3C, 0x00, 0x00, 0x03, b'a', 0x00, b'b',
    ], Refused(InvalidReason::NullCharacter, V5)),

    // Well-formed UTF-8: every version calls these fields UTF-8 strings.
    ("v3.1 ClientId with invalid UTF-8", &[
        0x10, 0x10, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x02, 0x00, 0x3C, 0x00, 0x02, 0xC3, 0x28, // 0xC3 without continuation
    ], Refused(InvalidReason::InvalidUtf8, V31)),
    // 3.1 calls the Will Message and the Password UTF-8 strings too; they are
    // read as the binary data 3.1.1 made them (brokers do the same).
    ("v3.1 will message not UTF-8", &[
        0x10, 0x17, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x06, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
        0x00, 0x01, b't', 0x00, 0x01, 0xFF, // will topic "t"; will message 0xFF
    ], Accepted),
    ("v3.1 password not UTF-8", &[
        0x10, 0x17, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0xC2, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
        0x00, 0x01, b'u', 0x00, 0x01, 0xFF, // user "u"; password 0xFF
    ], Accepted),

    // The Will Topic is a Topic Name in every version.
    ("v3.1 empty will topic", &[
        0x10, 0x15, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x06, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
        0x00, 0x00, 0x00, 0x00, // will topic ""; will message ""
    ], Refused(InvalidReason::InvalidWillTopic, V31)),
    ("v3.1 will topic with a wildcard", &[
        0x10, 0x18, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x06, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
        0x00, 0x03, b'a', b'/', b'+', 0x00, 0x00, // will topic "a/+"
    ], Refused(InvalidReason::InvalidWillTopic, V31)),
    ("v5 will topic #", &[
        0x10, 0x16, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
        0x06, 0x00, 0x3C, 0x00, 0x00, 0x03, b'a', b'b', b'c',
        0x00, // will property length 0
        0x00, 0x01, b'#', 0x00, 0x00, // will topic "#"; will payload ""
    ], Refused(InvalidReason::InvalidWillTopic, V5)),

    // Every version: nothing after the last field, lengths minimal.
    ("v3.1 byte after the ClientId", &[
        0x10, 0x12, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x02, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c', 0x00,
    ], Refused(InvalidReason::TrailingBytes, V31)),
    ("v3.1 remaining length 17 in two bytes", &[
        0x10, 0x91, 0x00, // 17 with a zero continuation byte
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x02, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], Refused(InvalidReason::NonMinimalVarInt, None)),

    // MQTT 5 Will Response Topic: the Topic Name of the response
    // ([MQTT-3.3.2-14], [MQTT-4.7.3-1]).
    ("v5 will response topic \"reply/to\"", &[
        0x10, 0x21, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
        0x06, 0x00, 0x3C, 0x00, 0x00, 0x03, b'a', b'b', b'c',
        0x0B, // will property length 11
        0x08, 0x00, 0x08, b'r', b'e', b'p', b'l', b'y', b'/', b't', b'o',
        0x00, 0x01, b't', 0x00, 0x00, // will topic "t"; will payload ""
    ], Accepted),
    ("v5 empty will response topic", &[
        0x10, 0x19, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
        0x06, 0x00, 0x3C, 0x00, 0x00, 0x03, b'a', b'b', b'c',
        0x03, 0x08, 0x00, 0x00, // will property length 3: response topic ""
        0x00, 0x01, b't', 0x00, 0x00,
    ], Refused(InvalidReason::InvalidResponseTopic, V5)),
    ("v5 will response topic +", &[
        0x10, 0x1A, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
        0x06, 0x00, 0x3C, 0x00, 0x00, 0x03, b'a', b'b', b'c',
        0x04, 0x08, 0x00, 0x01, b'+', // will property length 4: response topic "+"
        0x00, 0x01, b't', 0x00, 0x00,
    ], Refused(InvalidReason::InvalidResponseTopic, V5)),
];

/// The bytes of the vector described as `what`.
fn vector(what: &str) -> &'static [u8] {
    VECTORS.iter().find(|v| v.0 == what).expect("vector").1
}

#[test]
fn rules_by_version() {
    for &(what, bytes, expect) in VECTORS {
        let parsed = parse_connect(bytes, LIMIT);
        match expect {
            Accepted => assert!(
                matches!(parsed, Parsed::Connect(c) if c.packet_len == bytes.len()),
                "{what}: {parsed:?}"
            ),
            Refused(reason, level) => {
                assert_eq!(parsed, Parsed::Invalid { reason, level }, "{what}");
            }
        }
        assert_prefix_consistent(bytes, LIMIT);
    }
}

/// Fields 3.1 lets a packet leave out are reported as absent.
#[test]
fn v31_absent_user_name_and_password() {
    let c = connect_of(vector(
        "v3.1 user name flag, packet ends after the ClientId",
    ));
    assert_eq!((c.username, c.password_present), (None, false));
    assert!(c.flags.username());
    let c = connect_of(vector(
        "v3.1 password flag, packet ends after the user name",
    ));
    assert_eq!((c.username, c.password_present), (Some("u"), false));
    assert!(c.flags.password());
    // The Password flag with neither field: still no password.
    let bytes = ConnectBuilder {
        flags_override: Some(0xC2),
        ..ConnectBuilder::new(ProtocolLevel::V31, b"abc")
    }
    .encode();
    let c = connect_of(&bytes);
    assert_eq!((c.username, c.password_present), (None, false));
}

/// The 3.1 string that may hold U+0000 comes back whole.
#[test]
fn v31_client_id_keeps_its_nul() {
    assert_eq!(
        connect_of(vector("v3.1 ClientId with U+0000")).client_id,
        "a\0b"
    );
    assert_eq!(
        connect_of(vector("v3.1 user name with U+0000")).username,
        Some("u\0")
    );
}

/// Every first byte of packet type 1: accepted at level 3, refused at 4 and
/// 5 once the level is read, and not before.
#[test]
fn fixed_header_flags_by_version() {
    for flags in 0..16u8 {
        for level in ProtocolLevel::ALL {
            let bytes = ConnectBuilder {
                first_byte: 0x10 | flags,
                ..ConnectBuilder::new(level, b"device")
            }
            .encode();
            let parsed = parse_connect(&bytes, LIMIT);
            if flags == 0 || level == ProtocolLevel::V31 {
                assert!(matches!(parsed, Parsed::Connect(_)), "{flags:#x} {level:?}");
            } else {
                assert_eq!(
                    parsed,
                    Parsed::Invalid {
                        reason: InvalidReason::FixedHeaderFlags,
                        level: Some(level)
                    },
                    "{flags:#x} {level:?}"
                );
                // The level byte is the one that decides.
                let level_at = 2 + 2 + level.protocol_name().len();
                assert!(matches!(
                    parse_connect(&bytes[..level_at], LIMIT),
                    Parsed::Incomplete { .. }
                ));
                assert_eq!(parse_connect(&bytes[..=level_at], LIMIT), parsed);
            }
            assert_prefix_consistent(&bytes, LIMIT);
        }
    }
}

/// A first byte of any other packet type is refused on its own.
#[test]
fn other_packet_types_refused_on_first_byte() {
    for first in (0..=255u8).filter(|b| b >> 4 != 1) {
        assert_eq!(
            parse_connect(&[first], LIMIT),
            Parsed::Invalid {
                reason: InvalidReason::NotConnect,
                level: None
            },
            "{first:#04x}"
        );
    }
    for first in 0x10..=0x1Fu8 {
        assert_eq!(
            parse_connect(&[first], LIMIT),
            Parsed::Incomplete { needed: None }
        );
    }
}

/// MQTT 3.1's 1-23 character ClientId: only the lower bound is enforced.
#[test]
fn v31_client_id_longer_than_23() {
    for len in [23usize, 24, 64, 200] {
        let id = vec![b'x'; len];
        let bytes = ConnectBuilder::new(ProtocolLevel::V31, &id).encode();
        assert_eq!(connect_of(&bytes).client_id.len(), len);
    }
}

/// The Will flags without a Will under every version, and a real Will with
/// each QoS.
#[test]
fn will_flags_by_version() {
    for level in ProtocolLevel::ALL {
        for bits in [0x08u8, 0x10, 0x18, 0x20, 0x38] {
            let bytes = ConnectBuilder {
                flags_override: Some(0x02 | bits),
                ..ConnectBuilder::new(level, b"device")
            }
            .encode();
            let parsed = parse_connect(&bytes, LIMIT);
            let expected = match (level, bits & 0x18 == 0x18) {
                (ProtocolLevel::V31, _) => None,
                (_, true) => Some(InvalidReason::WillQos),
                (_, false) => Some(InvalidReason::WillFlagsWithoutWill),
            };
            match expected {
                None => assert!(matches!(parsed, Parsed::Connect(_)), "{bits:#x} {level:?}"),
                Some(reason) => assert_eq!(
                    parsed,
                    Parsed::Invalid {
                        reason,
                        level: Some(level)
                    },
                    "{bits:#x} {level:?}"
                ),
            }
        }
        for qos in 0..=3u8 {
            let mut will = Will::new(b"w/t", b"p");
            will.qos = qos;
            let bytes = ConnectBuilder::new(level, b"device").will(will).encode();
            let parsed = parse_connect(&bytes, LIMIT);
            if qos == 3 {
                assert!(matches!(
                    parsed,
                    Parsed::Invalid {
                        reason: InvalidReason::WillQos,
                        ..
                    }
                ));
            } else {
                assert!(matches!(parsed, Parsed::Connect(_)), "{qos} {level:?}");
            }
        }
    }
}
