//! Zero-copy, allocation-free parser for the MQTT CONNECT packet.
//!
//! Supported protocol versions and the sections this parser follows:
//!
//! * MQTT 3.1 (IBM/Eurotech, 2010), "CONNECT": protocol name `MQIsdp`, level 3.
//! * MQTT 3.1.1 (OASIS, 2014): §1.5.3 (UTF-8 strings), §2.2 (fixed header and
//!   Remaining Length), §3.1 (CONNECT). Protocol name `MQTT`, level 4.
//! * MQTT 5.0 (OASIS, 2019): §1.5.4 (UTF-8 strings), §1.5.5 (Variable Byte
//!   Integer), §2.2.2 (properties), §3.1 (CONNECT, its properties in §3.1.2.11
//!   and the Will Properties in §3.1.3.2). Protocol name `MQTT`, level 5.
//!
//! # Incremental input
//!
//! [`parse_connect`] is a pure function of the bytes received so far. The
//! caller re-parses the whole buffer every time more bytes arrive; the result
//! never depends on how the stream was fragmented:
//!
//! * while no rule is violated by the bytes present, a strict prefix of a
//!   CONNECT packet is [`Parsed::Incomplete`];
//! * a violation is reported as soon as the bytes that prove it are present
//!   (a first byte that is not `0x10`, a protocol name that is not MQTT, a
//!   declared size above the limit, a field that is longer than the declared
//!   Remaining Length, ...). The fields are checked in wire order and each
//!   check looks only at bytes that precede it, so a longer prefix of the same
//!   stream reports the same [`Parsed::Invalid`].
//!
//! Bytes that follow the CONNECT packet in the buffer (a client that pipelines
//! a PUBLISH right after its CONNECT) are not part of the packet and are not
//! looked at; [`Connect::packet_len`] says where the packet ends.
//!
//! # What is returned
//!
//! [`Connect`] borrows its strings from the input. The password and the Will
//! payload are checked for length only and are never exposed, and neither is
//! the content of the MQTT 5 Authentication Data property.

use core::fmt;

/// The MQTT protocol versions this parser accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ProtocolLevel {
    /// MQTT 3.1, protocol name `MQIsdp`.
    V31 = 3,
    /// MQTT 3.1.1, protocol name `MQTT`.
    V311 = 4,
    /// MQTT 5.0, protocol name `MQTT`.
    V5 = 5,
}

impl ProtocolLevel {
    /// Every supported level, oldest first.
    pub const ALL: [ProtocolLevel; 3] =
        [ProtocolLevel::V31, ProtocolLevel::V311, ProtocolLevel::V5];

    /// The protocol level byte as sent on the wire.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Human-readable version: `"3.1"`, `"3.1.1"` or `"5.0"`.
    pub const fn name(self) -> &'static str {
        match self {
            ProtocolLevel::V31 => "3.1",
            ProtocolLevel::V311 => "3.1.1",
            ProtocolLevel::V5 => "5.0",
        }
    }

    /// The protocol name that goes with this level in the variable header.
    pub const fn protocol_name(self) -> &'static str {
        match self {
            ProtocolLevel::V31 => "MQIsdp",
            ProtocolLevel::V311 | ProtocolLevel::V5 => "MQTT",
        }
    }
}

/// The Connect Flags byte (MQTT 3.1.1 §3.1.2.3, MQTT 5.0 §3.1.2.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnectFlags(u8);

impl ConnectFlags {
    /// Bit 0, reserved; must be 0.
    pub const RESERVED: u8 = 0x01;
    /// Bit 1, Clean Session (3.x) / Clean Start (5.0).
    pub const CLEAN_SESSION: u8 = 0x02;
    /// Bit 2, Will Flag.
    pub const WILL: u8 = 0x04;
    /// Bits 3-4, Will QoS.
    pub const WILL_QOS_MASK: u8 = 0x18;
    /// Bit 5, Will Retain.
    pub const WILL_RETAIN: u8 = 0x20;
    /// Bit 6, Password Flag.
    pub const PASSWORD: u8 = 0x40;
    /// Bit 7, User Name Flag.
    pub const USERNAME: u8 = 0x80;

    /// Wraps a raw flags byte (no validation).
    pub const fn from_bits(bits: u8) -> Self {
        ConnectFlags(bits)
    }

    /// The raw flags byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Clean Session (MQTT 3.x) or Clean Start (MQTT 5.0).
    pub const fn clean_session(self) -> bool {
        self.0 & Self::CLEAN_SESSION != 0
    }

    /// A Will Message is present.
    pub const fn will(self) -> bool {
        self.0 & Self::WILL != 0
    }

    /// The Will QoS, 0 to 3 (3 never appears in a parsed [`Connect`]).
    pub const fn will_qos(self) -> u8 {
        (self.0 & Self::WILL_QOS_MASK) >> 3
    }

    /// The Will Message is to be retained.
    pub const fn will_retain(self) -> bool {
        self.0 & Self::WILL_RETAIN != 0
    }

    /// A password is present.
    pub const fn password(self) -> bool {
        self.0 & Self::PASSWORD != 0
    }

    /// A user name is present.
    pub const fn username(self) -> bool {
        self.0 & Self::USERNAME != 0
    }
}

impl fmt::Debug for ConnectFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectFlags({:#04x}", self.0)?;
        for (set, name) in [
            (self.username(), "username"),
            (self.password(), "password"),
            (self.will_retain(), "will_retain"),
            (self.will(), "will"),
            (self.clean_session(), "clean_session"),
            (self.0 & Self::RESERVED != 0, "reserved"),
        ] {
            if set {
                write!(f, " {name}")?;
            }
        }
        if self.will_qos() != 0 {
            write!(f, " will_qos={}", self.will_qos())?;
        }
        f.write_str(")")
    }
}

/// MQTT 5.0 property identifiers (MQTT 5.0 §2.2.2.2, table 2-4) that may
/// appear in a CONNECT packet.
pub mod property_id {
    /// Will property: Payload Format Indicator, byte.
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    /// Will property: Message Expiry Interval, four byte integer.
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    /// Will property: Content Type, UTF-8 string.
    pub const CONTENT_TYPE: u8 = 0x03;
    /// Will property: Response Topic, UTF-8 string.
    pub const RESPONSE_TOPIC: u8 = 0x08;
    /// Will property: Correlation Data, binary data.
    pub const CORRELATION_DATA: u8 = 0x09;
    /// CONNECT property: Session Expiry Interval, four byte integer.
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    /// CONNECT property: Authentication Method, UTF-8 string.
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    /// CONNECT property: Authentication Data, binary data.
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    /// CONNECT property: Request Problem Information, byte (0 or 1).
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    /// Will property: Will Delay Interval, four byte integer.
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    /// CONNECT property: Request Response Information, byte (0 or 1).
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    /// CONNECT property: Receive Maximum, two byte integer (not 0).
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    /// CONNECT property: Topic Alias Maximum, two byte integer.
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    /// CONNECT and Will property: User Property, UTF-8 string pair; may repeat.
    pub const USER_PROPERTY: u8 = 0x26;
    /// CONNECT property: Maximum Packet Size, four byte integer (not 0).
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;

    /// Bitset (bit n = identifier n) of the properties allowed in the CONNECT
    /// variable header (MQTT 5.0 §3.1.2.11).
    pub const CONNECT_ALLOWED: u64 = 1 << SESSION_EXPIRY_INTERVAL
        | 1 << AUTHENTICATION_METHOD
        | 1 << AUTHENTICATION_DATA
        | 1 << REQUEST_PROBLEM_INFORMATION
        | 1 << REQUEST_RESPONSE_INFORMATION
        | 1 << RECEIVE_MAXIMUM
        | 1 << TOPIC_ALIAS_MAXIMUM
        | 1 << USER_PROPERTY
        | 1 << MAXIMUM_PACKET_SIZE;

    /// Bitset of the properties allowed in the Will Properties (MQTT 5.0
    /// §3.1.3.2).
    pub const WILL_ALLOWED: u64 = 1 << PAYLOAD_FORMAT_INDICATOR
        | 1 << MESSAGE_EXPIRY_INTERVAL
        | 1 << CONTENT_TYPE
        | 1 << RESPONSE_TOPIC
        | 1 << CORRELATION_DATA
        | 1 << WILL_DELAY_INTERVAL
        | 1 << USER_PROPERTY;
}

/// The rule a rejected CONNECT violated.
///
/// The variants are listed in the order the parser checks them, which is wire
/// order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// The first byte is not `0x10` (packet type CONNECT with flags 0).
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
    /// The reserved bit 0 of the Connect Flags is set.
    ReservedFlag,
    /// The Will QoS is 3.
    WillQos,
    /// Will QoS or Will Retain is set without the Will Flag.
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
    /// A UTF-8 string field contains U+0000.
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
        InvalidReason::AuthDataWithoutMethod,
    ];

    /// A short lower-case description for the error log.
    pub const fn message(self) -> &'static str {
        match self {
            InvalidReason::NotConnect => "first byte is not a CONNECT (0x10)",
            InvalidReason::RemainingLengthTooLong => "remaining length longer than 4 bytes",
            InvalidReason::NonMinimalVarInt => "variable byte integer not minimally encoded",
            InvalidReason::TooLarge => "CONNECT packet larger than the configured limit",
            InvalidReason::ProtocolName => "protocol name is not MQTT",
            InvalidReason::UnsupportedProtocolLevel => "unsupported protocol level",
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

    /// The CONNACK return code (MQTT 3.x) or reason code (MQTT 5) to send
    /// before closing, or `None` to close without a CONNACK.
    ///
    /// `level` is the protocol level that was known when the error was found
    /// (see [`Parsed::Invalid`]); the CONNACK must then be encoded in that
    /// version's format, or in the 3.1.1 format when `level` is `None`.
    ///
    /// * Unknown level: only [`UnsupportedProtocolLevel`] gets a CONNACK,
    ///   `0x01` in the 3.1.1 format (MQTT 3.1.1 §3.1.2.2, MQTT 5.0 §3.1.2.2,
    ///   which is also what brokers such as mosquitto send); everything else
    ///   — not MQTT, bad fixed header, too large — closes the connection.
    /// * MQTT 3.x: `0x01` unacceptable protocol version, `0x02` identifier
    ///   rejected; a malformed packet, including one too large, closes the
    ///   connection (MQTT 3.1.1 §4.8).
    /// * MQTT 5.0 (§3.2.2.2): `0x81` Malformed Packet, `0x82` Protocol Error
    ///   for the rules the specification calls a Protocol Error (duplicate
    ///   property, Receive Maximum or Maximum Packet Size 0, request flags
    ///   other than 0/1, Authentication Data without Method, Payload Format
    ///   Indicator other than 0/1), `0x84` Unsupported Protocol Version, `0x85`
    ///   Client Identifier not valid, `0x90` Topic Name invalid for a bad Will
    ///   Topic, and `0x95` Packet too large for [`TooLarge`]. The parser only
    ///   reports `TooLarge` with an unknown level (the size is known before
    ///   the version), so `0x95` is only sent by a caller that knows the
    ///   version some other way.
    ///
    /// [`UnsupportedProtocolLevel`]: InvalidReason::UnsupportedProtocolLevel
    /// [`TooLarge`]: InvalidReason::TooLarge
    pub const fn connack_code(self, level: Option<ProtocolLevel>) -> Option<u8> {
        match level {
            None => match self {
                InvalidReason::UnsupportedProtocolLevel => Some(0x01),
                _ => None,
            },
            Some(ProtocolLevel::V31 | ProtocolLevel::V311) => match self {
                InvalidReason::UnsupportedProtocolLevel => Some(0x01),
                InvalidReason::EmptyClientId | InvalidReason::EmptyClientIdWithoutCleanSession => {
                    Some(0x02)
                }
                _ => None,
            },
            Some(ProtocolLevel::V5) => Some(match self {
                InvalidReason::UnsupportedProtocolLevel => 0x84,
                InvalidReason::EmptyClientId | InvalidReason::EmptyClientIdWithoutCleanSession => {
                    0x85
                }
                InvalidReason::TooLarge => 0x95,
                InvalidReason::InvalidWillTopic => 0x90,
                InvalidReason::DuplicateProperty
                | InvalidReason::ReceiveMaximumZero
                | InvalidReason::MaximumPacketSizeZero
                | InvalidReason::InvalidRequestFlag
                | InvalidReason::InvalidPayloadFormat
                | InvalidReason::AuthDataWithoutMethod => 0x82,
                _ => 0x81,
            }),
        }
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// One decoded MQTT 5 property of a CONNECT packet or of its Will.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Property<'a> {
    /// 0x01 (Will).
    PayloadFormatIndicator(u8),
    /// 0x02 (Will).
    MessageExpiryInterval(u32),
    /// 0x03 (Will).
    ContentType(&'a str),
    /// 0x08 (Will).
    ResponseTopic(&'a str),
    /// 0x09 (Will).
    CorrelationData(&'a [u8]),
    /// 0x11 (CONNECT).
    SessionExpiryInterval(u32),
    /// 0x15 (CONNECT).
    AuthenticationMethod(&'a str),
    /// 0x16 (CONNECT). Credentials are not exposed, only their length.
    AuthenticationData {
        /// Length of the Authentication Data in bytes.
        len: usize,
    },
    /// 0x17 (CONNECT).
    RequestProblemInformation(u8),
    /// 0x18 (Will).
    WillDelayInterval(u32),
    /// 0x19 (CONNECT).
    RequestResponseInformation(u8),
    /// 0x21 (CONNECT).
    ReceiveMaximum(u16),
    /// 0x22 (CONNECT).
    TopicAliasMaximum(u16),
    /// 0x26 (CONNECT and Will).
    UserProperty(&'a str, &'a str),
    /// 0x27 (CONNECT).
    MaximumPacketSize(u32),
}

impl Property<'_> {
    /// The property identifier.
    pub const fn id(&self) -> u8 {
        use property_id::*;
        match self {
            Property::PayloadFormatIndicator(_) => PAYLOAD_FORMAT_INDICATOR,
            Property::MessageExpiryInterval(_) => MESSAGE_EXPIRY_INTERVAL,
            Property::ContentType(_) => CONTENT_TYPE,
            Property::ResponseTopic(_) => RESPONSE_TOPIC,
            Property::CorrelationData(_) => CORRELATION_DATA,
            Property::SessionExpiryInterval(_) => SESSION_EXPIRY_INTERVAL,
            Property::AuthenticationMethod(_) => AUTHENTICATION_METHOD,
            Property::AuthenticationData { .. } => AUTHENTICATION_DATA,
            Property::RequestProblemInformation(_) => REQUEST_PROBLEM_INFORMATION,
            Property::WillDelayInterval(_) => WILL_DELAY_INTERVAL,
            Property::RequestResponseInformation(_) => REQUEST_RESPONSE_INFORMATION,
            Property::ReceiveMaximum(_) => RECEIVE_MAXIMUM,
            Property::TopicAliasMaximum(_) => TOPIC_ALIAS_MAXIMUM,
            Property::UserProperty(..) => USER_PROPERTY,
            Property::MaximumPacketSize(_) => MAXIMUM_PACKET_SIZE,
        }
    }
}

/// A validated MQTT 5 property block (CONNECT properties or Will
/// Properties), kept as the raw bytes after the Property Length and decoded
/// on demand. Empty for MQTT 3.x.
///
/// `Debug` prints the decoded properties; Authentication Data shows only its
/// length.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Properties<'a> {
    pub(in crate::mqtt) raw: &'a [u8],
}

impl<'a> Properties<'a> {
    /// No properties.
    pub const EMPTY: Properties<'static> = Properties { raw: &[] };

    /// Size of the property block in bytes (the Property Length value).
    pub const fn len(&self) -> usize {
        self.raw.len()
    }

    /// The block holds no property.
    pub const fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The properties in wire order.
    pub fn iter(&self) -> PropertyIter<'a> {
        PropertyIter {
            reader: Reader::complete(self.raw, InvalidReason::PropertyTruncated),
        }
    }

    fn find<T>(&self, f: impl FnMut(Property<'a>) -> Option<T>) -> Option<T> {
        self.iter().find_map(f)
    }

    /// Session Expiry Interval (0x11), seconds.
    pub fn session_expiry_interval(&self) -> Option<u32> {
        self.find(|p| match p {
            Property::SessionExpiryInterval(v) => Some(v),
            _ => None,
        })
    }

    /// Receive Maximum (0x21).
    pub fn receive_maximum(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::ReceiveMaximum(v) => Some(v),
            _ => None,
        })
    }

    /// Maximum Packet Size (0x27), bytes.
    pub fn maximum_packet_size(&self) -> Option<u32> {
        self.find(|p| match p {
            Property::MaximumPacketSize(v) => Some(v),
            _ => None,
        })
    }

    /// Topic Alias Maximum (0x22).
    pub fn topic_alias_maximum(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::TopicAliasMaximum(v) => Some(v),
            _ => None,
        })
    }

    /// Request Problem Information (0x17).
    pub fn request_problem_information(&self) -> Option<u8> {
        self.find(|p| match p {
            Property::RequestProblemInformation(v) => Some(v),
            _ => None,
        })
    }

    /// Request Response Information (0x19).
    pub fn request_response_information(&self) -> Option<u8> {
        self.find(|p| match p {
            Property::RequestResponseInformation(v) => Some(v),
            _ => None,
        })
    }

    /// Authentication Method (0x15).
    pub fn authentication_method(&self) -> Option<&'a str> {
        self.find(|p| match p {
            Property::AuthenticationMethod(v) => Some(v),
            _ => None,
        })
    }

    /// Authentication Data (0x16) is present (its content is not exposed).
    pub fn has_authentication_data(&self) -> bool {
        self.iter()
            .any(|p| matches!(p, Property::AuthenticationData { .. }))
    }

    /// Will Delay Interval (0x18), seconds.
    pub fn will_delay_interval(&self) -> Option<u32> {
        self.find(|p| match p {
            Property::WillDelayInterval(v) => Some(v),
            _ => None,
        })
    }

    /// Message Expiry Interval (0x02), seconds.
    pub fn message_expiry_interval(&self) -> Option<u32> {
        self.find(|p| match p {
            Property::MessageExpiryInterval(v) => Some(v),
            _ => None,
        })
    }

    /// Payload Format Indicator (0x01).
    pub fn payload_format_indicator(&self) -> Option<u8> {
        self.find(|p| match p {
            Property::PayloadFormatIndicator(v) => Some(v),
            _ => None,
        })
    }

    /// Content Type (0x03).
    pub fn content_type(&self) -> Option<&'a str> {
        self.find(|p| match p {
            Property::ContentType(v) => Some(v),
            _ => None,
        })
    }

    /// Response Topic (0x08).
    pub fn response_topic(&self) -> Option<&'a str> {
        self.find(|p| match p {
            Property::ResponseTopic(v) => Some(v),
            _ => None,
        })
    }

    /// User Properties (0x26) in wire order, as (name, value) pairs.
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.iter().filter_map(|p| match p {
            Property::UserProperty(k, v) => Some((k, v)),
            _ => None,
        })
    }
}

impl fmt::Debug for Properties<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for Properties<'a> {
    type Item = Property<'a>;
    type IntoIter = PropertyIter<'a>;

    fn into_iter(self) -> PropertyIter<'a> {
        self.iter()
    }
}

/// Iterator over a validated [`Properties`] block.
#[derive(Clone)]
pub struct PropertyIter<'a> {
    reader: Reader<'a>,
}

impl fmt::Debug for PropertyIter<'_> {
    // Not derived: the raw bytes may hold Authentication Data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropertyIter")
            .field("bytes_left", &self.reader.left())
            .finish()
    }
}

impl<'a> Iterator for PropertyIter<'a> {
    type Item = Property<'a>;

    fn next(&mut self) -> Option<Property<'a>> {
        if self.reader.at_end() {
            return None;
        }
        // The block was validated when it was parsed, so decoding cannot
        // fail; should it, the iteration simply stops.
        let id = self.reader.u8().ok()?;
        match read_property_value(&mut self.reader, id) {
            Ok(Some(property)) => Some(property),
            _ => {
                self.reader.pos = self.reader.end;
                None
            }
        }
    }
}

/// A well-formed CONNECT packet.
///
/// It holds no password (only whether one was sent), so `Debug` cannot leak
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect<'a> {
    /// The protocol version.
    pub level: ProtocolLevel,
    /// The Connect Flags byte.
    pub flags: ConnectFlags,
    /// Keep Alive, seconds.
    pub keep_alive: u16,
    /// The ClientId; may be empty for 3.1.1 (with clean session) and 5.0.
    pub client_id: &'a str,
    /// The User Name, when the User Name Flag is set.
    pub username: Option<&'a str>,
    /// Whether a password was sent. The password itself is never exposed.
    pub password_present: bool,
    /// The Will Topic, when the Will Flag is set.
    pub will_topic: Option<&'a str>,
    /// MQTT 5 CONNECT properties (empty for 3.x).
    pub properties: Properties<'a>,
    /// MQTT 5 Will Properties (empty for 3.x or without a Will).
    pub will_properties: Properties<'a>,
    /// Total size of the packet in bytes, fixed header included. Bytes of the
    /// input beyond this belong to the packets that follow the CONNECT.
    pub packet_len: usize,
}

/// The outcome of [`parse_connect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// More bytes are needed. `needed` is how many more make up the whole
    /// packet, once the Remaining Length has been read; `None` before that.
    Incomplete {
        /// Bytes still missing from the packet, when known.
        needed: Option<usize>,
    },
    /// A complete, valid CONNECT packet.
    Connect(Connect<'a>),
    /// The input violates `reason`. `level` is the protocol version when it
    /// was already established (valid protocol name and level) at the point
    /// of failure; it selects the CONNACK format, see
    /// [`InvalidReason::connack_code`].
    Invalid {
        /// The violated rule.
        reason: InvalidReason,
        /// The protocol version, when known.
        level: Option<ProtocolLevel>,
    },
}

/// Parses the CONNECT packet at the start of `buf`, the bytes received so far
/// on a connection.
///
/// `limit` is the largest accepted packet size in bytes, fixed header
/// included; a larger declared size is rejected as soon as the Remaining
/// Length has been read, without waiting for the packet.
///
/// See the [module documentation](self) for how partial input is handled.
pub fn parse_connect(buf: &[u8], limit: usize) -> Parsed<'_> {
    let (header_len, remaining_len) = match fixed_header(buf) {
        Ok(header) => header,
        Err(Stop::Incomplete) => return Parsed::Incomplete { needed: None },
        Err(Stop::Invalid(reason)) => {
            return Parsed::Invalid {
                reason,
                level: None,
            }
        }
    };
    // At most 5 + 268_435_455, so this cannot overflow; checked all the same.
    let Some(packet_len) = header_len.checked_add(remaining_len) else {
        return Parsed::Invalid {
            reason: InvalidReason::TooLarge,
            level: None,
        };
    };
    if packet_len > limit {
        return Parsed::Invalid {
            reason: InvalidReason::TooLarge,
            level: None,
        };
    }

    // The part of the variable header and payload received so far; the bytes
    // after `packet_len` belong to the next packets.
    let body = buf
        .get(header_len..packet_len.min(buf.len()))
        .unwrap_or_default();
    let mut reader = Reader {
        data: body,
        pos: 0,
        end: remaining_len,
        overrun: InvalidReason::Truncated,
    };
    let incomplete = Parsed::Incomplete {
        needed: packet_len.checked_sub(buf.len()),
    };

    let level = match protocol(&mut reader) {
        Ok(level) => level,
        Err(Stop::Incomplete) => return incomplete,
        Err(Stop::Invalid(reason)) => {
            return Parsed::Invalid {
                reason,
                level: None,
            }
        }
    };
    match connect_body(&mut reader, level, packet_len) {
        Ok(connect) => Parsed::Connect(connect),
        Err(Stop::Incomplete) => incomplete,
        Err(Stop::Invalid(reason)) => Parsed::Invalid {
            reason,
            level: Some(level),
        },
    }
}

/// Why parsing stopped short of a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The bytes present are a valid prefix; more are needed.
    Incomplete,
    /// The bytes present violate a rule.
    Invalid(InvalidReason),
}

impl From<InvalidReason> for Stop {
    fn from(reason: InvalidReason) -> Self {
        Stop::Invalid(reason)
    }
}

/// Decodes the fixed header: returns its length and the Remaining Length.
fn fixed_header(buf: &[u8]) -> Result<(usize, usize), Stop> {
    match buf {
        [] => Err(Stop::Incomplete),
        [0x10, ..] => {
            let mut reader = Reader {
                data: buf,
                pos: 1,
                end: usize::MAX,
                overrun: InvalidReason::Truncated,
            };
            let remaining_len = reader.var_int(InvalidReason::RemainingLengthTooLong)?;
            Ok((reader.pos, remaining_len))
        }
        _ => Err(InvalidReason::NotConnect.into()),
    }
}

/// Protocol Name and Protocol Level (MQTT 3.1.1 §3.1.2.1-2, MQTT 5.0
/// §3.1.2.1-2).
fn protocol(reader: &mut Reader<'_>) -> Result<ProtocolLevel, Stop> {
    match reader.u16()? {
        4 => {
            if reader.array::<4>()? != b"MQTT" {
                return Err(InvalidReason::ProtocolName.into());
            }
            match reader.u8()? {
                4 => Ok(ProtocolLevel::V311),
                5 => Ok(ProtocolLevel::V5),
                _ => Err(InvalidReason::UnsupportedProtocolLevel.into()),
            }
        }
        6 => {
            if reader.array::<6>()? != b"MQIsdp" {
                return Err(InvalidReason::ProtocolName.into());
            }
            match reader.u8()? {
                3 => Ok(ProtocolLevel::V31),
                _ => Err(InvalidReason::UnsupportedProtocolLevel.into()),
            }
        }
        _ => Err(InvalidReason::ProtocolName.into()),
    }
}

/// Everything after the Protocol Level: flags, keep alive, properties and
/// payload (MQTT 3.1.1 §3.1.2.3-§3.1.3, MQTT 5.0 §3.1.2.3-§3.1.3).
fn connect_body<'a>(
    reader: &mut Reader<'a>,
    level: ProtocolLevel,
    packet_len: usize,
) -> Result<Connect<'a>, Stop> {
    let flags = ConnectFlags(reader.u8()?);
    if flags.bits() & ConnectFlags::RESERVED != 0 {
        return Err(InvalidReason::ReservedFlag.into());
    }
    if flags.will_qos() == 3 {
        return Err(InvalidReason::WillQos.into());
    }
    if !flags.will() && (flags.will_qos() != 0 || flags.will_retain()) {
        return Err(InvalidReason::WillFlagsWithoutWill.into());
    }
    // MQTT 3.1.1 §3.1.2.9 [MQTT-3.1.2-22]; MQTT 5 lifted this rule.
    if level != ProtocolLevel::V5 && flags.password() && !flags.username() {
        return Err(InvalidReason::PasswordWithoutUsername.into());
    }
    let keep_alive = reader.u16()?;

    let is_v5 = level == ProtocolLevel::V5;
    let properties = if is_v5 {
        reader.properties(
            property_id::CONNECT_ALLOWED,
            InvalidReason::UnknownConnectProperty,
        )?
    } else {
        Properties::EMPTY
    };

    let client_id = reader.utf8()?;
    if client_id.is_empty() {
        match level {
            // MQTT 3.1 requires 1 to 23 characters; only the lower bound is
            // enforced, as brokers accept longer identifiers.
            ProtocolLevel::V31 => return Err(InvalidReason::EmptyClientId.into()),
            // MQTT 3.1.1 §3.1.3.1 [MQTT-3.1.3-7], [MQTT-3.1.3-8].
            ProtocolLevel::V311 if !flags.clean_session() => {
                return Err(InvalidReason::EmptyClientIdWithoutCleanSession.into())
            }
            _ => {}
        }
    }

    let (will_properties, will_topic) = if flags.will() {
        let will_properties = if is_v5 {
            reader.properties(
                property_id::WILL_ALLOWED,
                InvalidReason::UnknownWillProperty,
            )?
        } else {
            Properties::EMPTY
        };
        let topic = reader.utf8()?;
        if topic.is_empty() || topic.bytes().any(|b| b == b'+' || b == b'#') {
            return Err(InvalidReason::InvalidWillTopic.into());
        }
        // The Will Payload is binary data; only its length matters here.
        reader.binary()?;
        (will_properties, Some(topic))
    } else {
        (Properties::EMPTY, None)
    };

    let username = if flags.username() {
        Some(reader.utf8()?)
    } else {
        None
    };
    if flags.password() {
        // Binary data, skipped and never kept.
        reader.binary()?;
    }
    if !reader.at_end() {
        return Err(InvalidReason::TrailingBytes.into());
    }

    Ok(Connect {
        level,
        flags,
        keep_alive,
        client_id,
        username,
        password_present: flags.password(),
        will_topic,
        properties,
        will_properties,
        packet_len,
    })
}

/// Reads the value of property `id` (its identifier already consumed).
/// `Ok(None)` for an identifier that has no place in a CONNECT packet.
fn read_property_value<'a>(reader: &mut Reader<'a>, id: u8) -> Result<Option<Property<'a>>, Stop> {
    use property_id::*;
    let property = match id {
        PAYLOAD_FORMAT_INDICATOR => Property::PayloadFormatIndicator(reader.u8()?),
        MESSAGE_EXPIRY_INTERVAL => Property::MessageExpiryInterval(reader.u32()?),
        CONTENT_TYPE => Property::ContentType(reader.utf8()?),
        RESPONSE_TOPIC => Property::ResponseTopic(reader.utf8()?),
        CORRELATION_DATA => Property::CorrelationData(reader.binary()?),
        SESSION_EXPIRY_INTERVAL => Property::SessionExpiryInterval(reader.u32()?),
        AUTHENTICATION_METHOD => Property::AuthenticationMethod(reader.utf8()?),
        AUTHENTICATION_DATA => Property::AuthenticationData {
            len: reader.binary()?.len(),
        },
        REQUEST_PROBLEM_INFORMATION => Property::RequestProblemInformation(reader.u8()?),
        WILL_DELAY_INTERVAL => Property::WillDelayInterval(reader.u32()?),
        REQUEST_RESPONSE_INFORMATION => Property::RequestResponseInformation(reader.u8()?),
        RECEIVE_MAXIMUM => Property::ReceiveMaximum(reader.u16()?),
        TOPIC_ALIAS_MAXIMUM => Property::TopicAliasMaximum(reader.u16()?),
        USER_PROPERTY => Property::UserProperty(reader.utf8()?, reader.utf8()?),
        MAXIMUM_PACKET_SIZE => Property::MaximumPacketSize(reader.u32()?),
        _ => return Ok(None),
    };
    Ok(Some(property))
}

/// A cursor over a region of the packet of which only a prefix may have been
/// received.
///
/// `end` is the declared size of the region; `data` is the part received so
/// far (`data.len() <= end`). A read that would go past `end` is a violation
/// (`overrun`) whatever has been received; a read that stays within `end` but
/// goes past `data` means the input is incomplete.
#[derive(Clone)]
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
    overrun: InvalidReason,
}

impl<'a> Reader<'a> {
    /// A reader over a region that has been received completely.
    fn complete(data: &'a [u8], overrun: InvalidReason) -> Self {
        Reader {
            data,
            pos: 0,
            end: data.len(),
            overrun,
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    /// Bytes left in the region, received or not.
    fn left(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        if n > self.left() {
            return Err(self.overrun.into());
        }
        // `pos + n <= end`, which is at most the Remaining Length.
        let next = self.pos.saturating_add(n);
        let bytes = self.data.get(self.pos..next).ok_or(Stop::Incomplete)?;
        self.pos = next;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], Stop> {
        if N > self.left() {
            return Err(self.overrun.into());
        }
        let bytes = self
            .data
            .get(self.pos..)
            .and_then(|rest| rest.first_chunk::<N>())
            .ok_or(Stop::Incomplete)?;
        self.pos = self.pos.saturating_add(N);
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, Stop> {
        let [b] = *self.array::<1>()?;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, Stop> {
        Ok(u16::from_be_bytes(*self.array::<2>()?))
    }

    fn u32(&mut self) -> Result<u32, Stop> {
        Ok(u32::from_be_bytes(*self.array::<4>()?))
    }

    /// Binary Data: a two-byte length followed by that many bytes.
    fn binary(&mut self) -> Result<&'a [u8], Stop> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// UTF-8 Encoded String: well-formed UTF-8 without U+0000 (MQTT 3.1.1
    /// §1.5.3, MQTT 5.0 §1.5.4).
    fn utf8(&mut self) -> Result<&'a str, Stop> {
        let bytes = self.binary()?;
        let s = core::str::from_utf8(bytes).map_err(|_| InvalidReason::InvalidUtf8)?;
        // In well-formed UTF-8 a zero byte can only be U+0000. A branch-free
        // fold rather than `contains`: the strings are short, and this
        // compiles to a few vector compares instead of a byte loop.
        if bytes.iter().fold(false, |nul, &b| nul | (b == 0)) {
            return Err(InvalidReason::NullCharacter.into());
        }
        Ok(s)
    }

    /// Variable Byte Integer (MQTT 5.0 §1.5.5, MQTT 3.1.1 §2.2.3): at most
    /// four bytes, minimally encoded.
    fn var_int(&mut self, too_long: InvalidReason) -> Result<usize, Stop> {
        let mut value = 0usize;
        for shift in [0u32, 7, 14, 21] {
            let byte = self.u8()?;
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // A last byte of zero after a continuation byte adds nothing:
                // the same value fits in fewer bytes.
                if byte == 0 && shift > 0 {
                    return Err(InvalidReason::NonMinimalVarInt.into());
                }
                return Ok(value);
            }
        }
        Err(too_long.into())
    }

    /// A Property Length followed by a property block (MQTT 5.0 §2.2.2).
    /// `allowed` is the bitset of the identifiers this block may contain,
    /// `unknown` the violation reported for any other identifier.
    fn properties(&mut self, allowed: u64, unknown: InvalidReason) -> Result<Properties<'a>, Stop> {
        let len = self.var_int(InvalidReason::PropertyLengthTooLong)?;
        if len > self.left() {
            return Err(InvalidReason::PropertyLengthOutOfBounds.into());
        }
        let start = self.pos;
        let block_end = start.saturating_add(len);
        let received = self
            .data
            .get(start..block_end.min(self.data.len()))
            .unwrap_or_default();
        let mut block = Reader {
            data: received,
            pos: 0,
            end: len,
            overrun: InvalidReason::PropertyTruncated,
        };

        let mut seen = 0u64;
        while !block.at_end() {
            // Identifiers are Variable Byte Integers, but every defined one is
            // below 0x80 and so a single byte; anything else is unknown.
            let id = block.u8()?;
            let bit = 1u64.checked_shl(u32::from(id)).unwrap_or(0);
            if bit & allowed == 0 {
                return Err(unknown.into());
            }
            if seen & bit != 0 && id != property_id::USER_PROPERTY {
                return Err(InvalidReason::DuplicateProperty.into());
            }
            seen |= bit;
            let Some(property) = read_property_value(&mut block, id)? else {
                // Unreachable: every allowed identifier is decoded above.
                return Err(unknown.into());
            };
            let violation = match property {
                Property::ReceiveMaximum(0) => Some(InvalidReason::ReceiveMaximumZero),
                Property::MaximumPacketSize(0) => Some(InvalidReason::MaximumPacketSizeZero),
                Property::RequestProblemInformation(v)
                | Property::RequestResponseInformation(v)
                    if v > 1 =>
                {
                    Some(InvalidReason::InvalidRequestFlag)
                }
                Property::PayloadFormatIndicator(v) if v > 1 => {
                    Some(InvalidReason::InvalidPayloadFormat)
                }
                _ => None,
            };
            if let Some(reason) = violation {
                return Err(reason.into());
            }
        }
        let has = |id: u8| seen & (1u64 << id) != 0;
        if has(property_id::AUTHENTICATION_DATA) && !has(property_id::AUTHENTICATION_METHOD) {
            return Err(InvalidReason::AuthDataWithoutMethod.into());
        }

        self.pos = block_end;
        Ok(Properties { raw: received })
    }
}
