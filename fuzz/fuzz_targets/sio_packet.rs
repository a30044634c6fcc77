//! The text part of a Socket.IO packet: decoding never panics, and what the encoder writes decodes
//! to the same packet and encodes to the same bytes again. (Bytes, not values: numbers are written
//! as JavaScript writes them, so `5E5` comes back as the integer `500000`.)
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
    let mut decoded = again.packet;
    assert_eq!(
        (decoded.kind, &decoded.nsp, decoded.id, decoded.data.is_some()),
        (packet.kind, &packet.nsp, packet.id, packet.data.is_some())
    );
    decoded.attachments = packet.attachments;
    assert_eq!(decoded.encode(), encoded);
});
