//! The client bundle served by `SocketIo::serve` when `Config::serve_client` is set: the files under
//! the path, Socket.IO beside them on the same listener, 404 elsewhere; and without it, the
//! bundle's names are Engine.IO requests.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use socketio::{ClientFiles, Config};
use support::*;

fn config_with_bundle() -> Config {
    let files = ClientFiles::from_memory(
        [
            ("socket.io.js", Bytes::from_static(b"/* the client */")),
            ("socket.io.min.js", Bytes::from_static(b"/*min*/")),
        ],
        "4.8.1",
    )
    .unwrap();
    let mut config = Config::default();
    config.serve_client = Some(Arc::new(files));
    config
}

#[tokio::test]
async fn the_bundle_is_served_beside_socket_io() {
    let server = start_with(config_with_bundle(), |_| {}).await;
    let js = http(server.addr, "GET", "/socket.io/socket.io.js", b"").await;
    assert_eq!(js.status, 200);
    assert_eq!(js.text(), "/* the client */");
    let min = http(server.addr, "GET", "/socket.io/socket.io.min.js?v=1", b"").await;
    assert_eq!(min.text(), "/*min*/");
    // A name of the bundle that was not given is an Engine.IO request.
    let map = http(server.addr, "GET", "/socket.io/socket.io.js.map", b"").await;
    assert_eq!(map.status, 400);
    assert_eq!(map.text(), r#"{"code":0,"message":"Transport unknown"}"#);
    assert_eq!(
        http(server.addr, "GET", "/socket.io.js", b"").await.status,
        404
    );
    // A WebSocket upgrade on a file's name is the engine's (here: no transport, refused).
    let ws = format!("ws://{}/socket.io/socket.io.js", server.addr);
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    match tokio_tungstenite::client_async(ws, stream).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected the engine's 400, got {other:?}"),
    }
    // Socket.IO itself still answers on the path.
    let (_client, sid) = server.connected().await;
    assert_eq!(server.socket(&sid).id(), sid);
}

#[tokio::test]
async fn without_serve_client_the_names_are_engine_io_requests() {
    let server = start(|_| {}).await;
    let js = http(server.addr, "GET", "/socket.io/socket.io.js", b"").await;
    assert_eq!(js.status, 400);
    assert_eq!(js.text(), r#"{"code":0,"message":"Transport unknown"}"#);
}
