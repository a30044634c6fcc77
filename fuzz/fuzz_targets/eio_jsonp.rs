//! A JSONP long-polling POST body (a form whose `d` field is the payload): reading it never panics,
//! and the payload it yields, answered back as a JSONP script, parses back to the same text.
#![no_main]

use engineio::{jsonp, payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(posted) = jsonp::posted_payload(data) else {
        return;
    };
    // The payload then goes through the ordinary payload decoder.
    for packet in payload::decode(&posted) {
        if packet.is_err() {
            break;
        }
    }
    let script = jsonp::wrap("1", &posted);
    let text = std::str::from_utf8(&script).expect("answers are UTF-8");
    let literal = text
        .strip_prefix("___eio[1](")
        .and_then(|rest| rest.strip_suffix(");"))
        .expect("a call of ___eio[1]");
    assert!(!literal.contains(['\u{2028}', '\u{2029}']));
    let back: String = serde_json::from_str(literal).expect("a JSON string literal");
    assert_eq!(back, posted);
});
