//! Upgrading a polling session to WebSocket: `2probe` → `3probe`, a poll waiting during the upgrade
//! answered `6` by a check every 100 ms (as the official server, not at once), `5` completes it and packets queued on polling leave on the WebSocket in order; after
//! the upgrade polling requests get 400 and a second WebSocket is closed; a half-done upgrade is
//! dropped after `upgradeTimeout` while the polling session goes on.

mod support;

use std::time::{Duration, Instant};

use engineio::{Config, TransportKind};
use support::*;

fn upgrade_query(sid: &str) -> String {
    format!("EIO=4&transport=websocket&sid={sid}")
}

fn spawn_poll(server: &TestServer, sid: &str) -> tokio::task::JoinHandle<HttpResponse> {
    let addr = server.addr;
    let target = server.target(&polling(sid));
    tokio::spawn(async move { http(addr, "GET", &target, &[], b"").await })
}

/// Waits until a poll of `sid` is parked on the server.
async fn poll_is_waiting(server: &TestServer, sid: &str) {
    let socket = server.socket(sid);
    let waiting = wait_for(WAIT, || socket.is_writable().then_some(())).await;
    assert!(waiting.is_some(), "the poll never started waiting");
}

/// A polling session upgraded to WebSocket.
async fn upgraded(server: &TestServer) -> (String, Ws) {
    let (sid, _) = server.handshake().await;
    let ws = server.upgrade(&sid).await;
    (sid, ws)
}

#[tokio::test]
async fn probe_is_answered() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let mut ws = server.ws(&upgrade_query(&sid)).await.unwrap();
    send_text(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");
    // Still on polling until the client sends 5.
    assert_eq!(server.socket(&sid).transport(), TransportKind::Polling);
}

#[tokio::test]
async fn pending_poll_gets_a_noop_from_the_check_after_the_probe() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let poll = spawn_poll(&server, &sid);
    poll_is_waiting(&server, &sid).await;
    let mut ws = server.ws(&upgrade_query(&sid)).await.unwrap();
    let probed = Instant::now();
    send_text(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");
    let response = tokio::time::timeout(Duration::from_secs(2), poll)
        .await
        .expect("the pending poll is answered promptly")
        .unwrap();
    // The official server's check runs 100 ms after the probe, not at once: a client that gets
    // the noop sooner sees a packet it would not see from Node.
    assert!(
        probed.elapsed() >= Duration::from_millis(90),
        "answered after {:?}",
        probed.elapsed()
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "6");
}

#[tokio::test]
async fn new_poll_during_the_upgrade_gets_a_noop_at_the_next_check() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let mut ws = server.ws(&upgrade_query(&sid)).await.unwrap();
    let probed = Instant::now();
    send_text(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");
    let response = tokio::time::timeout(Duration::from_secs(2), server.get(&polling(&sid)))
        .await
        .expect("a poll during the upgrade is answered promptly");
    assert!(probed.elapsed() >= Duration::from_millis(90));
    assert_eq!(response.text(), "6");
    // The checks go on while the upgrade is pending.
    let response = tokio::time::timeout(Duration::from_secs(2), server.get(&polling(&sid)))
        .await
        .expect("the next poll is answered too");
    assert_eq!(response.text(), "6");
}

#[tokio::test]
async fn poll_still_waiting_when_the_upgrade_completes_gets_a_close_packet() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let poll = spawn_poll(&server, &sid);
    poll_is_waiting(&server, &sid).await;
    // No probe, so nothing ended the poll before the upgrade packet.
    let mut ws = server.ws(&upgrade_query(&sid)).await.unwrap();
    send_text(&mut ws, "5").await;
    let response = tokio::time::timeout(WAIT, poll)
        .await
        .expect("the stale poll is answered")
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "1");
    send_text(&mut ws, "4still here").await;
    assert_eq!(recv_text(&mut ws).await, "4still here");
    assert_eq!(server.socket(&sid).transport(), TransportKind::WebSocket);
    assert!(server.closes_of(&sid).is_empty());
}

#[tokio::test]
async fn packets_queued_before_the_upgrade_leave_on_the_websocket_in_order() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let mut ws = server.ws(&upgrade_query(&sid)).await.unwrap();
    send_text(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");
    // Queued while the session still lives on polling (nobody polls).
    let socket = server.socket(&sid);
    socket.send_text("one").unwrap();
    socket.send_binary(vec![2u8].into()).unwrap();
    socket.send_text("three").unwrap();
    // A message posted during the upgrade is echoed into the same queue.
    assert_eq!(server.post(&polling(&sid), "4four").await.text(), "ok");
    send_text(&mut ws, "5").await;
    assert_eq!(recv_text(&mut ws).await, "4one");
    assert_eq!(recv_binary(&mut ws).await, [2]);
    assert_eq!(recv_text(&mut ws).await, "4three");
    assert_eq!(recv_text(&mut ws).await, "4four");
    // And the upgraded session echoes over the WebSocket.
    send_text(&mut ws, "4five").await;
    assert_eq!(recv_text(&mut ws).await, "4five");
    assert_eq!(socket.transport(), TransportKind::WebSocket);
    assert_eq!(server.engine.session_count(), 1);
}

#[tokio::test]
async fn polling_after_the_upgrade_is_bad_request() {
    let server = start_default().await;
    let (sid, mut ws) = upgraded(&server).await;
    server
        .get(&polling(&sid))
        .await
        .assert_error(400, 3, "Bad request");
    server
        .post(&polling(&sid), "4x")
        .await
        .assert_error(400, 3, "Bad request");
    // The session is unharmed.
    send_text(&mut ws, "4still here").await;
    assert_eq!(recv_text(&mut ws).await, "4still here");
}

#[tokio::test]
async fn second_websocket_with_the_sid_is_closed() {
    let server = start_default().await;
    let (sid, mut ws) = upgraded(&server).await;
    let mut intruder = server.ws(&upgrade_query(&sid)).await.unwrap();
    let (_, texts) = recv_close(&mut intruder, WAIT).await;
    assert!(texts.is_empty(), "{texts:?}");
    // The first WebSocket still carries the session.
    send_text(&mut ws, "4mine").await;
    assert_eq!(recv_text(&mut ws).await, "4mine");
    assert!(server.closes_of(&sid).is_empty());
}

#[tokio::test]
async fn second_websocket_during_an_upgrade_is_closed() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let mut ws = server.ws(&upgrade_query(&sid)).await.unwrap();
    send_text(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");
    let mut intruder = server.ws(&upgrade_query(&sid)).await.unwrap();
    let _ = recv_close(&mut intruder, WAIT).await;
    send_text(&mut ws, "5").await;
    server.socket(&sid).send_text("after").unwrap();
    assert_eq!(recv_text(&mut ws).await, "4after");
}

#[tokio::test]
async fn unfinished_upgrade_is_dropped_after_the_upgrade_timeout() {
    let mut config = Config::default();
    config.upgrade_timeout = Duration::from_millis(300);
    let server = start(config).await;
    let (sid, _) = server.handshake().await;
    let mut ws = server.ws(&upgrade_query(&sid)).await.unwrap();
    let started = Instant::now();
    send_text(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");
    // No 5: the server drops the new transport.
    let (_, texts) = recv_close(&mut ws, WAIT).await;
    assert!(texts.is_empty(), "{texts:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "dropped after {:?}",
        started.elapsed()
    );
    // The polling session goes on as before.
    let socket = server.socket(&sid);
    assert_eq!(socket.transport(), TransportKind::Polling);
    assert!(server.closes_of(&sid).is_empty());
    assert_eq!(server.post(&polling(&sid), "4hi").await.text(), "ok");
    assert_eq!(server.get(&polling(&sid)).await.text(), "4hi");
    // And a poll waits again instead of being answered with noops.
    let waiting =
        tokio::time::timeout(Duration::from_millis(200), server.get(&polling(&sid))).await;
    assert!(waiting.is_err(), "{waiting:?}");
}

#[tokio::test]
async fn upgrade_can_be_retried_after_a_timeout() {
    let mut config = Config::default();
    config.upgrade_timeout = Duration::from_millis(300);
    let server = start(config).await;
    let (sid, _) = server.handshake().await;
    let mut first = server.ws(&upgrade_query(&sid)).await.unwrap();
    send_text(&mut first, "2probe").await;
    assert_eq!(recv_text(&mut first).await, "3probe");
    let _ = recv_close(&mut first, WAIT).await;
    let mut second = server.ws(&upgrade_query(&sid)).await.unwrap();
    send_text(&mut second, "2probe").await;
    assert_eq!(recv_text(&mut second).await, "3probe");
    send_text(&mut second, "5").await;
    send_text(&mut second, "4again").await;
    assert_eq!(recv_text(&mut second).await, "4again");
    assert_eq!(server.socket(&sid).transport(), TransportKind::WebSocket);
}

#[tokio::test]
async fn upgrade_websocket_that_goes_away_leaves_the_session_on_polling() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let mut ws = server.ws(&upgrade_query(&sid)).await.unwrap();
    send_text(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");
    drop(ws);
    let socket = server.socket(&sid);
    // Polls are answered with noops until the server notices; then a poll waits for data again.
    let deadline = Instant::now() + WAIT;
    let mut poll = loop {
        assert!(Instant::now() < deadline, "polls kept getting noops");
        let mut poll = spawn_poll(&server, &sid);
        match tokio::time::timeout(Duration::from_millis(100), &mut poll).await {
            Ok(response) => {
                assert_eq!(response.unwrap().text(), "6");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => break poll,
        }
    };
    socket.send_text("back").unwrap();
    let response = tokio::time::timeout(WAIT, &mut poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.text(), "4back");
    assert_eq!(socket.transport(), TransportKind::Polling);
    assert!(server.closes_of(&sid).is_empty());
}

#[tokio::test]
async fn an_upgrade_with_b64_sends_binary_as_base64_text() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let mut ws = server
        .ws(&format!("{}&b64=1", upgrade_query(&sid)))
        .await
        .unwrap();
    send_text(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");
    let socket = server.socket(&sid);
    socket.send_binary(vec![0xfb, 0xff].into()).unwrap();
    send_text(&mut ws, "5").await;
    assert_eq!(recv_text(&mut ws).await, "b+/8=");
    send_binary(&mut ws, &[9]).await;
    assert_eq!(recv_text(&mut ws).await, "bCQ==");
}

#[tokio::test]
async fn an_upgrade_header_without_connection_upgrade_is_plain_http() {
    // As Node's HTTP parser decides: no `upgrade` token in `Connection`, no upgrade.
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    assert_eq!(server.post(&polling(&sid), "4hello").await.text(), "ok");
    let upgrade_only = [("Upgrade", "websocket")];
    let poll = http(
        server.addr,
        "GET",
        &server.target(&polling(&sid)),
        &upgrade_only,
        b"",
    )
    .await;
    assert_eq!((poll.status, poll.text()), (200, "4hello".to_owned()));
    let key = [
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let handshake = http(server.addr, "GET", &server.target(WS_HANDSHAKE), &key, b"").await;
    handshake.assert_error(400, 3, "Bad request");
}

#[tokio::test]
async fn a_websocket_asked_for_the_polling_transport_is_accepted_then_closed() {
    // As the official server: the polling transport takes no WebSocket, so it is closed at once and
    // no session is opened; a session named in it goes on over polling.
    let server = start_default().await;
    let mut ws = server.ws("EIO=4&transport=polling").await.unwrap();
    let (close, texts) = recv_close(&mut ws, WAIT).await;
    assert!(texts.is_empty(), "{texts:?}");
    assert!(close.is_none(), "{close:?}");
    assert_eq!(server.engine.session_count(), 0);

    let (sid, _) = server.handshake().await;
    let mut ws = server
        .ws(&format!("EIO=4&transport=polling&sid={sid}"))
        .await
        .unwrap();
    let (_, texts) = recv_close(&mut ws, WAIT).await;
    assert!(texts.is_empty(), "{texts:?}");
    assert_eq!(server.post(&polling(&sid), "4still").await.text(), "ok");
    assert_eq!(server.get(&polling(&sid)).await.text(), "4still");
}
