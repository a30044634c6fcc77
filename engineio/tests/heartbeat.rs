//! Heartbeat: the server sends `2` one `pingInterval` after the handshake (not before), a `3` keeps the
//! session alive cycle after cycle, and a session whose client does not answer within `pingTimeout`
//! (counted from the session's creation) closes with `ping timeout`, over WebSocket and polling alike.

mod support;

use std::time::{Duration, Instant};

use engineio::{CloseReason, Config};
use support::*;

const INTERVAL: Duration = Duration::from_millis(100);
const TIMEOUT: Duration = Duration::from_millis(100);
/// Scheduling slack on a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);

fn config() -> Config {
    let mut config = Config::default();
    config.ping_interval = INTERVAL;
    config.ping_timeout = TIMEOUT;
    config
}

/// For the keep-alive tests: a pong has 400 ms to arrive (a loaded machine may be slow to answer),
/// and eight cycles last well past one interval + timeout.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_millis(400);
const CYCLES: u32 = 8;

fn keepalive_config() -> Config {
    let mut config = config();
    config.ping_timeout = KEEPALIVE_TIMEOUT;
    config
}

#[tokio::test]
async fn first_ping_comes_one_interval_after_the_handshake() {
    let server = start(config()).await;
    let started = Instant::now();
    let (mut ws, _, open) = server.ws_session().await;
    assert_eq!(open["pingInterval"], 100);
    assert_eq!(open["pingTimeout"], 100);
    assert_eq!(recv_text(&mut ws).await, "2");
    let elapsed = started.elapsed();
    assert!(elapsed >= INTERVAL, "ping after {elapsed:?}");
    assert!(elapsed < INTERVAL + SLACK, "ping after {elapsed:?}");
}

#[tokio::test]
async fn pongs_keep_a_websocket_session_alive() {
    let server = start(keepalive_config()).await;
    let started = Instant::now();
    let (mut ws, sid, _) = server.ws_session().await;
    for _ in 0..CYCLES {
        assert_eq!(recv_text(&mut ws).await, "2");
        send_text(&mut ws, "3").await;
    }
    // The cycles lasted longer than one interval + timeout: the pongs kept the session.
    assert!(started.elapsed() >= INTERVAL * CYCLES);
    assert!(INTERVAL * CYCLES > INTERVAL + KEEPALIVE_TIMEOUT);
    assert!(server.closes_of(&sid).is_empty());
    send_text(&mut ws, "4alive").await;
    let reply = loop {
        let text = recv_text(&mut ws).await;
        if text == "2" {
            send_text(&mut ws, "3").await;
        } else {
            break text;
        }
    };
    assert_eq!(reply, "4alive");
    assert!(server.engine.socket(&sid).is_some());
}

#[tokio::test]
async fn pongs_keep_a_polling_session_alive() {
    let server = start(keepalive_config()).await;
    let started = Instant::now();
    let (sid, _) = server.handshake().await;
    for _ in 0..CYCLES {
        let response = server.get(&polling(&sid)).await;
        assert_eq!(response.text(), "2");
        assert_eq!(server.post(&polling(&sid), "3").await.text(), "ok");
    }
    assert!(started.elapsed() >= INTERVAL * CYCLES);
    assert!(server.closes_of(&sid).is_empty());
    assert!(server.engine.socket(&sid).is_some());
}

#[tokio::test]
async fn silent_websocket_client_is_closed_with_ping_timeout() {
    let server = start(config()).await;
    let started = Instant::now();
    let (mut ws, sid, _) = server.ws_session().await;
    assert_eq!(recv_text(&mut ws).await, "2");
    // No pong: the server closes the WebSocket.
    let (_, texts) = recv_close(&mut ws, INTERVAL + TIMEOUT + SLACK).await;
    assert!(texts.is_empty(), "{texts:?}");
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::PingTimeout
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= INTERVAL + TIMEOUT, "closed after {elapsed:?}");
    assert!(
        elapsed < INTERVAL + TIMEOUT + SLACK,
        "closed after {elapsed:?}"
    );
    server.wait_session_count(0, WAIT).await;
    assert_eq!(server.closes_of(&sid), [CloseReason::PingTimeout]);
}

#[tokio::test]
async fn polling_client_that_never_polls_is_forgotten() {
    let server = start(config()).await;
    let started = Instant::now();
    let (sid, _) = server.handshake().await;
    assert_eq!(server.engine.session_count(), 1);
    server
        .wait_session_count(0, INTERVAL + TIMEOUT + SLACK)
        .await;
    assert!(started.elapsed() >= INTERVAL + TIMEOUT);
    assert_eq!(server.closes_of(&sid), [CloseReason::PingTimeout]);
    server
        .get(&polling(&sid))
        .await
        .assert_error(400, 1, "Session ID unknown");
}

#[tokio::test]
async fn polling_client_that_reads_the_ping_but_does_not_answer_is_closed() {
    let server = start(config()).await;
    let (sid, _) = server.handshake().await;
    assert_eq!(server.get(&polling(&sid)).await.text(), "2");
    assert_eq!(
        server.wait_close(&sid, INTERVAL + TIMEOUT + SLACK).await,
        CloseReason::PingTimeout
    );
    server.wait_session_count(0, WAIT).await;
}

#[tokio::test]
async fn a_client_ping_is_a_protocol_error() {
    // In Engine.IO v4 only the server pings.
    let server = start(config()).await;
    let (mut ws, sid, _) = server.ws_session().await;
    send_text(&mut ws, "2").await;
    let _ = recv_close(&mut ws, WAIT).await;
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::TransportError
    );
}
