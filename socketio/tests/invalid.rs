//! Invalid Socket.IO packets close the connection, as the official server does: an unknown packet
//! type, bad JSON, an event payload that is not an array (or names a reserved event), a bad attachment
//! count, a text packet while attachments are awaited, binary data when none is expected, a
//! placeholder without its attachment, and more attachments than `max_attachments`.

mod support;

use socketio::{Config, DisconnectReason};
use std::sync::{Arc, Mutex};
use support::*;

/// Joins `/`, sends `bad`, and asserts that the server closes the connection and the socket leaves.
async fn assert_closes(bad: &[Sent]) {
    assert_closes_with(Config::default(), bad).await;
}

enum Sent {
    Text(&'static str),
    Binary(&'static [u8]),
}

async fn assert_closes_with(config: Config, bad: &[Sent]) {
    let reasons: Arc<Mutex<Vec<DisconnectReason>>> = Arc::default();
    let server = start_with(config, {
        let reasons = reasons.clone();
        move |io| {
            io.of("/").on_connection(move |socket| {
                let reasons = reasons.clone();
                async move {
                    socket.on_disconnect(move |_, reason| {
                        let reasons = reasons.clone();
                        async move { reasons.lock().unwrap().push(reason) }
                    });
                }
            });
        }
    })
    .await;
    let (mut client, sid) = server.connected().await;
    for sent in bad {
        match sent {
            Sent::Text(text) => client.send(text).await,
            Sent::Binary(data) => client.send_binary(data).await,
        }
    }
    let frames = client.expect_closed().await;
    assert!(
        frames.iter().all(|f| !matches!(f, Frame::Packet(_))),
        "{frames:?}"
    );
    let left = wait_for(WAIT, || {
        server.io.of("/").socket(&sid).is_none().then_some(())
    })
    .await;
    assert!(left.is_some(), "the socket is still connected");
    let reason = wait_for(WAIT, || reasons.lock().unwrap().first().copied()).await;
    assert!(reason.is_some(), "no disconnect");
    let empty = wait_for(WAIT, || {
        (server.io.engine().session_count() == 0).then_some(())
    })
    .await;
    assert!(empty.is_some(), "the Engine.IO session is still there");
}

#[tokio::test]
async fn unknown_packet_type() {
    assert_closes(&[Sent::Text("7")]).await;
}

#[tokio::test]
async fn unknown_packet_type_letter() {
    assert_closes(&[Sent::Text("x[\"a\"]")]).await;
}

#[tokio::test]
async fn bad_json() {
    assert_closes(&[Sent::Text(r#"2["ev""#)]).await;
}

#[tokio::test]
async fn event_payload_that_is_not_an_array() {
    assert_closes(&[Sent::Text(r#"2{"ev":1}"#)]).await;
}

#[tokio::test]
async fn event_and_ack_without_payload_are_well_formed() {
    // As the official server: the payload is optional in the format. An EVENT without one names no
    // event and is dropped; an ACK without one answers with no arguments.
    let server = start(|io| {
        io.of("/").on_connection(|socket| async move {
            socket.on("ask", |socket, _, _| async move {
                let answer = socket
                    .emit_with_ack("question", &(), std::time::Duration::from_secs(5))
                    .await;
                let args = answer
                    .map(|data| data.args().len())
                    .map_err(|e| e.to_string());
                socket.emit("answered", &(format!("{args:?}"),)).unwrap();
            });
        });
    })
    .await;
    let (mut client, _) = server.connected().await;
    client.send("2").await;
    client.send("212").await;
    client.send(r#"2["ask"]"#).await;
    let question = client.recv_packet().await;
    let id = question
        .strip_prefix('2')
        .and_then(|rest| rest.strip_suffix(r#"["question"]"#))
        .unwrap_or_else(|| panic!("{question:?}"));
    client.send(&format!("3{id}")).await;
    assert_eq!(client.recv_packet().await, r#"2["answered","Ok(0)"]"#);
}

#[tokio::test]
async fn event_with_an_empty_array() {
    assert_closes(&[Sent::Text("2[]")]).await;
}

#[tokio::test]
async fn reserved_event_name() {
    assert_closes(&[Sent::Text(r#"2["disconnect"]"#)]).await;
}

#[tokio::test]
async fn ack_payload_that_is_not_an_array() {
    assert_closes(&[Sent::Text(r#"31"x""#)]).await;
}

#[tokio::test]
async fn disconnect_with_a_payload() {
    assert_closes(&[Sent::Text(r#"1{"a":1}"#)]).await;
}

#[tokio::test]
async fn connect_with_a_non_object_auth() {
    assert_closes(&[Sent::Text(r#"0/x,"token""#)]).await;
}

#[tokio::test]
async fn binary_event_without_attachment_count() {
    assert_closes(&[Sent::Text(r#"5["ev",{"_placeholder":true,"num":0}]"#)]).await;
}

#[tokio::test]
async fn text_packet_while_attachments_are_expected() {
    assert_closes(&[
        Sent::Text(r#"52-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#),
        Sent::Binary(b"\x01"),
        Sent::Text(r#"2["ev"]"#),
    ])
    .await;
}

#[tokio::test]
async fn binary_data_when_none_is_expected() {
    assert_closes(&[Sent::Binary(b"\x01\x02")]).await;
}

#[tokio::test]
async fn extra_binary_after_a_complete_packet() {
    assert_closes(&[
        Sent::Text(r#"51-["ev",{"_placeholder":true,"num":0}]"#),
        Sent::Binary(b"\x01"),
        Sent::Binary(b"\x02"),
    ])
    .await;
}

#[tokio::test]
async fn placeholder_without_its_attachment() {
    assert_closes(&[
        Sent::Text(r#"51-["ev",{"_placeholder":true,"num":1}]"#),
        Sent::Binary(b"\x01"),
    ])
    .await;
}

#[tokio::test]
async fn too_many_attachments() {
    let mut config = Config::default();
    config.max_attachments = 2;
    assert_closes_with(
        config,
        &[Sent::Text(
            r#"53-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]"#,
        )],
    )
    .await;
}

#[tokio::test]
async fn attachments_over_the_default_limit() {
    assert_closes(&[Sent::Text(r#"5101-["ev"]"#)]).await;
}

#[tokio::test]
async fn attachments_up_to_the_limit_are_fine() {
    let mut config = Config::default();
    config.max_attachments = 2;
    let server = start_with(config, |io| {
        io.of("/").on_connection(|socket| async move {
            socket.on("ev", |socket, data, _| async move {
                socket.emit("count", &data.attachments().len()).unwrap();
            });
        });
    })
    .await;
    let (mut client, _) = server.connected().await;
    client
        .send(r#"52-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    client.send_binary(b"a").await;
    client.send_binary(b"b").await;
    assert_eq!(client.recv_packet().await, r#"2["count",2]"#);
}
