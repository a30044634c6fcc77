//! Shared harness for the `sessions-app` integration tests: an in-process server on an ephemeral
//! port, token signing helpers, a raw Socket.IO v5 / Engine.IO v4 client over WebSocket
//! (tokio-tungstenite), a raw HTTP/1.1 client (also used for Engine.IO long-polling), and a handle on
//! the real binary for the process-level clauses.
//!
//! Every wait is bounded by a deadline; the deadlines are generous because the tests run on a small,
//! shared machine.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The HMAC secret of servers started with [`TestServer::start`].
pub const SECRET: &str = "integration-test-secret";
/// The namespace under test.
pub const NS: &str = "/sessions";
/// The longest any single expected thing may take to arrive.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long to watch for something that must not happen.
pub const QUIET: Duration = Duration::from_millis(600);

// ---------------------------------------------------------------------------------------------
// In-process server
// ---------------------------------------------------------------------------------------------

/// A `sessions_app::Server` serving on `127.0.0.1:<ephemeral>` in a background task.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// A server with `--jwt-secret SECRET` (unless a key is given in `extra`) and these extra flags.
    pub async fn start(extra: &[&str]) -> TestServer {
        let has_key = extra
            .iter()
            .any(|a| *a == "--jwt-secret" || *a == "--jwt-public-key");
        let mut args: Vec<&str> = Vec::new();
        if !has_key {
            args.extend(["--jwt-secret", SECRET]);
        }
        args.extend_from_slice(extra);
        TestServer::start_raw(&args).await
    }

    /// A server with exactly these flags (plus `--listen 127.0.0.1:0`).
    pub async fn start_raw(args: &[&str]) -> TestServer {
        let mut argv = vec!["sessions-app", "--listen", "127.0.0.1:0"];
        argv.extend_from_slice(args);
        let cli = sessions_app::config::Cli::try_parse_from(argv).expect("valid test flags");
        let settings = cli.settings;
        let (verifier, _development) =
            sessions_app::verifier_from(&settings).expect("usable test key");
        let server = sessions_app::Server::new(&settings, verifier);
        let listener = TcpListener::bind(settings.listen).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve_until(listener, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Shuts the server down and waits for it to finish (bounded).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("server stops within 15 s")
                .expect("server task did not panic");
            result.expect("server returned Ok");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A path under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// Signs `claims` with an HMAC secret.
pub fn sign_hs(claims: &Value, secret: &[u8], alg: Algorithm) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))
        .expect("sign HMAC")
}

/// Signs `claims` with the fixture RSA private key.
pub fn sign_rsa(claims: &Value, alg: Algorithm) -> String {
    let pem = std::fs::read(fixture("rsa_private.pem")).expect("rsa fixture");
    let key = EncodingKey::from_rsa_pem(&pem).expect("rsa private key");
    jsonwebtoken::encode(&Header::new(alg), claims, &key).expect("sign RSA")
}

/// Signs `claims` with the fixture EC (P-256) private key.
pub fn sign_ec(claims: &Value, alg: Algorithm) -> String {
    let pem = std::fs::read(fixture("ec_private.pem")).expect("ec fixture");
    let key = EncodingKey::from_ec_pem(&pem).expect("ec private key");
    jsonwebtoken::encode(&Header::new(alg), claims, &key).expect("sign EC")
}

/// An unsigned `alg: none` token.
pub fn alg_none(claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// Claims for `sub`, valid for an hour.
pub fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "iat": now(), "exp": now() + 3600 })
}

/// A valid HS256 token for `sub` under [`SECRET`], valid for an hour.
pub fn token(sub: &str) -> String {
    sign_hs(&claims(sub), SECRET.as_bytes(), Algorithm::HS256)
}

/// The payload of a JWT, without verifying it.
pub fn jwt_payload(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// The header of a JWT, without verifying it.
pub fn jwt_header(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').next().expect("a JWT has a header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url header");
    serde_json::from_slice(&bytes).expect("JSON header")
}

// ---------------------------------------------------------------------------------------------
// Raw Socket.IO client over WebSocket
// ---------------------------------------------------------------------------------------------

/// What the client saw, one Engine.IO / Socket.IO packet at a time.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `40/sessions,{...}`: namespace joined.
    Connect(Value),
    /// `44/sessions,{...}`: namespace refused.
    ConnectError(Value),
    /// `42/sessions,[<id>][name, ...args]`.
    Event {
        /// Event name.
        name: String,
        /// Arguments after the name.
        args: Vec<Value>,
        /// Ack id the server asked for.
        id: Option<u64>,
    },
    /// `43/sessions,<id>[...]`.
    Ack {
        /// The id the client sent.
        id: u64,
        /// The answer.
        args: Vec<Value>,
    },
    /// `41/sessions,`: the server disconnected the socket from the namespace.
    Disconnect,
    /// Engine.IO `1` (close).
    EngineClose,
    /// A WebSocket close frame.
    WsClose,
    /// The stream ended or failed without a close frame.
    Ended,
    /// Anything else (other namespaces, noop, ...).
    Other(String),
}

/// How to open a connection.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Extra query parameters (already URL-safe).
    pub query: Vec<(String, String)>,
    /// Extra request headers on the upgrade request.
    pub headers: Vec<(String, String)>,
    /// Whether a background task answers pings (`2` → `3`).
    pub answer_pings: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            query: Vec::new(),
            headers: Vec::new(),
            answer_pings: true,
        }
    }
}

impl Opts {
    /// Adds a request header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Leaves pings unanswered.
    pub fn silent(mut self) -> Self {
        self.answer_pings = false;
        self
    }
}

/// Parses one Engine.IO text frame.
pub fn parse_frame(text: &str) -> Incoming {
    if text == "1" {
        return Incoming::EngineClose;
    }
    let Some(rest) = text.strip_prefix('4') else {
        return Incoming::Other(text.to_owned());
    };
    let mut chars = rest.chars();
    let Some(kind) = chars.next() else {
        return Incoming::Other(text.to_owned());
    };
    let rest = chars.as_str();
    let (nsp, rest) = if rest.starts_with('/') {
        match rest.find(',') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        }
    } else {
        ("/", rest)
    };
    if nsp != NS {
        return Incoming::Other(text.to_owned());
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        rest[..digits].parse::<u64>().ok()
    } else {
        None
    };
    let body = &rest[digits..];
    let data: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_str(body).ok()
    };
    match kind {
        '0' => Incoming::Connect(data.unwrap_or(Value::Null)),
        '1' => Incoming::Disconnect,
        '4' => Incoming::ConnectError(data.unwrap_or(Value::Null)),
        '2' => match data {
            Some(Value::Array(mut items)) if items.first().is_some_and(Value::is_string) => {
                let name = items.remove(0).as_str().unwrap_or_default().to_owned();
                Incoming::Event {
                    name,
                    args: items,
                    id,
                }
            }
            _ => Incoming::Other(text.to_owned()),
        },
        '3' => match (id, data) {
            (Some(id), Some(Value::Array(args))) => Incoming::Ack { id, args },
            _ => Incoming::Other(text.to_owned()),
        },
        _ => Incoming::Other(text.to_owned()),
    }
}

/// A raw Socket.IO client connected over WebSocket.
pub struct Client {
    out: mpsc::UnboundedSender<Message>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    pending: VecDeque<Incoming>,
    next_id: u64,
    /// The Engine.IO open packet payload.
    pub open: Value,
    /// The Engine.IO session id.
    pub engine_sid: String,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Client {
    /// Dropping a client drops its TCP connection (no goodbye).
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Client {
    /// Opens an Engine.IO WebSocket connection (no namespace joined yet).
    pub async fn open(addr: SocketAddr, opts: Opts) -> Client {
        tokio::time::timeout(WAIT, Client::open_inner(addr, opts))
            .await
            .expect("WebSocket open within the deadline")
    }

    async fn open_inner(addr: SocketAddr, opts: Opts) -> Client {
        let mut url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        for (k, v) in &opts.query {
            url.push('&');
            url.push_str(k);
            url.push('=');
            url.push_str(v);
        }
        let mut request = url.into_client_request().expect("request");
        for (k, v) in &opts.headers {
            request.headers_mut().append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                http::HeaderValue::from_str(v).expect("header value"),
            );
        }
        let stream = TcpStream::connect(addr).await.expect("TCP connect");
        let (ws, _response) = tokio_tungstenite::client_async(request, stream)
            .await
            .expect("WebSocket handshake");
        let (mut sink, mut stream) = ws.split();

        // The open packet comes first.
        let open_text = loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => break text.to_string(),
                Some(Ok(_)) => continue,
                other => panic!("no Engine.IO open packet: {other:?}"),
            }
        };
        let open: Value = serde_json::from_str(
            open_text
                .strip_prefix('0')
                .unwrap_or_else(|| panic!("not an open packet: {open_text}")),
        )
        .expect("open packet JSON");
        let engine_sid = open["sid"].as_str().expect("open sid").to_owned();

        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let (in_tx, in_rx) = mpsc::unbounded_channel::<Incoming>();
        let pong = out_tx.clone();
        let answer_pings = opts.answer_pings;
        let reader = tokio::spawn(async move {
            loop {
                let item = match stream.next().await {
                    Some(Ok(Message::Text(text))) => {
                        if text.as_str() == "2" {
                            if answer_pings {
                                let _ = pong.send(Message::Text("3".into()));
                            }
                            continue;
                        }
                        parse_frame(text.as_str())
                    }
                    Some(Ok(Message::Close(_))) => Incoming::WsClose,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => {
                        let _ = in_tx.send(Incoming::Ended);
                        break;
                    }
                };
                if in_tx.send(item).is_err() {
                    break;
                }
            }
        });
        Client {
            out: out_tx,
            incoming: in_rx,
            pending: VecDeque::new(),
            next_id: 1,
            open,
            engine_sid,
            tasks: vec![writer.abort_handle(), reader.abort_handle()],
        }
    }

    /// Sends one raw Engine.IO text frame.
    pub fn send_raw(&self, text: &str) {
        let _ = self.out.send(Message::Text(text.into()));
    }

    /// Sends `40/sessions,<auth>` (no payload when `auth` is `None`).
    pub fn join(&self, auth: Option<&Value>) {
        match auth {
            Some(auth) => self.send_raw(&format!("40{NS},{auth}")),
            None => self.send_raw(&format!("40{NS},")),
        }
    }

    /// Sends `41/sessions,` (a client namespace disconnect).
    pub fn leave(&self) {
        self.send_raw(&format!("41{NS},"));
    }

    /// Closes the WebSocket (a transport close).
    pub fn close_transport(&self) {
        let _ = self.out.send(Message::Close(None));
    }

    /// Emits an event without asking for an acknowledgement.
    pub fn emit(&self, event: &str, args: &[Value]) {
        let mut items = vec![json!(event)];
        items.extend_from_slice(args);
        self.send_raw(&format!("42{NS},{}", Value::Array(items)));
    }

    /// Emits an event asking for an acknowledgement; returns the ack id.
    pub fn emit_with_ack(&mut self, event: &str, args: &[Value]) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut items = vec![json!(event)];
        items.extend_from_slice(args);
        self.send_raw(&format!("42{NS},{id}{}", Value::Array(items)));
        id
    }

    /// Emits an event with an ack and waits for the answer's arguments (other packets stay queued).
    pub async fn call(&mut self, event: &str, args: &[Value]) -> Vec<Value> {
        let id = self.emit_with_ack(event, args);
        match self
            .wait_for(|i| matches!(i, Incoming::Ack { id: got, .. } if *got == id))
            .await
        {
            Incoming::Ack { args, .. } => args,
            other => unreachable!("{other:?}"),
        }
    }

    /// The next packet (queued ones first), within [`WAIT`].
    pub async fn next(&mut self) -> Incoming {
        if let Some(item) = self.pending.pop_front() {
            return item;
        }
        match tokio::time::timeout(WAIT, self.incoming.recv()).await {
            Ok(Some(item)) => item,
            Ok(None) => Incoming::Ended,
            Err(_) => panic!("nothing arrived within {WAIT:?}"),
        }
    }

    /// The next packet, or `None` when nothing arrives within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Incoming> {
        if let Some(item) = self.pending.pop_front() {
            return Some(item);
        }
        match tokio::time::timeout(within, self.incoming.recv()).await {
            Ok(Some(item)) => Some(item),
            Ok(None) => Some(Incoming::Ended),
            Err(_) => None,
        }
    }

    /// The first packet matching `pred` (queued ones first); the others stay queued in order.
    pub async fn wait_for(&mut self, pred: impl Fn(&Incoming) -> bool) -> Incoming {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).expect("position is valid");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(item)) if pred(&item) => return item,
                Ok(Some(item)) => self.pending.push_back(item),
                Ok(None) => panic!(
                    "connection ended before the awaited packet; queued: {:?}",
                    self.pending
                ),
                Err(_) => panic!(
                    "awaited packet did not arrive within {WAIT:?}; queued: {:?}",
                    self.pending
                ),
            }
        }
    }

    /// The first event `name`, skipping (and keeping queued) anything else; returns its first
    /// argument.
    pub async fn wait_event(&mut self, name: &str) -> Value {
        match self
            .wait_for(|i| matches!(i, Incoming::Event { name: got, .. } if got == name))
            .await
        {
            Incoming::Event { args, .. } => args.into_iter().next().unwrap_or(Value::Null),
            other => unreachable!("{other:?}"),
        }
    }

    /// Asserts that the next packet is the event `name`; returns its first argument.
    pub async fn expect_event(&mut self, name: &str) -> Value {
        match self.next().await {
            Incoming::Event {
                name: got, args, ..
            } if got == name => args.into_iter().next().unwrap_or(Value::Null),
            other => panic!("expected event {name}, got {other:?}"),
        }
    }

    /// Asserts that the next packet is `40/sessions,{sid}`; returns the sid.
    pub async fn expect_connect(&mut self) -> String {
        match self.next().await {
            Incoming::Connect(data) => data["sid"]
                .as_str()
                .unwrap_or_else(|| panic!("CONNECT without sid: {data}"))
                .to_owned(),
            other => panic!("expected CONNECT, got {other:?}"),
        }
    }

    /// Asserts that the next packet is `41/sessions,`.
    pub async fn expect_disconnect(&mut self) {
        match self.next().await {
            Incoming::Disconnect => {}
            other => panic!("expected a namespace DISCONNECT (41{NS},), got {other:?}"),
        }
    }

    /// Asserts that the server sends `sessions:error {code}` and then a namespace DISCONNECT;
    /// returns the error payload.
    pub async fn expect_error_then_disconnect(&mut self, code: &str) -> Value {
        let error = self.expect_event("sessions:error").await;
        assert_eq!(error["code"], json!(code), "error payload {error}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "sessions:error carries a message: {error}"
        );
        let keys = sorted_keys(&error);
        assert_eq!(keys, vec!["code", "message"], "error payload {error}");
        self.expect_disconnect().await;
        error
    }

    /// Like [`expect_error_then_disconnect`](Self::expect_error_then_disconnect), after any number of
    /// `sessions:update` events: news of sessions that were signed out just before this one (their
    /// disconnect handlers run at once, as in the official server).
    pub async fn expect_updates_then_error_and_disconnect(&mut self, code: &str) -> Value {
        loop {
            match self.next().await {
                Incoming::Event { name, .. } if name == "sessions:update" => {}
                other => {
                    self.pending.push_front(other);
                    break;
                }
            }
        }
        self.expect_error_then_disconnect(code).await
    }

    /// Asserts that nothing at all arrives for [`QUIET`].
    pub async fn expect_silence(&mut self) {
        if let Some(item) = self.next_within(QUIET).await {
            panic!("expected nothing, got {item:?}");
        }
    }

    /// Packets already queued by [`wait_for`](Self::wait_for).
    pub fn queued(&self) -> &VecDeque<Incoming> {
        &self.pending
    }
}

/// A joined `/sessions` socket.
pub struct Session {
    /// The connection.
    pub client: Client,
    /// The Socket.IO socket id (from the CONNECT packet).
    pub sid: String,
    /// The `sessions:ready` payload.
    pub ready: Value,
    /// The first `sessions:update` payload.
    pub update: Value,
}

impl Session {
    /// `sessions:list`.
    pub async fn list(&mut self) -> Value {
        let mut answer = self.client.call("sessions:list", &[]).await;
        assert_eq!(answer.len(), 1, "sessions:list answers one value");
        answer.remove(0)
    }

    /// Waits for the next `sessions:update` (the next event must be one); returns the list.
    pub async fn expect_update(&mut self) -> Value {
        self.client.expect_event("sessions:update").await
    }

    /// Asserts that nothing arrives for a while.
    pub async fn expect_silence(&mut self) {
        self.client.expect_silence().await
    }
}

/// Opens a connection with `opts`, joins with `auth`, and checks the ready/update sequence.
pub async fn join_with(addr: SocketAddr, auth: Option<Value>, opts: Opts) -> Session {
    let mut client = Client::open(addr, opts).await;
    client.join(auth.as_ref());
    let sid = client.expect_connect().await;
    let ready = client.expect_event("sessions:ready").await;
    assert_eq!(
        ready["socketId"],
        json!(sid),
        "ready.socketId is the socket id"
    );
    let update = client.expect_event("sessions:update").await;
    Session {
        client,
        sid,
        ready,
        update,
    }
}

/// Joins `/sessions` with `auth.token = token`.
pub async fn login(addr: SocketAddr, token: &str) -> Session {
    join_with(addr, Some(json!({ "token": token })), Opts::default()).await
}

/// Opens a connection, joins with `auth`, and expects `sessions:error {code}` then `41/sessions,`.
/// Returns the refused socket's id.
pub async fn refused(addr: SocketAddr, auth: Option<Value>, opts: Opts, code: &str) -> String {
    let mut client = Client::open(addr, opts).await;
    client.join(auth.as_ref());
    let sid = client.expect_connect().await;
    client.expect_error_then_disconnect(code).await;
    sid
}

/// The socket ids of a `sessions` array, in order.
pub fn ids(sessions: &Value) -> Vec<String> {
    sessions
        .as_array()
        .unwrap_or_else(|| panic!("sessions is an array: {sessions}"))
        .iter()
        .map(|s| s["socketId"].as_str().expect("socketId string").to_owned())
        .collect()
}

/// The keys of a JSON object, sorted.
pub fn sorted_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 (and Engine.IO long-polling over it)
// ---------------------------------------------------------------------------------------------

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), within [`WAIT`].
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    tokio::time::timeout(WAIT, http_inner(addr, method, path, headers, body))
        .await
        .unwrap_or_else(|_| panic!("{method} {path} answered within {WAIT:?}"))
}

async fn http_inner(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.expect("TCP connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        data = &data[end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// A GET.
pub async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    http(addr, "GET", path, &[], b"").await
}

/// An Engine.IO long-polling client.
pub struct Polling {
    addr: SocketAddr,
    /// The Engine.IO session id.
    pub sid: String,
    /// The open packet payload.
    pub open: Value,
}

impl Polling {
    /// The handshake GET, with these headers and extra query (`&k=v...`).
    pub async fn open(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> Polling {
        let response = http(
            addr,
            "GET",
            &format!("/socket.io/?EIO=4&transport=polling{query}"),
            headers,
            b"",
        )
        .await;
        assert_eq!(
            response.status,
            200,
            "polling handshake: {}",
            response.text()
        );
        let text = response.text();
        let open: Value = serde_json::from_str(
            text.strip_prefix('0')
                .unwrap_or_else(|| panic!("not an open packet: {text}")),
        )
        .expect("open JSON");
        Polling {
            addr,
            sid: open["sid"].as_str().expect("sid").to_owned(),
            open,
        }
    }

    /// POSTs these packets.
    pub async fn send(&self, packets: &[&str]) {
        let body = packets.join("\u{1e}");
        let response = http(
            self.addr,
            "POST",
            &format!("/socket.io/?EIO=4&transport=polling&sid={}", self.sid),
            &[("Content-Type", "text/plain;charset=UTF-8")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(response.status, 200, "polling POST: {}", response.text());
    }

    /// One GET poll; returns the packets, parsed.
    pub async fn poll(&self) -> Vec<Incoming> {
        let response = http(
            self.addr,
            "GET",
            &format!("/socket.io/?EIO=4&transport=polling&sid={}", self.sid),
            &[],
            b"",
        )
        .await;
        assert_eq!(response.status, 200, "polling GET: {}", response.text());
        response
            .text()
            .split('\u{1e}')
            .filter(|p| !p.is_empty() && *p != "2" && *p != "6")
            .map(parse_frame)
            .collect()
    }

    /// Polls until `count` packets arrived (bounded by [`WAIT`]).
    pub async fn poll_until(&self, count: usize) -> Vec<Incoming> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut all = Vec::new();
        while all.len() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {all:?} arrived within {WAIT:?}"
            );
            all.extend(self.poll().await);
        }
        all
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// The value of the sample named exactly `series` (name plus labels) in a Prometheus text body.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// `GET /metrics` as text.
pub async fn metrics(addr: SocketAddr) -> String {
    let response = get(addr, "/metrics").await;
    assert_eq!(response.status, 200);
    response.text()
}

// ---------------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------------

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout.
    Out,
    /// stderr.
    Err,
}

/// The environment variables the binary reads; cleared so the host cannot change a test.
pub const SETTINGS_ENV: [&str; 10] = [
    "SESSIONS_LISTEN",
    "JWT_SECRET",
    "JWT_PUBLIC_KEY_FILE",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "CORS_ORIGINS",
    "MAX_SESSIONS_PER_USER",
    "TRUST_PROXY",
    "PING_INTERVAL_MS",
    "PING_TIMEOUT_MS",
];

/// A command for the `sessions-app` binary with a clean settings environment.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessions-app"));
    cmd.args(args);
    for name in SETTINGS_ENV {
        cmd.env_remove(name);
    }
    cmd.env("NO_COLOR", "1").env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Removes ANSI escape sequences.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs the binary to completion (bounded); returns (exit code, stdout, stderr).
pub async fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = command(args, env);
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || cmd.output()),
    )
    .await
    .expect("the binary finishes within 30 s")
    .expect("join")
    .expect("spawn the binary");
    (
        output.status.code(),
        strip_ansi(&String::from_utf8_lossy(&output.stdout)),
        strip_ansi(&String::from_utf8_lossy(&output.stderr)),
    )
}

/// A running `sessions-app` server process.
pub struct Proc {
    child: Child,
    lines: mpsc::UnboundedReceiver<(Stream, String)>,
    /// Every line seen so far.
    pub seen: Vec<(Stream, String)>,
}

impl Proc {
    /// Spawns the binary with piped output.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = command(args, env);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the binary");
        let (tx, rx) = mpsc::unbounded_channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for (stream, reader) in [
            (Stream::Out, Box::new(out) as Box<dyn std::io::Read + Send>),
            (Stream::Err, Box::new(err)),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(reader).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((stream, strip_ansi(&line))).is_err() {
                        break;
                    }
                }
            });
        }
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line matching `pred` (bounded); returns it.
    pub async fn wait_line(&mut self, pred: impl Fn(Stream, &str) -> bool) -> String {
        if let Some((_, line)) = self.seen.iter().find(|(s, l)| pred(*s, l)) {
            return line.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some((stream, line))) => {
                    self.seen.push((stream, line.clone()));
                    if pred(stream, &line) {
                        return line;
                    }
                }
                Ok(None) => panic!("the process output ended; seen: {:#?}", self.seen),
                Err(_) => panic!("awaited line never came; seen: {:#?}", self.seen),
            }
        }
    }

    /// Waits for the "listening" log line; returns the bound address.
    pub async fn address(&mut self) -> SocketAddr {
        let line = self
            .wait_line(|s, l| s == Stream::Err && l.contains("listening"))
            .await;
        let start = line
            .find("address=")
            .unwrap_or_else(|| panic!("no address= in {line}"))
            + "address=".len();
        let rest = line[start..].trim_start_matches('"');
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        rest[..end]
            .parse()
            .unwrap_or_else(|_| panic!("bad address in {line}"))
    }

    /// Sends a signal with `kill -<sig> <pid>`.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} succeeded");
    }

    /// Waits up to `within` for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<Option<i32>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status.code());
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Drains the remaining output lines (bounded).
    pub async fn drain(&mut self) {
        while let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_millis(500), self.lines.recv()).await
        {
            self.seen.push(item);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
