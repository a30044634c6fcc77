//! What a socket knows about how it connected.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::SystemTime;

use http::{HeaderMap, Uri};
use serde_json::Value;

/// The handshake of a socket: the HTTP request that opened the connection and the CONNECT auth.
///
/// The request is the connection's own (shared by every namespace of it), not a copy.
#[derive(Debug, Clone)]
pub struct Handshake {
    connection: engineio::Socket,
    /// The CONNECT packet's auth payload (`{}` when the client sent none).
    pub auth: Value,
    /// When the socket connected.
    pub time: SystemTime,
}

impl Handshake {
    pub(crate) fn new(connection: engineio::Socket, auth: Value) -> Self {
        Handshake {
            connection,
            auth,
            time: SystemTime::now(),
        }
    }

    /// The request headers (built as a `HeaderMap` the first time a socket of the connection asks;
    /// [`header`](Self::header) and [`header_bytes`](Self::header_bytes) read them in place).
    pub fn headers(&self) -> &HeaderMap {
        self.connection.request().headers()
    }

    /// A header's (first) value as sent, `name` matched case-insensitively.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.connection.request().header(name)
    }

    /// A header's (first) value as text. Bytes beyond ASCII are read as Latin-1, as Node's HTTP
    /// parser reads them, so a handler sees what the official server's `socket.handshake.headers`
    /// would show.
    pub fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.header_bytes(name).map(latin1)
    }

    /// The decoded value of the first query parameter named `name`.
    pub fn query(&self, name: &str) -> Option<String> {
        self.connection.request().query(name)
    }

    /// Every query parameter, decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.connection.request().query_pairs()
    }

    /// The request URL (path and query).
    pub fn url(&self) -> &Uri {
        &self.connection.request().uri
    }

    /// The peer address.
    pub fn address(&self) -> SocketAddr {
        self.connection.request().remote_addr
    }

    /// Whether the connection was encrypted (TLS terminated by this server; never, for now).
    pub fn secure(&self) -> bool {
        false
    }

    /// Whether the request was cross-origin (it carried a non-empty `Origin` header).
    pub fn xdomain(&self) -> bool {
        self.header_bytes("origin")
            .is_some_and(|origin| !origin.is_empty())
    }
}

/// Bytes read as Latin-1 (each byte is the code point of the same number), borrowed when they are
/// ASCII: how Node turns HTTP header bytes into a string.
///
/// ```
/// assert_eq!(socketio::latin1(b"caf\xe9"), "café");
/// assert_eq!(socketio::latin1("café".as_bytes()), "cafÃ©");
/// ```
pub fn latin1(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.is_ascii() => Cow::Borrowed(text),
        _ => Cow::Owned(bytes.iter().map(|&byte| char::from(byte)).collect()),
    }
}
