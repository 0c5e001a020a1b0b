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
use super::properties::property_id;
use super::protocol::{ConnectFlags, ProtocolLevel};
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
    client_id: Text<'p>,
    username: Option<Text<'p>>,
    password: Option<Text<'p>>,
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

/// A string field of the rewritten packet.
#[derive(Clone, Copy, Debug)]
enum Text<'p> {
    /// The device's, with its two-byte length: these offsets of the packet.
    Kept((usize, usize)),
    /// A new value.
    New(&'p [u8]),
}

impl Text<'_> {
    /// Its size in the packet, with the two-byte length.
    fn size(&self) -> usize {
        match *self {
            Text::Kept((start, end)) => end - start,
            Text::New(value) => 2 + value.len(),
        }
    }
}

/// Where the fields of a valid CONNECT are, as offsets into the packet.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Protocol Name and Level, between the fixed header and the flags.
    protocol: (usize, usize),
    keep_alive: usize,
    /// MQTT 5: the CONNECT property block, after its Property Length.
    properties: (usize, usize),
    /// The ClientId with its two-byte length.
    client_id: (usize, usize),
    /// The Will, from its Property Length (5.0) or topic to the end of its
    /// payload; empty without one.
    will: (usize, usize),
    /// The User Name and the Password, with their two-byte lengths.
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
            Text::New(id)
        }
        None => Text::Kept(layout.client_id),
    };
    let username = match rewrite.username {
        FieldEdit::Keep => layout.username.map(Text::Kept),
        FieldEdit::Set(name) => {
            check_string(name, RewriteField::Username)?;
            Some(Text::New(name))
        }
        FieldEdit::Remove => None,
    };
    let mut password = match rewrite.password {
        FieldEdit::Keep => layout.password.map(Text::Kept),
        FieldEdit::Set(password) => {
            check_len(password, RewriteField::Password)?;
            Some(Text::New(password))
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
    let string = |s: Option<Text<'_>>| s.map_or(0, |s| s.size());
    let mut remaining_len = (layout.protocol.1 - layout.protocol.0)
        + 1 // flags
        + 2 // keep alive
        + client_id.size()
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
        let mut w = Splice {
            w: Writer { out, pos: 0 },
            packet: self.packet,
            run: (0, 0),
        };
        let mut header = Writer {
            out: &mut [0; 5],
            pos: 0,
        };
        header.put(&[self.packet.first().copied().unwrap_or(0x10)]);
        header.var_int(self.remaining_len);
        w.put(header.written());
        w.copy(self.layout.protocol);
        let flags = self.layout.protocol.1;
        if self.packet.get(flags) == Some(&self.flags) {
            w.copy((flags, flags + 1));
        } else {
            w.put(&[self.flags]);
        }
        w.copy((self.layout.keep_alive, self.layout.keep_alive + 2));
        if self.is_v5 {
            let mut length = Writer {
                out: &mut [0; 4],
                pos: 0,
            };
            length.var_int(self.properties_len);
            w.put(length.written());
            w.copy(self.layout.properties);
            for &(name, value) in self.user_properties {
                w.put(&[property_id::USER_PROPERTY]);
                w.string(name);
                w.string(value);
            }
        }
        w.text(self.client_id);
        w.copy(self.layout.will);
        if let Some(username) = self.username {
            w.text(username);
        }
        if let Some(password) = self.password {
            w.text(password);
        }
        w.flush();
        if w.w.pos == self.len {
            w.w.pos
        } else {
            0
        }
    }
}

/// A [`Writer`] that copies what is kept from the device's packet in runs:
/// ranges of the packet that follow each other are copied at once.
struct Splice<'p, 'b> {
    w: Writer<'b>,
    packet: &'p [u8],
    /// The range of the packet waiting to be copied.
    run: (usize, usize),
}

impl Splice<'_, '_> {
    /// Copies `start..end` of the packet.
    fn copy(&mut self, (start, end): (usize, usize)) {
        if start != self.run.1 {
            self.flush();
            self.run.0 = start;
        }
        self.run.1 = end;
    }

    fn put(&mut self, bytes: &[u8]) {
        self.flush();
        self.w.put(bytes);
    }

    fn string(&mut self, bytes: &[u8]) {
        self.flush();
        self.w.string(bytes);
    }

    fn text(&mut self, text: Text<'_>) {
        match text {
            Text::Kept(range) => self.copy(range),
            Text::New(value) => self.string(value),
        }
    }

    fn flush(&mut self) {
        let (start, end) = core::mem::take(&mut self.run);
        if start < end {
            self.w.put(self.packet.get(start..end).unwrap_or_default());
        }
    }
}

/// Where the fields of a CONNECT that parsed are, from the parsed fields
/// themselves (they borrow from `packet`) and the lengths between them;
/// `None` if `connect` was not parsed from `packet`.
fn layout(packet: &[u8], connect: &Connect<'_>) -> Option<Layout> {
    let base = packet.as_ptr() as usize;
    // Where `field`, a slice of the packet, starts in it.
    let offset = |field: &[u8]| -> Option<usize> {
        let at = (field.as_ptr() as usize).checked_sub(base)?;
        (at.checked_add(field.len())? <= packet.len()).then_some(at)
    };
    let length_at = |at: usize| -> Option<usize> {
        let bytes = packet.get(at..at.checked_add(2)?)?;
        Some(usize::from(u16::from_be_bytes([
            *bytes.first()?,
            *bytes.get(1)?,
        ])))
    };
    // The Remaining Length's last byte is the first without the
    // continuation bit (the parser allowed at most four).
    let header = packet
        .get(1..)?
        .iter()
        .take(4)
        .position(|b| b & 0x80 == 0)?
        + 2;
    let protocol = (header, header + 2 + connect.level.protocol_name().len() + 1);
    if packet.get(protocol.1) != Some(&connect.flags.bits()) {
        return None;
    }
    let keep_alive = protocol.1 + 1;
    let client_id = offset(connect.client_id.as_bytes())?;
    let client_id_field = (
        client_id.checked_sub(2)?,
        client_id + connect.client_id.len(),
    );
    let properties = if connect.level == ProtocolLevel::V5 {
        let raw = connect.properties.raw;
        let end = client_id.checked_sub(2)?;
        let start = end.checked_sub(raw.len())?;
        if keep_alive + 2 + var_int_len(raw.len())? != start {
            return None;
        }
        (start, end)
    } else {
        if keep_alive + 4 != client_id {
            return None;
        }
        (0, 0)
    };
    let mut end = client_id + connect.client_id.len();
    let will_start = end;
    if let Some(topic) = connect.will_topic {
        let payload = offset(topic.as_bytes())? + topic.len();
        end = payload + 2 + length_at(payload)?;
    }
    let will = (will_start, end);
    // By what was parsed, not by the flags: MQTT 3.1 lets a packet end
    // before a flagged User Name or Password.
    let username = match connect.username {
        Some(name) => {
            let at = offset(name.as_bytes())?;
            if at != end + 2 {
                return None;
            }
            let start = end;
            end = at + name.len();
            Some((start, end))
        }
        None => None,
    };
    let password = if connect.password_present {
        let start = end;
        end = start + 2 + length_at(start)?;
        Some((start, end))
    } else {
        None
    };
    (end == packet.len()).then_some(Layout {
        protocol,
        keep_alive,
        properties,
        client_id: client_id_field,
        will,
        username,
        password,
    })
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
    // Most values are ASCII without U+0000, which one branch-free pass
    // (vector compares) shows; the others get the full check.
    if value
        .iter()
        .fold(true, |plain, &b| plain & (b.wrapping_sub(1) < 0x7f))
    {
        return Ok(());
    }
    if core::str::from_utf8(value).is_err() || value.contains(&0) {
        return Err(RewriteError::NotUtf8(field));
    }
    Ok(())
}
