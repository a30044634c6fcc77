//! `client-suite-server`: the test servers of the official clients' own test suites, on this
//! project's crates, so that those suites (`socket.io-client` and `engine.io-client`, run with
//! `mocha` from the official repository) can be pointed at this server instead of the Node one.
//!
//! - `--suite socket.io-client` (port 3210): the handlers of `test/support/server.ts` of
//!   `socket.io-client`: `pingInterval` 2000, connection state recovery on, handshakes answered
//!   after 10 ms (its `allowRequest`), namespaces `/`, `/foo`, `/timeout_socket`, `/valid`, `/asd`,
//!   `/abc`, `/no`.
//! - `--suite engine.io-client` (port 3000): the server of `test/support/hooks.js` of
//!   `engine.io-client`: Engine.IO on `/engine.io/`, `pingInterval` 500, `maxHttpBufferSize` 100,
//!   handshakes with a `deny` query parameter refused, four `Set-Cookie` headers on handshakes, `hi`
//!   on open, every message bounced (`give binary`, `give utf8` and `sendHeaders` answered).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use engineio::{CloseReason, ConnectionHandler, EngineIo, Handler, Message};
use serde_json::{json, Map, Value};
use socketio::{Binary, ConnectError, Data, Socket, SocketIo};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Suite {
    /// `socket.io-client`'s `test/support/server.ts`.
    #[value(name = "socket.io-client")]
    SocketIoClient,
    /// `engine.io-client`'s `test/support/server.js`.
    #[value(name = "engine.io-client")]
    EngineIoClient,
}

/// Command line of the client-suite server.
#[derive(Debug, Parser)]
#[command(
    name = "client-suite-server",
    about = "The test servers of the official clients' test suites"
)]
struct Args {
    /// Which suite's server.
    #[arg(long, value_enum)]
    suite: Suite,
    /// TCP port (listens on 127.0.0.1); 3210 for socket.io-client, 3000 for engine.io-client.
    #[arg(long)]
    port: Option<u16>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    conformance::init_tracing();
    let args = Args::parse();
    match args.suite {
        Suite::SocketIoClient => serve_socketio(args.port.unwrap_or(3210)).await,
        Suite::EngineIoClient => serve_engineio(args.port.unwrap_or(3000)).await,
    }
}

fn not_found() -> http::Response<engineio::Body> {
    let mut response = http::Response::new(engineio::Body::default());
    *response.status_mut() = http::StatusCode::NOT_FOUND;
    response
}

/// The headers of the last polling request that carried data, by Engine.IO session id (what the
/// Node test server reads as `socket.transport.dataReq.headers`).
type DataRequestHeaders = Arc<Mutex<HashMap<String, http::HeaderMap>>>;

async fn serve_engineio(port: u16) -> std::io::Result<()> {
    let mut config = engineio::Config::default();
    config.path = "/engine.io/".to_owned();
    config.ping_interval = Duration::from_millis(500);
    config.max_http_buffer_size = 100;
    config.allow_request = Some(Arc::new(|request, _| {
        let denied = request
            .uri
            .query()
            .is_some_and(|q| form_pairs(q).any(|(key, _)| key == "deny"));
        if denied {
            Err(engineio::Refusal::default())
        } else {
            Ok(())
        }
    }));
    config.headers = Some(Arc::new(|_, headers, handshake| {
        if handshake {
            for cookie in suite_cookies(SystemTime::now()) {
                if let Ok(value) = http::HeaderValue::from_str(&cookie) {
                    headers.append(http::header::SET_COOKIE, value);
                }
            }
        }
    }));
    let data_requests = DataRequestHeaders::default();
    let engine = EngineIo::new(
        config,
        Bounce {
            data_requests: data_requests.clone(),
        },
    );
    let listener = conformance::listen(port).await?;
    engineio::serve_fn_until(
        listener,
        move |request, remote| {
            let engine = engine.clone();
            let data_requests = data_requests.clone();
            async move {
                if !engine.handles_path(request.uri().path()) {
                    return not_found();
                }
                if request.method() == http::Method::POST {
                    let sid = request.uri().query().and_then(|q| {
                        form_pairs(q).find_map(|(key, value)| (key == "sid").then_some(value))
                    });
                    if let Some(sid) = sid {
                        let mut requests = data_requests.lock().unwrap_or_else(|e| e.into_inner());
                        requests.insert(sid, request.headers().clone());
                    }
                }
                engine.handle(request, remote).await
            }
        },
        conformance::stop_requested(),
    )
    .await
}

fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// The `Set-Cookie` values the suite's `initial_headers` listener adds, as the `cookie` package
/// writes them: two kept, one with `Max-Age=0` and one that expires now.
fn suite_cookies(now: SystemTime) -> [String; 4] {
    [
        "1=1; Max-Age=86400".to_owned(),
        "2=2; Path=/; HttpOnly; Secure; SameSite=Strict".to_owned(),
        "3=3; Max-Age=0".to_owned(),
        format!("4=4; Expires={}", httpdate::fmt_http_date(now)),
    ]
}

/// Says `hi`, then bounces every message.
struct Bounce {
    data_requests: DataRequestHeaders,
}

struct BounceConnection {
    socket: engineio::Socket,
    data_requests: DataRequestHeaders,
}

impl Handler for Bounce {
    fn on_connection(&self, socket: engineio::Socket) -> Arc<dyn ConnectionHandler> {
        let _ = socket.send(Message::Text("hi".to_owned()));
        Arc::new(BounceConnection {
            socket,
            data_requests: self.data_requests.clone(),
        })
    }
}

impl BounceConnection {
    /// The headers of the polling request that carried the current message, as a JSON object.
    fn data_request_headers(&self) -> String {
        let requests = self.data_requests.lock().unwrap_or_else(|e| e.into_inner());
        let Some(headers) = requests.get(self.socket.id()) else {
            return "null".to_owned();
        };
        let mut object = Map::new();
        for name in headers.keys() {
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            // Node joins repeated headers with ", ", and cookies with "; ".
            let separator = if name == http::header::COOKIE {
                "; "
            } else {
                ", "
            };
            object.insert(name.as_str().to_owned(), json!(values.join(separator)));
        }
        Value::Object(object).to_string()
    }
}

impl ConnectionHandler for BounceConnection {
    fn on_message(&self, message: Message) {
        let answer = match message {
            Message::Text(text) if text == "give binary" => {
                Message::Binary(Bytes::from_static(&[0, 1, 2, 3, 4]))
            }
            Message::Text(text) if text == "give utf8" => {
                Message::Text("пойду спать всем спокойной ночи".to_owned())
            }
            Message::Text(text) if text == "sendHeaders" => {
                Message::Text(self.data_request_headers())
            }
            other => other,
        };
        let _ = self.socket.send(answer);
    }
    fn on_close(&self, _reason: CloseReason) {
        let mut requests = self.data_requests.lock().unwrap_or_else(|e| e.into_inner());
        requests.remove(self.socket.id());
    }
}

async fn serve_socketio(port: u16) -> std::io::Result<()> {
    let mut config = socketio::Config::default();
    config.engine.ping_interval = Duration::from_millis(2000);
    config.connection_state_recovery = Some(socketio::ConnectionStateRecovery::default());
    let io = SocketIo::new(config);
    register_namespaces(&io);
    let listener = conformance::listen(port).await?;
    let stop_io = io.clone();
    engineio::serve_fn_until(
        listener,
        move |request, remote| {
            let io = io.clone();
            async move {
                if !io.handles_path(request.uri().path()) {
                    return not_found();
                }
                // The suite's `allowRequest` answers handshakes after 10 ms, which the client's
                // `timeout: 0` tests rely on to see the connection time out.
                let handshake = !request
                    .uri()
                    .query()
                    .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("sid=")));
                if handshake {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                io.handle(request, remote).await
            }
        },
        conformance::stop_requested(),
    )
    .await?;
    stop_io.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

fn register_namespaces(io: &SocketIo) {
    io.of("/foo").on_connection(|socket: Socket| async move {
        socket.on("getId", |socket, _, ack| async move {
            if let Some(ack) = ack {
                ack.send(&(socket.id(),)).ok();
            }
        });
    });
    for name in ["/timeout_socket", "/valid", "/asd"] {
        io.of(name).on_connection(|_: Socket| async {});
    }
    io.of("/abc").on_connection(|socket: Socket| async move {
        socket.emit("handshake", &(handshake_json(&socket),)).ok();
    });
    io.of("/").use_middleware(|socket: Socket| async move {
        // `socket.request._query.fail` is truthy: present and not empty.
        match socket.handshake().query("fail") {
            Some(fail) if !fail.is_empty() => {
                Err(ConnectError::new("Auth failed (main namespace)"))
            }
            _ => Ok(()),
        }
    });
    io.of("/no").use_middleware(|_: Socket| async {
        Err(ConnectError::new("Auth failed (custom namespace)"))
    });
    io.of("/").on_connection(|socket: Socket| async move {
        register_main_handlers(&socket);
    });
}

/// Whether a JSON argument stands for a binary attachment (a `Buffer` on the Node server).
fn is_binary(value: &Value) -> bool {
    value.get("_placeholder") == Some(&Value::Bool(true)) && value.get("num").is_some()
}

/// The first argument of `data`, with the attachments it may refer to.
fn first_arg(data: &Data) -> Data {
    let first = data.args().first().cloned().unwrap_or(Value::Null);
    Data::new(vec![first], data.attachments().to_vec())
}

/// Whether the argument is `{ hello: "lol", message: <binary>, goodbye: "gotcha" }`.
fn is_mixed_json_and_binary(value: &Value) -> bool {
    value.get("hello") == Some(&json!("lol"))
        && value.get("message").is_some_and(is_binary)
        && value.get("goodbye") == Some(&json!("gotcha"))
}

fn register_main_handlers(socket: &Socket) {
    socket.on("hi", |socket, _, _| async move {
        socket.emit("hi", &()).ok();
    });
    socket.on("echo", |_, data, ack| async move {
        if let Some(ack) = ack {
            ack.send_data(first_arg(&data)).ok();
        }
    });
    socket.on("ack", |socket, _, _| async move {
        // The Node server sets no timeout on this ack.
        if let Ok(reply) = socket
            .emit_with_ack("ack", &(), Duration::from_secs(24 * 60 * 60))
            .await
        {
            let args = reply.args();
            if args.first() == Some(&json!(5))
                && args.get(1).and_then(|b| b.get("test")).is_some_and(truthy)
            {
                socket.emit("got it", &()).ok();
            }
        }
    });
    socket.on("getAckDate", |_, _, ack| async move {
        if let Some(ack) = ack {
            ack.send(&(iso_now(),)).ok();
        }
    });
    socket.on("getDate", |socket, _, _| async move {
        socket.emit("takeDate", &(iso_now(),)).ok();
    });
    socket.on("getDateObj", |socket, _, _| async move {
        socket
            .emit("takeDateObj", &(json!({ "date": iso_now() }),))
            .ok();
    });
    socket.on("getUtf8", |socket, _, _| async move {
        for text in [
            "てすと",
            "Я Б Г Д Ж Й",
            "Ä ä Ü ü ß",
            "utf8 — string",
            "utf8 — string",
        ] {
            socket.emit("takeUtf8", &(text,)).ok();
        }
    });
    socket.on("false", |socket, _, _| async move {
        socket.emit("false", &(false,)).ok();
    });
    socket.on("doge", |socket, _, _| async move {
        socket
            .emit("doge", &(Binary::from(b"asdfasdf".to_vec()),))
            .ok();
    });
    socket.on("buffa", |socket, data, _| async move {
        if data.args().first().is_some_and(is_binary) {
            socket.emit("buffack", &()).ok();
        }
    });
    socket.on("jsonbuff", |socket, data, _| async move {
        if data.args().first().is_some_and(is_mixed_json_and_binary) {
            socket.emit("jsonbuff-ack", &()).ok();
        }
    });
    let received_abuff1 = Arc::new(AtomicBool::new(false));
    let seen = received_abuff1.clone();
    socket.on("abuff1", move |_, data, _| {
        let seen = seen.clone();
        async move {
            if data.args().first().is_some_and(is_binary) {
                seen.store(true, Ordering::SeqCst);
            }
        }
    });
    socket.on("abuff2", move |socket, _, _| {
        let seen = received_abuff1.clone();
        async move {
            if seen.load(Ordering::SeqCst) {
                socket.emit("abuff2-ack", &()).ok();
            }
        }
    });
    socket.on("blob", |socket, data, _| async move {
        if data.args().first().is_some_and(is_binary) {
            socket.emit("back", &()).ok();
        }
    });
    socket.on("jsonblob", |socket, data, _| async move {
        if data.args().first().is_some_and(is_mixed_json_and_binary) {
            socket.emit("jsonblob-ack", &()).ok();
        }
    });
    let blob1 = Arc::new(AtomicBool::new(false));
    let blob2 = Arc::new(AtomicBool::new(false));
    let seen1 = blob1.clone();
    socket.on("blob1", move |_, data, _| {
        let seen1 = seen1.clone();
        async move {
            if data.args().first().is_some_and(is_binary) {
                seen1.store(true, Ordering::SeqCst);
            }
        }
    });
    let (seen1, seen2) = (blob1.clone(), blob2.clone());
    socket.on("blob2", move |_, data, _| {
        let (seen1, seen2) = (seen1.clone(), seen2.clone());
        async move {
            if seen1.load(Ordering::SeqCst) && data.args().first() == Some(&json!("second")) {
                seen2.store(true, Ordering::SeqCst);
            }
        }
    });
    socket.on("blob3", move |socket, data, _| {
        let (seen1, seen2) = (blob1.clone(), blob2.clone());
        async move {
            if data.args().first().is_some_and(is_binary)
                && seen1.load(Ordering::SeqCst)
                && seen2.load(Ordering::SeqCst)
            {
                socket.emit("blob3-ack", &()).ok();
            }
        }
    });
    socket.on("getbin", |socket, _, _| async move {
        socket
            .emit("takebin", &(Binary::from(b"asdfasdf".to_vec()),))
            .ok();
    });
    socket.on("getHandshake", |socket, _, ack| async move {
        if let Some(ack) = ack {
            ack.send(&(handshake_json(&socket),)).ok();
        }
    });
    socket.on("getId", |socket, _, ack| async move {
        if let Some(ack) = ack {
            ack.send(&(socket.id(),)).ok();
        }
    });
}

/// JavaScript truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Request headers as Node's `IncomingMessage.headers` holds them: lower-case names, repeated
/// headers joined with `, ` (cookies with `; `).
fn headers_json(headers: &http::HeaderMap) -> Value {
    let mut object = Map::new();
    for name in headers.keys() {
        let values: Vec<_> = headers
            .get_all(name)
            .iter()
            .map(|v| socketio::latin1(v.as_bytes()))
            .collect();
        let separator = if name == http::header::COOKIE {
            "; "
        } else {
            ", "
        };
        object.insert(name.as_str().to_owned(), json!(values.join(separator)));
    }
    Value::Object(object)
}

/// `socket.handshake` as the Node server serializes it.
fn handshake_json(socket: &Socket) -> Value {
    let handshake = socket.handshake();
    // Node builds the query object from URLSearchParams: the last of repeated keys wins.
    let mut query = Map::new();
    for (key, value) in handshake.query_pairs() {
        query.insert(key, Value::String(value));
    }
    let issued = handshake
        .time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    json!({
        "headers": headers_json(handshake.headers()),
        "time": js_date_string(handshake.time),
        "address": handshake.address().ip().to_string(),
        "xdomain": handshake.xdomain(),
        "secure": handshake.secure(),
        "issued": issued,
        "url": handshake.url().to_string(),
        "query": query,
        "auth": handshake.auth,
    })
}

/// `new Date()` as JSON carries it: ISO 8601 with milliseconds, in UTC.
fn iso_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// `new Date().toString()` in UTC: `Sat Nov 28 2026 07:50:00 GMT+0000 (Coordinated Universal Time)`.
fn js_date_string(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let weekday = DAYS[((secs / 86_400) % 7) as usize];
    // `2026-11-28T07:50:00Z`: the calendar fields, already computed by humantime.
    let iso = humantime::format_rfc3339_seconds(time).to_string();
    let field = |range: std::ops::Range<usize>| iso.get(range).unwrap_or("00").to_owned();
    let month = field(5..7).parse::<usize>().unwrap_or(1);
    format!(
        "{weekday} {} {} {} {} GMT+0000 (Coordinated Universal Time)",
        MONTHS[month.clamp(1, 12) - 1],
        field(8..10),
        field(0..4),
        field(11..19),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_javascript_writes_them() {
        let time = UNIX_EPOCH + Duration::from_millis(1_795_838_400_123);
        assert_eq!(
            humantime::format_rfc3339_millis(time).to_string(),
            "2026-11-28T04:00:00.123Z"
        );
        assert_eq!(
            js_date_string(time),
            "Sat Nov 28 2026 04:00:00 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(
            js_date_string(UNIX_EPOCH),
            "Thu Jan 01 1970 00:00:00 GMT+0000 (Coordinated Universal Time)"
        );
    }
}
