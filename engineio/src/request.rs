//! What the handshake request said: headers, query, peer address.

use std::net::SocketAddr;

use http::header::{HeaderName, HeaderValue};
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

impl RequestInfo {
    /// A copy of the request head that owns its bytes.
    ///
    /// hyper hands out header values and the URI as slices of its connection read buffer (8 KiB or
    /// more); keeping those slices would keep that whole buffer alive for every session.
    pub(crate) fn detached(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        remote_addr: SocketAddr,
    ) -> RequestInfo {
        let mut owned = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            let name =
                HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or_else(|_| name.clone());
            let mut copy =
                HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
            copy.set_sensitive(value.is_sensitive());
            owned.append(name, copy);
        }
        RequestInfo {
            method: method.clone(),
            uri: Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone()),
            headers: owned,
            remote_addr,
            time: std::time::SystemTime::now(),
        }
    }
}
