//! SIGTERM stops `conformance-server` as it stops the reference server: every session is closed
//! (a WebSocket gets a close frame, a waiting poll gets the close packet) and the process exits 0.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::{ws_connect, Server};
use tokio_tungstenite::tungstenite::Message;

fn terminate(server: &Server) {
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_closes_every_session_and_exits_0() {
    let mut server = Server::start();
    let mut ws = ws_connect(server.url("/socket.io/?EIO=4&transport=websocket"))
        .await
        .expect("the websocket opens");
    let open = ws.next().await.expect("an open packet").expect("a frame");
    assert!(open.to_text().unwrap().starts_with("0{"), "{open:?}");
    // A polling session whose GET waits.
    let http = format!("http://127.0.0.1:{}", server.port);
    let handshake = http_get(format!("{http}/socket.io/?EIO=4&transport=polling")).await;
    let sid = handshake[1..].split('"').nth(3).expect("a sid").to_owned();
    let poll = tokio::spawn(http_get(format!(
        "{http}/socket.io/?EIO=4&transport=polling&sid={sid}"
    )));
    tokio::time::sleep(Duration::from_millis(200)).await;

    terminate(&server);

    // The WebSocket ends with a close frame (no code, as `ws` closes it), not a reset.
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return Ok(frame),
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Err(err.to_string()),
                None => return Err("the stream ended without a close frame".to_owned()),
            }
        }
    })
    .await
    .expect("the websocket is closed within 3 s");
    assert_eq!(closed, Ok(None));
    // The waiting poll gets the close packet.
    let body = tokio::time::timeout(Duration::from_secs(3), poll)
        .await
        .expect("the poll is answered within 3 s")
        .unwrap();
    assert!(body.ends_with('1'), "{body:?}");

    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
    assert!(!server.alive());
}

/// A GET of `url` on a new connection; the body as text.
async fn http_get(url: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, target) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connects");
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (_, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    body.to_owned()
}
