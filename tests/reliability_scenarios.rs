//! Every outcome once, end to end: accepted (each version, plain and mutual
//! TLS), identity mismatch, no certificate, malformed (one packet per parser
//! rule, v3 and v5), too large, incomplete at EOF and at `preread_timeout`.
//! Fast on its own; scripts/soak.sh also runs it with nginx under valgrind
//! (MQTT_TEST_NGINX pointing at scripts/soak/valgrind-nginx.sh), so it
//! checks outcomes only, never timings.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::client::connect_packet;
use support::malformed::cases;
use support::reliability::{serious_lines, Gateway, Server};
use support::{pki, MqttCli, RawClient, ReadEnd, Version};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn every_outcome_end_to_end() {
    let gw = Gateway::start(
        &[
            Server::plain("plain", "mqtt_preread on;\n    preread_timeout 2s;"),
            Server::tls("mtls", "optional", "mqtt_client_id_match cn;"),
        ],
        512,
        "",
    );
    let (plain, mtls) = (gw.port("plain"), gw.port("mtls"));

    // Accepted, every version, plain and over mutual TLS.
    for v in Version::ALL {
        let r = MqttCli::new(plain, v)
            .id(&format!("ok-{}", v.number()))
            .publish("t", "m");
        assert!(r.success(), "{v:?}: {r:?}");
        let r = MqttCli::new(mtls, v)
            .tls(pki(), Some(pki().client("thing001")))
            .id("thing001")
            .publish("t", "m");
        assert!(r.success(), "mTLS {v:?}: {r:?}");
    }
    // Identity mismatch and no certificate: CONNACK with the reason.
    for (cert, id, v3, v5) in [
        (Some("thing002"), "thing001", 0x02u8, 0x85u8),
        (None, "thing003", 0x05, 0x87),
    ] {
        for v in [Version::V311, Version::V5] {
            let mut c = RawClient::tls(mtls, pki(), cert.map(|c| pki().client(c)));
            c.send(&connect_packet(v, id)).expect("send");
            let r = c.read_to_close(WAIT);
            let b = r.bytes();
            let want = if v == Version::V5 { v5 } else { v3 };
            assert!(
                r.is_closed() && b.len() >= 4 && b[3] == want,
                "{cert:?} {v:?}: {r:02x?}"
            );
        }
    }
    // Malformed: the first case of each rule.
    let mut seen = BTreeSet::new();
    for case in cases().into_iter().filter(|c| seen.insert(c.rule)) {
        let mut c = RawClient::plain(plain);
        let _ = c.send(&case.bytes);
        let r = c.read_to_close(WAIT);
        assert!(
            matches!(&r, ReadEnd::Closed(b) if case.reply_ok(b)),
            "{} ({}): {r:02x?}",
            case.name,
            case.rule
        );
    }
    // Incomplete: EOF half-way, and silence until preread_timeout.
    let packet = connect_packet(Version::V5, "half");
    let mut c = RawClient::plain(plain);
    c.send(&packet[..packet.len() / 2]).expect("send");
    c.shutdown_write();
    assert_eq!(c.read_to_close(WAIT), ReadEnd::Closed(Vec::new()));
    let mut c = RawClient::plain(plain);
    c.send(&packet[..3]).expect("send");
    assert_eq!(c.read_to_close(WAIT), ReadEnd::Closed(Vec::new()));
    // Incomplete over TLS, at EOF.
    let mut c = RawClient::tls(mtls, pki(), Some(pki().client("thing001")));
    c.send(&connect_packet(Version::V311, "thing001")[..6])
        .expect("send");
    c.shutdown_write();
    assert!(c.read_to_close(WAIT).is_closed());

    let entries = gw.nginx.access_entries();
    let reasons: BTreeSet<&str> = entries.iter().map(|e| e.reject_reason.as_str()).collect();
    for want in [
        "",
        "client_id_mismatch",
        "no_certificate",
        "malformed",
        "too_large",
        "unsupported_version",
        "client_id_rejected",
        "incomplete",
    ] {
        assert!(
            reasons.contains(want),
            "no session logged {want:?}: {reasons:?}"
        );
    }
    let serious = serious_lines(&gw.nginx.error_log_text());
    assert!(serious.is_empty(), "{serious:#?}");
}
