//! The device identity carried by a client certificate, read from its DER.
//!
//! Identity is taken from the parsed certificate, never from the text of
//! `$ssl_client_s_dn`: that text escapes `,` and `+` and prints non-ASCII bytes
//! as `\XX`, so splitting it misreads CNs such as `dev,7` or `gerät-9`.
//!
//! Whether the certificate was verified is the caller's business; this module
//! only reads what a certificate says.

use x509_parser::certificate::{X509Certificate, X509CertificateParser};
use x509_parser::extensions::{GeneralName, SubjectAlternativeName};
use x509_parser::nom::Parser;
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;
use x509_parser::prelude::FromDer;

/// The subject Common Name of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommonName<'a> {
    /// The subject has no CN attribute.
    Absent,
    /// Exactly one CN, as UTF-8.
    One(&'a str),
    /// More than one CN: no single identity.
    Several,
    /// A CN whose string type is not UTF-8 compatible (BMPString and the like).
    NotText,
}

/// Why a certificate could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnreadableCertificate;

/// A parsed client certificate, borrowing its DER.
pub struct PeerIdentity<'a> {
    cert: X509Certificate<'a>,
}

impl<'a> PeerIdentity<'a> {
    /// Parses a DER certificate. Extensions are parsed lazily: only the
    /// subjectAltName is ever looked at, and only when asked for.
    pub fn from_der(der: &'a [u8]) -> Result<Self, UnreadableCertificate> {
        let mut parser = X509CertificateParser::new().with_deep_parse_extensions(false);
        match parser.parse(der) {
            Ok((_, cert)) => Ok(Self { cert }),
            Err(_) => Err(UnreadableCertificate),
        }
    }

    /// The subject's Common Name.
    pub fn common_name(&self) -> CommonName<'_> {
        let mut names = self.cert.subject().iter_common_name();
        let Some(first) = names.next() else {
            return CommonName::Absent;
        };
        if names.next().is_some() {
            return CommonName::Several;
        }
        match first.as_str() {
            Ok(cn) => CommonName::One(cn),
            Err(_) => CommonName::NotText,
        }
    }

    /// Whether `id` equals, byte for byte, one of the DNS, URI or email
    /// subjectAltName entries.
    pub fn has_san(&self, id: &str) -> bool {
        self.san_entries().any(|entry| entry == id)
    }

    /// The DNS, URI and email subjectAltName entries.
    pub fn san_entries(&self) -> impl Iterator<Item = &str> + '_ {
        let san = self
            .cert
            .iter_extensions()
            .find(|ext| ext.oid == OID_X509_EXT_SUBJECT_ALT_NAME)
            .and_then(|ext| SubjectAlternativeName::from_der(ext.value).ok())
            .map(|(_, san)| san.general_names)
            .unwrap_or_default();
        san.into_iter().filter_map(|name| match name {
            GeneralName::DNSName(s) | GeneralName::URI(s) | GeneralName::RFC822Name(s) => Some(s),
            _ => None,
        })
    }
}
