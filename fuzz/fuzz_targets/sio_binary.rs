//! Binary attachment reassembly: a text packet followed by binary messages, as a client may send them.
//! Input: frames separated by 0xff 0x00; the first is text, the rest binary. Never panics; a packet
//! that comes out of a binary message carries exactly the attachments its placeholders name, numbered
//! 0, 1, 2... in the order of the arguments (the official parser's rebuild, then its encoder).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
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
        if text.starts_with(['5', '6']) {
            let mut next = 0;
            if let Some(data) = &packet.data {
                check_numbering(data, &mut next);
            }
            assert_eq!(packet.attachments.len() as u64, next);
        }
    }
});

/// Every placeholder, in document order, names the next attachment.
fn check_numbering(value: &Value, next: &mut u64) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| check_numbering(item, next)),
        Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => {
            assert_eq!(map.get("num").and_then(Value::as_u64), Some(*next));
            *next += 1;
        }
        Value::Object(map) => map.values().for_each(|item| check_numbering(item, next)),
        _ => {}
    }
}

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
