//! Binary attachment reassembly: a text packet followed by binary messages, as a client may send them.
//! Input: frames separated by 0xff 0x00; the first is text, the rest binary. Never panics, never
//! yields a packet whose attachment count differs from what its header announced.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use socketio::packet::{BinaryCollector, Collected};

fuzz_target!(|data: &[u8]| {
    let mut frames = split(data);
    let Some(first) = frames.next() else { return };
    let Ok(text) = std::str::from_utf8(first) else {
        return;
    };
    let mut collector = BinaryCollector::default();
    let mut result = collector.text(text, 100);
    for frame in frames {
        match result {
            Ok(Collected::Incomplete) => result = collector.binary(Bytes::copy_from_slice(frame)),
            // A finished packet or an error ends the exchange, as on a real connection.
            _ => break,
        }
    }
    if let Ok(Collected::Packet(packet)) = result {
        let announced = text
            .strip_prefix(['5', '6'])
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(n, _)| n.parse::<usize>().ok())
            .unwrap_or(0);
        assert_eq!(packet.attachments.len(), announced);
    }
});

fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.windows(2).position(|w| w == [0xff, 0x00]) {
            Some(at) => {
                rest = Some(&current[at + 2..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}
