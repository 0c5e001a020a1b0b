//! A small CONNECT encoder for tests, fuzz seeds, end-to-end clients and
//! load generators. It is not on the parsing path, so it allocates.
//!
//! Every field is raw bytes, so invalid packets are as easy to build as
//! valid ones: strings need not be UTF-8, the flags byte, protocol name,
//! protocol level and property blocks can be overridden, and
//! [`PropValue::Raw`] writes arbitrary bytes into a property block.
//!
//! ```
//! use mqtt_core::packet::encode::ConnectBuilder;
//! use mqtt_core::packet::{parse_connect, Parsed, ProtocolLevel};
//!
//! let bytes = ConnectBuilder::new(ProtocolLevel::V311, b"sensor-1")
//!     .username(b"alice")
//!     .password(b"secret")
//!     .encode();
//! let Parsed::Connect(connect) = parse_connect(&bytes, 4096) else { panic!() };
//! assert_eq!(connect.client_id, "sensor-1");
//! ```

use super::properties::property_id;
use super::protocol::{ConnectFlags, ProtocolLevel};

/// The value of one MQTT 5 property; the identifier is given alongside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropValue<'a> {
    /// Byte.
    Byte(u8),
    /// Two Byte Integer.
    U16(u16),
    /// Four Byte Integer.
    U32(u32),
    /// UTF-8 Encoded String (not checked: any bytes).
    Str(&'a [u8]),
    /// Binary Data.
    Bin(&'a [u8]),
    /// UTF-8 String Pair (not checked).
    Pair(&'a [u8], &'a [u8]),
    /// These bytes verbatim after the identifier.
    Raw(&'a [u8]),
}

/// A Will Message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will<'a> {
    /// Will Topic.
    pub topic: &'a [u8],
    /// Will Payload.
    pub payload: &'a [u8],
    /// Will QoS (only the low two bits are encoded).
    pub qos: u8,
    /// Will Retain.
    pub retain: bool,
    /// MQTT 5 Will Properties as (identifier, value).
    pub properties: Vec<(u8, PropValue<'a>)>,
    /// MQTT 5: when set, replaces the encoded Will Properties (the bytes
    /// after the Property Length).
    pub raw_properties: Option<&'a [u8]>,
    /// MQTT 5: when set, replaces the encoded Property Length.
    pub properties_len: Option<&'a [u8]>,
}

impl<'a> Will<'a> {
    /// A Will with QoS 0, no retain and no properties.
    pub fn new(topic: &'a [u8], payload: &'a [u8]) -> Self {
        Will {
            topic,
            payload,
            qos: 0,
            retain: false,
            properties: Vec::new(),
            raw_properties: None,
            properties_len: None,
        }
    }
}

/// Builds a CONNECT packet. Fields are public; the methods are shortcuts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectBuilder<'a> {
    /// Selects the layout (MQTT 5 has property blocks) and, unless
    /// overridden, the protocol name and level.
    pub level: ProtocolLevel,
    /// Replaces the protocol name.
    pub protocol_name: Option<&'a [u8]>,
    /// Replaces the protocol level byte.
    pub protocol_level: Option<u8>,
    /// The first byte of the fixed header (0x10 for a CONNECT).
    pub first_byte: u8,
    /// Clean Session / Clean Start.
    pub clean_session: bool,
    /// Keep Alive, seconds.
    pub keep_alive: u16,
    /// ClientId.
    pub client_id: &'a [u8],
    /// User Name; sets the User Name Flag.
    pub username: Option<&'a [u8]>,
    /// Password; sets the Password Flag.
    pub password: Option<&'a [u8]>,
    /// Will Message; sets the Will Flag, QoS and Retain.
    pub will: Option<Will<'a>>,
    /// MQTT 5 CONNECT properties as (identifier, value).
    pub properties: Vec<(u8, PropValue<'a>)>,
    /// MQTT 5: when set, replaces the encoded CONNECT properties (the bytes
    /// after the Property Length).
    pub raw_properties: Option<&'a [u8]>,
    /// MQTT 5: when set, replaces the encoded Property Length of the CONNECT
    /// properties.
    pub properties_len: Option<&'a [u8]>,
    /// Replaces the Connect Flags computed from the fields.
    pub flags_override: Option<u8>,
    /// Bytes appended after the last field, inside the Remaining Length.
    pub trailing: &'a [u8],
}

impl<'a> ConnectBuilder<'a> {
    /// A clean-session CONNECT with keep alive 60 and nothing else.
    pub fn new(level: ProtocolLevel, client_id: &'a [u8]) -> Self {
        ConnectBuilder {
            level,
            protocol_name: None,
            protocol_level: None,
            first_byte: 0x10,
            clean_session: true,
            keep_alive: 60,
            client_id,
            username: None,
            password: None,
            will: None,
            properties: Vec::new(),
            raw_properties: None,
            properties_len: None,
            flags_override: None,
            trailing: &[],
        }
    }

    /// Sets the user name.
    #[must_use]
    pub fn username(mut self, username: &'a [u8]) -> Self {
        self.username = Some(username);
        self
    }

    /// Sets the password.
    #[must_use]
    pub fn password(mut self, password: &'a [u8]) -> Self {
        self.password = Some(password);
        self
    }

    /// Sets the Will.
    #[must_use]
    pub fn will(mut self, will: Will<'a>) -> Self {
        self.will = Some(will);
        self
    }

    /// Adds a CONNECT property.
    #[must_use]
    pub fn property(mut self, id: u8, value: PropValue<'a>) -> Self {
        self.properties.push((id, value));
        self
    }

    /// Sets Clean Session / Clean Start.
    #[must_use]
    pub fn clean_session(mut self, clean: bool) -> Self {
        self.clean_session = clean;
        self
    }

    /// Sets Keep Alive.
    #[must_use]
    pub fn keep_alive(mut self, seconds: u16) -> Self {
        self.keep_alive = seconds;
        self
    }

    /// The Connect Flags byte these fields produce (or the override).
    pub fn flags(&self) -> u8 {
        if let Some(flags) = self.flags_override {
            return flags;
        }
        let mut flags = 0;
        if self.clean_session {
            flags |= ConnectFlags::CLEAN_SESSION;
        }
        if let Some(will) = &self.will {
            flags |= ConnectFlags::WILL | (will.qos & 0x03) << 3;
            if will.retain {
                flags |= ConnectFlags::WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= ConnectFlags::USERNAME;
        }
        if self.password.is_some() {
            flags |= ConnectFlags::PASSWORD;
        }
        flags
    }

    /// The variable header and payload: everything after the Remaining
    /// Length.
    pub fn encode_body(&self) -> Vec<u8> {
        let is_v5 = self.level == ProtocolLevel::V5;
        let mut out = Vec::with_capacity(64);
        put_binary(
            &mut out,
            self.protocol_name
                .unwrap_or(self.level.protocol_name().as_bytes()),
        );
        out.push(self.protocol_level.unwrap_or(self.level.as_u8()));
        out.push(self.flags());
        out.extend_from_slice(&self.keep_alive.to_be_bytes());
        if is_v5 {
            put_properties(
                &mut out,
                &self.properties,
                self.raw_properties,
                self.properties_len,
            );
        }
        put_binary(&mut out, self.client_id);
        if let Some(will) = &self.will {
            if is_v5 {
                put_properties(
                    &mut out,
                    &will.properties,
                    will.raw_properties,
                    will.properties_len,
                );
            }
            put_binary(&mut out, will.topic);
            put_binary(&mut out, will.payload);
        }
        if let Some(username) = self.username {
            put_binary(&mut out, username);
        }
        if let Some(password) = self.password {
            put_binary(&mut out, password);
        }
        out.extend_from_slice(self.trailing);
        out
    }

    /// The whole packet: fixed header, variable header and payload.
    pub fn encode(&self) -> Vec<u8> {
        let body = self.encode_body();
        let mut out = Vec::with_capacity(body.len().saturating_add(5));
        out.push(self.first_byte);
        put_var_int(&mut out, u32::try_from(body.len()).unwrap_or(u32::MAX));
        out.extend_from_slice(&body);
        out
    }
}

/// Appends `value` as a Variable Byte Integer (values above 268 435 455 are
/// written with more than four bytes, which is invalid on purpose).
pub fn put_var_int(out: &mut Vec<u8>, mut value: u32) {
    loop {
        // Truncation intended: the low seven bits.
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a two-byte length and `bytes`; anything beyond 65 535 bytes is
/// cut off.
pub fn put_binary(out: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = bytes.get(..usize::from(u16::MAX)).unwrap_or(bytes);
    out.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Appends one property: identifier and value.
pub fn put_property(out: &mut Vec<u8>, id: u8, value: &PropValue<'_>) {
    out.push(id);
    match *value {
        PropValue::Byte(v) => out.push(v),
        PropValue::U16(v) => out.extend_from_slice(&v.to_be_bytes()),
        PropValue::U32(v) => out.extend_from_slice(&v.to_be_bytes()),
        PropValue::Str(s) | PropValue::Bin(s) => put_binary(out, s),
        PropValue::Pair(k, v) => {
            put_binary(out, k);
            put_binary(out, v);
        }
        PropValue::Raw(raw) => out.extend_from_slice(raw),
    }
}

/// Appends a Property Length (or `len`, when given) and the property block
/// (or `raw`, when given).
pub fn put_properties(
    out: &mut Vec<u8>,
    properties: &[(u8, PropValue<'_>)],
    raw: Option<&[u8]>,
    len: Option<&[u8]>,
) {
    let block = match raw {
        Some(raw) => raw.to_vec(),
        None => {
            let mut block = Vec::new();
            for (id, value) in properties {
                put_property(&mut block, *id, value);
            }
            block
        }
    };
    match len {
        Some(len) => out.extend_from_slice(len),
        None => put_var_int(out, u32::try_from(block.len()).unwrap_or(u32::MAX)),
    }
    out.extend_from_slice(&block);
}

/// A typical MQTT 5 CONNECT property set: Session Expiry Interval, Receive
/// Maximum, Maximum Packet Size, Topic Alias Maximum, Request Problem
/// Information and `user` User Properties.
pub fn typical_v5_properties<'a>(user: &[(&'a [u8], &'a [u8])]) -> Vec<(u8, PropValue<'a>)> {
    let mut properties = vec![
        (property_id::SESSION_EXPIRY_INTERVAL, PropValue::U32(3600)),
        (property_id::RECEIVE_MAXIMUM, PropValue::U16(100)),
        (property_id::MAXIMUM_PACKET_SIZE, PropValue::U32(1 << 20)),
        (property_id::TOPIC_ALIAS_MAXIMUM, PropValue::U16(10)),
        (property_id::REQUEST_PROBLEM_INFORMATION, PropValue::Byte(1)),
    ];
    properties.extend(
        user.iter()
            .map(|&(k, v)| (property_id::USER_PROPERTY, PropValue::Pair(k, v))),
    );
    properties
}
