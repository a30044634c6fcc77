//! Resource bounds: each session's outgoing queue is bounded in bytes (`max_buffered_bytes`), so a
//! client that stops reading, over WebSocket or polling, is closed with `transport error` instead of
//! growing memory; `max_sessions` refuses handshakes with 503; every close path empties the table.

mod support;

use std::time::Duration;

use engineio::{CloseReason, Config};
use support::*;

#[tokio::test]
async fn websocket_client_that_never_reads_is_closed_when_its_buffer_fills() {
    const LIMIT: usize = 64 * 1024;
    let mut config = Config::default();
    config.max_buffered_bytes = LIMIT;
    let server = start(config).await;
    let (ws, sid, _) = server.ws_session().await;
    let socket = server.socket(&sid);
    let chunk = "x".repeat(16 * 1024);
    // The kernel's socket buffers take a few megabytes; past those the queue fills and the session
    // must be closed long before 64 MiB were sent.
    let mut sent = 0usize;
    let mut refused = false;
    for _ in 0..4096 {
        if socket.send_text(&chunk).is_err() {
            refused = true;
            break;
        }
        sent += chunk.len();
        assert!(
            socket.buffered_bytes() <= LIMIT,
            "queue grew to {} bytes",
            socket.buffered_bytes()
        );
        // Let the writer move what it can to the socket.
        tokio::task::yield_now().await;
    }
    assert!(refused, "{sent} bytes queued for a client that never reads");
    assert!(socket.is_closed());
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::TransportError
    );
    server.wait_session_count(0, WAIT).await;
    drop(ws);
}

#[tokio::test]
async fn polling_client_that_never_polls_is_closed_when_its_buffer_fills() {
    const LIMIT: usize = 8 * 1024;
    let mut config = Config::default();
    config.max_buffered_bytes = LIMIT;
    let server = start(config).await;
    let (sid, _) = server.handshake().await;
    let socket = server.socket(&sid);
    let chunk = "y".repeat(1024);
    let mut accepted = 0;
    while socket.send_text(&chunk).is_ok() {
        accepted += 1;
        assert!(accepted <= LIMIT / chunk.len(), "accepted {accepted} KiB");
        assert!(socket.buffered_bytes() <= LIMIT);
    }
    // 1025-byte frames: seven fit in 8 KiB, the eighth does not.
    assert_eq!(accepted, 7);
    // The refused send closed the session, but the application hears of it on its own task, never
    // inside the send (the sender may hold locks its close handler takes).
    assert!(socket.is_closed());
    assert!(server.closes_of(&sid).is_empty());
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::TransportError
    );
    server.wait_session_count(0, WAIT).await;
    server
        .get(&polling(&sid))
        .await
        .assert_error(400, 1, "Session ID unknown");
}

#[tokio::test]
async fn a_reading_client_is_not_limited_by_the_buffer_bound() {
    // The bound is on what waits, not on what flows: a client that reads gets everything.
    const LIMIT: usize = 16 * 1024;
    let mut config = Config::default();
    config.max_buffered_bytes = LIMIT;
    let server = start(config).await;
    let (mut ws, sid, _) = server.ws_session().await;
    let socket = server.socket(&sid);
    let chunk = "z".repeat(4 * 1024);
    for i in 0..64 {
        socket.send_text(&chunk).unwrap();
        assert_eq!(
            recv_text(&mut ws).await.len(),
            chunk.len() + 1,
            "message {i}"
        );
    }
    assert!(server.closes_of(&sid).is_empty());
}

#[tokio::test]
async fn max_sessions_refuses_handshakes_with_503() {
    let mut config = Config::default();
    config.max_sessions = 2;
    let server = start(config).await;
    let (first, _) = server.handshake().await;
    server.handshake().await;
    let refused = server.get(POLLING_HANDSHAKE).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("1"));
    // A freed slot can be used again.
    server.post(&polling(&first), "1").await;
    server.wait_session_count(1, WAIT).await;
    assert_eq!(server.get(POLLING_HANDSHAKE).await.status, 200);
}

#[tokio::test]
async fn every_close_path_empties_the_session_table() {
    let mut config = Config::default();
    config.ping_interval = Duration::from_millis(100);
    config.ping_timeout = Duration::from_millis(100);
    config.max_http_buffer_size = 100;
    let server = start(config).await;

    // Client close packet over polling and over WebSocket.
    let (a, _) = server.handshake().await;
    server.post(&polling(&a), "1").await;
    let (mut ws_b, _, _) = server.ws_session().await;
    send_text(&mut ws_b, "1").await;
    // Server-side close on polling (after the close packet is fetched) and on WebSocket.
    let (c, _) = server.handshake().await;
    server.socket(&c).close();
    let (_ws_d, d, _) = server.ws_session().await;
    server.socket(&d).close();
    // Oversized POST, undecodable POST, oversized WebSocket message.
    let (e, _) = server.handshake().await;
    server.post(&polling(&e), "4".repeat(300)).await;
    let (f, _) = server.handshake().await;
    server.post(&polling(&f), "x").await;
    let (mut ws_g, _, _) = server.ws_session().await;
    send_text(&mut ws_g, &"4".repeat(300)).await;
    // Ping timeout (a session nobody polls).
    let (_h, _) = server.handshake().await;

    // (A ping may have been queued before the close.)
    assert!(server.get(&polling(&c)).await.text().ends_with('1'));
    server.wait_session_count(0, WAIT).await;
    let closes = server.record.closes.lock().unwrap().len();
    assert_eq!(closes, 8);
}

#[tokio::test]
async fn a_request_head_over_16_kib_gets_431_as_from_node() {
    let server = start_default().await;
    // The whole head counts: request line, headers and the blank line; Node's HTTP server lets
    // 16 KiB (and a little) through and answers a longer head with 431.
    for (filler, status) in [(15_900, 200), (16_600, 431), (300_000, 431)] {
        let big = "a".repeat(filler);
        let response = server
            .request("GET", POLLING_HANDSHAKE, &[("X-Filler", big.as_str())], b"")
            .await;
        assert_eq!(response.status, status, "{filler}-byte header");
    }
    // A large body is not a large head: a POST of 200 KB still reaches the session.
    let (sid, _) = server.handshake().await;
    let body = format!("4{}", "b".repeat(200_000));
    let response = server.post(&polling(&sid), &body).await;
    assert_eq!(response.text(), "ok");
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
}
