//! Invalid first packets generated from the specification's rules: valid
//! CONNECTs of every version, mutated one rule at a time, each labelled with
//! the `InvalidReason` variant (crates/mqtt-core/src/packet/invalid.rs) the
//! parser must report and what the device must then see (reject token,
//! CONNACK or none). A rule is mutated only into the versions it applies to
//! (docs/PARSER.md has the table).
//!
//! The variant names and their error-log messages come from
//! `InvalidReason::ALL`: a variant added to the enum without a generator here
//! makes the coverage check fail.

use std::collections::BTreeMap;
use std::path::Path;

use mqtt_core::packet::encode::{self, put_binary, put_properties, put_var_int, ConnectBuilder};
use mqtt_core::packet::{InvalidReason, ProtocolLevel};

/// One invalid first packet.
#[derive(Clone, Debug)]
pub struct Case {
    /// The `InvalidReason` variant name the parser must report.
    pub rule: &'static str,
    /// What was mutated (unique per case, for failure messages).
    pub name: String,
    pub bytes: Vec<u8>,
    /// The protocol level the parser knows when it fails: the CONNACK format.
    pub level: Option<u8>,
}

/// What nginx must do with a [`Case`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// `$mqtt_reject_reason`.
    pub token: &'static str,
    /// The CONNACK: `Some((format level, code))`, or `None` for a bare close.
    pub connack: Option<(u8, u8)>,
}

impl Case {
    /// The documented outcome (README's reject table, `connack_code`).
    pub fn expect(&self) -> Expect {
        let token = match self.rule {
            "TooLarge" => "too_large",
            "UnsupportedProtocolLevel" => "unsupported_version",
            "EmptyClientId" | "EmptyClientIdWithoutCleanSession" => "client_id_rejected",
            _ => "malformed",
        };
        let connack = match self.level {
            None => (self.rule == "UnsupportedProtocolLevel").then_some((4, 0x01)),
            Some(level @ (3 | 4)) => match self.rule {
                "UnsupportedProtocolLevel" => Some((level, 0x01)),
                "EmptyClientId" | "EmptyClientIdWithoutCleanSession" => Some((level, 0x02)),
                _ => None,
            },
            Some(_) => Some((
                5,
                match self.rule {
                    "UnsupportedProtocolLevel" => 0x84,
                    "EmptyClientId" | "EmptyClientIdWithoutCleanSession" => 0x85,
                    "TooLarge" => 0x95,
                    "InvalidWillTopic" => 0x90,
                    "DuplicateProperty"
                    | "ReceiveMaximumZero"
                    | "MaximumPacketSizeZero"
                    | "InvalidRequestFlag"
                    | "InvalidPayloadFormat"
                    | "InvalidResponseTopic"
                    | "AuthDataWithoutMethod" => 0x82,
                    _ => 0x81,
                },
            )),
        };
        Expect { token, connack }
    }

    /// Whether `reply` (everything read until the close) is the expected
    /// answer: the exact 3.x CONNACK, a v5 CONNACK with the reason code (and
    /// a Reason String), or nothing.
    pub fn reply_ok(&self, reply: &[u8]) -> bool {
        match self.expect().connack {
            None => reply.is_empty(),
            Some((3 | 4, code)) => reply == [0x20, 0x02, 0x00, code],
            Some((_, code)) => {
                // 20 <remaining length> 00 <code> <properties>; the
                // remaining length is one byte for these short replies.
                reply.len() >= 5
                    && reply[0] == 0x20
                    && usize::from(reply[1]) == reply.len() - 2
                    && reply[2] == 0x00
                    && reply[3] == code
            }
        }
    }
}

/// (will properties, will property length override, topic, payload).
pub type Will = (Vec<u8>, Option<Vec<u8>>, Vec<u8>, Vec<u8>);

/// A CONNECT assembled from raw fields, so that any of them can be broken.
#[derive(Clone, Debug)]
pub struct Spec {
    pub first: u8,
    /// Protocol name, without its length prefix.
    pub name: Vec<u8>,
    pub level: u8,
    /// Connect flags; `None`: derived from the fields present (+ clean session).
    pub flags: Option<u8>,
    pub keep_alive: u16,
    /// MQTT 5 CONNECT properties (raw, after the Property Length).
    pub props: Vec<u8>,
    /// Override of the encoded Property Length.
    pub props_len: Option<Vec<u8>>,
    pub client_id: Vec<u8>,
    pub will: Option<Will>,
    pub username: Option<Vec<u8>>,
    pub password: Option<Vec<u8>>,
    /// Bytes appended inside the Remaining Length.
    pub trailing: Vec<u8>,
}

impl Spec {
    pub fn new(level: u8, client_id: &str) -> Spec {
        Spec {
            first: 0x10,
            name: if level == 3 {
                b"MQIsdp".to_vec()
            } else {
                b"MQTT".to_vec()
            },
            level,
            flags: None,
            keep_alive: 60,
            props: Vec::new(),
            props_len: None,
            client_id: client_id.as_bytes().to_vec(),
            will: None,
            username: None,
            password: None,
            trailing: Vec::new(),
        }
    }

    fn v5(&self) -> bool {
        self.level == 5 && self.name == b"MQTT"
    }

    /// The encoder's view of the spec: the layout of its version (MQTT 5's
    /// when the name and level say 5), everything else as given.
    fn builder(&self) -> ConnectBuilder<'_> {
        let layout = match (self.v5(), self.level) {
            (true, _) => ProtocolLevel::V5,
            (false, 3) => ProtocolLevel::V31,
            (false, _) => ProtocolLevel::V311,
        };
        let mut b = ConnectBuilder::new(layout, &self.client_id);
        b.first_byte = self.first;
        b.protocol_name = Some(&self.name);
        b.protocol_level = Some(self.level);
        b.flags_override = self.flags;
        b.keep_alive = self.keep_alive;
        b.raw_properties = Some(&self.props);
        b.properties_len = self.props_len.as_deref();
        b.will = self
            .will
            .as_ref()
            .map(|(props, props_len, topic, payload)| encode::Will {
                raw_properties: Some(props),
                properties_len: props_len.as_deref(),
                ..encode::Will::new(topic, payload)
            });
        b.username = self.username.as_deref();
        b.password = self.password.as_deref();
        b.trailing = &self.trailing;
        b
    }

    /// The Connect Flags the fields present imply, with clean session.
    pub fn derived_flags(&self) -> u8 {
        ConnectBuilder {
            flags_override: None,
            ..self.builder()
        }
        .flags()
    }

    pub fn body(&self) -> Vec<u8> {
        self.builder().encode_body()
    }

    pub fn encode(&self) -> Vec<u8> {
        self.builder().encode()
    }

    fn with(&self, f: impl FnOnce(&mut Spec)) -> Spec {
        let mut spec = self.clone();
        f(&mut spec);
        spec
    }
}

/// `bytes` with its Remaining Length re-encoded as `len_bytes`.
fn with_remaining(packet: &[u8], len_bytes: &[u8]) -> Vec<u8> {
    let header_len = 1 + packet[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    let mut out = vec![packet[0]];
    out.extend_from_slice(len_bytes);
    out.extend_from_slice(&packet[header_len..]);
    out
}

/// `value` as a Variable Byte Integer padded to `width` bytes (non-minimal
/// when `width` is larger than needed).
fn padded_var_int(mut value: usize, width: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..width {
        let byte = (value % 128) as u8;
        value /= 128;
        out.push(if i + 1 < width { byte | 0x80 } else { byte });
    }
    out
}

fn s(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_binary(&mut out, bytes);
    out
}

/// The valid CONNECTs the rules mutate: every version, with and without
/// the optional fields (the v5 ones with properties).
pub fn bases() -> Vec<(String, Spec)> {
    let mut out = Vec::new();
    for level in [3u8, 4, 5] {
        out.push((format!("v{level} minimal"), Spec::new(level, "device-7")));
        out.push((
            format!("v{level} full"),
            Spec::new(level, "sensor/ü-42").with(|s| {
                s.will = Some((Vec::new(), None, b"last/will".to_vec(), b"gone".to_vec()));
                s.username = Some(b"user".to_vec());
                s.password = Some(b"secret".to_vec());
            }),
        ));
    }
    out.push((
        "v5 props".into(),
        Spec::new(5, "props-1").with(|s| {
            s.props = [
                &[0x11, 0, 0, 0x0e, 0x10][..], // session expiry 3600
                &[0x21, 0, 10],                // receive maximum 10
                &[0x26, 0, 1, b'k', 0, 1, b'v'],
            ]
            .concat();
            s.will = Some((
                vec![0x01, 1, 0x18, 0, 0, 0, 5],
                None,
                b"w".to_vec(),
                b"p".to_vec(),
            ));
        }),
    ));
    out
}

/// Every invalid case, named uniquely.
pub fn cases() -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    let mut add = |rule: &'static str, name: String, bytes: Vec<u8>, level: Option<u8>| {
        out.push(Case {
            rule,
            name,
            bytes,
            level,
        });
    };
    let bases = bases();
    let v311 = Spec::new(4, "device-7");
    let v5 = Spec::new(5, "device-7");

    // NotConnect: a first byte whose packet type is not 1 (CONNECT).
    for first in [
        0x00u8, 0x0f, 0x20, 0x21, 0x30, 0x32, 0x82, 0xc0, 0xe0, 0xf0, b'G', 0xff,
    ] {
        add(
            "NotConnect",
            format!("first byte {first:#04x}"),
            v311.with(|s| s.first = first).encode(),
            None,
        );
    }
    add(
        "NotConnect",
        "HTTP request".into(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        None,
    );

    // RemainingLengthTooLong: a fifth length byte.
    for tail in [
        &[0x80u8, 0x80, 0x80, 0x80][..],
        &[0xff, 0xff, 0xff, 0xff, 0x7f],
        &[0x81, 0x82, 0x83, 0x84, 0x01],
        &[0x80, 0x80, 0x80, 0x80, 0x00, 0x04],
    ] {
        add(
            "RemainingLengthTooLong",
            format!("remaining length {tail:02x?}"),
            [&[0x10u8][..], tail].concat(),
            None,
        );
    }

    // NonMinimalVarInt: the Remaining Length padded, and (v5) the Property
    // Lengths.
    for (base_name, base) in &bases {
        let packet = base.encode();
        let len = base.body().len();
        for width in 2..=4 {
            if padded_var_int(len, width).len() == width && len < 128usize.pow(width as u32 - 1) {
                add(
                    "NonMinimalVarInt",
                    format!("{base_name}: remaining length in {width} bytes"),
                    with_remaining(&packet, &padded_var_int(len, width)),
                    None,
                );
            }
        }
        if base.level == 5 {
            let props_len = base.props.len();
            for width in 2..=4 {
                add(
                    "NonMinimalVarInt",
                    format!("{base_name}: property length in {width} bytes"),
                    base.with(|s| s.props_len = Some(padded_var_int(props_len, width)))
                        .encode(),
                    Some(5),
                );
            }
            if let Some(will) = &base.will {
                let will_len = will.0.len();
                add(
                    "NonMinimalVarInt",
                    format!("{base_name}: will property length in 2 bytes"),
                    base.with(|s| s.will.as_mut().unwrap().1 = Some(padded_var_int(will_len, 2)))
                        .encode(),
                    Some(5),
                );
            }
        }
    }

    // TooLarge: declared above preread_buffer_size (16k by default); only
    // the header and a few bytes are sent.
    for declared in [16_385usize, 16_386, 20_000, 100_000, 2_097_151, 268_435_455] {
        let mut packet = vec![0x10];
        put_var_int(&mut packet, declared as u32);
        packet.extend_from_slice(&v311.body());
        add(
            "TooLarge",
            format!("declared remaining length {declared}"),
            packet,
            None,
        );
    }

    // ProtocolName.
    for (name, raw) in [
        ("MQTX", s(b"MQTX")),
        ("mqtt", s(b"mqtt")),
        ("MQTTX", s(b"MQTTX")),
        ("MQT", s(b"MQT")),
        ("empty", s(b"")),
        ("MQIsdx", s(b"MQIsdx")),
        ("HTTP/1", s(b"HTTP/1")),
        (
            "MQTT with length 6",
            [&[0u8, 6][..], b"MQTT\x04\x02"].concat(),
        ),
        ("MQIsdp with length 4", [&[0u8, 4][..], b"MQIs"].concat()),
        ("length 0xffff", vec![0xff, 0xff, b'M']),
    ] {
        let mut body = raw;
        body.extend_from_slice(&[4, 2, 0, 60, 0, 1, b'x']);
        let mut packet = vec![0x10];
        put_var_int(&mut packet, body.len() as u32);
        packet.extend_from_slice(&body);
        add(
            "ProtocolName",
            format!("protocol name {name}"),
            packet,
            None,
        );
    }

    // UnsupportedProtocolLevel.
    for (name, level) in [
        ("MQTT", 0u8),
        ("MQTT", 1),
        ("MQTT", 2),
        ("MQTT", 3),
        ("MQTT", 6),
        ("MQTT", 7),
        ("MQTT", 0x84),
        ("MQTT", 0xff),
        ("MQIsdp", 4),
        ("MQIsdp", 5),
        ("MQIsdp", 0),
    ] {
        add(
            "UnsupportedProtocolLevel",
            format!("{name} level {level}"),
            Spec::new(4, "device-7")
                .with(|s| {
                    s.name = name.as_bytes().to_vec();
                    s.level = level;
                })
                .encode(),
            None,
        );
    }

    // FixedHeaderFlags: a CONNECT type byte with flags, refused once the
    // level says 3.1.1 or 5.0 (3.1 allows them).
    for (base_name, base) in bases.iter().filter(|(_, b)| b.level != 3) {
        for first in [0x11u8, 0x12, 0x14, 0x16, 0x18, 0x1f] {
            add(
                "FixedHeaderFlags",
                format!("{base_name}: first byte {first:#04x}"),
                base.with(|s| s.first = first).encode(),
                Some(base.level),
            );
        }
    }

    // Connect-flag rules, on every base they apply to: 3.1 leaves bit 0
    // unused and disregards Will QoS/Retain without a Will.
    for (base_name, base) in &bases {
        let level = Some(base.level);
        let flags = base.derived_flags();
        if base.level != 3 {
            add(
                "ReservedFlag",
                format!("{base_name}: reserved flag"),
                base.with(|s| s.flags = Some(flags | 0x01)).encode(),
                level,
            );
        }
        add(
            "WillQos",
            format!("{base_name}: will qos 3"),
            base.with(|s| s.flags = Some(flags | 0x04 | 0x18)).encode(),
            level,
        );
        if base.will.is_none() && base.level != 3 {
            for (what, bits) in [
                ("qos 1", 0x08u8),
                ("qos 2", 0x10),
                ("retain", 0x20),
                ("retain qos 1", 0x28),
            ] {
                add(
                    "WillFlagsWithoutWill",
                    format!("{base_name}: will {what} without will"),
                    base.with(|s| s.flags = Some(flags | bits)).encode(),
                    level,
                );
            }
        }
        if base.will.is_none() && base.level != 5 {
            add(
                "PasswordWithoutUsername",
                format!("{base_name}: password flag without username"),
                base.with(|s| s.password = Some(b"pw".to_vec())).encode(),
                level,
            );
            add(
                "PasswordWithoutUsername",
                format!("{base_name}: password flag, no password, no username"),
                base.with(|s| s.flags = Some(flags | 0x40)).encode(),
                level,
            );
        }
    }

    // Truncated: the Remaining Length cut short inside the last field(s),
    // or before the protocol level.
    for (base_name, base) in &bases {
        let body = base.body();
        // Bytes of the last fields after the properties (v5) or the keep
        // alive: cutting anywhere in there is a Truncated field.
        let fixed = 2
            + base.name.len()
            + 1
            + 1
            + 2
            + if base.v5() {
                let mut p = Vec::new();
                put_properties(&mut p, &[], Some(&base.props), None);
                p.len()
            } else {
                0
            };
        let payload = body.len() - fixed;
        let mut cuts: Vec<usize> = vec![1, 2, 3, payload / 2, payload - 1, payload];
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts {
            // Will properties (v5) sit in the payload: cutting them out makes
            // their Property Length overrun (another rule), so only cut into
            // the fields after them.
            if let (true, Some(will)) = (base.v5(), &base.will) {
                let will_props = will.0.len() + 1;
                let client_id = 2 + base.client_id.len();
                if cut > payload - client_id - will_props {
                    continue;
                }
            }
            let len = body.len() - cut;
            let mut packet = vec![0x10];
            put_var_int(&mut packet, len as u32);
            packet.extend_from_slice(&body[..len]);
            add(
                "Truncated",
                format!("{base_name}: remaining length {cut} short"),
                packet,
                Some(base.level),
            );
        }
    }
    for len in [0usize, 1, 3, 6] {
        let body = v311.body();
        let mut packet = vec![0x10];
        put_var_int(&mut packet, len as u32);
        packet.extend_from_slice(&body[..len]);
        add(
            "Truncated",
            format!("v4 remaining length {len}: in the protocol name"),
            packet,
            None,
        );
    }

    // TrailingBytes.
    for (base_name, base) in &bases {
        for junk in [&[0u8][..], &[0x10, 0x00], b"PUBLISH?"] {
            add(
                "TrailingBytes",
                format!("{base_name}: {} trailing bytes", junk.len()),
                base.with(|s| s.trailing = junk.to_vec()).encode(),
                Some(base.level),
            );
        }
    }

    // InvalidUtf8 and NullCharacter, in every string field.
    let bad_utf8: [(&str, &[u8]); 8] = [
        ("0xff", &[b'a', 0xff]),
        ("overlong NUL", &[0xc0, 0x80]),
        ("overlong slash", &[0xe0, 0x80, 0xaf]),
        ("surrogate", &[b'x', 0xed, 0xa0, 0x80]),
        ("above U+10FFFF", &[0xf4, 0x90, 0x80, 0x80]),
        ("cut sequence", &[b'a', 0xe2, 0x82]),
        ("lone continuation", &[0x80]),
        ("0xfe", &[0xfe, b'z']),
    ];
    let nul: [(&str, &[u8]); 3] = [
        ("NUL alone", &[0]),
        ("NUL inside", b"a\0b"),
        ("NUL at end", b"dev\0"),
    ];
    for (rule, list) in [("InvalidUtf8", &bad_utf8[..]), ("NullCharacter", &nul[..])] {
        for (what, bytes) in list {
            // 3.1 excludes U+0000 from topics only.
            let levels: &[u8] = if rule == "NullCharacter" {
                &[4, 5]
            } else {
                &[3, 4, 5]
            };
            for &level in levels {
                add(
                    rule,
                    format!("v{level} client id {what}"),
                    Spec::new(level, "x")
                        .with(|s| s.client_id = bytes.to_vec())
                        .encode(),
                    Some(level),
                );
            }
            add(
                rule,
                format!("v4 username {what}"),
                v311.with(|s| s.username = Some(bytes.to_vec())).encode(),
                Some(4),
            );
            add(
                rule,
                format!("v3 will topic {what}"),
                Spec::new(3, "x")
                    .with(|s| s.will = Some((Vec::new(), None, bytes.to_vec(), b"p".to_vec())))
                    .encode(),
                Some(3),
            );
            add(
                rule,
                format!("v5 will topic {what}"),
                v5.with(|s| s.will = Some((Vec::new(), None, bytes.to_vec(), b"p".to_vec())))
                    .encode(),
                Some(5),
            );
            let mut user_prop = vec![0x26];
            put_binary(&mut user_prop, bytes);
            put_binary(&mut user_prop, b"v");
            add(
                rule,
                format!("v5 user property name {what}"),
                v5.with(|s| s.props = user_prop).encode(),
                Some(5),
            );
            let mut content_type = vec![0x03];
            put_binary(&mut content_type, bytes);
            let mut response_topic = vec![0x08];
            put_binary(&mut response_topic, bytes);
            add(
                rule,
                format!("v5 will response topic {what}"),
                v5.with(|s| s.will = Some((response_topic, None, b"t".to_vec(), b"p".to_vec())))
                    .encode(),
                Some(5),
            );
            add(
                rule,
                format!("v5 will content type {what}"),
                v5.with(|s| s.will = Some((content_type, None, b"t".to_vec(), b"p".to_vec())))
                    .encode(),
                Some(5),
            );
        }
    }

    // Empty ClientIds: 3.1 always, 3.1.1 without clean session.
    for (what, flags) in [("clean", 0x02u8), ("no clean", 0x00)] {
        add(
            "EmptyClientId",
            format!("v3 empty client id, {what}"),
            Spec::new(3, "").with(|s| s.flags = Some(flags)).encode(),
            Some(3),
        );
    }
    add(
        "EmptyClientId",
        "v3 empty client id with username".into(),
        Spec::new(3, "")
            .with(|s| s.username = Some(b"u".to_vec()))
            .encode(),
        Some(3),
    );
    add(
        "EmptyClientIdWithoutCleanSession",
        "v4 empty client id, no clean session".into(),
        Spec::new(4, "").with(|s| s.flags = Some(0x00)).encode(),
        Some(4),
    );
    add(
        "EmptyClientIdWithoutCleanSession",
        "v4 empty client id, no clean session, username".into(),
        Spec::new(4, "")
            .with(|s| {
                s.username = Some(b"u".to_vec());
                s.flags = Some(0x80);
            })
            .encode(),
        Some(4),
    );

    // InvalidWillTopic.
    for topic in [&b""[..], b"+", b"#", b"a/+", b"a/#", b"+/b", b"a/b#"] {
        for level in [3u8, 4, 5] {
            add(
                "InvalidWillTopic",
                format!("v{level} will topic {:?}", String::from_utf8_lossy(topic)),
                Spec::new(level, "device-7")
                    .with(|s| s.will = Some((Vec::new(), None, topic.to_vec(), b"p".to_vec())))
                    .encode(),
                Some(level),
            );
        }
    }

    // MQTT 5 property rules.
    let will_v5 = |props: Vec<u8>, len: Option<Vec<u8>>| {
        v5.with(|s| s.will = Some((props, len, b"w".to_vec(), b"p".to_vec())))
            .encode()
    };
    for len in [
        &[0x80u8, 0x80, 0x80, 0x80][..],
        &[0xff, 0xff, 0xff, 0xff],
        &[0x81, 0x81, 0x81, 0x81, 0x01],
    ] {
        add(
            "PropertyLengthTooLong",
            format!("property length {len:02x?}"),
            v5.with(|s| s.props_len = Some(len.to_vec())).encode(),
            Some(5),
        );
        add(
            "PropertyLengthTooLong",
            format!("will property length {len:02x?}"),
            will_v5(Vec::new(), Some(len.to_vec())),
            Some(5),
        );
    }
    for len in [12usize, 13, 100, 1000, 2_000_000] {
        add(
            "PropertyLengthOutOfBounds",
            format!("property length {len}"),
            v5.with(|s| {
                s.props_len = Some({
                    let mut v = Vec::new();
                    put_var_int(&mut v, len as u32);
                    v
                })
            })
            .encode(),
            Some(5),
        );
        add(
            "PropertyLengthOutOfBounds",
            format!("will property length {len}"),
            will_v5(
                Vec::new(),
                Some({
                    let mut v = Vec::new();
                    put_var_int(&mut v, len as u32);
                    v
                }),
            ),
            Some(5),
        );
    }
    for (what, props) in [
        ("session expiry 2 of 4 bytes", &[0x11u8, 0, 0][..]),
        ("receive maximum 1 of 2 bytes", &[0x21, 0]),
        ("maximum packet size 3 of 4", &[0x27, 0, 0, 1]),
        ("auth method string overruns", &[0x15, 0, 5, b'a']),
        ("user property without value", &[0x26, 0, 1, b'k']),
        ("user property length byte", &[0x26, 0]),
        ("request problem info no value", &[0x17]),
    ] {
        add(
            "PropertyTruncated",
            format!("connect {what}"),
            v5.with(|s| s.props = props.to_vec()).encode(),
            Some(5),
        );
    }
    for (what, props) in [
        ("will delay 2 of 4 bytes", &[0x18u8, 0, 0][..]),
        ("correlation data overruns", &[0x09, 0, 9, 1, 2]),
        ("payload format no value", &[0x01]),
    ] {
        add(
            "PropertyTruncated",
            format!("will {what}"),
            will_v5(props.to_vec(), None),
            Some(5),
        );
    }
    for id in [
        0x00u8, 0x01, 0x02, 0x03, 0x08, 0x09, 0x12, 0x13, 0x18, 0x1a, 0x1f, 0x23, 0x24, 0x25, 0x28,
        0x2a, 0x7f, 0x80, 0xff,
    ] {
        add(
            "UnknownConnectProperty",
            format!("connect property {id:#04x}"),
            v5.with(|s| s.props = vec![id, 0, 0, 0, 0]).encode(),
            Some(5),
        );
    }
    for id in [
        0x00u8, 0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x27, 0x12, 0x7f, 0xff,
    ] {
        add(
            "UnknownWillProperty",
            format!("will property {id:#04x}"),
            will_v5(vec![id, 0, 0, 0, 0], None),
            Some(5),
        );
    }
    for (what, prop) in [
        ("session expiry", &[0x11u8, 0, 0, 0, 1][..]),
        ("receive maximum", &[0x21, 0, 5]),
        ("maximum packet size", &[0x27, 0, 0, 1, 0]),
        ("topic alias maximum", &[0x22, 0, 1]),
        ("request problem info", &[0x17, 1]),
        ("request response info", &[0x19, 0]),
        ("auth method", &[0x15, 0, 1, b'm']),
    ] {
        add(
            "DuplicateProperty",
            format!("connect {what} twice"),
            v5.with(|s| s.props = [prop, &[0x26, 0, 1, b'k', 0, 0], prop].concat())
                .encode(),
            Some(5),
        );
    }
    add(
        "DuplicateProperty",
        "connect auth data twice".into(),
        v5.with(|s| s.props = vec![0x15, 0, 1, b'm', 0x16, 0, 1, 7, 0x16, 0, 0])
            .encode(),
        Some(5),
    );
    for (what, prop) in [
        ("payload format", &[0x01u8, 1][..]),
        ("message expiry", &[0x02, 0, 0, 0, 9]),
        ("content type", &[0x03, 0, 1, b't']),
        ("response topic", &[0x08, 0, 1, b'r']),
        ("correlation data", &[0x09, 0, 1, 1]),
        ("will delay", &[0x18, 0, 0, 0, 1]),
    ] {
        add(
            "DuplicateProperty",
            format!("will {what} twice"),
            will_v5([prop, prop].concat(), None),
            Some(5),
        );
    }
    for before in [
        &[][..],
        &[0x11u8, 0, 0, 0, 1][..],
        &[0x26, 0, 1, b'k', 0, 1, b'v'],
    ] {
        add(
            "ReceiveMaximumZero",
            format!("receive maximum 0 after {} bytes", before.len()),
            v5.with(|s| s.props = [before, &[0x21, 0, 0]].concat())
                .encode(),
            Some(5),
        );
        add(
            "MaximumPacketSizeZero",
            format!("maximum packet size 0 after {} bytes", before.len()),
            v5.with(|s| s.props = [before, &[0x27, 0, 0, 0, 0]].concat())
                .encode(),
            Some(5),
        );
    }
    for (id, value) in [
        (0x17u8, 2u8),
        (0x17, 0xff),
        (0x19, 2),
        (0x19, 7),
        (0x19, 0x80),
    ] {
        add(
            "InvalidRequestFlag",
            format!("property {id:#04x} = {value}"),
            v5.with(|s| s.props = vec![id, value]).encode(),
            Some(5),
        );
    }
    for topic in [&b""[..], b"+", b"#", b"a/#", b"a/+/b", b"reply#"] {
        let mut prop = vec![0x08];
        put_binary(&mut prop, topic);
        add(
            "InvalidResponseTopic",
            format!("will response topic {:?}", String::from_utf8_lossy(topic)),
            will_v5(prop, None),
            Some(5),
        );
    }
    for value in [2u8, 3, 0x7f, 0xff] {
        add(
            "InvalidPayloadFormat",
            format!("will payload format {value}"),
            will_v5(vec![0x01, value], None),
            Some(5),
        );
    }
    for (what, props) in [
        ("3 bytes", &[0x16u8, 0, 3, 1, 2, 3][..]),
        ("empty", &[0x16, 0, 0]),
        (
            "after user property",
            &[0x26, 0, 1, b'k', 0, 1, b'v', 0x16, 0, 1, 9],
        ),
        ("before session expiry", &[0x16, 0, 1, 9, 0x11, 0, 0, 0, 1]),
    ] {
        add(
            "AuthDataWithoutMethod",
            format!("authentication data {what} without method"),
            v5.with(|s| s.props = props.to_vec()).encode(),
            Some(5),
        );
    }
    out
}

/// The valid packets the generator starts from, as sent by a device.
pub fn valid_bases() -> Vec<(String, Vec<u8>)> {
    bases()
        .into_iter()
        .map(|(name, spec)| (name, spec.encode()))
        .collect()
}

/// `InvalidReason` variant name → its error-log message.
pub fn parser_reasons() -> BTreeMap<String, String> {
    InvalidReason::ALL
        .iter()
        .map(|reason| (format!("{reason:?}"), reason.message().to_owned()))
        .collect()
}

/// A small deterministic PRNG (xorshift64*), so failures can be replayed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Splits `bytes` at 1 to 4 random points (no empty fragment).
pub fn fragments(bytes: &[u8], rng: &mut Rng) -> Vec<Vec<u8>> {
    if bytes.len() < 2 {
        return vec![bytes.to_vec()];
    }
    let mut cuts: Vec<usize> = (0..1 + rng.below(4))
        .map(|_| 1 + rng.below(bytes.len() - 1))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut at = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        out.push(bytes[at..cut].to_vec());
        at = cut;
    }
    out
}
