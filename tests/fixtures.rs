//! The fixtures themselves: PKI, brokers and nginx work before any
//! scenario relies on them.

mod support;

use std::time::Duration;

use support::client::{connect_packet, ReadEnd};
use support::nginx::{hashed_upstream, server, tls_directives};
use support::{broker, free_port, pki, MqttCli, Nginx, RawClient, Version};

#[test]
fn plain_proxy_reaches_a_broker() {
    let brokers = broker::three();
    let port = free_port();
    let nginx = Nginx::start(
        &format!(
            "{}{}",
            hashed_upstream("brokers", &brokers.iter().collect::<Vec<_>>()),
            server(&format!("127.0.0.1:{port}"), "brokers", "mqtt_preread on;")
        ),
        &[port],
    );
    let result = MqttCli::new(port, Version::V311)
        .id("fixture-1")
        .publish("t", "m");
    assert!(result.success(), "{result:?}");
    let entry = nginx.wait_access_for("fixture-1");
    assert!(
        brokers.iter().any(|b| b.addr() == entry.upstream_addr),
        "{entry:?}"
    );
}

#[test]
fn tls_raw_client_gets_a_connack() {
    let brokers = broker::three();
    let pki = pki();
    let port = free_port();
    let nginx = Nginx::start(
        &format!(
            "{}{}",
            hashed_upstream("brokers", &brokers.iter().collect::<Vec<_>>()),
            server(
                &format!("127.0.0.1:{port} ssl"),
                "brokers",
                &format!("mqtt_preread on;\n{}", tls_directives(pki, "on"))
            )
        ),
        &[port],
    );
    let mut client = RawClient::tls(port, pki, Some(pki.client("thing001")));
    client
        .send(&connect_packet(Version::V311, "thing001"))
        .expect("send");
    let reply = client.read_connack(Duration::from_secs(5));
    assert_eq!(reply, ReadEnd::Open(vec![0x20, 0x02, 0x00, 0x00]));
    drop(client);
    let entry = nginx.wait_access_for("thing001");
    assert_eq!(entry.cert_cn, "thing001");
}
