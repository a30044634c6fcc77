//! JSONP long-polling, which the official server still serves: a handshake whose query has a `j`
//! parameter opens a session whose polls answer JavaScript, `___eio[j]("payload");`, for a
//! `<script>` tag, and whose POSTs carry the payload as the form field `d`. Pure functions; the
//! polling transport calls them.
//!
//! ```
//! # use engineio::jsonp;
//! assert_eq!(&*jsonp::callback_index("a7"), "7");
//! assert_eq!(&jsonp::wrap("7", "4hi")[..], br#"___eio[7]("4hi");"#);
//! assert_eq!(jsonp::posted_payload(b"d=4hello+world").as_deref(), Some("4hello world"));
//! ```

use bytes::Bytes;

/// Form fields of a POST read at most, as Node's `querystring.parse` reads at most 1000 keys.
const MAX_FORM_FIELDS: usize = 1000;

/// The callback index of a session, from its handshake's `j` parameter: its digits only, as the
/// official server keeps them (anything else could inject script into the answer).
pub fn callback_index(j: &str) -> Box<str> {
    j.chars().filter(char::is_ascii_digit).collect()
}

/// A poll's answer for a JSONP session: `___eio[index](` + the payload as a JavaScript string
/// literal + `);`. The literal is the payload's JSON string with U+2028 and U+2029 escaped too,
/// which JSON allows raw but JavaScript source does not.
pub fn wrap(index: &str, payload: &str) -> Bytes {
    // Serializing a `str` cannot fail.
    let mut literal = serde_json::to_string(payload).unwrap_or_default();
    if literal.contains(['\u{2028}', '\u{2029}']) {
        literal = literal
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029");
    }
    Bytes::from(format!("___eio[{index}]({literal});"))
}

/// The payload a JSONP POST carries: its form field `d`, URL-decoded, with the client's newline
/// escapes undone (`\n` is a newline, `\\n` a backslash and `n`). `None` when the body has no `d`,
/// or more than one (the official server reads those as no data at all).
pub fn posted_payload(body: &[u8]) -> Option<String> {
    let mut found = None;
    for (key, value) in form_urlencoded::parse(body).take(MAX_FORM_FIELDS) {
        if key == "d" {
            if found.is_some() {
                return None;
            }
            found = Some(value);
        }
    }
    found.map(|data| unescape_newlines(&data))
}

/// Undoes the client's newline escaping in two passes, as the official server does: first each
/// `\n` not preceded by a backslash becomes a newline (a `\\n` is skipped whole), then each `\\n`
/// becomes `\n`.
fn unescape_newlines(data: &str) -> String {
    let mut first = String::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = rest.find('\\') {
        first.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("\\\\n") {
            first.push_str("\\\\n");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("\\n") {
            first.push('\n');
            rest = after;
        } else {
            first.push('\\');
            rest = &tail[1..];
        }
    }
    first.push_str(rest);
    first.replace("\\\\n", "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_index_keeps_digits_only() {
        assert_eq!(&*callback_index("12"), "12");
        assert_eq!(&*callback_index("a1);alert(2"), "12");
        assert_eq!(&*callback_index(""), "");
    }

    #[test]
    fn answers_are_javascript_string_literals() {
        assert_eq!(
            &wrap("0", "0{\"sid\":\"x\"}")[..],
            br#"___eio[0]("0{\"sid\":\"x\"}");"#
        );
        assert_eq!(
            &wrap("", "4a\u{1e}4b\\\n")[..],
            "___eio[](\"4a\\u001e4b\\\\\\n\");".as_bytes()
        );
        assert_eq!(
            &wrap("3", "4\u{2028}\u{2029}é")[..],
            "___eio[3](\"4\\u2028\\u2029é\");".as_bytes()
        );
    }

    #[test]
    fn the_payload_is_the_d_field() {
        assert_eq!(posted_payload(b"d=4abc").as_deref(), Some("4abc"));
        assert_eq!(
            posted_payload(b"x=1&d=4%E2%82%AC%1E4b+c").as_deref(),
            Some("4€\u{1e}4b c")
        );
        assert_eq!(posted_payload(b"d").as_deref(), Some(""));
        assert_eq!(posted_payload(b"x=4abc"), None);
        assert_eq!(posted_payload(b""), None);
        assert_eq!(posted_payload(b"d=4a&d=4b"), None);
    }

    #[test]
    fn newline_escapes_are_undone_as_the_official_server_does() {
        // `\n` → newline; `\\n` → `\n`; a `\\\n` keeps its first backslash and turns `\\n` to `\n`.
        assert_eq!(unescape_newlines(r"4a\nb"), "4a\nb");
        assert_eq!(unescape_newlines(r"4a\\nb"), r"4a\nb");
        assert_eq!(unescape_newlines(r"4a\\\nb"), r"4a\\nb");
        assert_eq!(unescape_newlines(r"4\x\"), r"4\x\");
        assert_eq!(unescape_newlines("4plain"), "4plain");
    }

    proptest! {
        /// Whatever a client posts, reading it never fails or panics, and text without a
        /// backslash comes back as it was sent.
        #[test]
        fn any_body_reads(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = posted_payload(&body);
        }

        #[test]
        fn text_without_backslashes_round_trips(text in "[^\\\\]{0,64}") {
            let body: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("d", &text)
                .finish();
            prop_assert_eq!(posted_payload(body.as_bytes()), Some(text));
        }

        /// The answer is a call whose argument parses back (as JSON) to the payload.
        #[test]
        fn wrapped_payloads_parse_back(payload in any::<String>()) {
            let answer = wrap("1", &payload);
            let text = std::str::from_utf8(&answer).unwrap();
            let literal = text.strip_prefix("___eio[1](").and_then(|t| t.strip_suffix(");")).unwrap();
            let raw_separators = literal.contains(['\u{2028}', '\u{2029}']);
            prop_assert!(!raw_separators, "raw line separator in {:?}", literal);
            let back: String = serde_json::from_str(literal).unwrap();
            prop_assert_eq!(back, payload);
        }
    }
}
