//! Directive parsing and inheritance from `stream {}` into `server {}`.

mod support;

use support::nginx::{check_conf, hashed_upstream, main_context, server, tls_directives};
use support::{broker, free_port, pki, MqttCli, Nginx, Version};

#[test]
fn stream_level_directives_apply_to_every_server() {
    let brokers = broker::three();
    let (plain, tls) = (free_port(), free_port());
    let pki = pki();
    let body = format!(
        "mqtt_preread on;\nmqtt_client_id_match cn;\n{upstream}{plain_server}{tls_server}",
        upstream = hashed_upstream("brokers", &[&brokers[0], &brokers[1], &brokers[2]]),
        // Plain TCP has no certificate: the inherited policy refuses everyone.
        plain_server = server(&format!("127.0.0.1:{plain}"), "brokers", ""),
        tls_server = server(
            &format!("127.0.0.1:{tls} ssl"),
            "brokers",
            &tls_directives(pki, "optional")
        ),
    );
    let nginx = Nginx::start(&body, &[plain, tls]);

    let r = MqttCli::new(plain, Version::V311)
        .id("thing001")
        .publish("t", "m");
    assert!(r.stderr.contains("not authorised"), "{r:?}");
    let e = nginx.wait_access_for("thing001");
    assert_eq!(e.outcome(), ("403", "no_certificate"));

    let r = MqttCli::new(tls, Version::V311)
        .tls(pki, Some(pki.client("thing002")))
        .id("thing002")
        .publish("t", "m");
    assert!(r.success(), "{r:?}");
    let e = nginx.wait_access_for("thing002");
    assert_eq!((e.status.as_str(), e.cert_cn.as_str()), ("200", "thing002"));
}

#[test]
fn server_level_off_overrides_stream_level_on() {
    let brokers = broker::three();
    let port = free_port();
    let body = format!(
        "mqtt_preread on;\n{}{}",
        hashed_upstream("brokers", &[&brokers[0], &brokers[1], &brokers[2]]),
        server(&format!("127.0.0.1:{port}"), "brokers", "mqtt_preread off;")
    );
    let nginx = Nginx::start(&body, &[port]);
    assert!(MqttCli::new(port, Version::V311)
        .id("thing001")
        .publish("t", "m")
        .success());
    let e = nginx.wait_access("the session", |e| e.status == "200");
    // Without preread the variables are not found, logged as "-".
    assert_eq!(
        (e.client_id.as_str(), e.reject_reason.as_str()),
        ("", ""),
        "{e:?}"
    );
}

#[test]
fn bad_directive_values_fail_the_configuration_test() {
    for (directive, complaint) in [
        ("mqtt_client_id_match dn;", "invalid value \"dn\""),
        ("mqtt_preread maybe;", "invalid value \"maybe\""),
        ("mqtt_reject_malformed;", "invalid number of arguments"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("nginx.conf");
        let text = format!(
            "{}stream {{\n server {{ listen 127.0.0.1:{}; {directive} return x; }}\n}}\n",
            main_context(dir.path()),
            free_port()
        );
        std::fs::write(&conf, text).expect("write");
        let out = check_conf(dir.path(), &conf);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{directive} accepted");
        assert!(stderr.contains(complaint), "{directive}: {stderr}");
    }
}

#[test]
fn client_id_match_without_client_certificates_warns() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("nginx.conf");
    let certificate = format!(
        "ssl_certificate {};\n ssl_certificate_key {};\n",
        pki.server_chain.display(),
        pki.server_key.display()
    );
    let servers = [
        // Plain TCP: no certificate can ever arrive.
        ("plain", String::new(), "mqtt_client_id_match cn;"),
        // TLS, but nginx asks for no certificate.
        (
            " ssl",
            format!("{certificate} ssl_verify_client off;\n"),
            "mqtt_client_id_match san_uri;",
        ),
        // Proper mTLS, and a server that only reads ClientIds: no warning.
        (
            " ssl",
            tls_directives(pki, "optional"),
            "mqtt_client_id_match cn;",
        ),
        ("plain", String::new(), "mqtt_preread on;"),
    ];
    let mut text = format!("{}stream {{\n", main_context(dir.path()));
    let mut lines = Vec::new();
    for (ssl, tls, directive) in &servers {
        lines.push(text.lines().count() + 1);
        let ssl = ssl.trim_start_matches("plain");
        text.push_str(&format!(
            "server {{\n listen 127.0.0.1:{}{ssl};\n {tls} {directive}\n return x;\n}}\n",
            free_port()
        ));
    }
    text.push_str("}\n");
    std::fs::write(&conf, &text).expect("write");
    let out = check_conf(dir.path(), &conf);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{text}");
    let warning = |line: usize| {
        stderr.lines().find(|l| {
            l.contains("[warn]")
                && l.contains("mqtt_client_id_match")
                && l.contains(&format!("{}:{line},", conf.display()))
        })
    };
    let plain = warning(lines[0]).unwrap_or_else(|| panic!("no warning for plain TCP:\n{stderr}"));
    assert!(
        plain.contains("no \"listen ... ssl\"") && plain.contains("no_certificate"),
        "{plain}"
    );
    let off = warning(lines[1]).unwrap_or_else(|| panic!("no warning for verify off:\n{stderr}"));
    assert!(off.contains("\"ssl_verify_client off\""), "{off}");
    for line in &lines[2..] {
        assert_eq!(warning(*line), None, "{stderr}");
    }
    assert_eq!(
        stderr.matches("[warn]").count(),
        2,
        "unexpected warnings:\n{stderr}"
    );
}
