//! Server configuration, with the official server's defaults.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::compression::HttpCompression;
use crate::cookie::SessionCookie;
use crate::cors::Cors;
use crate::deflate::PerMessageDeflate;
use crate::server::ErrorCode;
use crate::session::Timings;

/// A request refused by the [`Config::allow_request`] hook: a polling handshake gets `403` with
/// `{"code":4,"message":…}`, a WebSocket handshake a plain `400` (as the official server answers
/// every refused upgrade).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusal {
    /// The message of the JSON error body; `"Forbidden"` when `None`.
    pub message: Option<String>,
}

/// Decides whether a handshake request may open a session (the official `allowRequest` option).
pub type AllowRequest =
    Arc<dyn Fn(&http::request::Parts, SocketAddr) -> Result<(), Refusal> + Send + Sync>;

/// Adds headers to the server's answers (the official `headers` and `initial_headers` events): called
/// with the request, the headers of every polling answer and WebSocket `101` about to leave, and
/// whether the request is a handshake (no session id yet). Error answers do not go through it.
///
/// ```
/// use std::sync::Arc;
/// let mut config = engineio::Config::default();
/// config.headers = Some(Arc::new(|_request, headers, handshake| {
///     if handshake {
///         headers.insert("x-served-by", http::HeaderValue::from_static("node-1"));
///     }
/// }));
/// ```
pub type HeadersHook = Arc<dyn Fn(&http::request::Parts, &mut http::HeaderMap, bool) + Send + Sync>;

/// A request the server refused with one of the official error answers, as the official
/// `connection_error` event reports it (see [`Config::connection_error`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct ConnectionError<'a> {
    /// The refused request.
    pub request: &'a http::request::Parts,
    /// The peer address.
    pub remote: SocketAddr,
    /// The error code of the answer.
    pub code: ErrorCode,
    /// The code's message (`"Forbidden"`, `"Session ID unknown"`, …), as the official event's.
    pub message: &'static str,
    /// For a refusal of [`Config::allow_request`], the [`Refusal`]'s own message, which is also
    /// the answer's (the official event's `context.message`).
    pub refusal: Option<&'a str>,
}

/// Sees every request refused with an official error answer (the official
/// `io.engine.on("connection_error", …)`): an unknown transport or session id, a handshake with
/// another method than GET, a bad request, a refusal of [`Config::allow_request`], an unsupported
/// protocol revision.
///
/// ```
/// use std::sync::Arc;
/// let mut config = engineio::Config::default();
/// config.connection_error = Some(Arc::new(|err| {
///     tracing::info!(code = err.code.code(), message = err.message, uri = %err.request.uri, "refused");
/// }));
/// ```
pub type ConnectionErrorHook = Arc<dyn Fn(&ConnectionError<'_>) + Send + Sync>;

/// Engine.IO server settings. `Config::default()` matches the official server's defaults.
///
/// ```
/// use std::time::Duration;
/// let mut config = engineio::Config::default();
/// config.ping_interval = Duration::from_millis(300);
/// assert_eq!(config.max_http_buffer_size, 1_000_000);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The path the server answers on, with leading and trailing slash (default `/engine.io/`).
    pub path: String,
    /// Whether only paths under `path` with its trailing slash are served, as the official
    /// `addTrailingSlash` (default true: `/engine.io/?…`, not `/engine.io?…`). False serves every
    /// path that starts with `path` without its trailing slash.
    pub add_trailing_slash: bool,
    /// Time between a pong and the next ping (default 25 s).
    pub ping_interval: Duration,
    /// Time a client has to answer a ping (default 20 s).
    pub ping_timeout: Duration,
    /// Time a started upgrade may take (default 10 s).
    pub upgrade_timeout: Duration,
    /// Largest POST body and WebSocket message a client may send, in bytes; advertised as
    /// `maxPayload` (default 1,000,000).
    pub max_http_buffer_size: usize,
    /// Whether long-polling is allowed (default true).
    pub allow_polling: bool,
    /// Whether WebSocket is allowed (default true).
    pub allow_websocket: bool,
    /// Whether a polling session may upgrade to WebSocket (default true).
    pub allow_upgrades: bool,
    /// Cross-origin settings; `None` sends no CORS headers (the official default).
    pub cors: Option<Cors>,
    /// A hook deciding whether a handshake may go on.
    pub allow_request: Option<AllowRequest>,
    /// Bytes that may wait in one session's outgoing queue; past this the client is considered too
    /// slow and its session is closed with `transport error` (default 16 MiB).
    pub max_buffered_bytes: usize,
    /// Sessions the server holds at once; further handshakes get `503` (default: no limit).
    pub max_sessions: usize,
    /// New sessions per second; further handshakes in the same second get `503` (default: no limit).
    pub max_handshakes_per_second: u32,
    /// gzip / deflate for long-polling answers the client accepts compressed (default: answers of
    /// 1024 bytes or more, as the official server); `None` never compresses.
    pub http_compression: Option<HttpCompression>,
    /// A cookie holding the session id, set on every handshake answer for cookie-based sticky
    /// sessions (the official `cookie` option; default `None`, no cookie).
    pub cookie: Option<SessionCookie>,
    /// Adds headers to polling answers and WebSocket `101`s (see [`HeadersHook`]; default none).
    pub headers: Option<HeadersHook>,
    /// Sees the requests refused with an error answer (see [`ConnectionErrorHook`]; default none).
    pub connection_error: Option<ConnectionErrorHook>,
    /// WebSocket compression (`permessage-deflate`) for clients that offer it, as the official
    /// `perMessageDeflate` option; default `None`, off, as in the official server.
    pub per_message_deflate: Option<PerMessageDeflate>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: "/engine.io/".to_owned(),
            add_trailing_slash: true,
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            upgrade_timeout: Duration::from_millis(10_000),
            max_http_buffer_size: 1_000_000,
            allow_polling: true,
            allow_websocket: true,
            allow_upgrades: true,
            cors: None,
            allow_request: None,
            max_buffered_bytes: 16 << 20,
            max_sessions: usize::MAX,
            max_handshakes_per_second: u32::MAX,
            http_compression: Some(HttpCompression::default()),
            cookie: None,
            headers: None,
            connection_error: None,
            per_message_deflate: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("add_trailing_slash", &self.add_trailing_slash)
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("upgrade_timeout", &self.upgrade_timeout)
            .field("max_http_buffer_size", &self.max_http_buffer_size)
            .field("allow_polling", &self.allow_polling)
            .field("allow_websocket", &self.allow_websocket)
            .field("allow_upgrades", &self.allow_upgrades)
            .field("cors", &self.cors)
            .field("allow_request", &self.allow_request.is_some())
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("max_sessions", &self.max_sessions)
            .field("max_handshakes_per_second", &self.max_handshakes_per_second)
            .field("http_compression", &self.http_compression)
            .field("cookie", &self.cookie)
            .field("headers", &self.headers.is_some())
            .field("connection_error", &self.connection_error.is_some())
            .field("per_message_deflate", &self.per_message_deflate)
            .finish()
    }
}

impl Config {
    pub(crate) fn timings(&self) -> Timings {
        Timings {
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            upgrade_timeout: self.upgrade_timeout,
        }
    }
}
