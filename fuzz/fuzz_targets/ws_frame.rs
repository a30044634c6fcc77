//! WebSocket frames from a client, as they arrive in arbitrary reads: the decoder never panics, never
//! holds more than the limit, and feeding the same bytes in one read or byte by byte gives the same
//! messages and the same error.
#![no_main]

use bytes::BytesMut;
use engineio::wsframe::FrameDecoder;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 4096;

fn decode_in_reads(data: &[u8], read_size: usize) -> (Vec<engineio::wsframe::WsMessage>, Option<u16>) {
    let mut decoder = FrameDecoder::new(LIMIT);
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
    let whole = decode_in_reads(data, data.len());
    let bytewise = decode_in_reads(data, 1);
    assert_eq!(whole, bytewise);
});
