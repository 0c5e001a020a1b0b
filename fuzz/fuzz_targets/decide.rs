//! Fuzzes the accept/reject decision: a CONNECT from the fuzzer, checked
//! against a client certificate under each `mqtt_client_id_match` policy.
//!
//! Input layout:
//! * byte 0: bits 0-1 and 5 pick the policy (off, cn, san, cn_or_san,
//!   san_dns, san_uri, san_email, and off again); bits 2-4 pick the
//!   certificate: absent, unverified, unreadable, one of the three
//!   committed certificates in `certs/` (3-5), or the fuzzer's own bytes,
//!   `byte 1` of them: (6) a DER certificate, or (7) a subject Name and a
//!   subjectAltName value, the two parts the nginx glue reads from OpenSSL,
//!   split where their first byte says;
//! * the rest: the first bytes of the stream.
//!
//! Checked: no panic, in the certificate parser included; a device is let in
//! under a policy only with a verified certificate that names its ClientId,
//! byte for byte, in the field the policy reads; every refusal has a status,
//! a token and a CONNACK that fits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_core::policy::PeerIdentity;
use mqtt_core::packet::connack::MAX_CONNACK_LEN;
use mqtt_core::packet::{parse_connect, Parsed, ProtocolLevel};
use mqtt_core::policy::{
    check_client_id, ClientIdPolicy, PeerCertificate, RejectReason, SanKind,
};

/// A committed certificate and the identities it carries.
struct KnownCert {
    der: &'static [u8],
    common_names: &'static [&'static str],
    /// Each subjectAltName entry with its kind.
    san: &'static [(SanKind, &'static str)],
}

const CERTS: [KnownCert; 3] = [
    KnownCert {
        der: include_bytes!("../certs/cn-and-san.der"),
        common_names: &["thing001"],
        san: &[
            (SanKind::Dns, "thing001.example"),
            (SanKind::Uri, "urn:dev:thing001"),
            (SanKind::Email, "thing001@example.com"),
        ],
    },
    KnownCert {
        der: include_bytes!("../certs/two-cns.der"),
        common_names: &["twin-a", "twin-b"],
        san: &[],
    },
    KnownCert {
        der: include_bytes!("../certs/utf8-cn.der"),
        common_names: &["gerät-9"],
        san: &[],
    },
];

/// Indexed by bits 0-1 and 5 of the selector, so that the corpus written
/// for the first four keeps its meaning.
const POLICIES: [ClientIdPolicy; 8] = [
    ClientIdPolicy::Off,
    ClientIdPolicy::Cn,
    ClientIdPolicy::San(SanKind::Any),
    ClientIdPolicy::CnOrSan,
    ClientIdPolicy::San(SanKind::Dns),
    ClientIdPolicy::San(SanKind::Uri),
    ClientIdPolicy::San(SanKind::Email),
    ClientIdPolicy::Off,
];

fuzz_target!(|data: &[u8]| {
    let [selector, rest @ ..] = data else {
        return;
    };
    let policy = POLICIES[usize::from((selector & 0b11) | ((selector >> 3) & 0b100))];
    let cert_choice = (selector >> 2) & 0b111;

    let (fuzzed_der, stream) = match (cert_choice, rest) {
        (6..=7, [len, rest @ ..]) => rest.split_at(usize::from(*len).min(rest.len())),
        _ => (&[][..], rest),
    };
    let known = CERTS.get(usize::from(cert_choice).wrapping_sub(3));
    let cert = match (cert_choice, known) {
        (0, _) => PeerCertificate::Absent,
        (1, _) => PeerCertificate::Unverified,
        (2, _) => PeerCertificate::Unreadable,
        (_, Some(known)) => verified(known.der),
        (6, _) => verified(fuzzed_der),
        _ => verified_parts(fuzzed_der),
    };

    let (client_id, level) = match parse_connect(stream, 16 * 1024) {
        Parsed::Connect(connect) => (connect.client_id, connect.level),
        Parsed::Invalid { reason, level } => {
            check_refusal(RejectReason::Invalid(reason), level);
            return;
        }
        Parsed::Incomplete { .. } => return,
    };

    match check_client_id(policy, client_id, &cert) {
        Ok(()) if policy == ClientIdPolicy::Off => {}
        Ok(()) => {
            assert!(
                matches!(cert, PeerCertificate::Verified(_)),
                "let in without a verified certificate"
            );
            assert!(!client_id.is_empty(), "let in with an empty ClientId");
            if let Some(known) = known {
                let by_cn = known.common_names == [client_id];
                let by_san = |kind: SanKind| {
                    known.san.iter().any(|&(entry_kind, entry)| {
                        entry == client_id && (kind == SanKind::Any || kind == entry_kind)
                    })
                };
                let allowed = match policy {
                    ClientIdPolicy::Cn => by_cn,
                    ClientIdPolicy::San(kind) => by_san(kind),
                    _ => by_cn || by_san(SanKind::Any),
                };
                assert!(allowed, "{client_id:?} let in under {policy:?}");
            }
        }
        Err(reason) => {
            assert!(!matches!(
                reason,
                RejectReason::Invalid(_) | RejectReason::Incomplete
            ));
            check_refusal(reason, Some(level));
        }
    }
});

fn verified(der: &[u8]) -> PeerCertificate<'_> {
    match PeerIdentity::from_der(der) {
        Ok(identity) => PeerCertificate::Verified(identity),
        Err(_) => PeerCertificate::Unreadable,
    }
}

fn verified_parts(bytes: &[u8]) -> PeerCertificate<'_> {
    let (split, rest) = match bytes {
        [split, rest @ ..] => (usize::from(*split), rest),
        [] => (0, bytes),
    };
    let (subject, alt_names) = rest.split_at(split.min(rest.len()));
    match PeerIdentity::from_parts(subject, (!alt_names.is_empty()).then_some(alt_names)) {
        Ok(identity) => PeerCertificate::Verified(identity),
        Err(_) => PeerCertificate::Unreadable,
    }
}

fn check_refusal(reason: RejectReason, level: Option<ProtocolLevel>) {
    assert!(matches!(reason.status(), 400 | 403));
    assert!(!reason.token().is_empty() && !reason.message().is_empty());
    let mut out = [0u8; MAX_CONNACK_LEN];
    let len = reason.write_connack(level, None, &mut out);
    assert_eq!(len > 0, reason.connack(level).is_some());
    if len > 0 {
        assert!(len >= 4 && out[0] == 0x20, "{reason:?} has no CONNACK");
    }
}
