//! Joining namespaces: CONNECT to `/` and to custom namespaces (also `/custom,` with nothing after the
//! comma) with and without auth, CONNECT_ERROR for unknown namespaces and middleware refusals (the
//! connection stays open), several namespaces on one connection, and `connectTimeout`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use socketio::{Config, ConnectError};
use support::*;

#[tokio::test]
async fn connect_to_the_main_namespace() {
    let server = start(|_| {}).await;
    let mut client = server.client().await;
    client.send("0").await;
    let answer = client.recv_packet().await;
    let json: Value = serde_json::from_str(answer.strip_prefix('0').unwrap()).unwrap();
    let sid = json["sid"].as_str().unwrap();
    assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
    assert_eq!(sid.len(), 20);
    assert_ne!(
        sid, client.engine_sid,
        "the socket id is not the Engine.IO sid"
    );
    let socket = server.socket(sid);
    assert_eq!(socket.id(), sid);
    assert_eq!(socket.ns(), "/");
    assert!(socket.connected());
    // Its own room holds it.
    assert_eq!(socket.rooms(), [sid.to_owned()]);
}

#[tokio::test]
async fn two_connections_get_distinct_ids() {
    let server = start(|_| {}).await;
    let (_a, a) = server.connected().await;
    let (_b, b) = server.connected().await;
    assert_ne!(a, b);
    assert_eq!(server.io.of("/").sockets().len(), 2);
}

#[tokio::test]
async fn auth_reaches_the_handshake() {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let server = start({
        let seen = seen.clone();
        move |io| {
            io.of("/").on_connection(move |socket| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(socket.handshake().auth.clone());
                    socket.emit("auth", &socket.handshake().auth).unwrap();
                }
            });
        }
    })
    .await;
    let mut client = server.client().await;
    client
        .join("/", Some(json!({"token": "abc", "n": 1})))
        .await;
    let event = client.recv_packet().await;
    let (prefix, json) = split_json(&event);
    assert_eq!(prefix, "2");
    assert_eq!(json, json!(["auth", {"token": "abc", "n": 1}]));
    // Without auth the handshake sees `{}`.
    let (mut other, _) = server.connected().await;
    assert_eq!(other.recv_packet().await, r#"2["auth",{}]"#);
    assert_eq!(
        *seen.lock().unwrap(),
        [json!({"token": "abc", "n": 1}), json!({})]
    );
}

#[tokio::test]
async fn handshake_carries_the_query() {
    let server = start(|io| {
        io.of("/").on_connection(|socket| async move {
            let who = socket
                .handshake()
                .query("who")
                .unwrap_or_else(|| "nobody".to_owned());
            socket.emit("who", &who).unwrap();
        });
    })
    .await;
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let url = format!(
        "ws://{}{}",
        server.addr,
        server.target("EIO=4&transport=websocket&who=me")
    );
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let mut client = Client {
        ws,
        engine_sid: String::new(),
        answer_pings: true,
    };
    assert!(matches!(client.recv().await, Frame::EngineText(open) if open.starts_with('0')));
    client.join("/", None).await;
    assert_eq!(client.recv_packet().await, r#"2["who","me"]"#);
}

#[tokio::test]
async fn connect_to_a_custom_namespace() {
    let server = start(|io| {
        io.of("/custom");
    })
    .await;
    let mut client = server.client().await;
    let sid = client.join("/custom", None).await;
    assert_eq!(
        server.io.of("/custom").socket(&sid).unwrap().ns(),
        "/custom"
    );
    // Not in `/`.
    assert!(server.io.of("/").socket(&sid).is_none());
    // With auth.
    let mut client = server.client().await;
    client
        .send(&connect_packet("/custom", Some(&json!({"k": "v"}))))
        .await;
    let answer = client.recv_packet().await;
    assert!(answer.starts_with("0/custom,{\"sid\":"), "{answer}");
}

#[tokio::test]
async fn nothing_after_the_comma_is_a_connect_without_auth() {
    let server = start(|io| {
        io.of("/custom").on_connection(|socket| async move {
            socket.emit("auth", &socket.handshake().auth).unwrap();
        });
    })
    .await;
    let mut client = server.client().await;
    client.send("0/custom,").await;
    let answer = client.recv_packet().await;
    let (prefix, json) = split_json(&answer);
    assert_eq!(prefix, "0/custom,");
    assert!(json["sid"].is_string());
    assert_eq!(client.recv_packet().await, r#"2/custom,["auth",{}]"#);
}

#[tokio::test]
async fn unknown_namespace_is_refused_and_the_connection_stays() {
    let server = start(|_| {}).await;
    let mut client = server.client().await;
    client.send("0/nope,").await;
    assert_eq!(
        client.recv_packet().await,
        r#"4/nope,{"message":"Invalid namespace"}"#
    );
    client.send("0/nope").await;
    assert_eq!(
        client.recv_packet().await,
        r#"4/nope,{"message":"Invalid namespace"}"#
    );
    // Still open: `/` can be joined on the same connection.
    let sid = client.join("/", None).await;
    assert!(server.io.of("/").socket(&sid).is_some());
    assert_eq!(server.io.engine().session_count(), 1);
}

#[tokio::test]
async fn middleware_refusal_is_a_connect_error_with_data() {
    let server = start(|io| {
        io.of("/private").use_middleware(|socket| async move {
            if socket.handshake().auth.get("token") == Some(&json!("good")) {
                Ok(())
            } else {
                Err(ConnectError::new("not authorized").with_data(json!({"code": 42})))
            }
        });
    })
    .await;
    let mut client = server.client().await;
    client
        .send(&connect_packet("/private", Some(&json!({"token": "bad"}))))
        .await;
    let answer = client.recv_packet().await;
    let (prefix, json) = split_json(&answer);
    assert_eq!(prefix, "4/private,");
    assert_eq!(
        json,
        json!({"message": "not authorized", "data": {"code": 42}})
    );
    assert!(server.io.of("/private").sockets().is_empty());
    // The connection stays: the same client may try again.
    let sid = client
        .join("/private", Some(json!({"token": "good"})))
        .await;
    assert!(server.io.of("/private").socket(&sid).is_some());
}

#[tokio::test]
async fn middleware_refusal_without_data_has_only_a_message() {
    let server = start(|io| {
        io.of("/")
            .use_middleware(|_| async { Err(ConnectError::new("go away")) });
    })
    .await;
    let mut client = server.client().await;
    client.send("0").await;
    assert_eq!(client.recv_packet().await, r#"4{"message":"go away"}"#);
}

#[tokio::test]
async fn middlewares_run_in_order_and_the_first_refusal_wins() {
    let order: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let server = start({
        let order = order.clone();
        move |io| {
            let first = order.clone();
            io.of("/").use_middleware(move |_| {
                let first = first.clone();
                async move {
                    first.lock().unwrap().push("first");
                    Ok(())
                }
            });
            let second = order.clone();
            io.of("/").use_middleware(move |_| {
                let second = second.clone();
                async move {
                    second.lock().unwrap().push("second");
                    Err(ConnectError::new("second says no"))
                }
            });
            let third = order.clone();
            io.of("/").use_middleware(move |_| {
                let third = third.clone();
                async move {
                    third.lock().unwrap().push("third");
                    Ok(())
                }
            });
        }
    })
    .await;
    let mut client = server.client().await;
    client.send("0").await;
    assert_eq!(
        client.recv_packet().await,
        r#"4{"message":"second says no"}"#
    );
    assert_eq!(*order.lock().unwrap(), ["first", "second"]);
}

#[tokio::test]
async fn two_namespaces_on_one_connection() {
    let server = start(|io| {
        for name in ["/", "/chat"] {
            io.of(name).on_connection(|socket| async move {
                socket.on("echo", |socket, data, _| async move {
                    socket.emit_data("echo", data).unwrap();
                });
            });
        }
    })
    .await;
    let mut client = server.client().await;
    let main = client.join("/", None).await;
    let chat = client.join("/chat", None).await;
    assert_ne!(main, chat);
    client.send(r#"2["echo","main"]"#).await;
    assert_eq!(client.recv_packet().await, r#"2["echo","main"]"#);
    client.send(r#"2/chat,["echo","chat"]"#).await;
    assert_eq!(client.recv_packet().await, r#"2/chat,["echo","chat"]"#);

    // Leaving /chat leaves / working.
    client.send("1/chat,").await;
    let gone = wait_for(WAIT, || {
        server.io.of("/chat").socket(&chat).is_none().then_some(())
    })
    .await;
    assert!(gone.is_some());
    client.send(r#"2["echo","still"]"#).await;
    assert_eq!(client.recv_packet().await, r#"2["echo","still"]"#);
    // And /chat can be joined again.
    let again = client.join("/chat", None).await;
    assert_ne!(again, chat);
}

#[tokio::test]
async fn a_packet_that_does_not_fit_the_connection_state_closes_the_connection() {
    // As the official server does ("invalid state"): a CONNECT to a namespace already joined, a
    // CONNECT_ERROR from the client, anything else for a namespace not joined.
    for packet in [
        "0",
        "0/chat,",
        r#"4{"message":"x"}"#,
        r#"2/chat,["echo","x"]"#,
        "1/chat,",
        r#"3/chat,1[]"#,
    ] {
        let server = start(|io| {
            io.of("/").on_connection(|_| async {});
            io.of("/chat").on_connection(|_| async {});
        })
        .await;
        let mut client = server.client().await;
        let main = client.join("/", None).await;
        let chat = client.join("/chat", None).await;
        if packet != "0/chat," {
            client.send("1/chat,").await;
        }
        client.send(packet).await;
        client.expect_closed().await;
        let gone = wait_for(WAIT, || {
            server.io.of("/").socket(&main).is_none().then_some(())
        })
        .await;
        assert!(gone.is_some(), "{packet}: the connection's sockets stay");
        assert!(server.io.of("/chat").socket(&chat).is_none());
    }
}

#[tokio::test]
async fn an_event_before_any_connect_closes_the_connection() {
    let server = start(|io| {
        io.of("/").on_connection(|_| async {});
    })
    .await;
    let mut client = server.client().await;
    client.send(r#"2["echo","x"]"#).await;
    client.expect_closed().await;
}

#[tokio::test]
async fn connection_that_joins_no_namespace_is_closed_after_connect_timeout() {
    let mut config = Config::default();
    config.connect_timeout = Duration::from_millis(300);
    let server = start_with(config, |_| {}).await;
    let mut idle = server.client().await;
    let mut joined = server.client().await;
    joined.join("/", None).await;
    let started = std::time::Instant::now();
    let frames = idle.expect_closed().await;
    assert!(frames.is_empty(), "{frames:?}");
    assert!(started.elapsed() < WAIT);
    // The connection that joined stays.
    joined.expect_nothing(Duration::from_millis(300)).await;
    assert_eq!(server.io.engine().session_count(), 1);
}

#[tokio::test]
async fn connect_over_polling() {
    let server = start(|_| {}).await;
    // The helper asserts the CONNECT answer and that its id is not the Engine.IO one.
    let (_, sid) = server.polling_connected().await;
    assert!(server.io.of("/").socket(&sid).is_some());
}

#[tokio::test]
async fn connects_are_answered_in_the_order_they_came_when_middlewares_decide_at_once() {
    let server = start(|io| {
        io.of("/auth")
            .use_middleware(|_| async { Err(ConnectError::new("no")) });
        io.of("/custom").on_connection(|_| async {});
    })
    .await;
    let mut client = server.client().await;
    for packet in ["0/auth,{}", "0", "0/custom,"] {
        client.send(packet).await;
    }
    let mut prefixes = Vec::new();
    for _ in 0..3 {
        let answer = client.recv_packet().await;
        prefixes.push(split_json(&answer).0.to_owned());
    }
    assert_eq!(prefixes, ["4/auth,", "0", "0/custom,"]);
}

#[tokio::test]
async fn a_middleware_that_waits_lets_later_connects_through_first() {
    let server = start(|io| {
        io.of("/slow").use_middleware(|socket| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if socket.handshake().auth.get("token") == Some(&json!("good")) {
                Ok(())
            } else {
                Err(ConnectError::new("not authorized"))
            }
        });
    })
    .await;
    let mut client = server.client().await;
    client
        .send(&connect_packet("/slow", Some(&json!({"token": "good"}))))
        .await;
    client.send("0").await;
    let first = client.recv_packet().await;
    assert_eq!(split_json(&first).0, "0");
    let second = client.recv_packet().await;
    assert_eq!(split_json(&second).0, "0/slow,");
    let sid = split_json(&second).1["sid"].as_str().unwrap().to_owned();
    assert!(server.io.of("/slow").socket(&sid).is_some());
    // A refusal that comes late reaches the client too.
    let mut other = server.client().await;
    other
        .send(&connect_packet("/slow", Some(&json!({"token": "bad"}))))
        .await;
    let refused = other.recv_packet().await;
    assert_eq!(split_json(&refused).0, "4/slow,");
}
