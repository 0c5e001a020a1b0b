//! Rewriting a CONNECT on its way to the broker: the ClientId, the User
//! Name and the Password replaced, added or removed, and MQTT 5 User
//! Properties appended, in a packet that stays valid for its version.
//!
//! Everything else is copied byte for byte from the device's packet: the
//! protocol name and level, the other Connect Flags, Keep Alive, the
//! CONNECT properties, and the whole Will. The Remaining Length, the
//! Property Length and the User Name and Password Flags are recomputed.
//!
//! [`plan_rewrite`] checks the new values and works out the size;
//! [`RewritePlan::write`] writes the packet. The values are the gateway's
//! (nginx variables evaluated after the CONNECT was accepted), but they are
//! checked as strictly as a device's: a value the version does not allow
//! fails the rewrite rather than reach the broker.

use core::fmt;

use super::connect::Connect;
use super::invalid::InvalidReason;
use super::properties::property_id;
use super::protocol::{ConnectFlags, ProtocolLevel};
use super::reader::Reader;
use super::writer::{var_int_len, Writer};

/// What becomes of the User Name or the Password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldEdit<'a> {
    /// As the device sent it (or absent, if it sent none).
    Keep,
    /// This value, added if the device sent none.
    Set(&'a [u8]),
    /// Left out, with its flag.
    Remove,
}

/// The changes to make to a CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectRewrite<'a> {
    /// A new ClientId; `None` keeps the device's.
    pub client_id: Option<&'a [u8]>,
    pub username: FieldEdit<'a>,
    pub password: FieldEdit<'a>,
    /// MQTT 5 User Properties appended to the CONNECT properties, as
    /// (name, value); a 3.1 or 3.1.1 CONNECT has nowhere to carry them.
    pub user_properties: &'a [(&'a [u8], &'a [u8])],
}

impl ConnectRewrite<'_> {
    /// No change at all.
    pub const NONE: ConnectRewrite<'static> = ConnectRewrite {
        client_id: None,
        username: FieldEdit::Keep,
        password: FieldEdit::Keep,
        user_properties: &[],
    };
}

/// Which value of a rewrite is at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteField {
    ClientId,
    Username,
    Password,
    UserProperty,
}

/// Why a CONNECT cannot be rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteError {
    /// A string value is not well-formed UTF-8 without U+0000.
    NotUtf8(RewriteField),
    /// A value is longer than the 65,535 bytes of a two-byte length.
    TooLong(RewriteField),
    /// An empty ClientId where the version requires one (3.1, or 3.1.1
    /// without Clean Session).
    EmptyClientId,
    /// The rewritten packet is larger than the limit.
    TooLarge,
    /// `packet` is not the CONNECT that `connect` was parsed from.
    NotTheParsedPacket,
}

impl RewriteError {
    /// A short lower-case message for the error log.
    pub const fn message(self) -> &'static str {
        match self {
            RewriteError::NotUtf8(RewriteField::ClientId) => "new ClientId is not valid UTF-8",
            RewriteError::NotUtf8(RewriteField::Username) => "new username is not valid UTF-8",
            RewriteError::NotUtf8(_) => "new user property is not valid UTF-8",
            RewriteError::TooLong(RewriteField::ClientId) => {
                "new ClientId is longer than 65535 bytes"
            }
            RewriteError::TooLong(RewriteField::Username) => {
                "new username is longer than 65535 bytes"
            }
            RewriteError::TooLong(RewriteField::Password) => {
                "new password is longer than 65535 bytes"
            }
            RewriteError::TooLong(RewriteField::UserProperty) => {
                "new user property is longer than 65535 bytes"
            }
            RewriteError::EmptyClientId => "new ClientId is empty, which the version forbids",
            RewriteError::TooLarge => "rewritten CONNECT is larger than mqtt_buffers",
            RewriteError::NotTheParsedPacket => "CONNECT bytes differ from the parsed packet",
        }
    }
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A checked rewrite of one packet, ready to be written.
#[derive(Clone, Copy, Debug)]
pub struct RewritePlan<'p> {
    packet: &'p [u8],
    layout: Layout,
    flags: u8,
    client_id: &'p [u8],
    username: Option<&'p [u8]>,
    password: Option<&'p [u8]>,
    user_properties: &'p [(&'p [u8], &'p [u8])],
    is_v5: bool,
    properties_len: usize,
    remaining_len: usize,
    len: usize,
    /// The device's password went because its username did (3.1/3.1.1).
    pub password_dropped: bool,
    /// User Properties were asked for, and the version cannot carry them.
    pub user_properties_dropped: bool,
}

/// Where the fields of a valid CONNECT are, as offsets into the packet.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Protocol Name and Level, between the fixed header and the flags.
    protocol: (usize, usize),
    keep_alive: usize,
    /// MQTT 5: the CONNECT property block, after its Property Length.
    properties: (usize, usize),
    /// The Will, from its Property Length (5.0) or topic to the end of its
    /// payload; empty without one.
    will: (usize, usize),
    username: Option<(usize, usize)>,
    password: Option<(usize, usize)>,
}

/// Checks `rewrite` against the CONNECT in `packet` (as `connect` was
/// parsed from it) and works out the rewritten packet, which must fit
/// `limit` bytes.
pub fn plan_rewrite<'p>(
    packet: &'p [u8],
    connect: &Connect<'p>,
    rewrite: &ConnectRewrite<'p>,
    limit: usize,
) -> Result<RewritePlan<'p>, RewriteError> {
    let packet = packet
        .get(..connect.packet_len)
        .ok_or(RewriteError::NotTheParsedPacket)?;
    let layout = layout(packet, connect).ok_or(RewriteError::NotTheParsedPacket)?;
    let v3 = connect.level != ProtocolLevel::V5;

    let client_id = match rewrite.client_id {
        Some(id) => {
            check_string(id, RewriteField::ClientId)?;
            let required = match connect.level {
                ProtocolLevel::V31 => true,
                ProtocolLevel::V311 => !connect.flags.clean_session(),
                ProtocolLevel::V5 => false,
            };
            if id.is_empty() && required {
                return Err(RewriteError::EmptyClientId);
            }
            id
        }
        None => connect.client_id.as_bytes(),
    };
    let username = match rewrite.username {
        FieldEdit::Keep => span(packet, layout.username),
        FieldEdit::Set(name) => {
            check_string(name, RewriteField::Username)?;
            Some(name)
        }
        FieldEdit::Remove => None,
    };
    let mut password = match rewrite.password {
        FieldEdit::Keep => span(packet, layout.password),
        FieldEdit::Set(password) => {
            check_len(password, RewriteField::Password)?;
            Some(password)
        }
        FieldEdit::Remove => None,
    };
    // MQTT 3.1.1 §3.1.2.9 [MQTT-3.1.2-22]: no password without a username.
    let password_dropped = v3 && username.is_none() && password.is_some();
    if password_dropped {
        password = None;
    }
    let user_properties = if v3 { &[][..] } else { rewrite.user_properties };
    for &(name, value) in user_properties {
        check_string(name, RewriteField::UserProperty)?;
        check_string(value, RewriteField::UserProperty)?;
    }

    let mut flags = connect.flags.bits() & !(ConnectFlags::USERNAME | ConnectFlags::PASSWORD);
    if username.is_some() {
        flags |= ConnectFlags::USERNAME;
    }
    if password.is_some() {
        flags |= ConnectFlags::PASSWORD;
    }

    let appended: usize = user_properties
        .iter()
        .map(|(name, value)| 5 + name.len() + value.len())
        .sum();
    let properties_len = (layout.properties.1 - layout.properties.0) + appended;
    let string = |s: Option<&[u8]>| s.map_or(0, |s| 2 + s.len());
    let mut remaining_len = (layout.protocol.1 - layout.protocol.0)
        + 1 // flags
        + 2 // keep alive
        + 2
        + client_id.len()
        + (layout.will.1 - layout.will.0)
        + string(username)
        + string(password);
    if !v3 {
        remaining_len +=
            var_int_len(properties_len).ok_or(RewriteError::TooLarge)? + properties_len;
    }
    let len = 1 + var_int_len(remaining_len).ok_or(RewriteError::TooLarge)? + remaining_len;
    if len > limit {
        return Err(RewriteError::TooLarge);
    }
    Ok(RewritePlan {
        packet,
        layout,
        flags,
        client_id,
        username,
        password,
        user_properties,
        is_v5: !v3,
        properties_len,
        remaining_len,
        len,
        password_dropped,
        user_properties_dropped: v3 && !rewrite.user_properties.is_empty(),
    })
}

impl RewritePlan<'_> {
    /// The size of the rewritten packet.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the rewritten packet into `out`, which must hold
    /// [`len`](Self::len) bytes; returns the bytes written, 0 if it does
    /// not.
    pub fn write(&self, out: &mut [u8]) -> usize {
        let Some(out) = out.get_mut(..self.len) else {
            return 0;
        };
        let mut w = Writer { out, pos: 0 };
        let copy = |(start, end): (usize, usize)| self.packet.get(start..end).unwrap_or_default();
        w.put(&[self.packet.first().copied().unwrap_or(0x10)]);
        w.var_int(self.remaining_len);
        w.put(copy(self.layout.protocol));
        w.put(&[self.flags]);
        w.put(copy((self.layout.keep_alive, self.layout.keep_alive + 2)));
        if self.is_v5 {
            w.var_int(self.properties_len);
            w.put(copy(self.layout.properties));
            for &(name, value) in self.user_properties {
                w.put(&[property_id::USER_PROPERTY]);
                w.string(name);
                w.string(value);
            }
        }
        w.string(self.client_id);
        w.put(copy(self.layout.will));
        if let Some(username) = self.username {
            w.string(username);
        }
        if let Some(password) = self.password {
            w.string(password);
        }
        if w.pos == self.len {
            w.pos
        } else {
            0
        }
    }
}

/// The fields of a CONNECT that parsed, walked again by their lengths.
fn layout(packet: &[u8], connect: &Connect<'_>) -> Option<Layout> {
    let mut r = Reader::complete(packet, InvalidReason::Truncated);
    r.u8().ok()?;
    r.var_int(InvalidReason::RemainingLengthTooLong).ok()?;
    let protocol_start = r.pos;
    r.binary().ok()?;
    r.u8().ok()?;
    let protocol = (protocol_start, r.pos);
    if r.u8().ok()? != connect.flags.bits() {
        return None;
    }
    let keep_alive = r.pos;
    r.u16().ok()?;
    let is_v5 = connect.level == ProtocolLevel::V5;
    let properties = if is_v5 {
        let len = r.var_int(InvalidReason::PropertyLengthTooLong).ok()?;
        let start = r.pos;
        r.take(len).ok()?;
        (start, r.pos)
    } else {
        (0, 0)
    };
    if r.binary().ok()? != connect.client_id.as_bytes() {
        return None;
    }
    let will_start = r.pos;
    if connect.flags.will() {
        if is_v5 {
            let len = r.var_int(InvalidReason::PropertyLengthTooLong).ok()?;
            r.take(len).ok()?;
        }
        r.binary().ok()?;
        r.binary().ok()?;
    }
    let will = (will_start, r.pos);
    let mut string = |present: bool| -> Option<Option<(usize, usize)>> {
        if !present {
            return Some(None);
        }
        let len = r.binary().ok()?.len();
        Some(Some((r.pos - len, r.pos)))
    };
    // By what was parsed, not by the flags: MQTT 3.1 lets a packet end
    // before a flagged User Name or Password.
    let username = string(connect.username.is_some())?;
    let password = string(connect.password_present)?;
    r.at_end().then_some(Layout {
        protocol,
        keep_alive,
        properties,
        will,
        username,
        password,
    })
}

fn span(packet: &[u8], span: Option<(usize, usize)>) -> Option<&[u8]> {
    span.and_then(|(start, end)| packet.get(start..end))
}

fn check_len(value: &[u8], field: RewriteField) -> Result<(), RewriteError> {
    if value.len() > usize::from(u16::MAX) {
        return Err(RewriteError::TooLong(field));
    }
    Ok(())
}

/// A UTF-8 Encoded String as a device's is checked (MQTT 3.1.1 §1.5.3,
/// MQTT 5.0 §1.5.4).
fn check_string(value: &[u8], field: RewriteField) -> Result<(), RewriteError> {
    check_len(value, field)?;
    if core::str::from_utf8(value).is_err() || value.contains(&0) {
        return Err(RewriteError::NotUtf8(field));
    }
    Ok(())
}
