//! CONNACK encoding and the reason-to-code table.

use crate::packet::connack::{encode_connack, MAX_CONNACK_LEN};
use crate::packet::{InvalidReason, ProtocolLevel, ReasonCode};
use crate::policy::RejectReason;

use rumqttc::mqttbytes::v4 as rv4;
use rumqttc::v5::mqttbytes::v5 as rv5;

/// Decodes an MQTT 5 CONNACK with rumqttc, as an independent check.
fn rumqttc_v5(bytes: &[u8]) -> rv5::ConnAck {
    match rv5::Packet::read(&mut bytes.into(), None) {
        Ok(rv5::Packet::ConnAck(ack)) => ack,
        other => panic!("not a CONNACK: {other:?}"),
    }
}

/// Decodes an MQTT 3.1.1 CONNACK with rumqttc.
fn rumqttc_v4(bytes: &[u8]) -> rv4::ConnAck {
    match rv4::Packet::read(&mut bytes.into(), 1024) {
        Ok(rv4::Packet::ConnAck(ack)) => ack,
        other => panic!("not a CONNACK: {other:?}"),
    }
}

#[test]
fn v3_connack() {
    for level in [ProtocolLevel::V31, ProtocolLevel::V311] {
        let mut out = [0u8; MAX_CONNACK_LEN];
        // The reason string has no place in a 3.x CONNACK.
        let n = encode_connack(level, 0x02, Some("ignored"), &mut out);
        assert_eq!(&out[..n], [0x20, 0x02, 0x00, 0x02]);
        let ack = rumqttc_v4(&out[..n]);
        assert_eq!(ack.code, rv4::ConnectReturnCode::BadClientId);
        assert!(!ack.session_present);
    }
}

#[test]
fn v5_connack_without_reason_string() {
    let mut out = [0u8; MAX_CONNACK_LEN];
    let n = encode_connack(ProtocolLevel::V5, 0x81, None, &mut out);
    // CONNACK, remaining length 3, no session, Malformed Packet, no properties
    assert_eq!(&out[..n], [0x20, 0x03, 0x00, 0x81, 0x00]);
    // An empty reason string is left out too.
    let n = encode_connack(ProtocolLevel::V5, 0x81, Some(""), &mut out);
    assert_eq!(&out[..n], [0x20, 0x03, 0x00, 0x81, 0x00]);
    let ack = rumqttc_v5(&out[..n]);
    assert_eq!(ack.code, rv5::ConnectReturnCode::MalformedPacket);
}

#[test]
fn v5_connack_with_reason_string() {
    let mut out = [0u8; MAX_CONNACK_LEN];
    let n = encode_connack(ProtocolLevel::V5, 0x85, Some("bad"), &mut out);
    assert_eq!(
        &out[..n],
        [
            0x20, 0x09, // CONNACK, remaining length 9
            0x00, 0x85, // no session; Client Identifier not valid
            0x06, // property length 6
            0x1F, 0x00, 0x03, b'b', b'a', b'd', // reason string "bad"
        ]
    );
    let ack = rumqttc_v5(&out[..n]);
    assert_eq!(ack.code, rv5::ConnectReturnCode::ClientIdentifierNotValid);
    assert_eq!(
        ack.properties.unwrap().reason_string.as_deref(),
        Some("bad")
    );
}

#[test]
fn reason_string_is_cut_to_fit_on_a_char_boundary() {
    // 8 bytes of framing leave 2 bytes of string in 10.
    let mut out = [0u8; 10];
    let n = encode_connack(ProtocolLevel::V5, 0x81, Some("bad"), &mut out);
    assert_eq!(n, 10);
    assert_eq!(
        rumqttc_v5(&out[..n])
            .properties
            .unwrap()
            .reason_string
            .as_deref(),
        Some("ba")
    );
    // "é" is two bytes: the cut falls before it.
    let n = encode_connack(ProtocolLevel::V5, 0x81, Some("hé"), &mut out);
    assert_eq!(n, 9);
    assert_eq!(
        rumqttc_v5(&out[..n])
            .properties
            .unwrap()
            .reason_string
            .as_deref(),
        Some("h")
    );
    // Room for the framing only: no property.
    let mut out = [0u8; 8];
    let n = encode_connack(ProtocolLevel::V5, 0x81, Some("bad"), &mut out);
    assert_eq!(&out[..n], [0x20, 0x03, 0x00, 0x81, 0x00]);
}

/// Size of an MQTT 5 CONNACK with a Reason String of `len` bytes.
fn v5_size(len: usize) -> usize {
    let var_int_len = |v: usize| match v {
        0..=127 => 1,
        128..=16_383 => 2,
        _ => 3,
    };
    let props = 3 + len;
    let remaining = 2 + var_int_len(props) + props;
    1 + var_int_len(remaining) + remaining
}

#[test]
fn long_reason_strings_fit_the_buffer() {
    let long = "é".repeat(20_000) + "x";
    for size in [
        5, 8, 9, 127, 128, 129, 130, 131, 200, 16_388, 40_000, 70_000,
    ] {
        let mut out = vec![0u8; size];
        let n = encode_connack(ProtocolLevel::V5, 0x95, Some(&long), &mut out);
        assert!(n <= size && n >= 5, "size {size}: wrote {n}");
        let ack = rumqttc_v5(&out[..n]);
        assert_eq!(ack.code, rv5::ConnectReturnCode::PacketTooLarge);
        let reason = ack
            .properties
            .and_then(|p| p.reason_string)
            .unwrap_or_default();
        assert!(long.starts_with(&reason));
        // The cut is tight: one more character would not have fitted (or
        // the string is at the 65 535-byte cap of a string).
        if let Some(next) = long[reason.len()..].chars().next() {
            let next = next.len_utf8();
            assert!(
                v5_size(reason.len() + next) > size,
                "size {size}: {} bytes",
                reason.len()
            );
        } else {
            assert_eq!(reason, long);
        }
        if !reason.is_empty() {
            assert_eq!(n, v5_size(reason.len()));
        }
    }
}

#[test]
fn too_small_buffers_get_nothing() {
    let mut out = [0u8; 4];
    assert_eq!(encode_connack(ProtocolLevel::V5, 0x81, None, &mut out), 0);
    let mut out = [0u8; 3];
    assert_eq!(encode_connack(ProtocolLevel::V311, 0x01, None, &mut out), 0);
    assert_eq!(
        encode_connack(ProtocolLevel::V5, 0x81, Some("x"), &mut []),
        0
    );
}

/// The CONNACK code for every reason under every level, spelled out.
#[test]
fn connack_code_table() {
    use InvalidReason::*;
    // (reason, [level unknown, 3.1, 3.1.1, 5.0])
    let table: &[(InvalidReason, [Option<u8>; 4])] = &[
        (NotConnect, [None, None, None, Some(0x81)]),
        (RemainingLengthTooLong, [None, None, None, Some(0x81)]),
        (NonMinimalVarInt, [None, None, None, Some(0x81)]),
        (TooLarge, [None, None, None, Some(0x95)]),
        (ProtocolName, [None, None, None, Some(0x81)]),
        (
            UnsupportedProtocolLevel,
            [Some(0x01), Some(0x01), Some(0x01), Some(0x84)],
        ),
        (FixedHeaderFlags, [None, None, None, Some(0x81)]),
        (ReservedFlag, [None, None, None, Some(0x81)]),
        (WillQos, [None, None, None, Some(0x81)]),
        (WillFlagsWithoutWill, [None, None, None, Some(0x81)]),
        (PasswordWithoutUsername, [None, None, None, Some(0x81)]),
        (Truncated, [None, None, None, Some(0x81)]),
        (TrailingBytes, [None, None, None, Some(0x81)]),
        (InvalidUtf8, [None, None, None, Some(0x81)]),
        (NullCharacter, [None, None, None, Some(0x81)]),
        (EmptyClientId, [None, Some(0x02), Some(0x02), Some(0x85)]),
        (
            EmptyClientIdWithoutCleanSession,
            [None, Some(0x02), Some(0x02), Some(0x85)],
        ),
        (InvalidWillTopic, [None, None, None, Some(0x90)]),
        (PropertyLengthTooLong, [None, None, None, Some(0x81)]),
        (PropertyLengthOutOfBounds, [None, None, None, Some(0x81)]),
        (PropertyTruncated, [None, None, None, Some(0x81)]),
        (UnknownConnectProperty, [None, None, None, Some(0x81)]),
        (UnknownWillProperty, [None, None, None, Some(0x81)]),
        (DuplicateProperty, [None, None, None, Some(0x82)]),
        (ReceiveMaximumZero, [None, None, None, Some(0x82)]),
        (MaximumPacketSizeZero, [None, None, None, Some(0x82)]),
        (InvalidRequestFlag, [None, None, None, Some(0x82)]),
        (InvalidPayloadFormat, [None, None, None, Some(0x82)]),
        (InvalidResponseTopic, [None, None, None, Some(0x82)]),
        (AuthDataWithoutMethod, [None, None, None, Some(0x82)]),
    ];
    assert_eq!(table.len(), InvalidReason::ALL.len());
    for reason in InvalidReason::ALL {
        let (_, codes) = table.iter().find(|(r, _)| r == reason).expect("row");
        let levels = [
            None,
            Some(ProtocolLevel::V31),
            Some(ProtocolLevel::V311),
            Some(ProtocolLevel::V5),
        ];
        for (level, code) in levels.into_iter().zip(codes) {
            let sent = reason.reason_code().connack(level).map(|(_, c)| c);
            assert_eq!(sent, *code, "{reason:?} at {level:?}");
        }
    }
}

#[test]
fn rejection_connacks() {
    let mut out = [0u8; MAX_CONNACK_LEN];
    // Unknown version: the 3.1.1 format, "unacceptable protocol version".
    let n = RejectReason::Invalid(InvalidReason::UnsupportedProtocolLevel)
        .write_connack(None, None, &mut out);
    assert_eq!(&out[..n], [0x20, 0x02, 0x00, 0x01]);
    assert_eq!(
        rumqttc_v4(&out[..n]).code,
        rv4::ConnectReturnCode::RefusedProtocolVersion
    );
    // Not MQTT: close without a CONNACK.
    assert_eq!(
        RejectReason::Invalid(InvalidReason::NotConnect).write_connack(None, None, &mut out),
        0
    );
    // Malformed 3.1.1: close.
    assert_eq!(
        RejectReason::Invalid(InvalidReason::Truncated).write_connack(
            Some(ProtocolLevel::V311),
            None,
            &mut out
        ),
        0
    );
    // Identifier rejected, 3.1.
    let n = RejectReason::Invalid(InvalidReason::EmptyClientId).write_connack(
        Some(ProtocolLevel::V31),
        None,
        &mut out,
    );
    assert_eq!(&out[..n], [0x20, 0x02, 0x00, 0x02]);
    // MQTT 5: reason code and the message as reason string.
    let n = RejectReason::Invalid(InvalidReason::ReceiveMaximumZero).write_connack(
        Some(ProtocolLevel::V5),
        None,
        &mut out,
    );
    let ack = rumqttc_v5(&out[..n]);
    assert_eq!(ack.code, rv5::ConnectReturnCode::ProtocolError);
    assert_eq!(
        ack.properties.unwrap().reason_string.as_deref(),
        Some(InvalidReason::ReceiveMaximumZero.message())
    );
}

/// Admission control: "Server unavailable" for 3.1/3.1.1; for MQTT 5,
/// Connection rate exceeded and Quota exceeded, which tell a client to back
/// off rather than fix its packet.
#[test]
fn admission_connacks() {
    let mut out = [0u8; MAX_CONNACK_LEN];
    for (reason, v5) in [
        (RejectReason::RateLimited, 0x9F),
        (RejectReason::SessionLimit, 0x97),
    ] {
        assert_eq!(reason.status(), 503);
        for level in [ProtocolLevel::V31, ProtocolLevel::V311] {
            let n = reason.write_connack(Some(level), None, &mut out);
            assert_eq!(&out[..n], [0x20, 0x02, 0x00, 0x03], "{reason:?} {level:?}");
        }
        let n = reason.write_connack(Some(ProtocolLevel::V5), None, &mut out);
        assert_eq!(out[3], v5, "{reason:?}");
        let ack = rumqttc_v5(&out[..n]);
        assert_eq!(
            ack.properties.unwrap().reason_string.as_deref(),
            Some(reason.message())
        );
    }
    assert_eq!(
        rumqttc_v5(&{
            let n =
                RejectReason::RateLimited.write_connack(Some(ProtocolLevel::V5), None, &mut out);
            out[..n].to_vec()
        })
        .code,
        rv5::ConnectReturnCode::ConnectionRateExceeded
    );
}

/// Every message fits a MAX_CONNACK_LEN CONNACK uncut.
#[test]
fn messages_fit_max_connack_len() {
    for reason in InvalidReason::ALL {
        let mut out = [0u8; MAX_CONNACK_LEN];
        let n = encode_connack(ProtocolLevel::V5, 0x81, Some(reason.message()), &mut out);
        let ack = rumqttc_v5(&out[..n]);
        assert_eq!(
            ack.properties.unwrap().reason_string.as_deref(),
            Some(reason.message())
        );
    }
}

#[test]
fn reason_string_capped_at_two_byte_length() {
    let long = "a".repeat(70_000);
    let mut out = vec![0u8; 80_000];
    let n = encode_connack(ProtocolLevel::V5, 0x81, Some(&long), &mut out);
    assert_eq!(n, v5_size(65_535));
    let reason = rumqttc_v5(&out[..n])
        .properties
        .unwrap()
        .reason_string
        .unwrap();
    assert_eq!(reason.len(), 65_535);
}

/// Each MQTT 5 code maps to the 3.1.1 return code with the same meaning, or
/// to none where 3.1.1 closes the connection instead.
#[test]
fn v3_return_codes() {
    use ReasonCode::*;
    for code in ReasonCode::ALL {
        let expected = match code {
            Success => Some(0x00),
            UnsupportedProtocolVersion => Some(0x01),
            ClientIdentifierNotValid => Some(0x02),
            ServerUnavailable
            | ServerBusy
            | QuotaExceeded
            | ConnectionRateExceeded
            | UseAnotherServer
            | ServerMoved => Some(0x03),
            BadUserNameOrPassword => Some(0x04),
            NotAuthorized | Banned | BadAuthenticationMethod => Some(0x05),
            _ => None,
        };
        assert_eq!(code.v3_return_code(), expected, "{code:?}");
        for level in [ProtocolLevel::V31, ProtocolLevel::V311] {
            assert_eq!(code.connack(Some(level)), expected.map(|c| (level, c)));
        }
        assert_eq!(
            code.connack(Some(ProtocolLevel::V5)),
            Some((ProtocolLevel::V5, code as u8))
        );
        assert!(code == Success || code.as_u8() >= 0x80, "{code:?}");
    }
}

/// A refusal's Reason String gives way to the device's Maximum Packet Size.
#[test]
fn refusal_fits_maximum_packet_size() {
    let reason = RejectReason::ClientIdMismatch;
    let level = Some(ProtocolLevel::V5);
    let mut out = [0u8; MAX_CONNACK_LEN];
    let whole = reason.write_connack(level, None, &mut out);
    assert_eq!(
        rumqttc_v5(&out[..whole])
            .properties
            .unwrap()
            .reason_string
            .as_deref(),
        Some(reason.message())
    );
    // Just too small for the string: it is cut on a character boundary.
    let n = reason.write_connack(level, Some(whole as u32 - 1), &mut out);
    assert!(n < whole && n > 5, "{n}");
    let cut = rumqttc_v5(&out[..n])
        .properties
        .unwrap()
        .reason_string
        .unwrap();
    assert!(reason.message().starts_with(&cut) && cut.len() < reason.message().len());
    // Room for the bare CONNACK only: no property at all.
    let n = reason.write_connack(level, Some(5), &mut out);
    assert_eq!(&out[..n], [0x20, 0x03, 0x00, 0x85, 0x00]);
    // Below the bare CONNACK: nothing can be sent.
    assert_eq!(reason.write_connack(level, Some(4), &mut out), 0);
}
