//! Where a stream of MQTT packets stands, byte by byte: between two packets,
//! or inside one. A packet may be put into the stream (a DISCONNECT on its
//! way to a device) only between two.

/// The position in a packet stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PacketBoundary {
    /// Between two packets: the next byte is a fixed header's first.
    #[default]
    Between,
    /// Inside the Remaining Length: its value so far and the bytes read.
    Length { value: u32, read: u8 },
    /// Inside the variable header or payload, with this many bytes left.
    Body { left: u32 },
    /// Not a valid packet stream (a Remaining Length over four bytes):
    /// never between two packets again.
    Lost,
}

impl PacketBoundary {
    /// Follows `bytes`, the next bytes of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some((&byte, rest)) = bytes.split_first() {
            match *self {
                PacketBoundary::Lost => return,
                PacketBoundary::Between => {
                    *self = PacketBoundary::Length { value: 0, read: 0 };
                    bytes = rest;
                }
                PacketBoundary::Length { value, read } => {
                    let value = value | (u32::from(byte & 0x7F) << (7 * u32::from(read)));
                    *self = if byte & 0x80 != 0 {
                        if read >= 3 {
                            PacketBoundary::Lost
                        } else {
                            PacketBoundary::Length {
                                value,
                                read: read + 1,
                            }
                        }
                    } else if value == 0 {
                        PacketBoundary::Between
                    } else {
                        PacketBoundary::Body { left: value }
                    };
                    bytes = rest;
                }
                PacketBoundary::Body { left } => {
                    let n = bytes.len().min(left as usize);
                    let left = left - n as u32;
                    *self = if left == 0 {
                        PacketBoundary::Between
                    } else {
                        PacketBoundary::Body { left }
                    };
                    bytes = bytes.get(n..).unwrap_or_default();
                }
            }
        }
    }

    pub fn is_between(&self) -> bool {
        *self == PacketBoundary::Between
    }
}
