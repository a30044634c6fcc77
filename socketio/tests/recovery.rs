//! Connection state recovery (`Config::connection_state_recovery`): the CONNECT answer carries a
//! `pid`, events carry their offset last, and a client that lost its connection and comes back with
//! `{pid, offset}` gets its id, rooms and extensions back, with the packets it missed sent before its
//! CONNECT answer. Leaving on purpose, or an unknown offset, gives a new socket.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use socketio::{Config, ConnectionStateRecovery, SocketIo};
use support::*;

#[derive(Clone, Debug, PartialEq)]
struct Tag(&'static str);

fn recovery_config(skip_middlewares: bool) -> Config {
    let mut recovery = ConnectionStateRecovery::default();
    recovery.skip_middlewares = skip_middlewares;
    let mut config = Config::default();
    config.connection_state_recovery = Some(recovery);
    config
}

/// On `/`: a new socket joins `news` and gets a tag; every socket is welcomed with whether it was
/// recovered. Middleware runs are counted.
fn setup(io: &SocketIo, middleware_runs: Arc<AtomicUsize>) {
    let nsp = io.of("/");
    nsp.use_middleware(move |_| {
        let runs = middleware_runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    nsp.on_connection(|socket| async move {
        if !socket.recovered() {
            socket.join("news");
            socket.set_extension(Tag("kept"));
        }
        socket.emit("welcome", &(socket.recovered(),)).unwrap();
    });
}

/// Joins `/` with `auth`; the CONNECT answer's sid and pid, and the packets that came before it.
async fn join(client: &mut Client, auth: Option<Value>) -> (String, String, Vec<Value>) {
    client.send(&connect_packet("/", auth.as_ref())).await;
    let mut before = Vec::new();
    loop {
        let packet = client.recv_packet().await;
        if let Some(answer) = packet.strip_prefix('0') {
            let answer: Value = serde_json::from_str(answer).unwrap();
            assert_eq!(answer.as_object().unwrap().len(), 2, "{answer}");
            let sid = answer["sid"].as_str().unwrap().to_owned();
            let pid = answer["pid"].as_str().unwrap().to_owned();
            return (sid, pid, before);
        }
        before.push(event_args(&packet));
    }
}

/// The arguments of an EVENT packet (`2[…]`), event name first.
fn event_args(packet: &str) -> Value {
    let (prefix, args) = split_json(packet);
    assert_eq!(prefix, "2", "{packet}");
    args
}

/// The offset an event carries (its last argument).
fn offset(args: &Value) -> String {
    args.as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

async fn wait_gone(server: &TestServer, sid: &str) {
    let gone = wait_for(WAIT, || {
        server.io.of("/").socket(sid).is_none().then_some(())
    })
    .await;
    assert!(gone.is_some(), "the server still holds socket {sid}");
}

#[tokio::test]
async fn a_dropped_connection_comes_back_with_its_state_and_the_missed_packets() {
    let runs = Arc::new(AtomicUsize::new(0));
    let server = start_with(recovery_config(true), |io| setup(io, runs.clone())).await;
    let mut client = server.client().await;
    let (sid, pid, before) = join(&mut client, None).await;
    assert!(before.is_empty());
    let welcome = event_args(&client.recv_packet().await);
    assert_eq!(welcome[0], "welcome");
    assert_eq!(welcome[1], false);
    let nsp = server.io.of("/");
    nsp.to("news").emit("news", &("first",)).unwrap();
    let first = event_args(&client.recv_packet().await);
    assert_eq!(
        first.as_array().unwrap()[..2],
        [json!("news"), json!("first")]
    );
    let last_seen = offset(&first);
    assert_ne!(last_seen, offset(&welcome));

    drop(client);
    wait_gone(&server, &sid).await;
    nsp.to("news").emit("news", &("missed",)).unwrap();
    nsp.to("elsewhere").emit("news", &("not for it",)).unwrap();
    nsp.emit("all", &("everyone",)).unwrap();
    nsp.to(sid.as_str()).emit("direct", &()).unwrap();

    let mut client = server.client().await;
    let auth = json!({ "pid": pid, "offset": last_seen });
    let (again, pid_again, missed) = join(&mut client, Some(auth)).await;
    assert_eq!(again, sid);
    assert_eq!(pid_again, pid);
    let missed: Vec<Value> = missed
        .iter()
        .map(|args| {
            let args = args.as_array().unwrap();
            Value::Array(args[..args.len() - 1].to_vec())
        })
        .collect();
    assert_eq!(
        missed,
        [
            json!(["news", "missed"]),
            json!(["all", "everyone"]),
            json!(["direct"])
        ]
    );
    let welcome = event_args(&client.recv_packet().await);
    assert_eq!(
        welcome.as_array().unwrap()[..2],
        [json!("welcome"), json!(true)]
    );
    let socket = server.socket(&sid);
    assert!(socket.recovered());
    let mut rooms = socket.rooms();
    rooms.sort();
    let mut expected = vec![sid.clone(), "news".to_owned()];
    expected.sort();
    assert_eq!(rooms, expected);
    assert_eq!(socket.extension::<Tag>(), Some(Tag("kept")));
    // Middlewares were skipped on the way back (the default).
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // The handshake's auth is what the client sent.
    assert_eq!(socket.handshake().auth["pid"], json!(pid));
}

#[tokio::test]
async fn middlewares_run_on_recovery_when_not_skipped() {
    let runs = Arc::new(AtomicUsize::new(0));
    let server = start_with(recovery_config(false), |io| setup(io, runs.clone())).await;
    let mut client = server.client().await;
    let (sid, pid, _) = join(&mut client, None).await;
    let welcome = event_args(&client.recv_packet().await);
    drop(client);
    wait_gone(&server, &sid).await;
    let mut client = server.client().await;
    let auth = json!({ "pid": pid, "offset": offset(&welcome) });
    let (again, _, _) = join(&mut client, Some(auth)).await;
    assert_eq!(again, sid);
    assert!(server.socket(&sid).recovered());
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn leaving_on_purpose_or_an_unknown_offset_gives_a_new_socket() {
    let runs = Arc::new(AtomicUsize::new(0));
    let server = start_with(recovery_config(true), |io| setup(io, runs.clone())).await;

    // The client leaves the namespace: not kept.
    let mut client = server.client().await;
    let (sid, pid, _) = join(&mut client, None).await;
    let welcome = event_args(&client.recv_packet().await);
    client.send("1").await;
    wait_gone(&server, &sid).await;
    let auth = json!({ "pid": pid, "offset": offset(&welcome) });
    let (new_sid, new_pid, before) = join(&mut client, Some(auth)).await;
    assert!(before.is_empty());
    assert_ne!(new_sid, sid);
    assert_ne!(new_pid, pid);
    assert!(!server.socket(&new_sid).recovered());
    let welcome = event_args(&client.recv_packet().await);
    assert_eq!(welcome[1], false);

    // Dropped, but asking back with an offset this server never gave, or without one.
    drop(client);
    wait_gone(&server, &new_sid).await;
    for auth in [
        json!({ "pid": new_pid, "offset": "ffffff" }),
        json!({ "pid": new_pid }),
        json!({ "pid": new_pid, "offset": 0 }),
    ] {
        let mut client = server.client().await;
        let (sid, _, before) = join(&mut client, Some(auth.clone())).await;
        assert!(before.is_empty(), "{auth}");
        assert_ne!(sid, new_sid, "{auth}");
    }
    // Those attempts did not use the session up; and it is still kept after it came back once,
    // as in the official server.
    let mut client = server.client().await;
    let auth = json!({ "pid": new_pid, "offset": offset(&welcome) });
    let (sid, _, _) = join(&mut client, Some(auth.clone())).await;
    assert_eq!(sid, new_sid);
    // While it is back, the same pid gets a new socket rather than share the id.
    let mut other = server.client().await;
    let (other_sid, _, before) = join(&mut other, Some(auth)).await;
    assert!(before.is_empty());
    assert_ne!(other_sid, new_sid);
    assert!(server.socket(&new_sid).connected());
}

#[tokio::test]
async fn events_with_an_ack_or_volatile_carry_no_offset() {
    let server = start_with(recovery_config(true), |io| {
        io.of("/").on_connection(|socket| async move {
            socket.on("go", |socket, _, _| async move {
                socket.volatile().emit("volatile", &(1,)).unwrap();
            });
            let asked = socket.clone();
            tokio::spawn(async move {
                let _ = asked
                    .emit_with_ack("question", &(2,), std::time::Duration::from_secs(5))
                    .await;
            });
        });
    })
    .await;
    let mut client = server.client().await;
    join(&mut client, None).await;
    assert_eq!(client.recv_packet().await, r#"20["question",2]"#);
    client.send(r#"2["go"]"#).await;
    assert_eq!(client.recv_packet().await, r#"2["volatile",1]"#);
}

#[tokio::test]
async fn events_emitted_once_the_connection_dropped_reach_the_client_when_it_comes_back() {
    // As in the official server: with recovery on, an emit to a socket that has just lost its
    // connection (from its disconnecting handler, or late work) is kept and sent on its return.
    let emitted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = start_with(recovery_config(true), {
        let emitted = emitted.clone();
        move |io| {
            io.of("/").on_connection(move |socket| {
                let emitted = emitted.clone();
                async move {
                    socket.on_disconnecting(|socket, _| async move {
                        socket.emit("while-leaving", &()).unwrap();
                    });
                    socket.on("work", move |socket, _, _| {
                        let emitted = emitted.clone();
                        async move {
                            tokio::spawn(async move {
                                while socket.connected() {
                                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                                }
                                socket.emit("result", &(42,)).unwrap();
                                emitted.store(true, Ordering::SeqCst);
                            });
                        }
                    });
                    socket.emit("welcome", &()).unwrap();
                }
            });
        }
    })
    .await;
    let mut client = server.client().await;
    let (sid, pid, _) = join(&mut client, None).await;
    let welcome = event_args(&client.recv_packet().await);
    client.send(r#"2["work"]"#).await;
    drop(client);
    wait_gone(&server, &sid).await;
    let done = wait_for(WAIT, || emitted.load(Ordering::SeqCst).then_some(())).await;
    assert!(done.is_some(), "the late work never emitted");

    let mut client = server.client().await;
    let auth = json!({ "pid": pid, "offset": offset(&welcome) });
    let (again, _, missed) = join(&mut client, Some(auth)).await;
    assert_eq!(again, sid);
    let mut names: Vec<Value> = missed.iter().map(|args| args[0].clone()).collect();
    names.sort_by_key(|name| name.to_string());
    assert_eq!(names, [json!("result"), json!("while-leaving")]);
}

#[tokio::test]
async fn two_restores_of_one_pid_at_once_give_one_socket_that_id() {
    // Middlewares run on recovery here and take a while, so both restores are in flight together:
    // both find the session kept and its socket not back yet.
    let server = start_with(recovery_config(false), |io| {
        let nsp = io.of("/");
        nsp.use_middleware(|_| async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Ok(())
        });
        nsp.on_connection(|socket| async move {
            if !socket.recovered() {
                socket.join("news");
            }
            socket.emit("welcome", &(socket.recovered(),)).unwrap();
        });
    })
    .await;
    let mut client = server.client().await;
    let (sid, pid, _) = join(&mut client, None).await;
    let welcome = event_args(&client.recv_packet().await);
    drop(client);
    wait_gone(&server, &sid).await;

    let auth = json!({ "pid": pid, "offset": offset(&welcome) });
    let mut first = server.client().await;
    let mut second = server.client().await;
    first.send(&connect_packet("/", Some(&auth))).await;
    second.send(&connect_packet("/", Some(&auth))).await;
    let a = connect_answer_sid(&mut first).await;
    let b = connect_answer_sid(&mut second).await;
    assert_ne!(a, b, "two live sockets share one id");
    assert!(a == sid || b == sid, "neither got the kept id back");
    let (recovered, renewed) = if a == sid { (a, b) } else { (b, a) };
    assert!(server.socket(&recovered).recovered());
    let renewed = server.socket(&renewed);
    assert!(!renewed.recovered());
    // The new one went through the handler as new (it joined `news` there), not in the kept id's
    // room, which only the recovered socket is in.
    let mut rooms = renewed.rooms();
    rooms.sort();
    let mut expected = vec![renewed.id().to_owned(), "news".to_owned()];
    expected.sort();
    assert_eq!(rooms, expected);
    assert_eq!(server.io.of("/").sockets().len(), 2);
}

/// The sid in the answer to a CONNECT already sent; the packets before it are skipped.
async fn connect_answer_sid(client: &mut Client) -> String {
    loop {
        let packet = client.recv_packet().await;
        if let Some(answer) = packet.strip_prefix('0') {
            let answer: Value = serde_json::from_str(answer).unwrap();
            return answer["sid"].as_str().unwrap().to_owned();
        }
    }
}

/// On `/`: `join`/`leave` a room (acked); `go` emits a volatile `vol` (first: as in the official
/// server, a volatile packet behind one still being written is dropped), `plain`, and a `q` that
/// asks for an ack (300 ms), then `q-result` with `answered` or `timeout`.
fn own_room_server(io: &SocketIo) {
    io.of("/").on_connection(|socket| async move {
        socket.on("join", |socket, data, ack| async move {
            socket.join(data.arg::<String>(0).unwrap());
            ack.unwrap().send(&()).unwrap();
        });
        socket.on("leave", |socket, data, ack| async move {
            socket.leave(&data.arg::<String>(0).unwrap());
            ack.unwrap().send(&()).unwrap();
        });
        socket.on("go", |socket, _, _| async move {
            let _ = socket.volatile().emit("vol", &());
            let _ = socket.emit("plain", &());
            let asked = socket.clone();
            tokio::spawn(async move {
                let timeout = std::time::Duration::from_millis(300);
                let result = match asked.emit_with_ack("q", &(), timeout).await {
                    Ok(_) => "answered",
                    Err(_) => "timeout",
                };
                let _ = asked.emit("q-result", &(result,));
            });
        });
    });
}

/// Reads `vol`, `plain` and `q` (in this order); the ack id of `q`.
async fn read_go(client: &mut Client, recovery: bool) -> String {
    assert_eq!(client.recv_packet().await, r#"2["vol"]"#);
    let plain = client.recv_packet().await;
    let args = event_args(&plain);
    assert_eq!(args[0], "plain", "{plain}");
    assert_eq!(args.as_array().unwrap().len(), if recovery { 2 } else { 1 });
    let q = client.recv_packet().await;
    let id = q
        .strip_prefix('2')
        .and_then(|rest| rest.strip_suffix(r#"["q"]"#))
        .unwrap_or_else(|| panic!("expected q with an ack id, got {q}"));
    id.to_owned()
}

#[tokio::test]
async fn with_recovery_a_socket_emits_to_the_room_named_by_its_id() {
    // As the official server does with recovery on: socket.emit (with an ack or volatile too) is a
    // broadcast to the socket's own room, so whoever joined that room gets it and the socket
    // itself no longer does once it left it.
    let server = start_with(recovery_config(true), own_room_server).await;
    let mut a = server.client().await;
    let (a_sid, _, _) = join(&mut a, None).await;
    let mut b = server.client().await;
    join(&mut b, None).await;
    b.send(&format!(r#"21["join","{a_sid}"]"#)).await;
    assert_eq!(b.recv_packet().await, "31[]");

    a.send(r#"2["go"]"#).await;
    let id = read_go(&mut a, true).await;
    assert_eq!(read_go(&mut b, true).await, id);
    a.send(&format!("3{id}[]")).await;
    for client in [&mut a, &mut b] {
        let result = event_args(&client.recv_packet().await);
        assert_eq!(result[1], "answered");
    }

    a.send(&format!(r#"22["leave","{a_sid}"]"#)).await;
    assert_eq!(a.recv_packet().await, "32[]");
    a.send(r#"2["go"]"#).await;
    let id = read_go(&mut b, true).await;
    // B's answer is not A's.
    b.send(&format!("3{id}[]")).await;
    let result = event_args(&b.recv_packet().await);
    assert_eq!(result[0], "q-result");
    assert_eq!(result[1], "timeout");
    a.expect_nothing(std::time::Duration::from_millis(100))
        .await;
}

#[tokio::test]
async fn without_recovery_a_socket_emits_to_itself_only() {
    let server = start_with(Config::default(), own_room_server).await;
    let mut a = server.client().await;
    let a_sid = a.join("/", None).await;
    let mut b = server.client().await;
    b.join("/", None).await;
    b.send(&format!(r#"21["join","{a_sid}"]"#)).await;
    assert_eq!(b.recv_packet().await, "31[]");

    a.send(r#"2["go"]"#).await;
    let id = read_go(&mut a, false).await;
    a.send(&format!("3{id}[]")).await;
    assert_eq!(a.recv_packet().await, r#"2["q-result","answered"]"#);
    b.expect_nothing(std::time::Duration::from_millis(200))
        .await;
}
