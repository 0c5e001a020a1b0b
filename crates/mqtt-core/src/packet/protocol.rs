//! Protocol versions and the Connect Flags byte.

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
    /// Bit 0, reserved: must be 0 in MQTT 3.1.1 and 5.0, unused in 3.1.
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

    /// The Will QoS, 0 to 3. A parsed [`Connect`] has 3 only in MQTT 3.1
    /// without the Will Flag, where the field is disregarded.
    ///
    /// [`Connect`]: super::Connect
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
