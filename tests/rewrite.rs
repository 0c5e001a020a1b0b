//! The CONNECT rewrite (`mqtt on; mqtt_set_connect ...`): what the upstream
//! receives is the device's CONNECT with exactly the configured fields
//! changed, then everything the device sent after it, byte for byte. The
//! upstream here is an echo server, so the device reads back what nginx
//! forwarded; the expected packets are built with the core crate's encoder
//! from the device's fields, independently of the rewrite code.

mod support;

use std::time::Duration;

use mqtt_core::packet::encode::{ConnectBuilder, PropValue, Will};
use mqtt_core::packet::{property_id, ProtocolLevel};
use support::nginx::{server, tls_directives};
use support::{echo_server, free_port, pki, Broker, MqttCli, Nginx, RawClient, ReadEnd, Version};

const WAIT: Duration = Duration::from_secs(10);

/// A QoS 0 PUBLISH that follows the CONNECT in the same segment.
const PUBLISH: &[u8] = b"\x30\x0c\x00\x05hello\x77orld";

static LONG_PASSWORD: [u8; 3000] = [b'p'; 3000];

/// What a server rewrites, as its `mqtt_set_connect` directives say.
#[derive(Clone, Copy)]
struct Edit {
    directives: &'static str,
    client_id: Option<&'static [u8]>,
    /// `Some(None)`: removed.
    username: Option<Option<&'static [u8]>>,
    password: Option<Option<&'static [u8]>>,
    user_property: Option<(&'static [u8], &'static [u8])>,
}

const EDITS: [Edit; 4] = [
    Edit {
        directives: "mqtt_set_connect username gateway-user;",
        client_id: None,
        username: Some(Some(b"gateway-user")),
        password: None,
        user_property: None,
    },
    Edit {
        directives: "mqtt_set_connect password \"\";",
        client_id: None,
        username: None,
        password: Some(None),
        user_property: None,
    },
    Edit {
        directives: "mqtt_set_connect username \"\";",
        client_id: None,
        username: Some(None),
        password: None,
        user_property: None,
    },
    Edit {
        directives: "mqtt_set_connect clientid gw-$mqtt_client_id;\n    \
                     mqtt_set_connect username u1;\n    \
                     mqtt_set_connect password p1;\n    \
                     mqtt_set_connect user_property x-gateway \"$mqtt_protocol_version\";",
        client_id: Some(b"gw-"),
        username: Some(Some(b"u1")),
        password: Some(Some(b"p1")),
        user_property: Some((b"x-gateway", b"")),
    },
];

/// The device's packets: every version, with and without the fields a
/// rewrite touches, and with a Will the rewrite must carry over.
fn devices() -> Vec<ConnectBuilder<'static>> {
    let mut out = Vec::new();
    for level in ProtocolLevel::ALL {
        let base = ConnectBuilder::new(level, b"thing001");
        out.push(base.clone());
        out.push(base.clone().username(b"thing002"));
        out.push(
            base.clone()
                .username(b"thing002")
                .password(b"device-secret"),
        );
        // Larger than the module's first read buffer.
        out.push(base.clone().username(b"thing002").password(&LONG_PASSWORD));
        let mut will = Will::new(b"devices/thing001/status", b"offline");
        if level == ProtocolLevel::V5 {
            will.properties
                .push((property_id::WILL_DELAY_INTERVAL, PropValue::U32(5)));
        }
        let mut with_will = base.username(b"thing002").password(b"pw").will(will);
        if level == ProtocolLevel::V5 {
            with_will =
                with_will.property(property_id::SESSION_EXPIRY_INTERVAL, PropValue::U32(30));
        }
        out.push(with_will);
    }
    out
}

/// The packet the upstream must receive for `device` under `edit`.
fn expected(device: &ConnectBuilder<'static>, edit: &Edit, client_id: &'static [u8]) -> Vec<u8> {
    let mut b = device.clone();
    if edit.client_id.is_some() {
        b.client_id = client_id;
    }
    if let Some(username) = edit.username {
        b.username = username;
    }
    if let Some(password) = edit.password {
        b.password = password;
    }
    let v5 = device.level == ProtocolLevel::V5;
    if !v5 && b.username.is_none() {
        b.password = None;
    }
    if let (true, Some((name, value))) = (v5, edit.user_property) {
        // The value is $mqtt_protocol_version: "5".
        let value: &'static [u8] = if value.is_empty() { b"5" } else { value };
        b.properties
            .push((property_id::USER_PROPERTY, PropValue::Pair(name, value)));
    }
    b.encode()
}

struct Gateway {
    nginx: Nginx,
    /// Per edit: the plain and the TLS listener.
    ports: Vec<(u16, u16)>,
}

fn gateway() -> Gateway {
    let echo = format!("127.0.0.1:{}", echo_server());
    let mut body = String::new();
    let mut ports = Vec::new();
    for edit in &EDITS {
        let (plain, tls) = (free_port(), free_port());
        let directives = format!("mqtt on;\n    preread_timeout 5s;\n    {}", edit.directives);
        body += &server(&format!("127.0.0.1:{plain}"), &echo, &directives);
        body += &server(
            &format!("127.0.0.1:{tls} ssl"),
            &echo,
            &format!("{}    {directives}", tls_directives(pki(), "optional")),
        );
        ports.push((plain, tls));
    }
    let all: Vec<u16> = ports.iter().flat_map(|&(a, b)| [a, b]).collect();
    Gateway {
        nginx: Nginx::start(&body, &all),
        ports,
    }
}

fn client(port: u16, tls: bool) -> RawClient {
    if tls {
        RawClient::tls(port, pki(), None)
    } else {
        RawClient::plain(port)
    }
}

#[test]
fn every_version_and_field_combination_is_rewritten_byte_for_byte() {
    let g = gateway();
    for (edit, &(plain, tls_port)) in EDITS.iter().zip(&g.ports) {
        for device in devices() {
            let packet = device.encode();
            let want = {
                let mut want = expected(&device, edit, b"gw-thing001");
                want.extend_from_slice(PUBLISH);
                want
            };
            for (tls, bytewise) in [(false, false), (false, true), (true, false), (true, true)] {
                let what = format!(
                    "{} {:?}, {} bytes{}{}",
                    edit.directives,
                    device.level,
                    packet.len(),
                    if tls { ", TLS" } else { "" },
                    if bytewise { ", in pieces" } else { "" },
                );
                let mut c = client(if tls { tls_port } else { plain }, tls);
                let session = c.session();
                if bytewise && packet.len() > 200 {
                    // A long CONNECT in uneven pieces around the first buffer.
                    for piece in [
                        &packet[..1],
                        &packet[1..700],
                        &packet[700..900],
                        &packet[900..],
                    ] {
                        c.send(piece).expect("send");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    c.send(PUBLISH).expect("send");
                } else if bytewise {
                    c.send_bytewise(&packet, Duration::from_millis(1))
                        .expect("send");
                    c.send(PUBLISH).expect("send");
                } else {
                    let mut stream = packet.clone();
                    stream.extend_from_slice(PUBLISH);
                    c.send(&stream).expect("send");
                }
                let reply = c.read_up_to(want.len(), WAIT);
                assert!(
                    matches!(reply, ReadEnd::Open(_)),
                    "{what}: closed after {:02x?}",
                    reply.bytes()
                );
                assert_eq!(reply.bytes(), want.as_slice(), "{what}");
                // The session is logged when it ends.
                drop(c);
                let e = g.nginx.wait_access_session(session);
                assert_eq!(e.outcome(), ("200", ""), "{what}: {e:?}");
                assert_eq!(e.client_id, "thing001", "{what}: the device's own ClientId");
            }
        }
    }
}

/// nginx's PROXY protocol header goes first, untouched, and the rewritten
/// CONNECT right after it.
#[test]
fn the_proxy_protocol_header_stays_in_front() {
    let echo = format!("127.0.0.1:{}", echo_server());
    let port = free_port();
    let body = server(
        &format!("127.0.0.1:{port}"),
        &echo,
        "proxy_protocol on;\n    mqtt on;\n    mqtt_set_connect username gateway-user;",
    );
    let nginx = Nginx::start(&body, &[port]);
    let device = ConnectBuilder::new(ProtocolLevel::V311, b"thing001").username(b"thing002");
    let want = device.clone().username(b"gateway-user").encode();
    let mut c = RawClient::plain(port);
    let session = c.session();
    c.send(&device.encode()).expect("send");
    let mut got = Vec::new();
    let header_len = loop {
        let end = got.windows(2).position(|w| w == b"\r\n");
        if let Some(end) = end.filter(|end| got.len() >= end + 2 + want.len()) {
            break end + 2;
        }
        let more = c.read_up_to(got.len() + 1, WAIT);
        assert!(!more.bytes().is_empty(), "nothing more after {got:02x?}");
        got.extend_from_slice(more.bytes());
    };
    let (line, reply) = got.split_at(header_len);
    let text = String::from_utf8_lossy(line);
    assert!(text.starts_with("PROXY TCP4 127."), "{text}");
    assert_eq!(reply, want.as_slice());
    drop(c);
    assert_eq!(nginx.wait_access_session(session).outcome(), ("200", ""));
}

/// A rewritten CONNECT that would not fit `mqtt_buffers` is refused, never
/// forwarded as the device sent it: MQTT 5 hears "Packet too large", 3.1.1
/// is closed (it has no code for it), and the upstream gets nothing.
#[test]
fn a_connect_beyond_mqtt_buffers_is_refused_not_forwarded() {
    let echo = format!("127.0.0.1:{}", echo_server());
    let port = free_port();
    let body = server(
        &format!("127.0.0.1:{port}"),
        &echo,
        "mqtt on;\n    mqtt_buffers 2 32;\n    mqtt_set_connect username gateway-user;",
    );
    let nginx = Nginx::start(&body, &[port]);
    let small = ConnectBuilder::new(ProtocolLevel::V5, b"thing001");
    let big = ConnectBuilder::new(ProtocolLevel::V5, b"thing001").password(&[b'p'; 64]);
    for (builder, connack) in [
        (&big, Some(0x95u8)),
        (
            &ConnectBuilder::new(ProtocolLevel::V311, b"thing001")
                .username(b"thing002")
                .password(&[b'p'; 64]),
            None,
        ),
    ] {
        let mut c = RawClient::plain(port);
        let session = c.session();
        c.send(&builder.encode()).expect("send");
        let reply = c.read_to_close(WAIT);
        match connack {
            Some(code) => assert_eq!(reply.bytes().get(3), Some(&code), "{:02x?}", reply.bytes()),
            None => assert!(reply.bytes().is_empty(), "{:02x?}", reply.bytes()),
        }
        let e = nginx.wait_access_session(session);
        assert_eq!(e.outcome(), ("400", "too_large"), "{e:?}");
        assert_eq!(e.upstream_addr, "", "{e:?}");
    }
    // Within the bound, the same server rewrites.
    let mut c = RawClient::plain(port);
    c.send(&small.encode()).expect("send");
    let want = small.clone().username(b"gateway-user").encode();
    assert_eq!(c.read_up_to(want.len(), WAIT).bytes(), want.as_slice());
}

/// Neither the device's password nor the configured one appears in the
/// error log, even at debug level.
#[test]
fn passwords_are_not_logged() {
    let echo = format!("127.0.0.1:{}", echo_server());
    let port = free_port();
    let body = server(
        &format!("127.0.0.1:{port}"),
        &echo,
        "error_log {prefix}/debug.log debug;\n    mqtt on;\n    \
         mqtt_set_connect username \"\";\n    mqtt_set_connect clientid \"\";",
    );
    let nginx = Nginx::start(&body, &[port]);
    let device = ConnectBuilder::new(ProtocolLevel::V311, b"thing001")
        .username(b"thing002")
        .password(b"hunter2-device-secret");
    let mut c = RawClient::plain(port);
    c.send(&device.encode()).expect("send");
    // The username and the password go; an empty ClientId with Clean
    // Session is valid in 3.1.1.
    let want = ConnectBuilder::new(ProtocolLevel::V311, b"").encode();
    assert_eq!(c.read_up_to(want.len(), WAIT).bytes(), want.as_slice());
    drop(c);
    nginx.wait_access_for("thing001");
    let log = support::read_lossy(&nginx.prefix.join("debug.log"));
    assert!(!log.contains("hunter2"), "{log}");
    // An nginx built --with-debug logged the rewrite itself.
    if log.contains("[debug]") {
        assert!(log.contains("CONNECT rewritten for the upstream"), "{log}");
    }
}

/// A broker whose ACL keys on the username (`pattern readwrite
/// devices/%u/#`) receives the identity of the verified certificate as the
/// username, whatever the device claimed.
#[test]
fn the_broker_sees_the_certificate_identity_as_username() {
    let broker =
        Broker::with_acl("user watcher\ntopic read devices/#\n\npattern readwrite devices/%u/#\n");
    let port = free_port();
    let body = server(
        &format!("127.0.0.1:{port} ssl"),
        &broker.addr(),
        &format!(
            "{}    mqtt_client_id_match cn;\n    mqtt on;\n    \
             mqtt_set_connect username $mqtt_cert_cn;\n    mqtt_set_connect password \"\";",
            tls_directives(pki(), "optional")
        ),
    );
    let nginx = Nginx::start(&body, &[port]);
    let cert = pki().client("thing001");
    // The device claims to be thing002, with thing002's password.
    let device = || {
        MqttCli::new(port, Version::V311)
            .id("thing001")
            .tls(pki(), Some(cert))
            .args(&["-u", "thing002", "-P", "thing002-password"])
    };
    let watcher = MqttCli::new(broker.port, Version::V311)
        .id("watcher")
        .args(&["-u", "watcher"])
        .subscribe("devices/#");
    // Under the name it claimed the device may not publish (mosquitto drops
    // the message); under its proven identity it may.
    assert!(device()
        .publish("devices/thing002/temp", "spoofed")
        .success());
    assert!(device().publish("devices/thing001/temp", "21.5").success());
    watcher.wait_message("21.5");
    assert!(
        !watcher.has_printed("spoofed"),
        "the ACL let the device publish under the username it claimed"
    );
    let log = broker.log_text();
    let device_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("New client connected") && l.contains(" as thing001 "))
        .collect();
    assert_eq!(device_lines.len(), 2, "{log}");
    for line in device_lines {
        assert!(line.contains("u'thing001'"), "{line}");
    }
    nginx.assert_no_crash();
}

/// NGINX Plus's example for its MQTT filter module, as its documentation
/// gives it, with the two variables it leaves to the reader defined by maps.
#[test]
fn the_nginx_plus_example_works_unchanged() {
    let echo = echo_server();
    let port = free_port();
    let body = format!(
        "map $remote_port $client {{ default plus-client; }}\n\
         map $mqtt_client_id $name {{ default user-$mqtt_client_id; }}\n\
         upstream backend {{ server 127.0.0.1:{echo}; }}\n\
         server {{\n\
             listen            127.0.0.1:{port};\n\
             proxy_pass        backend;\n\
             proxy_buffer_size 16k;\n\
         \n\
             mqtt             on;\n\
             mqtt_set_connect clientid \"$client\";\n\
             mqtt_set_connect username \"$name\";\n\
         }}\n"
    );
    let nginx = Nginx::start(&body, &[port]);
    for level in [ProtocolLevel::V311, ProtocolLevel::V5] {
        let device = ConnectBuilder::new(level, b"device-7").username(b"x");
        let mut c = RawClient::plain(port);
        c.send(&device.encode()).expect("send");
        let mut want = device.clone().username(b"user-device-7");
        want.client_id = b"plus-client";
        let want = want.encode();
        assert_eq!(
            c.read_up_to(want.len(), WAIT).bytes(),
            want.as_slice(),
            "{level:?}"
        );
    }
    nginx.assert_no_crash();
}
