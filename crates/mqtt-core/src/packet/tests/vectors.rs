//! Hand-annotated CONNECT packets: every valid shape, and at least one
//! packet per [`InvalidReason`].

use super::{assert_prefix_consistent, connect_of};
use crate::packet::encode::{ConnectBuilder, PropValue, Will};
use crate::packet::Property;
use crate::packet::{
    parse_connect, ConnectFlags, ConnectFramer, InvalidReason, Parsed, ProtocolLevel,
};

const LIMIT: usize = 4096;

fn parse(bytes: &[u8]) -> Parsed<'_> {
    parse_connect(bytes, LIMIT)
}

// ---------------------------------------------------------------------------
// Valid packets
// ---------------------------------------------------------------------------

/// MQTT 3.1.1, ClientId "abc", clean session, keep alive 60.
const V311_MINIMAL: &[u8] = &[
    0x10, 0x0F, // CONNECT, remaining length 15
    0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
    0x04, // protocol level 4 (3.1.1)
    0x02, // flags: clean session
    0x00, 0x3C, // keep alive 60
    0x00, 0x03, b'a', b'b', b'c', // ClientId "abc"
];

/// MQTT 3.1, ClientId "abc", clean session, keep alive 60.
const V31_MINIMAL: &[u8] = &[
    0x10, 0x11, // CONNECT, remaining length 17
    0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name "MQIsdp"
    0x03, // protocol level 3 (3.1)
    0x02, // flags: clean session
    0x00, 0x3C, // keep alive 60
    0x00, 0x03, b'a', b'b', b'c', // ClientId "abc"
];

/// MQTT 3.1 with a user name and no password, keep alive 0.
const V31_USERNAME: &[u8] = &[
    0x10, 0x18, // CONNECT, remaining length 24
    0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // "MQIsdp"
    0x03, // level 3
    0x82, // flags: username, clean session
    0x00, 0x00, // keep alive 0
    0x00, 0x03, b'a', b'b', b'c', // ClientId "abc"
    0x00, 0x05, b'a', b'l', b'i', b'c', b'e', // user name "alice"
];

/// MQTT 3.1.1 with a QoS 2 Will (empty payload), user name and empty
/// password.
const V311_FULL: &[u8] = &[
    0x10, 0x1B, // CONNECT, remaining length 27
    0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, // "MQTT", level 4
    0xD6, // flags: username, password, will QoS 2, will, clean session
    0x00, 0x0A, // keep alive 10
    0x00, 0x03, b'c', b'i', b'd', // ClientId "cid"
    0x00, 0x03, b't', b'/', b'x', // will topic "t/x"
    0x00, 0x00, // will payload: empty
    0x00, 0x01, b'u', // user name "u"
    0x00, 0x00, // password: empty
];

/// MQTT 5 with CONNECT properties.
const V5_PROPS: &[u8] = &[
    0x10, 0x24, // CONNECT, remaining length 36
    0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, // "MQTT", level 5
    0x02, // flags: clean start
    0x00, 0x3C, // keep alive 60
    0x14, // property length 20
    0x11, 0x00, 0x00, 0x0E, 0x10, //   session expiry interval 3600
    0x21, 0x00, 0x0A, //   receive maximum 10
    0x27, 0x00, 0x00, 0x10, 0x00, //   maximum packet size 4096
    0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', //   user property k=v
    0x00, 0x03, b'a', b'b', b'c', // ClientId "abc"
];

/// MQTT 5 with a Will carrying properties, user name and password.
const V5_FULL: &[u8] = &[
    0x10, 0x40, // CONNECT, remaining length 64
    0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, // "MQTT", level 5
    0xEE, // flags: username, password, will retain, will QoS 1, will, clean start
    0x00, 0x1E, // keep alive 30
    0x00, // property length 0
    0x00, 0x02, b'c', b'1', // ClientId "c1"
    0x1B, // will property length 27
    0x18, 0x00, 0x00, 0x00, 0x05, //   will delay interval 5
    0x01, 0x01, //   payload format indicator 1 (UTF-8)
    0x03, 0x00, 0x0A, b't', b'e', b'x', b't', b'/', b'p', b'l', b'a', b'i',
    b'n', //   content type
    0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b', //   user property a=b
    0x00, 0x03, b't', b'/', b'w', // will topic "t/w"
    0x00, 0x02, b'h', b'i', // will payload "hi"
    0x00, 0x04, b'u', b's', b'e', b'r', // user name "user"
    0x00, 0x04, b'p', b'a', b's', b's', // password "pass"
];

/// MQTT 3.1.1 with an empty ClientId and clean session.
const V311_EMPTY_ID: &[u8] = &[
    0x10, 0x0C, // CONNECT, remaining length 12
    0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, // "MQTT", level 4
    0x02, // flags: clean session
    0x00, 0x3C, // keep alive 60
    0x00, 0x00, // ClientId ""
];

/// MQTT 5 with an empty ClientId and Clean Start 0 (allowed in 5.0).
const V5_EMPTY_ID: &[u8] = &[
    0x10, 0x0D, // CONNECT, remaining length 13
    0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, // "MQTT", level 5
    0x00, // flags: none
    0x00, 0x3C, // keep alive 60
    0x00, // property length 0
    0x00, 0x00, // ClientId ""
];

/// MQTT 5 with a password but no user name (allowed in 5.0).
const V5_PASSWORD_ONLY: &[u8] = &[
    0x10, 0x12, // CONNECT, remaining length 18
    0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, // "MQTT", level 5
    0x42, // flags: password, clean start
    0x00, 0x3C, // keep alive 60
    0x00, // property length 0
    0x00, 0x01, b'a', // ClientId "a"
    0x00, 0x02, 0xFF, 0x00, // password: binary, need not be UTF-8
];

#[test]
fn v311_minimal() {
    let c = connect_of(V311_MINIMAL);
    assert_eq!(c.level, ProtocolLevel::V311);
    assert_eq!(c.flags.bits(), 0x02);
    assert!(c.flags.clean_session());
    assert_eq!(c.keep_alive, 60);
    assert_eq!(c.client_id, "abc");
    assert_eq!(c.username, None);
    assert!(!c.password_present);
    assert_eq!(c.will_topic, None);
    assert!(c.properties.is_empty());
    assert!(c.will_properties.is_empty());
    assert_eq!(c.packet_len, 17);
}

#[test]
fn v31_minimal() {
    let c = connect_of(V31_MINIMAL);
    assert_eq!(c.level, ProtocolLevel::V31);
    assert_eq!(c.level.name(), "3.1");
    assert_eq!(c.client_id, "abc");
    assert_eq!(c.keep_alive, 60);
    assert_eq!(c.packet_len, 19);
}

#[test]
fn v31_username() {
    let c = connect_of(V31_USERNAME);
    assert_eq!(c.level, ProtocolLevel::V31);
    assert_eq!(c.keep_alive, 0);
    assert_eq!(c.username, Some("alice"));
    assert!(!c.password_present);
    assert_eq!(c.packet_len, 26);
}

#[test]
fn v311_full() {
    let c = connect_of(V311_FULL);
    assert_eq!(c.level, ProtocolLevel::V311);
    assert_eq!(c.keep_alive, 10);
    assert_eq!(c.client_id, "cid");
    assert_eq!(c.will_topic, Some("t/x"));
    assert_eq!(c.flags.will_qos(), 2);
    assert!(c.flags.will() && !c.flags.will_retain());
    assert_eq!(c.username, Some("u"));
    assert!(c.password_present);
    assert_eq!(c.packet_len, 29);
}

#[test]
fn v5_properties() {
    let c = connect_of(V5_PROPS);
    assert_eq!(c.level, ProtocolLevel::V5);
    assert_eq!(c.level.name(), "5.0");
    assert_eq!(c.client_id, "abc");
    assert_eq!(c.properties.len(), 20);
    assert_eq!(property!(c.properties, SessionExpiryInterval), Some(3600));
    assert_eq!(property!(c.properties, ReceiveMaximum), Some(10));
    assert_eq!(c.properties.maximum_packet_size(), Some(4096));
    assert_eq!(property!(c.properties, TopicAliasMaximum), None);
    assert_eq!(property!(c.properties, AuthenticationMethod), None);
    assert_eq!(
        c.properties.user_properties().collect::<Vec<_>>(),
        [("k", "v")]
    );
    assert_eq!(
        c.properties.iter().collect::<Vec<_>>(),
        [
            Property::SessionExpiryInterval(3600),
            Property::ReceiveMaximum(10),
            Property::MaximumPacketSize(4096),
            Property::UserProperty("k", "v"),
        ]
    );
    assert_eq!(c.packet_len, 38);
}

#[test]
fn v5_full() {
    let c = connect_of(V5_FULL);
    assert_eq!(c.level, ProtocolLevel::V5);
    assert_eq!(c.flags.bits(), 0xEE);
    assert_eq!(c.flags.will_qos(), 1);
    assert!(c.flags.will_retain());
    assert_eq!(c.keep_alive, 30);
    assert_eq!(c.client_id, "c1");
    assert!(c.properties.is_empty());
    assert_eq!(c.will_topic, Some("t/w"));
    assert_eq!(property!(c.will_properties, WillDelayInterval), Some(5));
    assert_eq!(
        property!(c.will_properties, PayloadFormatIndicator),
        Some(1)
    );
    assert_eq!(
        property!(c.will_properties, ContentType),
        Some("text/plain")
    );
    assert_eq!(
        c.will_properties.user_properties().collect::<Vec<_>>(),
        [("a", "b")]
    );
    assert_eq!(c.username, Some("user"));
    assert!(c.password_present);
    assert_eq!(c.packet_len, 66);
}

#[test]
fn empty_client_ids() {
    let c = connect_of(V311_EMPTY_ID);
    assert_eq!((c.level, c.client_id), (ProtocolLevel::V311, ""));
    let c = connect_of(V5_EMPTY_ID);
    assert_eq!((c.level, c.client_id), (ProtocolLevel::V5, ""));
    assert!(!c.flags.clean_session());
}

#[test]
fn v5_password_without_username() {
    let c = connect_of(V5_PASSWORD_ONLY);
    assert_eq!(c.username, None);
    assert!(c.password_present);
}

/// A 200-byte ClientId needs a two-byte Remaining Length, on every version.
#[test]
fn long_client_id_every_version() {
    let id = [b'x'; 200];
    for level in ProtocolLevel::ALL {
        // Fixed header: 0x10, then the remaining length as two bytes.
        let name_len = level.protocol_name().len();
        let v5_props = usize::from(level == ProtocolLevel::V5);
        let remaining = 2 + name_len + 1 + 1 + 2 + v5_props + 2 + 200;
        let mut bytes = vec![
            0x10,
            0x80 | (remaining & 0x7f) as u8, // low seven bits, continuation
            (remaining >> 7) as u8,          // high bits
        ];
        bytes.extend_from_slice(&[0x00, name_len as u8]);
        bytes.extend_from_slice(level.protocol_name().as_bytes());
        bytes.push(level.as_u8());
        bytes.push(0x02); // clean session
        bytes.extend_from_slice(&[0x00, 0x3C]); // keep alive 60
        if level == ProtocolLevel::V5 {
            bytes.push(0x00); // property length 0
        }
        bytes.extend_from_slice(&[0x00, 200]); // ClientId length
        bytes.extend_from_slice(&id);
        assert_eq!(bytes.len(), 3 + remaining);
        assert_eq!(bytes, ConnectBuilder::new(level, &id).encode());

        let c = connect_of(&bytes);
        assert_eq!(c.level, level);
        assert_eq!(c.client_id.len(), 200);
        assert_eq!(c.packet_len, bytes.len());
        assert_prefix_consistent(&bytes, LIMIT);
    }
}

/// The encoder reproduces the hand-written vectors byte for byte.
#[test]
fn encoder_matches_hand_vectors() {
    assert_eq!(
        ConnectBuilder::new(ProtocolLevel::V311, b"abc").encode(),
        V311_MINIMAL
    );
    assert_eq!(
        ConnectBuilder::new(ProtocolLevel::V31, b"abc").encode(),
        V31_MINIMAL
    );
    assert_eq!(
        ConnectBuilder::new(ProtocolLevel::V31, b"abc")
            .keep_alive(0)
            .username(b"alice")
            .encode(),
        V31_USERNAME
    );
    let mut will = Will::new(b"t/x", b"");
    will.qos = 2;
    assert_eq!(
        ConnectBuilder::new(ProtocolLevel::V311, b"cid")
            .keep_alive(10)
            .will(will)
            .username(b"u")
            .password(b"")
            .encode(),
        V311_FULL
    );
    assert_eq!(
        ConnectBuilder::new(ProtocolLevel::V5, b"abc")
            .property(0x11, PropValue::U32(3600))
            .property(0x21, PropValue::U16(10))
            .property(0x27, PropValue::U32(4096))
            .property(0x26, PropValue::Pair(b"k", b"v"))
            .encode(),
        V5_PROPS
    );
    let mut will = Will::new(b"t/w", b"hi");
    will.qos = 1;
    will.retain = true;
    will.properties = vec![
        (0x18, PropValue::U32(5)),
        (0x01, PropValue::Byte(1)),
        (0x03, PropValue::Str(b"text/plain")),
        (0x26, PropValue::Pair(b"a", b"b")),
    ];
    assert_eq!(
        ConnectBuilder::new(ProtocolLevel::V5, b"c1")
            .keep_alive(30)
            .will(will)
            .username(b"user")
            .password(b"pass")
            .encode(),
        V5_FULL
    );
    assert_eq!(
        ConnectBuilder::new(ProtocolLevel::V311, b"").encode(),
        V311_EMPTY_ID
    );
    assert_eq!(
        ConnectBuilder::new(ProtocolLevel::V5, b"")
            .clean_session(false)
            .encode(),
        V5_EMPTY_ID
    );
}

/// Every combination of user name, password and Will on every version.
#[test]
fn every_username_password_will_combination() {
    for level in ProtocolLevel::ALL {
        for bits in 0..8u8 {
            let (user, pass, will) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
            let mut b = ConnectBuilder::new(level, b"client");
            if user {
                b = b.username(b"name");
            }
            if pass {
                b = b.password(b"\x00\xffsecret");
            }
            if will {
                let mut w = Will::new(b"will/topic", b"\x00payload");
                w.qos = 1;
                if level == ProtocolLevel::V5 {
                    w.properties = vec![(0x02, PropValue::U32(60))];
                }
                b = b.will(w);
            }
            let bytes = b.encode();
            let parsed = parse(&bytes);
            if pass && !user && level != ProtocolLevel::V5 {
                assert_eq!(
                    parsed,
                    Parsed::Invalid {
                        reason: InvalidReason::PasswordWithoutUsername,
                        level: Some(level)
                    }
                );
                continue;
            }
            let Parsed::Connect(c) = parsed else {
                panic!("{level:?} user={user} pass={pass} will={will}: {parsed:?}");
            };
            assert_eq!(c.username, user.then_some("name"));
            assert_eq!(c.password_present, pass);
            assert_eq!(c.will_topic, will.then_some("will/topic"));
            assert_eq!(c.flags.will_qos(), if will { 1 } else { 0 });
            let expiry = if will && level == ProtocolLevel::V5 {
                Some(60)
            } else {
                None
            };
            assert_eq!(property!(c.will_properties, MessageExpiryInterval), expiry);
            assert_eq!(c.packet_len, bytes.len());
        }
    }
}

/// Bytes after the CONNECT (a pipelined PUBLISH) are left for the caller.
#[test]
fn pipelined_bytes_after_connect() {
    let mut bytes = V311_MINIMAL.to_vec();
    bytes.extend_from_slice(&[
        0x30, 0x05, // PUBLISH QoS 0, remaining length 5
        0x00, 0x01, b't', b'h', b'i', // topic "t", payload "hi"
    ]);
    let c = connect_of(&bytes);
    assert_eq!(c.packet_len, V311_MINIMAL.len());
    assert_eq!(parse(&bytes), parse(V311_MINIMAL));
}

#[test]
fn incomplete_reports_missing_bytes() {
    assert_eq!(parse(&[]), Parsed::Incomplete { needed: None });
    assert_eq!(parse(&[0x10]), Parsed::Incomplete { needed: None });
    assert_eq!(parse(&[0x10, 0x80]), Parsed::Incomplete { needed: None });
    assert_eq!(
        parse(&V311_MINIMAL[..2]),
        Parsed::Incomplete { needed: Some(15) }
    );
    assert_eq!(
        parse(&V311_MINIMAL[..16]),
        Parsed::Incomplete { needed: Some(1) }
    );
}

#[test]
fn limit_is_inclusive() {
    let len = V311_MINIMAL.len();
    assert!(matches!(
        parse_connect(V311_MINIMAL, len),
        Parsed::Connect(_)
    ));
    assert_eq!(
        parse_connect(V311_MINIMAL, len - 1),
        Parsed::Invalid {
            reason: InvalidReason::TooLarge,
            level: None
        }
    );
    // Rejected from the fixed header alone.
    assert_eq!(
        parse_connect(&V311_MINIMAL[..2], len - 1),
        Parsed::Invalid {
            reason: InvalidReason::TooLarge,
            level: None
        }
    );
}

#[test]
fn user_property_may_repeat() {
    let bytes = ConnectBuilder::new(ProtocolLevel::V5, b"a")
        .property(0x26, PropValue::Pair(b"k", b"1"))
        .property(0x26, PropValue::Pair(b"k", b"2"))
        .property(0x15, PropValue::Str(b"SCRAM-SHA-1"))
        .property(0x16, PropValue::Bin(b"secret-auth-data"))
        .property(0x17, PropValue::Byte(0))
        .property(0x19, PropValue::Byte(1))
        .property(0x22, PropValue::U16(0))
        .encode();
    let c = connect_of(&bytes);
    assert_eq!(
        c.properties.user_properties().collect::<Vec<_>>(),
        [("k", "1"), ("k", "2")]
    );
    assert_eq!(
        property!(c.properties, AuthenticationMethod),
        Some("SCRAM-SHA-1")
    );
    assert!(c
        .properties
        .iter()
        .any(|p| matches!(p, Property::AuthenticationData { .. })));
    assert_eq!(property!(c.properties, RequestProblemInformation), Some(0));
    assert_eq!(property!(c.properties, RequestResponseInformation), Some(1));
    assert_eq!(property!(c.properties, TopicAliasMaximum), Some(0));
    // Debug shows neither the authentication data nor, since it is not
    // stored, the password.
    let debug = format!("{c:?}");
    assert!(debug.contains("SCRAM-SHA-1"), "{debug}");
    assert!(!debug.contains("secret"), "{debug}");
}

#[test]
fn debug_never_shows_the_password() {
    let bytes = ConnectBuilder::new(ProtocolLevel::V311, b"id")
        .username(b"user")
        .password(b"hunter2")
        .encode();
    let debug = format!("{:?}", parse(&bytes));
    assert!(debug.contains("user"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn connect_flags_accessors() {
    let f = ConnectFlags::from_bits(0xF6);
    assert!(f.username() && f.password() && f.will_retain() && f.will() && f.clean_session());
    assert_eq!(f.will_qos(), 2);
    assert_eq!(f.bits(), 0xF6);
    let f = ConnectFlags::from_bits(0x00);
    assert!(!(f.username() || f.password() || f.will_retain() || f.will() || f.clean_session()));
    assert_eq!(f.will_qos(), 0);
    assert_eq!(
        format!("{:?}", ConnectFlags::from_bits(0xC2)),
        "ConnectFlags(0xc2 username password clean_session)"
    );
}

#[test]
fn protocol_level_accessors() {
    assert_eq!(ProtocolLevel::V31.as_u8(), 3);
    assert_eq!(ProtocolLevel::V311.as_u8(), 4);
    assert_eq!(ProtocolLevel::V5.as_u8(), 5);
    assert_eq!(ProtocolLevel::V311.name(), "3.1.1");
}

// ---------------------------------------------------------------------------
// Invalid packets: at least one per rule
// ---------------------------------------------------------------------------

/// (description, bytes, limit, expected reason, expected level)
type InvalidVector = (
    &'static str,
    &'static [u8],
    usize,
    InvalidReason,
    Option<ProtocolLevel>,
);

const V311: Option<ProtocolLevel> = Some(ProtocolLevel::V311);
const V31: Option<ProtocolLevel> = Some(ProtocolLevel::V31);
const V5: Option<ProtocolLevel> = Some(ProtocolLevel::V5);

#[rustfmt::skip]
const INVALID: &[InvalidVector] = &[
    ("PUBLISH instead of CONNECT", &[
        0x30, 0x05, 0x00, 0x01, b't', b'h', b'i', // PUBLISH "t" "hi"
    ], LIMIT, InvalidReason::NotConnect, None),
    ("HTTP request", b"GET / HTTP/1.1\r\n", LIMIT, InvalidReason::NotConnect, None),
    // 0x16 is packet type 1 with flags 0110, which MQTT 3.1 allows: the
    // record is refused on its protocol name, at the fourth byte.
    ("TLS ClientHello", &[
        0x16, 0x03, // TLS record header: handshake; read as remaining length 3
        0x01, 0x00, // TLS 1.0; read as a protocol name of 256 bytes
        0xA5, // record length, low byte
    ], LIMIT, InvalidReason::ProtocolName, None),
    ("v3.1.1 CONNECT with fixed header flags 0001", &[
        0x11, 0x0F, // packet type 1 (CONNECT), flags 0001; remaining length 15
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, // "MQTT", level 4: flags must be 0
        0x02, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::FixedHeaderFlags, V311),
    ("remaining length of five bytes", &[
        0x10, 0xFF, 0xFF, 0xFF, 0xFF, // four continuation bytes
    ], usize::MAX, InvalidReason::RemainingLengthTooLong, None),
    ("remaining length 0 in two bytes", &[
        0x10, 0x80, 0x00, // 0 encoded as two bytes
    ], LIMIT, InvalidReason::NonMinimalVarInt, None),
    ("remaining length 15 in three bytes", &[
        0x10, 0x8F, 0x80, 0x00, // 15 encoded as three bytes
    ], LIMIT, InvalidReason::NonMinimalVarInt, None),
    ("v5 property length 0 in two bytes", &[
        0x10, 0x0F, // CONNECT, remaining length 15
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, // "MQTT", level 5
        0x02, 0x00, 0x3C, // flags: clean start; keep alive 60
        0x80, 0x00, // property length 0 in two bytes
        0x00, 0x01, b'a', // ClientId "a"
    ], LIMIT, InvalidReason::NonMinimalVarInt, V5),
    ("declared size 16386 above limit 4096", &[
        0x10, 0xFF, 0x7F, // remaining length 16383; nothing else needed
    ], LIMIT, InvalidReason::TooLarge, None),
    ("protocol name MQTX", &[
        0x10, 0x0C, // CONNECT, remaining length 12
        0x00, 0x04, b'M', b'Q', b'T', b'X', 0x04, // "MQTX", level 4
        0x02, 0x00, 0x3C, // flags; keep alive
        0x00, 0x00, // ClientId ""
    ], LIMIT, InvalidReason::ProtocolName, None),
    ("protocol name length 5", &[
        0x10, 0x0D, // CONNECT, remaining length 13
        0x00, 0x05, b'M', b'Q', b'T', b'T', b'5', // "MQTT5"
    ], LIMIT, InvalidReason::ProtocolName, None),
    ("protocol name MQIsdX", &[
        0x10, 0x0E, // CONNECT, remaining length 14
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'X', 0x03, // "MQIsdX", level 3
        0x02, 0x00, 0x3C, 0x00, 0x00, // flags; keep alive; ClientId ""
    ], LIMIT, InvalidReason::ProtocolName, None),
    ("MQTT with level 3", &[
        0x10, 0x0F, // CONNECT, remaining length 15
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x03, // "MQTT", level 3
        0x02, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c', // flags; keep alive; "abc"
    ], LIMIT, InvalidReason::UnsupportedProtocolLevel, None),
    ("MQTT with level 6", &[
        0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x06, // "MQTT", level 6
        0x02, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::UnsupportedProtocolLevel, None),
    ("MQTT with bridge bit level 0x84", &[
        0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x84, // "MQTT", level 0x84
        0x02, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::UnsupportedProtocolLevel, None),
    ("MQIsdp with level 4", &[
        0x10, 0x11, // CONNECT, remaining length 17
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x04, // "MQIsdp", level 4
        0x02, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::UnsupportedProtocolLevel, None),
    ("reserved flag set", &[
        0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, // "MQTT", level 4
        0x03, // flags: clean session + reserved bit 0
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::ReservedFlag, V311),
    ("will QoS 3", &[
        0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,
        0x1E, // flags: will QoS 3, will, clean session
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::WillQos, V311),
    ("will QoS 1 without will flag", &[
        0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,
        0x0A, // flags: will QoS 1, clean session; no will
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::WillFlagsWithoutWill, V311),
    ("will retain without will flag", &[
        0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, // "MQTT", level 4
        0x22, // flags: will retain, clean session; no will
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::WillFlagsWithoutWill, V311),
    ("v3.1.1 password without username", &[
        0x10, 0x13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,
        0x42, // flags: password, clean session
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c', // keep alive; "abc"
        0x00, 0x02, b'p', b'w', // password "pw"
    ], LIMIT, InvalidReason::PasswordWithoutUsername, V311),
    ("v3.1 password without username", &[
        0x10, 0x15, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x42, // flags: password, clean session
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c', 0x00, 0x02, b'p', b'w',
    ], LIMIT, InvalidReason::PasswordWithoutUsername, V31),
    ("remaining length 0", &[
        0x10, 0x00, // CONNECT, remaining length 0: no protocol name
    ], LIMIT, InvalidReason::Truncated, None),
    ("ClientId missing", &[
        0x10, 0x0A, // CONNECT, remaining length 10
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, // ends after keep alive
    ], LIMIT, InvalidReason::Truncated, V311),
    ("ClientId longer than the packet", &[
        0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C,
        0x00, 0x10, b'a', b'b', b'c', // ClientId length 16, three bytes left
    ], LIMIT, InvalidReason::Truncated, V311),
    ("username flag but no username", &[
        0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,
        0x82, // flags: username, clean session
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c', // packet ends after ClientId
    ], LIMIT, InvalidReason::Truncated, V311),
    ("byte left after ClientId", &[
        0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C,
        0x00, 0x03, b'a', b'b', b'c', // ClientId "abc"
        0x00, // one byte too many inside the remaining length
    ], LIMIT, InvalidReason::TrailingBytes, V311),
    ("password present without password flag", &[
        0x10, 0x15, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,
        0x82, // flags: username, clean session
        0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c', 0x00, 0x01, b'u', // "abc"; user "u"
        0x00, 0x01, b'p', // a password the flags do not announce
    ], LIMIT, InvalidReason::TrailingBytes, V311),
    ("ClientId with invalid UTF-8", &[
        0x10, 0x0E, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C,
        0x00, 0x02, 0xC3, 0x28, // 0xC3 not followed by a continuation byte
    ], LIMIT, InvalidReason::InvalidUtf8, V311),
    ("ClientId with a UTF-16 surrogate", &[
        0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C,
        0x00, 0x03, 0xED, 0xA0, 0x80, // U+D800 encoded in three bytes
    ], LIMIT, InvalidReason::InvalidUtf8, V311),
    ("username with invalid UTF-8", &[
        0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,
        0x82, 0x00, 0x3C, 0x00, 0x01, b'a', // flags: username; "a"
        0x00, 0x01, 0xFF, // user name: 0xFF is never valid
    ], LIMIT, InvalidReason::InvalidUtf8, V311),
    ("v5 user property with invalid UTF-8", &[
        0x10, 0x15, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x07, // property length 7
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, 0x80, //   user property k=<0x80>
        0x00, 0x01, b'a', // ClientId "a"
    ], LIMIT, InvalidReason::InvalidUtf8, V5),
    ("ClientId with U+0000", &[
        0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C,
        0x00, 0x03, b'a', 0x00, b'b', // "a\0b"
    ], LIMIT, InvalidReason::NullCharacter, V311),
    ("v3.1 empty ClientId", &[
        0x10, 0x0E, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        0x02, 0x00, 0x3C, // flags: clean session; keep alive
        0x00, 0x00, // ClientId ""
    ], LIMIT, InvalidReason::EmptyClientId, V31),
    ("v3.1.1 empty ClientId without clean session", &[
        0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,
        0x00, 0x00, 0x3C, // flags: none; keep alive
        0x00, 0x00, // ClientId ""
    ], LIMIT, InvalidReason::EmptyClientIdWithoutCleanSession, V311),
    ("will topic with wildcard", &[
        0x10, 0x16, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,
        0x06, 0x00, 0x3C, // flags: will, clean session; keep alive
        0x00, 0x03, b'a', b'b', b'c', // ClientId "abc"
        0x00, 0x03, b'a', b'/', b'#', // will topic "a/#"
        0x00, 0x00, // will payload ""
    ], LIMIT, InvalidReason::InvalidWillTopic, V311),
    ("empty will topic", &[
        0x10, 0x13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x06, 0x00, 0x3C,
        0x00, 0x03, b'a', b'b', b'c', // ClientId "abc"
        0x00, 0x00, // will topic ""
        0x00, 0x00, // will payload ""
    ], LIMIT, InvalidReason::InvalidWillTopic, V311),
    ("v5 property length of five bytes", &[
        0x10, 0x0E, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0xFF, 0xFF, 0xFF, 0xFF, // property length: four continuation bytes
    ], LIMIT, InvalidReason::PropertyLengthTooLong, V5),
    ("v5 property length past the packet", &[
        0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x10, // property length 16, five bytes left
        0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::PropertyLengthOutOfBounds, V5),
    ("v5 property value past the property length", &[
        0x10, 0x12, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x02, // property length 2
        0x11, 0x00, //   session expiry interval needs four bytes, has one
        0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::PropertyTruncated, V5),
    ("v5 will property in CONNECT properties", &[
        0x10, 0x12, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x02, // property length 2
        0x01, 0x01, //   payload format indicator: a Will property
        0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::UnknownConnectProperty, V5),
    ("v5 reason string in CONNECT", &[
        0x10, 0x13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x03, // property length 3
        0x1F, 0x00, 0x00, //   reason string: only in acks
        0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::UnknownConnectProperty, V5),
    ("v5 two-byte property identifier", &[
        0x10, 0x12, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x02, // property length 2
        0x91, 0x00, //   identifier 0x11 in a non-minimal two-byte form
        0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::UnknownConnectProperty, V5),
    ("v5 session expiry in Will properties", &[
        0x10, 0x19, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
        0x06, 0x00, 0x3C, // flags: will, clean start; keep alive
        0x00, // property length 0
        0x00, 0x01, b'a', // ClientId "a"
        0x05, // will property length 5
        0x11, 0x00, 0x00, 0x00, 0x0A, //   session expiry interval: CONNECT only
        0x00, 0x01, b't', // will topic "t"
        0x00, 0x00, // will payload ""
    ], LIMIT, InvalidReason::UnknownWillProperty, V5),
    ("v5 receive maximum twice", &[
        0x10, 0x16, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x06, // property length 6
        0x21, 0x00, 0x0A, //   receive maximum 10
        0x21, 0x00, 0x0A, //   receive maximum 10 again
        0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::DuplicateProperty, V5),
    ("v5 receive maximum 0", &[
        0x10, 0x13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x03, // property length 3
        0x21, 0x00, 0x00, //   receive maximum 0
        0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::ReceiveMaximumZero, V5),
    ("v5 maximum packet size 0", &[
        0x10, 0x15, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x05, // property length 5
        0x27, 0x00, 0x00, 0x00, 0x00, //   maximum packet size 0
        0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::MaximumPacketSizeZero, V5),
    ("v5 request problem information 2", &[
        0x10, 0x12, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x02, // property length 2
        0x17, 0x02, //   request problem information 2
        0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::InvalidRequestFlag, V5),
    ("v5 request response information 2", &[
        0x10, 0x12, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x02, // property length 2
        0x19, 0x02, //   request response information 2
        0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::InvalidRequestFlag, V5),
    ("v5 will payload format indicator 2", &[
        0x10, 0x16, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
        0x06, 0x00, 0x3C, // flags: will, clean start; keep alive
        0x00, // property length 0
        0x00, 0x01, b'a', // ClientId "a"
        0x02, // will property length 2
        0x01, 0x02, //   payload format indicator 2
        0x00, 0x01, b't', // will topic "t"
        0x00, 0x00, // will payload ""
    ], LIMIT, InvalidReason::InvalidPayloadFormat, V5),
    ("v5 will response topic with a wildcard", &[
        0x10, 0x1C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05,
        0x06, 0x00, 0x3C, // flags: will, clean start; keep alive
        0x00, // property length 0
        0x00, 0x03, b'a', b'b', b'c', // ClientId "abc"
        0x06, // will property length 6
        0x08, 0x00, 0x03, b'a', b'/', b'#', //   response topic "a/#"
        0x00, 0x01, b't', // will topic "t"
        0x00, 0x00, // will payload ""
    ], LIMIT, InvalidReason::InvalidResponseTopic, V5),
    ("v5 authentication data without method", &[
        0x10, 0x14, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C,
        0x04, // property length 4
        0x16, 0x00, 0x01, b'x', //   authentication data "x"
        0x00, 0x03, b'a', b'b', b'c',
    ], LIMIT, InvalidReason::AuthDataWithoutMethod, V5),
];

#[test]
fn invalid_vectors() {
    for &(what, bytes, limit, reason, level) in INVALID {
        assert_eq!(
            parse_connect(bytes, limit),
            Parsed::Invalid { reason, level },
            "{what}"
        );
        // The same verdict whatever the fragmentation, and already at the
        // last byte the rule needs.
        assert_prefix_consistent(bytes, limit);
    }
}

#[test]
fn every_reason_has_a_vector() {
    for reason in InvalidReason::ALL {
        assert!(
            INVALID.iter().any(|v| v.3 == *reason),
            "no vector for {reason:?}"
        );
    }
}

/// `ALL` lists every variant once: the match below fails to compile when a
/// variant is added, and the count ties it to `ALL`.
#[test]
fn all_is_exhaustive() {
    let index = |r: InvalidReason| -> usize {
        match r {
            InvalidReason::NotConnect => 0,
            InvalidReason::RemainingLengthTooLong => 1,
            InvalidReason::NonMinimalVarInt => 2,
            InvalidReason::TooLarge => 3,
            InvalidReason::ProtocolName => 4,
            InvalidReason::UnsupportedProtocolLevel => 5,
            InvalidReason::FixedHeaderFlags => 6,
            InvalidReason::ReservedFlag => 7,
            InvalidReason::WillQos => 8,
            InvalidReason::WillFlagsWithoutWill => 9,
            InvalidReason::PasswordWithoutUsername => 10,
            InvalidReason::Truncated => 11,
            InvalidReason::TrailingBytes => 12,
            InvalidReason::InvalidUtf8 => 13,
            InvalidReason::NullCharacter => 14,
            InvalidReason::EmptyClientId => 15,
            InvalidReason::EmptyClientIdWithoutCleanSession => 16,
            InvalidReason::InvalidWillTopic => 17,
            InvalidReason::PropertyLengthTooLong => 18,
            InvalidReason::PropertyLengthOutOfBounds => 19,
            InvalidReason::PropertyTruncated => 20,
            InvalidReason::UnknownConnectProperty => 21,
            InvalidReason::UnknownWillProperty => 22,
            InvalidReason::DuplicateProperty => 23,
            InvalidReason::ReceiveMaximumZero => 24,
            InvalidReason::MaximumPacketSizeZero => 25,
            InvalidReason::InvalidRequestFlag => 26,
            InvalidReason::InvalidPayloadFormat => 27,
            InvalidReason::InvalidResponseTopic => 28,
            InvalidReason::AuthDataWithoutMethod => 29,
        }
    };
    assert_eq!(InvalidReason::ALL.len(), 30);
    for (i, reason) in InvalidReason::ALL.iter().enumerate() {
        assert_eq!(index(*reason), i, "{reason:?}");
    }
}

/// Non-MQTT traffic is rejected on its first byte, without waiting (a TLS
/// record, `0x16`, is a CONNECT type byte and gets to its protocol name).
#[test]
fn foreign_protocols_rejected_on_first_byte() {
    for first in [b'G', b'P', 0x00, 0xFF, 0x20, 0x30, 0x82, 0xC0, 0xE0] {
        assert_eq!(
            parse(&[first]),
            Parsed::Invalid {
                reason: InvalidReason::NotConnect,
                level: None
            },
            "{first:#04x}"
        );
    }
}

/// A wrong protocol name is caught as soon as the name is in, before the
/// rest of the packet.
#[test]
fn bad_protocol_name_rejected_early() {
    let prefix = &[
        0x10, 0x7F, // CONNECT, remaining length 127
        0x00, 0x04, b'H', b'T', b'T', b'P', // "HTTP"
    ];
    assert_eq!(
        parse(prefix),
        Parsed::Invalid {
            reason: InvalidReason::ProtocolName,
            level: None
        }
    );
}

#[test]
fn messages_and_tokens() {
    assert_eq!(
        InvalidReason::NotConnect.message(),
        "first byte is not a CONNECT packet"
    );
    for reason in InvalidReason::ALL {
        let message = reason.message();
        assert!(!message.is_empty() && message.len() < 80, "{reason:?}");
        assert_eq!(reason.to_string(), message);
        let expected = match reason {
            InvalidReason::TooLarge => "too_large",
            InvalidReason::UnsupportedProtocolLevel => "unsupported_version",
            InvalidReason::EmptyClientId | InvalidReason::EmptyClientIdWithoutCleanSession => {
                "client_id_rejected"
            }
            _ => "malformed",
        };
        assert_eq!(reason.token(), expected, "{reason:?}");
    }
    // Messages are distinct, so the log says which rule was broken.
    let mut messages: Vec<_> = InvalidReason::ALL.iter().map(|r| r.message()).collect();
    messages.sort_unstable();
    messages.dedup();
    assert_eq!(messages.len(), InvalidReason::ALL.len());
}

/// A 16 KiB CONNECT in 100-byte reads: once the first read has given the
/// packet's length, the framer does not parse again until the packet is
/// whole, so a violation in a later read is seen at the end and not at once.
#[test]
fn framer_parses_a_trickled_packet_only_once_it_is_whole() {
    let payload = vec![b'w'; 16 * 1024 - 400];
    let bad_username = [0xffu8; 40]; // not UTF-8
    let password = [b'p'; 300];
    let bytes = ConnectBuilder::new(ProtocolLevel::V311, b"sensor-1")
        .will(Will::new(b"last/will", &payload))
        .username(&bad_username)
        .password(&password)
        .encode();
    let mut framer = ConnectFramer::default();
    let mut parser_saw_it_at = None;
    for end in (100..bytes.len()).step_by(100).chain([bytes.len()]) {
        let framed = framer.parse(&bytes[..end], 64 * 1024);
        let parsed = parse_connect(&bytes[..end], 64 * 1024);
        if matches!(parsed, Parsed::Invalid { .. }) && parser_saw_it_at.is_none() {
            parser_saw_it_at = Some(end);
        }
        if end < bytes.len() {
            assert_eq!(
                framed,
                Parsed::Incomplete {
                    needed: Some(bytes.len() - end)
                },
                "at {end}"
            );
        } else {
            assert_eq!(framed, parsed);
        }
    }
    // Parsing every read would have found it a few reads before the end.
    let seen = parser_saw_it_at.expect("the parser sees the bad username");
    assert!(seen + 200 < bytes.len(), "{seen} of {}", bytes.len());
    let mut framer = ConnectFramer::default();
    // Whole in one read, the violation is reported at once.
    assert!(matches!(
        framer.parse(&bytes, 64 * 1024),
        Parsed::Invalid {
            reason: InvalidReason::InvalidUtf8,
            ..
        }
    ));
}
