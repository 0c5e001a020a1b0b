//! The device identity carried by a client certificate, read from its DER.
//!
//! Identity is taken from the parsed certificate, never from the text of
//! `$ssl_client_s_dn`: that text escapes `,` and `+` and prints non-ASCII bytes
//! as `\XX`, so splitting it misreads CNs such as `dev,7` or `gerät-9`.
//!
//! Only the subject and the subjectAltName extension are read, with
//! x509-parser's DER layer and its attribute and GeneralName parsers; nothing
//! is allocated. They are read either from a whole DER certificate or, as
//! nginx's glue does, from the two encoded parts OpenSSL keeps. Whether the certificate was verified is the caller's
//! business: this module only reads what a certificate says.

use x509_parser::asn1_rs::{Any, Class, FromDer, Oid, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_X509_COMMON_NAME, OID_X509_EXT_SUBJECT_ALT_NAME};
use x509_parser::x509::AttributeTypeAndValue;

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

/// Which subjectAltName entries can name a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SanKind {
    /// DNS, URI and email entries alike.
    Any,
    /// `dNSName` entries only.
    Dns,
    /// `uniformResourceIdentifier` entries only.
    Uri,
    /// `rfc822Name` (email) entries only.
    Email,
}

/// The certificate's DER does not have the shape of an X.509 certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnreadableCertificate;

/// What a client certificate says about the device, borrowing its DER.
#[derive(Clone, Copy, Debug)]
pub struct PeerIdentity<'a> {
    common_name: CommonName<'a>,
    /// The content of the subjectAltName `GeneralNames` SEQUENCE, when the
    /// certificate has a well-formed one.
    alt_names: Option<&'a [u8]>,
}

impl<'a> PeerIdentity<'a> {
    /// Reads the subject CN and the subjectAltName of a DER certificate:
    ///
    /// ```text
    /// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    /// TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
    ///     issuer, validity, subject, subjectPublicKeyInfo,
    ///     [1] issuerUniqueID OPTIONAL, [2] subjectUniqueID OPTIONAL, [3] extensions OPTIONAL }
    /// ```
    pub fn from_der(der: &'a [u8]) -> Result<Self, UnreadableCertificate> {
        let certificate = sequence(der)?;
        let tbs = sequence(certificate)?;
        let (mut rest, first) = any(tbs)?;
        if !is_context(&first, 0) {
            rest = tbs;
        }
        for _field in ["serialNumber", "signature", "issuer", "validity"] {
            rest = any(rest)?.0;
        }
        let (mut rest, subject) = any(rest)?;
        if subject.tag() != Tag::Sequence {
            return Err(UnreadableCertificate);
        }
        rest = any(rest)?.0; // subjectPublicKeyInfo
        let mut extensions: &[u8] = &[];
        while !rest.is_empty() {
            let (next, field) = any(rest)?;
            if is_context(&field, 3) {
                extensions = sequence(field.data)?;
            }
            rest = next;
        }
        Ok(Self {
            common_name: common_name(subject.data)?,
            alt_names: subject_alt_name_value(extensions).and_then(|v| sequence(v).ok()),
        })
    }

    /// Reads the same from the two parts of a certificate that OpenSSL keeps
    /// encoded: the subject `Name` (`X509_NAME_get0_der`) and the value of
    /// the subjectAltName extension, if it has one (`X509_EXTENSION_get_data`).
    pub fn from_parts(
        subject: &'a [u8],
        alt_name_value: Option<&'a [u8]>,
    ) -> Result<Self, UnreadableCertificate> {
        Ok(Self {
            common_name: common_name(sequence(subject)?)?,
            alt_names: alt_name_value.and_then(|v| sequence(v).ok()),
        })
    }

    /// The subject's Common Name.
    pub fn common_name(&self) -> CommonName<'a> {
        self.common_name
    }

    /// Whether `id` equals, byte for byte, one of the subjectAltName entries
    /// of `kind` (any DNS, URI or email entry for [`SanKind::Any`]). A
    /// malformed extension names nobody; an entry of another kind, or one
    /// x509-parser cannot read, is skipped.
    pub fn has_san(&self, id: &str, kind: SanKind) -> bool {
        let Some(mut names) = self.alt_names else {
            return false;
        };
        while let Ok((rest, name)) = Any::from_der(names) {
            names = rest;
            let entry = match (kind, GeneralName::try_from(name)) {
                (SanKind::Any | SanKind::Dns, Ok(GeneralName::DNSName(s)))
                | (SanKind::Any | SanKind::Uri, Ok(GeneralName::URI(s)))
                | (SanKind::Any | SanKind::Email, Ok(GeneralName::RFC822Name(s))) => s,
                _ => continue,
            };
            if entry == id {
                return true;
            }
        }
        false
    }
}

/// The value (the DER of `GeneralNames`) of the subjectAltName extension in
/// the content of an `Extensions` SEQUENCE.
///
/// ```text
/// Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
/// ```
fn subject_alt_name_value(mut extensions: &[u8]) -> Option<&[u8]> {
    while !extensions.is_empty() {
        let (rest, extension) = any(extensions).ok()?;
        extensions = rest;
        let (value, oid) = Oid::from_der(extension.data).ok()?;
        if oid != OID_X509_EXT_SUBJECT_ALT_NAME {
            continue;
        }
        let (after, field) = any(value).ok()?;
        let octets = if field.tag() == Tag::Boolean {
            any(after).ok()?.1
        } else {
            field
        };
        return (octets.tag() == Tag::OctetString).then_some(octets.data);
    }
    None
}

/// Walks `Name ::= SEQUENCE OF SET OF AttributeTypeAndValue` for CNs.
fn common_name(mut rdns: &[u8]) -> Result<CommonName<'_>, UnreadableCertificate> {
    let mut found = CommonName::Absent;
    while !rdns.is_empty() {
        let (rest, rdn) = any(rdns)?;
        rdns = rest;
        if rdn.tag() != Tag::Set {
            return Err(UnreadableCertificate);
        }
        let mut attributes = rdn.data;
        while !attributes.is_empty() {
            let (rest, attribute) =
                AttributeTypeAndValue::from_der(attributes).map_err(|_| UnreadableCertificate)?;
            attributes = rest;
            if attribute.attr_type() != &OID_X509_COMMON_NAME {
                continue;
            }
            found = match (found, attribute.as_str()) {
                (CommonName::Absent, Ok(cn)) => CommonName::One(cn),
                (CommonName::Absent, Err(_)) => CommonName::NotText,
                _ => CommonName::Several,
            };
        }
    }
    Ok(found)
}

fn any(der: &[u8]) -> Result<(&[u8], Any<'_>), UnreadableCertificate> {
    Any::from_der(der).map_err(|_| UnreadableCertificate)
}

/// The content of the SEQUENCE at the start of `der`.
fn sequence(der: &[u8]) -> Result<&[u8], UnreadableCertificate> {
    match any(der)? {
        (_, value) if value.tag() == Tag::Sequence => Ok(value.data),
        _ => Err(UnreadableCertificate),
    }
}

fn is_context(value: &Any<'_>, number: u32) -> bool {
    value.class() == Class::ContextSpecific && value.tag() == Tag(number)
}
