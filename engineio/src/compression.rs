//! HTTP compression of long-polling answers (the official `httpCompression` option).
//!
//! The official server compresses a polling answer of at least `threshold` bytes (1024 by default)
//! with gzip or deflate when the request's `Accept-Encoding` allows one of them. The choice follows
//! the rules of the `negotiator` package the official server uses, so both servers pick the same
//! coding for the same header. Negotiation is pure and unit-tested; compressing is `flate2`'s.

use std::io::Write;

use bytes::Bytes;
use flate2::write::{GzEncoder, ZlibEncoder};

/// Compression of long-polling answers. `Some(HttpCompression::default())` is the official
/// server's default (`httpCompression: { threshold: 1024 }`).
///
/// ```
/// let mut config = engineio::Config::default();
/// assert_eq!(config.http_compression.map(|c| c.threshold), Some(1024));
/// config.http_compression = None; // never compress
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpCompression {
    /// Answers shorter than this many bytes are sent as they are.
    pub threshold: usize,
}

impl Default for HttpCompression {
    fn default() -> Self {
        HttpCompression { threshold: 1024 }
    }
}

impl HttpCompression {
    /// An `HttpCompression` that compresses answers of at least `threshold` bytes.
    pub fn with_threshold(threshold: usize) -> Self {
        HttpCompression { threshold }
    }
}

/// The codings of long-polling answers, the official engine's preference first (never Brotli).
pub(crate) const POLLING_CODINGS: [ContentCoding; 2] =
    [ContentCoding::Gzip, ContentCoding::Deflate];

/// A `Content-Encoding` the server compresses with: gzip or deflate for long-polling answers (as
/// the official engine), Brotli too for static files such as the client bundle (as the official
/// Socket.IO server serves it).
///
/// ```
/// use engineio::ContentCoding;
/// let available = [ContentCoding::Brotli, ContentCoding::Gzip, ContentCoding::Deflate];
/// // The header's order wins at equal quality, then the server's.
/// assert_eq!(ContentCoding::negotiate_among("gzip, deflate, br", &available), Some(ContentCoding::Gzip));
/// assert_eq!(ContentCoding::negotiate_among("*", &available), Some(ContentCoding::Brotli));
/// assert_eq!(ContentCoding::negotiate_among("identity", &available), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContentCoding {
    /// Brotli (RFC 7932), at Node's default quality (11).
    Brotli,
    /// gzip (RFC 1952).
    Gzip,
    /// The zlib format (RFC 1950), which is what HTTP calls `deflate` and what Node's
    /// `zlib.createDeflate` writes.
    Deflate,
}

impl ContentCoding {
    /// The header value.
    pub fn name(self) -> &'static str {
        match self {
            ContentCoding::Brotli => "br",
            ContentCoding::Gzip => "gzip",
            ContentCoding::Deflate => "deflate",
        }
    }

    /// [`negotiate_among`](Self::negotiate_among) for a request's headers: every
    /// `Accept-Encoding` line, read as one joined with `, ` as Node joins them; `None` without
    /// the header (Node then accepts only `identity`).
    pub fn for_request(
        request: &http::HeaderMap,
        available: &[ContentCoding],
    ) -> Option<ContentCoding> {
        let values: Vec<&str> = request
            .get_all(http::header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        match values.as_slice() {
            [] => None,
            [value] => Self::negotiate_among(value, available),
            values => Self::negotiate_among(&values.join(", "), available),
        }
    }

    /// The coding of `available` (the server's list, most preferred first) that the `negotiator`
    /// package (which the official servers use) ranks first for the `Accept-Encoding` value
    /// `accept`, or `None` when none is acceptable. Several header lines are read joined with
    /// `, `; a request without the header accepts none.
    pub fn negotiate_among(accept: &str, available: &[ContentCoding]) -> Option<ContentCoding> {
        let entries: Vec<Accepted<'_>> = accept
            .split(',')
            .enumerate()
            .filter_map(|(index, entry)| Accepted::parse(entry.trim(), index))
            .collect();
        let mut best: Option<(ContentCoding, Priority)> = None;
        for (index, &coding) in available.iter().enumerate() {
            let priority = Priority::of(coding.name(), index, &entries);
            // A quality must be above 0 (NaN is not) to count.
            if priority.q.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            // negotiator sorts with `b.q - a.q || b.s - a.s || a.o - b.o || a.i - b.i`: a negative
            // result puts the candidate (a) before the best so far (b).
            let first = match &best {
                None => true,
                Some((_, b)) => {
                    js_or(&[
                        b.q - priority.q,
                        b.s - priority.s,
                        priority.o - b.o,
                        priority.i - b.i,
                    ]) < 0.0
                }
            };
            if first {
                best = Some((coding, priority));
            }
        }
        best.map(|(coding, _)| coding)
    }

    /// `body` compressed with this coding at Node's default level (zlib 6, Brotli 11). Brotli at
    /// that level takes about a second per megabyte: compress large bodies once, off the
    /// runtime's threads.
    pub fn compress(self, body: &[u8]) -> Bytes {
        // Writing into a Vec cannot fail.
        let out = Vec::with_capacity(body.len() / 4 + 64);
        let level = flate2::Compression::default();
        let compressed = match self {
            ContentCoding::Brotli => {
                let mut encoder = brotli::CompressorWriter::new(out, 4096, 11, 22);
                // `into_inner` ends the stream.
                encoder.write_all(body).map(|()| encoder.into_inner())
            }
            ContentCoding::Gzip => {
                let mut encoder = GzEncoder::new(out, level);
                encoder.write_all(body).and_then(|()| encoder.finish())
            }
            ContentCoding::Deflate => {
                let mut encoder = ZlibEncoder::new(out, level);
                encoder.write_all(body).and_then(|()| encoder.finish())
            }
        };
        Bytes::from(compressed.unwrap_or_default())
    }
}

/// One entry of an `Accept-Encoding` header.
struct Accepted<'a> {
    coding: &'a str,
    /// As JavaScript's `parseFloat` reads the `q` parameter: NaN when it is not a number.
    q: f64,
    /// Position in the header, counting entries that did not parse.
    index: usize,
}

impl<'a> Accepted<'a> {
    /// `coding *( ";" param )`, as negotiator's `/^\s*([^\s;]+)\s*(?:;(.*))?$/` takes it.
    fn parse(entry: &'a str, index: usize) -> Option<Self> {
        let (head, params) = match entry.split_once(';') {
            Some((head, params)) => (head, Some(params)),
            None => (entry, None),
        };
        let coding = head.trim_end();
        if coding.is_empty() || coding.contains(char::is_whitespace) {
            return None;
        }
        let mut q = 1.0;
        if let Some(params) = params {
            if let Some(value) = params
                .split(';')
                .map(|param| param.trim().split('='))
                .find_map(|mut parts| (parts.next() == Some("q")).then(|| parts.next()))
            {
                q = js_parse_float(value.unwrap_or(""));
            }
        }
        Some(Accepted { coding, q, index })
    }
}

/// How well one coding is accepted: negotiator's `{ q, s, o, i }` as numbers.
struct Priority {
    q: f64,
    /// 1 for an entry naming the coding, 0 for `*`.
    s: f64,
    /// Position of the matching entry in the header.
    o: f64,
    /// Position of the coding in the server's own list (gzip first).
    i: f64,
}

impl Priority {
    fn of(coding: &str, server_index: usize, entries: &[Accepted<'_>]) -> Priority {
        let mut best = Priority {
            q: 0.0,
            s: 0.0,
            o: -1.0,
            i: server_index as f64,
        };
        for entry in entries {
            let s = if entry.coding.eq_ignore_ascii_case(coding) {
                1.0
            } else if entry.coding == "*" {
                0.0
            } else {
                continue;
            };
            let o = entry.index as f64;
            // negotiator keeps the entry for which `best.s - s || best.q - q || best.o - o` < 0.
            if js_or(&[best.s - s, best.q - entry.q, best.o - o]) < 0.0 {
                best = Priority {
                    q: entry.q,
                    s,
                    o,
                    i: server_index as f64,
                };
            }
        }
        best
    }
}

/// JavaScript's `a || b || … || z` over numbers: the first that is neither 0 nor NaN, else the last.
fn js_or(values: &[f64]) -> f64 {
    let (last, rest) = values.split_last().unwrap_or((&0.0, &[]));
    rest.iter()
        .copied()
        .find(|v| *v != 0.0 && !v.is_nan())
        .unwrap_or(*last)
}

/// JavaScript's `parseFloat`: the longest prefix (after leading whitespace) that reads as a
/// decimal number, `Infinity` included; NaN when there is none.
fn js_parse_float(text: &str) -> f64 {
    let text = text.trim_start();
    let bytes = text.as_bytes();
    let mut end = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        end = 1;
    }
    if text[end..].starts_with("Infinity") {
        return if text.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let int_digits = digits(end);
    end += int_digits;
    let mut frac_digits = 0;
    if bytes.get(end) == Some(&b'.') {
        frac_digits = digits(end + 1);
        if int_digits > 0 || frac_digits > 0 {
            end += 1 + frac_digits;
        }
    }
    if int_digits == 0 && frac_digits == 0 {
        return f64::NAN;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exp_end = end + 1;
        if matches!(bytes.get(exp_end), Some(b'+' | b'-')) {
            exp_end += 1;
        }
        let exp_digits = digits(exp_end);
        if exp_digits > 0 {
            end = exp_end + exp_digits;
        }
    }
    text[..end].parse().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pick(accept: &str) -> Option<&'static str> {
        ContentCoding::negotiate_among(accept, &POLLING_CODINGS).map(ContentCoding::name)
    }

    #[test]
    fn negotiation_matches_the_official_server() {
        // Each pair was checked against engine.io 6.6 (accepts / negotiator).
        assert_eq!(pick("gzip"), Some("gzip"));
        assert_eq!(pick("GZIP"), Some("gzip"));
        assert_eq!(pick("deflate, gzip"), Some("deflate"));
        assert_eq!(pick("gzip, deflate, br, zstd"), Some("gzip"));
        assert_eq!(pick("gzip;q=0.5, deflate"), Some("deflate"));
        assert_eq!(pick("*"), Some("gzip"));
        assert_eq!(pick("br"), None);
        assert_eq!(pick("gzip;q=0"), None);
        assert_eq!(pick("identity"), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick("x-gzip"), None);
    }

    #[test]
    fn negotiation_among_three_codings_matches_the_official_server() {
        // The official server's client files: accepts(req).encodings(["br", "gzip", "deflate"]).
        let all = [
            ContentCoding::Brotli,
            ContentCoding::Gzip,
            ContentCoding::Deflate,
        ];
        let pick = |accept| ContentCoding::negotiate_among(accept, &all).map(ContentCoding::name);
        assert_eq!(pick("gzip, deflate, br, zstd"), Some("gzip"));
        assert_eq!(pick("deflate, gzip, br, zstd"), Some("deflate"));
        assert_eq!(pick("br, gzip"), Some("br"));
        assert_eq!(pick("gzip;q=0.8, br"), Some("br"));
        assert_eq!(pick("*"), Some("br"));
        assert_eq!(pick("*, br;q=0"), Some("gzip"));
        assert_eq!(pick("identity, zstd"), None);
        assert_eq!(pick(""), None);
        // Polling answers never use Brotli.
        assert_eq!(
            ContentCoding::negotiate_among("br, gzip", &POLLING_CODINGS).map(ContentCoding::name),
            Some("gzip")
        );
    }

    #[test]
    fn brotli_output_decompresses_to_the_input() {
        let body = b"0{\"sid\":\"abc\"}".repeat(200);
        let compressed = ContentCoding::Brotli.compress(&body);
        assert!(compressed.len() < body.len() / 10);
        let mut out = Vec::new();
        brotli::Decompressor::new(&compressed[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn an_exact_name_outranks_the_wildcard_whatever_the_quality() {
        assert_eq!(pick("gzip;q=0, *"), Some("deflate"));
        assert_eq!(pick("*;q=0.1, gzip;q=0.2"), Some("gzip"));
        assert_eq!(pick("*, gzip;q=0.5"), Some("deflate"));
    }

    #[test]
    fn odd_quality_values_read_as_parse_float_reads_them() {
        assert_eq!(pick("gzip;q=abc, deflate"), Some("deflate"));
        assert_eq!(pick("gzip;q=0.9xyz, deflate;q=0.8"), Some("gzip"));
        assert_eq!(pick("gzip;q=1e-1, deflate;q=.05"), Some("gzip"));
        assert_eq!(pick("gzip; level=1; q=0.3, deflate;q=0.4"), Some("deflate"));
        assert_eq!(pick("gzip ;q=0"), None);
        assert_eq!(pick("g zip, deflate"), Some("deflate"));
        assert!(js_parse_float("-Infinity").is_infinite());
        assert!(js_parse_float(".").is_nan());
        assert_eq!(js_parse_float("5."), 5.0);
        assert_eq!(js_parse_float("2e"), 2.0);
    }

    /// Header-like text: codings, parameters and separators in any order, with stray characters.
    fn header_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let token = prop_oneof![
            Just("gzip".to_owned()),
            Just("GZip".to_owned()),
            Just("deflate".to_owned()),
            Just("*".to_owned()),
            Just("br".to_owned()),
            Just(";q=".to_owned()),
            Just("q".to_owned()),
            Just(",".to_owned()),
            Just(";".to_owned()),
            Just("=".to_owned()),
            Just(" ".to_owned()),
            Just("Infinity".to_owned()),
            "[-+.eE0-9]{1,4}",
            "\\PC",
        ];
        proptest::collection::vec(token, 0..16).prop_map(|tokens| tokens.concat())
    }

    proptest::proptest! {
        /// Any header reads without a panic, and a coding is only chosen when the header names it
        /// or `*`.
        #[test]
        fn any_header_negotiates_without_panicking(accept in header_text()) {
            let chosen = ContentCoding::negotiate_among(&accept, &POLLING_CODINGS);
            let lower = accept.to_ascii_lowercase();
            if chosen.is_some() {
                proptest::prop_assert!(
                    lower.contains("gzip") || lower.contains("deflate") || accept.contains('*')
                );
            }
            let _ = js_parse_float(&accept);
        }
    }

    #[test]
    fn compressed_bodies_decompress_to_the_original() {
        let body = "4hello world ".repeat(200);
        let gzip = ContentCoding::Gzip.compress(body.as_bytes());
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, body);
        assert!(gzip.len() < body.len() / 10);
        let deflate = ContentCoding::Deflate.compress(body.as_bytes());
        let mut out = String::new();
        flate2::read::ZlibDecoder::new(&deflate[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
