//! Resumed TLS sessions and revoked certificates under
//! `mqtt_client_id_match cn`: a resumed session carries the certificate,
//! and the verification, of the handshake that made it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, HandshakeKind, SupportedProtocolVersion};
use support::client::{connect_packet, tls_config};
use support::nginx::{standard_conf, AccessEntry, ACCESS_LOG_FORMAT};
use support::{pki, Deployment, Listener, RawClient, ReadEnd, Version};

const WAIT: Duration = Duration::from_secs(5);

/// What one session came to.
#[derive(Debug)]
struct Session {
    handshake: Option<HandshakeKind>,
    reply: ReadEnd,
    log: AccessEntry,
}

/// Connects to `listener` with `config`, sends a CONNECT for `id`, reads
/// the CONNACK and closes; returns what the client and the access log saw.
fn session(d: &Deployment, listener: &str, config: &Arc<ClientConfig>, id: &str) -> Session {
    let mut client = RawClient::tls_with(d.port(listener), Arc::clone(config));
    let key = client.session();
    let sent = client.send(&connect_packet(Version::V311, id));
    let reply = match sent.map(|()| client.read_connack(WAIT)) {
        // A refusal is followed by the close.
        Ok(ReadEnd::Open(bytes)) if bytes.len() == 4 && bytes[3] != 0 => {
            match client.read_to_close(WAIT) {
                ReadEnd::Open(_) => ReadEnd::Open(bytes),
                _ => ReadEnd::Closed(bytes),
            }
        }
        Ok(reply) => reply,
        Err(e) => ReadEnd::Error(Vec::new(), e.to_string()),
    };
    let handshake = client.handshake_kind();
    drop(client);
    Session {
        handshake,
        reply,
        log: d.nginx.wait_access_session(key),
    }
}

fn client_config(cert: &str, versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let pki = pki();
    tls_config(pki, Some(pki.client(cert)), versions)
}

fn accepted(s: &Session, id: &str) -> bool {
    s.reply == ReadEnd::Open(vec![0x20, 0x02, 0x00, 0x00])
        && s.log.outcome() == ("200", "")
        && s.log.client_id == id
}

/// Three sessions on `listener` with one client configuration, so one
/// session store: a full handshake, then two that resume its session, one
/// with the certificate's CN as ClientId and one with another device's.
fn resumed_sessions_keep_the_identity(
    d: &Deployment,
    listener: &str,
    versions: &[&'static SupportedProtocolVersion],
) {
    let config = client_config("thing001", versions);
    let full = session(d, listener, &config, "thing001");
    assert!(
        matches!(full.handshake, Some(HandshakeKind::Full)) && accepted(&full, "thing001"),
        "{listener}: {full:?}"
    );
    let resumed = session(d, listener, &config, "thing001");
    assert_eq!(
        resumed.handshake,
        Some(HandshakeKind::Resumed),
        "{listener}: {resumed:?}"
    );
    assert!(accepted(&resumed, "thing001"), "{listener}: {resumed:?}");
    assert_eq!(resumed.log.cert_cn, "thing001", "{listener}");

    let other = session(d, listener, &config, "thing002");
    assert_eq!(
        other.handshake,
        Some(HandshakeKind::Resumed),
        "{listener}: {other:?}"
    );
    assert_eq!(
        other.reply,
        ReadEnd::Closed(vec![0x20, 0x02, 0x00, 0x02]),
        "{listener}: {other:?}"
    );
    assert_eq!(
        other.log.outcome(),
        ("403", "client_id_mismatch"),
        "{listener}"
    );
    assert_eq!(other.log.cert_cn, "thing001", "{listener}");
}

const CN: &str = "mqtt_client_id_match cn;";

#[test]
fn tls12_session_cache() {
    let d = Deployment::start(&[Listener::tls(
        "cache",
        "optional",
        &format!("ssl_protocols TLSv1.2;\n    ssl_session_cache shared:SSL:1m;\n    ssl_session_tickets off;\n    {CN}"),
    )]);
    resumed_sessions_keep_the_identity(&d, "cache", &[&TLS12]);
}

#[test]
fn tls12_session_tickets() {
    // No session cache: only a ticket can resume the session.
    let d = Deployment::start(&[Listener::tls(
        "tickets",
        "optional",
        &format!("ssl_protocols TLSv1.2;\n    ssl_session_cache off;\n    ssl_session_tickets on;\n    {CN}"),
    )]);
    resumed_sessions_keep_the_identity(&d, "tickets", &[&TLS12]);
}

#[test]
fn tls13_psk_from_tickets() {
    let d = Deployment::start(&[
        Listener::tls(
            "tickets",
            "optional",
            &format!("ssl_protocols TLSv1.3;\n    ssl_session_cache off;\n    ssl_session_tickets on;\n    {CN}"),
        ),
        // Without stateless tickets, OpenSSL's TLS 1.3 tickets name a
        // session in the cache.
        Listener::tls(
            "cache",
            "on",
            &format!("ssl_protocols TLSv1.3;\n    ssl_session_cache shared:SSL:1m;\n    ssl_session_tickets off;\n    {CN}"),
        ),
    ]);
    resumed_sessions_keep_the_identity(&d, "tickets", &[&TLS13]);
    resumed_sessions_keep_the_identity(&d, "cache", &[&TLS13]);
}

/// `ssl_crl` with the CRLs of both CAs, and the CN policy.
fn crl_directives() -> String {
    format!("ssl_crl {};\n    {CN}", pki().crl.display())
}

#[test]
fn revoked_certificate_is_refused_in_the_handshake() {
    let d = Deployment::start(&[
        Listener::tls("optional", "optional", &crl_directives()),
        Listener::tls("no_ca", "optional_no_ca", &crl_directives()),
    ]);
    for listener in ["optional", "no_ca"] {
        // The CRLs cover the whole chain: a device that is not revoked
        // passes the check at every level.
        let good = session(
            &d,
            listener,
            &client_config("thing001", rustls::DEFAULT_VERSIONS),
            "thing001",
        );
        assert!(accepted(&good, "thing001"), "{listener}: {good:?}");
        // nginx's own check after the handshake ends the session before
        // any preread handler runs, whichever `ssl_verify_client` lets
        // certificates through: no CONNACK, nothing proxied.
        let revoked = session(
            &d,
            listener,
            &client_config("revoked", rustls::DEFAULT_VERSIONS),
            "thing-revoked",
        );
        assert_eq!(
            revoked.reply,
            ReadEnd::Closed(Vec::new()),
            "{listener}: {revoked:?}"
        );
        assert_eq!(
            revoked.log.outcome(),
            ("500", ""),
            "{listener}: {revoked:?}"
        );
    }
    d.nginx
        .wait_error_line(&["client SSL certificate verify error", "certificate revoked"]);
    assert!(!d.brokers.iter().any(|b| b.saw_client("thing-revoked")));
}

#[test]
fn revocation_takes_effect_for_new_handshakes_only() {
    let tls = format!(
        "ssl_protocols TLSv1.2;\n    ssl_session_cache shared:SSL:1m;\n    \
         ssl_session_tickets off;\n    {CN}"
    );
    let before = [Listener::tls("gw", "optional", &tls)];
    let d = Deployment::start(&before);
    let device = client_config("revoked", &[&TLS12]);
    let first = session(&d, "gw", &device, "thing-revoked");
    assert!(accepted(&first, "thing-revoked"), "{first:?}");

    // The CA revokes the certificate; the gateway reloads with its CRL.
    // The session cache, in shared memory, outlives the reload.
    let after = [Listener::tls(
        "gw",
        "optional",
        &format!("ssl_crl {};\n    {tls}", pki().crl.display()),
    )];
    let conf = standard_conf(&d.nginx.prefix, ACCESS_LOG_FORMAT, &d.stream_body(&after));
    d.nginx.reload(Some(conf));

    // The cached session carries the verification of the handshake that
    // made it, before the CRL: it is let in.
    let resumed = session(&d, "gw", &device, "thing-revoked");
    assert_eq!(
        resumed.handshake,
        Some(HandshakeKind::Resumed),
        "{resumed:?}"
    );
    assert!(accepted(&resumed, "thing-revoked"), "{resumed:?}");
    // A new handshake checks the CRL.
    let fresh = session(
        &d,
        "gw",
        &client_config("revoked", &[&TLS12]),
        "thing-revoked",
    );
    assert_eq!(fresh.handshake, Some(HandshakeKind::Full), "{fresh:?}");
    assert_eq!(fresh.reply, ReadEnd::Closed(Vec::new()), "{fresh:?}");
    assert_eq!(fresh.log.outcome(), ("500", ""), "{fresh:?}");
}
