//! Hostile input: what is not a valid CONNECT never reaches a broker
//! (unless `mqtt_reject_malformed off` says so), and never holds nginx up.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_core::packet::encode::{put_binary, put_var_int};
use support::client::{connect_packet, Connect};
use support::{pki, Deployment, Listener, MqttCli, RawClient, ReadEnd, SessionKey, Version};

const WAIT: Duration = Duration::from_secs(5);

/// First packets that are not a valid CONNECT, each with a name.
fn malformed_v3() -> Vec<(&'static str, Vec<u8>)> {
    let valid = connect_packet(Version::V311, "abc");
    // v3.1.1 layout: 10 <len> 00 04 'MQTT' 04 <flags> ...
    let mut reserved_flag = valid.clone();
    reserved_flag[9] |= 0x01;
    let mut bad_fixed_flags = valid.clone();
    bad_fixed_flags[0] = 0x11;
    let mut id_overruns = valid.clone();
    let id_len = valid.len() - 5;
    id_overruns[id_len..id_len + 2].copy_from_slice(&[0x00, 0x7f]);
    let mut bad_name = Vec::new();
    put_binary(&mut bad_name, b"MQTX");
    bad_name.extend_from_slice(&[4, 2, 0, 60, 0, 1, b'x']);
    bad_name.splice(0..0, [0x10, bad_name.len() as u8]);
    vec![
        (
            "publish first",
            vec![0x30, 0x05, 0x00, 0x01, b't', b'h', b'i'],
        ),
        ("reserved connect flag", reserved_flag),
        ("fixed header flags", bad_fixed_flags),
        ("client id overruns packet", id_overruns),
        ("protocol name", bad_name),
        (
            "five-byte remaining length",
            vec![0x10, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ),
    ]
}

fn hostile_deployment() -> Deployment {
    Deployment::start(&[
        Listener::plain("default", "mqtt_preread on;"),
        Listener::plain(
            "lenient",
            "mqtt_preread on;\n    mqtt_reject_malformed off;",
        ),
        Listener::plain("small", "mqtt_preread on;\n    preread_buffer_size 1k;"),
        Listener::plain("stall", "mqtt_preread on;\n    preread_timeout 2s;"),
        Listener::tls("tls", "optional", "mqtt_preread on;"),
    ])
}

/// Sends `bytes` and reads until the close (or `WAIT`).
fn send_and_read(port: u16, bytes: &[u8]) -> (ReadEnd, SessionKey, Duration) {
    let mut client = RawClient::plain(port);
    let local = client.session();
    let started = Instant::now();
    client.send(bytes).expect("send");
    let reply = client.read_to_close(WAIT);
    (reply, local, started.elapsed())
}

#[test]
fn malformed_first_packets_are_rejected_with_400() {
    let d = hostile_deployment();
    for (name, bytes) in malformed_v3() {
        let (reply, local, _) = send_and_read(d.port("default"), &bytes);
        // MQTT 3.x has no CONNACK for a malformed CONNECT: just the close.
        assert_eq!(reply, ReadEnd::Closed(Vec::new()), "{name}");
        let e = d.nginx.wait_access_session(local);
        assert_eq!(e.outcome(), ("400", "malformed"), "{name}: {e:?}");
        assert_eq!(e.upstream_addr, "", "{name} reached a broker: {e:?}");
    }

    // MQTT 5 gets CONNACK 0x81 (Malformed Packet): a bad property identifier.
    let mut v5 = Connect::new(Version::V5, "abc").encode();
    let props_at = 2 + 6 + 1 + 1 + 2; // header, name, level, flags, keep alive
    v5.splice(props_at..props_at + 1, [0x02, 0x7f, 0x00]);
    v5[1] += 2;
    let (reply, local, _) = send_and_read(d.port("default"), &v5);
    let b = reply.bytes();
    assert!(
        b.len() >= 4 && b[0] == 0x20 && b[3] == 0x81 && reply.is_closed(),
        "{reply:?}"
    );
    assert_eq!(d.nginx.wait_access_session(local).status, "400");

    // An unknown protocol level: "unacceptable protocol version" in 3.1.1 form.
    let mut v6 = connect_packet(Version::V311, "abc");
    v6[8] = 6;
    let (reply, local, _) = send_and_read(d.port("default"), &v6);
    assert_eq!(reply, ReadEnd::Closed(vec![0x20, 0x02, 0x00, 0x01]));
    let e = d.nginx.wait_access_session(local);
    assert_eq!(e.outcome(), ("400", "unsupported_version"), "{e:?}");
    // And from mosquitto_pub, as a device would see it.
    let mut v5_to_old = connect_packet(Version::V5, "abc");
    v5_to_old[8] = 7;
    let (reply, _, _) = send_and_read(d.port("default"), &v5_to_old);
    assert!(
        reply.bytes().len() >= 4 && reply.bytes()[3] != 0,
        "{reply:?}"
    );
}

#[test]
fn malformed_packets_are_proxied_when_rejection_is_off() {
    let d = hostile_deployment();
    let (reply, local, _) = send_and_read(d.port("lenient"), b"HELLO BROKER\r\n\r\n");
    // The broker, not nginx, closes on this garbage.
    assert!(reply.is_closed(), "{reply:?}");
    let e = d.nginx.wait_access_session(local);
    assert_eq!(
        (
            e.status.as_str(),
            e.reject_reason.as_str(),
            e.client_id.as_str()
        ),
        ("200", "", ""),
        "{e:?}"
    );
    assert!(!e.upstream_addr.is_empty(), "not proxied: {e:?}");
    // A valid CONNECT on the same listener is still read.
    let r = MqttCli::new(d.port("lenient"), Version::V311)
        .id("lenient-ok")
        .publish("t", "m");
    assert!(r.success(), "{r:?}");
    assert_eq!(d.nginx.wait_access_for("lenient-ok").status, "200");
}

#[test]
fn non_mqtt_traffic_is_rejected_quickly() {
    let d = hostile_deployment();
    let (reply, local, elapsed) = send_and_read(
        d.port("default"),
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert!(
        // Well before the 30 s default preread_timeout: on the first bytes.
        reply.is_closed() && elapsed < Duration::from_secs(10),
        "{reply:?} after {elapsed:?}"
    );
    let e = d.nginx.wait_access_session(local);
    assert_eq!(
        (e.status.as_str(), e.upstream_addr.as_str()),
        ("400", ""),
        "{e:?}"
    );

    // A TLS ClientHello to the plain port.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let mut tls =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().expect("name"))
            .expect("tls");
    let mut hello = Vec::new();
    tls.write_tls(&mut hello).expect("ClientHello");
    let (reply, local, elapsed) = send_and_read(d.port("default"), &hello);
    assert!(
        // Well before the 30 s default preread_timeout: on the first bytes.
        reply.is_closed() && elapsed < Duration::from_secs(10),
        "{reply:?} after {elapsed:?}"
    );
    let e = d.nginx.wait_access_session(local);
    assert_eq!(
        (e.status.as_str(), e.upstream_addr.as_str()),
        ("400", ""),
        "{e:?}"
    );
}

#[test]
fn oversized_connect_is_rejected_without_waiting_for_it() {
    let d = hostile_deployment();
    // Declares 100 000 bytes against a 1k preread buffer; sends only 60.
    let mut head = vec![0x10];
    put_var_int(&mut head, 100_000);
    let mut body = Vec::new();
    put_binary(&mut body, b"MQTT");
    body.extend_from_slice(&[4, 2, 0, 60]);
    put_binary(&mut body, &[b'x'; 48]);
    head.extend_from_slice(&body);
    let (reply, local, elapsed) = send_and_read(d.port("small"), &head);
    assert!(
        // Well before the 30 s default preread_timeout: on the fixed header.
        reply.is_closed() && elapsed < Duration::from_secs(10),
        "{reply:?} after {elapsed:?}"
    );
    let e = d.nginx.wait_access_session(local);
    assert_eq!(e.outcome(), ("400", "too_large"), "{e:?}");
    let client = format!("client: {},", local.client.ip());
    d.nginx.wait_error_line(&["preread_buffer_size", &client]);

    // Over TLS the CONNECT is read out of the TLS records instead.
    let mut client = RawClient::tls(d.port("tls"), pki(), None);
    let local = client.session();
    let mut big = vec![0x10];
    put_var_int(&mut big, 1_000_000);
    big.extend_from_slice(&body);
    client.send(&big).expect("send");
    let reply = client.read_to_close(WAIT);
    assert!(reply.is_closed(), "{reply:?}");
    let e = d.nginx.wait_access_session(local);
    assert_eq!(e.outcome(), ("400", "too_large"), "{e:?}");
}

#[test]
fn stalled_client_is_closed_by_preread_timeout_while_others_are_served() {
    let d = hostile_deployment();
    let connect = connect_packet(Version::V311, "stalled-device");
    let mut stalled = RawClient::plain(d.port("stall"));
    let local = stalled.session();
    let started = Instant::now();
    stalled
        .send(&connect[..connect.len() - 4])
        .expect("send half");
    // Meanwhile other devices connect and publish normally.
    for i in 0..3 {
        let id = format!("busy-{i}");
        let r = MqttCli::new(d.port("stall"), Version::V311)
            .id(&id)
            .publish("t", "m");
        assert!(r.success(), "{r:?}");
        assert_eq!(d.nginx.wait_access_for(&id).status, "200");
    }
    // Only meaningful while the stalled client is still waiting.
    let waited = started.elapsed();
    if waited < Duration::from_millis(1500) {
        assert!(
            matches!(stalled.read_up_to(1, Duration::ZERO), ReadEnd::Open(ref b) if b.is_empty()),
            "stalled client closed before preread_timeout"
        );
    }
    let reply = stalled.read_to_close(WAIT);
    let elapsed = started.elapsed();
    assert!(
        reply.is_closed(),
        "stalled client still open after {elapsed:?}"
    );
    // Closed by the 2 s preread_timeout: not before it (the upper bound is
    // WAIT, enforced by read_to_close).
    assert!(
        elapsed >= Duration::from_millis(1900),
        "closed after {elapsed:?}, before the 2s preread_timeout"
    );
    assert!(reply.bytes().is_empty(), "{reply:?}");
    let e = d.nginx.wait_access_session(local);
    assert_eq!(e.outcome(), ("400", "incomplete"), "{e:?}");
}

#[test]
fn connect_cut_short_by_eof_is_rejected_as_incomplete() {
    let d = hostile_deployment();
    let connect = connect_packet(Version::V311, "cut-short");
    let mut client = RawClient::plain(d.port("default"));
    let session = client.session();
    client.send(&connect[..connect.len() - 3]).expect("send");
    client.shutdown_write();
    let reply = client.read_to_close(WAIT);
    assert!(reply.is_closed() && reply.bytes().is_empty(), "{reply:?}");
    let e = d.nginx.wait_access_session(session);
    assert_eq!(e.outcome(), ("400", "incomplete"), "{e:?}");
    assert_eq!(e.upstream_addr, "", "{e:?}");
}
