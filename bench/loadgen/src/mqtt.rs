//! Just enough MQTT 3.1.1 / 5.0 to drive a gateway: CONNECT, PUBLISH (QoS 0),
//! PINGREQ and DISCONNECT out; CONNACK, PINGRESP in. The responder side reads
//! any packet and answers CONNECT with CONNACK and PINGREQ with PINGRESP.

use std::io;

use mqtt_core::packet::encode::ConnectBuilder;
use mqtt_core::packet::ProtocolLevel;
use tokio::io::{AsyncRead, AsyncReadExt};

pub const CONNECT: u8 = 1;
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PINGREQ: u8 = 12;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;

fn put_len(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first);
    put_len(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// CONNECT with a clean session, the given keep-alive and ClientId.
pub fn connect(version: u8, client_id: &str, keep_alive: u16) -> Vec<u8> {
    let level = if version == 5 {
        ProtocolLevel::V5
    } else {
        ProtocolLevel::V311
    };
    ConnectBuilder::new(level, client_id.as_bytes())
        .keep_alive(keep_alive)
        .encode()
}

/// PUBLISH at QoS 0.
pub fn publish(version: u8, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + topic.len() + payload.len());
    put_str(&mut body, topic.as_bytes());
    if version == 5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    packet(PUBLISH << 4, &body)
}

pub fn pingreq() -> [u8; 2] {
    [PINGREQ << 4, 0]
}

pub fn disconnect() -> [u8; 2] {
    [DISCONNECT << 4, 0]
}

/// CONNACK accepting the session, in the CONNECT's protocol version.
pub fn connack(version: u8) -> &'static [u8] {
    if version == 5 {
        &[CONNACK << 4, 3, 0, 0, 0]
    } else {
        &[CONNACK << 4, 2, 0, 0]
    }
}

pub fn pingresp() -> [u8; 2] {
    [PINGRESP << 4, 0]
}

/// Reads one packet: (first byte, body). Bodies over `max` are an error.
/// `Ok(None)` on a clean end of stream before the first byte.
pub async fn read_packet<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<u8>> {
    let mut first = [0u8; 1];
    if r.read(&mut first).await? == 0 {
        return Ok(None);
    }
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let b = r.read_u8().await?;
        len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad remaining length",
            ));
        }
    }
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "packet too large",
        ));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(Some(first[0]))
}

/// The protocol level of a CONNECT body (4 for 3.1.1, 5 for 5.0).
pub fn connect_version(body: &[u8]) -> u8 {
    if body.len() >= 7 && body[0] == 0 && body[1] == 4 {
        body[6]
    } else {
        4
    }
}
