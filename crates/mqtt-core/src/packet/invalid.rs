//! The catalogue of rules a CONNECT can break: one variant per rule, with
//! its log message, its `$mqtt_reject_reason` token and its reason code.

use core::fmt;

use super::reason_code::ReasonCode;

/// The rule a rejected CONNECT violated.
///
/// The variants are listed in the order the parser checks them, which is wire
/// order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// The first byte's packet type (its high four bits) is not 1, CONNECT.
    NotConnect,
    /// The Remaining Length does not end within four bytes.
    RemainingLengthTooLong,
    /// A Variable Byte Integer (the Remaining Length, or an MQTT 5 Property
    /// Length) is not in its shortest encoding (MQTT 5.0 §1.5.5). The rule is
    /// from MQTT 5, but it is applied to the Remaining Length of every
    /// version: the version is not known yet when the fixed header is read,
    /// and no conforming encoder produces a longer form.
    NonMinimalVarInt,
    /// The declared packet size is above the configured limit.
    TooLarge,
    /// The protocol name is neither `MQTT` nor `MQIsdp`; this is not MQTT.
    ProtocolName,
    /// A known protocol name with a level this parser does not accept (only
    /// `MQIsdp`/3, `MQTT`/4 and `MQTT`/5 are).
    UnsupportedProtocolLevel,
    /// MQTT 3.1.1 and 5.0: the flags of the fixed header (the low four bits
    /// of the first byte) are not 0. Reported once the protocol level is
    /// read, as MQTT 3.1 allows them.
    FixedHeaderFlags,
    /// MQTT 3.1.1 and 5.0: the reserved bit 0 of the Connect Flags is set.
    ReservedFlag,
    /// The Will QoS is 3 (with the Will Flag; in 3.1.1 and 5.0 without it
    /// too).
    WillQos,
    /// MQTT 3.1.1 and 5.0: Will QoS or Will Retain is set without the Will
    /// Flag.
    WillFlagsWithoutWill,
    /// MQTT 3.x: the Password Flag is set without the User Name Flag.
    PasswordWithoutUsername,
    /// A field runs past the end of the packet as declared by the Remaining
    /// Length.
    Truncated,
    /// Bytes are left inside the Remaining Length after the last field.
    TrailingBytes,
    /// A UTF-8 string field is not well-formed UTF-8.
    InvalidUtf8,
    /// A UTF-8 string field contains U+0000 (in MQTT 3.1, a topic).
    NullCharacter,
    /// MQTT 3.1: the ClientId is empty.
    EmptyClientId,
    /// MQTT 3.1.1: the ClientId is empty and Clean Session is 0.
    EmptyClientIdWithoutCleanSession,
    /// The Will Topic is empty or contains a wildcard (`+`, `#`), which a
    /// Topic Name must not (MQTT 3.1.1 §4.7, MQTT 5.0 §4.7).
    InvalidWillTopic,
    /// MQTT 5: a Property Length does not end within four bytes.
    PropertyLengthTooLong,
    /// MQTT 5: a Property Length is larger than what is left of the packet.
    PropertyLengthOutOfBounds,
    /// MQTT 5: a property value runs past the end of its property block.
    PropertyTruncated,
    /// MQTT 5: a property identifier that is not allowed in CONNECT.
    UnknownConnectProperty,
    /// MQTT 5: a property identifier that is not allowed in Will Properties.
    UnknownWillProperty,
    /// MQTT 5: a property other than User Property appears twice.
    DuplicateProperty,
    /// MQTT 5: Receive Maximum is 0.
    ReceiveMaximumZero,
    /// MQTT 5: Maximum Packet Size is 0.
    MaximumPacketSizeZero,
    /// MQTT 5: Request Problem/Response Information is neither 0 nor 1.
    InvalidRequestFlag,
    /// MQTT 5: the Will's Payload Format Indicator is neither 0 nor 1.
    InvalidPayloadFormat,
    /// MQTT 5: the Will's Response Topic is empty or contains a wildcard,
    /// which the Topic Name of the response must not.
    InvalidResponseTopic,
    /// MQTT 5: Authentication Data without Authentication Method.
    AuthDataWithoutMethod,
}

impl InvalidReason {
    /// Every variant, in declaration order.
    pub const ALL: &'static [InvalidReason] = &[
        InvalidReason::NotConnect,
        InvalidReason::RemainingLengthTooLong,
        InvalidReason::NonMinimalVarInt,
        InvalidReason::TooLarge,
        InvalidReason::ProtocolName,
        InvalidReason::UnsupportedProtocolLevel,
        InvalidReason::FixedHeaderFlags,
        InvalidReason::ReservedFlag,
        InvalidReason::WillQos,
        InvalidReason::WillFlagsWithoutWill,
        InvalidReason::PasswordWithoutUsername,
        InvalidReason::Truncated,
        InvalidReason::TrailingBytes,
        InvalidReason::InvalidUtf8,
        InvalidReason::NullCharacter,
        InvalidReason::EmptyClientId,
        InvalidReason::EmptyClientIdWithoutCleanSession,
        InvalidReason::InvalidWillTopic,
        InvalidReason::PropertyLengthTooLong,
        InvalidReason::PropertyLengthOutOfBounds,
        InvalidReason::PropertyTruncated,
        InvalidReason::UnknownConnectProperty,
        InvalidReason::UnknownWillProperty,
        InvalidReason::DuplicateProperty,
        InvalidReason::ReceiveMaximumZero,
        InvalidReason::MaximumPacketSizeZero,
        InvalidReason::InvalidRequestFlag,
        InvalidReason::InvalidPayloadFormat,
        InvalidReason::InvalidResponseTopic,
        InvalidReason::AuthDataWithoutMethod,
    ];

    /// A short lower-case description for the error log.
    pub const fn message(self) -> &'static str {
        match self {
            InvalidReason::NotConnect => "first byte is not a CONNECT packet",
            InvalidReason::RemainingLengthTooLong => "remaining length longer than 4 bytes",
            InvalidReason::NonMinimalVarInt => "variable byte integer not minimally encoded",
            InvalidReason::TooLarge => "CONNECT packet larger than the configured limit",
            InvalidReason::ProtocolName => "protocol name is not MQTT",
            InvalidReason::UnsupportedProtocolLevel => "unsupported protocol level",
            InvalidReason::FixedHeaderFlags => "reserved fixed header flags are set",
            InvalidReason::ReservedFlag => "reserved connect flag is set",
            InvalidReason::WillQos => "will qos is 3",
            InvalidReason::WillFlagsWithoutWill => "will qos or will retain set without will flag",
            InvalidReason::PasswordWithoutUsername => "password flag set without username flag",
            InvalidReason::Truncated => "field runs past the remaining length",
            InvalidReason::TrailingBytes => "unexpected bytes at the end of the CONNECT packet",
            InvalidReason::InvalidUtf8 => "string is not valid UTF-8",
            InvalidReason::NullCharacter => "string contains U+0000",
            InvalidReason::EmptyClientId => "empty client identifier",
            InvalidReason::EmptyClientIdWithoutCleanSession => {
                "empty client identifier without clean session"
            }
            InvalidReason::InvalidWillTopic => "will topic is empty or contains a wildcard",
            InvalidReason::PropertyLengthTooLong => "property length longer than 4 bytes",
            InvalidReason::PropertyLengthOutOfBounds => "property length exceeds the packet",
            InvalidReason::PropertyTruncated => "property runs past the property length",
            InvalidReason::UnknownConnectProperty => "property not allowed in CONNECT",
            InvalidReason::UnknownWillProperty => "property not allowed in will properties",
            InvalidReason::DuplicateProperty => "property included more than once",
            InvalidReason::ReceiveMaximumZero => "receive maximum is 0",
            InvalidReason::MaximumPacketSizeZero => "maximum packet size is 0",
            InvalidReason::InvalidRequestFlag => {
                "request problem/response information is not 0 or 1"
            }
            InvalidReason::InvalidPayloadFormat => "payload format indicator is not 0 or 1",
            InvalidReason::InvalidResponseTopic => {
                "will response topic is empty or contains a wildcard"
            }
            InvalidReason::AuthDataWithoutMethod => {
                "authentication data without authentication method"
            }
        }
    }

    /// A coarse classification for the `$mqtt_reject_reason` variable:
    /// `"too_large"`, `"unsupported_version"`, `"client_id_rejected"` or
    /// `"malformed"`.
    ///
    /// A protocol name other than `MQTT`/`MQIsdp` is `"malformed"`: such a
    /// stream is not MQTT at all, as opposed to an MQTT client speaking a
    /// version this module does not accept.
    pub const fn token(self) -> &'static str {
        match self {
            InvalidReason::TooLarge => "too_large",
            InvalidReason::UnsupportedProtocolLevel => "unsupported_version",
            InvalidReason::EmptyClientId | InvalidReason::EmptyClientIdWithoutCleanSession => {
                "client_id_rejected"
            }
            _ => "malformed",
        }
    }

    /// The MQTT 5 reason code for this violation; [`ReasonCode::connack`]
    /// says what a device of each version is sent.
    ///
    /// `0x82` Protocol Error for the rules the specification calls a Protocol
    /// Error (a duplicate property, Receive Maximum or Maximum Packet Size 0,
    /// request flags other than 0/1, Authentication Data without Method, a
    /// Payload Format Indicator other than 0/1) and for a Response Topic that
    /// is no Topic Name (data the protocol does not allow, §4.13.1; `0x90` is
    /// described as the Will Topic's code), `0x90` Topic Name invalid
    /// for a bad Will Topic, `0x84` for an unsupported version, `0x85` for a
    /// ClientId the version forbids, `0x95` for [`TooLarge`], and `0x81`
    /// Malformed Packet for the rest (MQTT 5.0 §3.2.2.2). The parser reports
    /// `TooLarge` before the version is known, so `0x95` reaches only a device
    /// whose version a caller knows some other way.
    ///
    /// [`TooLarge`]: InvalidReason::TooLarge
    pub const fn reason_code(self) -> ReasonCode {
        match self {
            InvalidReason::UnsupportedProtocolLevel => ReasonCode::UnsupportedProtocolVersion,
            InvalidReason::EmptyClientId | InvalidReason::EmptyClientIdWithoutCleanSession => {
                ReasonCode::ClientIdentifierNotValid
            }
            InvalidReason::TooLarge => ReasonCode::PacketTooLarge,
            InvalidReason::InvalidWillTopic => ReasonCode::TopicNameInvalid,
            InvalidReason::DuplicateProperty
            | InvalidReason::ReceiveMaximumZero
            | InvalidReason::MaximumPacketSizeZero
            | InvalidReason::InvalidRequestFlag
            | InvalidReason::InvalidPayloadFormat
            | InvalidReason::InvalidResponseTopic
            | InvalidReason::AuthDataWithoutMethod => ReasonCode::ProtocolError,
            _ => ReasonCode::MalformedPacket,
        }
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}
