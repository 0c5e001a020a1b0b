//! `mqtt_metrics` and `mqtt_status`: a real Prometheus scrapes nginx (two
//! workers) while devices connect, are refused and hold sessions, and its
//! query API returns exactly what happened, before and after a reload.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use support::nginx::{check_conf, main_context, ACCESS_LOG_FORMAT};
use support::prometheus::{http_exchange, http_get, promtool_check_metrics, Prometheus};
use support::{free_port, Broker, Nginx, RawClient, SessionKey, Version};

const WAIT: Duration = Duration::from_secs(10);

/// The counted servers.
const SERVERS: [&str; 5] = ["devices", "secure", "legacy", "fleet", "capped"];

/// The listeners of the scenario.
struct Ports {
    /// `mqtt_metrics devices`, `reuseport`: the kernel spreads its sessions
    /// over both workers.
    devices: u16,
    /// `mqtt_metrics secure` with `mqtt_client_id_match cn` on plain TCP:
    /// every device is refused with no_certificate.
    secure: u16,
    /// `mqtt_metrics legacy` with `mqtt_reject_malformed off`.
    legacy: u16,
    /// `mqtt_metrics fleet`, one live session per ClientId: a newcomer
    /// takes over.
    fleet: u16,
    /// `mqtt_metrics capped`, one live session per ClientId: a newcomer is
    /// refused with session_limit.
    capped: u16,
    /// Parses CONNECTs but is not counted.
    uncounted: u16,
    http: u16,
}

fn conf(prefix: &Path, broker: &Broker, p: &Ports) -> String {
    let prefix_text = prefix.display();
    let server = |port: u16, listen: &str, directives: &str| {
        format!(
            "server {{ listen 127.0.0.1:{port}{listen}; proxy_pass {}; {directives} }}\n",
            broker.addr()
        )
    };
    format!(
        "{main}\
         stream {{\n\
         log_format mqtt '{ACCESS_LOG_FORMAT}\t$pid';\n\
         access_log {prefix_text}/access.log mqtt;\n\
         mqtt_limit_conn_zone $mqtt_client_id zone=sessions:1m;\n\
         {devices}{secure}{legacy}{fleet}{capped}{uncounted}\
         }}\n\
         http {{\n\
         access_log off;\n\
         server {{ listen 127.0.0.1:{http}; location = /metrics {{ mqtt_status; }} }}\n\
         }}\n",
        main = main_context(prefix).replace("worker_processes 1;", "worker_processes 2;"),
        devices = server(p.devices, " reuseport", "mqtt_metrics devices;"),
        secure = server(
            p.secure,
            "",
            "mqtt_metrics secure; mqtt_client_id_match cn;"
        ),
        legacy = server(
            p.legacy,
            "",
            "mqtt_metrics legacy; mqtt_reject_malformed off;"
        ),
        fleet = server(
            p.fleet,
            "",
            "mqtt_metrics fleet; mqtt_limit_conn zone=sessions 1 takeover;"
        ),
        capped = server(
            p.capped,
            "",
            "mqtt_metrics capped; mqtt_limit_conn zone=sessions 1;"
        ),
        uncounted = server(p.uncounted, "", "mqtt_preread on;"),
        http = p.http,
    )
}

/// What the test did, and so what Prometheus must report.
#[derive(Default)]
struct Expected {
    connects: BTreeMap<(String, String, String), u64>,
    sessions: BTreeMap<String, i64>,
    /// CONNECTs that parsed, and their bytes.
    sizes: BTreeMap<String, (u64, u64)>,
    decisions: BTreeMap<String, u64>,
    takeovers: BTreeMap<String, u64>,
    /// Sessions whose access-log entry shows that nginx has finished with
    /// them.
    ended: Vec<SessionKey>,
}

impl Expected {
    fn decided(&mut self, server: &str, version: &str, outcome: &str, size: Option<usize>) {
        *self
            .connects
            .entry((server.into(), version.into(), outcome.into()))
            .or_default() += 1;
        *self.decisions.entry(server.into()).or_default() += 1;
        if let Some(size) = size {
            let s = self.sizes.entry(server.into()).or_default();
            s.0 += 1;
            s.1 += size as u64;
        }
    }
}

fn version_label(version: Version) -> &'static str {
    match version {
        Version::V31 => "3.1",
        Version::V311 => "3.1.1",
        Version::V5 => "5.0",
    }
}

/// A device whose CONNECT the broker accepts; the session stays open until
/// the client is dropped.
fn accepted(
    x: &mut Expected,
    server: &str,
    port: u16,
    version: Version,
    id: &str,
) -> (RawClient, SessionKey) {
    let packet = support::client::connect_packet(version, id);
    let mut c = RawClient::plain(port);
    let key = c.session();
    c.send(&packet).expect("send CONNECT");
    let connack = c.read_connack(WAIT);
    let bytes = connack.bytes();
    assert!(
        bytes.first() == Some(&0x20) && bytes.get(3) == Some(&0),
        "{id}: no accepting CONNACK: {connack:?}"
    );
    if !server.is_empty() {
        x.decided(
            server,
            version_label(version),
            "accepted",
            Some(packet.len()),
        );
    }
    (c, key)
}

/// An accepted session, closed again.
fn accepted_and_closed(x: &mut Expected, server: &str, port: u16, version: Version, id: &str) {
    let (c, key) = accepted(x, server, port, version, id);
    drop(c);
    x.ended.push(key);
}

/// A session that sends `bytes` (then half-closes when `half_close`) and
/// is closed by nginx.
fn refused(port: u16, bytes: &[u8], half_close: bool) -> SessionKey {
    let mut c = RawClient::plain(port);
    let key = c.session();
    c.send(bytes).expect("send");
    if half_close {
        c.shutdown_write();
    }
    assert!(c.read_to_close(WAIT).is_closed(), "nginx kept {key:?} open");
    key
}

/// Waits until nginx has logged every session of `x.ended`; returns the
/// worker PIDs that logged them.
fn wait_ended(nginx: &Nginx, x: &Expected) -> Vec<String> {
    x.ended
        .iter()
        .map(|&key| {
            let e = nginx.wait_access_session(key);
            e.extra.first().cloned().unwrap_or_default()
        })
        .collect()
}

/// Prometheus's view equals `x`, series by series.
fn assert_prometheus_reports(prometheus: &Prometheus, x: &Expected) {
    prometheus.wait_for_scrape();
    let servers = SERVERS;

    let reported: BTreeMap<(String, String, String), u64> = prometheus
        .query("nginx_mqtt_connects_total > 0")
        .into_iter()
        .map(|s| {
            let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            ((l("server"), l("version"), l("outcome")), s.value as u64)
        })
        .collect();
    assert_eq!(reported, x.connects, "nginx_mqtt_connects_total");

    // Every version and outcome is exposed, with zeros, for the counted
    // servers and for no other.
    let per_server = by_server(prometheus, "count by (server) (nginx_mqtt_connects_total)");
    let all = 4.0 * 16.0;
    assert_eq!(
        per_server,
        servers.iter().map(|s| (s.to_string(), all)).collect(),
        "series per server"
    );

    let expect = |f: &dyn Fn(&str) -> f64| -> BTreeMap<String, f64> {
        servers.iter().map(|s| (s.to_string(), f(s))).collect()
    };
    assert_eq!(
        by_server(prometheus, "nginx_mqtt_sessions"),
        expect(&|s| x.sessions.get(s).copied().unwrap_or(0) as f64),
        "nginx_mqtt_sessions"
    );
    assert_eq!(
        by_server(prometheus, "nginx_mqtt_connect_duration_seconds_count"),
        expect(&|s| x.decisions.get(s).copied().unwrap_or(0) as f64),
        "nginx_mqtt_connect_duration_seconds_count"
    );
    assert_eq!(
        by_server(
            prometheus,
            "nginx_mqtt_connect_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        expect(&|s| x.decisions.get(s).copied().unwrap_or(0) as f64),
        "the +Inf bucket counts every decision"
    );
    assert_eq!(
        by_server(prometheus, "nginx_mqtt_connect_size_bytes_count"),
        expect(&|s| x.sizes.get(s).map_or(0, |v| v.0) as f64),
        "nginx_mqtt_connect_size_bytes_count"
    );
    assert_eq!(
        by_server(prometheus, "nginx_mqtt_connect_size_bytes_sum"),
        expect(&|s| x.sizes.get(s).map_or(0, |v| v.1) as f64),
        "nginx_mqtt_connect_size_bytes_sum"
    );
    assert_eq!(
        by_server(prometheus, "nginx_mqtt_takeovers_total"),
        expect(&|s| x.takeovers.get(s).copied().unwrap_or(0) as f64),
        "nginx_mqtt_takeovers_total"
    );
}

fn by_server(prometheus: &Prometheus, query: &str) -> BTreeMap<String, f64> {
    prometheus
        .query(query)
        .into_iter()
        .map(|s| (s.labels.get("server").cloned().unwrap_or_default(), s.value))
        .collect()
}

#[test]
fn prometheus_reports_exactly_the_sessions_of_both_workers_across_a_reload() {
    let broker = Broker::start();
    let p = Ports {
        devices: free_port(),
        secure: free_port(),
        legacy: free_port(),
        fleet: free_port(),
        capped: free_port(),
        uncounted: free_port(),
        http: free_port(),
    };
    let nginx = Nginx::start_with(
        |prefix| conf(prefix, &broker, &p),
        &[
            p.devices,
            p.secure,
            p.legacy,
            p.fleet,
            p.capped,
            p.uncounted,
            p.http,
        ],
    );
    let prometheus = Prometheus::start("nginx", &format!("127.0.0.1:{}", p.http), "/metrics");
    let mut x = Expected::default();

    // Accepted on every version; two sessions held open.
    let (held_311, _) = accepted(&mut x, "devices", p.devices, Version::V311, "held-311");
    let (held_5, _) = accepted(&mut x, "devices", p.devices, Version::V5, "held-5");
    x.sessions.insert("devices".into(), 2);
    for (i, version) in Version::ALL.into_iter().enumerate() {
        accepted_and_closed(&mut x, "devices", p.devices, version, &format!("d-{i}"));
    }
    // Enough short sessions that both workers take some (reuseport hashes
    // each connection's distinct source address to a worker).
    for i in 0..32 {
        accepted_and_closed(
            &mut x,
            "devices",
            p.devices,
            Version::V311,
            &format!("bulk-{i}"),
        );
    }

    // Refused, for several reasons.
    x.ended.push(refused(p.devices, &[0x30, 0x00], false));
    x.decided("devices", "unknown", "malformed", None);
    let mut v6 = support::client::connect_packet(Version::V311, "v6");
    v6[8] = 6; // the protocol level byte
    x.ended.push(refused(p.devices, &v6, false));
    x.decided("devices", "unknown", "unsupported_version", None);
    let empty_31 = support::client::connect_packet(Version::V31, "");
    x.ended.push(refused(p.devices, &empty_31, false));
    x.decided("devices", "3.1", "client_id_rejected", None);
    let partial = support::client::connect_packet(Version::V311, "partial");
    x.ended.push(refused(p.devices, &partial[..6], true));
    x.decided("devices", "unknown", "incomplete", None);
    for version in [Version::V311, Version::V5] {
        let packet = support::client::connect_packet(version, "no-cert");
        x.ended.push(refused(p.secure, &packet, false));
        x.decided(
            "secure",
            version_label(version),
            "no_certificate",
            Some(packet.len()),
        );
    }
    // Proxied unparsed: the broker closes on the bytes that are no CONNECT.
    x.ended.push(refused(p.legacy, &[0x30, 0x00], false));
    x.decided("legacy", "unknown", "proxied_unparsed", None);
    accepted_and_closed(&mut x, "legacy", p.legacy, Version::V311, "legacy-1");
    // Admission control: a second session of a ClientId takes the first
    // one over (which the gateway closes), or is refused.
    let (first, first_key) = accepted(&mut x, "fleet", p.fleet, Version::V5, "dup");
    let (_second, _) = accepted(&mut x, "fleet", p.fleet, Version::V5, "dup");
    *x.takeovers.entry("fleet".into()).or_default() += 1;
    x.sessions.insert("fleet".into(), 1);
    x.ended.push(first_key);
    let (_capped, _) = accepted(&mut x, "capped", p.capped, Version::V311, "cap");
    x.sessions.insert("capped".into(), 1);
    let packet = support::client::connect_packet(Version::V311, "cap");
    x.ended.push(refused(p.capped, &packet, false));
    x.decided("capped", "3.1.1", "session_limit", Some(packet.len()));
    drop(first);
    // Not counted anywhere.
    accepted_and_closed(&mut x, "", p.uncounted, Version::V311, "uncounted-1");

    let workers: std::collections::BTreeSet<String> = wait_ended(&nginx, &x).into_iter().collect();
    // The harness's readiness probe of each port (from 127.0.0.1; the raw
    // clients connect from 127.1.x.x) closed without a CONNECT: incomplete.
    for e in nginx.access_entries() {
        if e.remote_addr != "127.0.0.1" {
            continue;
        }
        assert_eq!(e.reject_reason, "incomplete", "{e:?}");
        let port: u16 = e.server_port.parse().expect("$server_port");
        let server = [
            (p.devices, "devices"),
            (p.secure, "secure"),
            (p.legacy, "legacy"),
            (p.fleet, "fleet"),
            (p.capped, "capped"),
        ]
        .into_iter()
        .find_map(|(p, name)| (p == port).then_some(name));
        if let Some(server) = server {
            x.decided(server, "unknown", "incomplete", None);
        }
    }
    assert_eq!(workers.len(), 2, "sessions were served by {workers:?}");
    assert_prometheus_reports(&prometheus, &x);

    // A reload keeps the zone and its counts; the old workers still hold
    // the two sessions, and one closing there leaves the gauge.
    let reloaded =
        conf(&nginx.prefix, &broker, &p).replace("access_log off;", "access_log off; # reloaded");
    nginx.reload(Some(reloaded));
    drop(held_311);
    x.sessions.insert("devices".into(), 1);
    accepted_and_closed(&mut x, "devices", p.devices, Version::V311, "after-reload");
    let packet = support::client::connect_packet(Version::V311, "no-cert-2");
    x.ended.push(refused(p.secure, &packet, false));
    x.decided("secure", "3.1.1", "no_certificate", Some(packet.len()));
    // The held session ends in the log phase of its old worker.
    wait_ended(&nginx, &x);
    nginx.wait_access_for("held-311");
    assert_prometheus_reports(&prometheus, &x);
    drop(held_5);
    nginx.assert_no_crash();
}

#[test]
fn mqtt_status_answers_get_and_head_in_a_format_promtool_accepts() {
    let broker = Broker::start();
    let (mqtt, http) = (free_port(), free_port());
    let nginx = Nginx::start_with(
        |prefix| {
            format!(
                "{main}stream {{ server {{ listen 127.0.0.1:{mqtt}; proxy_pass {broker}; \
                 mqtt_metrics \"quoted \\\"name\\\"\"; mqtt_client_id_match cn; }} }}\n\
                 http {{ access_log off; server {{ listen 127.0.0.1:{http}; \
                 location /status {{ mqtt_status; }} }} }}\n",
                main = main_context(prefix),
                broker = broker.addr()
            )
        },
        &[mqtt, http],
    );
    refused(
        mqtt,
        &support::client::connect_packet(Version::V5, "x"),
        false,
    );
    let addr = format!("127.0.0.1:{http}");
    let body = support::wait_until(WAIT, "the refusal counted", || {
        let (_, body) = http_get(&addr, "/status").ok()?;
        let text = String::from_utf8_lossy(&body).into_owned();
        text.contains(
            "nginx_mqtt_connects_total{server=\"quoted \\\"name\\\"\",version=\"5.0\",outcome=\"no_certificate\"} 1\n",
        )
        .then_some(body)
    });
    let (ok, report) = promtool_check_metrics(&body);
    assert!(ok && report.trim().is_empty(), "promtool: {report}");

    let (status, headers, get_body) = http_exchange(&addr, "GET", "/status").expect("GET");
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("content-type: text/plain; version=0.0.4")),
        "{headers:?}"
    );
    let (status, _, head_body) = http_exchange(&addr, "HEAD", "/status").expect("HEAD");
    assert_eq!((status, head_body.len()), (200, 0));
    let (status, _, _) = http_exchange(&addr, "POST", "/status").expect("POST");
    assert_eq!(status, 405);
    assert!(!get_body.is_empty());
    nginx.assert_no_crash();
}

#[test]
fn mqtt_metrics_takes_one_name_in_a_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = dir.path();
    let check = |stream_body: &str| {
        let conf = prefix.join("nginx.conf");
        std::fs::write(
            &conf,
            format!("{}stream {{\n{stream_body}\n}}\n", main_context(prefix)),
        )
        .expect("write nginx.conf");
        let out = check_conf(prefix, &conf);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let server = |directives: &str| {
        format!(
            "server {{ listen 127.0.0.1:{}; proxy_pass 127.0.0.1:1; {directives} }}",
            free_port()
        )
    };
    let (ok, err) = check(&server("mqtt_metrics a;"));
    assert!(ok, "{err}");
    // Two servers may share a name: they are counted together.
    let (ok, err) = check(&format!(
        "{}{}",
        server("mqtt_metrics a;"),
        server("mqtt_metrics a;")
    ));
    assert!(ok, "{err}");
    let (ok, err) = check(&server("mqtt_metrics a; mqtt_metrics b;"));
    assert!(
        !ok && err.contains("\"mqtt_metrics\" directive is duplicate"),
        "{err}"
    );
    let (ok, err) = check(&server("mqtt_metrics \"\";"));
    assert!(
        !ok && err.contains("empty name in \"mqtt_metrics\""),
        "{err}"
    );
    let (ok, err) = check(&format!("mqtt_metrics a;\n{}", server("")));
    assert!(
        !ok && err.contains("\"mqtt_metrics\" directive is not allowed here"),
        "{err}"
    );
}
