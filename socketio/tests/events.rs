//! Events and acknowledgements: client events with an ack id answered by ACK, server `emit_with_ack`
//! resolved by the client's ACK or timing out (a late answer then resolves nothing), binary
//! attachments both ways (a text packet then binary frames) and BINARY_ACK, and handlers of one
//! socket running in arrival order.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use socketio::{AckError, Binary, Data};
use support::*;

/// A server whose `/` sockets answer `echo` (as an event) and `ask` (as an ack, with the arguments).
async fn echo_server() -> TestServer {
    start(|io| {
        io.of("/").on_connection(|socket| async move {
            socket.on("echo", |socket, data, _| async move {
                socket.emit_data("echo", data).unwrap();
            });
            socket.on("ask", |_, data, ack| async move {
                if let Some(ack) = ack {
                    ack.send_data(data).unwrap();
                }
            });
        });
    })
    .await
}

#[tokio::test]
async fn event_is_delivered_to_its_handler() {
    let server = echo_server().await;
    let (mut client, _) = server.connected().await;
    client.send(r#"2["echo",1,"two",{"three":[3]}]"#).await;
    assert_eq!(
        client.recv_packet().await,
        r#"2["echo",1,"two",{"three":[3]}]"#
    );
}

#[tokio::test]
async fn event_with_ack_id_is_answered_with_ack() {
    let server = echo_server().await;
    let (mut client, _) = server.connected().await;
    client.send(r#"21["ask",1]"#).await;
    assert_eq!(client.recv_packet().await, "31[1]");
    client.send(r#"2987654["ask","x",{"y":null}]"#).await;
    assert_eq!(client.recv_packet().await, r#"3987654["x",{"y":null}]"#);
    // No arguments: an empty array.
    client.send(r#"25["ask"]"#).await;
    assert_eq!(client.recv_packet().await, "35[]");
}

#[tokio::test]
async fn ack_on_a_custom_namespace_names_it() {
    let server = start(|io| {
        io.of("/admin").on_connection(|socket| async move {
            socket.on("ask", |_, _, ack| async move {
                ack.unwrap().send(&("ok", 2)).unwrap();
            });
        });
    })
    .await;
    let mut client = server.client().await;
    client.join("/admin", None).await;
    client.send(r#"2/admin,7["ask"]"#).await;
    assert_eq!(client.recv_packet().await, r#"3/admin,7["ok",2]"#);
}

#[tokio::test]
async fn emit_with_ack_resolves_with_the_reply() {
    let server = echo_server().await;
    let (mut client, sid) = server.connected().await;
    let socket = server.socket(&sid);
    let pending =
        tokio::spawn(async move { socket.emit_with_ack("question", &("life", 42), WAIT).await });
    let packet = client.recv_packet().await;
    let (prefix, json) = split_json(&packet);
    assert_eq!(json, json!(["question", "life", 42]));
    let id: u64 = prefix
        .strip_prefix('2')
        .unwrap()
        .parse()
        .expect("an ack id");
    client.send(&format!(r#"3{id}["answer",{{"n":42}}]"#)).await;
    let data = pending.await.unwrap().expect("the ack");
    assert_eq!(data.args(), &[json!("answer"), json!({"n": 42})]);
    let (text, n): (String, Value) = data.parse().unwrap();
    assert_eq!((text.as_str(), n), ("answer", json!({"n": 42})));
}

#[tokio::test]
async fn emit_with_ack_times_out_and_a_late_answer_resolves_nothing() {
    let server = echo_server().await;
    let (mut client, sid) = server.connected().await;
    let socket = server.socket(&sid);
    let first = {
        let socket = socket.clone();
        tokio::spawn(async move {
            socket
                .emit_with_ack("q", &1, Duration::from_millis(200))
                .await
        })
    };
    let packet = client.recv_packet().await;
    let (prefix, _) = split_json(&packet);
    let first_id: u64 = prefix[1..].parse().unwrap();
    let result = first.await.unwrap();
    assert!(matches!(result, Err(AckError::Timeout)), "{result:?}");
    assert_eq!(AckError::Timeout.to_string(), "operation has timed out");

    // A second request; the late answer to the first must not satisfy it.
    let second = {
        let socket = socket.clone();
        tokio::spawn(async move { socket.emit_with_ack("q", &2, WAIT).await })
    };
    let packet = client.recv_packet().await;
    let (prefix, json) = split_json(&packet);
    assert_eq!(json, json!(["q", 2]));
    let second_id: u64 = prefix[1..].parse().unwrap();
    assert_ne!(first_id, second_id);
    client.send(&format!(r#"3{first_id}["late"]"#)).await;
    client.send(&format!(r#"3{second_id}["second"]"#)).await;
    let data = second.await.unwrap().unwrap();
    assert_eq!(data.args(), &[json!("second")]);
    // The connection is unharmed by the late answer.
    client.send(r#"21["ask","fine"]"#).await;
    assert_eq!(client.recv_packet().await, r#"31["fine"]"#);
}

#[tokio::test]
async fn emit_with_ack_fails_when_the_client_leaves() {
    let server = echo_server().await;
    let (mut client, sid) = server.connected().await;
    let socket = server.socket(&sid);
    let pending = tokio::spawn(async move { socket.emit_with_ack("q", &(), WAIT).await });
    client.recv_packet().await;
    client.send("1").await;
    let result = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert!(matches!(result, Err(AckError::Disconnected)), "{result:?}");
}

#[tokio::test]
async fn binary_event_from_the_client() {
    let received: Arc<Mutex<Vec<Data>>> = Arc::default();
    let server = start({
        let received = received.clone();
        move |io| {
            io.of("/").on_connection(move |socket| {
                let received = received.clone();
                async move {
                    socket.on("upload", move |_, data, _| {
                        let received = received.clone();
                        async move { received.lock().unwrap().push(data) }
                    });
                }
            });
        }
    })
    .await;
    let (mut client, _) = server.connected().await;
    client
        .send(r#"52-["upload",{"name":"f","parts":[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]}]"#)
        .await;
    client.send_binary(&[1, 2, 3]).await;
    client.send_binary(&[4, 5]).await;
    let data = wait_for(WAIT, || received.lock().unwrap().first().cloned())
        .await
        .expect("the event");
    assert_eq!(
        data.attachments(),
        &[Bytes::from_static(&[1, 2, 3]), Bytes::from_static(&[4, 5])]
    );
    #[derive(serde::Deserialize)]
    struct Upload {
        name: String,
        parts: Vec<Binary>,
    }
    let upload: Upload = data.arg(0).unwrap();
    assert_eq!(upload.name, "f");
    assert_eq!(
        upload.parts,
        [Binary::from(vec![1, 2, 3]), Binary::from(vec![4, 5])]
    );
}

#[tokio::test]
async fn binary_event_to_the_client() {
    let server = start(|io| {
        io.of("/").on_connection(|socket| async move {
            socket
                .emit(
                    "file",
                    &(
                        "name",
                        Binary::from(vec![0u8, 255]),
                        Binary::from(vec![7u8]),
                    ),
                )
                .unwrap();
        });
    })
    .await;
    let (mut client, _) = server.connected().await;
    let packet = client.recv_packet().await;
    let (prefix, json) = split_json(&packet);
    assert_eq!(prefix, "52-");
    assert_eq!(
        json,
        json!(["file", "name", {"_placeholder": true, "num": 0}, {"_placeholder": true, "num": 1}])
    );
    assert_eq!(client.recv_binary().await, [0, 255]);
    assert_eq!(client.recv_binary().await, [7]);
}

#[tokio::test]
async fn binary_event_with_ack_is_answered_with_binary_ack() {
    let server = start(|io| {
        io.of("/").on_connection(|socket| async move {
            socket.on("reverse", |_, data, ack| async move {
                let bytes: Binary = data.arg(0).unwrap();
                let mut reversed = bytes.0.to_vec();
                reversed.reverse();
                ack.unwrap()
                    .send(&("done", Binary::from(reversed)))
                    .unwrap();
            });
        });
    })
    .await;
    let (mut client, _) = server.connected().await;
    client
        .send(r#"51-12["reverse",{"_placeholder":true,"num":0}]"#)
        .await;
    client.send_binary(&[1, 2, 3]).await;
    assert_eq!(
        client.recv_packet().await,
        r#"61-12["done",{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(client.recv_binary().await, [3, 2, 1]);
}

#[tokio::test]
async fn binary_ack_from_the_client_resolves_emit_with_ack() {
    let server = echo_server().await;
    let (mut client, sid) = server.connected().await;
    let socket = server.socket(&sid);
    let pending = tokio::spawn(async move { socket.emit_with_ack("give", &(), WAIT).await });
    let packet = client.recv_packet().await;
    let id: u64 = split_json(&packet).0[1..].parse().unwrap();
    client
        .send(&format!(
            r#"61-{id}[{{"_placeholder":true,"num":0}},"meta"]"#
        ))
        .await;
    client.send_binary(b"payload").await;
    let data = pending.await.unwrap().unwrap();
    let (bytes, meta): (Binary, String) = data.parse().unwrap();
    assert_eq!(&bytes.0[..], b"payload");
    assert_eq!(meta, "meta");
}

#[tokio::test]
async fn a_text_packet_after_a_complete_binary_packet_is_fine() {
    let server = echo_server().await;
    let (mut client, _) = server.connected().await;
    client
        .send(r#"51-["echo",{"_placeholder":true,"num":0}]"#)
        .await;
    client.send_binary(&[9]).await;
    client.send(r#"2["echo","text"]"#).await;
    assert_eq!(
        client.recv_packet().await,
        r#"51-["echo",{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(client.recv_binary().await, [9]);
    assert_eq!(client.recv_packet().await, r#"2["echo","text"]"#);
}

#[tokio::test]
async fn handlers_of_one_socket_run_in_arrival_order() {
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let server = start({
        let seen = seen.clone();
        move |io| {
            io.of("/").on_connection(move |socket| {
                let seen = seen.clone();
                async move {
                    socket.on("n", move |_, data, _| {
                        let seen = seen.clone();
                        async move {
                            seen.lock().unwrap().push(data.arg(0).unwrap());
                        }
                    });
                }
            });
        }
    })
    .await;
    let (mut client, _) = server.connected().await;
    for i in 0..100u64 {
        client.send(&format!(r#"2["n",{i}]"#)).await;
    }
    let all = wait_for(WAIT, || {
        let seen = seen.lock().unwrap();
        (seen.len() == 100).then(|| seen.clone())
    })
    .await
    .expect("all 100 events handled");
    assert_eq!(all, (0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn on_any_sees_every_event_before_its_handler() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let server = start({
        let seen = seen.clone();
        move |io| {
            io.of("/").on_connection(move |socket| {
                let seen = seen.clone();
                async move {
                    let any = seen.clone();
                    socket.on_any(move |_, event, _| {
                        let any = any.clone();
                        async move { any.lock().unwrap().push(format!("any:{event}")) }
                    });
                    let own = seen.clone();
                    socket.on("a", move |_, _, _| {
                        let own = own.clone();
                        async move { own.lock().unwrap().push("a".to_owned()) }
                    });
                }
            });
        }
    })
    .await;
    let (mut client, _) = server.connected().await;
    client.send(r#"2["a"]"#).await;
    client.send(r#"2["b"]"#).await;
    let all = wait_for(WAIT, || {
        let seen = seen.lock().unwrap();
        (seen.len() == 3).then(|| seen.clone())
    })
    .await
    .expect("three calls");
    assert_eq!(all, ["any:a", "a", "any:b"]);
}

#[tokio::test]
async fn off_and_off_any_remove_handlers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let server = start(move |io| {
        let record = record.clone();
        io.on_connection(move |socket| {
            let record = record.clone();
            async move {
                let any = record.clone();
                socket.on_any(move |_, name, _| {
                    any.lock().unwrap().push(format!("any {name}"));
                    async {}
                });
                socket.on("a", move |_, _, _| {
                    record.lock().unwrap().push("a".to_owned());
                    async {}
                });
                socket.on("stop", |socket, _, ack| async move {
                    socket.off("a");
                    socket.off_any();
                    ack.unwrap().send(&()).unwrap();
                });
            }
        });
    })
    .await;
    let (mut client, _) = server.connected().await;
    client.send(r#"2["a"]"#).await;
    client.send(r#"21["stop"]"#).await;
    assert_eq!(client.recv_packet().await, "31[]");
    client.send(r#"2["a"]"#).await;
    client.send(r#"22["stop"]"#).await;
    assert_eq!(client.recv_packet().await, "32[]");
    assert_eq!(*seen.lock().unwrap(), ["any a", "a", "any stop"]);
}
