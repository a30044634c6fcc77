//! The text part of a Socket.IO packet: decoding never panics, and decode → encode → decode is stable.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use socketio::packet::Packet;

const MAX_ATTACHMENTS: usize = 100;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(header) = Packet::decode(text, MAX_ATTACHMENTS) else {
        return;
    };
    let mut packet = header.packet;
    // The count on the wire is the number of attachments the packet carries.
    packet.attachments = vec![Bytes::new(); header.expected_attachments];
    let encoded = packet.encode();
    let again = Packet::decode(&encoded, MAX_ATTACHMENTS).expect("an encoded packet decodes");
    assert_eq!(again.expected_attachments, header.expected_attachments);
    packet.attachments.clear();
    assert_eq!(again.packet, packet);
});
