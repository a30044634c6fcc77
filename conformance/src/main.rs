//! `conformance-server`: the server the official protocol test-suites and the differential suite drive.
//! Its contract is `conformance/SERVER.md`; `conformance/node/reference-server.js` implements the same
//! contract on the official Node packages.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use engineio::{CloseReason, ConnectionHandler, Cors, EngineIo, Handler, Message};
use serde_json::{json, Value};
use socketio::{
    AckSender, ConnectError, Data, DisconnectReason, MiddlewareError, RoomEvent, Socket, SocketIo,
};

// jemalloc hands freed memory back to the system, so RSS returns near its baseline after load.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Command line of the conformance server.
#[derive(Debug, Parser)]
#[command(
    name = "conformance-server",
    about = "Test-mode Engine.IO / Socket.IO server"
)]
struct Args {
    /// TCP port (listens on 127.0.0.1).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Engine.IO pingInterval in milliseconds.
    #[arg(long, default_value_t = 300)]
    ping_interval: u64,
    /// Engine.IO pingTimeout in milliseconds.
    #[arg(long, default_value_t = 200)]
    ping_timeout: u64,
    /// Socket.IO connectTimeout in milliseconds.
    #[arg(long, default_value_t = 1000)]
    connect_timeout: u64,
    /// maxHttpBufferSize in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    max_payload: usize,
    /// Connection state recovery's maxDisconnectionDuration in milliseconds; 0 leaves it off.
    #[arg(long, default_value_t = 0)]
    connection_state_recovery: u64,
    /// 1: serve the client bundle under `/socket.io/` (the official `serveClient`), from
    /// `--client-dist`.
    #[arg(long, default_value_t = 0)]
    serve_client: u8,
    /// The official bundle: `client-dist/` of the `socket.io` npm package; the ETag is the version
    /// in the `package.json` beside it (the official server's own version).
    #[arg(long, default_value = "node_modules/socket.io/client-dist")]
    client_dist: std::path::PathBuf,
    /// 1: WebSocket compression (the official `perMessageDeflate: true`, threshold 1024) on both
    /// paths.
    #[arg(long, default_value_t = 0)]
    per_message_deflate: u8,
}

/// The client bundle of `--client-dist`, with the version of the package it belongs to.
fn client_files(dist: &std::path::Path) -> std::io::Result<socketio::ClientFiles> {
    let manifest = dist
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("package.json");
    let manifest: Value = serde_json::from_slice(&std::fs::read(&manifest)?)?;
    let Some(version) = manifest["version"].as_str() else {
        return Err(std::io::Error::other(
            "the package.json beside --client-dist has no version",
        ));
    };
    socketio::ClientFiles::from_dir(dist, version).map_err(std::io::Error::other)
}

/// `/engine.io/`: every message goes back as it came.
struct Echo;
struct EchoConnection(engineio::Socket);

impl Handler for Echo {
    fn on_connection(&self, socket: engineio::Socket) -> Arc<dyn ConnectionHandler> {
        Arc::new(EchoConnection(socket))
    }
}

impl ConnectionHandler for EchoConnection {
    fn on_message(&self, message: Message) {
        let _ = self.0.send(message);
    }
    fn on_close(&self, _reason: CloseReason) {}
}

fn engine_config(args: &Args, path: &str) -> engineio::Config {
    let mut config = engineio::Config::default();
    config.path = path.to_owned();
    config.ping_interval = Duration::from_millis(args.ping_interval);
    config.ping_timeout = Duration::from_millis(args.ping_timeout);
    config.max_http_buffer_size = args.max_payload;
    config.cors = Some(Cors::default());
    if args.per_message_deflate == 1 {
        config.per_message_deflate = Some(engineio::PerMessageDeflate::default());
    }
    config
}

/// Splits the first argument off event data.
fn split_first(data: &Data) -> (Value, Data) {
    let first = data.args().first().cloned().unwrap_or(Value::Null);
    let rest = Data::new(
        data.args().iter().skip(1).cloned().collect(),
        data.attachments().to_vec(),
    );
    (first, rest)
}

/// A room argument: one name, or an array of names as the official `to()` / `except()` take.
fn room_names(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().flat_map(room_names).collect(),
        Value::String(s) => vec![s.clone()],
        other => vec![other.to_string()],
    }
}

fn room_name(value: &Value) -> String {
    room_names(value).into_iter().next().unwrap_or_default()
}

/// The rooms a socket was in when it started disconnecting, without its own id room.
#[derive(Clone)]
struct RoomsAtDisconnect(Vec<String>);

fn main_namespace(io: &SocketIo) {
    let server = io.clone();
    io.of("/").on_connection(move |socket: Socket| {
        let io = server.clone();
        async move {
            socket
                .emit("auth", &(socket.handshake().auth.clone(),))
                .ok();
            register_main_handlers(&io, &socket);
        }
    });
}

/// How long a forwarded acknowledgement is awaited: the reference server sets no limit.
const FORWARDED_ACK_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// `socket.emit(event, ...args)` where `args` ends with the client's ack function when it sent
/// one, as in the reference server: the event then asks the client for an ack, and the client's
/// answer becomes the answer to its own event.
async fn echo_with_ack(socket: &Socket, event: &str, data: Data, ack: Option<AckSender>) {
    // The compress flag on is the default: a plain emit.
    emit_flagged(socket.compress(true), event, data, ack).await;
}

/// Like [`echo_with_ack`], through a socket with emit flags (`socket.volatile`,
/// `socket.compress(false)`).
async fn emit_flagged(
    socket: socketio::FlaggedSocket,
    event: &str,
    data: Data,
    ack: Option<AckSender>,
) {
    match ack {
        None => {
            socket.emit_data(event, data).ok();
        }
        Some(ack) => {
            if let Ok(reply) = socket
                .emit_with_ack_data(event, data, FORWARDED_ACK_WAIT)
                .await
            {
                ack.send_data(reply).ok();
            }
        }
    }
}

/// `operator.emit(event, ...args)` where `args` may end with the client's ack function, as in the
/// reference server: the targets are then asked for an ack, and since no timeout is set the
/// sender's ack is answered at once with a timed-out error (an `Error` serializes to `{}`) and no
/// answers; with no target at all, with no error (`null`) and no answers.
async fn broadcast_with_ack(
    target: socketio::BroadcastOperator,
    event: &str,
    data: Data,
    ack: Option<AckSender>,
) {
    match ack {
        None => {
            target.emit_data(event, data).ok();
        }
        Some(ack) => {
            let Ok(answers) = target
                .timeout(Duration::ZERO)
                .emit_with_ack_data(event, data)
                .await
            else {
                return;
            };
            let error = if answers.replies.is_empty() && answers.missing.is_empty() {
                Value::Null
            } else {
                json!({})
            };
            ack.send(&(error, json!([]))).ok();
        }
    }
}

/// `join` (room, ack) and `leave` (room, ack), as the reference server's handlers.
fn register_join_leave(socket: &Socket) {
    socket.on("join", |socket, data, ack| async move {
        // `socket.join` takes one room or an array of them.
        if let Some(room) = data.args().first() {
            for room in room_names(room) {
                socket.join(room);
            }
        }
        if let Some(ack) = ack.filter(|_| data.args().len() == 1) {
            ack.send(&()).ok();
        }
    });
    socket.on("leave", |socket, data, ack| async move {
        // `socket.leave` takes one room: an array names no room.
        match data.args().first() {
            None | Some(Value::Array(_)) => {}
            Some(room) => socket.leave(&room_name(room)),
        }
        if let Some(ack) = ack.filter(|_| data.args().len() == 1) {
            ack.send(&()).ok();
        }
    });
}

fn register_main_handlers(io: &SocketIo, socket: &Socket) {
    socket.on("message", |socket, data, ack| async move {
        echo_with_ack(&socket, "message-back", data, ack).await;
    });
    socket.on("message-with-ack", |_, data, ack| async move {
        if let Some(ack) = ack {
            ack.send_data(data).ok();
        }
    });
    // The JavaScript handlers take their parameters by position: `(room, ack)` answers only when
    // the ack comes second, `(ack)` only when it comes first.
    register_join_leave(socket);
    socket.on("rooms", |socket, data, ack| async move {
        let rooms = socket.rooms();
        if let Some(ack) = ack.filter(|_| data.args().is_empty()) {
            ack.send(&(rooms,)).ok();
        }
    });
    socket.on("broadcast", |socket, data, ack| async move {
        broadcast_with_ack(socket.broadcast(), "broadcast", data, ack).await;
    });
    let io_all = io.clone();
    socket.on("emit-all", move |_, data, ack| {
        let io = io_all.clone();
        async move { broadcast_with_ack(io.of("/").to_all(), "broadcast", data, ack).await }
    });
    let io_room = io.clone();
    socket.on("to-room", move |_, data, ack| {
        let io = io_room.clone();
        async move {
            let (room, rest) = split_first(&data);
            let mut target = io.of("/").to_all();
            for room in room_names(&room) {
                target = target.to(room);
            }
            broadcast_with_ack(target, "room-message", rest, ack).await;
        }
    });
    let io_except = io.clone();
    socket.on("to-room-except", move |_, data, ack| {
        let io = io_except.clone();
        async move {
            let (room, rest) = split_first(&data);
            let (except, rest) = split_first(&rest);
            let mut target = io.of("/").to_all();
            for room in room_names(&room) {
                target = target.to(room);
            }
            for room in room_names(&except) {
                target = target.except(room);
            }
            broadcast_with_ack(target, "room-message", rest, ack).await;
        }
    });
    socket.on("socket-to-room", |socket, data, ack| async move {
        let (room, rest) = split_first(&data);
        let mut target = socket.broadcast();
        for room in room_names(&room) {
            target = target.to(room);
        }
        broadcast_with_ack(target, "room-message", rest, ack).await;
    });
    socket.on("volatile", |socket, data, ack| async move {
        emit_flagged(socket.volatile(), "volatile-back", data, ack).await;
    });
    socket.on("uncompressed", |socket, data, ack| async move {
        emit_flagged(socket.compress(false), "uncompressed-back", data, ack).await;
    });
    let io_fanout = io.clone();
    socket.on("fanout", move |_, data, _| {
        let io = io_fanout.clone();
        async move {
            let (room, rest) = split_first(&data);
            // A count given as a string counts too, as JavaScript's `i < count` coerces it.
            let count = rest
                .args()
                .first()
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
                .unwrap_or(0);
            let mut target = io.of("/").to_all();
            for room in room_names(&room) {
                target = target.to(room);
            }
            for i in 0..count {
                target.emit("fanout", &(i,)).ok();
            }
        }
    });
    socket.on("server-disconnect", |socket, data, _| async move {
        if data.args().first() == Some(&Value::Bool(true)) {
            socket.disconnect_connection();
        } else {
            socket.disconnect();
        }
    });
    socket.on("ask", |socket, data, ack| async move {
        // `(timeoutMs, ...rest)`: nothing is asked without an ack to answer.
        let Some(ack) = ack else { return };
        let (timeout, rest) = split_first(&data);
        let timeout = Duration::from_millis(timeout.as_u64().unwrap_or(1000));
        let answer = match socket.emit_with_ack_data("question", rest, timeout).await {
            Ok(reply) => Data::new(
                vec![json!({ "reply": reply.args() })],
                reply.attachments().to_vec(),
            ),
            Err(err) => Data::new(vec![json!({ "error": err.to_string() })], vec![]),
        };
        ack.send_data(answer).ok();
    });
    let io_ask = io.clone();
    socket.on("ask-all", move |_, data, ack| {
        let io = io_ask.clone();
        async move {
            // `(timeoutMs, ack)`: nothing is asked unless the ack comes second.
            let Some(ack) = ack.filter(|_| data.args().len() == 1) else {
                return;
            };
            let timeout =
                Duration::from_millis(data.args().first().and_then(Value::as_u64).unwrap_or(1000));
            let Ok(responses) = io.timeout(timeout).emit_with_ack("question-all", &()).await else {
                return;
            };
            let mut replies: Vec<Value> = responses
                .replies
                .iter()
                .map(|(_, d)| d.args().first().cloned().unwrap_or(Value::Null))
                .collect();
            replies.sort_by_key(|v| v.to_string());
            let error = responses.timed_out().then_some("operation has timed out");
            ack.send(&(json!({ "error": error, "replies": replies }),))
                .ok();
        }
    });
    socket.on("recovered", |socket, data, ack| async move {
        if let Some(ack) = ack.filter(|_| data.args().is_empty()) {
            ack.send(&(socket.recovered(),)).ok();
        }
    });
    socket.on("handshake", |socket, data, ack| async move {
        let hs = socket.handshake();
        let query: serde_json::Map<String, Value> = hs
            .query_pairs()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        // Absent headers are left out, as `undefined` is by JSON.stringify.
        let mut headers = serde_json::Map::new();
        // As Node's `req.headers`: a repeated user-agent keeps its first value, a repeated custom
        // header has its values joined with ", ".
        if let Some(agent) = hs.header("user-agent") {
            headers.insert("user-agent".to_owned(), Value::String(agent.into_owned()));
        }
        let custom: Vec<_> = hs
            .headers()
            .get_all("x-custom")
            .iter()
            .map(|v| socketio::latin1(v.as_bytes()))
            .collect();
        if !custom.is_empty() {
            headers.insert("x-custom".to_owned(), Value::String(custom.join(", ")));
        }
        let info = json!({
            "auth": hs.auth,
            "query": query,
            "headers": headers,
            "url": hs.url().to_string(),
            "secure": hs.secure(),
            "xdomain": hs.xdomain(),
        });
        if let Some(ack) = ack.filter(|_| data.args().is_empty()) {
            ack.send(&(info,)).ok();
        }
    });
    socket.on_disconnecting(|socket, _| async move {
        let own = socket.id().to_owned();
        let rooms: Vec<String> = socket.rooms().into_iter().filter(|r| *r != own).collect();
        socket.set_extension(RoomsAtDisconnect(rooms));
    });
    let io_gone = io.clone();
    socket.on_disconnect(move |socket, reason: DisconnectReason| {
        let io = io_gone.clone();
        async move {
            let rooms = socket
                .extension::<RoomsAtDisconnect>()
                .map(|r| r.0)
                .unwrap_or_default();
            io.to("observers")
                .emit(
                    "peer-disconnect",
                    &(json!({ "id": socket.id(), "reason": reason.as_str(), "rooms": rooms }),),
                )
                .ok();
        }
    });
}

fn other_namespaces(io: &SocketIo) {
    io.of("/custom").on_connection(|socket: Socket| async move {
        socket
            .emit("auth", &(socket.handshake().auth.clone(),))
            .ok();
    });
    let auth = io.of("/auth");
    auth.use_middleware(|socket: Socket| async move {
        if socket.handshake().auth.get("token") == Some(&json!("secret")) {
            Ok(())
        } else {
            Err(ConnectError::new("not authorized").with_data(json!({ "reason": "bad token" })))
        }
    });
    auth.on_connection(|socket: Socket| async move {
        socket
            .emit("auth", &(socket.handshake().auth.clone(),))
            .ok();
    });
    let shout_io = io.clone();
    let guarded_room_events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = guarded_room_events.clone();
    io.of("/guarded")
        .on_room_event(move |event| record.lock().unwrap().push(event.clone()));
    io.of("/guarded").on_connection(move |socket: Socket| {
        let io = shout_io.clone();
        let guarded_room_events = guarded_room_events.clone();
        async move {
            socket.on_any(|socket, event, _| async move {
                socket.emit("seen", &(event,)).ok();
            });
            socket.use_middleware(|_, event| async move {
                if event.name == "forbidden" {
                    Err(MiddlewareError::new("forbidden event"))
                } else {
                    Ok(event)
                }
            });
            socket.use_middleware(|_, mut event| async move {
                if event.name == "alias" {
                    event.name = "echo".into();
                }
                Ok(event)
            });
            socket.on("echo", |socket, data, ack| async move {
                match ack {
                    Some(ack) => ack.send_data(data).ok(),
                    None => socket.emit_data("echo-back", data).ok(),
                };
            });
            socket.on("alias", |socket, _, _| async move {
                socket.emit("alias-handler-ran", &()).ok();
            });
            socket.on_error(|socket, err| async move {
                socket.emit("refused", &(err.to_string(),)).ok();
            });
            let outgoing = Arc::new(std::sync::Mutex::new(Vec::new()));
            let log = outgoing.clone();
            socket.on_any_outgoing(move |_, event, data| {
                let mut entry = vec![Value::String(event)];
                entry.extend(data.args().iter().cloned());
                log.lock().unwrap().push(Value::Array(entry));
                async {}
            });
            socket.on("shout", move |_, _, _| {
                let io = io.clone();
                async move {
                    io.of("/guarded").emit("shouted", &()).ok();
                }
            });
            register_join_leave(&socket);
            let room_events = guarded_room_events.clone();
            socket.on("room-events", move |socket, data, ack| {
                let room_events = room_events.clone();
                async move {
                    let (Some(ack), Ok(prefix)) = (ack, data.arg::<String>(0)) else {
                        return;
                    };
                    let mine = |id: &str| if id == socket.id() { "self" } else { "other" };
                    let events: Vec<Value> = room_events
                        .lock()
                        .unwrap()
                        .iter()
                        .filter_map(|event| {
                            let (kind, room, sid) = match event {
                                RoomEvent::Created(room) => ("create-room", room, None),
                                RoomEvent::Joined { room, sid } => ("join-room", room, Some(sid)),
                                RoomEvent::Left { room, sid } => ("leave-room", room, Some(sid)),
                                RoomEvent::Deleted(room) => ("delete-room", room, None),
                                _ => return None,
                            };
                            if room != socket.id() && !room.starts_with(&prefix) {
                                return None;
                            }
                            let room = if room == socket.id() {
                                "self"
                            } else {
                                room.as_str()
                            };
                            let mut entry = vec![json!(kind), json!(room)];
                            entry.extend(sid.map(|sid| json!(mine(sid))));
                            Some(Value::Array(entry))
                        })
                        .collect();
                    ack.send(&(events,)).ok();
                }
            });
            socket.on("outgoing-log", move |_, data, ack| {
                let log = Value::Array(outgoing.lock().unwrap().clone());
                async move {
                    // `(ack)`: answered only when the ack is all the client sent.
                    if let (Some(ack), true) = (ack, data.is_empty()) {
                        ack.send(&(log,)).ok();
                    }
                }
            });
        }
    });
    io.dynamic(|name| {
        name.strip_prefix("/dynamic-").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
    })
    .on_connection(|socket: Socket| async move {
        socket.emit("nsp", socket.ns()).ok();
    });
}

// One thread, as the official server it is compared with: requests are handled in the order their
// bytes arrive (a GET sent right after a WebSocket's `5` finds the session upgraded), where two
// workers could take a later request first.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    conformance::init_tracing();
    let args = Args::parse();
    let engine = EngineIo::new(engine_config(&args, "/engine.io/"), Echo);
    let mut config = socketio::Config::default();
    config.engine = engine_config(&args, "/socket.io/");
    config.connect_timeout = Duration::from_millis(args.connect_timeout);
    if args.connection_state_recovery > 0 {
        let mut recovery = socketio::ConnectionStateRecovery::default();
        recovery.max_disconnection_duration = Duration::from_millis(args.connection_state_recovery);
        config.connection_state_recovery = Some(recovery);
    }
    if args.serve_client == 1 {
        config.serve_client = Some(Arc::new(client_files(&args.client_dist)?));
    }
    let io = SocketIo::new(config);
    main_namespace(&io);
    other_namespaces(&io);

    let listener = conformance::listen(args.port).await?;
    let (stop_engine, stop_io) = (engine.clone(), io.clone());
    engineio::serve_fn_until(
        listener,
        move |request, remote| {
            let engine = engine.clone();
            let io = io.clone();
            async move {
                if engine.handles_path(request.uri().path()) {
                    engine.handle(request, remote).await
                } else if io.handles_path(request.uri().path()) {
                    io.handle(request, remote).await
                } else {
                    let mut response = http::Response::new(engineio::Body::default());
                    *response.status_mut() = http::StatusCode::NOT_FOUND;
                    response
                }
            }
        },
        conformance::stop_requested(),
    )
    .await?;
    // As the reference server: close every session, give the close packets a moment, exit 0.
    stop_io.shutdown();
    stop_engine.shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}
