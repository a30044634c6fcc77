//! The long-polling payload: several packets in one HTTP body.
//!
//! Packets are joined by the record separator `0x1e`. A text packet is written as it is; a binary
//! message is written as `b` followed by the standard base64 of its bytes:
//!
//! ```text
//! 4hello␞bAQID␞2        (message "hello", binary [1, 2, 3], ping)
//! ```
//!
//! Limits are counted in bytes of the UTF-8 body, as the official server counts them.

use base64::Engine as _;
use bytes::Bytes;

use crate::packet::{Frame, Packet, PacketError};

/// The byte that separates packets in a polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// Decodes a polling payload into its packets, in order.
///
/// The iterator yields one result per record. The official server stops at the first record it cannot
/// decode and closes the session with a parse error; callers do the same.
///
/// ```
/// use engineio::{payload, Packet};
/// let packets: Vec<_> = payload::decode("4hi\x1ebAQI=").collect();
/// assert_eq!(packets[0], Ok(Packet::Message("hi".into())));
/// assert_eq!(packets[1], Ok(Packet::Binary(vec![1u8, 2].into())));
/// ```
pub fn decode(body: &str) -> impl Iterator<Item = Result<Packet, PacketError>> + '_ {
    body.split(SEPARATOR as char).map(decode_record)
}

/// Decodes one record of a polling payload (the text between two separators), or one WebSocket
/// text message: `b` and base64 is a binary message there too.
pub fn decode_record(record: &str) -> Result<Packet, PacketError> {
    match record.strip_prefix('b') {
        Some(encoded) => Ok(Packet::Binary(Bytes::from(decode_base64(encoded)))),
        None => Packet::decode_text(record),
    }
}

/// Base64 read as Node's `Buffer.from(text, "base64")` reads it, which is what the official server
/// does: the URL-safe alphabet too, padding optional, other characters skipped, nothing after `=`.
/// Never longer than its input, so nothing a client sends can make it allocate more.
fn decode_base64(encoded: &str) -> Vec<u8> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
    use base64::engine::DecodePaddingMode;
    if let Ok(bytes) = STANDARD.decode(encoded) {
        return bytes;
    }
    const FORGIVING: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let mut symbols: Vec<u8> = encoded
        .bytes()
        .take_while(|b| *b != b'=')
        .filter_map(|b| match b {
            b'-' => Some(b'+'),
            b'_' => Some(b'/'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => Some(b),
            _ => None,
        })
        .collect();
    // A last lone symbol holds fewer than 8 bits: it makes no byte.
    if symbols.len() % 4 == 1 {
        symbols.pop();
    }
    FORGIVING.decode(&symbols).unwrap_or_default()
}

/// Encodes queued frames as one polling payload.
///
/// ```
/// use engineio::{payload, Frame};
/// let body = payload::encode(&[Frame::message("hi"), Frame::Binary(vec![1u8, 2].into())]);
/// assert_eq!(&body[..], b"4hi\x1ebAQI=");
/// ```
pub fn encode(frames: &[Frame]) -> Bytes {
    if let [Frame::Text(only)] = frames {
        return only.clone();
    }
    let size: usize = frames
        .iter()
        .map(|f| match f {
            Frame::Text(t) => t.len() + 1,
            Frame::Binary(b) => 2 + b.len().div_ceil(3) * 4,
        })
        .sum();
    let mut out = Vec::with_capacity(size);
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        match frame {
            Frame::Text(text) => out.extend_from_slice(text),
            Frame::Binary(data) => {
                out.push(b'b');
                let start = out.len();
                out.resize(start + data.len().div_ceil(3) * 4, 0);
                let written = base64::engine::general_purpose::STANDARD
                    .encode_slice(data, &mut out[start..])
                    .unwrap_or(0);
                out.truncate(start + written);
            }
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn packet_strategy() -> impl Strategy<Value = Packet> {
        // Text data may hold anything but the separator, which the format cannot carry in text.
        let text = "[^\u{1e}]{0,40}";
        prop_oneof![
            text.prop_map(Packet::Open),
            Just(Packet::Close),
            text.prop_map(Packet::Ping),
            text.prop_map(Packet::Pong),
            text.prop_map(Packet::Message),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| Packet::Binary(v.into())),
            Just(Packet::Upgrade),
            Just(Packet::Noop),
        ]
    }

    #[test]
    fn empty_record_is_an_error() {
        let decoded: Vec<_> = decode("4a\x1e\x1e4b").collect();
        assert_eq!(decoded[1], Err(PacketError::Empty));
    }

    #[test]
    fn base64_is_read_as_node_reads_it() {
        let binary = |record: &str| match decode_record(record) {
            Ok(Packet::Binary(data)) => data.to_vec(),
            other => panic!("{record}: {other:?}"),
        };
        assert_eq!(binary("bAQI="), [1, 2]);
        assert_eq!(binary("bAQI"), [1, 2]);
        assert_eq!(binary("bAQ"), [1]);
        assert_eq!(binary("bAQ I="), [1, 2]);
        assert_eq!(binary("b-_8="), [0xfb, 0xff]);
        assert_eq!(binary("bAQI=AQI="), [1, 2]);
        assert_eq!(binary("bA"), Vec::<u8>::new());
        assert_eq!(binary("b!!"), Vec::<u8>::new());
        assert_eq!(binary("b"), Vec::<u8>::new());
    }

    #[test]
    fn utf8_multibyte_survives() {
        let body = encode(&[Frame::message("😀é"), Frame::message("x")]);
        let text = std::str::from_utf8(&body).unwrap();
        let decoded: Vec<_> = decode(text).collect();
        assert_eq!(
            decoded,
            vec![
                Ok(Packet::Message("😀é".into())),
                Ok(Packet::Message("x".into()))
            ]
        );
    }

    proptest! {
        #[test]
        fn any_packet_sequence_round_trips(packets in proptest::collection::vec(packet_strategy(), 1..8)) {
            let frames: Vec<Frame> = packets.iter().map(Frame::from).collect();
            let body = encode(&frames);
            let text = std::str::from_utf8(&body).unwrap();
            let decoded: Result<Vec<_>, _> = decode(text).collect();
            prop_assert_eq!(decoded.unwrap(), packets);
        }

        #[test]
        fn any_input_decodes_or_errors(input in "\\PC{0,200}") {
            for result in decode(&input) {
                let _ = result;
            }
        }

        #[test]
        fn any_bytes_decode_or_error(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let text = String::from_utf8_lossy(&input);
            for packet in decode(&text).flatten() {
                let frame = Frame::from(&packet);
                let body = encode(std::slice::from_ref(&frame));
                let again: Vec<_> = decode(std::str::from_utf8(&body).unwrap()).collect();
                prop_assert_eq!(again, vec![Ok(packet)]);
            }
        }
    }
}
