//! CONNACK reason codes: the MQTT 5 table (MQTT 5.0 §3.2.2.2, table 3-1),
//! and the MQTT 3.1/3.1.1 return codes (MQTT 3.1.1 §3.2.2.3) mapped from it.
//!
//! Every refusal is described by one [`ReasonCode`]; what a device is sent
//! follows from it and the device's protocol version through
//! [`ReasonCode::connack`], the only place that mapping is made.

use super::protocol::ProtocolLevel;

/// An MQTT 5 CONNACK reason code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReasonCode {
    Success = 0x00,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8A,
    BadAuthenticationMethod = 0x8C,
    TopicNameInvalid = 0x90,
    PacketTooLarge = 0x95,
    QuotaExceeded = 0x97,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9A,
    QosNotSupported = 0x9B,
    UseAnotherServer = 0x9C,
    ServerMoved = 0x9D,
    ConnectionRateExceeded = 0x9F,
}

impl ReasonCode {
    /// Every code, in the order of the specification's table.
    pub const ALL: [ReasonCode; 22] = [
        ReasonCode::Success,
        ReasonCode::UnspecifiedError,
        ReasonCode::MalformedPacket,
        ReasonCode::ProtocolError,
        ReasonCode::ImplementationSpecificError,
        ReasonCode::UnsupportedProtocolVersion,
        ReasonCode::ClientIdentifierNotValid,
        ReasonCode::BadUserNameOrPassword,
        ReasonCode::NotAuthorized,
        ReasonCode::ServerUnavailable,
        ReasonCode::ServerBusy,
        ReasonCode::Banned,
        ReasonCode::BadAuthenticationMethod,
        ReasonCode::TopicNameInvalid,
        ReasonCode::PacketTooLarge,
        ReasonCode::QuotaExceeded,
        ReasonCode::PayloadFormatInvalid,
        ReasonCode::RetainNotSupported,
        ReasonCode::QosNotSupported,
        ReasonCode::UseAnotherServer,
        ReasonCode::ServerMoved,
        ReasonCode::ConnectionRateExceeded,
    ];

    /// The reason code byte of an MQTT 5 CONNACK.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The name the specification gives the code.
    pub const fn name(self) -> &'static str {
        match self {
            ReasonCode::Success => "Success",
            ReasonCode::UnspecifiedError => "Unspecified error",
            ReasonCode::MalformedPacket => "Malformed Packet",
            ReasonCode::ProtocolError => "Protocol Error",
            ReasonCode::ImplementationSpecificError => "Implementation specific error",
            ReasonCode::UnsupportedProtocolVersion => "Unsupported Protocol Version",
            ReasonCode::ClientIdentifierNotValid => "Client Identifier not valid",
            ReasonCode::BadUserNameOrPassword => "Bad User Name or Password",
            ReasonCode::NotAuthorized => "Not authorized",
            ReasonCode::ServerUnavailable => "Server unavailable",
            ReasonCode::ServerBusy => "Server busy",
            ReasonCode::Banned => "Banned",
            ReasonCode::BadAuthenticationMethod => "Bad authentication method",
            ReasonCode::TopicNameInvalid => "Topic Name invalid",
            ReasonCode::PacketTooLarge => "Packet too large",
            ReasonCode::QuotaExceeded => "Quota exceeded",
            ReasonCode::PayloadFormatInvalid => "Payload format invalid",
            ReasonCode::RetainNotSupported => "Retain not supported",
            ReasonCode::QosNotSupported => "QoS not supported",
            ReasonCode::UseAnotherServer => "Use another server",
            ReasonCode::ServerMoved => "Server moved",
            ReasonCode::ConnectionRateExceeded => "Connection rate exceeded",
        }
    }

    /// The MQTT 3.1/3.1.1 CONNACK return code that says the same, or `None`
    /// where 3.1.1 has none and the connection is closed without a CONNACK
    /// (a malformed or oversized packet, MQTT 3.1.1 §4.8).
    pub const fn v3_return_code(self) -> Option<u8> {
        match self {
            ReasonCode::Success => Some(0x00),
            // "Connection Refused, unacceptable protocol version"
            ReasonCode::UnsupportedProtocolVersion => Some(0x01),
            // "Connection Refused, identifier rejected"
            ReasonCode::ClientIdentifierNotValid => Some(0x02),
            // "Connection Refused, Server unavailable"
            ReasonCode::ServerUnavailable
            | ReasonCode::ServerBusy
            | ReasonCode::QuotaExceeded
            | ReasonCode::ConnectionRateExceeded
            | ReasonCode::UseAnotherServer
            | ReasonCode::ServerMoved => Some(0x03),
            // "Connection Refused, bad user name or password"
            ReasonCode::BadUserNameOrPassword => Some(0x04),
            // "Connection Refused, not authorized"
            ReasonCode::NotAuthorized
            | ReasonCode::Banned
            | ReasonCode::BadAuthenticationMethod => Some(0x05),
            ReasonCode::UnspecifiedError
            | ReasonCode::MalformedPacket
            | ReasonCode::ProtocolError
            | ReasonCode::ImplementationSpecificError
            | ReasonCode::TopicNameInvalid
            | ReasonCode::PacketTooLarge
            | ReasonCode::PayloadFormatInvalid
            | ReasonCode::RetainNotSupported
            | ReasonCode::QosNotSupported => None,
        }
    }

    /// The CONNACK a device of protocol `level` is sent for this code: the
    /// format to encode it in and the code byte; `None` to close without one.
    ///
    /// With the version unknown (the packet failed before its protocol level
    /// was established), only an unsupported version is answered, `0x01` in
    /// the 3.1.1 format (MQTT 3.1.1 §3.1.2.2, MQTT 5.0 §3.1.2.2, as mosquitto
    /// does); anything else is not known to be MQTT and is closed.
    pub const fn connack(self, level: Option<ProtocolLevel>) -> Option<(ProtocolLevel, u8)> {
        match level {
            Some(ProtocolLevel::V5) => Some((ProtocolLevel::V5, self.as_u8())),
            Some(level) => match self.v3_return_code() {
                Some(code) => Some((level, code)),
                None => None,
            },
            None => match self {
                ReasonCode::UnsupportedProtocolVersion => Some((ProtocolLevel::V311, 0x01)),
                _ => None,
            },
        }
    }
}
