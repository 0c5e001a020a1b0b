//! Who gets through: the accept/reject decision for a parsed CONNECT and the
//! client certificate, and what a rejected device is told.

pub mod identity;

use crate::packet::connack::encode_connack;
use crate::packet::rewrite::RewriteError;
use crate::packet::{InvalidReason, ProtocolLevel, ReasonCode};
pub use identity::{CommonName, PeerIdentity, SanKind, UnreadableCertificate};

/// Which certificate identity the ClientId must equal (`mqtt_client_id_match`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientIdPolicy {
    Off,
    /// The subject Common Name (`cn`).
    Cn,
    /// A subjectAltName entry of this kind (`san`, `san_dns`, `san_uri`,
    /// `san_email`).
    San(SanKind),
    /// The Common Name or a DNS, URI or email subjectAltName entry
    /// (`cn_or_san`).
    CnOrSan,
}

/// The client certificate as the TLS layer left it.
// It lives on the stack for the one call that decides a session; boxing the
// parsed certificate would cost a heap allocation per session.
#[allow(clippy::large_enum_variant)]
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
    /// The rewritten CONNECT (`mqtt on`) would not fit `mqtt_buffers`.
    RewriteTooLarge,
    /// The `mqtt_set_connect` values make no valid CONNECT.
    RewriteFailed(RewriteError),
    /// More CONNECTs for the key than `mqtt_limit_connect` allows.
    RateLimited,
    /// As many live sessions for the key as `mqtt_limit_conn` allows.
    SessionLimit,
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
            Self::RewriteTooLarge => "too_large",
            Self::RewriteFailed(_) => "rewrite_failed",
            Self::RateLimited => "rate_limited",
            Self::SessionLimit => "session_limit",
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
            Self::RewriteTooLarge => RewriteError::TooLarge.message(),
            Self::RewriteFailed(error) => error.message(),
            Self::RateLimited => "too many CONNECTs for this key",
            Self::SessionLimit => "too many live sessions for this key",
        }
    }

    /// The stream session status: 400 for a bad packet, 403 for a bad
    /// identity, 500 when the gateway's own values make no valid CONNECT,
    /// 503 when admission control turns the device away.
    pub fn status(self) -> u16 {
        match self {
            Self::Invalid(_) | Self::Incomplete | Self::RewriteTooLarge => 400,
            Self::RewriteFailed(_) => 500,
            Self::RateLimited | Self::SessionLimit => 503,
            _ => 403,
        }
    }

    /// The MQTT 5 reason code a device is refused with, or `None` when it is
    /// closed without a CONNACK whatever its version.
    pub fn reason_code(self) -> Option<ReasonCode> {
        match self {
            Self::Invalid(reason) => Some(reason.reason_code()),
            Self::Incomplete => None,
            Self::NoCertificate
            | Self::UnverifiedCertificate
            | Self::UnreadableCertificate
            | Self::SeveralCommonNames => Some(ReasonCode::NotAuthorized),
            Self::EmptyClientId | Self::ClientIdMismatch => {
                Some(ReasonCode::ClientIdentifierNotValid)
            }
            Self::RewriteTooLarge => Some(ReasonCode::PacketTooLarge),
            Self::RewriteFailed(_) => Some(ReasonCode::ImplementationSpecificError),
            Self::RateLimited => Some(ReasonCode::ConnectionRateExceeded),
            Self::SessionLimit => Some(ReasonCode::QuotaExceeded),
        }
    }

    /// The CONNACK format and code byte a device of protocol `level` (when
    /// known) is refused with; `None` to close without a CONNACK.
    pub fn connack(self, level: Option<ProtocolLevel>) -> Option<(ProtocolLevel, u8)> {
        self.reason_code()?.connack(level)
    }

    /// Writes the CONNACK that refuses a device of protocol `level` into
    /// `out` and returns its length; 0 when the device is closed without
    /// one. An MQTT 5 CONNACK carries the [`message`](Self::message) as its
    /// Reason String, left out or cut short so that the packet fits
    /// `max_packet_size`, the device's Maximum Packet Size.
    pub fn write_connack(
        self,
        level: Option<ProtocolLevel>,
        max_packet_size: Option<u32>,
        out: &mut [u8],
    ) -> usize {
        let Some((level, code)) = self.connack(level) else {
            return 0;
        };
        let room = match max_packet_size {
            Some(max) => out.len().min(usize::try_from(max).unwrap_or(usize::MAX)),
            None => out.len(),
        };
        let out = out.get_mut(..room).unwrap_or_default();
        encode_connack(level, code, Some(self.message()), out)
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
        ClientIdPolicy::San(kind) if identity.has_san(client_id, kind) => Ok(()),
        ClientIdPolicy::CnOrSan if cn_matches || identity.has_san(client_id, SanKind::Any) => {
            Ok(())
        }
        ClientIdPolicy::San(_) | ClientIdPolicy::CnOrSan => Err(RejectReason::ClientIdMismatch),
    }
}

#[cfg(test)]
mod tests;
