//! What a refused device reads and what the access log says of it, where
//! the CONNECT's own contents shape the answer.

mod support;

use std::time::Duration;

use mqtt_core::packet::encode::{ConnectBuilder, PropValue};
use mqtt_core::packet::{property_id, ProtocolLevel};
use support::nginx::server;
use support::{free_port, Broker, Nginx, RawClient};

const WAIT: Duration = Duration::from_secs(10);

/// An MQTT 5 CONNACK carries its Reason String only where the device's
/// Maximum Packet Size leaves room for it [MQTT-3.2.2-19].
#[test]
fn an_mqtt_5_refusal_fits_the_devices_maximum_packet_size() {
    let broker = Broker::start();
    let port = free_port();
    // Plain TCP under mqtt_client_id_match: refused, "Not authorized".
    let body = server(
        &format!("127.0.0.1:{port}"),
        &broker.addr(),
        "mqtt_client_id_match cn;",
    );
    let nginx = Nginx::start(&body, &[port]);
    let connack = |max: Option<u32>| {
        let mut connect = ConnectBuilder::new(ProtocolLevel::V5, b"thing001");
        if let Some(max) = max {
            connect = connect.property(property_id::MAXIMUM_PACKET_SIZE, PropValue::U32(max));
        }
        let mut c = RawClient::plain(port);
        c.send(&connect.encode()).expect("send");
        c.read_to_close(WAIT).bytes().to_vec()
    };
    let whole = connack(None);
    assert_eq!(whole[..4], [0x20, whole[1], 0x00, 0x87], "{whole:02x?}");
    assert!(whole.len() > 20, "a Reason String: {whole:02x?}");
    // Room for the bare CONNACK only: no property.
    assert_eq!(connack(Some(6)), [0x20, 0x03, 0x00, 0x87, 0x00]);
    // Some room: the string is cut to fit.
    let cut = connack(Some(16));
    assert!(cut.len() <= 16 && cut.len() > 5, "{cut:02x?}");
    assert_eq!(cut[..4], [0x20, cut[1], 0x00, 0x87], "{cut:02x?}");
    nginx.assert_no_crash();
}

/// `$mqtt_protocol_version` names the version of a refused CONNECT too, once
/// its protocol level has been read.
#[test]
fn a_refused_connect_logs_its_protocol_version() {
    let broker = Broker::start();
    let port = free_port();
    let body = server(
        &format!("127.0.0.1:{port}"),
        &broker.addr(),
        "mqtt_preread on;",
    );
    let nginx = Nginx::start(&body, &[port]);
    // Receive Maximum 0 is a Protocol Error in MQTT 5.
    let bad = ConnectBuilder::new(ProtocolLevel::V5, b"bad-v5")
        .property(property_id::RECEIVE_MAXIMUM, PropValue::U16(0))
        .encode();
    let mut c = RawClient::plain(port);
    let session = c.session();
    c.send(&bad).expect("send");
    let reply = c.read_to_close(WAIT);
    assert_eq!(reply.bytes().get(3), Some(&0x82), "{:02x?}", reply.bytes());
    let e = nginx.wait_access_session(session);
    assert_eq!(e.outcome(), ("400", "malformed"), "{e:?}");
    assert_eq!(e.protocol_version, "5", "{e:?}");
}
