//! Every value MQTT 5 constrains in the CONNECT properties and the Will
//! Properties (MQTT 5.0 §3.1.2.11, §3.1.3.2), and the values it leaves free.

use super::{assert_prefix_consistent, connect_of};
use crate::packet::encode::{ConnectBuilder, PropValue, Will};
use crate::packet::property_id::{self as id, CONNECT_ALLOWED, WILL_ALLOWED};
use crate::packet::{parse_connect, InvalidReason, Parsed, ProtocolLevel};

const LIMIT: usize = 4096;

/// Which property block a property goes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    Connect,
    Will,
}

/// An MQTT 5 CONNECT with `props` in `block` (and a Will, whose payload is
/// `payload`, either way).
fn packet(block: Block, props: &[(u8, PropValue<'_>)], payload: &[u8]) -> Vec<u8> {
    let mut will = Will::new(b"w/t", payload);
    let mut b = ConnectBuilder::new(ProtocolLevel::V5, b"device");
    match block {
        Block::Connect => b.properties = props.to_vec(),
        Block::Will => will.properties = props.to_vec(),
    }
    b.will(will).encode()
}

fn verdict(bytes: &[u8]) -> Result<(), InvalidReason> {
    assert_prefix_consistent(bytes, LIMIT);
    match parse_connect(bytes, LIMIT) {
        Parsed::Connect(c) => {
            assert_eq!(c.packet_len, bytes.len());
            Ok(())
        }
        Parsed::Invalid {
            reason,
            level: Some(ProtocolLevel::V5),
        } => Err(reason),
        other => panic!("{other:?} for {bytes:02x?}"),
    }
}

/// A well-formed value for property `id`.
fn sample(id: u8) -> PropValue<'static> {
    match id {
        id::PAYLOAD_FORMAT_INDICATOR
        | id::REQUEST_PROBLEM_INFORMATION
        | id::REQUEST_RESPONSE_INFORMATION => PropValue::Byte(1),
        id::RECEIVE_MAXIMUM | id::TOPIC_ALIAS_MAXIMUM => PropValue::U16(7),
        id::CONTENT_TYPE | id::RESPONSE_TOPIC | id::AUTHENTICATION_METHOD => PropValue::Str(b"a/b"),
        id::CORRELATION_DATA | id::AUTHENTICATION_DATA => PropValue::Bin(b"\x00\xff"),
        id::USER_PROPERTY => PropValue::Pair(b"k", b"v"),
        _ => PropValue::U32(9),
    }
}

/// Every identifier the block allows, each on its own, with the
/// Authentication Method that Authentication Data needs.
fn allowed(block: Block) -> Vec<u8> {
    let set = match block {
        Block::Connect => CONNECT_ALLOWED,
        Block::Will => WILL_ALLOWED,
    };
    (0..64u8).filter(|i| set & (1 << i) != 0).collect()
}

fn with_needs(id: u8, mut props: Vec<(u8, PropValue<'static>)>) -> Vec<(u8, PropValue<'static>)> {
    if id == id::AUTHENTICATION_DATA {
        props.insert(
            0,
            (id::AUTHENTICATION_METHOD, sample(id::AUTHENTICATION_METHOD)),
        );
    }
    props
}

/// Each allowed property is accepted once; a second copy of any but User
/// Property is a Protocol Error ("It is a Protocol Error to include the ...
/// more than once", in every property's section).
#[test]
fn every_property_once_and_twice() {
    for block in [Block::Connect, Block::Will] {
        for id in allowed(block) {
            let once = with_needs(id, vec![(id, sample(id))]);
            assert_eq!(verdict(&packet(block, &once, b"p")), Ok(()), "{id:#04x}");
            let twice = with_needs(id, vec![(id, sample(id)), (id, sample(id))]);
            let expected = if id == id::USER_PROPERTY {
                Ok(())
            } else {
                Err(InvalidReason::DuplicateProperty)
            };
            assert_eq!(verdict(&packet(block, &twice, b"p")), expected, "{id:#04x}");
        }
    }
}

/// Any identifier the block does not list is a Malformed Packet (MQTT 5.0
/// §2.2.2.2): the other block's properties, those of other packets (Reason
/// String, Topic Alias, Subscription Identifier, ...) and undefined ones.
#[test]
fn identifiers_not_allowed_in_the_block() {
    for (block, set, reason) in [
        (
            Block::Connect,
            CONNECT_ALLOWED,
            InvalidReason::UnknownConnectProperty,
        ),
        (
            Block::Will,
            WILL_ALLOWED,
            InvalidReason::UnknownWillProperty,
        ),
    ] {
        for id in (0..=255u8).filter(|&i| i >= 64 || set & (1 << i) == 0) {
            let props = [(id, PropValue::Raw(&[0, 0, 0, 0]))];
            assert_eq!(
                verdict(&packet(block, &props, b"p")),
                Err(reason),
                "{id:#04x}"
            );
        }
    }
}

/// Every string-valued property must be well-formed UTF-8 without U+0000
/// (MQTT 5.0 §1.5.4 [MQTT-1.5.4-1], [MQTT-1.5.4-2]; both halves of a User
/// Property, §1.5.7 [MQTT-1.5.7-1]).
#[test]
fn every_string_property_is_checked() {
    let strings = [
        (Block::Connect, id::AUTHENTICATION_METHOD),
        (Block::Connect, id::USER_PROPERTY),
        (Block::Will, id::CONTENT_TYPE),
        (Block::Will, id::RESPONSE_TOPIC),
        (Block::Will, id::USER_PROPERTY),
    ];
    let bad: [(&[u8], InvalidReason); 4] = [
        (b"a\xffb", InvalidReason::InvalidUtf8),
        (b"\xed\xa0\x80", InvalidReason::InvalidUtf8), // U+D800
        (b"a\0", InvalidReason::NullCharacter),
        (b"\0", InvalidReason::NullCharacter),
    ];
    for (block, id) in strings {
        for (text, reason) in bad {
            let values = if id == id::USER_PROPERTY {
                vec![PropValue::Pair(text, b"v"), PropValue::Pair(b"k", text)]
            } else {
                vec![PropValue::Str(text)]
            };
            for value in values {
                let bytes = packet(block, &[(id, value)], b"p");
                assert_eq!(verdict(&bytes), Err(reason), "{id:#04x} {value:?}");
            }
        }
    }
}

/// The Will's Response Topic is the Topic Name of the response: at least
/// one character ([MQTT-4.7.3-1]) and no wildcard ([MQTT-3.3.2-14]).
#[test]
fn will_response_topic() {
    for topic in [
        &b"a"[..],
        b"/",
        b"a/b/c",
        b" ",
        b"$SYS/x",
        "r\u{e9}ponse".as_bytes(),
    ] {
        let props = [(id::RESPONSE_TOPIC, PropValue::Str(topic))];
        assert_eq!(
            verdict(&packet(Block::Will, &props, b"p")),
            Ok(()),
            "{topic:?}"
        );
    }
    for topic in [&b""[..], b"+", b"#", b"a/#", b"a/+/b", b"a#", b"+b"] {
        let props = [(id::RESPONSE_TOPIC, PropValue::Str(topic))];
        assert_eq!(
            verdict(&packet(Block::Will, &props, b"p")),
            Err(InvalidReason::InvalidResponseTopic),
            "{topic:?}"
        );
    }
}

/// The numeric limits MQTT 5 sets, and the full range where it sets none:
/// Session Expiry, Will Delay and Message Expiry are any u32, Topic Alias
/// Maximum any u16, Correlation Data any bytes.
#[test]
fn numeric_and_binary_values() {
    let free: [(Block, u8, PropValue<'_>); 16] = [
        (
            Block::Connect,
            id::SESSION_EXPIRY_INTERVAL,
            PropValue::U32(0),
        ),
        (
            Block::Connect,
            id::SESSION_EXPIRY_INTERVAL,
            PropValue::U32(u32::MAX),
        ),
        (Block::Connect, id::RECEIVE_MAXIMUM, PropValue::U16(1)),
        (
            Block::Connect,
            id::RECEIVE_MAXIMUM,
            PropValue::U16(u16::MAX),
        ),
        (Block::Connect, id::MAXIMUM_PACKET_SIZE, PropValue::U32(1)),
        (
            Block::Connect,
            id::MAXIMUM_PACKET_SIZE,
            PropValue::U32(u32::MAX),
        ),
        (Block::Connect, id::TOPIC_ALIAS_MAXIMUM, PropValue::U16(0)),
        (
            Block::Connect,
            id::TOPIC_ALIAS_MAXIMUM,
            PropValue::U16(u16::MAX),
        ),
        (
            Block::Connect,
            id::REQUEST_PROBLEM_INFORMATION,
            PropValue::Byte(0),
        ),
        (
            Block::Connect,
            id::REQUEST_RESPONSE_INFORMATION,
            PropValue::Byte(0),
        ),
        (
            Block::Will,
            id::WILL_DELAY_INTERVAL,
            PropValue::U32(u32::MAX),
        ),
        (Block::Will, id::MESSAGE_EXPIRY_INTERVAL, PropValue::U32(0)),
        (
            Block::Will,
            id::MESSAGE_EXPIRY_INTERVAL,
            PropValue::U32(u32::MAX),
        ),
        (
            Block::Will,
            id::PAYLOAD_FORMAT_INDICATOR,
            PropValue::Byte(0),
        ),
        (Block::Will, id::CORRELATION_DATA, PropValue::Bin(b"")),
        (Block::Will, id::CONTENT_TYPE, PropValue::Str(b"")),
    ];
    for (block, id, value) in free {
        assert_eq!(
            verdict(&packet(block, &[(id, value)], b"p")),
            Ok(()),
            "{id:#04x} {value:?}"
        );
    }
    let refused: [(Block, u8, PropValue<'_>, InvalidReason); 6] = [
        (
            Block::Connect,
            id::RECEIVE_MAXIMUM,
            PropValue::U16(0),
            InvalidReason::ReceiveMaximumZero,
        ),
        (
            Block::Connect,
            id::MAXIMUM_PACKET_SIZE,
            PropValue::U32(0),
            InvalidReason::MaximumPacketSizeZero,
        ),
        (
            Block::Connect,
            id::REQUEST_PROBLEM_INFORMATION,
            PropValue::Byte(2),
            InvalidReason::InvalidRequestFlag,
        ),
        (
            Block::Connect,
            id::REQUEST_RESPONSE_INFORMATION,
            PropValue::Byte(255),
            InvalidReason::InvalidRequestFlag,
        ),
        (
            Block::Will,
            id::PAYLOAD_FORMAT_INDICATOR,
            PropValue::Byte(2),
            InvalidReason::InvalidPayloadFormat,
        ),
        (
            Block::Connect,
            id::AUTHENTICATION_DATA,
            PropValue::Bin(b"x"),
            InvalidReason::AuthDataWithoutMethod,
        ),
    ];
    for (block, id, value, reason) in refused {
        assert_eq!(
            verdict(&packet(block, &[(id, value)], b"p")),
            Err(reason),
            "{id:#04x}"
        );
    }
}

/// A Will Payload marked UTF-8 (Payload Format Indicator 1) is not
/// validated: the Server MAY check it (MQTT 5.0 §3.1.3.2.3); this parser
/// leaves that to the broker and reads the payload as bytes, like the
/// password.
#[test]
fn utf8_will_payload_is_not_validated() {
    let props = [(id::PAYLOAD_FORMAT_INDICATOR, PropValue::Byte(1))];
    for payload in [&b"\xff\xfe"[..], b"a\0b", b""] {
        let bytes = packet(Block::Will, &props, payload);
        assert_eq!(verdict(&bytes), Ok(()), "{payload:?}");
        assert_eq!(connect_of(&bytes).will_topic, Some("w/t"));
    }
}
