//! Session persistence: `hash $mqtt_client_id consistent` sends a ClientId
//! to the same broker every time, from any nginx instance; an empty ClientId
//! is an empty key, for which nginx picks a broker round-robin.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use support::client::connect_packet;
use support::nginx::{hashed_upstream, server, AccessEntry};
use support::{
    broker, free_port, wait_until, Deployment, Listener, MqttCli, Nginx, RawClient, ReadEnd,
    Version, DEADLINE,
};

const IDS: usize = 30;
const ROUNDS: usize = 3;

fn device_id(i: usize) -> String {
    format!("device-{i:03}")
}

/// ClientId → the set of upstreams its sessions went to, once every one of
/// `expected` sessions is in the access log.
fn routes(nginx: &Nginx, expected: usize) -> BTreeMap<String, BTreeSet<String>> {
    wait_until(
        DEADLINE,
        &format!("{expected} proxied sessions in the access log"),
        || {
            let entries: Vec<_> = nginx
                .access_entries()
                .into_iter()
                .filter(|e| e.client_id.starts_with("device-"))
                .collect();
            (entries.len() >= expected).then_some(entries)
        },
    )
    .into_iter()
    .fold(BTreeMap::new(), |mut map, e| {
        assert_eq!(e.status, "200", "{e:?}");
        map.entry(e.client_id)
            .or_insert_with(BTreeSet::new)
            .insert(e.upstream_addr);
        map
    })
}

#[test]
fn client_ids_stick_to_one_broker_and_spread_over_all() {
    let d = Deployment::start(&[Listener::plain("mqtt", "mqtt_preread on;")]);
    let port = d.port("mqtt");
    for round in 0..ROUNDS {
        for i in 0..IDS {
            let r = MqttCli::new(port, Version::V311)
                .id(&device_id(i))
                .publish("p", &round.to_string());
            assert!(r.success(), "{}: {r:?}", device_id(i));
        }
    }
    let routes = routes(&d.nginx, IDS * ROUNDS);
    assert_eq!(routes.len(), IDS);
    for (id, upstreams) in &routes {
        assert_eq!(
            upstreams.len(),
            1,
            "{id} went to several brokers: {upstreams:?}"
        );
        // nginx's word is confirmed by the broker's own log.
        let broker = d.broker_at(upstreams.iter().next().expect("one upstream"));
        assert!(
            broker.saw_client(id),
            "{id} not in the log of {}",
            broker.addr()
        );
    }
    let used: BTreeSet<&String> = routes.values().flatten().collect();
    assert_eq!(used.len(), 3, "load not spread over all brokers: {used:?}");
}

#[test]
fn message_reaches_a_subscriber_on_the_same_broker() {
    let d = Deployment::start(&[Listener::plain("mqtt", "mqtt_preread on;")]);
    let port = d.port("mqtt");
    let publisher = MqttCli::new(port, Version::V311).id("device-pub-7");
    assert!(publisher.publish("warmup", "x").success());
    let route = d.nginx.wait_access_for("device-pub-7").upstream_addr;
    let broker = d.broker_at(&route);
    // Subscribe on the broker nginx chose for this ClientId, directly.
    let sub = MqttCli::new(broker.port, Version::V311)
        .id("observer")
        .subscribe("telemetry/7");
    let r = publisher.publish("telemetry/7", "reading-42");
    assert!(r.success(), "{r:?}");
    sub.wait_message("reading-42");
}

#[test]
fn two_nginx_instances_route_each_client_id_alike() {
    let brokers = broker::three();
    let upstream = hashed_upstream("brokers", &brokers.iter().collect::<Vec<_>>());
    let start = || {
        let port = free_port();
        let body = format!(
            "{upstream}{}",
            server(&format!("127.0.0.1:{port}"), "brokers", "mqtt_preread on;")
        );
        (Nginx::start(&body, &[port]), port)
    };
    let (first, first_port) = start();
    let (second, second_port) = start();
    for i in 0..IDS {
        for port in [first_port, second_port] {
            let r = MqttCli::new(port, Version::V5)
                .id(&device_id(i))
                .publish("p", "m");
            assert!(r.success(), "{r:?}");
        }
    }
    let (a, b) = (routes(&first, IDS), routes(&second, IDS));
    assert_eq!(a, b, "the two instances disagree");
    assert!(a.values().all(|u| u.len() == 1));
    let used: BTreeSet<&String> = a.values().flatten().collect();
    assert_eq!(used.len(), 3, "{used:?}");
}

/// A session from an address of its own with a CONNECT for `id`, answered
/// by the broker; its access-log entry once it has ended.
fn proxied_session(nginx: &Nginx, port: u16, version: Version, id: &str) -> AccessEntry {
    let mut client = RawClient::plain(port);
    let key = client.session();
    client
        .send(&connect_packet(version, id))
        .expect("send CONNECT");
    let reply = client.read_connack(DEADLINE);
    assert!(
        matches!(&reply, ReadEnd::Open(b) if b.len() >= 4 && b[0] == 0x20 && b[3] == 0),
        "{id:?} ({version:?}) not accepted by the broker: {reply:?}"
    );
    drop(client);
    let e = nginx.wait_access_session(key);
    assert_eq!(
        (e.status.as_str(), e.client_id.as_str()),
        ("200", id),
        "{e:?}"
    );
    e
}

#[test]
fn empty_client_ids_are_spread_round_robin() {
    // 3.1.1 with a clean session and MQTT 5 allow an empty ClientId (the
    // broker assigns one). For an empty key, nginx's hash balancer falls
    // back to round-robin: the devices go to every broker in turn, where
    // one key would send them all to the same broker.
    let d = Deployment::start(&[Listener::plain("mqtt", "mqtt_preread on;")]);
    let port = d.port("mqtt");
    let upstreams: Vec<String> = (0..IDS)
        .map(|i| {
            let version = if i % 2 == 0 {
                Version::V311
            } else {
                Version::V5
            };
            proxied_session(&d.nginx, port, version, "").upstream_addr
        })
        .collect();
    let used: BTreeSet<&String> = upstreams.iter().collect();
    assert_eq!(used.len(), 3, "{upstreams:?}");
    // In turn: no broker twice in a row.
    assert!(upstreams.windows(2).all(|w| w[0] != w[1]), "{upstreams:?}");
}
