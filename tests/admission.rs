//! Admission control across two worker processes: `mqtt_limit_connect`
//! (CONNECTs per second per key) and `mqtt_limit_conn` (live sessions per
//! key, with `takeover`), with real brokers and raw clients.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use support::client::connect_packet;
use support::nginx::{check_conf, standard_conf, ACCESS_LOG_FORMAT};
use support::{
    free_port, read_lossy, wait_until, Broker, MqttCli, Nginx, RawClient, ReadEnd, Version,
};

const WAIT: Duration = Duration::from_secs(5);

/// nginx with two workers around `stream_body`.
fn two_workers(stream_body: &str, ports: &[u16]) -> Nginx {
    Nginx::start_with(|prefix| two_worker_conf(prefix, stream_body), ports)
}

fn two_worker_conf(prefix: &Path, stream_body: &str) -> String {
    standard_conf(prefix, ACCESS_LOG_FORMAT, stream_body)
        .replace("worker_processes 1;", "worker_processes 2;")
}

/// What a device read after its CONNECT.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// The broker's CONNACK: the session is open.
    Accepted,
    /// A refusal CONNACK with this code, then the close.
    Refused(u8),
    Other(Vec<u8>),
}

fn answer(reply: &ReadEnd) -> Answer {
    match reply.bytes() {
        [0x20, _, _, 0x00, ..] if !reply.is_closed() => Answer::Accepted,
        [0x20, _, _, code, ..] if reply.is_closed() => Answer::Refused(*code),
        other => Answer::Other(other.to_vec()),
    }
}

/// Connects, sends a CONNECT, and reads the answer (a refusal is followed
/// by the close, which is waited for).
fn attempt(port: u16, version: Version, client_id: &str) -> (Answer, RawClient) {
    let mut c = RawClient::plain(port);
    c.send(&connect_packet(version, client_id))
        .expect("send CONNECT");
    let mut reply = c.read_connack(WAIT);
    if let ReadEnd::Open(bytes) = &reply {
        if bytes.get(3).is_some_and(|&code| code != 0) {
            let rest = c.read_to_close(WAIT);
            let mut all = bytes.clone();
            all.extend_from_slice(rest.bytes());
            reply = ReadEnd::Closed(all);
        }
    }
    (answer(&reply), c)
}

/// 100 devices reconnecting 20 times a second for 10 s under `rate=1r/s
/// burst=3`: each is admitted at most burst + 1 + rate × elapsed times
/// (nginx's leaky bucket: the first CONNECT and the burst at once, then one
/// a second), refused devices read the code of their version, and a device
/// that keeps to the rate is never refused.
#[test]
fn connect_rate_is_limited_per_device_across_workers() {
    let broker = Broker::start();
    let port = free_port();
    let body = format!(
        "mqtt_limit_connect_zone $mqtt_client_id zone=connects:1m rate=1r/s;\n\
         server {{\n    listen 127.0.0.1:{port};\n    proxy_pass {};\n    \
         mqtt_limit_connect zone=connects burst=3;\n}}\n",
        broker.addr()
    );
    let nginx = two_workers(&body, &[port]);
    let start = Instant::now();
    let run = Duration::from_secs(10);
    let polite = thread::spawn(move || {
        let mut answers = Vec::new();
        while start.elapsed() < run {
            answers.push(attempt(port, Version::V311, "polite").0);
            thread::sleep(Duration::from_millis(1500));
        }
        answers
    });
    let devices: Vec<_> = (0..100)
        .map(|i| {
            thread::spawn(move || {
                let version = Version::ALL[i % 3];
                let id = format!("storm{i:03}");
                let (mut admitted, mut refused) = (0u32, HashMap::new());
                let mut n = 0u32;
                while start.elapsed() < run {
                    match attempt(port, version, &id).0 {
                        Answer::Accepted => admitted += 1,
                        Answer::Refused(code) => *refused.entry(code).or_insert(0u32) += 1,
                        other => panic!("{id}: {other:?}"),
                    }
                    n += 1;
                    let next = start + Duration::from_millis(50) * n;
                    thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                (version, admitted, refused, n)
            })
        })
        .collect();
    for device in devices {
        let (version, admitted, refused, attempts) = device.join().expect("device thread");
        let elapsed = start.elapsed().as_secs() as u32 + 1;
        assert!(
            admitted <= 3 + 1 + elapsed && admitted >= 4,
            "{version:?}: {admitted} admitted of {attempts}"
        );
        let code = if version == Version::V5 { 0x9F } else { 0x03 };
        assert_eq!(
            refused.keys().copied().collect::<Vec<_>>(),
            [code],
            "{version:?}: {refused:?}"
        );
        assert!(
            refused[&code] >= attempts / 2,
            "{version:?}: {refused:?} of {attempts}"
        );
    }
    let polite = polite.join().expect("polite thread");
    assert!(polite.len() >= 5, "{polite:?}");
    assert!(polite.iter().all(|a| *a == Answer::Accepted), "{polite:?}");
    let refusals = nginx
        .access_entries()
        .iter()
        .filter(|e| e.outcome() == ("503", "rate_limited"))
        .count();
    assert!(refusals > 1000, "{refusals} rate_limited sessions logged");
    let log = nginx.error_log_text();
    assert!(
        log.contains("rejected (rate_limited): too many CONNECTs for this key, zone: \"connects\", key: \"storm"),
        "{log}"
    );
    nginx.assert_no_crash();
}

/// mosquitto_pub says what the refused CONNACK says.
#[test]
fn mosquitto_pub_reads_the_rate_refusal() {
    let broker = Broker::start();
    let port = free_port();
    let body = format!(
        "mqtt_limit_connect_zone $mqtt_client_id zone=connects:1m rate=1r/m;\n\
         server {{\n    listen 127.0.0.1:{port};\n    proxy_pass {};\n    \
         mqtt_limit_connect zone=connects;\n}}\n",
        broker.addr()
    );
    let nginx = two_workers(&body, &[port]);
    for version in [Version::V311, Version::V5] {
        let id = format!("pub-{}", version.number());
        let first = MqttCli::new(port, version).id(&id).publish("t", "one");
        assert!(first.success(), "{first:?}");
        let second = MqttCli::new(port, version).id(&id).publish("t", "two");
        assert!(!second.success(), "{second:?}");
        let expected = if version == Version::V5 {
            "Connection rate exceeded"
        } else {
            "unavailable"
        };
        let output = format!("{}{}", second.stdout, second.stderr);
        assert!(output.contains(expected), "{version:?}: {second:?}");
    }
    nginx.assert_no_crash();
}

/// The worker that accepted the connection from `client`, from nginx's
/// "client ADDRESS:PORT connected" line.
fn worker_of(nginx: &Nginx, client: SocketAddr) -> u32 {
    let needle = format!("client {client} connected");
    let line = nginx.wait_error_line(&[&needle]);
    // "2026/12/01 12:00:00 [info] 1234#1234: *5 client ..."
    line.split("] ")
        .nth(1)
        .and_then(|rest| rest.split('#').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

/// A connection accepted by a worker that is (`same`) or is not the
/// worker `pid`; nothing has been sent on it.
fn connection_on(nginx: &Nginx, port: u16, pid: u32, same: bool) -> RawClient {
    for _ in 0..200 {
        let c = RawClient::plain(port);
        if (worker_of(nginx, c.session().client) == pid) == same {
            return c;
        }
    }
    panic!("no connection landed where wanted after 200 tries");
}

/// Takeover config: two listeners that reach two different brokers, so that
/// only the gateway knows the two sessions share a ClientId.
fn takeover_setup(limit: &str) -> (Nginx, [Broker; 2], [u16; 2]) {
    let brokers = [Broker::start(), Broker::start()];
    let ports = [free_port(), free_port()];
    let body = format!(
        "mqtt_limit_conn_zone $mqtt_client_id zone=sessions:1m;\n\
         map $server_port $broker {{\n    {p0} {b0};\n    {p1} {b1};\n}}\n\
         server {{\n    listen 127.0.0.1:{p0};\n    listen 127.0.0.1:{p1};\n    \
         proxy_pass $broker;\n    {limit}\n}}\n",
        p0 = ports[0],
        p1 = ports[1],
        b0 = brokers[0].addr(),
        b1 = brokers[1].addr(),
    );
    (two_workers(&body, &ports), brokers, ports)
}

fn takeover(same_worker: bool) {
    let (nginx, brokers, ports) = takeover_setup("mqtt_limit_conn zone=sessions 1 takeover;");
    let mut old = RawClient::plain(ports[0]);
    let old_worker = worker_of(&nginx, old.session().client);
    old.send(&connect_packet(Version::V5, "thing001"))
        .expect("send");
    assert_eq!(answer(&old.read_connack(WAIT)), Answer::Accepted);
    // Packets from the broker before the takeover: the DISCONNECT follows
    // them, between two packets.
    for _ in 0..3 {
        old.send(&[0xC0, 0x00]).expect("PINGREQ");
        assert_eq!(old.read_up_to(2, WAIT).bytes(), [0xD0, 0x00]);
    }
    wait_until(WAIT, "first session on broker 0", || {
        brokers[0].saw_client("thing001").then_some(())
    });

    let mut new = connection_on(&nginx, ports[1], old_worker, same_worker);
    new.send(&connect_packet(Version::V5, "thing001"))
        .expect("send");
    assert_eq!(answer(&new.read_connack(WAIT)), Answer::Accepted);
    let admitted = Instant::now();
    // The old device reads DISCONNECT 0x8E, then the close.
    let end = old.read_to_close(Duration::from_secs(2));
    let closed_after = admitted.elapsed();
    assert!(end.is_closed(), "old session still open: {end:?}");
    assert_eq!(end.bytes(), [0xE0, 0x01, 0x8E], "{end:?}");
    assert!(
        closed_after < Duration::from_secs(1),
        "closed after {closed_after:?}"
    );
    // Broker 0 lost the old session; broker 1 has the new one, which works.
    wait_until(WAIT, "old session gone from broker 0", || {
        let log = brokers[0].log_text();
        (log.contains("Client thing001 closed its connection")
            || log.contains("thing001 disconnected"))
        .then_some(())
    });
    assert!(brokers[1].saw_client("thing001"));
    new.send(&[0x30, 0x05, 0x00, 0x01, b't', 0x00, b'x'])
        .expect("PUBLISH");
    assert!(!new.read_up_to(1, Duration::from_millis(300)).is_closed());
    let log = nginx.error_log_text();
    assert!(
        log.contains("session taken over by a newer one, client_id: \"thing001\""),
        "{log}"
    );
    nginx.assert_no_crash();
}

/// The newer session of a ClientId, in the other worker, closes the older
/// one within a second; an MQTT 5 device is told why first.
#[test]
fn takeover_across_workers_closes_the_older_session() {
    takeover(false);
}

#[test]
fn takeover_in_one_worker_closes_the_older_session() {
    takeover(true);
}

/// Without takeover, the second session of a ClientId is refused and the
/// first one is untouched.
#[test]
fn session_limit_refuses_the_second_session() {
    let (nginx, brokers, ports) = takeover_setup("mqtt_limit_conn zone=sessions 1;");
    for (version, code) in [
        (Version::V311, 0x03),
        (Version::V5, 0x97),
        (Version::V31, 0x03),
    ] {
        let id = format!("single-{}", version.number());
        let (first, mut held) = attempt(ports[0], version, &id);
        assert_eq!(first, Answer::Accepted);
        let (second, _) = attempt(ports[1], version, &id);
        assert_eq!(second, Answer::Refused(code), "{version:?}");
        // The first is still open and proxied.
        held.send(&[0xC0, 0x00]).expect("PINGREQ");
        assert_eq!(
            held.read_up_to(2, WAIT).bytes(),
            [0xD0, 0x00],
            "{version:?}"
        );
        drop(held);
        // Once it has gone, the key may connect again.
        let e = nginx.wait_access(&id, |e| e.client_id == id && e.status == "200");
        assert_eq!(e.outcome(), ("200", ""));
        let (third, _) = attempt(ports[1], version, &id);
        assert_eq!(third, Answer::Accepted, "{version:?}");
    }
    let e = nginx.wait_access("session_limit", |e| e.outcome().1 == "session_limit");
    assert_eq!(e.status, "503");
    assert!(!brokers[1].saw_client("single-3.1.1"));
    nginx.assert_no_crash();
}

/// A reload keeps the zones' state: a device over its rate stays refused,
/// and a session held by an old worker still counts.
#[test]
fn reload_keeps_the_limits() {
    let broker = Broker::start();
    let (rated, limited) = (free_port(), free_port());
    let body = format!(
        "mqtt_limit_connect_zone $mqtt_client_id zone=connects:1m rate=1r/m;\n\
         mqtt_limit_conn_zone $mqtt_client_id zone=sessions:1m;\n\
         server {{\n    listen 127.0.0.1:{rated};\n    proxy_pass {b};\n    \
         mqtt_limit_connect zone=connects burst=1;\n}}\n\
         server {{\n    listen 127.0.0.1:{limited};\n    proxy_pass {b};\n    \
         mqtt_limit_conn zone=sessions 1;\n}}\n",
        b = broker.addr()
    );
    let nginx = two_workers(&body, &[rated, limited]);
    assert_eq!(attempt(rated, Version::V311, "burst").0, Answer::Accepted);
    assert_eq!(attempt(rated, Version::V311, "burst").0, Answer::Accepted);
    assert_eq!(
        attempt(rated, Version::V311, "burst").0,
        Answer::Refused(0x03)
    );
    let (held, _session) = attempt(limited, Version::V311, "holder");
    assert_eq!(held, Answer::Accepted);
    let conf = read_lossy(&nginx.conf);
    nginx.reload(Some(conf));
    // New workers, same zones: the device is still over its rate, and the
    // session an old worker holds still counts.
    assert_eq!(
        attempt(rated, Version::V311, "burst").0,
        Answer::Refused(0x03)
    );
    assert_eq!(
        attempt(limited, Version::V311, "holder").0,
        Answer::Refused(0x03)
    );
    assert_eq!(attempt(rated, Version::V311, "fresh").0, Answer::Accepted);
    nginx.assert_no_crash();
}

/// A zone too small for its keys forgets the least recently used ones, says
/// so, and keeps admitting.
#[test]
fn a_full_zone_forgets_old_keys_and_keeps_serving() {
    let broker = Broker::start();
    let port = free_port();
    let body = format!(
        "mqtt_limit_connect_zone $mqtt_client_id zone=tiny:32k rate=1r/m;\n\
         server {{\n    listen 127.0.0.1:{port};\n    proxy_pass {};\n    \
         mqtt_limit_connect zone=tiny;\n}}\n",
        broker.addr()
    );
    let nginx = two_workers(&body, &[port]);
    // 32k holds 640 slots: 2,000 keys overflow it.
    let handles: Vec<_> = (0..4)
        .map(|t| {
            thread::spawn(move || {
                for i in 0..500 {
                    let id = format!("key{t}-{i:04}");
                    assert_eq!(
                        attempt(port, Version::V311, &id).0,
                        Answer::Accepted,
                        "{id}"
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let log = nginx.wait_error_line(&["mqtt_limit_connect_zone \"tiny\" is full"]);
    assert!(log.contains("[warn]"), "{log}");
    // A key just admitted is known (nothing newer has pushed it out); the
    // first ones were forgotten.
    assert_eq!(attempt(port, Version::V311, "last-key").0, Answer::Accepted);
    assert_eq!(
        attempt(port, Version::V311, "last-key").0,
        Answer::Refused(0x03)
    );
    assert_eq!(
        attempt(port, Version::V311, "key0-0000").0,
        Answer::Accepted
    );
    nginx.assert_no_crash();
}

/// What `nginx -t` says of configurations it must refuse.
#[test]
fn bad_limit_configurations_are_refused() {
    let cases = [
        ("mqtt_limit_connect_zone $mqtt_client_id zone=z:1m rate=fast;", "invalid rate \"rate=fast\""),
        ("mqtt_limit_connect_zone $mqtt_client_id zone=z rate=1r/s;", "no zone size"),
        ("mqtt_limit_conn_zone $mqtt_client_id zone=z:1k;", "zone \"z\" is too small"),
        (
            "mqtt_limit_conn_zone $mqtt_client_id zone=z:1m;\nmqtt_limit_conn_zone $mqtt_client_id zone=z:1m;",
            "mqtt_limit_conn_zone \"z\" is duplicate",
        ),
        (
            "mqtt_limit_conn_zone $mqtt_client_id zone=z:1m;\nserver { listen 127.0.0.1:1; proxy_pass 127.0.0.1:2; mqtt_limit_conn zone=z 5 takeover; }",
            "allows at most 4 sessions per key",
        ),
        (
            "server { listen 127.0.0.1:1; proxy_pass 127.0.0.1:2; mqtt_limit_conn zone=nowhere 1; }",
            "zero size shared memory zone \"nowhere\"",
        ),
        (
            "mqtt_limit_conn_zone $mqtt_client_id zone=z:1m;\nserver { listen 127.0.0.1:1; proxy_pass 127.0.0.1:2; mqtt_limit_connect zone=z; }",
            "is already declared for a different use",
        ),
    ];
    for (body, expected) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("nginx.conf");
        std::fs::create_dir_all(dir.path().join("logs")).expect("logs");
        std::fs::write(&conf, two_worker_conf(dir.path(), body)).expect("write");
        let out = check_conf(dir.path(), &conf);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{body}: accepted");
        assert!(stderr.contains(expected), "{body}: {stderr}");
    }
}

/// What 10 MB holds, as the zones say at start-up: at least 100,000 keys of
/// either kind.
#[test]
fn ten_megabytes_hold_over_100000_keys() {
    let port = free_port();
    let body = format!(
        "mqtt_limit_connect_zone $mqtt_client_id zone=connects:10m rate=1r/s;\n\
         mqtt_limit_conn_zone $mqtt_client_id zone=sessions:10m;\n\
         server {{\n    listen 127.0.0.1:{port};\n    proxy_pass 127.0.0.1:1;\n    \
         mqtt_limit_connect zone=connects;\n    mqtt_limit_conn zone=sessions 1;\n}}\n"
    );
    let nginx = two_workers(&body, &[port]);
    for (zone, bytes) in [
        ("mqtt_limit_connect_zone \"connects\"", 32),
        ("mqtt_limit_conn_zone \"sessions\"", 88),
    ] {
        let line = nginx.wait_error_line(&[zone, "keys of"]);
        let keys: usize = line
            .split(": ")
            .last()
            .and_then(|tail| tail.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(keys >= 100_000, "{line}");
        assert!(line.ends_with(&format!("keys of {bytes} bytes")), "{line}");
    }
}
