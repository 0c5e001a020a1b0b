//! Who gets through: the accept/reject decision for a parsed CONNECT and the
//! client certificate, and what a rejected device is told.

use crate::identity::{CommonName, PeerIdentity};
use crate::mqtt::{InvalidReason, ProtocolLevel};

/// Which certificate identity the ClientId must equal (`mqtt_client_id_match`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientIdPolicy {
    Off,
    Cn,
    San,
    CnOrSan,
}

/// The client certificate as the TLS layer left it.
pub enum PeerCertificate<'a> {
    /// Plain TCP, or TLS without a client certificate.
    Absent,
    /// A certificate was presented but verification failed
    /// (`ssl_verify_client optional_no_ca` lets these through the handshake).
    Unverified,
    /// The DER of a certificate that failed to parse.
    Unreadable,
    Verified(PeerIdentity<'a>),
}

/// Why a session is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The first packet is not a valid CONNECT.
    Invalid(InvalidReason),
    /// The connection ended or timed out before a whole CONNECT arrived.
    Incomplete,
    NoCertificate,
    UnverifiedCertificate,
    UnreadableCertificate,
    /// The certificate subject has several CNs, so `cn` names no one device.
    SeveralCommonNames,
    /// An empty ClientId cannot be bound to a certificate.
    EmptyClientId,
    ClientIdMismatch,
}

impl RejectReason {
    /// The `$mqtt_reject_reason` token.
    pub fn token(self) -> &'static str {
        match self {
            Self::Invalid(reason) => reason.token(),
            Self::Incomplete => "incomplete",
            Self::NoCertificate => "no_certificate",
            Self::UnverifiedCertificate => "unverified_certificate",
            Self::UnreadableCertificate => "unreadable_certificate",
            Self::SeveralCommonNames => "several_common_names",
            Self::EmptyClientId => "empty_client_id",
            Self::ClientIdMismatch => "client_id_mismatch",
        }
    }

    /// A short lower-case message for the error log.
    pub fn message(self) -> &'static str {
        match self {
            Self::Invalid(reason) => reason.message(),
            Self::Incomplete => "connection closed or timed out before a complete CONNECT",
            Self::NoCertificate => "no client certificate",
            Self::UnverifiedCertificate => "client certificate not verified",
            Self::UnreadableCertificate => "client certificate could not be parsed",
            Self::SeveralCommonNames => "client certificate subject has several CNs",
            Self::EmptyClientId => "empty ClientId cannot match a certificate identity",
            Self::ClientIdMismatch => "ClientId does not match the certificate identity",
        }
    }

    /// The stream session status: 400 for a bad packet, 403 for a bad identity.
    pub fn status(self) -> u16 {
        match self {
            Self::Invalid(_) | Self::Incomplete => 400,
            _ => 403,
        }
    }

    /// The CONNACK return code for the device's protocol version, or `None`
    /// when the spec says to close without one.
    pub fn connack_code(self, level: Option<ProtocolLevel>) -> Option<u8> {
        let v5 = level == Some(ProtocolLevel::V5);
        match self {
            Self::Invalid(reason) => reason.connack_code(level),
            Self::Incomplete => None,
            // "not authorized" / "Not authorized"
            Self::NoCertificate
            | Self::UnverifiedCertificate
            | Self::UnreadableCertificate
            | Self::SeveralCommonNames => Some(if v5 { 0x87 } else { 0x05 }),
            // "identifier rejected" / "Client Identifier not valid"
            Self::EmptyClientId | Self::ClientIdMismatch => Some(if v5 { 0x85 } else { 0x02 }),
        }
    }
}

/// Checks a ClientId against the verified certificate identity.
///
/// The comparison is exact, byte for byte: no case folding, no normalisation.
pub fn check_client_id(
    policy: ClientIdPolicy,
    client_id: &str,
    cert: &PeerCertificate<'_>,
) -> Result<(), RejectReason> {
    if policy == ClientIdPolicy::Off {
        return Ok(());
    }
    let identity = match cert {
        PeerCertificate::Absent => return Err(RejectReason::NoCertificate),
        PeerCertificate::Unverified => return Err(RejectReason::UnverifiedCertificate),
        PeerCertificate::Unreadable => return Err(RejectReason::UnreadableCertificate),
        PeerCertificate::Verified(identity) => identity,
    };
    if client_id.is_empty() {
        return Err(RejectReason::EmptyClientId);
    }
    let cn = identity.common_name();
    let cn_matches = matches!(cn, CommonName::One(name) if name == client_id);
    match policy {
        ClientIdPolicy::Off => Ok(()),
        ClientIdPolicy::Cn => match cn {
            CommonName::Several => Err(RejectReason::SeveralCommonNames),
            _ if cn_matches => Ok(()),
            _ => Err(RejectReason::ClientIdMismatch),
        },
        ClientIdPolicy::San if identity.has_san(client_id) => Ok(()),
        ClientIdPolicy::CnOrSan if cn_matches || identity.has_san(client_id) => Ok(()),
        ClientIdPolicy::San | ClientIdPolicy::CnOrSan => Err(RejectReason::ClientIdMismatch),
    }
}
