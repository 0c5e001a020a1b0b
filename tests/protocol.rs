//! Protocol coverage: every MQTT version, wills, v5 properties, unusual
//! ClientIds and a CONNECT that arrives one byte at a time.

mod support;

use std::time::Duration;

use mqtt_core::packet::encode::ConnectBuilder;
use mqtt_core::packet::ProtocolLevel;
use support::client::{connect_packet, Connect};
use support::{pki, Deployment, Listener, MqttCli, RawClient, ReadEnd, Version};

fn deployment() -> Deployment {
    Deployment::start(&[
        Listener::plain("plain", "mqtt_preread on;"),
        Listener::tls("tls", "optional", "mqtt_preread on;"),
    ])
}

/// The broker accepted: a CONNACK with reason code 0, connection open.
fn assert_accepted(reply: &ReadEnd) {
    let bytes = reply.bytes();
    assert!(
        matches!(reply, ReadEnd::Open(_)),
        "connection closed: {reply:?}"
    );
    assert!(
        bytes.len() >= 4 && bytes[0] == 0x20 && bytes[3] == 0x00,
        "no success CONNACK: {reply:?}"
    );
}

#[test]
fn every_protocol_version_is_read_and_proxied() {
    let d = deployment();
    for version in Version::ALL {
        let id = format!("proto-{}", version.number());
        let r = MqttCli::new(d.port("plain"), version)
            .id(&id)
            .publish("t", "m");
        assert!(r.success(), "{version:?}: {r:?}");
        let e = d.nginx.wait_access_for(&id);
        assert_eq!(
            (e.status.as_str(), e.protocol_version.as_str()),
            ("200", version.number()),
            "{e:?}"
        );
        assert!(d.broker_at(&e.upstream_addr).saw_client(&id));
    }
}

#[test]
fn will_and_v5_user_properties() {
    let d = deployment();
    for version in [Version::V311, Version::V5] {
        let id = format!("will-{}", version.number());
        let mut cli = MqttCli::new(d.port("plain"), version).id(&id).args(&[
            "--will-topic",
            "wills/x",
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
        ]);
        if version == Version::V5 {
            cli = cli.args(&["-D", "connect", "user-property", "site", "plant-7"]);
            cli = cli.args(&["-D", "connect", "session-expiry-interval", "30"]);
        }
        let r = cli.publish("t", "m");
        assert!(r.success(), "{r:?}");
        let e = d.nginx.wait_access_for(&id);
        assert_eq!(e.status, "200", "{e:?}");
    }
    // The same through the raw client, with several user properties.
    let mut connect = Connect::new(Version::V5, "will-raw");
    connect.will = Some(("wills/raw", "bye"));
    connect.user_properties = vec![("k1", "v1"), ("k2", "v2")];
    let mut client = RawClient::plain(d.port("plain"));
    client.send(&connect.encode()).expect("send");
    assert_accepted(&client.read_connack(Duration::from_secs(5)));
}

#[test]
fn client_id_of_200_bytes() {
    let d = deployment();
    let id: String = (0..200)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    for version in [Version::V311, Version::V5] {
        let r = MqttCli::new(d.port("plain"), version)
            .id(&id)
            .publish("t", "m");
        assert!(r.success(), "{r:?}");
    }
    let entries: Vec<_> = d
        .nginx
        .access_entries()
        .into_iter()
        .filter(|e| e.client_id == id)
        .collect();
    let entries = if entries.len() == 2 {
        entries
    } else {
        support::wait_until(support::DEADLINE, "two 200-byte ClientId sessions", || {
            let v: Vec<_> = d
                .nginx
                .access_entries()
                .into_iter()
                .filter(|e| e.client_id == id)
                .collect();
            (v.len() == 2).then_some(v)
        })
    };
    assert!(entries.iter().all(|e| e.status == "200"), "{entries:?}");
    assert_eq!(entries[0].upstream_addr, entries[1].upstream_addr);
}

#[test]
fn empty_client_id_is_proxied() {
    let d = deployment();
    for version in [Version::V311, Version::V5] {
        let mut client = RawClient::plain(d.port("plain"));
        let port = client.session();
        client.send(&connect_packet(version, "")).expect("send");
        let reply = client.read_connack(Duration::from_secs(5));
        assert_accepted(&reply);
        drop(client);
        let e = d.nginx.wait_access_session(port);
        assert_eq!(e.client_id, "", "{e:?}");
        assert_eq!(e.outcome(), ("200", ""), "{e:?}");
        assert_eq!(e.protocol_version, version.number());
    }
}

#[test]
fn connect_delivered_one_byte_at_a_time() {
    let d = deployment();
    let pki = pki();
    for tls in [false, true] {
        for version in [Version::V311, Version::V5] {
            let id = format!(
                "slow-{}-{}",
                if tls { "tls" } else { "tcp" },
                version.number()
            );
            let mut client = if tls {
                RawClient::tls(d.port("tls"), pki, None)
            } else {
                RawClient::plain(d.port("plain"))
            };
            let mut connect = Connect::new(version, &id);
            connect.username = Some("bytewise");
            client
                .send_bytewise(&connect.encode(), Duration::from_millis(5))
                .expect("send");
            assert_accepted(&client.read_connack(Duration::from_secs(5)));
            drop(client);
            let e = d.nginx.wait_access_for(&id);
            assert_eq!(
                (e.status.as_str(), e.username.as_str()),
                ("200", "bytewise"),
                "{e:?}"
            );
        }
    }
}

/// What MQTT 3.1 leaves unused is not refused: the flags of the fixed header
/// (DUP, QoS, RETAIN), Connect Flags bit 0, Will QoS and Retain without a
/// Will, and a flagged User Name the packet ends before. A real broker takes
/// each such 3.1 CONNECT; the same bytes at level 4 break 3.1.1 rules and
/// are refused without reaching one.
#[test]
fn mqtt_31_unused_bits_are_accepted_and_311_refuses_them() {
    let d = deployment();
    // (what, first byte, Connect Flags; clean session is 0x02)
    let shapes: [(&str, u8, u8); 5] = [
        ("reserved-flag", 0x10, 0x03),
        ("header-flags", 0x1B, 0x02),
        ("both", 0x1F, 0x03),
        // Will Retain and QoS 1. (QoS 3 without a Will is disregarded by
        // 3.1 too, and passed on, but mosquitto refuses it.)
        ("will-bits", 0x10, 0x2A),
        ("no-user-name", 0x10, 0x82),
    ];
    for (what, first_byte, flags) in shapes {
        for level in [ProtocolLevel::V31, ProtocolLevel::V311] {
            let id = format!("v{}-{what}", level.as_u8());
            let bytes = ConnectBuilder {
                first_byte,
                flags_override: Some(flags),
                ..ConnectBuilder::new(level, id.as_bytes())
            }
            .encode();
            let mut client = RawClient::plain(d.port("plain"));
            let session = client.session();
            client.send(&bytes).expect("send");
            if level == ProtocolLevel::V31 {
                assert_accepted(&client.read_connack(Duration::from_secs(5)));
                drop(client);
                let e = d.nginx.wait_access_session(session);
                assert_eq!(
                    (
                        e.outcome(),
                        e.protocol_version.as_str(),
                        e.client_id.as_str()
                    ),
                    (("200", ""), "3", id.as_str()),
                    "{e:?}"
                );
                assert!(d.broker_at(&e.upstream_addr).saw_client(&id), "{id}");
            } else {
                // 3.1.1 has no CONNACK code for a malformed packet: a close.
                let reply = client.read_to_close(Duration::from_secs(5));
                assert!(
                    reply.is_closed() && reply.bytes().is_empty(),
                    "{id}: {reply:?}"
                );
                let e = d.nginx.wait_access_session(session);
                assert_eq!(e.outcome(), ("400", "malformed"), "{id}: {e:?}");
                assert_eq!(e.upstream_addr, "", "{id}: {e:?}");
            }
        }
    }
}
