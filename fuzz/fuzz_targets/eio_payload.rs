//! A long-polling POST body: decoding never panics, and the packets decoded before the first error
//! encode to a payload that decodes to the same packets.
#![no_main]

use engineio::{payload, Frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The server reads bodies as UTF-8 with replacement characters.
    let body = String::from_utf8_lossy(data);
    let packets: Vec<_> = payload::decode(&body).map_while(Result::ok).collect();
    if packets.is_empty() {
        return;
    }
    let frames: Vec<Frame> = packets.iter().map(Frame::from).collect();
    let encoded = payload::encode(&frames);
    let text = std::str::from_utf8(&encoded).expect("payloads are UTF-8");
    let again: Vec<_> = payload::decode(text).collect::<Result<_, _>>().expect("re-decodes");
    assert_eq!(again, packets);
});
