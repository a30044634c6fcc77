//! What a socket knows about how it connected.

use std::net::SocketAddr;
use std::time::SystemTime;

use http::HeaderMap;
use serde_json::Value;

/// The handshake of a socket: the HTTP request that opened the connection and the CONNECT auth.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// Request headers.
    pub headers: HeaderMap,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The CONNECT packet's auth payload (`{}` when the client sent none).
    pub auth: Value,
    /// The peer address.
    pub address: SocketAddr,
    /// When the socket connected.
    pub time: SystemTime,
    /// The request URL (path and query).
    pub url: String,
    /// Whether the connection was encrypted (TLS terminated by this server).
    pub secure: bool,
    /// Whether the request was cross-origin (it carried an `Origin` header).
    pub xdomain: bool,
}

impl Handshake {
    pub(crate) fn new(request: &engineio::RequestInfo, auth: Value) -> Self {
        Handshake {
            headers: request.headers.clone(),
            query: request.query_pairs(),
            auth,
            address: request.remote_addr,
            time: SystemTime::now(),
            url: request.uri.to_string(),
            secure: false,
            xdomain: request.headers.contains_key(http::header::ORIGIN),
        }
    }

    /// The first query parameter named `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header as text, when it is valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
