//! Engine.IO v4 packets and their single-packet encoding.
//!
//! A text packet is one ASCII digit (the type) followed by its data:
//!
//! | type | digit | data |
//! |---|---|---|
//! | open | `0` | the handshake JSON |
//! | close | `1` | — |
//! | ping | `2` | optional (`probe` during an upgrade) |
//! | pong | `3` | optional (`probe` answers a probe ping) |
//! | message | `4` | UTF-8 text |
//! | upgrade | `5` | — |
//! | noop | `6` | — |
//!
//! Binary messages have no type digit: over WebSocket they travel as a binary frame of raw bytes, over
//! long-polling as `b` followed by the base64 of the bytes (see [`crate::payload`]).

use bytes::Bytes;

/// One Engine.IO packet.
///
/// ```
/// use engineio::Packet;
/// let packet = Packet::decode_text("4hello").unwrap();
/// assert_eq!(packet, Packet::Message("hello".into()));
/// assert_eq!(packet.encode_text().as_deref(), Some("4hello"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: the handshake, sent by the server once per session.
    Open(String),
    /// `1`: the sender is closing the session.
    Close,
    /// `2`: heartbeat request (server → client), or `2probe` during an upgrade (client → server).
    Ping(String),
    /// `3`: heartbeat answer, or `3probe` answering a probe.
    Pong(String),
    /// `4`: a text message.
    Message(String),
    /// A binary message (no type digit on the wire).
    Binary(Bytes),
    /// `5`: the client completes an upgrade on the new transport.
    Upgrade,
    /// `6`: no operation; used to end a pending poll during an upgrade.
    Noop,
}

/// Why a packet could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// The packet was empty: there is no type digit.
    #[error("empty packet")]
    Empty,
    /// The first character is not a known packet type.
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
}

impl Packet {
    /// Decodes a text packet (a WebSocket text frame, or one record of a polling payload that does not
    /// start with `b`).
    pub fn decode_text(text: &str) -> Result<Packet, PacketError> {
        let kind = *text.as_bytes().first().ok_or(PacketError::Empty)?;
        if !(b'0'..=b'6').contains(&kind) {
            return Err(PacketError::UnknownType(kind));
        }
        // The type digit is ASCII, so byte 1 is a character boundary.
        let data = &text[1..];
        Ok(match kind {
            b'0' => Packet::Open(data.to_owned()),
            b'1' => Packet::Close,
            b'2' => Packet::Ping(data.to_owned()),
            b'3' => Packet::Pong(data.to_owned()),
            b'4' => Packet::Message(data.to_owned()),
            b'5' => Packet::Upgrade,
            _ => Packet::Noop,
        })
    }

    /// The type digit of a text packet, or `None` for a binary message.
    pub fn type_digit(&self) -> Option<u8> {
        Some(match self {
            Packet::Open(_) => b'0',
            Packet::Close => b'1',
            Packet::Ping(_) => b'2',
            Packet::Pong(_) => b'3',
            Packet::Message(_) => b'4',
            Packet::Upgrade => b'5',
            Packet::Noop => b'6',
            Packet::Binary(_) => return None,
        })
    }

    /// Encodes a text packet (type digit and data); `None` for a binary message, which has no text form
    /// of its own.
    pub fn encode_text(&self) -> Option<String> {
        let digit = self.type_digit()? as char;
        let data = match self {
            Packet::Open(d) | Packet::Ping(d) | Packet::Pong(d) | Packet::Message(d) => d.as_str(),
            _ => "",
        };
        let mut out = String::with_capacity(1 + data.len());
        out.push(digit);
        out.push_str(data);
        Some(out)
    }
}

/// An encoded packet as it leaves on a WebSocket: a text frame holding the type digit and data, or a
/// binary frame holding a binary message's raw bytes.
///
/// Frames are what the outgoing queues hold: a packet broadcast to many sockets is encoded once and the
/// same [`Bytes`] are shared by every queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole text packet, type digit included (for example `4hello`). Always valid UTF-8.
    Text(Bytes),
    /// The raw bytes of a binary message.
    Binary(Bytes),
}

impl Frame {
    /// The number of bytes this frame holds.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(b) | Frame::Binary(b) => b.len(),
        }
    }

    /// Whether the frame holds no byte at all (never the case for a valid text packet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A text frame holding `4` followed by `text`: one allocation, no intermediate [`Packet`].
    pub fn message(text: &str) -> Frame {
        let mut buf = Vec::with_capacity(1 + text.len());
        buf.push(b'4');
        buf.extend_from_slice(text.as_bytes());
        Frame::Text(Bytes::from(buf))
    }
}

impl From<&Packet> for Frame {
    fn from(packet: &Packet) -> Frame {
        match packet {
            Packet::Binary(data) => Frame::Binary(data.clone()),
            other => Frame::Text(Bytes::from(other.encode_text().unwrap_or_default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_type() {
        assert_eq!(Packet::decode_text("0{}"), Ok(Packet::Open("{}".into())));
        assert_eq!(Packet::decode_text("1"), Ok(Packet::Close));
        assert_eq!(Packet::decode_text("2"), Ok(Packet::Ping(String::new())));
        assert_eq!(
            Packet::decode_text("2probe"),
            Ok(Packet::Ping("probe".into()))
        );
        assert_eq!(
            Packet::decode_text("3probe"),
            Ok(Packet::Pong("probe".into()))
        );
        assert_eq!(Packet::decode_text("4€"), Ok(Packet::Message("€".into())));
        assert_eq!(Packet::decode_text("5"), Ok(Packet::Upgrade));
        assert_eq!(Packet::decode_text("6"), Ok(Packet::Noop));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(Packet::decode_text(""), Err(PacketError::Empty));
        assert_eq!(
            Packet::decode_text("7"),
            Err(PacketError::UnknownType(b'7'))
        );
        assert_eq!(
            Packet::decode_text("é"),
            Err(PacketError::UnknownType(0xc3))
        );
    }

    #[test]
    fn binary_has_no_text_form() {
        assert_eq!(
            Packet::Binary(Bytes::from_static(b"\x01")).encode_text(),
            None
        );
    }
}
