//! The Engine.IO server: request routing, the handshake, and the official error answers.
//!
//! ```text
//! GET  ?EIO=4&transport=polling             handshake → 200 "0{sid,upgrades,pingInterval,pingTimeout,maxPayload}"
//! GET  ?EIO=4&transport=polling&sid=S       poll      → 200 payload (waits until something is queued)
//! POST ?EIO=4&transport=polling&sid=S       data      → 200 "ok"
//! GET  ?EIO=4&transport=websocket (Upgrade)            → 101, open packet as the first text frame
//! GET  ?EIO=4&transport=websocket&sid=S (Upgrade)      → 101, then 2probe/3probe/5 (see `session`)
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::accepted::AcceptedStream;
use crate::config::Config;
use crate::deflate::{is_token_byte, Negotiation};
use crate::handler::Handler;
use crate::packet::Frame;
use crate::request::RequestInfo;
use crate::session::{CloseReason, SessionState, TransportKind};
use crate::socket::{Queued, Shared, Socket};
use crate::stats::{Stats, StatsSnapshot};
use crate::websocket::WsConn;
use crate::{jsonp, polling, sid, websocket};

/// The body type of every response the server makes.
pub type Body = Full<Bytes>;

/// The error codes of the official server's JSON error answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 0: the `transport` parameter is missing, unknown or not allowed.
    UnknownTransport,
    /// 1: the `sid` names no live session.
    UnknownSid,
    /// 2: a handshake with another method than GET.
    BadHandshakeMethod,
    /// 3: the request does not fit the session (wrong transport, websocket without upgrade, …).
    BadRequest,
    /// 4: refused by the `allow_request` hook.
    Forbidden,
    /// 5: `EIO` is missing or not 4.
    UnsupportedProtocolVersion,
}

impl ErrorCode {
    /// The numeric code of the JSON body.
    pub fn code(self) -> u8 {
        match self {
            ErrorCode::UnknownTransport => 0,
            ErrorCode::UnknownSid => 1,
            ErrorCode::BadHandshakeMethod => 2,
            ErrorCode::BadRequest => 3,
            ErrorCode::Forbidden => 4,
            ErrorCode::UnsupportedProtocolVersion => 5,
        }
    }

    /// The official message of the JSON body.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::UnknownTransport => "Transport unknown",
            ErrorCode::UnknownSid => "Session ID unknown",
            ErrorCode::BadHandshakeMethod => "Bad handshake method",
            ErrorCode::BadRequest => "Bad request",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }
}

pub(crate) fn plain_response(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// The official JSON error answer (`{"code":N,"message":"…"}`); over a WebSocket upgrade request, a
/// plain-text 400 like the official server writes before closing the socket.
fn error_with_message(code: ErrorCode, message: &str, upgrade: bool) -> Response<Body> {
    if upgrade {
        let mut response = Response::new(Full::new(Bytes::copy_from_slice(message.as_bytes())));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        return response;
    }
    let body = serde_json::json!({ "code": code.code(), "message": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = if code == ErrorCode::Forbidden {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::BAD_REQUEST
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) struct ServerShared {
    config: Config,
    handler: Arc<dyn Handler>,
    sessions: RwLock<HashMap<Arc<str>, Arc<Shared>>>,
    shutting_down: AtomicBool,
    stats: Arc<Stats>,
    /// Start of the current one-second window and the handshakes admitted in it.
    handshake_window: std::sync::Mutex<(Instant, u32)>,
}

impl ServerShared {
    pub(crate) fn remove(&self, id: &str, which: &Arc<Shared>) {
        let mut sessions = self.sessions.write().unwrap_or_else(|e| e.into_inner());
        if sessions.get(id).is_some_and(|s| Arc::ptr_eq(s, which)) {
            sessions.remove(id);
            // A hash table keeps its size when emptied: after a crowd has gone, give the memory
            // back (once a quarter full at most, so that shrinking stays amortised O(1)).
            if sessions.capacity() > 64 && sessions.len() < sessions.capacity() / 4 {
                let keep = sessions.len() * 2;
                sessions.shrink_to(keep);
            }
        }
    }

    fn get(&self, id: &str) -> Option<Arc<Shared>> {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

/// An Engine.IO server: give it requests, it runs the sessions.
///
/// ```no_run
/// use std::sync::Arc;
/// use engineio::{Config, ConnectionHandler, EngineIo, Handler, Message, Socket, CloseReason};
///
/// struct Echo;
/// struct Conn(Socket);
/// impl Handler for Echo {
///     fn on_connection(&self, socket: Socket) -> Arc<dyn ConnectionHandler> { Arc::new(Conn(socket)) }
/// }
/// impl ConnectionHandler for Conn {
///     fn on_message(&self, message: Message) { let _ = self.0.send(message); }
///     fn on_close(&self, _: CloseReason) {}
/// }
///
/// # async fn run() -> std::io::Result<()> {
/// let engine = EngineIo::new(Config::default(), Echo);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// engine.serve(listener).await
/// # }
/// ```
#[derive(Clone)]
pub struct EngineIo {
    shared: Arc<ServerShared>,
}

impl std::fmt::Debug for EngineIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineIo")
            .field("config", &self.shared.config)
            .finish()
    }
}

struct Query<'a> {
    eio: Option<Cow<'a, str>>,
    transport: Option<Cow<'a, str>>,
    sid: Option<Cow<'a, str>>,
    /// Set (non-empty) by a client that cannot take binary frames: the official client's
    /// `forceBase64`.
    b64: Option<Cow<'a, str>>,
    /// Set (even empty) by a JSONP polling client: its callback index.
    j: Option<Cow<'a, str>>,
}

impl<'a> Query<'a> {
    /// The parameters routing needs, in one pass over the query string.
    /// Borrowed from the URI unless escaped: this runs on every polling request.
    fn parse(uri: &'a http::Uri) -> Query<'a> {
        let mut query = Query {
            eio: None,
            transport: None,
            sid: None,
            b64: None,
            j: None,
        };
        for segment in uri.query().unwrap_or("").split('&') {
            if segment.is_empty() {
                continue;
            }
            let (key, value) = if segment.bytes().any(|b| b == b'%' || b == b'+') {
                match form_urlencoded::parse(segment.as_bytes()).next() {
                    Some(pair) => pair,
                    None => continue,
                }
            } else {
                let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
                (Cow::Borrowed(key), Cow::Borrowed(value))
            };
            let slot = match &*key {
                "EIO" => &mut query.eio,
                "transport" => &mut query.transport,
                "sid" => &mut query.sid,
                "b64" => &mut query.b64,
                "j" => &mut query.j,
                _ => continue,
            };
            // The last of a repeated parameter wins, as in the official server.
            *slot = Some(value);
        }
        query
    }

    /// Whether binary messages go to this client as `b` + base64 text frames over WebSocket, as
    /// the official server does when `b64` is set (long-polling always sends them so).
    fn binary_as_base64(&self) -> bool {
        self.b64.as_deref().is_some_and(|b64| !b64.is_empty())
    }
}

impl EngineIo {
    /// A server with this configuration, handing connections to `handler`.
    pub fn new(config: Config, handler: impl Handler) -> Self {
        Self::with_handler(config, Arc::new(handler))
    }

    /// Like [`new`](Self::new), with a shared handler.
    pub fn with_handler(config: Config, handler: Arc<dyn Handler>) -> Self {
        EngineIo {
            shared: Arc::new(ServerShared {
                config,
                handler,
                sessions: RwLock::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                stats: Arc::default(),
                handshake_window: std::sync::Mutex::new((Instant::now(), 0)),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Whether a request path belongs to this server: it starts with the configured path, with
    /// its trailing slash unless [`Config::add_trailing_slash`] is off (the official server's
    /// prefix test).
    pub fn handles_path(&self, path: &str) -> bool {
        let config = &self.shared.config;
        let base = config.path.trim_end_matches('/');
        match path.strip_prefix(base) {
            Some(rest) => !config.add_trailing_slash || rest.starts_with('/'),
            None => false,
        }
    }

    /// The number of live sessions.
    pub fn session_count(&self) -> usize {
        self.shared
            .sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Traffic counters since the server started.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The live session with this id.
    pub fn socket(&self, sid: &str) -> Option<Socket> {
        self.shared.get(sid).map(|shared| Socket { shared })
    }

    /// Closes every session (`server shutting down`) and refuses new handshakes from now on.
    pub fn shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        let sessions: Vec<_> = self
            .shared
            .sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for session in sessions {
            session.close(CloseReason::ServerShuttingDown, true);
        }
    }

    /// Accepts connections on `listener` and serves this server on its path (404 elsewhere), until
    /// the listener fails.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        serve_fn(listener, move |request, remote| {
            let engine = self.clone();
            async move {
                if engine.handles_path(request.uri().path()) {
                    engine.handle(request, remote).await
                } else {
                    plain_response(StatusCode::NOT_FOUND, "")
                }
            }
        })
        .await
    }

    /// Adds to `response` the CORS headers that [`Config::cors`] (when set) gives an answer to
    /// `request`, as the official server's `cors` middleware does for any request but a preflight.
    /// For what a layer above serves under the path itself (the client bundle, say).
    pub fn add_cors_headers(&self, request: &HeaderMap, response: &mut HeaderMap) {
        if let Some(cors) = &self.shared.config.cors {
            cors.apply(request, response);
        }
    }

    /// Answers one HTTP request addressed to this server's path.
    pub async fn handle(&self, request: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        let cors = self.shared.config.cors.as_ref();
        if parts.method == Method::OPTIONS {
            if let Some(cors) = cors {
                let mut response = plain_response(StatusCode::NO_CONTENT, "");
                cors.apply_preflight(&parts.headers, response.headers_mut());
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
                return response;
            }
        }
        let upgrade = is_websocket_upgrade(&parts);
        let mut response = self.route(&mut parts, body, remote).await;
        if response.status() == StatusCode::OK {
            // Only the polling transport answers 200 here.
            polling::add_transport_headers(&parts.headers, response.headers_mut());
        }
        if let Some(hook) = &self.shared.config.headers {
            if matches!(
                response.status(),
                StatusCode::OK | StatusCode::SWITCHING_PROTOCOLS
            ) {
                let handshake = Query::parse(&parts.uri)
                    .sid
                    .is_none_or(|sid| sid.is_empty());
                hook(&parts, response.headers_mut(), handshake);
            }
        }
        // As the official server, whose `cors` middleware runs for upgrades too: its headers go
        // out on the 101, and a refused upgrade gets the bare answer of `abortUpgrade`.
        if let Some(cors) = cors {
            if !upgrade || response.status() == StatusCode::SWITCHING_PROTOCOLS {
                cors.apply(&parts.headers, response.headers_mut());
            }
        }
        response
    }

    /// The official error answer, after the `connection_error` hook has seen it.
    fn refuse(
        &self,
        request: &http::request::Parts,
        remote: SocketAddr,
        code: ErrorCode,
        upgrade: bool,
    ) -> Response<Body> {
        self.refuse_with(request, remote, code, code.message(), upgrade)
    }

    /// Like [`refuse`](Self::refuse), with another message than the code's.
    fn refuse_with(
        &self,
        request: &http::request::Parts,
        remote: SocketAddr,
        code: ErrorCode,
        message: &str,
        upgrade: bool,
    ) -> Response<Body> {
        if let Some(hook) = &self.shared.config.connection_error {
            hook(&crate::config::ConnectionError {
                request,
                remote,
                code,
                message: code.message(),
                refusal: (code == ErrorCode::Forbidden).then_some(message),
            });
        }
        error_with_message(code, message, upgrade)
    }

    async fn route(
        &self,
        parts: &mut http::request::Parts,
        body: Incoming,
        remote: SocketAddr,
    ) -> Response<Body> {
        let query = Query::parse(&parts.uri);
        let binary_as_base64 = query.binary_as_base64();
        let upgrade = is_websocket_upgrade(parts);
        let config = &self.shared.config;
        let transport = match query.transport.as_deref().and_then(TransportKind::parse) {
            Some(TransportKind::Polling) if config.allow_polling => TransportKind::Polling,
            Some(TransportKind::WebSocket) if config.allow_websocket => TransportKind::WebSocket,
            _ => {
                tracing::debug!(transport = ?query.transport, "refused: unknown transport");
                return self.refuse(parts, remote, ErrorCode::UnknownTransport, upgrade);
            }
        };

        // An empty `sid` is no sid: the request is a handshake.
        if let Some(sid) = query.sid.as_deref().filter(|sid| !sid.is_empty()) {
            let Some(session) = self.shared.get(sid) else {
                tracing::debug!(sid, "refused: unknown sid");
                return self.refuse(parts, remote, ErrorCode::UnknownSid, upgrade);
            };
            // Every session speaks protocol 4: a request of another revision is a bad request.
            if query.eio.as_deref() != Some("4") {
                tracing::debug!(sid, eio = ?query.eio, "refused: protocol revision mismatch");
                return self.refuse(parts, remote, ErrorCode::BadRequest, upgrade);
            }
            let current = session.lock().state.transport();
            if upgrade {
                if transport != TransportKind::WebSocket {
                    return self.accept_and_close(parts);
                }
                return self.upgrade_session(parts, session, binary_as_base64);
            }
            if current != transport {
                tracing::debug!(
                    sid,
                    "refused: request on a transport the session does not use"
                );
                return self.refuse(parts, remote, ErrorCode::BadRequest, upgrade);
            }
            return match parts.method {
                Method::GET => {
                    polling::get(&session, &parts.headers, config.http_compression).await
                }
                Method::POST => {
                    polling::post(&session, &parts.headers, body, config.max_http_buffer_size).await
                }
                _ => plain_response(StatusCode::INTERNAL_SERVER_ERROR, ""),
            };
        }

        if parts.method != Method::GET {
            return self.refuse(parts, remote, ErrorCode::BadHandshakeMethod, upgrade);
        }
        if transport == TransportKind::WebSocket && !upgrade {
            return self.refuse(parts, remote, ErrorCode::BadRequest, upgrade);
        }
        if let Some(allow) = &config.allow_request {
            if let Err(refusal) = allow(parts, remote) {
                let message = refusal.message.as_deref().unwrap_or("Forbidden");
                tracing::debug!(%remote, message, "handshake refused by allow_request");
                return self.refuse_with(parts, remote, ErrorCode::Forbidden, message, upgrade);
            }
        }
        if query.eio.as_deref() != Some("4") {
            return self.refuse(
                parts,
                remote,
                ErrorCode::UnsupportedProtocolVersion,
                upgrade,
            );
        }
        if self.shared.shutting_down.load(Ordering::Relaxed)
            || self.session_count() >= config.max_sessions
            || !self.admit_handshake()
        {
            tracing::warn!(
                max_sessions = config.max_sessions,
                max_per_second = config.max_handshakes_per_second,
                "handshake refused: server at its session or handshake-rate limit"
            );
            let mut response = plain_response(StatusCode::SERVICE_UNAVAILABLE, "");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }

        let info = RequestInfo::new(&parts.method, &parts.uri, &parts.headers, remote);
        match transport {
            TransportKind::Polling if upgrade => self.accept_and_close(parts),
            TransportKind::Polling => {
                // A `j` parameter (even empty) asks for JSONP, as in the official server.
                let jsonp = query.j.as_deref().map(jsonp::callback_index);
                let (session, open) = self.open_session(info, TransportKind::Polling, jsonp);
                let open = match &session.jsonp {
                    Some(index) => jsonp::wrap(index, &String::from_utf8_lossy(&open)),
                    None => open,
                };
                let mut response = Response::new(Full::new(open));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=UTF-8"),
                );
                self.set_cookie(&mut response, &session.id);
                self.announce(session);
                response
            }
            TransportKind::WebSocket => {
                let (response, deflate) = match self.accept_websocket(parts) {
                    Ok(accepted) => accepted,
                    Err(refusal) => return refusal.response(),
                };
                let (session, open) = self.open_session(info, TransportKind::WebSocket, None);
                session.lock().queue.push_back(Queued {
                    frame: Frame::Text(open),
                    compress: true,
                });
                let mut response = response;
                self.set_cookie(&mut response, &session.id);
                let engine = self.clone();
                let parts_upgrade = upgrade_future(parts);
                tokio::spawn(async move {
                    match engine
                        .finish_upgrade(parts_upgrade, binary_as_base64, deflate)
                        .await
                    {
                        Some(ws) => {
                            engine.announce(session.clone());
                            // A task of its own, sized for the connection alone.
                            tokio::spawn(websocket::run_direct(session, ws));
                        }
                        None => {
                            session.close(CloseReason::TransportError, false);
                        }
                    }
                });
                response
            }
        }
    }

    /// A WebSocket upgrade asked for a transport that takes none (polling): as the official server,
    /// the WebSocket is accepted, then closed at once; no session is opened.
    fn accept_and_close(&self, parts: &mut http::request::Parts) -> Response<Body> {
        let (response, deflate) = match self.accept_websocket(parts) {
            Ok(accepted) => accepted,
            Err(refusal) => return refusal.response(),
        };
        tracing::debug!("WebSocket upgrade for the polling transport: closed");
        let engine = self.clone();
        let pending = upgrade_future(parts);
        tokio::spawn(async move {
            if let Some(mut ws) = engine.finish_upgrade(pending, false, deflate).await {
                ws.close(None).await;
            }
        });
        response
    }

    /// The session cookie on a handshake answer, when configured.
    fn set_cookie(&self, response: &mut Response<Body>, sid: &str) {
        if let Some(value) = self
            .shared
            .config
            .cookie
            .as_ref()
            .and_then(|c| c.header_value(sid))
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }

    fn upgrade_session(
        &self,
        parts: &mut http::request::Parts,
        session: Arc<Shared>,
        binary_as_base64: bool,
    ) -> Response<Body> {
        let (response, deflate) = match self.accept_websocket(parts) {
            Ok(accepted) => accepted,
            Err(refusal) => return refusal.response(),
        };
        let engine = self.clone();
        let pending = upgrade_future(parts);
        let allowed = self.shared.config.allow_upgrades;
        tokio::spawn(async move {
            let Some(mut ws) = engine
                .finish_upgrade(pending, binary_as_base64, deflate)
                .await
            else {
                return;
            };
            let started = allowed && session.lock().state.start_upgrade(Instant::now()).is_ok();
            if !started {
                tracing::debug!(sid = %session.id, "upgrade refused: already upgraded or upgrading");
                ws.close(None).await;
                return;
            }
            // The heartbeat task sleeps until its earliest deadline: wake it so that it also
            // watches the upgrade deadline just set.
            session.state_wake.notify_waiters();
            websocket::run_upgrade(session, ws).await;
        });
        response
    }

    /// The `101` answer to a valid WebSocket handshake, and the compression threshold when
    /// `permessage-deflate` was negotiated.
    fn accept_websocket(
        &self,
        parts: &http::request::Parts,
    ) -> Result<(Response<Body>, Option<usize>), WsHandshakeError> {
        let mut response = accept_response(parts)?;
        let Some(deflate) = self.shared.config.per_message_deflate else {
            return Ok((response, None));
        };
        let offers = parts
            .headers
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .map(HeaderValue::as_bytes);
        match crate::deflate::negotiate(offers) {
            Ok(Negotiation::Accept) => {
                response.headers_mut().insert(
                    header::SEC_WEBSOCKET_EXTENSIONS,
                    HeaderValue::from_static(crate::deflate::RESPONSE),
                );
                Ok((response, Some(deflate.threshold)))
            }
            Ok(Negotiation::Decline) => Ok((response, None)),
            Err(err) => {
                tracing::debug!(%err, "WebSocket handshake refused");
                Err(WsHandshakeError::Extensions)
            }
        }
    }

    /// The WebSocket of an accepted upgrade request; `binary_as_base64` from its `b64` parameter,
    /// `deflate` the negotiated compression threshold.
    async fn finish_upgrade(
        &self,
        pending: hyper::upgrade::OnUpgrade,
        binary_as_base64: bool,
        deflate: Option<usize>,
    ) -> Option<WsConn> {
        let max_message = self.shared.config.max_http_buffer_size;
        let conn = match pending.await {
            // Our own listener's connections come back as the plain TCP stream, with the 101
            // response still to send (it leaves with the first frames).
            Ok(upgraded) => Some(match upgraded.downcast::<TokioIo<AcceptedStream>>() {
                Ok(parts) => {
                    let (stream, switching) = parts.io.into_inner().into_parts();
                    WsConn::new(websocket::Stream::Tcp(stream), parts.read_buf, max_message)
                        .with_unsent_response(switching)
                }
                Err(upgraded) => WsConn::new(
                    websocket::Stream::Other(TokioIo::new(upgraded)),
                    Bytes::new(),
                    max_message,
                ),
            }),
            Err(err) => {
                tracing::debug!(%err, "WebSocket upgrade failed");
                None
            }
        };
        let conn = conn.map(|conn| conn.with_binary_as_base64(binary_as_base64));
        match deflate {
            Some(threshold) => conn.map(|conn| conn.with_deflate(threshold)),
            None => conn,
        }
    }

    /// Counts a handshake against the per-second limit; false when over it.
    fn admit_handshake(&self) -> bool {
        let limit = self.shared.config.max_handshakes_per_second;
        if limit == u32::MAX {
            return true;
        }
        let now = Instant::now();
        let mut window = self
            .shared
            .handshake_window
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if now.duration_since(window.0) >= Duration::from_secs(1) {
            *window = (now, 0);
        }
        if window.1 >= limit {
            return false;
        }
        window.1 += 1;
        true
    }

    /// Creates a session and its open packet.
    /// `jsonp`: the callback index of a JSONP polling session.
    fn open_session(
        &self,
        info: RequestInfo,
        transport: TransportKind,
        jsonp: Option<Box<str>>,
    ) -> (Arc<Shared>, Bytes) {
        let config = &self.shared.config;
        let id: Arc<str> = sid::generate().into();
        let upgrades: &[&str] = if transport == TransportKind::Polling
            && config.allow_upgrades
            && config.allow_websocket
        {
            &["websocket"]
        } else {
            &[]
        };
        let open = serde_json::json!({
            "sid": &*id,
            "upgrades": upgrades,
            "pingInterval": config.ping_interval.as_millis() as u64,
            "pingTimeout": config.ping_timeout.as_millis() as u64,
            "maxPayload": config.max_http_buffer_size,
        });
        let open = Bytes::from(format!("0{open}"));
        let state = SessionState::new(Instant::now(), transport, config.timings());
        let shared = Arc::new(Shared::new(
            id.clone(),
            info,
            state,
            Arc::downgrade(&self.shared),
            self.shared.stats.clone(),
            config.max_buffered_bytes,
            jsonp,
        ));
        self.shared
            .sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, shared.clone());
        self.shared.stats.handshake();
        // A WebSocket session runs its heartbeat on its own connection task (see `run_direct`).
        if transport == TransportKind::Polling {
            tokio::spawn(shared.clone().drive_heartbeat());
        }
        (shared, open)
    }

    /// Tells the application about a new session.
    fn announce(&self, shared: Arc<Shared>) {
        tracing::debug!(sid = %shared.id, remote = %shared.request.remote_addr, "session opened");
        let handler = self.shared.handler.on_connection(Socket {
            shared: shared.clone(),
        });
        let mut core = shared.lock();
        if core.finished {
            // Closed before the application heard of it: it still gets its close.
            let reason = core.state.closed().unwrap_or(CloseReason::TransportClose);
            drop(core);
            handler.on_close(reason);
        } else {
            core.handler = Some(handler);
        }
    }
}

/// A WebSocket upgrade request: as Node's HTTP parser decides it, an `Upgrade` header is one only
/// with `upgrade` among the `Connection` tokens; without, the request is served as plain HTTP.
fn is_websocket_upgrade(parts: &http::request::Parts) -> bool {
    let connection_upgrade = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    parts.method == Method::GET
        && connection_upgrade
        && parts
            .headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Why a WebSocket handshake is refused, in the words of the official server (`ws`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WsHandshakeError {
    Key,
    Version,
    Protocol,
    Extensions,
}

impl WsHandshakeError {
    /// The plain-text 400 answer.
    fn response(self) -> Response<Body> {
        let message = match self {
            WsHandshakeError::Key => "Missing or invalid Sec-WebSocket-Key header",
            WsHandshakeError::Version => "Missing or invalid Sec-WebSocket-Version header",
            WsHandshakeError::Protocol => "Invalid Sec-WebSocket-Protocol header",
            WsHandshakeError::Extensions => {
                "Invalid or unacceptable Sec-WebSocket-Extensions header"
            }
        };
        tracing::debug!(message, "WebSocket handshake refused");
        let mut response = error_with_message(ErrorCode::BadRequest, message, true);
        if self == WsHandshakeError::Version {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13, 8"),
            );
        }
        response
    }
}

/// The `101 Switching Protocols` answer to a valid WebSocket handshake.
fn accept_response(parts: &http::request::Parts) -> Result<Response<Body>, WsHandshakeError> {
    // Checked as the official server (`ws`) checks them: a key of 16 bytes in base64, version 13
    // or 8, a list of distinct subprotocol names.
    let key = parts
        .headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|key| {
            key.len() == 24
                && key.as_bytes().ends_with(b"==")
                && key.as_bytes()[..22]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        })
        .ok_or(WsHandshakeError::Key)?;
    let version = parts.headers.get(header::SEC_WEBSOCKET_VERSION);
    if !version.is_some_and(|v| v.as_bytes() == b"13" || v.as_bytes() == b"8") {
        return Err(WsHandshakeError::Version);
    }
    let protocol = match parts.headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
        Some(offered) => Some(first_subprotocol(offered).ok_or(WsHandshakeError::Protocol)?),
        None => None,
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        // Base64 is always a valid header value; were it not, the key would be to blame.
        HeaderValue::from_str(&accept).map_err(|_| WsHandshakeError::Key)?,
    );
    if let Some(protocol) = protocol {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    Ok(response)
}

/// The subprotocol chosen among those a client offers: the first, as the official server does
/// by default; `None` when the list is not a comma-separated list of distinct tokens.
fn first_subprotocol(offered: &HeaderValue) -> Option<HeaderValue> {
    let mut names: Vec<&[u8]> = Vec::new();
    for name in offered.as_bytes().split(|b| *b == b',') {
        let name = name.trim_ascii();
        if name.is_empty() || !name.iter().all(|b| is_token_byte(*b)) || names.contains(&name) {
            return None;
        }
        names.push(name);
    }
    HeaderValue::from_bytes(names.first()?).ok()
}

/// Takes the pending upgrade out of the request's extensions.
fn upgrade_future(parts: &mut http::request::Parts) -> hyper::upgrade::OnUpgrade {
    let mut request = Request::new(());
    *request.extensions_mut() = std::mem::take(&mut parts.extensions);
    let pending = hyper::upgrade::on(&mut request);
    parts.extensions = std::mem::take(request.extensions_mut());
    pending
}

/// Why a request's framing is refused before any routing (RFC 9112), or `None` when it is sound.
fn badly_framed<B>(request: &Request<B>) -> Option<&'static str> {
    // §3.2: an HTTP/1.1 request with no Host, or more than one, MUST get a 400.
    let hosts = request.headers().get_all(header::HOST).iter().count();
    if request.version() == http::Version::HTTP_11 && hosts != 1 {
        return Some("an HTTP/1.1 request needs exactly one Host header");
    }
    // (§6.3, both Transfer-Encoding and Content-Length: hyper reads the body as chunked, drops the
    // Content-Length and closes the connection after the answer, as the RFC allows.)
    None
}

/// The answer to a badly framed request, as Node's HTTP server gives it: an empty 400, and the
/// connection closed (what follows on it cannot be trusted to start a request).
fn bad_request_and_close() -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// How long a client may take to send a request's headers (slow-header attacks).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest request head (request line and headers) read: a longer one gets
/// `431 Request Header Fields Too Large` and the connection closed, as from Node's HTTP server
/// (16 KiB by default: measured there, heads of up to 16,408 bytes pass). It is also the most a
/// connection's read buffer holds (hyper's `max_buf_size`), so a client cannot make the server
/// hold hyper's default of ~400 KB per connection.
const MAX_HEAD_BYTES: usize = 16 * 1024 + 24;

/// Serves HTTP/1.1 (with upgrades) on `listener`, answering each request with `service`.
///
/// Used by [`EngineIo::serve`] and by servers that route other paths beside Engine.IO.
pub async fn serve_fn<F, Fut>(listener: TcpListener, service: F) -> std::io::Result<()>
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    serve_fn_until(listener, service, std::future::pending()).await
}

/// Like [`serve_fn`], but stops accepting connections once `shutdown` completes (connections already
/// accepted go on until they end).
pub async fn serve_fn_until<F, Fut, S>(
    listener: TcpListener,
    service: F,
    shutdown: S,
) -> std::io::Result<()>
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
    S: Future<Output = ()>,
{
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => return Ok(()),
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait instead of spinning or giving up.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = match badly_framed(&request) {
                    Some(reason) => {
                        tracing::debug!(%remote, reason, "badly framed request refused");
                        None
                    }
                    None => Some(service(request, remote)),
                };
                async move {
                    Ok::<_, Infallible>(match response {
                        Some(response) => response.await,
                        None => bad_request_and_close(),
                    })
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(AcceptedStream::new(stream)), svc)
                .with_upgrades();
            if let Err(err) = connection.await {
                tracing::trace!(%err, %remote, "HTTP connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &'static str) -> (Option<String>, Option<String>, Option<String>) {
        let uri: http::Uri = uri.parse().unwrap();
        let query = Query::parse(&uri);
        let owned = |v: Option<Cow<'_, str>>| v.map(Cow::into_owned);
        (owned(query.eio), owned(query.transport), owned(query.sid))
    }

    #[test]
    fn query_takes_the_last_of_each_routing_parameter() {
        assert_eq!(
            parse(
                "/socket.io/?EIO=3&transport=websocket&t=x&sid=abc&sid=def&EIO=4&transport=polling"
            ),
            (Some("4".into()), Some("polling".into()), Some("def".into()))
        );
    }

    #[test]
    fn query_decodes_escaped_keys_and_values() {
        assert_eq!(
            parse("/socket.io/?E%49O=4&transport=web%73ocket&sid=a+b%2Fc"),
            (
                Some("4".into()),
                Some("websocket".into()),
                Some("a b/c".into())
            )
        );
    }

    #[test]
    fn query_handles_missing_values_and_empty_segments() {
        assert_eq!(
            parse("/socket.io/?&&EIO&transport=&sid=x=y"),
            (Some("".into()), Some("".into()), Some("x=y".into()))
        );
        assert_eq!(parse("/socket.io/"), (None, None, None));
    }

    #[test]
    fn the_first_offered_subprotocol_is_chosen() {
        let first = |offered: &str| first_subprotocol(&HeaderValue::from_str(offered).unwrap());
        assert_eq!(first("chat"), Some(HeaderValue::from_static("chat")));
        assert_eq!(
            first("chat, superchat"),
            Some(HeaderValue::from_static("chat"))
        );
        assert_eq!(
            first(" v2.json ,\tchat"),
            Some(HeaderValue::from_static("v2.json"))
        );
        for invalid in ["", "chat,", "chat, chat", "a b", "chat;q=1", ","] {
            assert_eq!(first(invalid), None, "{invalid:?}");
        }
    }

    #[test]
    fn websocket_keys_and_versions_are_checked_as_the_official_server_does() {
        let answer = |key: &str, version: &str| {
            let request = Request::get("/socket.io/?EIO=4&transport=websocket")
                .header(header::SEC_WEBSOCKET_KEY, key)
                .header(header::SEC_WEBSOCKET_VERSION, version)
                .body(())
                .unwrap();
            accept_response(&request.into_parts().0).map(|r| r.status())
        };
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        assert_eq!(answer(key, "13"), Ok(StatusCode::SWITCHING_PROTOCOLS));
        assert_eq!(answer(key, "8"), Ok(StatusCode::SWITCHING_PROTOCOLS));
        assert_eq!(answer(key, "12"), Err(WsHandshakeError::Version));
        for bad_key in [
            "abc",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZ===",
            "dGhlIHNhbXBsZSBub2-jZQ==",
        ] {
            assert_eq!(
                answer(bad_key, "13"),
                Err(WsHandshakeError::Key),
                "{bad_key}"
            );
        }
    }
}
