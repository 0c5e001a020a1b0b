//! The CONNECT rewrite: the output is the packet the encoder makes from the
//! device's fields with exactly the configured ones changed.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::connect_of;
use super::props::case;
use crate::packet::encode::{ConnectBuilder, PropValue};
use crate::packet::rewrite::{plan_rewrite, ConnectRewrite, FieldEdit, RewriteError, RewriteField};
use crate::packet::{parse_connect, property_id, Parsed, ProtocolLevel};

const LIMIT: usize = 64 * 1024;

/// Rewrites `packet`; the error if the plan fails.
fn rewritten(packet: &[u8], rewrite: &ConnectRewrite<'_>) -> Result<Vec<u8>, RewriteError> {
    let connect = connect_of(packet);
    let plan = plan_rewrite(packet, &connect, rewrite, LIMIT)?;
    let mut out = vec![0u8; plan.len()];
    assert_eq!(plan.write(&mut out), plan.len());
    Ok(out)
}

fn device(level: ProtocolLevel) -> ConnectBuilder<'static> {
    ConnectBuilder::new(level, b"thing001")
        .username(b"thing002")
        .password(b"device-secret")
}

#[test]
fn username_replaced_and_password_removed() {
    for level in ProtocolLevel::ALL {
        let rewrite = ConnectRewrite {
            username: FieldEdit::Set(b"thing001"),
            password: FieldEdit::Remove,
            ..ConnectRewrite::NONE
        };
        let out = rewritten(&device(level).encode(), &rewrite).unwrap();
        let mut expected = device(level);
        expected.username = Some(b"thing001");
        expected.password = None;
        assert_eq!(out, expected.encode(), "{level:?}");
    }
}

#[test]
fn absent_fields_are_added_with_their_flags() {
    for level in ProtocolLevel::ALL {
        let bare = ConnectBuilder::new(level, b"thing001");
        let rewrite = ConnectRewrite {
            username: FieldEdit::Set(b"gateway"),
            password: FieldEdit::Set(b"token"),
            ..ConnectRewrite::NONE
        };
        let out = rewritten(&bare.encode(), &rewrite).unwrap();
        assert_eq!(
            out,
            bare.clone()
                .username(b"gateway")
                .password(b"token")
                .encode()
        );
        let c = connect_of(&out);
        assert!(c.flags.username() && c.flags.password());
    }
}

/// 3.1 and 3.1.1 allow no password without a username: removing the
/// username takes the password with it; MQTT 5 keeps it.
#[test]
fn removing_the_username_removes_a_3x_password() {
    let rewrite = ConnectRewrite {
        username: FieldEdit::Remove,
        ..ConnectRewrite::NONE
    };
    for level in [ProtocolLevel::V31, ProtocolLevel::V311] {
        let packet = device(level).encode();
        let connect = connect_of(&packet);
        let plan = plan_rewrite(&packet, &connect, &rewrite, LIMIT).unwrap();
        assert!(plan.password_dropped);
        let out = rewritten(&packet, &rewrite).unwrap();
        assert_eq!(out, ConnectBuilder::new(level, b"thing001").encode());
    }
    let out = rewritten(&device(ProtocolLevel::V5).encode(), &rewrite).unwrap();
    let c = connect_of(&out);
    assert!(!c.flags.username() && c.flags.password());
}

/// A 3.1 CONNECT may end before its flagged User Name or Password: the
/// rewrite reads what is there, and its flags then say what it writes.
#[test]
fn absent_v31_fields_behind_their_flags() {
    let both_absent = ConnectBuilder {
        flags_override: Some(0xC2),
        ..ConnectBuilder::new(ProtocolLevel::V31, b"thing001")
    };
    let password_absent = ConnectBuilder {
        flags_override: Some(0xC2),
        ..ConnectBuilder::new(ProtocolLevel::V31, b"thing001").username(b"u")
    };
    let kept = rewritten(&both_absent.encode(), &ConnectRewrite::NONE).unwrap();
    assert_eq!(
        kept,
        ConnectBuilder::new(ProtocolLevel::V31, b"thing001").encode()
    );
    let kept = rewritten(&password_absent.encode(), &ConnectRewrite::NONE).unwrap();
    assert_eq!(
        kept,
        ConnectBuilder::new(ProtocolLevel::V31, b"thing001")
            .username(b"u")
            .encode()
    );
    let rewrite = ConnectRewrite {
        username: FieldEdit::Set(b"gateway"),
        password: FieldEdit::Set(b"token"),
        ..ConnectRewrite::NONE
    };
    let out = rewritten(&both_absent.encode(), &rewrite).unwrap();
    assert_eq!(
        out,
        ConnectBuilder::new(ProtocolLevel::V31, b"thing001")
            .username(b"gateway")
            .password(b"token")
            .encode()
    );
}

#[test]
fn user_properties_are_appended_in_mqtt_5_only() {
    let user: &[(&[u8], &[u8])] = &[(b"x-cert-fingerprint", b"ab:cd"), (b"x-gw", b"1")];
    let rewrite = ConnectRewrite {
        user_properties: user,
        ..ConnectRewrite::NONE
    };
    let device_v5 = device(ProtocolLevel::V5)
        .property(property_id::SESSION_EXPIRY_INTERVAL, PropValue::U32(60))
        .property(property_id::USER_PROPERTY, PropValue::Pair(b"a", b"b"));
    let out = rewritten(&device_v5.encode(), &rewrite).unwrap();
    let mut expected = device_v5.clone();
    for (k, v) in user {
        expected = expected.property(property_id::USER_PROPERTY, PropValue::Pair(k, v));
    }
    assert_eq!(out, expected.encode());
    for level in [ProtocolLevel::V31, ProtocolLevel::V311] {
        let packet = device(level).encode();
        let connect = connect_of(&packet);
        let plan = plan_rewrite(&packet, &connect, &rewrite, LIMIT).unwrap();
        assert!(plan.user_properties_dropped);
        assert_eq!(rewritten(&packet, &rewrite).unwrap(), packet);
    }
}

#[test]
fn values_a_device_could_not_send_fail_the_rewrite() {
    let packet = device(ProtocolLevel::V311).encode();
    let failures: [(ConnectRewrite<'_>, RewriteError); 4] = [
        (
            ConnectRewrite {
                username: FieldEdit::Set(b"\xff\xfe"),
                ..ConnectRewrite::NONE
            },
            RewriteError::NotUtf8(RewriteField::Username),
        ),
        (
            ConnectRewrite {
                client_id: Some(b"nul\0byte"),
                ..ConnectRewrite::NONE
            },
            RewriteError::NotUtf8(RewriteField::ClientId),
        ),
        (
            ConnectRewrite {
                username: FieldEdit::Set("grüße\0".as_bytes()),
                ..ConnectRewrite::NONE
            },
            RewriteError::NotUtf8(RewriteField::Username),
        ),
        (
            ConnectRewrite {
                password: FieldEdit::Set(&[b'p'; 65_536]),
                ..ConnectRewrite::NONE
            },
            RewriteError::TooLong(RewriteField::Password),
        ),
    ];
    for (rewrite, expected) in &failures {
        assert_eq!(rewritten(&packet, rewrite), Err(*expected));
    }
    // Well-formed UTF-8 beyond ASCII, and every ASCII character but U+0000.
    let ascii: Vec<u8> = (1..=0x7f).collect();
    for value in ["grüße, 東京".as_bytes(), &ascii] {
        let rewrite = ConnectRewrite {
            username: FieldEdit::Set(value),
            ..ConnectRewrite::NONE
        };
        assert!(rewritten(&packet, &rewrite).is_ok());
    }
    // An empty ClientId: 3.1.1 with Clean Session may have one, 3.1 never.
    let empty = ConnectRewrite {
        client_id: Some(b""),
        ..ConnectRewrite::NONE
    };
    assert!(rewritten(&packet, &empty).is_ok());
    let v31 = device(ProtocolLevel::V31).encode();
    assert_eq!(rewritten(&v31, &empty), Err(RewriteError::EmptyClientId));
}

/// The rewritten packet must fit the limit (`mqtt_buffers`).
#[test]
fn a_rewrite_larger_than_the_limit_fails() {
    let packet = device(ProtocolLevel::V311).encode();
    let connect = connect_of(&packet);
    let longer = ConnectRewrite {
        username: FieldEdit::Set(&[b'u'; 100]),
        ..ConnectRewrite::NONE
    };
    let len = plan_rewrite(&packet, &connect, &longer, LIMIT)
        .unwrap()
        .len();
    assert_eq!(
        plan_rewrite(&packet, &connect, &longer, len).unwrap().len(),
        len
    );
    assert_eq!(
        plan_rewrite(&packet, &connect, &longer, len - 1).map(|p| p.len()),
        Err(RewriteError::TooLarge)
    );
}

#[test]
fn another_packet_is_not_taken_for_the_parsed_one() {
    let packet = device(ProtocolLevel::V311).encode();
    let other = ConnectBuilder::new(ProtocolLevel::V311, b"thing999")
        .username(b"thing002")
        .password(b"device-secret")
        .encode();
    let connect = connect_of(&other);
    assert_eq!(
        plan_rewrite(&packet, &connect, &ConnectRewrite::NONE, LIMIT).map(|p| p.len()),
        Err(RewriteError::NotTheParsedPacket)
    );
}

/// A rewrite's edits, as owned values for proptest: `None` keeps a field,
/// `Some(None)` removes it.
#[derive(Clone, Debug)]
struct Edits {
    client_id: Option<String>,
    username: Option<Option<Vec<u8>>>,
    password: Option<Option<Vec<u8>>>,
    user: Vec<(String, String)>,
}

fn edits() -> impl Strategy<Value = Edits> {
    let text = "[^\\x00]{0,20}".prop_map(String::into_bytes);
    (
        option::of("[a-zA-Z0-9/_-]{1,30}"),
        option::of(option::of(text)),
        option::of(option::of(vec(any::<u8>(), 0..20))),
        vec(("[a-z-]{1,12}", "[^\\x00]{0,16}"), 0..3),
    )
        .prop_map(|(client_id, username, password, user)| Edits {
            client_id,
            username,
            password,
            user,
        })
}

fn edit(e: &Option<Option<Vec<u8>>>) -> FieldEdit<'_> {
    match e {
        None => FieldEdit::Keep,
        Some(None) => FieldEdit::Remove,
        Some(Some(v)) => FieldEdit::Set(v),
    }
}

proptest! {
    /// For any valid CONNECT and any rewrite, the output is exactly the
    /// packet the encoder makes with those fields changed (a 3.x password
    /// gone with its username, User Properties only in MQTT 5), and it
    /// parses as a valid CONNECT.
    #[test]
    fn rewrite_changes_exactly_the_configured_fields(case in case(), edits in edits()) {
        let packet = case.builder().encode();
        let user: Vec<(&[u8], &[u8])> =
            edits.user.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
        let rewrite = ConnectRewrite {
            client_id: edits.client_id.as_deref().map(str::as_bytes),
            username: edit(&edits.username),
            password: edit(&edits.password),
            user_properties: &user,
        };
        let out = rewritten(&packet, &rewrite).unwrap();

        let mut expected = case.builder();
        if let Some(id) = &edits.client_id {
            expected.client_id = id.as_bytes();
        }
        if let Some(username) = &edits.username {
            expected.username = username.as_deref();
        }
        if let Some(password) = &edits.password {
            expected.password = password.as_deref();
        }
        let v5 = case.level == ProtocolLevel::V5;
        if !v5 && expected.username.is_none() {
            expected.password = None;
        }
        // The Connect Flags bits 3.1 leaves unused are copied as they came;
        // the User Name and Password Flags follow the fields.
        if case.v31_unused_bits != 0 {
            expected.flags_override = None;
            expected.flags_override = Some(expected.flags() | case.v31_unused_bits);
        }
        if v5 {
            for (k, v) in &user {
                expected.properties.push((property_id::USER_PROPERTY, PropValue::Pair(k, v)));
            }
        }
        prop_assert_eq!(&out, &expected.encode());
        prop_assert!(matches!(parse_connect(&out, LIMIT), Parsed::Connect(_)));
    }
}

mod boundary {
    use crate::packet::boundary::PacketBoundary;
    use proptest::prelude::*;

    fn packet(kind: u8, body_len: usize) -> Vec<u8> {
        let mut out = vec![kind];
        crate::packet::encode::put_var_int(&mut out, body_len as u32);
        out.extend(std::iter::repeat_n(0xAB, body_len));
        out
    }

    #[test]
    fn follows_packets_and_loses_a_bad_length() {
        let mut b = PacketBoundary::default();
        b.feed(&[0xD0, 0x00]);
        assert!(b.is_between());
        b.feed(&[0x30]);
        assert!(!b.is_between());
        b.feed(&[0x80, 0x01]);
        assert_eq!(b, PacketBoundary::Body { left: 128 });
        b.feed(&[0; 128]);
        assert!(b.is_between());
        b.feed(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(b, PacketBoundary::Lost);
        b.feed(&[0; 10]);
        assert_eq!(b, PacketBoundary::Lost);
    }

    proptest! {
        /// However a stream of whole packets is cut into reads, it ends
        /// between two packets, and nowhere inside one.
        #[test]
        fn any_split_of_whole_packets(
            lens in proptest::collection::vec(0usize..20_000, 1..8),
            cuts in proptest::collection::vec(1usize..5000, 1..50),
        ) {
            let packets: Vec<Vec<u8>> = lens.iter().map(|&n| packet(0x30, n)).collect();
            let ends: Vec<usize> = packets
                .iter()
                .scan(0, |at, p| {
                    *at += p.len();
                    Some(*at)
                })
                .collect();
            let stream = packets.concat();
            let mut b = PacketBoundary::default();
            let (mut at, mut cut) = (0, cuts.iter().cycle());
            while at < stream.len() {
                let n = (*cut.next().unwrap()).min(stream.len() - at);
                b.feed(&stream[at..at + n]);
                at += n;
                prop_assert_eq!(b.is_between(), ends.contains(&at), "at {}", at);
            }
        }
    }
}
