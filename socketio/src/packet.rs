//! Socket.IO v5 packets: the codec and the reassembly of binary attachments.
//!
//! ```text
//! <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
//!
//! 0/admin,{"token":"x"}               CONNECT to /admin with auth
//! 2["hello",1]                        EVENT on /
//! 21["hello"]                         EVENT with ack id 1
//! 3/admin,1["ok"]                     ACK 1 on /admin
//! 451-["upload",{"_placeholder":true,"num":0}]   BINARY_EVENT, then one binary Engine.IO message
//! ```
//!
//! A packet with attachments arrives as one text message followed by one binary message per
//! attachment; [`BinaryCollector`] puts them back together.

use bytes::Bytes;
use serde_json::Value;

/// The seven packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: join a namespace (client) / joined (server).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event.
    Event,
    /// `3`: an acknowledgement.
    Ack,
    /// `4`: a namespace refused the connection.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an acknowledgement with binary attachments.
    BinaryAck,
}

impl PacketType {
    fn from_digit(digit: u8) -> Option<PacketType> {
        Some(match digit {
            b'0' => PacketType::Connect,
            b'1' => PacketType::Disconnect,
            b'2' => PacketType::Event,
            b'3' => PacketType::Ack,
            b'4' => PacketType::ConnectError,
            b'5' => PacketType::BinaryEvent,
            b'6' => PacketType::BinaryAck,
            _ => return None,
        })
    }

    fn digit(self) -> char {
        match self {
            PacketType::Connect => '0',
            PacketType::Disconnect => '1',
            PacketType::Event => '2',
            PacketType::Ack => '3',
            PacketType::ConnectError => '4',
            PacketType::BinaryEvent => '5',
            PacketType::BinaryAck => '6',
        }
    }

    fn is_binary(self) -> bool {
        matches!(self, PacketType::BinaryEvent | PacketType::BinaryAck)
    }
}

/// Event names a client may not send and the server may not emit: they are the lifecycle events
/// of the sockets on either side.
const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Whether `name` is a reserved lifecycle event name (`connect`, `disconnect`, …).
pub(crate) fn is_reserved_event(name: &str) -> bool {
    RESERVED_EVENTS.contains(&name)
}

/// One Socket.IO packet. For binary packets, `data` holds placeholders and `attachments` the buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The packet type.
    pub kind: PacketType,
    /// The namespace (`/` when absent on the wire).
    pub nsp: String,
    /// The ack id, if any.
    pub id: Option<u64>,
    /// The JSON payload, if any.
    pub data: Option<Value>,
    /// The binary attachments (binary packets only).
    pub attachments: Vec<Bytes>,
}

/// Why a packet is invalid. The official server closes the connection on any of these. The
/// messages are the official parser's where it has the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The packet was empty.
    #[error("empty packet")]
    Empty,
    /// The first character is not a packet type (the message shows it as the official parser's
    /// `Number()` does: a digit, else `NaN`).
    #[error("unknown packet type {}", if .0.is_ascii_digit() { .0.to_string() } else { "NaN".to_owned() })]
    UnknownType(char),
    /// The attachment count is missing, malformed or zero.
    #[error("Illegal attachments")]
    IllegalAttachments,
    /// The attachment count is over the limit (`max_attachments`).
    #[error("too many attachments")]
    TooManyAttachments,
    /// The ack id does not fit in 64 bits.
    #[error("invalid ack id")]
    InvalidId,
    /// The payload is not JSON, or not the shape this packet type needs.
    #[error("invalid payload")]
    InvalidPayload,
    /// A binary message arrived when no attachment was expected.
    #[error("got binary data when not reconstructing a packet")]
    UnexpectedBinary,
    /// A text packet arrived while attachments were still expected.
    #[error("got plaintext data when reconstructing a packet")]
    UnexpectedText,
    /// A placeholder refers to no attachment.
    #[error("illegal attachments")]
    BadPlaceholder,
}

/// A decoded text packet, possibly waiting for attachments.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The packet; `attachments` is still empty.
    pub packet: Packet,
    /// How many binary messages follow.
    pub expected_attachments: usize,
}

impl Packet {
    /// A CONNECT answer (`{"sid":…}`).
    pub fn connect(nsp: &str, sid: &str) -> Packet {
        Packet::new(
            PacketType::Connect,
            nsp,
            Some(serde_json::json!({ "sid": sid })),
        )
    }

    /// A CONNECT answer with the private session id of connection state recovery
    /// (`{"sid":…,"pid":…}`).
    pub fn connect_with_pid(nsp: &str, sid: &str, pid: &str) -> Packet {
        Packet::new(
            PacketType::Connect,
            nsp,
            Some(serde_json::json!({ "sid": sid, "pid": pid })),
        )
    }

    /// A packet with no id and no attachments.
    pub fn new(kind: PacketType, nsp: &str, data: Option<Value>) -> Packet {
        Packet {
            kind,
            nsp: nsp.to_owned(),
            id: None,
            data,
            attachments: Vec::new(),
        }
    }

    /// Decodes the text part of a packet. `max_attachments` bounds what the client may announce.
    ///
    /// ```
    /// use socketio::packet::{Packet, PacketType};
    /// let header = Packet::decode("2/chat,7[\"hi\"]", 10).unwrap();
    /// assert_eq!(header.packet.kind, PacketType::Event);
    /// assert_eq!(header.packet.nsp, "/chat");
    /// assert_eq!(header.packet.id, Some(7));
    /// ```
    pub fn decode(text: &str, max_attachments: usize) -> Result<Header, DecodeError> {
        let bytes = text.as_bytes();
        let kind = PacketType::from_digit(*bytes.first().ok_or(DecodeError::Empty)?)
            .ok_or_else(|| DecodeError::UnknownType(text.chars().next().unwrap_or_default()))?;
        let mut i = 1;

        let mut expected_attachments = 0;
        if kind.is_binary() {
            let start = i;
            while i < bytes.len() && bytes[i] != b'-' {
                i += 1;
            }
            if i == bytes.len() || i == start || !bytes[start..i].iter().all(u8::is_ascii_digit) {
                return Err(DecodeError::IllegalAttachments);
            }
            // At least one: the official parser refuses a binary packet that announces none.
            expected_attachments = match text[start..i].parse::<usize>() {
                Ok(0) => return Err(DecodeError::IllegalAttachments),
                Ok(n) if n <= max_attachments => n,
                // Too many digits for a usize is too many attachments as well.
                _ => return Err(DecodeError::TooManyAttachments),
            };
            i += 1;
        }

        let nsp = if bytes.get(i) == Some(&b'/') {
            let start = i;
            while i < bytes.len() && bytes[i] != b',' {
                i += 1;
            }
            let nsp = text[start..i].to_owned();
            if i < bytes.len() {
                i += 1; // the comma
            }
            nsp
        } else {
            "/".to_owned()
        };

        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let id = if i > start {
            Some(
                text[start..i]
                    .parse::<u64>()
                    .map_err(|_| DecodeError::InvalidId)?,
            )
        } else {
            None
        };

        let data = if i < bytes.len() {
            let json = &text[i..];
            let mut data = parse_json(json).ok_or(DecodeError::InvalidPayload)?;
            if may_have_index_keys(json) {
                order_keys_as_javascript(&mut data);
            }
            if may_have_unsafe_integers(json) {
                unsafe_integers_as_doubles(&mut data);
            }
            Some(data)
        } else {
            None
        };
        // As the official parser: a payload is checked when there is one. A packet without one is
        // well-formed (the payload is optional in the format); what it means is the receiver's
        // business (an EVENT without arguments names no event and is dropped).
        if data
            .as_ref()
            .is_some_and(|data| !payload_is_valid(kind, data))
        {
            return Err(DecodeError::InvalidPayload);
        }
        Ok(Header {
            packet: Packet {
                kind,
                nsp,
                id,
                data,
                attachments: Vec::new(),
            },
            expected_attachments,
        })
    }

    /// Encodes the text part of the packet (the attachments leave as binary messages after it).
    ///
    /// ```
    /// use socketio::packet::{Packet, PacketType};
    /// let packet = Packet::new(PacketType::Event, "/", Some(serde_json::json!(["hi"])));
    /// assert_eq!(packet.encode(), "2[\"hi\"]");
    /// ```
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(32);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded text part to `out`.
    pub fn encode_into(&self, out: &mut String) {
        use std::fmt::Write as _;
        out.push(self.kind.digit());
        if self.kind.is_binary() {
            let _ = write!(out, "{}-", self.attachments.len());
        }
        if self.nsp != "/" {
            out.push_str(&self.nsp);
            out.push(',');
        }
        if let Some(id) = self.id {
            let _ = write!(out, "{id}");
        }
        if let Some(data) = &self.data {
            // Serialized as bytes and checked once as a whole: checking every small piece serde_json
            // writes showed in profiles. Serializing a `Value` cannot fail, and its output is UTF-8.
            let mut bytes = std::mem::take(out).into_bytes();
            let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, JsNumbers);
            let _ = serde::Serialize::serialize(data, &mut serializer);
            *out = String::from_utf8(bytes)
                .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned());
        }
    }
}

/// Parses a JSON payload as JavaScript's `JSON.parse` would, where serde_json alone would refuse
/// what JavaScript reads:
/// - a lone UTF-16 surrogate escape (`"\ud83d"`, what `JSON.stringify` makes of a string cut inside
///   an emoji) becomes U+FFFD: a Rust string cannot hold it;
/// - a number beyond the range of a double (`1e400`) becomes `null`: JavaScript reads `Infinity`,
///   which `JSON.stringify` writes as `null`.
///
/// Refusing either would close the client's connection, which the official server does not do.
fn parse_json(text: &str) -> Option<Value> {
    if let Ok(value) = serde_json::from_str(text) {
        return Some(value);
    }
    // Only invalid payloads get here: the rewrites cost nothing on the usual path.
    let surrogates_fixed = replace_lone_surrogates(text);
    let text = surrogates_fixed.as_deref().unwrap_or(text);
    let numbers_fixed = infinite_numbers_as_null(text);
    let text = numbers_fixed.as_deref().unwrap_or(text);
    if surrogates_fixed.is_none() && numbers_fixed.is_none() {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// Whether a JSON text may hold an object key that JavaScript treats as an array index (a string
/// that starts with a digit): a cheap test that spares the walk of [`order_keys_as_javascript`]
/// to most payloads.
fn may_have_index_keys(json: &str) -> bool {
    json.as_bytes()
        .windows(2)
        .any(|pair| pair[0] == b'"' && pair[1].is_ascii_digit())
}

/// Orders every object's keys as a JavaScript object holds them: keys that are array indices
/// (`"0"`, `"7"`, `"42"`) first, in ascending numeric order, then the others in the order they came.
/// `JSON.parse` builds objects that way, so what a handler receives, and any echo of it, has the
/// keys in the order the official server would use. Recursion is bounded by serde_json's nesting
/// limit (128).
fn order_keys_as_javascript(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(order_keys_as_javascript),
        Value::Object(map) => {
            map.values_mut().for_each(order_keys_as_javascript);
            if map.keys().any(|key| array_index(key).is_some()) {
                let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
                // Stable: keys that are not indices keep their order.
                entries.sort_by_key(|(key, _)| array_index(key).map_or((1, 0), |n| (0, n)));
                map.extend(entries);
            }
        }
        _ => {}
    }
}

/// `Number.MAX_SAFE_INTEGER`: up to it, every integer has a double of its own.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Whether a JSON text may hold an integer beyond [`MAX_SAFE_INTEGER`]: a run of at least 16 digits
/// (2⁵³ has 16), a cheap test that spares the walk of [`unsafe_integers_as_doubles`] to most
/// payloads.
fn may_have_unsafe_integers(json: &str) -> bool {
    let mut run = 0;
    json.bytes().any(|byte| {
        run = if byte.is_ascii_digit() { run + 1 } else { 0 };
        run >= 16
    })
}

/// Rounds every integer beyond [`MAX_SAFE_INTEGER`] to the nearest double, as `JSON.parse` reads
/// it: `12345678901234567890` is `12345678901234567000` to a JavaScript handler and in the
/// official server's echo of it. serde_json would keep it exact as a `u64`. Recursion is bounded
/// by serde_json's nesting limit (128).
fn unsafe_integers_as_doubles(value: &mut Value) {
    match value {
        Value::Number(number) => {
            let beyond = number.as_u64().is_some_and(|n| n > MAX_SAFE_INTEGER)
                || number
                    .as_i64()
                    .is_some_and(|n| n.unsigned_abs() > MAX_SAFE_INTEGER);
            if beyond {
                if let Some(double) = number.as_f64().and_then(serde_json::Number::from_f64) {
                    *number = double;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unsafe_integers_as_doubles),
        Value::Object(map) => map.values_mut().for_each(unsafe_integers_as_doubles),
        _ => {}
    }
}

/// The array index a property key stands for in JavaScript: the canonical decimal form of an
/// integer below 2³² − 1 (`"01"`, `"-1"` and `"4294967295"` are plain keys).
fn array_index(key: &str) -> Option<u32> {
    let canonical =
        key == "0" || (key.len() <= 10 && key.starts_with(|c: char| matches!(c, '1'..='9')));
    if !canonical || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u64>()
        .ok()
        .filter(|n| *n < u64::from(u32::MAX))
        .map(|n| n as u32)
}

/// `text` with every number literal that overflows a double replaced by `null`; `None` when there
/// is none.
fn infinite_numbers_as_null(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => i += 1,
            b'-' | b'0'..=b'9' if !in_string => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                if text[start..i].parse::<f64>().is_ok_and(f64::is_infinite) {
                    out.push_str(&text[copied..start]);
                    out.push_str("null");
                    copied = i;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// `text` with every `\uXXXX` escape of an unpaired surrogate replaced by `\ufffd`; `None` when
/// there is none (the payload is invalid for another reason).
fn replace_lone_surrogates(text: &str) -> Option<String> {
    fn escape_at(bytes: &[u8], at: usize) -> Option<u16> {
        let hex = bytes.get(at..at + 6)?;
        if hex[0] != b'\\' || hex[1] != b'u' {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut replaced = false;
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                let Some(unit) = escape_at(bytes, i) else {
                    i += 2; // any other escape, `\\` included
                    continue;
                };
                let paired = match unit {
                    0xd800..=0xdbff => {
                        if escape_at(bytes, i + 6)
                            .is_some_and(|low| (0xdc00..=0xdfff).contains(&low))
                        {
                            i += 12;
                            continue;
                        }
                        false
                    }
                    0xdc00..=0xdfff => false,
                    _ => true,
                };
                if !paired {
                    out.push_str(&text[copied..i]);
                    out.push_str("\\ufffd");
                    copied = i + 6;
                    replaced = true;
                }
                i += 6;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    replaced.then_some(out)
}

/// JSON as `JSON.stringify` writes it: a float is written as JavaScript prints numbers (`1`, not
/// `1.0`; `0` for `-0`; `100000000000000000000`, not `1e20`), so clients in any language read the
/// bytes the official server would send.
struct JsNumbers;

impl serde_json::ser::Formatter for JsNumbers {
    fn write_f64<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        value: f64,
    ) -> std::io::Result<()> {
        writer.write_all(ryu_js::Buffer::new().format(value).as_bytes())
    }

    fn write_f32<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        value: f32,
    ) -> std::io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
}

fn payload_is_valid(kind: PacketType, data: &Value) -> bool {
    match kind {
        PacketType::Connect => data.is_object(),
        PacketType::Disconnect => false,
        PacketType::ConnectError => data.is_object() || data.is_string(),
        PacketType::Event | PacketType::BinaryEvent => match data {
            Value::Array(items) => match items.first() {
                Some(Value::Number(_)) => true,
                Some(Value::String(name)) => !is_reserved_event(name),
                _ => false,
            },
            _ => false,
        },
        PacketType::Ack | PacketType::BinaryAck => data.is_array(),
    }
}

/// Puts a binary packet back together from its text header and the binary messages after it.
#[derive(Debug, Default)]
pub struct BinaryCollector {
    pending: Option<(Packet, usize)>,
}

/// What [`BinaryCollector`] made of a message.
#[derive(Debug, PartialEq)]
pub enum Collected {
    /// A whole packet.
    Packet(Packet),
    /// More attachments are needed.
    Incomplete,
}

impl BinaryCollector {
    /// Whether attachments are awaited.
    pub fn is_collecting(&self) -> bool {
        self.pending.is_some()
    }

    /// Takes a text message.
    pub fn text(&mut self, text: &str, max_attachments: usize) -> Result<Collected, DecodeError> {
        if self.is_collecting() {
            return Err(DecodeError::UnexpectedText);
        }
        let Header {
            packet,
            expected_attachments,
        } = Packet::decode(text, max_attachments)?;
        if packet.kind.is_binary() {
            self.pending = Some((packet, expected_attachments));
            return Ok(Collected::Incomplete);
        }
        Ok(Collected::Packet(packet))
    }

    /// Takes a binary message (one attachment).
    pub fn binary(&mut self, data: Bytes) -> Result<Collected, DecodeError> {
        let (packet, expected) = self.pending.as_mut().ok_or(DecodeError::UnexpectedBinary)?;
        packet.attachments.push(data);
        if packet.attachments.len() < *expected {
            return Ok(Collected::Incomplete);
        }
        let (mut packet, _) = self.pending.take().ok_or(DecodeError::UnexpectedBinary)?;
        let received = std::mem::take(&mut packet.attachments);
        packet.attachments = resolve_placeholders(packet.data.as_mut(), &received)?;
        Ok(Collected::Packet(packet))
    }
}

/// Replaces the placeholders' attachments as the official parser does, then numbers them again in
/// the order the official server would write them back, so that what a handler receives, and any
/// echo of it, is what the Node server would make of the same packet.
///
/// A placeholder whose `num` is not a number in `0..received.len()` is an error (the official
/// parser throws). Any number in range counts, written as the client likes (`0`, `0.0`, `-0`); one
/// that is not whole names no attachment and reads as JavaScript's `undefined`: `null` in an
/// array, a missing key in an object. Attachments no placeholder names are dropped, and one named
/// twice is kept twice, as re-encoding the rebuilt arguments would do.
fn resolve_placeholders(
    value: Option<&mut Value>,
    received: &[Bytes],
) -> Result<Vec<Bytes>, DecodeError> {
    let mut kept = Vec::new();
    if let Some(value) = value {
        if resolve(value, received, &mut kept)? == Resolved::Undefined {
            *value = Value::Null;
        }
    }
    Ok(kept)
}

#[derive(Debug, PartialEq)]
enum Resolved {
    Kept,
    Undefined,
}

/// Depth-first in document order, as the official encoder walks arguments. Recursion is bounded:
/// a decoded payload nests at most 128 deep (serde_json's limit).
fn resolve(
    value: &mut Value,
    received: &[Bytes],
    kept: &mut Vec<Bytes>,
) -> Result<Resolved, DecodeError> {
    match value {
        Value::Array(items) => {
            for item in items {
                if resolve(item, received, kept)? == Resolved::Undefined {
                    *item = Value::Null;
                }
            }
        }
        Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => {
            let num = map
                .get("num")
                .and_then(Value::as_f64)
                .filter(|n| *n >= 0.0 && *n < received.len() as f64)
                .ok_or(DecodeError::BadPlaceholder)?;
            if num.fract() != 0.0 {
                return Ok(Resolved::Undefined);
            }
            kept.push(received[num as usize].clone());
            *value = serde_json::json!({ "_placeholder": true, "num": kept.len() - 1 });
        }
        Value::Object(map) => {
            let mut undefined = Vec::new();
            for (key, item) in map.iter_mut() {
                if resolve(item, received, kept)? == Resolved::Undefined {
                    undefined.push(key.clone());
                }
            }
            for key in undefined {
                map.shift_remove(&key);
            }
        }
        _ => {}
    }
    Ok(Resolved::Kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn decode(text: &str) -> Result<Packet, DecodeError> {
        Packet::decode(text, 10).map(|h| h.packet)
    }

    #[test]
    fn decodes_the_spec_examples() {
        assert_eq!(
            decode("0").unwrap(),
            Packet::new(PacketType::Connect, "/", None)
        );
        let p = decode("0/admin,{\"token\":\"123\"}").unwrap();
        assert_eq!(
            (p.nsp.as_str(), p.data),
            ("/admin", Some(json!({"token": "123"})))
        );
        assert_eq!(decode("1/admin,").unwrap().nsp, "/admin");
        let p = decode("2[\"hello\",1]").unwrap();
        assert_eq!(p.data, Some(json!(["hello", 1])));
        let p = decode("2/admin,456[\"project:delete\",123]").unwrap();
        assert_eq!((p.id, p.nsp.as_str()), (Some(456), "/admin"));
        let p = decode("3/admin,456[]").unwrap();
        assert_eq!((p.kind, p.id), (PacketType::Ack, Some(456)));
        let p = decode("4{\"message\":\"Not authorized\"}").unwrap();
        assert_eq!(p.kind, PacketType::ConnectError);
        let h = Packet::decode("51-[\"hello\",{\"_placeholder\":true,\"num\":0}]", 10).unwrap();
        assert_eq!(h.expected_attachments, 1);
        let h = Packet::decode("61-/admin,456[{\"_placeholder\":true,\"num\":0}]", 10).unwrap();
        assert_eq!((h.packet.id, h.packet.nsp.as_str()), (Some(456), "/admin"));
    }

    #[test]
    fn namespace_with_nothing_after_the_comma() {
        let p = decode("0/custom,").unwrap();
        assert_eq!((p.nsp.as_str(), p.data), ("/custom", None));
    }

    #[test]
    fn rejects_invalid_packets() {
        assert_eq!(decode(""), Err(DecodeError::Empty));
        assert_eq!(decode("7"), Err(DecodeError::UnknownType('7')));
        // No payload is well-formed (checked against the official parser): `2`, `212`, `31`.
        assert_eq!(decode("2").unwrap().data, None);
        assert_eq!(decode("212").unwrap().id, Some(12));
        assert_eq!(decode("31").unwrap().data, None);
        assert_eq!(decode("2{}"), Err(DecodeError::InvalidPayload));
        assert_eq!(decode("2[]"), Err(DecodeError::InvalidPayload));
        assert_eq!(decode("2[{}]"), Err(DecodeError::InvalidPayload));
        assert_eq!(
            decode("2[\"disconnect\"]"),
            Err(DecodeError::InvalidPayload)
        );
        assert_eq!(decode("2[\"a\""), Err(DecodeError::InvalidPayload));
        assert_eq!(decode("1{}"), Err(DecodeError::InvalidPayload));
        assert_eq!(decode("0[]"), Err(DecodeError::InvalidPayload));
        assert_eq!(decode("3{}"), Err(DecodeError::InvalidPayload));
        assert_eq!(
            decode("218446744073709551616[\"a\"]"),
            Err(DecodeError::InvalidId)
        );
        assert_eq!(decode("5[\"a\"]"), Err(DecodeError::IllegalAttachments));
        assert_eq!(decode("5x-[\"a\"]"), Err(DecodeError::IllegalAttachments));
        assert_eq!(decode("511-[\"a\"]"), Err(DecodeError::TooManyAttachments));
        assert_eq!(decode("2é"), Err(DecodeError::InvalidPayload));
    }

    #[test]
    fn rejects_what_the_official_parser_rejects() {
        // The list of the official parser's "throw an error upon parsing error" test.
        for text in [
            "442[\"some\",\"data\"",
            "0/admin,\"invalid\"",
            "0[]",
            "1/admin,{}",
            "2/admin,\"invalid",
            "2/admin,{}",
            "2[{\"toString\":\"foo\"}]",
            "2[true,\"foo\"]",
            "2[null,\"bar\"]",
            "2[\"connect\"]",
            "2[\"disconnect\",\"123\"]",
        ] {
            assert_eq!(decode(text), Err(DecodeError::InvalidPayload), "{text}");
        }
        for text in ["5", "51", "5a-", "51.23-"] {
            assert_eq!(decode(text), Err(DecodeError::IllegalAttachments), "{text}");
        }
        assert_eq!(decode("999"), Err(DecodeError::UnknownType('9')));
        assert_eq!(
            DecodeError::UnknownType('x').to_string(),
            "unknown packet type NaN"
        );
        assert_eq!(
            DecodeError::UnknownType('9').to_string(),
            "unknown packet type 9"
        );
    }

    #[test]
    fn floats_round_trip_exactly() {
        // Found by the sio_packet fuzz target: JavaScript parses floats correctly rounded, so must we.
        let p = decode("26[\"q\",5E57,9]").unwrap();
        assert_eq!(decode(&p.encode()).unwrap(), p);
        assert_eq!(p.data.unwrap()[1].as_f64(), Some(5e57));
    }

    #[test]
    fn numeric_event_names_are_allowed() {
        assert!(decode("2[1,2]").is_ok());
    }

    #[test]
    fn collects_attachments() {
        let mut c = BinaryCollector::default();
        let text = "52-[\"x\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]";
        assert_eq!(c.text(text, 10), Ok(Collected::Incomplete));
        assert_eq!(c.text("2[\"y\"]", 10), Err(DecodeError::UnexpectedText));
        assert_eq!(
            c.binary(Bytes::from_static(b"a")),
            Ok(Collected::Incomplete)
        );
        match c.binary(Bytes::from_static(b"b")).unwrap() {
            Collected::Packet(p) => assert_eq!(p.attachments.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.binary(Bytes::new()), Err(DecodeError::UnexpectedBinary));
    }

    #[test]
    fn numbers_are_written_as_javascript_writes_them() {
        let echo = |json: &str| {
            let data = Packet::decode(&format!("2[\"m\",{json}]"), 10)
                .unwrap()
                .packet
                .data;
            Packet::new(PacketType::Event, "/", data).encode()
        };
        for (sent, written) in [
            ("1.0", "1"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("1E+2", "100"),
            ("1.5", "1.5"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("1e20", "100000000000000000000"),
            ("1e21", "1e+21"),
            ("18446744073709551616", "18446744073709552000"),
            ("-12", "-12"),
            // Beyond Number.MAX_SAFE_INTEGER, rounded to a double as JavaScript reads it.
            ("9007199254740991", "9007199254740991"),
            ("9007199254740993", "9007199254740992"),
        ] {
            assert_eq!(echo(sent), format!("2[\"m\",{written}]"), "{sent}");
        }
    }

    #[test]
    fn zero_attachments_are_illegal() {
        let mut c = BinaryCollector::default();
        assert_eq!(
            c.text("50-[\"x\"]", 10),
            Err(DecodeError::IllegalAttachments)
        );
        assert_eq!(
            c.text("60-[\"x\"]", 10),
            Err(DecodeError::IllegalAttachments)
        );
    }

    #[test]
    fn a_lone_surrogate_escape_becomes_the_replacement_character() {
        let decoded = |text: &str| Packet::decode(text, 10).map(|h| h.packet.data.unwrap());
        assert_eq!(
            decoded(r#"2["m","ab\ud83d"]"#),
            Ok(json!(["m", "ab\u{fffd}"]))
        );
        assert_eq!(
            decoded(r#"2["m","\udc00x\ud800"]"#),
            Ok(json!(["m", "\u{fffd}x\u{fffd}"]))
        );
        // A pair stays a pair, an escaped backslash is no escape, keys are strings too.
        assert_eq!(
            decoded(r#"2["m","\ud83d\ude00 \\ud800",{"\udfff":1}]"#),
            Ok(json!(["m", "😀 \\ud800", {"\u{fffd}": 1}]))
        );
        // Still invalid JSON for any other reason.
        assert_eq!(
            decoded(r#"2["m","\ud800]"#),
            Err(DecodeError::InvalidPayload)
        );
        assert_eq!(
            decoded(r#"2["m",\ud800]"#),
            Err(DecodeError::InvalidPayload)
        );
    }

    /// Collects a binary packet whose attachments are the bytes `a`, `b`, ... in order.
    fn collect(text: &str, attachments: usize) -> Result<Packet, DecodeError> {
        let mut c = BinaryCollector::default();
        let mut result = c.text(text, 10)?;
        for n in 0..attachments {
            assert_eq!(result, Collected::Incomplete);
            result = c.binary(Bytes::from(vec![b'a' + n as u8]))?;
        }
        match result {
            Collected::Packet(packet) => Ok(packet),
            Collected::Incomplete => panic!("still collecting"),
        }
    }

    #[test]
    fn placeholders_are_renumbered_in_the_order_the_official_server_writes_them() {
        let p = collect(
            r#"53-["m",{"x":{"_placeholder":true,"num":2}},{"_placeholder":true,"num":0},{"_placeholder":true,"num":2}]"#,
            3,
        )
        .unwrap();
        assert_eq!(
            p.data,
            Some(json!(["m", {"x": {"_placeholder": true, "num": 0}},
                {"_placeholder": true, "num": 1}, {"_placeholder": true, "num": 2}]))
        );
        // `b` named by nobody is dropped; `c` named twice is sent twice
        let bytes: Vec<&[u8]> = p.attachments.iter().map(|b| &b[..]).collect();
        assert_eq!(bytes, [&b"c"[..], b"a", b"c"]);
    }

    #[test]
    fn attachments_no_placeholder_names_are_dropped() {
        let p = collect(r#"52-["m"]"#, 2).unwrap();
        assert_eq!(p.data, Some(json!(["m"])));
        assert!(p.attachments.is_empty());
    }

    #[test]
    fn a_placeholder_num_is_any_json_number_in_range() {
        for num in ["0", "-0", "0.0", "0e5"] {
            let p = collect(
                &format!(r#"51-["m",{{"_placeholder":true,"num":{num}}}]"#),
                1,
            )
            .unwrap();
            assert_eq!(
                p.data,
                Some(json!(["m", {"_placeholder": true, "num": 0}])),
                "{num}"
            );
            assert_eq!(p.attachments.len(), 1);
        }
        // in range but not whole: JavaScript's undefined, null in an array, no key in an object
        let p = collect(
            r#"52-["m",{"_placeholder":true,"num":0.5},{"k":{"_placeholder":true,"num":1e-7},"j":1}]"#,
            2,
        )
        .unwrap();
        assert_eq!(p.data, Some(json!(["m", null, {"j": 1}])));
        assert!(p.attachments.is_empty());
    }

    #[test]
    fn placeholder_out_of_range_is_refused() {
        for num in ["1", "-1", "\"0\"", "null", "1e400"] {
            let text = format!(r#"51-["x",{{"_placeholder":true,"num":{num}}}]"#);
            assert_eq!(collect(&text, 1), Err(DecodeError::BadPlaceholder), "{num}");
        }
        let no_num = r#"51-["x",{"_placeholder":true}]"#;
        assert_eq!(collect(no_num, 1), Err(DecodeError::BadPlaceholder));
    }

    #[test]
    fn object_keys_are_ordered_as_javascript_holds_them() {
        let data = decode(r#"2["m",{"a":1,"10":2,"2":3,"01":4,"-1":5,"4294967295":6,"4294967294":7,"b":{"z":1,"0":2}}]"#)
            .unwrap()
            .data
            .unwrap();
        let keys: Vec<&str> = data[1]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["2", "10", "4294967294", "a", "01", "-1", "4294967295", "b"]
        );
        let inner: Vec<&str> = data[1]["b"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(inner, ["0", "z"]);
        let text = Packet::new(PacketType::Event, "/", Some(data)).encode();
        assert!(text.starts_with(r#"2["m",{"2":3,"10":2,"#), "{text}");
    }

    #[test]
    fn numbers_beyond_a_double_read_as_null() {
        assert_eq!(
            decode(r#"2["m",1e400,-1E+400,[{"a":1e999}],"1e400",2.5]"#)
                .unwrap()
                .data,
            Some(json!(["m", null, null, [{"a": null}], "1e400", 2.5]))
        );
        // both rewrites at once
        assert_eq!(
            decode(r#"2["m","\ud800",1e400]"#).unwrap().data,
            Some(json!(["m", "\u{fffd}", null]))
        );
        assert_eq!(decode(r#"2["m",1e400"#), Err(DecodeError::InvalidPayload));
        assert_eq!(decode(r#"2["m",01]"#), Err(DecodeError::InvalidPayload));
    }

    #[test]
    fn integers_beyond_the_safe_range_read_as_doubles() {
        let data = decode(
            r#"2["m",9007199254740991,9007199254740993,-9007199254740993,12345678901234567890,{"a":[18446744073709551615]},"12345678901234567890"]"#,
        )
        .unwrap()
        .data
        .unwrap();
        assert_eq!(data[1].as_u64(), Some(9_007_199_254_740_991));
        assert_eq!(data[2].as_f64(), Some(9_007_199_254_740_992.0));
        assert!(data[2].as_u64().is_none());
        assert_eq!(data[3].as_f64(), Some(-9_007_199_254_740_992.0));
        let text = Packet::new(PacketType::Event, "/", Some(data)).encode();
        assert_eq!(
            text,
            r#"2["m",9007199254740991,9007199254740992,-9007199254740992,12345678901234567000,{"a":[18446744073709552000]},"12345678901234567890"]"#
        );
    }

    #[test]
    fn deep_nesting_does_not_crash() {
        let deep = format!("2[\"a\",{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(decode(&deep), Err(DecodeError::InvalidPayload));
    }

    fn json_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            // Beyond ±(2⁵³ − 1) integers read as doubles, as in JavaScript.
            (-9_007_199_254_740_991i64..=9_007_199_254_740_991).prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn packet_strategy() -> impl Strategy<Value = Packet> {
        let nsp = prop_oneof![Just("/".to_owned()), "/[a-z0-9-]{1,8}"];
        let id = proptest::option::of(any::<u64>());
        let args = proptest::collection::vec(json_strategy(), 0..4);
        let atts = proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 1..4);
        (nsp, id, "[a-z]{1,8}", args, atts, 0..5u8).prop_map(|(nsp, id, name, args, atts, k)| {
            let mut event = vec![Value::String(name)];
            event.extend(args.clone());
            match k {
                0 => Packet {
                    kind: PacketType::Event,
                    nsp,
                    id,
                    data: Some(Value::Array(event)),
                    attachments: vec![],
                },
                1 => Packet {
                    kind: PacketType::Ack,
                    nsp,
                    id: Some(id.unwrap_or(0)),
                    data: Some(Value::Array(args)),
                    attachments: vec![],
                },
                2 => {
                    let mut data = event;
                    for n in 0..atts.len() {
                        data.push(json!({"_placeholder": true, "num": n}));
                    }
                    Packet {
                        kind: PacketType::BinaryEvent,
                        nsp,
                        id,
                        data: Some(Value::Array(data)),
                        attachments: atts.into_iter().map(Bytes::from).collect(),
                    }
                }
                3 => Packet {
                    kind: PacketType::Connect,
                    nsp,
                    id: None,
                    data: Some(json!({"token": "t"})),
                    attachments: vec![],
                },
                _ => Packet {
                    kind: PacketType::Disconnect,
                    nsp,
                    id: None,
                    data: None,
                    attachments: vec![],
                },
            }
        })
    }

    proptest! {
        #[test]
        fn packets_round_trip(packet in packet_strategy()) {
            let text = packet.encode();
            let mut collector = BinaryCollector::default();
            let mut result = collector.text(&text, 10).unwrap();
            for attachment in &packet.attachments {
                prop_assert_eq!(result, Collected::Incomplete);
                result = collector.binary(attachment.clone()).unwrap();
            }
            prop_assert_eq!(result, Collected::Packet(packet));
        }

        #[test]
        fn any_text_decodes_or_errors(text in "\\PC{0,64}") {
            let _ = Packet::decode(&text, 10);
        }

        #[test]
        fn any_prefix_decodes_or_errors(digit in 0u8..8, rest in "[-0-9/a-z,\\[\\]{}\"]{0,32}") {
            let _ = Packet::decode(&format!("{digit}{rest}"), 10);
        }
    }
}
