//! mTLS: the ClientId bound to the verified client certificate.

mod support;

use std::time::Duration;

use support::client::connect_packet;
use support::pki::ClientCert;
use support::{pki, Deployment, Listener, MqttCli, RawClient, ReadEnd, SessionKey, Version};

const WAIT: Duration = Duration::from_secs(5);

/// Connects over TLS to `port` with `cert`, sends a CONNECT for `id` and
/// returns the reply and the client's port (for the access log).
fn try_connect(port: u16, cert: Option<&str>, version: Version, id: &str) -> (ReadEnd, SessionKey) {
    let pki = pki();
    let cert: Option<&ClientCert> = cert.map(|name| pki.client(name));
    let mut client = RawClient::tls(port, pki, cert);
    let local = client.session();
    if let Err(e) = client.send(&connect_packet(version, id)) {
        return (ReadEnd::Error(Vec::new(), e.to_string()), local);
    }
    let reply = client.read_connack(WAIT);
    let reply = match reply {
        // A refusal is followed by the close.
        ReadEnd::Open(bytes) if bytes.first() == Some(&0x20) && bytes.get(3) != Some(&0) => {
            match client.read_to_close(WAIT) {
                ReadEnd::Open(_) => ReadEnd::Open(bytes),
                _ => ReadEnd::Closed(bytes),
            }
        }
        other => other,
    };
    (reply, local)
}

fn assert_accepted(d: &Deployment, listener: &str, cert: &str, version: Version, id: &str) {
    let (reply, local) = try_connect(d.port(listener), Some(cert), version, id);
    let bytes = reply.bytes();
    assert!(
        matches!(reply, ReadEnd::Open(_)) && bytes.len() >= 4 && bytes[0] == 0x20 && bytes[3] == 0,
        "{listener}: {cert} as {id:?} ({version:?}) was not accepted: {reply:?}"
    );
    let e = d.nginx.wait_access_session(local);
    assert_eq!(
        (e.status.as_str(), e.client_id.as_str()),
        ("200", id),
        "{e:?}"
    );
}

/// Asserts a refusal with this CONNACK reason code, status 403 and reason
/// token; returns the access-log entry.
fn assert_refused(
    d: &Deployment,
    listener: &str,
    cert: Option<&str>,
    version: Version,
    id: &str,
    code: u8,
    token: &str,
) -> support::nginx::AccessEntry {
    let (reply, local) = try_connect(d.port(listener), cert, version, id);
    match version {
        Version::V5 => {
            let b = reply.bytes();
            assert!(
                b.len() >= 4 && b[0] == 0x20 && b[2] == 0 && b[3] == code,
                "{cert:?} as {id:?}: {reply:?}"
            );
        }
        _ => assert_eq!(
            reply.bytes(),
            [0x20, 0x02, 0x00, code],
            "{cert:?} as {id:?}: {reply:?}"
        ),
    }
    assert!(reply.is_closed(), "not closed after the refusal: {reply:?}");
    let e = d.nginx.wait_access_session(local);
    assert_eq!(e.outcome(), ("403", token), "{e:?}");
    e
}

fn cn_deployment() -> Deployment {
    Deployment::start(&[
        Listener::tls("cn", "optional", "mqtt_client_id_match cn;"),
        Listener::tls("cn_on", "on", "mqtt_client_id_match cn;"),
        Listener::tls("cn_no_ca", "optional_no_ca", "mqtt_client_id_match cn;"),
    ])
}

#[test]
fn matching_common_name_is_accepted() {
    let d = cn_deployment();
    assert_accepted(&d, "cn", "thing001", Version::V311, "thing001");
    assert_accepted(&d, "cn", "thing002", Version::V5, "thing002");
    assert_accepted(&d, "cn_on", "thing003", Version::V31, "thing003");
    let pki = pki();
    let r = MqttCli::new(d.port("cn"), Version::V311)
        .tls(pki, Some(pki.client("thing003")))
        .id("thing003")
        .publish("t", "m");
    assert!(r.success(), "{r:?}");
    let e = d.nginx.wait_access("mosquitto_pub thing003", |e| {
        e.client_id == "thing003" && e.protocol_version == "4"
    });
    assert_eq!(
        (e.status.as_str(), e.cert_cn.as_str()),
        ("200", "thing003"),
        "{e:?}"
    );
}

#[test]
fn mismatching_client_id_is_refused_with_connack() {
    let d = cn_deployment();
    let e = assert_refused(
        &d,
        "cn",
        Some("thing001"),
        Version::V311,
        "thing002",
        0x02,
        "client_id_mismatch",
    );
    assert_eq!(e.cert_cn, "thing001");
    assert_refused(
        &d,
        "cn",
        Some("thing001"),
        Version::V5,
        "thing002",
        0x85,
        "client_id_mismatch",
    );
    assert_refused(
        &d,
        "cn",
        Some("thing001"),
        Version::V31,
        "thing002",
        0x02,
        "client_id_mismatch",
    );
    assert_refused(
        &d,
        "cn",
        Some("thing001"),
        Version::V311,
        "",
        0x02,
        "empty_client_id",
    );

    let pki = pki();
    let cli = |version| {
        MqttCli::new(d.port("cn"), version)
            .tls(pki, Some(pki.client("thing001")))
            .id("thing002")
            .publish("t", "m")
    };
    let r = cli(Version::V311);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr
            .contains("Connection Refused: identifier rejected."),
        "{r:?}"
    );
    let r = cli(Version::V5);
    assert_eq!(r.code, Some(0x85), "{r:?}");
    assert!(r.stderr.contains("Client Identifier not valid"), "{r:?}");

    d.nginx.wait_error_line(&[
        "client_id_mismatch",
        "thing002",
        "thing001",
        "client: 127.0.0.1",
    ]);
}

#[test]
fn missing_certificate_refused_with_not_authorised() {
    let d = cn_deployment();
    let e = assert_refused(
        &d,
        "cn",
        None,
        Version::V311,
        "thing001",
        0x05,
        "no_certificate",
    );
    assert_eq!(e.cert_cn, "");
    assert_refused(
        &d,
        "cn",
        None,
        Version::V5,
        "thing001",
        0x87,
        "no_certificate",
    );
    let r = MqttCli::new(d.port("cn"), Version::V311)
        .tls(pki(), None)
        .id("thing001")
        .publish("t", "m");
    assert_eq!(r.code, Some(5), "{r:?}");
    assert!(
        r.stderr.contains("Connection Refused: not authorised."),
        "{r:?}"
    );
}

#[test]
fn verify_on_refuses_bad_certificates_in_the_handshake() {
    let d = cn_deployment();
    for (cert, id, log) in [
        (None, "thing001", "client sent no required SSL certificate"),
        (
            Some("untrusted"),
            "thing001",
            "client SSL certificate verify error",
        ),
        (Some("expired"), "thing-expired", "certificate has expired"),
    ] {
        let (reply, _) = try_connect(d.port("cn_on"), cert, Version::V311, id);
        assert!(
            reply.bytes().is_empty() && reply.is_closed(),
            "{cert:?}: {reply:?}"
        );
        d.nginx.wait_error_line(&[log]);
    }
    let pki = pki();
    let r = MqttCli::new(d.port("cn_on"), Version::V311)
        .tls(pki, Some(pki.client("expired")))
        .id("thing-expired")
        .publish("t", "m");
    assert!(
        !r.success() && !r.stderr.contains("Connection Refused"),
        "{r:?}"
    );
    assert!(!d.brokers.iter().any(|b| b.saw_client("thing-expired")));
}

#[test]
fn optional_no_ca_lets_the_module_refuse_an_unverified_certificate() {
    let d = cn_deployment();
    // The untrusted certificate carries CN=thing001: only trust is wrong.
    assert_refused(
        &d,
        "cn_no_ca",
        Some("untrusted"),
        Version::V311,
        "thing001",
        0x05,
        "unverified_certificate",
    );
    assert_refused(
        &d,
        "cn_no_ca",
        Some("untrusted"),
        Version::V5,
        "thing001",
        0x87,
        "unverified_certificate",
    );
    assert_accepted(&d, "cn_no_ca", "thing001", Version::V311, "thing001");
    d.nginx
        .wait_error_line(&["unverified_certificate", "thing001", "client: 127."]);
}

#[test]
fn special_characters_in_common_names_match_exactly() {
    let d = cn_deployment();
    assert_accepted(&d, "cn", "comma", Version::V311, "dev,7");
    assert_accepted(&d, "cn", "plus", Version::V5, "dev+8");
    assert_accepted(&d, "cn", "utf8", Version::V311, "gerät-9");
    let e = d.nginx.wait_access_for("gerät-9");
    assert_eq!(e.cert_cn, "gerät-9");
    // The RFC 4514 escaped forms are not the CN.
    assert_refused(
        &d,
        "cn",
        Some("comma"),
        Version::V311,
        "dev\\,7",
        0x02,
        "client_id_mismatch",
    );
    assert_refused(
        &d,
        "cn",
        Some("plus"),
        Version::V311,
        "dev\\+8",
        0x02,
        "client_id_mismatch",
    );
    assert_refused(
        &d,
        "cn",
        Some("utf8"),
        Version::V311,
        "ger\\C3\\A4t-9",
        0x02,
        "client_id_mismatch",
    );
}

#[test]
fn organisation_with_comma_does_not_confuse_the_common_name() {
    let d = cn_deployment();
    assert_accepted(&d, "cn", "acme-comma", Version::V311, "acme-1");
    assert_eq!(d.nginx.wait_access_for("acme-1").cert_cn, "acme-1");
    assert_refused(
        &d,
        "cn",
        Some("acme-comma"),
        Version::V311,
        "Inc",
        0x02,
        "client_id_mismatch",
    );
    // O="Acme, CN=spoofed": a naive split of the subject finds a CN there.
    assert_refused(
        &d,
        "cn",
        Some("spoof"),
        Version::V311,
        "spoofed",
        0x02,
        "client_id_mismatch",
    );
    assert_accepted(&d, "cn", "spoof", Version::V311, "real-cn");
}

#[test]
fn two_common_names_are_refused_under_cn() {
    let d = cn_deployment();
    for id in ["twin-a", "twin-b"] {
        let (reply, local) = try_connect(d.port("cn"), Some("twin"), Version::V311, id);
        assert!(reply.is_closed(), "{reply:?}");
        assert!(
            reply.bytes().first() != Some(&0x20) || reply.bytes().get(3) != Some(&0),
            "{reply:?}"
        );
        let e = d.nginx.wait_access_session(local);
        assert_eq!(e.outcome(), ("403", "several_common_names"), "{e:?}");
    }
}

#[test]
fn san_and_cn_or_san_modes() {
    let d = Deployment::start(&[
        Listener::tls("san", "optional", "mqtt_client_id_match san;"),
        Listener::tls("either", "optional", "mqtt_client_id_match cn_or_san;"),
    ]);
    for id in [
        "urn:device:san-uri-1",
        "san-dns-1.example",
        "san-mail@example.com",
    ] {
        assert_accepted(&d, "san", "san", Version::V311, id);
        assert_accepted(&d, "either", "san", Version::V5, id);
    }
    // Under `san` the CN does not count; under `cn_or_san` it does.
    assert_refused(
        &d,
        "san",
        Some("san"),
        Version::V311,
        "san-holder",
        0x02,
        "client_id_mismatch",
    );
    assert_accepted(&d, "either", "san", Version::V311, "san-holder");
    assert_refused(
        &d,
        "san",
        Some("thing001"),
        Version::V311,
        "thing001",
        0x02,
        "client_id_mismatch",
    );
    assert_accepted(&d, "either", "thing001", Version::V311, "thing001");
    assert_refused(
        &d,
        "either",
        Some("san"),
        Version::V5,
        "san-dns-2.example",
        0x85,
        "client_id_mismatch",
    );
}

#[test]
fn reject_connack_off_closes_without_a_word() {
    let d = Deployment::start(&[Listener::tls(
        "quiet",
        "optional",
        "mqtt_client_id_match cn;\n    mqtt_reject_connack off;",
    )]);
    for version in [Version::V311, Version::V5] {
        let (reply, local) = try_connect(d.port("quiet"), Some("thing001"), version, "thing002");
        assert!(reply.is_closed(), "{version:?}: not closed: {reply:?}");
        assert!(reply.bytes().is_empty(), "{version:?}: sent {reply:?}");
        let e = d.nginx.wait_access_session(local);
        assert_eq!(e.outcome(), ("403", "client_id_mismatch"), "{e:?}");
    }
    // Still accepted when the ClientId is the CN.
    assert_accepted(&d, "quiet", "thing001", Version::V311, "thing001");
}

#[test]
fn san_kind_modes_read_only_their_entry_type() {
    let d = Deployment::start(&[
        Listener::tls("dns", "optional", "mqtt_client_id_match san_dns;"),
        Listener::tls("uri", "optional", "mqtt_client_id_match san_uri;"),
        Listener::tls("email", "optional", "mqtt_client_id_match san_email;"),
    ]);
    // The `san` certificate has one entry of each kind.
    let entries = [
        ("dns", "san-dns-1.example"),
        ("uri", "urn:device:san-uri-1"),
        ("email", "san-mail@example.com"),
    ];
    for (listener, _) in entries {
        for (kind, id) in entries {
            if kind == listener {
                assert_accepted(&d, listener, "san", Version::V311, id);
            } else {
                assert_refused(
                    &d,
                    listener,
                    Some("san"),
                    Version::V5,
                    id,
                    0x85,
                    "client_id_mismatch",
                );
            }
        }
        // Nor does the CN count.
        assert_refused(
            &d,
            listener,
            Some("san"),
            Version::V311,
            "san-holder",
            0x02,
            "client_id_mismatch",
        );
    }
}
