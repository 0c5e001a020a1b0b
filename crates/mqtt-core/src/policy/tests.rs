//! Tests of the identity policy against real certificates (rcgen).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use rcgen::{CertificateParams, DnType, KeyPair, SanType};

use super::*;

/// A self-signed certificate with the given subject CNs and SANs, as DER.
fn cert(common_names: &[&str], sans: &[SanType]) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Acme, Inc");
    for (i, cn) in common_names.iter().enumerate() {
        // A second CN needs a distinct key in rcgen's map: the same OID.
        let ty = if i == 0 {
            DnType::CommonName
        } else {
            DnType::CustomDnType(vec![2, 5, 4, 3])
        };
        params.distinguished_name.push(ty, *cn);
    }
    params.subject_alt_names = sans.to_vec();
    let key = KeyPair::generate().expect("key");
    params
        .self_signed(&key)
        .expect("certificate")
        .der()
        .to_vec()
}

/// Every policy that checks the ClientId.
const MATCHING: [ClientIdPolicy; 6] = [
    ClientIdPolicy::Cn,
    ClientIdPolicy::San(SanKind::Any),
    ClientIdPolicy::San(SanKind::Dns),
    ClientIdPolicy::San(SanKind::Uri),
    ClientIdPolicy::San(SanKind::Email),
    ClientIdPolicy::CnOrSan,
];

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().expect("ia5"))
}

fn dns(s: &str) -> SanType {
    SanType::DnsName(s.try_into().expect("ia5"))
}

fn email(s: &str) -> SanType {
    SanType::Rfc822Name(s.try_into().expect("ia5"))
}

/// The verdict on a certificate read whole and read from its parts, as
/// the nginx glue reads it from OpenSSL; the two must agree.
fn check(policy: ClientIdPolicy, client_id: &str, der: &[u8]) -> Result<(), RejectReason> {
    let identity = PeerIdentity::from_der(der).expect("parses");
    let whole = check_client_id(policy, client_id, &PeerCertificate::Verified(identity));
    // The subject Name's DER and the subjectAltName extension's value, as
    // x509-parser's full certificate parser finds them.
    let (_, certificate) = x509_parser::parse_x509_certificate(der).expect("x509");
    let alt_names = certificate
        .extensions()
        .iter()
        .find(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME)
        .map(|e| e.value);
    let identity =
        PeerIdentity::from_parts(certificate.subject().as_raw(), alt_names).expect("parses");
    let from_parts = check_client_id(policy, client_id, &PeerCertificate::Verified(identity));
    assert_eq!(whole, from_parts, "{policy:?} {client_id:?}");
    whole
}

#[test]
fn cn_must_equal_client_id_byte_for_byte() {
    for cn in ["thing001", "dev,7", "dev+8", "gerät-9"] {
        let der = cert(&[cn], &[]);
        assert_eq!(check(ClientIdPolicy::Cn, cn, &der), Ok(()), "{cn}");
        for other in [&cn[..cn.len() - 1], &format!("{cn} "), &cn.to_uppercase()] {
            assert_eq!(
                check(ClientIdPolicy::Cn, other, &der),
                Err(RejectReason::ClientIdMismatch),
                "{cn} vs {other}"
            );
        }
    }
}

#[test]
fn escaped_dn_text_is_not_the_cn() {
    // How $ssl_client_s_dn prints these CNs; a device must not get in by
    // sending the escaped form.
    let der = cert(&["dev,7"], &[]);
    assert_eq!(
        check(ClientIdPolicy::Cn, r"dev\,7", &der),
        Err(RejectReason::ClientIdMismatch)
    );
    let der = cert(&["gerät-9"], &[]);
    assert_eq!(
        check(ClientIdPolicy::Cn, r"ger\C3\A4t-9", &der),
        Err(RejectReason::ClientIdMismatch)
    );
}

#[test]
fn organisation_with_comma_does_not_leak_into_cn() {
    let der = cert(&["thing001"], &[]);
    let identity = PeerIdentity::from_der(&der).expect("parses");
    assert_eq!(identity.common_name(), CommonName::One("thing001"));
    assert_eq!(
        check(ClientIdPolicy::Cn, "Inc", &der),
        Err(RejectReason::ClientIdMismatch)
    );
}

#[test]
fn several_cns_are_refused_under_cn() {
    let der = cert(&["thing001", "thing002"], &[]);
    assert_eq!(
        check(ClientIdPolicy::Cn, "thing001", &der),
        Err(RejectReason::SeveralCommonNames)
    );
    assert_eq!(
        check(ClientIdPolicy::Cn, "thing002", &der),
        Err(RejectReason::SeveralCommonNames)
    );
    assert_eq!(
        check(ClientIdPolicy::CnOrSan, "thing001", &der),
        Err(RejectReason::ClientIdMismatch)
    );
}

#[test]
fn san_mode_matches_dns_uri_and_email_entries_only() {
    let der = cert(
        &["thing001"],
        &[
            dns("thing-dns.example"),
            uri("urn:device:thing-uri"),
            email("thing@example.com"),
        ],
    );
    for id in [
        "thing-dns.example",
        "urn:device:thing-uri",
        "thing@example.com",
    ] {
        assert_eq!(
            check(ClientIdPolicy::San(SanKind::Any), id, &der),
            Ok(()),
            "{id}"
        );
        assert_eq!(check(ClientIdPolicy::CnOrSan, id, &der), Ok(()), "{id}");
        assert_eq!(
            check(ClientIdPolicy::Cn, id, &der),
            Err(RejectReason::ClientIdMismatch),
            "{id}"
        );
    }
    assert_eq!(
        check(ClientIdPolicy::San(SanKind::Any), "thing001", &der),
        Err(RejectReason::ClientIdMismatch)
    );
    assert_eq!(check(ClientIdPolicy::CnOrSan, "thing001", &der), Ok(()));
    assert_eq!(
        check(ClientIdPolicy::San(SanKind::Any), "thing-dns", &der),
        Err(RejectReason::ClientIdMismatch)
    );
}

#[test]
fn san_kind_policies_read_only_entries_of_their_kind() {
    // Two entries of each kind, in mixed order, with values that would be
    // valid as another kind too.
    let der = cert(
        &["thing001"],
        &[
            uri("urn:device:thing-uri"),
            dns("thing-dns.example"),
            email("thing@example.com"),
            dns("thing-dns-2.example"),
            uri("thing-uri-2"),
            email("thing-mail-2"),
        ],
    );
    let entries = [
        (SanKind::Dns, "thing-dns.example"),
        (SanKind::Dns, "thing-dns-2.example"),
        (SanKind::Uri, "urn:device:thing-uri"),
        (SanKind::Uri, "thing-uri-2"),
        (SanKind::Email, "thing@example.com"),
        (SanKind::Email, "thing-mail-2"),
    ];
    for (entry_kind, id) in entries {
        assert_eq!(check(ClientIdPolicy::San(SanKind::Any), id, &der), Ok(()));
        for kind in [SanKind::Dns, SanKind::Uri, SanKind::Email] {
            let expected = if kind == entry_kind {
                Ok(())
            } else {
                Err(RejectReason::ClientIdMismatch)
            };
            assert_eq!(
                check(ClientIdPolicy::San(kind), id, &der),
                expected,
                "{id} ({entry_kind:?}) under {kind:?}"
            );
        }
    }
    // The CN counts under none of them.
    for kind in [SanKind::Any, SanKind::Dns, SanKind::Uri, SanKind::Email] {
        assert_eq!(
            check(ClientIdPolicy::San(kind), "thing001", &der),
            Err(RejectReason::ClientIdMismatch)
        );
    }
}

#[test]
fn san_kind_policies_skip_other_entry_types() {
    // An IP address entry is no identity under any SAN policy, nor are
    // other kinds' entries when only one kind counts.
    let der = cert(
        &[],
        &[
            SanType::IpAddress("127.0.0.1".parse().expect("ip")),
            dns("only-dns.example"),
        ],
    );
    let identity = PeerIdentity::from_der(&der).expect("parses");
    assert!(identity.has_san("only-dns.example", SanKind::Dns));
    assert!(!identity.has_san("only-dns.example", SanKind::Uri));
    assert!(!identity.has_san("only-dns.example", SanKind::Email));
    for kind in [SanKind::Any, SanKind::Dns, SanKind::Uri, SanKind::Email] {
        assert!(!identity.has_san("127.0.0.1", kind), "{kind:?}");
    }
}

#[test]
fn san_mode_without_san_extension_refuses() {
    let der = cert(&["thing001"], &[]);
    assert_eq!(
        check(ClientIdPolicy::San(SanKind::Any), "thing001", &der),
        Err(RejectReason::ClientIdMismatch)
    );
}

#[test]
fn empty_client_id_never_matches() {
    let der = cert(&[""], &[]);
    for policy in MATCHING {
        assert_eq!(check(policy, "", &der), Err(RejectReason::EmptyClientId));
    }
}

#[test]
fn missing_or_unverified_certificates_are_refused() {
    for policy in MATCHING {
        assert_eq!(
            check_client_id(policy, "thing001", &PeerCertificate::Absent),
            Err(RejectReason::NoCertificate)
        );
        assert_eq!(
            check_client_id(policy, "thing001", &PeerCertificate::Unverified),
            Err(RejectReason::UnverifiedCertificate)
        );
        assert_eq!(
            check_client_id(policy, "thing001", &PeerCertificate::Unreadable),
            Err(RejectReason::UnreadableCertificate)
        );
    }
    assert_eq!(
        check_client_id(ClientIdPolicy::Off, "x", &PeerCertificate::Absent),
        Ok(())
    );
}

#[test]
fn critical_san_of_a_subjectless_certificate_is_read() {
    // With an empty subject, the subjectAltName extension is critical.
    let der = cert(&[], &[uri("urn:dev:thing-9")]);
    let identity = PeerIdentity::from_der(&der).expect("parses");
    assert_eq!(identity.common_name(), CommonName::Absent);
    assert!(identity.has_san("urn:dev:thing-9", SanKind::Any));
    assert_eq!(
        check(ClientIdPolicy::San(SanKind::Any), "urn:dev:thing-9", &der),
        Ok(())
    );
    assert_eq!(
        check(ClientIdPolicy::Cn, "urn:dev:thing-9", &der),
        Err(RejectReason::ClientIdMismatch)
    );
}

#[test]
fn cn_that_is_not_utf8_text_matches_nothing() {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let bmp = rcgen::string::BmpString::try_from("thing001").expect("bmp");
    params
        .distinguished_name
        .push(DnType::CommonName, rcgen::DnValue::BmpString(bmp));
    let key = KeyPair::generate().expect("key");
    let der = params
        .self_signed(&key)
        .expect("certificate")
        .der()
        .to_vec();
    let identity = PeerIdentity::from_der(&der).expect("parses");
    assert_eq!(identity.common_name(), CommonName::NotText);
    assert_eq!(
        check(ClientIdPolicy::Cn, "thing001", &der),
        Err(RejectReason::ClientIdMismatch)
    );
}

#[test]
fn garbage_der_is_unreadable() {
    assert!(PeerIdentity::from_der(b"\x30\x03\x02\x01").is_err());
    let der = cert(&["thing001"], &[]);
    assert!(PeerIdentity::from_der(&der[..der.len() / 2]).is_err());
}

#[test]
fn connack_codes_per_version() {
    use ProtocolLevel::{V31, V311, V5};
    let code = |reason: RejectReason, level| reason.connack(Some(level)).map(|(_, c)| c);
    let table = [
        (RejectReason::ClientIdMismatch, 0x02, 0x85),
        (RejectReason::EmptyClientId, 0x02, 0x85),
        (RejectReason::NoCertificate, 0x05, 0x87),
        (RejectReason::UnverifiedCertificate, 0x05, 0x87),
        (RejectReason::UnreadableCertificate, 0x05, 0x87),
        (RejectReason::SeveralCommonNames, 0x05, 0x87),
    ];
    for (reason, v3, v5) in table {
        assert_eq!(code(reason, V31), Some(v3), "{reason:?}");
        assert_eq!(code(reason, V311), Some(v3), "{reason:?}");
        assert_eq!(code(reason, V5), Some(v5), "{reason:?}");
        assert_eq!(reason.status(), 403);
    }
    assert_eq!(code(RejectReason::Incomplete, V5), None);
    assert_eq!(RejectReason::Incomplete.status(), 400);
    let malformed = RejectReason::Invalid(InvalidReason::NotConnect);
    assert_eq!(malformed.status(), 400);
    assert_eq!(malformed.token(), "malformed");
}
