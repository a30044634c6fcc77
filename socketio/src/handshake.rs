//! What a socket knows about how it connected.

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

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.connection.request().headers
    }

    /// A header as text, when it is valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().get(name).and_then(|v| v.to_str().ok())
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
        self.headers()
            .get(http::header::ORIGIN)
            .is_some_and(|origin| !origin.is_empty())
    }
}
