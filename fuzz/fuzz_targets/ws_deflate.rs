//! `permessage-deflate` input from a client: the `Sec-WebSocket-Extensions` offers and compressed
//! message payloads. Negotiation and decompression never panic, decompression never yields more
//! than the limit, and whatever the compressor makes decompresses back to its input.
#![no_main]

use engineio::deflate::{compress, inflate, negotiate, InflateError};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let _ = negotiate(data.split(|b| *b == b'\n'));
    match inflate(data, LIMIT) {
        Ok(message) => assert!(message.len() <= LIMIT),
        Err(InflateError::TooBig | InflateError::Corrupt) => {}
    }
    if let Some(compressed) = compress(data) {
        assert!(compressed.len() < data.len());
        assert_eq!(inflate(&compressed, data.len()).unwrap(), data);
    }
});
