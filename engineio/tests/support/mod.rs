//! Shared helpers of the Engine.IO integration tests: an echo server on a loopback port that records
//! what its handler saw, a raw HTTP/1.1 client written on a plain `TcpStream`, and a WebSocket client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engineio::{CloseReason, Config, ConnectionHandler, EngineIo, Handler, Message, Socket};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

/// The bound every single wait of a test gets before it is a failure.
pub const WAIT: Duration = Duration::from_secs(5);

/// What the echo handler saw.
#[derive(Default)]
pub struct Record {
    /// Session ids, in connection order.
    pub connections: Mutex<Vec<String>>,
    /// Every `on_close`, in order.
    pub closes: Mutex<Vec<(String, CloseReason)>>,
    /// Every message, in order.
    pub messages: Mutex<Vec<(String, Message)>>,
}

struct Echo(Arc<Record>);

struct EchoConnection {
    socket: Socket,
    record: Arc<Record>,
}

impl Handler for Echo {
    fn on_connection(&self, socket: Socket) -> Arc<dyn ConnectionHandler> {
        self.0
            .connections
            .lock()
            .unwrap()
            .push(socket.id().to_owned());
        Arc::new(EchoConnection {
            socket,
            record: self.0.clone(),
        })
    }
}

impl ConnectionHandler for EchoConnection {
    fn on_message(&self, message: Message) {
        self.record
            .messages
            .lock()
            .unwrap()
            .push((self.socket.id().to_owned(), message.clone()));
        let _ = self.socket.send(message);
    }

    fn on_close(&self, reason: CloseReason) {
        self.record
            .closes
            .lock()
            .unwrap()
            .push((self.socket.id().to_owned(), reason));
    }
}

/// An echo server on `127.0.0.1:0`; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub engine: EngineIo,
    pub record: Arc<Record>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts an echo server with the default configuration.
pub async fn start_default() -> TestServer {
    start(Config::default()).await
}

/// Starts an echo server with `config`.
pub async fn start(config: Config) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let record = Arc::new(Record::default());
    let engine = EngineIo::new(config, Echo(record.clone()));
    let task = tokio::spawn(engine.clone().serve(listener));
    TestServer {
        addr,
        engine,
        record,
        task,
    }
}

/// Starts a server with `config` and an application `handler` of the test's own (its `record`
/// stays empty).
pub async fn start_with(config: Config, handler: impl Handler) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let engine = EngineIo::new(config, handler);
    let task = tokio::spawn(engine.clone().serve(listener));
    TestServer {
        addr,
        engine,
        record: Arc::default(),
        task,
    }
}

/// The query of a request on an existing polling session.
pub fn polling(sid: &str) -> String {
    format!("EIO=4&transport=polling&sid={sid}")
}

/// The query of a polling handshake.
pub const POLLING_HANDSHAKE: &str = "EIO=4&transport=polling";

/// The query of a direct WebSocket connection.
pub const WS_HANDSHAKE: &str = "EIO=4&transport=websocket";

impl TestServer {
    /// A request target on the Engine.IO path.
    pub fn target(&self, query: &str) -> String {
        format!("{}?{query}", self.engine.config().path)
    }

    /// `GET /engine.io/?query`.
    pub async fn get(&self, query: &str) -> HttpResponse {
        http(self.addr, "GET", &self.target(query), &[], b"").await
    }

    /// `POST /engine.io/?query` with a text body.
    pub async fn post(&self, query: &str, body: impl AsRef<[u8]>) -> HttpResponse {
        let headers = [("Content-Type", "text/plain;charset=UTF-8")];
        http(
            self.addr,
            "POST",
            &self.target(query),
            &headers,
            body.as_ref(),
        )
        .await
    }

    /// Any request on the Engine.IO path.
    pub async fn request(
        &self,
        method: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        http(self.addr, method, &self.target(query), headers, body).await
    }

    /// Every message the echo application received so far, in order, of any session.
    pub fn messages(&self) -> Vec<Message> {
        let messages = self.record.messages.lock().unwrap();
        messages
            .iter()
            .map(|(_, message)| message.clone())
            .collect()
    }

    /// Upgrades the polling session `sid` to WebSocket (`2probe`, `3probe`, `5`) and waits until
    /// the server has moved it.
    pub async fn upgrade(&self, sid: &str) -> Ws {
        let mut ws = self
            .ws(&format!("EIO=4&transport=websocket&sid={sid}"))
            .await
            .unwrap();
        send_text(&mut ws, "2probe").await;
        assert_eq!(recv_text(&mut ws).await, "3probe");
        send_text(&mut ws, "5").await;
        let socket = self.socket(sid);
        let done = wait_for(WAIT, || {
            (socket.transport() == engineio::TransportKind::WebSocket).then_some(())
        })
        .await;
        assert!(done.is_some(), "the upgrade did not complete");
        ws
    }

    /// A polling handshake: the session id and the open packet's JSON.
    pub async fn handshake(&self) -> (String, Value) {
        let response = self.get(POLLING_HANDSHAKE).await;
        assert_eq!(response.status, 200, "handshake: {}", response.text());
        let open = parse_open(&response.text());
        (open["sid"].as_str().unwrap().to_owned(), open)
    }

    /// Opens a WebSocket with this query (no open packet read).
    pub async fn ws(&self, query: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let url = format!("ws://{}{}", self.addr, self.target(query));
        let (ws, response) = tokio_tungstenite::client_async(url, stream).await?;
        assert_eq!(response.status(), 101);
        Ok(ws)
    }

    /// A direct WebSocket session: the socket, its session id and the open packet's JSON.
    pub async fn ws_session(&self) -> (Ws, String, Value) {
        let mut ws = self.ws(WS_HANDSHAKE).await.unwrap();
        let open = parse_open(&recv_text(&mut ws).await);
        let sid = open["sid"].as_str().unwrap().to_owned();
        (ws, sid, open)
    }

    /// The close reasons the handler saw for `sid`.
    pub fn closes_of(&self, sid: &str) -> Vec<CloseReason> {
        self.record
            .closes
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == sid)
            .map(|(_, r)| *r)
            .collect()
    }

    /// Waits (at most `within`) for the handler's `on_close` of `sid`; its reason.
    pub async fn wait_close(&self, sid: &str, within: Duration) -> CloseReason {
        let found = wait_for(within, || self.closes_of(sid).first().copied()).await;
        found.unwrap_or_else(|| panic!("no on_close for {sid} within {within:?}"))
    }

    /// Waits (at most `within`) until the server holds `n` sessions.
    pub async fn wait_session_count(&self, n: usize, within: Duration) {
        let reached = wait_for(within, || (self.engine.session_count() == n).then_some(())).await;
        assert!(
            reached.is_some(),
            "session count is {}, not {n}, after {within:?}",
            self.engine.session_count()
        );
    }

    /// The server-side socket of a live session.
    pub fn socket(&self, sid: &str) -> Socket {
        self.engine.socket(sid).expect("live session")
    }
}

/// Polls `check` every 10 ms until it answers `Some` or `within` passed.
pub async fn wait_for<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Parses an open packet (`0{...}`).
pub fn parse_open(text: &str) -> Value {
    let json = text
        .strip_prefix('0')
        .unwrap_or_else(|| panic!("not an open packet: {text:?}"));
    serde_json::from_str(json).unwrap()
}

/// A raw HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any header name starts with `prefix` (case-insensitive).
    pub fn has_header_prefix(&self, prefix: &str) -> bool {
        let prefix = prefix.to_ascii_lowercase();
        self.headers
            .iter()
            .any(|(n, _)| n.to_ascii_lowercase().starts_with(&prefix))
    }

    /// The body as UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// Asserts an official JSON error answer.
    pub fn assert_error(&self, status: u16, code: u8, message: &str) {
        assert_eq!(
            self.status,
            status,
            "body: {:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.json(),
            serde_json::json!({ "code": code, "message": message })
        );
    }
}

/// Sends one HTTP/1.1 request on a new connection (`Connection: close`) and reads the answer.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    tokio::time::timeout(WAIT * 6, http_inner(addr, method, target, headers, body))
        .await
        .unwrap_or_else(|_| panic!("{method} {target}: no answer"))
}

async fn http_inner(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let chunked = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    if !chunked && (!body.is_empty() || method == "POST" || method == "PUT") {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    if chunked {
        bytes.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(b"\r\n0\r\n\r\n");
    } else {
        bytes.extend_from_slice(body);
    }
    // One write: the whole request is on the wire before the server answers.
    stream.write_all(&bytes).await.unwrap();
    read_response(&mut stream).await
}

async fn read_response(stream: &mut TcpStream) -> HttpResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        let n = stream.read(&mut chunk).await.expect("read response head");
        assert!(n > 0, "connection closed before the response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..header_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut rest = buf[header_end + 4..].to_vec();
    let find_header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(len) = find_header("content-length") {
        let len: usize = len.parse().unwrap();
        while rest.len() < len {
            let n = stream.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "connection closed inside the body");
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(len);
        rest
    } else if find_header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            if let Some(body) = decode_chunked(&rest) {
                break body;
            }
            let n = stream.read(&mut chunk).await.expect("read chunked body");
            assert!(n > 0, "connection closed inside a chunked body");
            rest.extend_from_slice(&chunk[..n]);
        }
    } else if status == 101 || status == 204 || status == 304 {
        Vec::new()
    } else {
        // Until the end of the connection; a reset after the answer counts as its end.
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The body of a complete chunked encoding, or `None` when more bytes are needed.
fn decode_chunked(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// The WebSocket client type of the tests.
pub type Ws = WebSocketStream<TcpStream>;

/// The next data or close message (pings and pongs skipped), `None` when the stream ended; panics
/// when nothing comes within [`WAIT`].
pub async fn recv(ws: &mut Ws) -> Option<WsMessage> {
    recv_within(ws, WAIT)
        .await
        .expect("no WebSocket message in time")
}

/// Like [`recv`], waiting at most `within`: `Err(())` when nothing came.
pub async fn recv_within(ws: &mut Ws, within: Duration) -> Result<Option<WsMessage>, ()> {
    let next = async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                Some(Ok(message)) => return Some(message),
                Some(Err(_)) | None => return None,
            }
        }
    };
    tokio::time::timeout(within, next).await.map_err(|_| ())
}

/// The next message, which must be a text frame.
pub async fn recv_text(ws: &mut Ws) -> String {
    match recv(ws).await {
        Some(WsMessage::Text(text)) => text.to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next message, which must be a binary frame.
pub async fn recv_binary(ws: &mut Ws) -> Vec<u8> {
    match recv(ws).await {
        Some(WsMessage::Binary(data)) => data.to_vec(),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

/// Reads until the server closes: the close frame, if one came. Text frames on the way are returned.
pub async fn recv_close(ws: &mut Ws, within: Duration) -> (Option<CloseFrame>, Vec<String>) {
    let mut texts = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match recv_within(ws, left).await {
            Err(()) => {
                panic!("the server did not close the WebSocket within {within:?}; got {texts:?}")
            }
            Ok(None) => return (None, texts),
            Ok(Some(WsMessage::Close(frame))) => return (frame, texts),
            Ok(Some(WsMessage::Text(text))) => texts.push(text.to_string()),
            Ok(Some(_)) => {}
        }
    }
}

/// Sends a text frame.
pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(WsMessage::text(text)).await.unwrap();
}

/// Sends a binary frame.
pub async fn send_binary(ws: &mut Ws, data: &[u8]) {
    ws.send(WsMessage::binary(data.to_vec())).await.unwrap();
}
