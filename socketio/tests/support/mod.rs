//! Shared helpers of the Socket.IO integration tests: a `SocketIo` server on a loopback port and a raw
//! client that speaks Engine.IO over WebSocket (or long-polling) and Socket.IO packets as text.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use socketio::{Config, SocketIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

/// The bound every single wait of a test gets before it is a failure.
pub const WAIT: Duration = Duration::from_secs(5);

/// A Socket.IO server on `127.0.0.1:0`; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub io: SocketIo,
    task: JoinHandle<std::io::Result<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a server with the default configuration; `setup` registers namespaces and handlers.
pub async fn start(setup: impl FnOnce(&SocketIo)) -> TestServer {
    start_with(Config::default(), setup).await
}

/// Starts a server with `config`.
pub async fn start_with(config: Config, setup: impl FnOnce(&SocketIo)) -> TestServer {
    let io = SocketIo::new(config);
    setup(&io);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(io.clone().serve(listener));
    TestServer { addr, io, task }
}

impl TestServer {
    /// A request target on the Socket.IO path.
    pub fn target(&self, query: &str) -> String {
        format!("{}?{query}", self.io.engine().config().path)
    }

    /// A new Engine.IO connection over WebSocket (the open packet already read).
    pub async fn client(&self) -> Client {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let url = format!(
            "ws://{}{}",
            self.addr,
            self.target("EIO=4&transport=websocket")
        );
        let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
        let mut client = Client {
            ws,
            engine_sid: String::new(),
            answer_pings: true,
        };
        match client.next_frame().await {
            Some(Frame::EngineText(open)) if open.starts_with('0') => {
                let open: Value = serde_json::from_str(&open[1..]).unwrap();
                client.engine_sid = open["sid"].as_str().unwrap().to_owned();
            }
            other => panic!("expected the open packet, got {other:?}"),
        }
        client
    }

    /// A new connection joined to `/`: the client and its Socket.IO id.
    pub async fn connected(&self) -> (Client, String) {
        let mut client = self.client().await;
        let sid = client.join("/", None).await;
        (client, sid)
    }

    /// A new long-polling connection joined to `/`: its Engine.IO id and its Socket.IO id (never
    /// the same).
    pub async fn polling_connected(&self) -> (String, String) {
        let open = http(
            self.addr,
            "GET",
            &self.target("EIO=4&transport=polling"),
            b"",
        )
        .await
        .text();
        let open: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
        let engine_sid = open["sid"].as_str().unwrap().to_owned();
        let query = polling_query(&engine_sid);
        let posted = http(self.addr, "POST", &self.target(&query), b"40").await;
        assert_eq!(posted.text(), "ok");
        let answer = http(self.addr, "GET", &self.target(&query), b"")
            .await
            .text();
        let (prefix, json) = split_json(&answer);
        assert_eq!(prefix, "40");
        let sid = json["sid"].as_str().unwrap().to_owned();
        assert_ne!(sid, engine_sid);
        (engine_sid, sid)
    }

    /// The server-side socket of `/` with this id.
    pub fn socket(&self, sid: &str) -> socketio::Socket {
        self.io.of("/").socket(sid).expect("a connected socket")
    }
}

/// The query of a long-polling request of the Engine.IO session `engine_sid`.
pub fn polling_query(engine_sid: &str) -> String {
    format!("EIO=4&transport=polling&sid={engine_sid}")
}

/// What the raw client received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Frame {
    /// A Socket.IO packet (an Engine.IO message, without its `4`).
    Packet(String),
    /// A binary Engine.IO message (an attachment).
    Binary(Vec<u8>),
    /// Another Engine.IO text packet (open, ping, noop, …).
    EngineText(String),
    /// The server closed the WebSocket.
    Closed,
}

/// A raw Socket.IO client over an Engine.IO WebSocket.
pub struct Client {
    pub ws: WebSocketStream<TcpStream>,
    pub engine_sid: String,
    /// Whether Engine.IO pings are answered (and hidden from the test).
    pub answer_pings: bool,
}

impl Client {
    /// Sends a Socket.IO packet (`4` is prepended).
    pub async fn send(&mut self, packet: &str) {
        self.send_engine(&format!("4{packet}")).await;
    }

    /// Sends a raw Engine.IO text packet.
    pub async fn send_engine(&mut self, text: &str) {
        self.ws.send(WsMessage::text(text)).await.unwrap();
    }

    /// Sends a binary Engine.IO message (an attachment).
    pub async fn send_binary(&mut self, data: &[u8]) {
        self.ws
            .send(WsMessage::binary(data.to_vec()))
            .await
            .unwrap();
    }

    async fn next_frame(&mut self) -> Option<Frame> {
        tokio::time::timeout(WAIT, self.next_frame_inner())
            .await
            .ok()
    }

    async fn next_frame_inner(&mut self) -> Frame {
        loop {
            match self.ws.next().await {
                Some(Ok(WsMessage::Text(text))) => {
                    if text.as_str() == "2" && self.answer_pings {
                        let _ = self.ws.send(WsMessage::text("3")).await;
                        continue;
                    }
                    return match text.strip_prefix('4') {
                        Some(packet) => Frame::Packet(packet.to_owned()),
                        None => Frame::EngineText(text.to_string()),
                    };
                }
                Some(Ok(WsMessage::Binary(data))) => return Frame::Binary(data.to_vec()),
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return Frame::Closed,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next frame; panics when nothing comes within [`WAIT`].
    pub async fn recv(&mut self) -> Frame {
        self.next_frame().await.expect("nothing received in time")
    }

    /// The next frame, which must be a Socket.IO packet.
    pub async fn recv_packet(&mut self) -> String {
        match self.recv().await {
            Frame::Packet(packet) => packet,
            other => panic!("expected a Socket.IO packet, got {other:?}"),
        }
    }

    /// The next frame, which must be an attachment.
    pub async fn recv_binary(&mut self) -> Vec<u8> {
        match self.recv().await {
            Frame::Binary(data) => data,
            other => panic!("expected an attachment, got {other:?}"),
        }
    }

    /// Waits until the server closes the connection; the packets received on the way.
    pub async fn expect_closed(&mut self) -> Vec<Frame> {
        let mut seen = Vec::new();
        loop {
            match self.next_frame().await {
                Some(Frame::Closed) => return seen,
                Some(frame) => seen.push(frame),
                None => panic!("the server did not close the connection; got {seen:?}"),
            }
        }
    }

    /// Nothing arrives within `within`, and the connection stays open.
    pub async fn expect_nothing(&mut self, within: Duration) {
        if let Ok(frame) = tokio::time::timeout(within, self.next_frame_inner()).await {
            panic!("expected nothing, got {frame:?}");
        }
    }

    /// Sends CONNECT for `nsp` (with `auth`) and reads the answer, which must be a CONNECT: the
    /// socket id.
    pub async fn join(&mut self, nsp: &str, auth: Option<Value>) -> String {
        self.send(&connect_packet(nsp, auth.as_ref())).await;
        let answer = self.recv_packet().await;
        let prefix = if nsp == "/" {
            "0".to_owned()
        } else {
            format!("0{nsp},")
        };
        let json = answer
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("expected a CONNECT for {nsp}, got {answer:?}"));
        let value: Value = serde_json::from_str(json).unwrap();
        let object = value.as_object().unwrap();
        assert_eq!(object.len(), 1, "{value}");
        object["sid"].as_str().unwrap().to_owned()
    }
}

/// The CONNECT packet text for `nsp`.
pub fn connect_packet(nsp: &str, auth: Option<&Value>) -> String {
    let mut packet = String::from("0");
    if nsp != "/" {
        packet.push_str(nsp);
        packet.push(',');
    }
    if let Some(auth) = auth {
        packet.push_str(&auth.to_string());
    }
    packet
}

/// Splits an EVENT/ACK packet text into its prefix (type, attachments, namespace, id) and its JSON.
pub fn split_json(packet: &str) -> (&str, Value) {
    let start = packet
        .find(['[', '{'])
        .unwrap_or_else(|| panic!("no JSON in {packet:?}"));
    (
        &packet[..start],
        serde_json::from_str(&packet[start..]).unwrap(),
    )
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

/// A raw HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of the header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
}

/// Sends one HTTP/1.1 request on a new connection (`Connection: close`) and reads the answer, whose
/// body must have a `Content-Length`.
pub async fn http(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> HttpResponse {
    http_with(addr, method, target, &[], body).await
}

/// Like [`http`], with more request headers.
pub async fn http_with(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let request = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let extra: String = headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let mut bytes = format!(
            "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the response head");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .expect("a Content-Length");
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed inside the body");
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
        HttpResponse {
            status,
            headers,
            body,
        }
    };
    tokio::time::timeout(WAIT * 6, request)
        .await
        .expect("no HTTP answer")
}
