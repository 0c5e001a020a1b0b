//! Writes the fuzzing seed corpora from the encoder:
//!
//! ```text
//! cargo test -p mqtt-core -- --ignored write_fuzz_seeds write_rewrite_seeds write_decide_seeds
//! ```
//!
//! Each seed is a fuzz input: a limit byte (0xFF: no limit), a fragment
//! count and fragment sizes, then the stream (see
//! `fuzz/fuzz_targets/parse_connect.rs`).

use std::path::Path;

use crate::packet::encode::{typical_v5_properties, ConnectBuilder, PropValue, Will};
use crate::packet::property_id as id;
use crate::packet::ProtocolLevel;

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let v311 = ConnectBuilder::new(ProtocolLevel::V311, b"sensor-1");
    let mut will = Will::new(b"status/sensor-1", b"offline");
    will.qos = 1;
    will.retain = true;
    let mut will_v5 = will.clone();
    will_v5.properties = vec![
        (id::WILL_DELAY_INTERVAL, PropValue::U32(30)),
        (id::PAYLOAD_FORMAT_INDICATOR, PropValue::Byte(1)),
        (id::CONTENT_TYPE, PropValue::Str(b"text/plain")),
        (id::RESPONSE_TOPIC, PropValue::Str(b"reply/to")),
        (id::CORRELATION_DATA, PropValue::Bin(b"\x01\x02")),
        (id::MESSAGE_EXPIRY_INTERVAL, PropValue::U32(60)),
        (id::USER_PROPERTY, PropValue::Pair(b"k", b"v")),
    ];
    let long_id = [b'x'; 200];
    let mut pipelined = v311.encode();
    pipelined.extend_from_slice(&[0x30, 0x05, 0x00, 0x01, b't', b'h', b'i']);
    vec![
        ("v311_minimal", v311.encode()),
        (
            "v311_user_pass",
            v311.clone().username(b"alice").password(b"pw").encode(),
        ),
        (
            "v311_will",
            v311.clone().will(will.clone()).username(b"u").encode(),
        ),
        (
            "v311_empty_id",
            ConnectBuilder::new(ProtocolLevel::V311, b"").encode(),
        ),
        (
            "v311_long_id",
            ConnectBuilder::new(ProtocolLevel::V311, &long_id).encode(),
        ),
        ("v311_pipelined", pipelined),
        (
            "v31_minimal",
            ConnectBuilder::new(ProtocolLevel::V31, b"legacy").encode(),
        ),
        (
            "v31_user",
            ConnectBuilder::new(ProtocolLevel::V31, b"legacy")
                .username(b"u")
                .encode(),
        ),
        (
            "v5_minimal",
            ConnectBuilder::new(ProtocolLevel::V5, b"").encode(),
        ),
        (
            "v5_properties",
            ConnectBuilder {
                properties: typical_v5_properties(&[(b"region", b"eu"), (b"fw", b"2.1")]),
                ..ConnectBuilder::new(ProtocolLevel::V5, b"sensor-5")
            }
            .encode(),
        ),
        (
            "v5_auth",
            ConnectBuilder::new(ProtocolLevel::V5, b"a")
                .property(id::AUTHENTICATION_METHOD, PropValue::Str(b"SCRAM-SHA-256"))
                .property(id::AUTHENTICATION_DATA, PropValue::Bin(b"\x00\x01"))
                .property(id::REQUEST_RESPONSE_INFORMATION, PropValue::Byte(1))
                .encode(),
        ),
        (
            "v5_full",
            ConnectBuilder::new(ProtocolLevel::V5, b"c1")
                .will(will_v5)
                .password(b"only-password")
                .encode(),
        ),
        (
            "v5_duplicate_property",
            ConnectBuilder::new(ProtocolLevel::V5, b"a")
                .property(id::RECEIVE_MAXIMUM, PropValue::U16(1))
                .property(id::RECEIVE_MAXIMUM, PropValue::U16(1))
                .encode(),
        ),
        (
            "v6_unsupported",
            ConnectBuilder {
                protocol_level: Some(6),
                ..ConnectBuilder::new(ProtocolLevel::V5, b"a")
            }
            .encode(),
        ),
        (
            "v31_unused_flags",
            ConnectBuilder {
                first_byte: 0x1B,
                flags_override: Some(0x3B),
                ..ConnectBuilder::new(ProtocolLevel::V31, b"legacy")
            }
            .encode(),
        ),
        (
            "v31_user_name_flag_only",
            ConnectBuilder {
                flags_override: Some(0xC2),
                ..ConnectBuilder::new(ProtocolLevel::V31, b"legacy\0nul")
            }
            .encode(),
        ),
        (
            "v311_fixed_header_flags",
            ConnectBuilder {
                first_byte: 0x12,
                ..ConnectBuilder::new(ProtocolLevel::V311, b"sensor-1")
            }
            .encode(),
        ),
        (
            "v5_reserved_flag",
            ConnectBuilder {
                flags_override: Some(0x03),
                ..ConnectBuilder::new(ProtocolLevel::V5, b"a")
            }
            .encode(),
        ),
        (
            "v5_response_topic_wildcard",
            ConnectBuilder::new(ProtocolLevel::V5, b"a")
                .will(Will {
                    properties: vec![(id::RESPONSE_TOPIC, PropValue::Str(b"reply/#"))],
                    ..Will::new(b"w", b"")
                })
                .encode(),
        ),
        ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            "tls_client_hello",
            vec![0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x03],
        ),
    ]
}

#[test]
#[ignore = "writes fuzz/corpus/parse_connect; run by hand"]
fn write_fuzz_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/parse_connect");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, packet) in seeds() {
        // No limit, whole stream in one piece.
        let mut input = vec![0xFF, 0x00];
        input.extend_from_slice(&packet);
        std::fs::write(dir.join(name), &input).unwrap();
        // Limit 4096, delivered in fragments of 1, 2, 3 and 5 bytes.
        let mut input = vec![127, 4, 1, 2, 3, 5];
        input.extend_from_slice(&packet);
        std::fs::write(dir.join(format!("{name}_fragmented")), &input).unwrap();
    }
}

#[test]
#[ignore = "writes fuzz/corpus/rewrite; run by hand"]
fn write_rewrite_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/rewrite");
    std::fs::create_dir_all(&dir).unwrap();
    let value = b"thing001";
    // Each valid seed under a few edit sets: username set and password
    // removed, everything set with a User Property, username removed.
    for (name, packet) in seeds() {
        if !matches!(
            super::super::parse_connect(&packet, usize::MAX),
            super::super::Parsed::Connect(_)
        ) {
            continue;
        }
        for choice in [0b0001_0010u8, 0b0010_1011, 0b0000_0100] {
            let mut input = vec![choice, value.len() as u8];
            input.extend_from_slice(value);
            input.extend_from_slice(&packet);
            std::fs::write(dir.join(format!("{name}_{choice:02x}")), &input).unwrap();
        }
    }
}

#[test]
#[ignore = "writes fuzz/corpus/decide; run by hand"]
fn write_decide_seeds() {
    const DECIDE_CERTS: [&[u8]; 3] = [
        include_bytes!("../../../../../fuzz/certs/cn-and-san.der"),
        include_bytes!("../../../../../fuzz/certs/two-cns.der"),
        include_bytes!("../../../../../fuzz/certs/utf8-cn.der"),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/decide");
    std::fs::create_dir_all(&dir).unwrap();
    // ClientIds the committed certificates carry (fuzz/certs), and one they don't.
    let ids: [&[u8]; 5] = [
        b"thing001",
        b"urn:dev:thing001",
        b"twin-a",
        "ger\u{e4}t-9".as_bytes(),
        b"intruder",
    ];
    for (i, id) in ids.iter().enumerate() {
        for level in ProtocolLevel::ALL {
            let packet = ConnectBuilder::new(level, id).encode();
            // Every policy against every committed certificate (choices 3-5).
            for cert in 3u8..=5 {
                for policy in 0u8..4 {
                    let mut input = vec![cert << 2 | policy];
                    input.extend_from_slice(&packet);
                    let name = format!("id{i}_v{}_cert{cert}_policy{policy}", level.as_u8());
                    std::fs::write(dir.join(name), &input).unwrap();
                }
            }
            // The same certificates as the parts the nginx glue reads
            // (choice 7): [split][subject Name][subjectAltName value].
            for (c, der) in DECIDE_CERTS.iter().enumerate() {
                let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
                let subject = cert.subject().as_raw();
                let alt = cert
                    .extensions()
                    .iter()
                    .find(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME)
                    .map_or(&[][..], |e| e.value);
                let mut parts = vec![u8::try_from(subject.len()).unwrap()];
                parts.extend_from_slice(subject);
                parts.extend_from_slice(alt);
                for policy in 0u8..4 {
                    let mut input = vec![7 << 2 | policy, u8::try_from(parts.len()).unwrap()];
                    input.extend_from_slice(&parts);
                    input.extend_from_slice(&packet);
                    let name = format!("id{i}_v{}_parts{c}_policy{policy}", level.as_u8());
                    std::fs::write(dir.join(name), &input).unwrap();
                }
            }
        }
    }
}

/// The seeds are what their names say.
#[test]
fn seeds_parse_as_named() {
    use crate::packet::{parse_connect, InvalidReason, Parsed};
    for (name, packet) in seeds() {
        let r = parse_connect(&packet, usize::MAX);
        let expected_invalid = match name {
            "v5_duplicate_property" => Some(InvalidReason::DuplicateProperty),
            "v6_unsupported" => Some(InvalidReason::UnsupportedProtocolLevel),
            "http" => Some(InvalidReason::NotConnect),
            "tls_client_hello" => Some(InvalidReason::ProtocolName),
            "v311_fixed_header_flags" => Some(InvalidReason::FixedHeaderFlags),
            "v5_reserved_flag" => Some(InvalidReason::ReservedFlag),
            "v5_response_topic_wildcard" => Some(InvalidReason::InvalidResponseTopic),
            _ => None,
        };
        match expected_invalid {
            Some(reason) => assert!(
                matches!(r, Parsed::Invalid { reason: r, .. } if r == reason),
                "{name}: {r:?}"
            ),
            None => assert!(matches!(r, Parsed::Connect(_)), "{name}: {r:?}"),
        }
    }
}
