//! Logging: the access log variables (including the NGINX Plus / Angie
//! names) and one error-log line per rejection, never with the password.

mod support;

use std::time::Duration;

use support::client::Connect;
use support::{pki, read_lossy, Deployment, Listener, MqttCli, RawClient, Version};

const PASSWORD: &str = "s3cret-pw";

fn deployment() -> Deployment {
    Deployment::start(&[
        Listener::plain("plain", "mqtt_preread on;"),
        Listener::tls("cn", "optional", "mqtt_client_id_match cn;"),
    ])
}

#[test]
fn access_log_records_the_mqtt_variables() {
    let d = deployment();
    let pki = pki();
    let r = MqttCli::new(d.port("cn"), Version::V5)
        .tls(pki, Some(pki.client("thing001")))
        .id("thing001")
        .args(&["-u", "alice", "-P", PASSWORD])
        .publish("t", "m");
    assert!(r.success(), "{r:?}");
    let e = d.nginx.wait_access_for("thing001");
    assert_eq!(
        (
            e.status.as_str(),
            e.reject_reason.as_str(),
            e.protocol_version.as_str(),
            e.username.as_str(),
            e.cert_cn.as_str(),
        ),
        ("200", "", "5", "alice", "thing001"),
        "{e:?}"
    );
    // The NGINX Plus / Angie names carry the same values.
    assert_eq!(
        (e.preread_clientid.as_str(), e.preread_username.as_str()),
        ("thing001", "alice")
    );
    assert!(!e.upstream_addr.is_empty());

    // Over plain TCP there is no certificate CN.
    let r = MqttCli::new(d.port("plain"), Version::V31)
        .id("plain-3")
        .args(&["-u", "bob"])
        .publish("t", "m");
    assert!(r.success(), "{r:?}");
    let e = d.nginx.wait_access_for("plain-3");
    assert_eq!(
        (
            e.protocol_version.as_str(),
            e.username.as_str(),
            e.cert_cn.as_str()
        ),
        ("3", "bob", "")
    );
    assert_eq!(e.preread_username, "bob");
}

#[test]
fn each_rejection_is_logged_once_without_the_password() {
    let d = deployment();
    let pki = pki();
    let mut connect = Connect::new(Version::V311, "intruder-77");
    connect.username = Some("mallory");
    connect.password = Some(PASSWORD.as_bytes());
    let mut client = RawClient::tls(d.port("cn"), pki, Some(pki.client("thing001")));
    let session = client.session();
    client.send(&connect.encode()).expect("send");
    assert_eq!(
        client.read_connack(Duration::from_secs(5)).bytes(),
        [0x20, 0x02, 0x00, 0x02]
    );
    drop(client);
    let e = d.nginx.wait_access_session(session);
    assert_eq!(
        (
            e.status.as_str(),
            e.reject_reason.as_str(),
            e.username.as_str()
        ),
        ("403", "client_id_mismatch", "mallory")
    );

    let line = d
        .nginx
        .wait_error_line(&["client_id_mismatch", "intruder-77"]);
    let client = format!("client: {},", session.client.ip());
    assert!(line.contains(&client), "{line}");
    assert!(line.contains("thing001"), "no certificate CN: {line}");
    let lines = d
        .nginx
        .error_log_text()
        .lines()
        .filter(|l| l.contains("intruder-77"))
        .count();
    assert_eq!(lines, 1, "one line per rejection");

    // An accepted session with a password, and a malformed packet that
    // carries one, too.
    let r = MqttCli::new(d.port("plain"), Version::V311)
        .id("honest-1")
        .args(&["-u", "alice", "-P", PASSWORD])
        .publish("t", "m");
    assert!(r.success(), "{r:?}");
    let mut bad = Connect::new(Version::V311, "broken-1");
    bad.password = Some(PASSWORD.as_bytes());
    let mut bad = bad.encode();
    bad[9] |= 0x01; // reserved flag
    let mut client = RawClient::plain(d.port("plain"));
    let session = client.session();
    client.send(&bad).expect("send");
    assert!(client.read_to_close(Duration::from_secs(5)).is_closed());
    assert_eq!(d.nginx.wait_access_session(session).status, "400");
    d.nginx.wait_access_for("honest-1");

    for log in [&d.nginx.error_log, &d.nginx.access_log] {
        assert!(
            !read_lossy(log).contains(PASSWORD),
            "password in {}",
            log.display()
        );
    }
}

#[test]
fn client_id_cannot_forge_error_log_lines() {
    let d = deployment();
    let pki = pki();
    let forged = "x\n2030/01/01 00:00:00 [emerg] 1#1: forged-line";
    let mut client = RawClient::tls(d.port("cn"), pki, Some(pki.client("thing001")));
    client
        .send(&Connect::new(Version::V311, forged).encode())
        .expect("send");
    assert_eq!(
        client.read_connack(Duration::from_secs(5)).bytes(),
        [0x20, 0x02, 0x00, 0x02]
    );
    let line = d
        .nginx
        .wait_error_line(&["client_id_mismatch", "forged-line"]);
    assert!(line.contains("rejected"), "{line}");
    let log = d.nginx.error_log_text();
    assert!(
        !log.lines().any(|l| l.starts_with("2030/01/01")),
        "ClientId broke the log line:\n{log}"
    );
}
