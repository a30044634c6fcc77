//! WebSocket framing (RFC 6455) for the server side: client frames in, messages out; server frame
//! headers out. Pure: bytes in, events out, no I/O.
//!
//! The transport writes the payloads of queued packets straight from their shared buffers behind a
//! header built here, so that a packet broadcast to many clients is encoded once and never copied.
//!
//! ```
//! use bytes::BytesMut;
//! use engineio::wsframe::{FrameDecoder, WsMessage};
//!
//! // A masked text frame "4hi", as a client sends it.
//! let mask = [1u8, 2, 3, 4];
//! let mut wire = BytesMut::from(&[0x81u8, 0x80 | 3, 1, 2, 3, 4][..]);
//! wire.extend(b"4hi".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
//! let mut decoder = FrameDecoder::new(1_000_000);
//! assert_eq!(decoder.decode(&mut wire).unwrap(), Some(WsMessage::Text("4hi".into())));
//! assert!(wire.is_empty());
//! ```

use bytes::{Buf, Bytes, BytesMut};

/// Opcodes of the frames this server writes.
pub mod opcode {
    /// A text frame.
    pub const TEXT: u8 = 0x1;
    /// A binary frame.
    pub const BINARY: u8 = 0x2;
    /// A close frame.
    pub const CLOSE: u8 = 0x8;
    /// A ping frame.
    pub const PING: u8 = 0x9;
    /// A pong frame.
    pub const PONG: u8 = 0xA;
}

/// One complete message (or control frame) from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// A text message; its bytes are not yet checked to be UTF-8 (the reader checks them once, where
    /// it turns them into a string).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping, to be answered with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// A close frame, with its status code when it carried one.
    Close(Option<u16>),
}

/// Why the client's bytes are not a valid WebSocket stream. Each maps to the close code the
/// connection is closed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// A framing rule was broken (close code 1002).
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    /// A text message or close reason is not UTF-8 (close code 1007).
    #[error("invalid UTF-8 in a text message")]
    InvalidUtf8,
    /// A message is larger than the limit (close code 1009), compressed or once decompressed.
    #[error("message larger than {limit} bytes")]
    TooBig {
        /// The limit (`maxHttpBufferSize`).
        limit: usize,
    },
    /// A compressed message is not valid deflate data (close code 1007).
    #[error("invalid compressed data")]
    BadCompression,
}

impl WsError {
    /// The close code the server closes the connection with.
    pub fn close_code(self) -> u16 {
        match self {
            WsError::Protocol(_) => 1002,
            WsError::InvalidUtf8 | WsError::BadCompression => 1007,
            WsError::TooBig { .. } => 1009,
        }
    }
}

/// Reassembles client frames into messages, enforcing the RFC's rules for a server and a size limit.
#[derive(Debug)]
pub struct FrameDecoder {
    max_message: usize,
    /// `permessage-deflate` was negotiated: a message whose first frame has RSV1 set is compressed.
    deflate: bool,
    /// A fragmented data message in progress: its opcode, whether it is compressed, and the
    /// fragments so far.
    partial: Option<(u8, bool, BytesMut)>,
}

impl FrameDecoder {
    /// A decoder that refuses messages over `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        FrameDecoder {
            max_message,
            deflate: false,
            partial: None,
        }
    }

    /// The decoder of a connection that negotiated `permessage-deflate` ([`crate::deflate`]):
    /// compressed messages come out decompressed, still refused over `max_message` bytes.
    pub fn with_deflate(mut self) -> Self {
        self.deflate = true;
        self
    }

    /// Decodes the next message from the front of `buf`, consuming the frames it used. `Ok(None)`
    /// means more bytes are needed. A frame larger than the limit is refused from its header alone,
    /// so `buf` never has to hold more than one limit's worth of bytes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<WsMessage>, WsError> {
        loop {
            let Some(header) = parse_header(buf)? else {
                return Ok(None);
            };
            let buffered = self.partial.as_ref().map_or(0, |(_, _, data)| data.len());
            let is_control = header.opcode & 0x8 != 0;
            if header.rsv1 && (!self.deflate || is_control || header.opcode == 0x0) {
                return Err(WsError::Protocol(
                    "RSV1 set without compression, or on a control or continuation frame",
                ));
            }
            if !is_control
                && header.payload_len.saturating_add(buffered as u64) > self.max_message as u64
            {
                return Err(WsError::TooBig {
                    limit: self.max_message,
                });
            }
            let total = header.header_len as u64 + header.payload_len;
            if (buf.len() as u64) < total {
                return Ok(None);
            }
            buf.advance(header.header_len);
            // Fits in usize: bounded by the buffer's length just above.
            let mut payload = buf.split_to(header.payload_len as usize);
            unmask(&mut payload, header.mask);
            if let Some(message) = self.on_frame(header.fin, header.opcode, header.rsv1, payload)? {
                return Ok(Some(message));
            }
        }
    }

    fn on_frame(
        &mut self,
        fin: bool,
        opcode: u8,
        compressed: bool,
        payload: BytesMut,
    ) -> Result<Option<WsMessage>, WsError> {
        match opcode {
            0x0 => {
                let Some((_, _, data)) = self.partial.as_mut() else {
                    return Err(WsError::Protocol("continuation frame without a message"));
                };
                data.unsplit(payload);
                if !fin {
                    return Ok(None);
                }
                let (opcode, compressed, data) = self.partial.take().unwrap_or_default();
                self.data_message(opcode, compressed, data.freeze())
                    .map(Some)
            }
            opcode::TEXT | opcode::BINARY => {
                if self.partial.is_some() {
                    return Err(WsError::Protocol("new message inside a fragmented message"));
                }
                if fin {
                    self.data_message(opcode, compressed, payload.freeze())
                        .map(Some)
                } else {
                    self.partial = Some((opcode, compressed, payload));
                    Ok(None)
                }
            }
            opcode::CLOSE => match payload.len() {
                0 => Ok(Some(WsMessage::Close(None))),
                1 => Err(WsError::Protocol("close frame with a one-byte payload")),
                _ => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    if !valid_close_code(code) {
                        return Err(WsError::Protocol("invalid close code"));
                    }
                    if std::str::from_utf8(&payload[2..]).is_err() {
                        return Err(WsError::InvalidUtf8);
                    }
                    Ok(Some(WsMessage::Close(Some(code))))
                }
            },
            opcode::PING => Ok(Some(WsMessage::Ping(payload.freeze()))),
            _ => Ok(Some(WsMessage::Pong)),
        }
    }

    /// A whole data message, decompressed when its first frame said so.
    fn data_message(
        &self,
        opcode: u8,
        compressed: bool,
        data: Bytes,
    ) -> Result<WsMessage, WsError> {
        let data = if compressed {
            crate::deflate::inflate(&data, self.max_message).map_err(|err| match err {
                crate::deflate::InflateError::TooBig => WsError::TooBig {
                    limit: self.max_message,
                },
                crate::deflate::InflateError::Corrupt => WsError::BadCompression,
            })?
        } else {
            data
        };
        Ok(if opcode == opcode::TEXT {
            WsMessage::Text(data)
        } else {
            WsMessage::Binary(data)
        })
    }
}

/// Close codes a peer may send (RFC 6455 §7.4, plus the registered 1012–1014).
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

struct Header {
    fin: bool,
    /// The compression bit of `permessage-deflate`.
    rsv1: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    payload_len: u64,
}

/// Parses a client frame header, or `None` when `buf` does not hold all of it yet.
fn parse_header(buf: &[u8]) -> Result<Option<Header>, WsError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x30 != 0 {
        return Err(WsError::Protocol("reserved bits set without an extension"));
    }
    let opcode = b0 & 0x0F;
    let fin = b0 & 0x80 != 0;
    if !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
        return Err(WsError::Protocol("reserved opcode"));
    }
    if b1 & 0x80 == 0 {
        return Err(WsError::Protocol("client frame not masked"));
    }
    let (payload_len, len_bytes) = match b1 & 0x7F {
        126 => (2, 2),
        127 => (8, 8),
        n => (u64::from(n), 0),
    };
    if opcode & 0x8 != 0 && (!fin || len_bytes != 0) {
        return Err(WsError::Protocol("fragmented or oversized control frame"));
    }
    let header_len = 2 + len_bytes + 4;
    if buf.len() < header_len {
        return Ok(None);
    }
    let payload_len = match len_bytes {
        0 => payload_len,
        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        _ => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(WsError::Protocol("payload length with its top bit set"));
            }
            len
        }
    };
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[2 + len_bytes..header_len]);
    Ok(Some(Header {
        fin,
        rsv1: b0 & 0x40 != 0,
        opcode,
        mask,
        header_len,
        payload_len,
    }))
}

/// XORs the payload with the client's mask, eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let mask8 = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ mask8).to_ne_bytes());
    }
    // The remainder starts at a multiple of eight, so the mask starts over.
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// The final-fragment bit of a frame's first byte.
const FIN: u8 = 0x80;

/// The bit of a frame's first byte that marks a compressed message (`permessage-deflate`'s RSV1).
pub const COMPRESSED: u8 = 0x40;

/// The header of an unfragmented, unmasked server frame: the bytes and how many of them are used.
///
/// ```
/// use engineio::wsframe::{frame_header, opcode};
/// let (bytes, len) = frame_header(opcode::TEXT, 300);
/// assert_eq!(&bytes[..len], &[0x81, 126, 0x01, 0x2C]);
/// ```
pub fn frame_header(opcode: u8, payload_len: usize) -> ([u8; 10], usize) {
    let mut header = [0u8; 10];
    header[0] = FIN | opcode;
    let len = if payload_len < 126 {
        header[1] = payload_len as u8;
        2
    } else if let Ok(short) = u16::try_from(payload_len) {
        header[1] = 126;
        header[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    };
    (header, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A client frame: masked, with the given first byte.
    fn client_frame(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![b0];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend((n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend((n as u64).to_be_bytes());
            }
        }
        out.extend(mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        out
    }

    fn decode_all(decoder: &mut FrameDecoder, wire: &[u8]) -> Result<Vec<WsMessage>, WsError> {
        let mut buf = BytesMut::from(wire);
        let mut out = Vec::new();
        while let Some(message) = decoder.decode(&mut buf)? {
            out.push(message);
        }
        Ok(out)
    }

    #[test]
    fn fragments_are_joined_and_control_frames_may_interleave() {
        let mask = [9, 8, 7, 6];
        let mut wire = client_frame(0x01, b"4hel", mask);
        wire.extend(client_frame(0x89, b"p", mask));
        wire.extend(client_frame(0x80, b"lo", mask));
        let messages = decode_all(&mut FrameDecoder::new(100), &wire).unwrap();
        assert_eq!(
            messages,
            vec![
                WsMessage::Ping(Bytes::from_static(b"p")),
                WsMessage::Text(Bytes::from_static(b"4hello")),
            ]
        );
    }

    #[test]
    fn protocol_violations_are_refused_with_their_close_code() {
        let mask = [1, 2, 3, 4];
        let cases: Vec<(Vec<u8>, u16)> = vec![
            // Unmasked client frame.
            (vec![0x81, 0x01, b'x'], 1002),
            // RSV1 without an extension.
            (client_frame(0xC1, b"x", mask), 1002),
            // Reserved opcode.
            (client_frame(0x83, b"x", mask), 1002),
            // Continuation with no message.
            (client_frame(0x80, b"x", mask), 1002),
            // Fragmented control frame.
            (client_frame(0x09, b"x", mask), 1002),
            // Control frame over 125 bytes.
            (client_frame(0x89, &[0; 126], mask), 1002),
            // Close with one byte, with an invalid code, with a non-UTF-8 reason.
            (client_frame(0x88, &[3], mask), 1002),
            (client_frame(0x88, &[0x03, 0xEC], mask), 1002),
            (client_frame(0x88, &[0x03, 0xE8, 0xFF], mask), 1007),
            // Over the limit, from the header alone.
            (client_frame(0x82, &[0; 11], mask), 1009),
        ];
        for (wire, code) in cases {
            let err = decode_all(&mut FrameDecoder::new(10), &wire).unwrap_err();
            assert_eq!(err.close_code(), code, "{wire:?}: {err}");
        }
    }

    #[test]
    fn a_huge_length_is_refused_before_any_payload_arrives() {
        let mut header = vec![0x82, 0x80 | 127];
        header.extend(u64::MAX.to_be_bytes().map(|b| b & 0x7F));
        header.extend([0, 0, 0, 0]);
        let err = decode_all(&mut FrameDecoder::new(1_000_000), &header).unwrap_err();
        assert_eq!(err.close_code(), 1009);
    }

    #[test]
    fn fragments_count_towards_the_limit() {
        let mask = [1, 1, 1, 1];
        let mut wire = client_frame(0x02, &[0; 6], mask);
        wire.extend(client_frame(0x80, &[0; 6], mask));
        let err = decode_all(&mut FrameDecoder::new(10), &wire).unwrap_err();
        assert_eq!(err, WsError::TooBig { limit: 10 });
    }

    #[test]
    fn close_codes_are_read() {
        let wire = client_frame(0x88, &[0x03, 0xE8, b'o', b'k'], [5, 6, 7, 8]);
        let messages = decode_all(&mut FrameDecoder::new(10), &wire).unwrap();
        assert_eq!(messages, vec![WsMessage::Close(Some(1000))]);
    }

    #[test]
    fn with_deflate_compressed_messages_come_out_decompressed() {
        let mask = [4, 3, 2, 1];
        let text = "4".repeat(300);
        let compressed = crate::deflate::compress(text.as_bytes()).unwrap();
        let (first, rest) = compressed.split_at(3);
        // RSV1 on the first frame of a fragmented message only; a plain message in between.
        let mut wire = client_frame(0x41, first, mask);
        wire.extend(client_frame(0x80, rest, mask));
        wire.extend(client_frame(0x82, b"raw", mask));
        let mut decoder = FrameDecoder::new(300).with_deflate();
        assert_eq!(
            decode_all(&mut decoder, &wire).unwrap(),
            vec![
                WsMessage::Text(Bytes::from(text)),
                WsMessage::Binary(Bytes::from_static(b"raw")),
            ]
        );
        // One byte more than the limit once decompressed.
        let wire = client_frame(0xC1, &compressed, mask);
        let err = decode_all(&mut FrameDecoder::new(299).with_deflate(), &wire).unwrap_err();
        assert_eq!(err, WsError::TooBig { limit: 299 });
    }

    #[test]
    fn with_deflate_rsv1_is_only_for_the_first_frame_of_a_data_message() {
        let mask = [1, 2, 3, 4];
        let compressed = crate::deflate::compress(&[b'a'; 50]).unwrap();
        let mut continuation_rsv1 = client_frame(0x41, &compressed, mask);
        continuation_rsv1.extend(client_frame(0xC0, b"", mask));
        for (wire, code) in [
            (client_frame(0xC9, b"", mask), 1002),
            (continuation_rsv1, 1002),
            (client_frame(0xA1, b"x", mask), 1002),
            (client_frame(0xC1, &[0xFF; 8], mask), 1007),
        ] {
            let err = decode_all(&mut FrameDecoder::new(100).with_deflate(), &wire).unwrap_err();
            assert_eq!(err.close_code(), code, "{wire:?}: {err}");
        }
    }

    #[test]
    fn header_sizes() {
        assert_eq!(frame_header(opcode::BINARY, 125).1, 2);
        assert_eq!(frame_header(opcode::BINARY, 126).1, 4);
        assert_eq!(frame_header(opcode::BINARY, 65_535).1, 4);
        let (bytes, len) = frame_header(opcode::BINARY, 65_536);
        assert_eq!(&bytes[..len], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    proptest! {
        #[test]
        fn any_fragmentation_and_any_split_point_round_trips(
            payload in proptest::collection::vec(any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(any::<usize>(), 0..4),
            mask in any::<[u8; 4]>(),
            split in any::<usize>(),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (payload.len() + 1)).collect();
            points.sort_unstable();
            points.dedup();
            let mut wire = Vec::new();
            let mut start = 0;
            let mut first = true;
            for end in points.into_iter().chain([payload.len()]) {
                if end < start { continue; }
                let last = end == payload.len();
                let op = if first { opcode::BINARY } else { 0 };
                wire.extend(client_frame(if last { 0x80 | op } else { op }, &payload[start..end], mask));
                first = false;
                start = end;
                if last { break; }
            }
            // Bytes arrive in two reads, split anywhere.
            let split = split % (wire.len() + 1);
            let mut decoder = FrameDecoder::new(1 << 20);
            let mut buf = BytesMut::from(&wire[..split]);
            let mut got = Vec::new();
            while let Some(m) = decoder.decode(&mut buf).unwrap() { got.push(m); }
            buf.extend_from_slice(&wire[split..]);
            while let Some(m) = decoder.decode(&mut buf).unwrap() { got.push(m); }
            prop_assert_eq!(got, vec![WsMessage::Binary(payload.into())]);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn any_bytes_decode_or_error_without_panic(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut decoder = FrameDecoder::new(64);
            let mut buf = BytesMut::from(&input[..]);
            while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        }

        #[test]
        fn unmask_is_the_bytewise_xor(payload in proptest::collection::vec(any::<u8>(), 0..40), mask in any::<[u8; 4]>()) {
            let mut fast = payload.clone();
            unmask(&mut fast, mask);
            let slow: Vec<u8> = payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m).collect();
            prop_assert_eq!(fast, slow);
        }
    }
}
