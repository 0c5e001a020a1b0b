//! What the device sends reaches the upstream byte for byte, whatever the
//! size of the first packet: the module reads a session's first bytes into a
//! small buffer and replaces it with one of the packet's exact size when a
//! CONNECT is larger, or with a full preread_buffer_size one when the bytes
//! are passed on unparsed. The upstream here is an echo server, so the
//! device gets back exactly what nginx forwarded.

mod support;

use std::thread;
use std::time::Duration;

use support::client::Connect;
use support::nginx::{
    njs_module, server, standard_conf_loading, tls_directives, Load, ACCESS_LOG_FORMAT,
};
use support::{echo_server, free_port, pki, Nginx, RawClient, ReadEnd, Version};

const WAIT: Duration = Duration::from_secs(10);

struct Gateway {
    nginx: Nginx,
    plain: u16,
    tls: u16,
}

fn gateway() -> Gateway {
    let echo = echo_server();
    let (plain, tls) = (free_port(), free_port());
    let upstream = format!("127.0.0.1:{echo}");
    // A short preread_timeout: a session stuck waiting for bytes it already
    // has fails in seconds rather than after the default 30. proxy_half_close
    // keeps a session whose device has shut down its sending side open until
    // the upstream has answered.
    let directives = [
        "mqtt_preread on;",
        "mqtt_reject_malformed off;",
        "preread_timeout 5s;",
        "proxy_half_close on;",
    ]
    .join("\n    ");
    let body = format!(
        "{}{}",
        server(&format!("127.0.0.1:{plain}"), &upstream, &directives),
        server(
            &format!("127.0.0.1:{tls} ssl"),
            &upstream,
            &format!("{}    {directives}", tls_directives(pki(), "optional"))
        ),
    );
    Gateway {
        nginx: Nginx::start(&body, &[plain, tls]),
        plain,
        tls,
    }
}

impl Gateway {
    /// A raw client on the `"plain"` or the `"tls"` listener.
    fn client(&self, transport: &str) -> RawClient {
        match transport {
            "plain" => RawClient::plain(self.plain),
            _ => RawClient::tls(self.tls, pki(), None),
        }
    }
}

/// A 3.1.1 CONNECT of exactly `size` bytes, padded with the password.
fn connect_of_size(client_id: &str, size: usize) -> Vec<u8> {
    let password = vec![b'p'; size];
    let mut connect = Connect::new(Version::V311, client_id);
    connect.username = Some("user");
    for len in (0..size).rev() {
        connect.password = Some(&password[..len]);
        let packet = connect.encode();
        if packet.len() <= size {
            assert_eq!(packet.len(), size, "no CONNECT of {size} bytes");
            return packet;
        }
    }
    panic!("no CONNECT of {size} bytes")
}

/// Sends `bytes` in pieces cut at `cuts` (with a pause between pieces, so
/// that they arrive as separate reads) and expects them back.
fn round_trip(g: &Gateway, transport: &str, bytes: &[u8], cuts: &[usize]) -> support::SessionKey {
    let mut client = g.client(transport);
    let session = client.session();
    let mut start = 0;
    for &end in cuts.iter().chain([&bytes.len()]) {
        client.send(&bytes[start..end]).expect("send");
        start = end;
        thread::sleep(Duration::from_millis(50));
    }
    let reply = client.read_up_to(bytes.len(), WAIT);
    let what = format!("{} bytes over {transport}, cut at {cuts:?}", bytes.len());
    assert!(
        matches!(reply, ReadEnd::Open(_)),
        "{what}: connection closed after {} bytes back",
        reply.bytes().len()
    );
    assert_eq!(reply.bytes().len(), bytes.len(), "{what}: length");
    assert!(reply.bytes() == bytes, "{what}: different bytes came back");
    session
}

#[test]
fn connects_of_every_size_reach_the_upstream_intact() {
    let g = gateway();
    // Around the first buffer's 800 bytes, and well past it.
    for (i, size) in [40, 799, 800, 801, 6000].into_iter().enumerate() {
        let client_id = format!("fwd-{size}");
        let packet = connect_of_size(&client_id, size);
        // Sent whole, all of it is often waiting before nginx first looks:
        // several times, as that is the case a peeking nginx would not come
        // back to by itself.
        let splits: &[&[usize]] = match size {
            6000 => &[&[], &[], &[], &[], &[600], &[800, 806], &[3]],
            _ => &[&[]],
        };
        for (transport, cuts) in ["plain", "tls"]
            .into_iter()
            .flat_map(|t| splits.iter().map(move |c| (t, *c)))
        {
            let session = round_trip(&g, transport, &packet, cuts);
            let e = g.nginx.wait_access_session(session);
            assert_eq!(
                (e.status.as_str(), e.client_id.as_str()),
                ("200", client_id.as_str()),
                "case {i}: {e:?}"
            );
        }
    }
}

#[test]
fn a_large_connect_followed_by_a_half_close_is_still_read() {
    // The device sends its CONNECT and at once shuts down its sending side:
    // everything it will ever send is already there when the module learns
    // that the packet does not fit the first buffer.
    let g = gateway();
    for (size, transport) in [(40, "plain"), (6000, "plain"), (40, "tls"), (6000, "tls")] {
        let client_id = format!("fwd-half-close-{size}");
        let packet = connect_of_size(&client_id, size);
        let mut client = g.client(transport);
        let session = client.session();
        client.send(&packet).expect("send");
        client.shutdown_write();
        let reply = client.read_to_close(WAIT);
        assert!(
            reply.bytes() == packet.as_slice(),
            "{transport}: {} bytes came back of {size}",
            reply.bytes().len(),
        );
        drop(client);
        let e = g.nginx.wait_access_session(session);
        assert_eq!(
            (e.status.as_str(), e.client_id.as_str()),
            ("200", client_id.as_str()),
            "{size} bytes over {transport}: {e:?}"
        );
    }
}

#[test]
fn bytes_that_are_not_mqtt_are_passed_on_whole() {
    let g = gateway();
    let text = not_mqtt();
    for transport in ["plain", "tls"] {
        for cuts in [&[][..], &[700]] {
            let session = round_trip(&g, transport, &text, cuts);
            let e = g.nginx.wait_access_session(session);
            assert_eq!(
                (e.status.as_str(), e.client_id.as_str()),
                ("200", ""),
                "{e:?}"
            );
        }
    }
}

/// An HTTP request of about 5 KiB: longer than the first buffer.
fn not_mqtt() -> Vec<u8> {
    b"GET /not-mqtt HTTP/1.1\r\nX-Pad: "
        .iter()
        .copied()
        .chain((0..5000).map(|i| b'a' + (i % 26) as u8))
        .chain(*b"\r\n\r\n")
        .collect()
}

/// nginx with njs loaded before this module, so that its preread handler
/// runs after this module's, and `servers` (inside `stream {}`), whose
/// `js_preread wait.bytes` waits until `$wait_for` bytes have arrived.
fn with_njs_waiting_for_bytes(njs: &std::path::Path, servers: &str, ports: &[u16]) -> Nginx {
    let body = format!("js_import wait from {{prefix}}/wait.js;\n{servers}");
    Nginx::start_with(
        |prefix| {
            std::fs::write(
                prefix.join("wait.js"),
                "function bytes(s) {\n\
                 var seen = 0;\n\
                 var wanted = Number(s.variables.wait_for);\n\
                 s.on('upload', function (data, flags) {\n\
                 seen += data.length;\n\
                 if (seen >= wanted || flags.last) { s.done(); }\n\
                 });\n\
                 }\n\
                 export default { bytes };\n",
            )
            .expect("wait.js");
            standard_conf_loading(
                prefix,
                ACCESS_LOG_FORMAT,
                &body,
                njs,
                Load::BeforeThisModule,
            )
        },
        ports,
    )
}

/// A preread handler that runs after this module's, on bytes this module
/// passed on, has the whole preread_buffer_size to read into: here an njs
/// handler that waits for 4000 bytes. Needs `$MQTT_TEST_NJS`, like
/// tests/gate.rs.
#[test]
fn a_later_preread_handler_gets_a_full_size_buffer() {
    let Some(njs) = njs_module() else {
        return;
    };
    let echo = echo_server();
    let port = free_port();
    let servers = format!(
        "server {{ listen 127.0.0.1:{port}; set $wait_for 4000; js_preread wait.bytes; \
         mqtt_preread on; mqtt_reject_malformed off; preread_timeout 5s; \
         proxy_pass 127.0.0.1:{echo}; }}\n"
    );
    let g = Gateway {
        nginx: with_njs_waiting_for_bytes(&njs, &servers, &[port]),
        plain: port,
        tls: 0,
    };
    let session = round_trip(&g, "plain", &not_mqtt(), &[]);
    let e = g.nginx.wait_access_session(session);
    assert_eq!(e.status, "200", "{e:?}");
}

/// After an accepted CONNECT, a preread handler that runs after this
/// module's still has the room nginx would give it: here an njs handler that
/// waits for the device's second packet, a 2,000-byte PUBLISH that arrives
/// after the CONNECT was decided. Without that room nginx ends the session
/// ("preread buffer full") or, when it peeks, takes the empty read as EOF.
/// Needs `$MQTT_TEST_NJS`, like tests/gate.rs.
#[test]
fn a_later_preread_handler_gets_room_after_an_accepted_connect() {
    let Some(njs) = njs_module() else {
        return;
    };
    let echo = echo_server();
    let publish = publish_of_size(2000);
    let sizes = [40, 900, 1200, 6000];
    let ports: Vec<u16> = sizes.iter().map(|_| free_port()).collect();
    // One server per CONNECT size, each told how many bytes make up the
    // CONNECT and the PUBLISH.
    let mut servers = String::new();
    for (size, port) in sizes.iter().zip(&ports) {
        servers += &format!(
            "server {{ listen 127.0.0.1:{port}; set $wait_for {}; js_preread wait.bytes; \
             mqtt_preread on; preread_timeout 5s; proxy_pass 127.0.0.1:{echo}; }}\n",
            size + publish.len()
        );
    }
    let mut g = Gateway {
        nginx: with_njs_waiting_for_bytes(&njs, &servers, &ports),
        plain: 0,
        tls: 0,
    };
    for (size, port) in sizes.into_iter().zip(ports) {
        let client_id = format!("later-handler-{size}");
        let connect = connect_of_size(&client_id, size);
        g.plain = port;
        let mut stream = connect.clone();
        stream.extend_from_slice(&publish);
        // The PUBLISH comes as a read of its own, once the CONNECT is in.
        let session = round_trip(&g, "plain", &stream, &[connect.len()]);
        let e = g.nginx.wait_access_session(session);
        assert_eq!(
            e.outcome(),
            ("200", ""),
            "{size}-byte CONNECT, then a PUBLISH: {e:?}"
        );
        assert_eq!(e.client_id, client_id, "{size}-byte CONNECT: {e:?}");
    }
}

/// A QoS 0 PUBLISH of exactly `size` bytes.
fn publish_of_size(size: usize) -> Vec<u8> {
    let topic = b"devices/later";
    // Fixed header: type and a two-byte Remaining Length (size < 16 KiB).
    let remaining = size - 3;
    let mut packet = vec![
        0x30,
        (remaining % 128) as u8 | 0x80,
        (remaining / 128) as u8,
    ];
    packet.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    packet.extend_from_slice(topic);
    packet.resize(size, b'x');
    packet
}
