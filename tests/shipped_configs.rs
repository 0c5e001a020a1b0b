//! The annotated configurations in `nginx-conf/`, run as shipped: only the
//! addresses, certificate paths and module path are swapped for the test's.

mod support;

use std::path::Path;
use std::time::Duration;

use support::nginx::main_context;
use support::{
    broker, free_port, pki, read_lossy, render, repo_conf, wait_until, Broker, MqttCli, Nginx,
    RawClient, Version, DEADLINE,
};

/// A shipped config running against three test brokers.
struct Shipped {
    nginx: Nginx,
    brokers: [Broker; 3],
    plain: u16,
    tls: u16,
    /// The http listener of `mqtt_status`, where the config has one.
    http: u16,
}

impl Shipped {
    fn start(name: &str) -> Shipped {
        let template = repo_conf(name);
        let brokers = broker::three();
        let (plain, tls, http) = (free_port(), free_port(), free_port());
        let pki = pki();
        let mut ports = Vec::new();
        if template.contains("127.0.0.1:9145;") {
            ports.push(http);
        }
        if template.contains("127.0.0.1:1883;") {
            ports.push(plain);
        }
        if template.contains("127.0.0.1:8883 ssl;") {
            ports.push(tls);
        }
        let nginx = Nginx::start_with(
            |prefix| {
                std::fs::create_dir_all(prefix.join("logs")).expect("logs dir");
                let mut replacements = vec![
                    (
                        "load_module modules/ngx_stream_mqtt_preread_module.so;\n",
                        String::new(),
                    ),
                    ("127.0.0.1:18831;", format!("{};", brokers[0].addr())),
                    ("127.0.0.1:18832;", format!("{};", brokers[1].addr())),
                    ("127.0.0.1:18833;", format!("{};", brokers[2].addr())),
                ];
                if template.contains("127.0.0.1:1883;") {
                    replacements.push(("127.0.0.1:1883;", format!("127.0.0.1:{plain};")));
                }
                if template.contains("127.0.0.1:8883 ssl;") {
                    replacements.push(("127.0.0.1:8883 ssl;", format!("127.0.0.1:{tls} ssl;")));
                    replacements.push((" certs/server.crt;", path(&pki.server_chain)));
                    replacements.push((" certs/server.key;", path(&pki.server_key)));
                }
                if template.contains("127.0.0.1:9145;") {
                    replacements.push(("127.0.0.1:9145;", format!("127.0.0.1:{http};")));
                }
                if template.contains("certs/ca-chain.pem;") {
                    replacements.push((" certs/ca-chain.pem;", path(&pki.ca_chain)));
                }
                // The test's main context loads the module (after Debian's
                // stream module, when testing that nginx) and runs nginx in
                // the foreground; the shipped worker/log settings stay.
                let main = main_context(prefix)
                    .lines()
                    .filter(|line| {
                        line.starts_with("load_module")
                            || line.starts_with("daemon")
                            || line.starts_with("pid")
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                format!("{main}\n{}", render(&template, &replacements))
            },
            &ports,
        );
        Shipped {
            nginx,
            brokers,
            plain,
            tls,
            http,
        }
    }

    fn access_log(&self) -> String {
        read_lossy(&self.nginx.prefix.join("logs/mqtt-access.log"))
    }

    fn error_log(&self) -> String {
        read_lossy(&self.nginx.prefix.join("logs/error.log"))
    }

    /// Waits for the access-log line that contains `needle` and returns it.
    fn wait_access(&self, needle: &str) -> String {
        wait_until(DEADLINE, &format!("access log line with {needle}"), || {
            self.access_log()
                .lines()
                .find(|line| line.contains(needle))
                .map(str::to_owned)
        })
    }

    /// The broker an access-log line names as `upstream=`.
    fn broker_of(&self, line: &str) -> &Broker {
        self.brokers
            .iter()
            .find(|broker| line.contains(&format!("upstream={}", broker.addr())))
            .unwrap_or_else(|| panic!("no broker in {line:?}"))
    }
}

impl Drop for Shipped {
    fn drop(&mut self) {
        let log = self.error_log();
        if !std::thread::panicking() {
            assert!(
                !log.contains("exited on signal"),
                "a worker crashed:\n{log}"
            );
        }
    }
}

fn path(p: &Path) -> String {
    format!(" {};", p.display())
}

#[test]
fn persistence_conf_routes_a_client_id_to_the_same_broker() {
    let gw = Shipped::start("persistence.conf");
    let cli = MqttCli::new(gw.plain, Version::V311).id("thing001");
    assert!(cli.publish("t", "1").success());
    let first = gw.wait_access("client_id=\"thing001\"");
    assert!(first.contains("status=200"), "{first}");
    let broker = gw.broker_of(&first);
    assert!(broker.saw_client("thing001"));

    assert!(MqttCli::new(gw.plain, Version::V5)
        .id("thing001")
        .publish("t", "2")
        .success());
    wait_until(DEADLINE, "second session logged", || {
        let lines: Vec<String> = gw
            .access_log()
            .lines()
            .filter(|l| l.contains("client_id=\"thing001\""))
            .map(str::to_owned)
            .collect();
        (lines.len() == 2).then_some(lines)
    })
    .iter()
    .for_each(|line| assert!(std::ptr::eq(gw.broker_of(line), broker), "{line}"));
}

#[test]
fn persistence_conf_rejects_what_is_not_mqtt() {
    let gw = Shipped::start("persistence.conf");
    let mut client = RawClient::plain(gw.plain);
    client
        .send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert!(client.read_to_close(Duration::from_secs(5)).is_closed());
    let line = gw.wait_access("reject=\"malformed\"");
    assert!(
        line.contains("status=400") && line.contains("upstream=-"),
        "{line}"
    );
}

#[test]
fn tls_conf_terminates_tls_and_reads_the_client_id() {
    let gw = Shipped::start("tls.conf");
    let pki = pki();
    let result = MqttCli::new(gw.tls, Version::V5)
        .id("thing002")
        .tls(pki, None)
        .publish("t", "1");
    assert!(result.success(), "{result:?}");
    let line = gw.wait_access("client_id=\"thing002\"");
    assert!(
        line.contains("TLSv1.3") && line.contains("status=200"),
        "{line}"
    );
    assert!(gw.broker_of(&line).saw_client("thing002"));
}

#[test]
fn iot_gateway_conf_binds_the_client_id_to_the_certificate() {
    let gw = Shipped::start("iot-gateway.conf");
    let pki = pki();
    let thing001 = pki.client("thing001");

    let ok = MqttCli::new(gw.tls, Version::V311)
        .id("thing001")
        .tls(pki, Some(thing001));
    assert!(ok.publish("t", "1").success());
    let line = gw.wait_access("client_id=\"thing001\" cert_cn=\"thing001\"");
    assert!(line.contains("status=200"), "{line}");

    let spoof = MqttCli::new(gw.tls, Version::V311)
        .id("thing002")
        .tls(pki, Some(thing001));
    let refused = spoof.publish("t", "1");
    assert!(
        refused.stderr.contains("identifier rejected"),
        "{refused:?}"
    );
    let line = gw.wait_access("reject=\"client_id_mismatch\"");
    assert!(
        line.contains("status=403") && line.contains("upstream=-"),
        "{line}"
    );

    let anonymous = MqttCli::new(gw.tls, Version::V5)
        .id("thing003")
        .tls(pki, None);
    let refused = anonymous.publish("t", "1");
    assert!(refused.stderr.contains("Not authorized"), "{refused:?}");
    gw.wait_access("reject=\"no_certificate\"");
    assert!(gw
        .brokers
        .iter()
        .all(|b| !b.saw_client("thing002") && !b.saw_client("thing003")));
}

#[test]
fn njs_migration_conf_keeps_the_recipe_behaviour() {
    let gw = Shipped::start("njs-migration.conf");
    assert!(MqttCli::new(gw.plain, Version::V311)
        .id("thing001")
        .publish("t", "1")
        .success());
    // The recipe's log format ends with the ClientId.
    let line = gw.wait_access(" thing001");
    assert!(line.contains(" 200 "), "{line}");

    // Like the njs recipe, what is not a CONNECT is proxied, not refused.
    let mut client = RawClient::plain(gw.plain);
    client.send(b"\x30\x02\x00\x00").expect("send");
    client.read_to_close(Duration::from_secs(5));
    // The line of that session: status 200, proxied to a broker (which
    // closed on the PUBLISH), and no ClientId at the end.
    wait_until(DEADLINE, "the proxied non-CONNECT session", || {
        gw.access_log().lines().find_map(|line| {
            let proxied = line.contains(" 200 ")
                && !line.ends_with("thing001")
                && gw
                    .brokers
                    .iter()
                    .any(|b| line.ends_with(&format!("{} ", b.addr())));
            proxied.then_some(())
        })
    });
}

#[test]
fn demo_conf_serves_both_listeners() {
    let gw = Shipped::start("demo.conf");
    let pki = pki();
    assert!(MqttCli::new(gw.plain, Version::V311)
        .id("thing001")
        .publish("t", "1")
        .success());
    let plain = gw.wait_access("client_id=\"thing001\" cert_cn=\"\"");
    let tls = MqttCli::new(gw.tls, Version::V311)
        .id("thing001")
        .tls(pki, Some(pki.client("thing001")));
    assert!(tls.publish("t", "2").success());
    let mutual = gw.wait_access("client_id=\"thing001\" cert_cn=\"thing001\"");
    assert!(std::ptr::eq(gw.broker_of(&plain), gw.broker_of(&mutual)));
}

#[test]
fn connect_rewrite_conf_hands_the_certificate_identity_to_the_broker() {
    let gw = Shipped::start("connect-rewrite.conf");
    let pki = pki();
    let thing001 = pki.client("thing001");
    // The device sends another device's username and a password.
    let device = MqttCli::new(gw.tls, Version::V5)
        .id("thing001")
        .tls(pki, Some(thing001))
        .args(&["-u", "thing002", "-P", "not-for-the-broker"]);
    assert!(device.publish("devices/thing001/t", "1").success());
    let line = gw.wait_access("client_id=\"thing001\"");
    assert!(
        line.contains("device_username=\"thing002\"") && line.contains("status=200"),
        "{line}"
    );
    let broker = gw.broker_of(&line);
    let connected = wait_until(DEADLINE, "the broker's connection line", || {
        broker
            .log_text()
            .lines()
            .find(|l| l.contains("New client connected") && l.contains(" as thing001 "))
            .map(str::to_owned)
    });
    // mosquitto prints the username it received (tests/rewrite.rs checks
    // the packet byte for byte, the password's absence included).
    assert!(connected.contains("u'thing001'"), "{connected}");
}

#[test]
fn admission_conf_limits_reconnects_and_takes_over_sessions() {
    let gw = Shipped::start("admission.conf");
    let pki = pki();
    let cli = |id: &str| {
        MqttCli::new(gw.tls, Version::V5)
            .id(id)
            .tls(pki, Some(pki.client(id)))
    };
    // One live session per certificate: the newcomer takes over.
    let sub = cli("thing001").subscribe("devices/thing001/#");
    wait_until(DEADLINE, "the subscriber's session", || {
        gw.brokers
            .iter()
            .any(|b| b.saw_client("thing001"))
            .then_some(())
    });
    assert!(cli("thing001").publish("devices/thing001/t", "1").success());
    // The gateway admits the newcomer in place of the subscriber's session
    // and closes that. (Here both reach the same broker, which may close the
    // old session first; tests/admission.rs sends them to two brokers.)
    let line = wait_until(DEADLINE, "the takeover in the error log", || {
        gw.error_log()
            .lines()
            .find(|l| {
                l.contains("takes over the session of connection")
                    && l.contains("key: \"thing001\"")
            })
            .map(str::to_owned)
    });
    assert!(
        line.contains("[info]") && line.contains("in \"sessions\""),
        "{line}"
    );
    drop(sub);
    // 10 a minute with a burst of 5: six CONNECTs at once pass, the
    // seventh is refused.
    for n in 0..6 {
        let result = cli("thing002").publish("devices/thing002/t", &n.to_string());
        assert!(result.success(), "CONNECT {n}: {result:?}");
    }
    let refused = cli("thing002").publish("devices/thing002/t", "7");
    assert!(
        refused.stderr.contains("Connection rate exceeded"),
        "{refused:?}"
    );
    let line = gw.wait_access("reject=\"rate_limited\"");
    assert!(
        line.contains("status=503") && line.contains("upstream=-"),
        "{line}"
    );
}

#[test]
fn metrics_conf_serves_the_counts_of_the_devices_server() {
    let gw = Shipped::start("metrics.conf");
    assert!(MqttCli::new(gw.plain, Version::V311)
        .id("thing001")
        .publish("t", "m")
        .success());
    let mut junk = RawClient::plain(gw.plain);
    junk.send(&[0x30, 0x00]).expect("send");
    assert!(junk.read_to_close(DEADLINE).is_closed());
    gw.wait_access("reject=\"malformed\"");
    let addr = format!("127.0.0.1:{}", gw.http);
    let (status, body) = support::prometheus::http_get(&addr, "/metrics").expect("GET /metrics");
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{text}");
    for line in [
        "nginx_mqtt_connects_total{server=\"devices\",version=\"3.1.1\",outcome=\"accepted\"} 1",
        "nginx_mqtt_connects_total{server=\"devices\",version=\"unknown\",outcome=\"malformed\"} 1",
        "nginx_mqtt_connect_size_bytes_count{server=\"devices\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
    }
}

#[test]
fn low_memory_conf_proxies_over_small_buffers_from_several_source_addresses() {
    let gw = Shipped::start("low-memory.conf");
    let pki = pki();
    let cli = |id: &str| {
        MqttCli::new(gw.tls, Version::V311)
            .id(id)
            .tls(pki, Some(pki.client(id)))
    };
    // A message three times proxy_buffer_size crosses intact.
    let big = "x".repeat(3000);
    assert!(cli("thing001")
        .publish("devices/thing001/t", &big)
        .success());
    let line = gw.wait_access("client_id=\"thing001\"");
    assert!(line.contains("status=200"), "{line}");
    let broker = gw.broker_of(&line);
    let log = wait_until(DEADLINE, "the broker's PUBLISH line", || {
        let log = broker.log_text();
        log.lines()
            .any(|l| l.contains("Received PUBLISH from thing001") && l.contains("(3000 bytes)"))
            .then_some(log)
    });
    // The upstream connection left from one of the split_clients addresses.
    let connected = log
        .lines()
        .find(|l| l.contains("New client connected") && l.contains(" as thing001 "))
        .unwrap_or_else(|| panic!("no connection line in\n{log}"));
    assert!(
        (1..=4).any(|k| connected.contains(&format!("from 127.0.1.{k}:"))),
        "{connected}"
    );
    // The certificate still binds the ClientId.
    let spoof = MqttCli::new(gw.tls, Version::V311)
        .id("thing002")
        .tls(pki, Some(pki.client("thing001")));
    assert!(spoof
        .publish("t", "1")
        .stderr
        .contains("identifier rejected"));
    let line = gw.wait_access("reject=\"client_id_mismatch\"");
    assert!(
        line.contains("status=403") && line.contains("upstream=-"),
        "{line}"
    );
}
