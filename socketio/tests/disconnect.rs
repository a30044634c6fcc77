//! Leaving a namespace: `disconnecting` handlers still see the socket's rooms, `disconnect` handlers
//! run after the rooms are left, and the reasons are the official ones: `client namespace
//! disconnect`, `server namespace disconnect`, `transport close`, `ping timeout`, `server shutting
//! down`.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socketio::{Config, DisconnectReason};
use support::*;

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Disconnecting(DisconnectReason, HashSet<String>),
    Disconnect(DisconnectReason, HashSet<String>),
}

type Log = Arc<Mutex<Vec<(String, Seen)>>>;

/// `/` and `/other` sockets join `room1`; their disconnecting/disconnect handlers log what they saw.
async fn logging_server(config: Config) -> (TestServer, Log) {
    let log: Log = Arc::default();
    let server = start_with(config, {
        let log = log.clone();
        move |io| {
            for name in ["/", "/other"] {
                let log = log.clone();
                io.of(name).on_connection(move |socket| {
                    let log = log.clone();
                    async move {
                        socket.join("room1");
                        let before = log.clone();
                        socket.on_disconnecting(move |socket, reason| {
                            let before = before.clone();
                            async move {
                                let rooms = socket.rooms().into_iter().collect();
                                before.lock().unwrap().push((
                                    socket.id().to_owned(),
                                    Seen::Disconnecting(reason, rooms),
                                ));
                            }
                        });
                        let after = log.clone();
                        socket.on_disconnect(move |socket, reason| {
                            let after = after.clone();
                            async move {
                                let rooms = socket.rooms().into_iter().collect();
                                after.lock().unwrap().push((
                                    socket.id().to_owned(),
                                    Seen::Disconnect(reason, rooms),
                                ));
                            }
                        });
                        socket.on("leave-me", |socket, _, _| async move {
                            socket.disconnect();
                        });
                    }
                });
            }
        }
    })
    .await;
    (server, log)
}

fn of(log: &Log, sid: &str) -> Vec<Seen> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| s == sid)
        .map(|(_, seen)| seen.clone())
        .collect()
}

/// Waits for both handlers of `sid`, checks the rooms they saw and the reason; the reason.
async fn both_handlers(log: &Log, sid: &str) -> DisconnectReason {
    let seen = wait_for(WAIT, || {
        let seen = of(log, sid);
        (seen.len() >= 2).then_some(seen)
    })
    .await
    .unwrap_or_else(|| panic!("handlers of {sid}: {:?}", of(log, sid)));
    assert_eq!(seen.len(), 2, "{seen:?}");
    let Seen::Disconnecting(first, rooms) = &seen[0] else {
        panic!("disconnecting first: {seen:?}")
    };
    assert_eq!(
        *rooms,
        HashSet::from([sid.to_owned(), "room1".to_owned()]),
        "disconnecting sees the rooms"
    );
    let Seen::Disconnect(second, rooms) = &seen[1] else {
        panic!("disconnect second: {seen:?}")
    };
    assert!(
        rooms.is_empty(),
        "disconnect runs after the rooms are left: {rooms:?}"
    );
    assert_eq!(first, second);
    *first
}

#[tokio::test]
async fn client_namespace_disconnect() {
    let (server, log) = logging_server(Config::default()).await;
    let (mut client, sid) = server.connected().await;
    client.send("1").await;
    assert_eq!(
        both_handlers(&log, &sid).await,
        DisconnectReason::ClientNamespaceDisconnect
    );
    assert_eq!(
        DisconnectReason::ClientNamespaceDisconnect.to_string(),
        "client namespace disconnect"
    );
    assert!(server.io.of("/").socket(&sid).is_none());
    assert!(server.io.to("room1").fetch_sockets().await.is_empty());
    // The connection stays open.
    assert_eq!(server.io.engine().session_count(), 1);
    client.join("/", None).await;
}

#[tokio::test]
async fn server_namespace_disconnect() {
    let (server, log) = logging_server(Config::default()).await;
    let (mut client, sid) = server.connected().await;
    client.send(r#"2["leave-me"]"#).await;
    assert_eq!(client.recv_packet().await, "1");
    assert_eq!(
        both_handlers(&log, &sid).await,
        DisconnectReason::ServerNamespaceDisconnect
    );
    assert_eq!(
        DisconnectReason::ServerNamespaceDisconnect.to_string(),
        "server namespace disconnect"
    );
    assert!(!server.io.of("/").sockets().iter().any(|s| s.id() == sid));
    assert_eq!(server.io.engine().session_count(), 1);
}

#[tokio::test]
async fn server_disconnect_of_one_namespace_leaves_the_other() {
    let (server, log) = logging_server(Config::default()).await;
    let mut client = server.client().await;
    let main = client.join("/", None).await;
    let other = client.join("/other", None).await;
    client.send(r#"2/other,["leave-me"]"#).await;
    assert_eq!(client.recv_packet().await, "1/other,");
    assert_eq!(
        both_handlers(&log, &other).await,
        DisconnectReason::ServerNamespaceDisconnect
    );
    assert!(of(&log, &main).is_empty());
    assert!(server.io.of("/").socket(&main).is_some());
}

#[tokio::test]
async fn packets_for_a_namespace_the_server_just_left_are_dropped() {
    // The client may send to a namespace before it reads the server's DISCONNECT: as in the
    // official server, that is no protocol violation; the connection and its other namespaces stay.
    let (server, log) = logging_server(Config::default()).await;
    let mut client = server.client().await;
    let main = client.join("/", None).await;
    let other = client.join("/other", None).await;
    client.send(r#"2/other,["leave-me"]"#).await;
    client.send(r#"2/other,["leave-me"]"#).await;
    client.send(r#"2/other,1["leave-me"]"#).await;
    client.send("3/other,7[]").await;
    assert_eq!(client.recv_packet().await, "1/other,");
    assert_eq!(
        both_handlers(&log, &other).await,
        DisconnectReason::ServerNamespaceDisconnect
    );
    client.expect_nothing(Duration::from_millis(200)).await;
    assert!(server.io.of("/").socket(&main).is_some());
    assert_eq!(server.io.engine().session_count(), 1);
    // Once joined again, the namespace takes events as before.
    let again = client.join("/other", None).await;
    client.send(r#"2/other,["leave-me"]"#).await;
    assert_eq!(client.recv_packet().await, "1/other,");
    assert_eq!(
        both_handlers(&log, &again).await,
        DisconnectReason::ServerNamespaceDisconnect
    );
}

#[tokio::test]
async fn transport_close_disconnects_every_namespace() {
    let (server, log) = logging_server(Config::default()).await;
    let mut client = server.client().await;
    let main = client.join("/", None).await;
    let other = client.join("/other", None).await;
    // The Engine.IO close packet.
    client.send_engine("1").await;
    assert_eq!(
        both_handlers(&log, &main).await,
        DisconnectReason::TransportClose
    );
    assert_eq!(
        both_handlers(&log, &other).await,
        DisconnectReason::TransportClose
    );
    assert_eq!(
        DisconnectReason::TransportClose.to_string(),
        "transport close"
    );
    let empty = wait_for(WAIT, || {
        (server.io.engine().session_count() == 0).then_some(())
    })
    .await;
    assert!(empty.is_some());
}

#[tokio::test]
async fn dropped_websocket_is_a_transport_close() {
    let (server, log) = logging_server(Config::default()).await;
    let (client, sid) = server.connected().await;
    drop(client);
    let reason = both_handlers(&log, &sid).await;
    assert!(
        matches!(
            reason,
            DisconnectReason::TransportClose | DisconnectReason::TransportError
        ),
        "{reason:?}"
    );
}

#[tokio::test]
async fn ping_timeout() {
    let mut config = Config::default();
    config.engine.ping_interval = Duration::from_millis(100);
    config.engine.ping_timeout = Duration::from_millis(100);
    let (server, log) = logging_server(config).await;
    let mut client = server.client().await;
    client.answer_pings = false;
    let sid = client.join("/", None).await;
    assert_eq!(
        both_handlers(&log, &sid).await,
        DisconnectReason::PingTimeout
    );
    assert_eq!(DisconnectReason::PingTimeout.to_string(), "ping timeout");
    let frames = client.expect_closed().await;
    assert!(
        frames
            .iter()
            .all(|f| *f == Frame::EngineText("2".to_owned())),
        "{frames:?}"
    );
}

#[tokio::test]
async fn answering_pings_keeps_the_sockets() {
    let mut config = Config::default();
    config.engine.ping_interval = Duration::from_millis(100);
    config.engine.ping_timeout = Duration::from_millis(400);
    let (server, log) = logging_server(config).await;
    let (mut client, sid) = server.connected().await;
    // The client answers pings while it waits; a second and a half is several cycles.
    client.expect_nothing(Duration::from_millis(1500)).await;
    assert!(of(&log, &sid).is_empty());
    assert!(server.io.of("/").socket(&sid).is_some());
}

#[tokio::test]
async fn disconnect_connection_disconnects_every_namespace_and_closes() {
    let (server, log) = logging_server(Config::default()).await;
    let mut client = server.client().await;
    let main = client.join("/", None).await;
    let other = client.join("/other", None).await;
    server.socket(&main).disconnect_connection();
    let frames = client.expect_closed().await;
    let packets: HashSet<Frame> = frames.into_iter().collect();
    assert_eq!(
        packets,
        HashSet::from([
            Frame::Packet("1".to_owned()),
            Frame::Packet("1/other,".to_owned())
        ])
    );
    assert_eq!(
        both_handlers(&log, &main).await,
        DisconnectReason::ServerNamespaceDisconnect
    );
    assert_eq!(
        both_handlers(&log, &other).await,
        DisconnectReason::ServerNamespaceDisconnect
    );
    let empty = wait_for(WAIT, || {
        (server.io.engine().session_count() == 0).then_some(())
    })
    .await;
    assert!(empty.is_some());
}

#[tokio::test]
async fn shutdown_disconnects_everyone() {
    let (server, log) = logging_server(Config::default()).await;
    let (mut client, sid) = server.connected().await;
    server.io.shutdown();
    client.expect_closed().await;
    assert_eq!(
        both_handlers(&log, &sid).await,
        DisconnectReason::ServerShuttingDown
    );
}

#[tokio::test]
async fn handlers_run_once() {
    let (server, log) = logging_server(Config::default()).await;
    let (mut client, sid) = server.connected().await;
    client.send(r#"2["leave-me"]"#).await;
    assert_eq!(client.recv_packet().await, "1");
    both_handlers(&log, &sid).await;
    // Closing the connection afterwards does not run them again.
    client.send_engine("1").await;
    client.expect_closed().await;
    let empty = wait_for(WAIT, || {
        (server.io.engine().session_count() == 0).then_some(())
    })
    .await;
    assert!(empty.is_some());
    assert_eq!(of(&log, &sid).len(), 2);
}
