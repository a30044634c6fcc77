//! WebSocket compression: the `permessage-deflate` extension (RFC 7692), the official server's
//! `perMessageDeflate` option. Pure: header bytes in, a decision out; message bytes in, message
//! bytes out.
//!
//! This server accepts an offer with `server_no_context_takeover; client_no_context_takeover`:
//! every message is compressed on its own, in both directions. A connection then keeps no
//! compression state between messages (the official server keeps two zlib contexts per connection,
//! hundreds of KiB), and one thread-local compressor and decompressor serve every connection.
//!
//! ```
//! use engineio::deflate::{compress, inflate, negotiate, Negotiation};
//!
//! let offer = b"permessage-deflate; client_max_window_bits";
//! assert_eq!(negotiate([&offer[..]]), Ok(Negotiation::Accept));
//!
//! let message = "4".repeat(2000);
//! let compressed = compress(message.as_bytes()).expect("repetitive text shrinks");
//! assert!(compressed.len() < 100);
//! assert_eq!(inflate(&compressed, 1_000_000).unwrap(), message.as_bytes());
//! ```

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Compression of WebSocket messages. `Some(PerMessageDeflate::default())` is the official server's
/// `perMessageDeflate: true` (messages of 1024 bytes or more are compressed).
///
/// ```
/// let deflate = engineio::PerMessageDeflate::new(4096);
/// assert_eq!(deflate.threshold, 4096);
/// assert_eq!(engineio::PerMessageDeflate::default().threshold, 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PerMessageDeflate {
    /// Messages shorter than this many bytes leave uncompressed (default 1024, as the official
    /// server).
    pub threshold: usize,
}

impl Default for PerMessageDeflate {
    fn default() -> Self {
        PerMessageDeflate { threshold: 1024 }
    }
}

impl PerMessageDeflate {
    /// Compression of the messages of at least `threshold` bytes.
    pub fn new(threshold: usize) -> Self {
        PerMessageDeflate { threshold }
    }
}

/// The `Sec-WebSocket-Extensions` value of a `101` that accepts an offer.
pub const RESPONSE: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// What to do with a client's `Sec-WebSocket-Extensions` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// Use `permessage-deflate`; answer with [`RESPONSE`].
    Accept,
    /// Go on without compression: no offer, or none this server can honour (an offer that limits
    /// the server's window below 32 KiB, which the compressor cannot do).
    Decline,
}

/// The `Sec-WebSocket-Extensions` header is not a valid list, or a `permessage-deflate` offer in it
/// has an unknown, repeated or malformed parameter. The official server answers such a handshake
/// `400 Invalid or unacceptable Sec-WebSocket-Extensions header`, and so does this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid Sec-WebSocket-Extensions header: {0}")]
pub struct InvalidExtensions(&'static str);

/// Decides on compression from every `Sec-WebSocket-Extensions` line of a handshake. Offers of
/// other extensions are read (they must be well-formed) and ignored.
pub fn negotiate<'a>(
    header_lines: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Negotiation, InvalidExtensions> {
    let mut decision = Negotiation::Decline;
    for line in header_lines {
        for offer in parse_list(line)? {
            if offer.name != b"permessage-deflate" {
                continue;
            }
            // Every offer is checked (a malformed one is refused even after a good one).
            if check_deflate_offer(&offer.params)? {
                decision = Negotiation::Accept;
            }
        }
    }
    Ok(decision)
}

/// Checks one `permessage-deflate` offer's parameters (RFC 7692 §7.1); true when this server can
/// accept it.
fn check_deflate_offer(params: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<bool, InvalidExtensions> {
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut acceptable = true;
    for (name, value) in params {
        if seen.contains(&name.as_slice()) {
            return Err(InvalidExtensions(
                "a permessage-deflate parameter is repeated",
            ));
        }
        seen.push(name);
        match (name.as_slice(), value.as_deref()) {
            (b"server_no_context_takeover" | b"client_no_context_takeover", None) => {}
            (b"client_max_window_bits", None) => {}
            (b"client_max_window_bits", Some(bits)) => {
                window_bits(bits)?;
            }
            (b"server_max_window_bits", Some(bits)) => {
                // The compressor always uses a 32 KiB window: a smaller one cannot be promised.
                acceptable &= window_bits(bits)? == 15;
            }
            _ => {
                return Err(InvalidExtensions(
                    "unknown or malformed permessage-deflate parameter",
                ))
            }
        }
    }
    Ok(acceptable)
}

/// A window size parameter: a number from 8 to 15, read as the official server reads it (with
/// JavaScript's `Number`: `10`, `010`, `10.0`, `1e1` and `0xa` are all 10).
fn window_bits(value: &[u8]) -> Result<u8, InvalidExtensions> {
    let text = std::str::from_utf8(value).unwrap_or_default();
    let radix = match text.get(..2) {
        Some("0x" | "0X") => Some(16),
        Some("0o" | "0O") => Some(8),
        Some("0b" | "0B") => Some(2),
        _ => None,
    };
    let number = match radix {
        Some(radix) => u64::from_str_radix(&text[2..], radix)
            .ok()
            .map(|n| n as f64),
        // Rust's float syntax is JavaScript's for these characters, except the spelled-out
        // infinities and NaN, which are out of range either way.
        None => text.parse::<f64>().ok(),
    };
    match number {
        Some(n) if n.fract() == 0.0 && (8.0..=15.0).contains(&n) => Ok(n as u8),
        _ => Err(InvalidExtensions("window bits outside 8..=15")),
    }
}

/// One extension of a `Sec-WebSocket-Extensions` list with its parameters.
struct Offer {
    name: Vec<u8>,
    params: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Parses a list of `extension *( ";" param [ "=" (token / quoted-string) ] )` elements separated
/// by commas (RFC 6455 §9.1), as strictly as the official server (`ws`) does: no empty element,
/// whitespace only before and after separators, none around `=`.
fn parse_list(line: &[u8]) -> Result<Vec<Offer>, InvalidExtensions> {
    // The HTTP parser has already taken whitespace off both ends of the value.
    let mut rest = line.trim_ascii();
    let mut offers = Vec::new();
    loop {
        let (name, after) = token(rest)?;
        rest = after.trim_ascii_start();
        let mut offer = Offer {
            name: name.to_vec(),
            params: Vec::new(),
        };
        while let Some(after) = rest.strip_prefix(b";") {
            let (param, after) = token(after.trim_ascii_start())?;
            let value = match after.strip_prefix(b"=") {
                Some(after) => {
                    let (value, after) = value(after)?;
                    rest = after;
                    Some(value)
                }
                None => {
                    rest = after;
                    None
                }
            };
            rest = rest.trim_ascii_start();
            offer.params.push((param.to_vec(), value));
        }
        offers.push(offer);
        match rest.split_first() {
            None => return Ok(offers),
            Some((b',', after)) => rest = after.trim_ascii_start(),
            Some(_) => return Err(InvalidExtensions("unexpected character")),
        }
    }
}

/// A byte of an HTTP token (RFC 9110 §5.6.2): visible ASCII other than the separators. Also what
/// a WebSocket subprotocol name is made of.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

/// A non-empty token at the start of `input`, and what follows it.
fn token(input: &[u8]) -> Result<(&[u8], &[u8]), InvalidExtensions> {
    let end = input
        .iter()
        .position(|b| !is_token_byte(*b))
        .unwrap_or(input.len());
    if end == 0 {
        return Err(InvalidExtensions("a token was expected"));
    }
    Ok(input.split_at(end))
}

/// A parameter value: a token, or a quoted string of token characters, each of which may be
/// escaped with a backslash (RFC 6455 §9.1).
fn value(input: &[u8]) -> Result<(Vec<u8>, &[u8]), InvalidExtensions> {
    let Some(quoted) = input.strip_prefix(b"\"") else {
        let (value, rest) = token(input)?;
        return Ok((value.to_vec(), rest));
    };
    let mut content = Vec::new();
    let mut bytes = quoted.iter().enumerate();
    while let Some((i, &b)) = bytes.next() {
        let b = match b {
            b'"' if !content.is_empty() => return Ok((content, &quoted[i + 1..])),
            b'\\' => match bytes.next() {
                Some((_, &escaped)) => escaped,
                None => break,
            },
            b => b,
        };
        if !is_token_byte(b) {
            return Err(InvalidExtensions("a quoted value must hold a token"));
        }
        content.push(b);
    }
    Err(InvalidExtensions("unterminated quoted string"))
}

/// The four bytes a sync flush ends with; RFC 7692 §7.2.1 takes them off the wire.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

thread_local! {
    // Each message is compressed on its own, so one compressor per thread serves every connection.
    static COMPRESSOR: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), false));
    static DECOMPRESSOR: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// The payload of a compressed frame carrying `message`, or `None` when compressing does not make
/// it smaller (the message then leaves as it is: RFC 7692 lets each message choose).
pub fn compress(message: &[u8]) -> Option<Bytes> {
    COMPRESSOR.with(|compressor| {
        let mut compressor = compressor.borrow_mut();
        compressor.reset();
        // Room for a result smaller than the message, tail included: a compressor that fills it
        // would not have made the message smaller.
        let mut out = Vec::with_capacity(message.len() + TAIL.len());
        let before = compressor.total_in();
        compressor
            .compress_vec(message, &mut out, FlushCompress::Sync)
            .ok()?;
        let complete = compressor.total_in() - before == message.len() as u64
            && out.len() < out.capacity()
            && out.ends_with(&TAIL);
        if !complete {
            return None;
        }
        out.truncate(out.len() - TAIL.len());
        (out.len() < message.len()).then(|| Bytes::from(out))
    })
}

/// How many recent results each thread keeps: a receiver may take several queued packets of one
/// burst before the next receiver takes the same ones.
const SHARED_CACHE: usize = 8;

/// The last messages compressed on a thread, each with its result.
struct SharedCache {
    entries: Vec<(Bytes, Option<Bytes>)>,
    /// The entry replaced next.
    next: usize,
}

thread_local! {
    // A broadcast hands the same shared buffer to every receiver, and each message being
    // compressed on its own, one compression serves them all. Holding a buffer keeps its address
    // from being reused for other bytes.
    static SHARED: RefCell<SharedCache> = const {
        RefCell::new(SharedCache { entries: Vec::new(), next: 0 })
    };
}

/// [`compress`] for a shared buffer: a buffer compressed again on this thread soon after (for the
/// next receiver of a broadcast) reuses the result instead of being compressed again.
///
/// ```
/// let packet = bytes::Bytes::from("4".repeat(5000));
/// let first = engineio::deflate::compress_shared(&packet).unwrap();
/// let second = engineio::deflate::compress_shared(&packet.clone()).unwrap();
/// assert_eq!(first.as_ptr(), second.as_ptr());
/// ```
pub fn compress_shared(message: &Bytes) -> Option<Bytes> {
    SHARED.with(|cache| {
        let mut cache = cache.borrow_mut();
        // Same address and length of a buffer still held: the same immutable bytes.
        let hit = cache.entries.iter().find(|(original, _)| {
            original.as_ptr() == message.as_ptr() && original.len() == message.len()
        });
        if let Some((_, compressed)) = hit {
            return compressed.clone();
        }
        let compressed = compress(message);
        let entry = (message.clone(), compressed.clone());
        if cache.entries.len() < SHARED_CACHE {
            cache.entries.push(entry);
        } else {
            let next = cache.next;
            cache.entries[next] = entry;
            cache.next = (next + 1) % SHARED_CACHE;
        }
        compressed
    })
}

/// Why a compressed message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InflateError {
    /// The message would be larger than the limit once decompressed.
    #[error("decompressed message larger than the limit")]
    TooBig,
    /// The bytes are not valid deflate data.
    #[error("invalid deflate data")]
    Corrupt,
}

/// The message a compressed frame payload holds, refused past `limit` bytes without decompressing
/// further (a small message may expand a thousandfold).
pub fn inflate(payload: &[u8], limit: usize) -> Result<Bytes, InflateError> {
    DECOMPRESSOR.with(|decompressor| {
        let mut decompressor = decompressor.borrow_mut();
        decompressor.reset(false);
        let input = [payload, &TAIL[..]].concat();
        let mut consumed = 0;
        let mut out: Vec<u8> =
            Vec::with_capacity(payload.len().saturating_mul(4).min(limit).saturating_add(1));
        loop {
            if out.len() == out.capacity() {
                // Grow by doubling, never past one byte over the limit (enough to see it).
                let room = out.len().max(4096).min(limit.saturating_add(1) - out.len());
                out.reserve_exact(room);
            }
            let (in_before, out_before) = (decompressor.total_in(), out.len());
            let status = decompressor
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            consumed += (decompressor.total_in() - in_before) as usize;
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            let room_left = out.len() < out.capacity();
            match status {
                // A final block (RFC 7692 allows one): only the appended tail may follow it.
                Status::StreamEnd if consumed >= payload.len() => return Ok(Bytes::from(out)),
                Status::StreamEnd => return Err(InflateError::Corrupt),
                // Every byte read and output space to spare: nothing is held back.
                _ if consumed == input.len() && room_left => return Ok(Bytes::from(out)),
                _ if room_left
                    && decompressor.total_in() == in_before
                    && out.len() == out_before =>
                {
                    return Err(InflateError::Corrupt)
                }
                _ => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decide(header: &str) -> Result<Negotiation, InvalidExtensions> {
        negotiate([header.as_bytes()])
    }

    #[test]
    fn accepts_what_browsers_and_node_clients_offer() {
        for offer in [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate",
            "permessage-deflate;client_max_window_bits=10;server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=15",
            "permessage-deflate; client_max_window_bits=\"12\"",
            "permessage-deflate; client_max_window_bits=\"1\\2\"",
            "permessage-deflate; client_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=0xa ; server_max_window_bits=15.0",
            "x-webkit-deflate-frame, permessage-deflate",
            " permessage-deflate ,x ",
            "permessage-deflate ; client_max_window_bits ,x;a=b",
        ] {
            assert_eq!(decide(offer), Ok(Negotiation::Accept), "{offer}");
        }
    }

    #[test]
    fn declines_without_an_offer_it_can_honour() {
        assert_eq!(decide("x-other; a=1"), Ok(Negotiation::Decline));
        assert_eq!(
            decide("permessage-deflate; server_max_window_bits=10"),
            Ok(Negotiation::Decline)
        );
        // A later offer the server can honour is taken.
        assert_eq!(
            decide("permessage-deflate; server_max_window_bits=9, permessage-deflate"),
            Ok(Negotiation::Accept)
        );
        assert_eq!(negotiate(std::iter::empty()), Ok(Negotiation::Decline));
    }

    #[test]
    fn refuses_malformed_offers_as_the_official_server() {
        for offer in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=10.5",
            "permessage-deflate; client_max_window_bits=inf",
            "permessage-deflate; client_max_window_bits = 10",
            "permessage-deflate; client_max_window_bits=\"\"",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; unknown_param",
            "permessage-deflate; client_max_window_bits=\"1 0\"",
            "permessage-deflate; client_max_window_bits=\"10",
            "permessage-deflate;",
            "permessage deflate",
            "permessage-deflate x",
            ";",
            "",
            ", permessage-deflate",
            "permessage-deflate,",
            "permessage-deflate,,x",
        ] {
            assert!(decide(offer).is_err(), "{offer}");
        }
        // Every line counts, even after an acceptable offer.
        assert!(negotiate([&b"permessage-deflate"[..], b"permessage-deflate; x"]).is_err());
    }

    #[test]
    fn compressed_payloads_lack_the_sync_tail_and_inflate_back() {
        let message = br#"42["chat",{"text":"hello hello hello hello hello hello hello"}]"#;
        let compressed = compress(message).unwrap();
        assert!(!compressed.ends_with(&TAIL));
        assert_eq!(inflate(&compressed, 1000).unwrap(), &message[..]);
    }

    #[test]
    fn a_shared_buffer_is_compressed_once_and_a_new_one_again() {
        let a = Bytes::from("a".repeat(3000));
        let b = Bytes::from("b".repeat(3000));
        let first = compress_shared(&a).unwrap();
        assert_eq!(
            compress_shared(&a.clone()).unwrap().as_ptr(),
            first.as_ptr()
        );
        let other = compress_shared(&b).unwrap();
        // Both are remembered: a receiver takes several packets before the next one takes them.
        assert_eq!(compress_shared(&a).unwrap().as_ptr(), first.as_ptr());
        assert_eq!(compress_shared(&b).unwrap().as_ptr(), other.as_ptr());
        assert_eq!(inflate(&other, 3000).unwrap(), b);
        // The same content in another buffer is compressed again, to the same bytes.
        let copy = Bytes::from("a".repeat(3000));
        let again = compress_shared(&copy).unwrap();
        assert_ne!(again.as_ptr(), first.as_ptr());
        assert_eq!(again, first);
        // A slice at the same address but shorter is another message.
        assert_eq!(
            inflate(&compress_shared(&copy.slice(..2000)).unwrap(), 2000)
                .unwrap()
                .len(),
            2000
        );
    }

    #[test]
    fn incompressible_messages_stay_as_they_are() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                // xorshift64: bytes with no pattern deflate could use.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect();
        assert_eq!(compress(&noise), None);
        assert_eq!(compress(b""), None);
        assert_eq!(compress(b"4"), None);
    }

    #[test]
    fn a_small_payload_that_expands_past_the_limit_is_refused() {
        let bomb = compress(&vec![b'a'; 10_000_000]).unwrap();
        assert!(bomb.len() < 20_000);
        assert_eq!(inflate(&bomb, 1_000_000), Err(InflateError::TooBig));
        assert_eq!(inflate(&bomb, 10_000_000).unwrap().len(), 10_000_000);
        assert_eq!(inflate(&bomb, 9_999_999), Err(InflateError::TooBig));
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        assert_eq!(inflate(&[0xff; 64], 1000), Err(InflateError::Corrupt));
        // A stored block announcing more bytes than follow: what there is comes out (the tail
        // taken as data), as from any inflater fed a truncated stream; never more than the limit.
        let truncated = inflate(&[0x00, 0x10, 0x00, 0xef, 0xff, b'a'], 1000).unwrap();
        assert_eq!(truncated, &b"a\x00\x00\xff\xff"[..]);
        assert_eq!(
            inflate(&[0x00, 0x10, 0x00, 0xef, 0xff, b'a'], 2),
            Err(InflateError::TooBig)
        );
    }

    #[test]
    fn a_final_block_is_accepted() {
        // "a" as a fixed-Huffman final block (what a compressor's finish writes).
        let mut raw = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(64);
        raw.compress_vec(b"abcabcabc", &mut out, FlushCompress::Finish)
            .unwrap();
        assert_eq!(inflate(&out, 100).unwrap(), &b"abcabcabc"[..]);
    }

    proptest! {
        #[test]
        fn compress_then_inflate_is_identity(message in proptest::collection::vec(any::<u8>(), 0..5000), repeat in 1usize..20) {
            let message = message.repeat(repeat);
            if let Some(compressed) = compress(&message) {
                prop_assert!(compressed.len() < message.len());
                prop_assert_eq!(inflate(&compressed, message.len()).unwrap(), &message[..]);
            }
        }

        #[test]
        fn any_bytes_inflate_or_fail_within_the_limit(payload in proptest::collection::vec(any::<u8>(), 0..2000)) {
            if let Ok(message) = inflate(&payload, 10_000) {
                prop_assert!(message.len() <= 10_000);
            }
        }
    }
}
