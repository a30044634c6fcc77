//! Outgoing listeners (the official `socket.onAnyOutgoing`): a socket's own emits and every
//! broadcast that reaches it, volatile and with-ack ones included; acknowledgement answers and
//! packets for other sockets are not seen; broadcasts still reach every target, listener or not.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::*;

type Seen = Arc<Mutex<Vec<(String, Vec<Value>)>>>;

/// `/` sockets that answer `ask` with an ack; the socket whose `handshake.auth.watch` is true
/// records what its outgoing listener sees in `seen`.
async fn server(seen: Seen) -> TestServer {
    start(move |io| {
        io.of("/").on_connection(move |socket| {
            let seen = seen.clone();
            async move {
                socket.join("all");
                socket.on("ask", |_, data, ack| async move {
                    ack.unwrap().send_data(data).unwrap();
                });
                if socket.handshake().auth.get("watch") == Some(&Value::Bool(true)) {
                    socket.on_any_outgoing(move |_, event, data| {
                        seen.lock().unwrap().push((event, data.args().to_vec()));
                        async {}
                    });
                }
            }
        });
    })
    .await
}

/// The server, what its watched socket's listener saw, and that socket's client and id.
async fn watched_server() -> (TestServer, Seen, Client, String) {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let server = server(seen.clone()).await;
    let mut watched = server.client().await;
    let watched_id = watched
        .join("/", Some(serde_json::json!({ "watch": true })))
        .await;
    (server, seen, watched, watched_id)
}

#[tokio::test]
async fn own_emits_and_broadcasts_reaching_the_socket_are_seen() {
    let (server, seen, mut watched, watched_id) = watched_server().await;
    let (mut other, other_id) = server.connected().await;
    let socket = server.socket(&watched_id);

    socket.emit("own", &(1,)).unwrap();
    socket.volatile().emit("own-volatile", &()).unwrap();
    server.io.emit("everyone", &("a", 2)).unwrap();
    server
        .io
        .to("all")
        .except(other_id.as_str())
        .emit("room", &())
        .unwrap();
    // Reaches only the other socket: not seen.
    server
        .io
        .to(other_id.as_str())
        .emit("elsewhere", &())
        .unwrap();
    server
        .socket(&other_id)
        .broadcast()
        .emit("from-other", &(3,))
        .unwrap();
    // The answer to a client's ack is not an event.
    watched.send(r#"24["ask","q"]"#).await;

    let expected = [
        r#"2["own",1]"#,
        r#"2["everyone","a",2]"#,
        r#"2["room"]"#,
        r#"2["from-other",3]"#,
        r#"34["q"]"#,
    ];
    for packet in expected {
        let mut received = watched.recv_packet().await;
        // A volatile packet goes out only if the connection could take it at once; its listener
        // call happens either way.
        if received == r#"2["own-volatile"]"# {
            received = watched.recv_packet().await;
        }
        assert_eq!(received, packet);
    }
    assert_eq!(other.recv_packet().await, r#"2["everyone","a",2]"#);
    assert_eq!(other.recv_packet().await, r#"2["elsewhere"]"#);

    let pending = {
        let io = server.io.clone();
        tokio::spawn(async move {
            io.of("/")
                .timeout(Duration::from_secs(5))
                .emit_with_ack("poll", &("p",))
                .await
        })
    };
    for client in [&mut watched, &mut other] {
        let packet = client.recv_packet().await;
        let (head, args) = split_json(&packet);
        assert_eq!(args, serde_json::json!(["poll", "p"]));
        let id = head.strip_prefix('2').unwrap();
        client.send(&format!("3{id}[true]")).await;
    }
    assert_eq!(pending.await.unwrap().unwrap().replies.len(), 2);

    let names: Vec<(String, Vec<Value>)> = seen.lock().unwrap().clone();
    let json = |v: &str| -> Vec<Value> { serde_json::from_str(v).unwrap() };
    assert_eq!(
        names,
        [
            ("own".to_owned(), json("[1]")),
            ("own-volatile".to_owned(), json("[]")),
            ("everyone".to_owned(), json(r#"["a",2]"#)),
            ("room".to_owned(), json("[]")),
            ("from-other".to_owned(), json("[3]")),
            ("poll".to_owned(), json(r#"["p"]"#)),
        ]
    );
}

#[tokio::test]
async fn broadcasts_keep_their_targets_while_a_socket_listens() {
    let (server, seen, mut watched, watched_id) = watched_server().await;
    let (mut a, a_id) = server.connected().await;
    let (mut b, _) = server.connected().await;

    server
        .io
        .to("all")
        .except(a_id.as_str())
        .emit("x", &())
        .unwrap();
    assert_eq!(watched.recv_packet().await, r#"2["x"]"#);
    assert_eq!(b.recv_packet().await, r#"2["x"]"#);
    a.expect_nothing(Duration::from_millis(100)).await;

    // Once the listening socket has left, broadcasts go on as before.
    server.socket(&watched_id).disconnect();
    server.io.emit("y", &()).unwrap();
    assert_eq!(a.recv_packet().await, r#"2["y"]"#);
    assert_eq!(b.recv_packet().await, r#"2["y"]"#);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn with_recovery_on_a_listener_may_emit_itself() {
    let mut config = socketio::Config::default();
    config.connection_state_recovery = Some(socketio::ConnectionStateRecovery::default());
    let server = start_with(config, |io| {
        io.on_connection(|socket| async move {
            socket.on_any_outgoing(|socket, event, _| async move {
                if event != "log" {
                    socket.emit("log", &(event,)).unwrap();
                }
            });
        });
    })
    .await;
    let mut client = server.client().await;
    client.send("0").await;
    let answer = client.recv_packet().await;
    let sid = split_json(&answer).1["sid"].as_str().unwrap().to_owned();
    server.socket(&sid).emit("news", &()).unwrap();
    server.io.emit("everyone", &()).unwrap();
    // Each event carries its recovery offset as its last argument; a `log` names the event.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let packet = client.recv_packet().await;
        let (_, args) = split_json(&packet);
        let name = args[0].as_str().unwrap().to_owned();
        seen.push(match name.as_str() {
            "log" => format!("log {}", args[1].as_str().unwrap()),
            _ => name,
        });
    }
    seen.sort();
    assert_eq!(seen, ["everyone", "log everyone", "log news", "news"]);
}

#[tokio::test]
async fn off_any_outgoing_removes_the_listeners() {
    let (server, seen, mut watched, watched_id) = watched_server().await;
    let socket = server.socket(&watched_id);
    socket.emit("before", &()).unwrap();
    assert_eq!(watched.recv_packet().await, r#"2["before"]"#);
    socket.off_any_outgoing();
    socket.emit("after", &()).unwrap();
    server.io.emit("broadcast-after", &()).unwrap();
    assert_eq!(watched.recv_packet().await, r#"2["after"]"#);
    assert_eq!(watched.recv_packet().await, r#"2["broadcast-after"]"#);
    let names: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(e, _)| e.clone())
        .collect();
    assert_eq!(names, ["before"]);
}
