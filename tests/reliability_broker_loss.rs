//! Broker loss with `hash $mqtt_client_id consistent`: when one of three
//! brokers goes away, only its devices move (to the survivors), every other
//! device keeps its broker, and nobody fails to connect; when it comes back
//! on the same port, every device maps to its original broker again.

mod support;

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use support::reliability::{device_connect, serious_lines, Gateway, Server};
use support::{wait_until, Broker, Version, DEADLINE};

const DEVICES: usize = 60;

fn id(i: usize) -> String {
    format!("loss-{i:03}")
}

/// Connects every device once (all must succeed) and returns ClientId →
/// the broker that finally took the session (the last of `$upstream_addr`,
/// which lists every broker tried).
fn round(gw: &Gateway, round: usize) -> BTreeMap<String, String> {
    let port = gw.port("mqtt");
    let failures: Vec<String> = (0..DEVICES)
        .filter_map(|i| device_connect(port, Version::ALL[i % 3], &id(i)).err())
        .collect();
    assert!(
        failures.is_empty(),
        "round {round}: {} of {DEVICES} devices failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let entries = wait_until(DEADLINE, &format!("round {round} logged"), || {
        let e: Vec<_> = gw
            .nginx
            .access_entries()
            .into_iter()
            .filter(|e| e.client_id.starts_with("loss-"))
            .collect();
        (e.len() >= DEVICES * round).then_some(e)
    });
    assert_eq!(entries.len(), DEVICES * round, "more sessions than devices");
    entries[DEVICES * (round - 1)..]
        .iter()
        .map(|e| {
            assert_eq!(e.status, "200", "{e:?}");
            let last = e.upstream_addr.rsplit(", ").next().unwrap_or("").to_owned();
            (e.client_id.clone(), last)
        })
        .collect()
}

#[test]
fn losing_a_broker_moves_only_its_devices_and_its_return_restores_them() {
    let mut gw = Gateway::start(
        &[Server::plain("mqtt", "mqtt_preread on;")],
        512,
        "max_fails=1 fail_timeout=1s",
    );
    let before = round(&gw, 1);
    assert_eq!(before.len(), DEVICES);
    let per_broker = |map: &BTreeMap<String, String>, addr: &str| {
        map.values().filter(|a| a.as_str() == addr).count()
    };
    for b in &gw.brokers {
        assert!(
            per_broker(&before, &b.addr()) > 0,
            "{} got no device",
            b.addr()
        );
    }

    // Stop the broker with the most devices.
    let lost = (0..3)
        .max_by_key(|&i| per_broker(&before, &gw.brokers[i].addr()))
        .expect("three brokers");
    let lost_addr = gw.brokers[lost].addr();
    let lost_port = gw.brokers[lost].port;
    drop(gw.brokers.remove(lost));

    let during = round(&gw, 2);
    let (mut kept, mut stayed, mut moved) = (0, 0, 0);
    for (id, was) in &before {
        let now = &during[id];
        if *was == lost_addr {
            assert_ne!(now, &lost_addr, "{id} reached the stopped broker");
            assert!(gw.broker_index(now).is_some(), "{id} went to {now}");
            moved += 1;
        } else {
            kept += 1;
            if now == was {
                stayed += 1;
            }
        }
    }
    eprintln!(
        "broker {lost_addr} lost: {stayed}/{kept} devices of the survivors kept their broker, \
         {moved} moved"
    );
    assert_eq!(stayed, kept, "survivors' devices were remapped");
    assert!(moved > 0);

    // The broker comes back on its port; after fail_timeout nginx tries it
    // again and the consistent hash gives it back its devices.
    gw.brokers.insert(lost, Broker::start_on(lost_port));
    thread::sleep(Duration::from_millis(2100));
    let after = round(&gw, 3);
    let restored = before
        .iter()
        .filter(|(id, was)| after[*id] == **was)
        .count();
    eprintln!("broker back: {restored}/{DEVICES} devices on their original broker");
    assert_eq!(after, before, "mapping not restored");
    assert!(
        gw.brokers[lost].saw_client(
            before
                .iter()
                .find(|(_, a)| **a == lost_addr)
                .map(|(id, _)| id.as_str())
                .expect("a device of the lost broker")
        ),
        "the restarted broker's log does not show its devices"
    );
    let serious = serious_lines(&gw.nginx.error_log_text());
    assert!(serious.is_empty(), "{serious:#?}");
}
