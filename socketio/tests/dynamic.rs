//! Dynamic namespaces: children made on a client's CONNECT or by `io.of`, sharing the parent's
//! handlers, and removed once unused with `cleanup_empty_child_namespaces`.

mod support;

use std::time::Duration;

use socketio::{Config, ConnectError, SocketIo};
use support::*;

/// `/room-*` welcomes each socket with its namespace; `/room-locked` is refused by a middleware.
fn rooms(io: &SocketIo) {
    let rooms = io.dynamic(|name| name.starts_with("/room-"));
    rooms.use_middleware(|socket| async move {
        match socket.ns() {
            "/room-locked" => Err(ConnectError::new("locked")),
            _ => Ok(()),
        }
    });
    rooms.on_connection(|socket| async move {
        socket.emit("welcome", &(socket.ns(),)).ok();
    });
}

/// Waits until the server's namespaces are `expected`.
async fn wait_namespaces(io: &SocketIo, expected: &[&str]) {
    let found = wait_for(WAIT, || (io.namespace_names() == expected).then_some(())).await;
    assert!(
        found.is_some(),
        "namespaces {:?}, expected {expected:?}",
        io.namespace_names()
    );
}

#[tokio::test]
async fn children_share_the_handlers_and_other_names_are_refused() {
    let server = start(rooms).await;
    let mut client = server.client().await;
    client.join("/room-a", None).await;
    assert_eq!(
        client.recv_packet().await,
        r#"2/room-a,["welcome","/room-a"]"#
    );
    client.send("0/room-locked,").await;
    assert_eq!(
        client.recv_packet().await,
        r#"4/room-locked,{"message":"locked"}"#
    );
    client.send("0/other,").await;
    assert_eq!(
        client.recv_packet().await,
        r#"4/other,{"message":"Invalid namespace"}"#
    );
    // Without the cleanup option (the default), every child stays.
    client.send("1/room-a,").await;
    client.expect_nothing(Duration::from_millis(100)).await;
    assert_eq!(
        server.io.namespace_names(),
        ["/", "/room-a", "/room-locked"]
    );
}

#[tokio::test]
async fn a_name_given_to_of_that_a_dynamic_namespace_matches_is_its_child() {
    let server = start(rooms).await;
    // Made by the application first (to broadcast to it, say): the parent's handlers still apply.
    server.io.of("/room-early");
    let mut client = server.client().await;
    client.join("/room-early", None).await;
    assert_eq!(
        client.recv_packet().await,
        r#"2/room-early,["welcome","/room-early"]"#
    );
}

#[tokio::test]
async fn with_cleanup_an_unused_child_is_removed() {
    let mut config = Config::default();
    config.cleanup_empty_child_namespaces = true;
    let server = start_with(config, rooms).await;
    let mut first = server.client().await;
    let mut second = server.client().await;
    for client in [&mut first, &mut second] {
        client.join("/room-a", None).await;
        assert_eq!(
            client.recv_packet().await,
            r#"2/room-a,["welcome","/room-a"]"#
        );
    }
    wait_namespaces(&server.io, &["/", "/room-a"]).await;
    // One socket left: the child stays.
    first.send("1/room-a,").await;
    first.expect_nothing(Duration::from_millis(100)).await;
    assert_eq!(server.io.namespace_names(), ["/", "/room-a"]);
    // The last one leaves (its connection closes): the child goes.
    drop(second);
    wait_namespaces(&server.io, &["/"]).await;
    // A refused CONNECT leaves nothing behind either.
    first.send("0/room-locked,").await;
    assert_eq!(
        first.recv_packet().await,
        r#"4/room-locked,{"message":"locked"}"#
    );
    wait_namespaces(&server.io, &["/"]).await;
    // A name comes back as a new child, with the handlers.
    first.join("/room-a", None).await;
    assert_eq!(
        first.recv_packet().await,
        r#"2/room-a,["welcome","/room-a"]"#
    );
    // Namespaces made by `of` are never removed.
    server.io.of("/static");
    first.send("1/room-a,").await;
    wait_namespaces(&server.io, &["/", "/static"]).await;
}

#[tokio::test]
async fn what_is_registered_on_a_child_applies_to_that_child_only() {
    let server = start(rooms).await;
    // After the parent's own handlers, which run first.
    let vip = server.io.of("/room-vip");
    vip.use_middleware(|_| async { Err(ConnectError::new("members only")) });
    let mut client = server.client().await;
    client.send("0/room-vip,").await;
    assert_eq!(
        client.recv_packet().await,
        r#"4/room-vip,{"message":"members only"}"#
    );
    client.join("/room-a", None).await;
    assert_eq!(
        client.recv_packet().await,
        r#"2/room-a,["welcome","/room-a"]"#
    );
    let lobby = server.io.of("/room-lobby");
    lobby.on_connection(|socket| async move {
        socket.emit("lobby", &()).ok();
    });
    client.join("/room-lobby", None).await;
    assert_eq!(
        client.recv_packet().await,
        r#"2/room-lobby,["welcome","/room-lobby"]"#
    );
    assert_eq!(client.recv_packet().await, r#"2/room-lobby,["lobby"]"#);
    client.join("/room-b", None).await;
    assert_eq!(
        client.recv_packet().await,
        r#"2/room-b,["welcome","/room-b"]"#
    );
    client.expect_nothing(Duration::from_millis(100)).await;
}
