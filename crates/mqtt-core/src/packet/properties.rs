//! MQTT 5 properties of a CONNECT and of its Will (MQTT 5.0 §2.2.2,
//! §3.1.2.11, §3.1.3.2): identifiers, the decoded values, and the validation
//! of a property block.

use core::fmt;

use super::invalid::InvalidReason;
use super::reader::{is_topic_name, Reader, Stop};

/// MQTT 5.0 property identifiers (MQTT 5.0 §2.2.2.2, table 2-4) that may
/// appear in a CONNECT packet.
pub mod property_id {
    /// Will property: Payload Format Indicator, byte.
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    /// Will property: Message Expiry Interval, four byte integer.
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    /// Will property: Content Type, UTF-8 string.
    pub const CONTENT_TYPE: u8 = 0x03;
    /// Will property: Response Topic, UTF-8 string, a Topic Name.
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
    pub(super) raw: &'a [u8],
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

    /// Maximum Packet Size (0x27), bytes: the largest packet the client
    /// accepts, CONNACK included.
    pub fn maximum_packet_size(&self) -> Option<u32> {
        self.iter().find_map(|p| match p {
            Property::MaximumPacketSize(v) => Some(v),
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

/// Reads the value of property `id` (its identifier already consumed).
/// `Ok(None)` for an identifier that has no place in a CONNECT packet.
pub(super) fn read_property_value<'a>(
    reader: &mut Reader<'a>,
    id: u8,
) -> Result<Option<Property<'a>>, Stop> {
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

impl<'a> Reader<'a> {
    /// A Property Length followed by a property block (MQTT 5.0 §2.2.2).
    /// `allowed` is the bitset of the identifiers this block may contain,
    /// `unknown` the violation reported for any other identifier.
    pub(super) fn properties(
        &mut self,
        allowed: u64,
        unknown: InvalidReason,
    ) -> Result<Properties<'a>, Stop> {
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
                // The Topic Name of the response (§3.1.3.2.6, and for
                // PUBLISH §3.3.2.3.5 [MQTT-3.3.2-14], §4.7.3 [MQTT-4.7.3-1]).
                Property::ResponseTopic(topic) if !is_topic_name(topic) => {
                    Some(InvalidReason::InvalidResponseTopic)
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
