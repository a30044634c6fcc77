//! What the handshake request said: headers, query, peer address.

use std::net::SocketAddr;

use http::{HeaderMap, Method, Uri};

/// The HTTP request that opened a session.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The request method (always `GET` for a handshake).
    pub method: Method,
    /// The request URI, path and query.
    pub uri: Uri,
    /// The request headers.
    pub headers: HeaderMap,
    /// The address of the peer of the TCP connection.
    pub remote_addr: SocketAddr,
    /// When the handshake happened.
    pub time: std::time::SystemTime,
}

impl RequestInfo {
    /// The decoded value of the first query parameter named `name`.
    ///
    /// ```
    /// # use engineio::RequestInfo;
    /// let info = RequestInfo {
    ///     method: http::Method::GET,
    ///     uri: "/engine.io/?EIO=4&x=a%20b".parse().unwrap(),
    ///     headers: Default::default(),
    ///     remote_addr: "127.0.0.1:1".parse().unwrap(),
    ///     time: std::time::SystemTime::now(),
    /// };
    /// assert_eq!(info.query("x").as_deref(), Some("a b"));
    /// ```
    pub fn query(&self, name: &str) -> Option<String> {
        query_param(&self.uri, name)
    }

    /// Every query parameter, decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

pub(crate) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
