//! WebSocket frames from a client, as they arrive in arbitrary reads: the decoder never panics, never
//! holds more than the limit, and feeding the same bytes in one read or byte by byte gives the same
//! messages and the same error; with `permessage-deflate` negotiated too, where no message comes out
//! larger than the limit once decompressed.
#![no_main]

use bytes::BytesMut;
use engineio::wsframe::{FrameDecoder, WsMessage};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 4096;

fn decode_in_reads(
    data: &[u8],
    read_size: usize,
    deflate: bool,
) -> (Vec<WsMessage>, Option<u16>) {
    let mut decoder = FrameDecoder::new(LIMIT);
    if deflate {
        decoder = decoder.with_deflate();
    }
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    for chunk in data.chunks(read_size.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(err) => return (messages, Some(err.close_code())),
            }
        }
        // A frame is refused from its header once it could exceed the limit.
        assert!(buf.len() <= LIMIT + 14 + read_size, "buffered {} bytes", buf.len());
    }
    (messages, None)
}

fuzz_target!(|data: &[u8]| {
    for deflate in [false, true] {
        let whole = decode_in_reads(data, data.len(), deflate);
        let bytewise = decode_in_reads(data, 1, deflate);
        assert_eq!(whole, bytewise);
        for message in &whole.0 {
            if let WsMessage::Text(bytes) | WsMessage::Binary(bytes) = message {
                assert!(bytes.len() <= LIMIT);
            }
        }
    }
});
