//! What the handshake request said: headers, query, peer address.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::SystemTime;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};

/// The HTTP request that opened a session.
///
/// A session keeps it for its whole life, and most never look at its headers again, so they are
/// kept packed in one allocation: [`header`](Self::header) and [`header_entries`](Self::header_entries)
/// read them in place, and [`headers`](Self::headers) builds a `HeaderMap` the first time it is
/// asked for.
///
/// ```
/// # use engineio::RequestInfo;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("user-agent", "test".parse().unwrap());
/// let info = RequestInfo::new(
///     &http::Method::GET,
///     &"/engine.io/?EIO=4&x=a%20b".parse().unwrap(),
///     &headers,
///     "127.0.0.1:1".parse().unwrap(),
/// );
/// assert_eq!(info.header("User-Agent"), Some(&b"test"[..]));
/// assert_eq!(info.headers()["user-agent"], "test");
/// assert_eq!(info.query("x").as_deref(), Some("a b"));
/// ```
#[derive(Clone)]
pub struct RequestInfo {
    /// The request method (always `GET` for a handshake).
    pub method: Method,
    /// The request URI, path and query.
    pub uri: Uri,
    /// The address of the peer of the TCP connection.
    pub remote_addr: SocketAddr,
    /// When the handshake happened.
    pub time: SystemTime,
    /// Every header in `HeaderMap` order, each as `name length, value length` (u32, little endian),
    /// then the name (lowercase, as `HeaderName` keeps it), then the value.
    packed: Box<[u8]>,
    /// The `HeaderMap` view, built on first use.
    map: OnceLock<Box<HeaderMap>>,
}

impl RequestInfo {
    /// A copy of a request head that owns its bytes, stamped with the current time.
    ///
    /// hyper hands out header values and the URI as slices of its connection read buffer (8 KiB or
    /// more); keeping those slices would keep that whole buffer alive for every session.
    pub fn new(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        remote_addr: SocketAddr,
    ) -> RequestInfo {
        RequestInfo {
            method: method.clone(),
            uri: Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone()),
            remote_addr,
            time: SystemTime::now(),
            packed: pack(headers),
            map: OnceLock::new(),
        }
    }

    /// The first value of the header `name` (matched case-insensitively), as sent.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_entries()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// Every value of the header `name` (matched case-insensitively), in request order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.header_entries()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// Every header as (lowercase name, value), in the order of the `HeaderMap` hyper parsed them
    /// into: names in order of first appearance, a repeated name's values together, in order.
    pub fn header_entries(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        Unpacked { rest: &self.packed }
    }

    /// The request headers as a `HeaderMap`, built the first time it is asked for and kept.
    pub fn headers(&self) -> &HeaderMap {
        self.map.get_or_init(|| {
            let mut map = HeaderMap::with_capacity(self.header_entries().count());
            for (name, value) in self.header_entries() {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_bytes(value),
                ) {
                    map.append(name, value);
                }
            }
            Box::new(map)
        })
    }

    /// The decoded value of the first query parameter named `name`.
    pub fn query(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.uri.query()?.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Every query parameter, decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

impl std::fmt::Debug for RequestInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<_> = self
            .header_entries()
            .map(|(name, value)| (name, String::from_utf8_lossy(value)))
            .collect();
        f.debug_struct("RequestInfo")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("headers", &headers)
            .field("remote_addr", &self.remote_addr)
            .field("time", &self.time)
            .finish()
    }
}

/// One allocation holding every header (see [`RequestInfo::packed`]).
fn pack(headers: &HeaderMap) -> Box<[u8]> {
    let size = headers
        .iter()
        .map(|(name, value)| 8 + name.as_str().len() + value.len())
        .sum();
    let mut packed = Vec::with_capacity(size);
    for (name, value) in headers {
        // hyper's head limit keeps every length far below 4 GiB.
        let (Ok(name_len), Ok(value_len)) = (
            u32::try_from(name.as_str().len()),
            u32::try_from(value.len()),
        ) else {
            continue;
        };
        packed.extend_from_slice(&name_len.to_le_bytes());
        packed.extend_from_slice(&value_len.to_le_bytes());
        packed.extend_from_slice(name.as_str().as_bytes());
        packed.extend_from_slice(value.as_bytes());
    }
    packed.into_boxed_slice()
}

/// Walks packed headers; stops at the end (or at anything malformed, which `pack` never writes).
struct Unpacked<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Unpacked<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let length = |at: usize| -> Option<usize> {
            let bytes: [u8; 4] = self.rest.get(at..at + 4)?.try_into().ok()?;
            usize::try_from(u32::from_le_bytes(bytes)).ok()
        };
        let name_len = length(0)?;
        let value_len = length(4)?;
        let name_end = 8usize.checked_add(name_len)?;
        let value_end = name_end.checked_add(value_len)?;
        let name = std::str::from_utf8(self.rest.get(8..name_end)?).ok()?;
        let value = self.rest.get(name_end..value_end)?;
        self.rest = &self.rest[value_end..];
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(headers: &[(&str, &[u8])]) -> RequestInfo {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        RequestInfo::new(
            &Method::GET,
            &"/engine.io/?EIO=4".parse().unwrap(),
            &map,
            "127.0.0.1:1".parse().unwrap(),
        )
    }

    #[test]
    fn headers_keep_their_values_and_order() {
        let request = info(&[
            ("x-custom", b"one"),
            ("user-agent", b"caf\xe9"),
            ("x-custom", b"two"),
            ("empty", b""),
        ]);
        assert_eq!(request.header("X-Custom"), Some(&b"one"[..]));
        assert_eq!(request.header("user-agent"), Some(&b"caf\xe9"[..]));
        assert_eq!(request.header("empty"), Some(&b""[..]));
        assert_eq!(request.header("missing"), None);
        let all: Vec<_> = request.header_values("x-custom").collect();
        assert_eq!(all, [&b"one"[..], b"two"]);
        let names: Vec<_> = request.header_entries().map(|(name, _)| name).collect();
        // HeaderMap groups a repeated name's values under its first position.
        assert_eq!(names, ["x-custom", "x-custom", "user-agent", "empty"]);
    }

    #[test]
    fn the_header_map_view_matches_the_packed_headers() {
        let request = info(&[("x-custom", b"one"), ("x-custom", b"two"), ("host", b"h")]);
        let map = request.headers();
        assert_eq!(map.len(), 3);
        let custom: Vec<_> = map.get_all("x-custom").iter().collect();
        assert_eq!(custom, ["one", "two"]);
        assert_eq!(map["host"], "h");
        // Built once, then kept.
        assert!(std::ptr::eq(map, request.headers()));
        let copy = request.clone();
        assert_eq!(copy.headers()["host"], "h");
    }

    #[test]
    fn no_headers_at_all() {
        let request = info(&[]);
        assert_eq!(request.header_entries().count(), 0);
        assert!(request.headers().is_empty());
    }
}
