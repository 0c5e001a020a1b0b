//! Zero-copy, allocation-free parser for the MQTT CONNECT packet.
//!
//! Supported protocol versions and the sections this parser follows:
//!
//! * MQTT 3.1 (IBM/Eurotech, 2010), "CONNECT" and appendix A (topics):
//!   protocol name `MQIsdp`, level 3.
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
//!   (a first byte whose packet type is not CONNECT, a protocol name that is
//!   not MQTT, a declared size above the limit, a field that is longer than
//!   the declared Remaining Length, ...). The fields are checked in wire
//!   order and each check looks only at bytes that precede it, so a longer
//!   prefix of the same stream reports the same [`Parsed::Invalid`].
//!
//! Each rule is applied to the versions whose specification states it; the
//! rule → version table is in `docs/PARSER.md`. Where the versions differ
//! the check needs the protocol level, which comes before every field it
//! governs except the fixed header's flags: those are held until the level
//! is read, then checked first.
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

use super::invalid::InvalidReason;
use super::properties::{property_id, Properties};
use super::protocol::{ConnectFlags, ProtocolLevel};
use super::reader::{is_topic_name, Reader, Stop};

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
    /// The User Name, when the User Name Flag is set and the field is there
    /// (MQTT 3.1 lets a packet end where its User Name would start).
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
    /// [`InvalidReason::reason_code`].
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
    let (header_len, remaining_len, header_flags) = match fixed_header(buf) {
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
    // MQTT 3.1.1 §2.2.2 [MQTT-2.2.2-1], MQTT 5.0 §2.1.3 [MQTT-2.1.3-1]: the
    // flags of a CONNECT's fixed header are reserved and must be 0. MQTT 3.1
    // has DUP, QoS and RETAIN there, unused by CONNECT and not required to
    // be 0. The rule waits for the level, the first byte that tells.
    if level != ProtocolLevel::V31 && header_flags != 0 {
        return Parsed::Invalid {
            reason: InvalidReason::FixedHeaderFlags,
            level: Some(level),
        };
    }
    match connect_body(&mut reader, level, packet_len) {
        Ok(connect) => Parsed::Connect(connect),
        Err(Stop::Incomplete) => incomplete,
        Err(Stop::Invalid(reason)) => Parsed::Invalid {
            reason,
            level: Some(level),
        },
    }
}

/// Decodes the fixed header: returns its length, the Remaining Length and
/// the flags (the low four bits of the first byte).
fn fixed_header(buf: &[u8]) -> Result<(usize, usize, u8), Stop> {
    let Some(&first) = buf.first() else {
        return Err(Stop::Incomplete);
    };
    // Packet type 1 is CONNECT; whether its flags may be set depends on the
    // version, checked once the protocol level is in.
    if first >> 4 != 1 {
        return Err(InvalidReason::NotConnect.into());
    }
    let mut reader = Reader {
        data: buf,
        pos: 1,
        end: usize::MAX,
        overrun: InvalidReason::Truncated,
    };
    let remaining_len = reader.var_int(InvalidReason::RemainingLengthTooLong)?;
    Ok((reader.pos, remaining_len, first & 0x0F))
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
/// payload (MQTT 3.1 "CONNECT", MQTT 3.1.1 §3.1.2.3-§3.1.3, MQTT 5.0
/// §3.1.2.3-§3.1.3).
fn connect_body<'a>(
    reader: &mut Reader<'a>,
    level: ProtocolLevel,
    packet_len: usize,
) -> Result<Connect<'a>, Stop> {
    let v31 = level == ProtocolLevel::V31;
    let is_v5 = level == ProtocolLevel::V5;
    let flags = ConnectFlags::from_bits(reader.u8()?);
    // MQTT 3.1.1 and 5.0 §3.1.2.3 [MQTT-3.1.2-3]; MQTT 3.1 leaves bit 0
    // unused, with no rule on its value.
    if !v31 && flags.bits() & ConnectFlags::RESERVED != 0 {
        return Err(InvalidReason::ReservedFlag.into());
    }
    // QoS 3 is reserved in every version. MQTT 3.1 disregards the Will QoS
    // without the Will Flag; 3.1.1 and 5.0 require it to be 0.
    if flags.will_qos() == 3 && (flags.will() || !v31) {
        return Err(InvalidReason::WillQos.into());
    }
    // MQTT 3.1.1 §3.1.2.5-7 [MQTT-3.1.2-11/13/15]; MQTT 5.0
    // §3.1.2.6-7 [MQTT-3.1.2-11], [MQTT-3.1.2-13]. MQTT 3.1 disregards
    // both fields without the Will Flag.
    if !v31 && !flags.will() && (flags.will_qos() != 0 || flags.will_retain()) {
        return Err(InvalidReason::WillFlagsWithoutWill.into());
    }
    // MQTT 3.1 ("It is not valid to supply a password without supplying a
    // user name") and 3.1.1 §3.1.2.9 [MQTT-3.1.2-22]; MQTT 5 lifted this.
    if !is_v5 && flags.password() && !flags.username() {
        return Err(InvalidReason::PasswordWithoutUsername.into());
    }
    let keep_alive = reader.u16()?;

    let properties = if is_v5 {
        reader.properties(
            property_id::CONNECT_ALLOWED,
            InvalidReason::UnknownConnectProperty,
        )?
    } else {
        Properties::EMPTY
    };

    // U+0000 is excluded from every UTF-8 string by MQTT 3.1.1 §1.5.3
    // [MQTT-1.5.3-2] and MQTT 5.0 §1.5.4 [MQTT-1.5.4-2]; MQTT 3.1 excludes it
    // from topics only.
    let text = |reader: &mut Reader<'a>| {
        if v31 {
            reader.utf8_with_nul()
        } else {
            reader.utf8()
        }
    };

    let client_id = text(reader)?;
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
        // A Topic Name in every version, so U+0000 is excluded in 3.1 too
        // (its appendix A).
        let topic = reader.utf8()?;
        if !is_topic_name(topic) {
            return Err(InvalidReason::InvalidWillTopic.into());
        }
        // The Will Payload is binary data (3.1 calls it a UTF-8 string, but
        // publishes its bytes as they are); only its length matters here.
        reader.binary()?;
        (will_properties, Some(topic))
    } else {
        (Properties::EMPTY, None)
    };

    // MQTT 3.1: "the Remaining Length field from the fixed header takes
    // precedence over the User Name flag" (and the Password flag): a packet
    // that ends where the field would start is valid without it.
    let absent_in_v31 = |reader: &Reader<'a>| v31 && reader.at_end();
    let username = if flags.username() && !absent_in_v31(reader) {
        Some(text(reader)?)
    } else {
        None
    };
    let password_present = flags.password() && !absent_in_v31(reader);
    if password_present {
        // Binary data (a UTF-8 string in 3.1, read as bytes all the same),
        // skipped and never kept.
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
        password_present,
        will_topic,
        properties,
        will_properties,
        packet_len,
    })
}

/// Parses a CONNECT that arrives in pieces, framing it first (as minimq's
/// packet reader does): once a parse has found the packet's length and the
/// packet still incomplete, the bytes are not parsed again until all of it
/// is there. A CONNECT trickled in small reads is so parsed about twice in
/// all, not once per read, which would cost O(n²) for n bytes.
///
/// The final verdict is [`parse_connect`]'s on the whole packet. What
/// changes is only when a violation is seen: one in the bytes present at the
/// first parse that learnt the length is reported at once, as before; one in
/// bytes that came later, when the packet is complete (or never, if the
/// device stops sending and the connection times out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectFramer {
    packet_len: Option<usize>,
}

impl ConnectFramer {
    /// [`parse_connect`] of `received`, the bytes of the connection so far
    /// (each call's a prefix of the next call's), skipped while the packet
    /// is known to be incomplete.
    pub fn parse<'a>(&mut self, received: &'a [u8], limit: usize) -> Parsed<'a> {
        if let Some(packet_len) = self.packet_len {
            let needed = packet_len.saturating_sub(received.len());
            if needed > 0 {
                return Parsed::Incomplete {
                    needed: Some(needed),
                };
            }
        }
        let parsed = parse_connect(received, limit);
        if let Parsed::Incomplete {
            needed: Some(needed),
        } = parsed
        {
            self.packet_len = received.len().checked_add(needed);
        }
        parsed
    }
}
