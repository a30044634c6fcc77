//! One Engine.IO packet (a WebSocket text frame): decode never panics, and decode → encode → decode
//! gives the same packet.
#![no_main]

use engineio::Packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(packet) = Packet::decode_text(text) {
        let encoded = packet.encode_text().expect("text packets have a text form");
        assert_eq!(Packet::decode_text(&encoded), Ok(packet));
    }
});
