//! Close paths and their reasons: a client close packet (`transport close`), a server-side
//! `socket.close()` (the polling client gets `1` after what was queued, the WebSocket client a close
//! frame), server shutdown; `on_close` runs exactly once and every path removes the session.

mod support;

use std::time::Duration;

use engineio::CloseReason;
use support::*;

/// Lets late duplicate `on_close` calls show up before counting them.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn polling_client_close_packet_is_a_transport_close() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    assert_eq!(server.post(&polling(&sid), "1").await.text(), "ok");
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::TransportClose
    );
    server.wait_session_count(0, WAIT).await;
    server
        .get(&polling(&sid))
        .await
        .assert_error(400, 1, "Session ID unknown");
    settle().await;
    assert_eq!(server.closes_of(&sid), [CloseReason::TransportClose]);
}

#[tokio::test]
async fn messages_before_a_close_packet_are_delivered_and_after_it_not() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    server.post(&polling(&sid), "4before\x1e1\x1e4after").await;
    server.wait_close(&sid, WAIT).await;
    let messages = server.messages();
    assert_eq!(messages, [engineio::Message::Text("before".into())]);
}

#[tokio::test]
async fn websocket_client_close_packet_is_a_transport_close() {
    let server = start_default().await;
    let (mut ws, sid, _) = server.ws_session().await;
    send_text(&mut ws, "1").await;
    let _ = recv_close(&mut ws, WAIT).await;
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::TransportClose
    );
    server.wait_session_count(0, WAIT).await;
    settle().await;
    assert_eq!(server.closes_of(&sid), [CloseReason::TransportClose]);
}

#[tokio::test]
async fn server_close_reaches_a_waiting_poll_as_a_close_packet() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let poll = {
        let addr = server.addr;
        let target = server.target(&polling(&sid));
        tokio::spawn(async move { http(addr, "GET", &target, &[], b"").await })
    };
    let socket = server.socket(&sid);
    let waiting = wait_for(WAIT, || socket.is_writable().then_some(())).await;
    assert!(waiting.is_some());
    socket.close();
    let response = tokio::time::timeout(WAIT, poll).await.unwrap().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "1");
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::ForcedClose
    );
    server.wait_session_count(0, WAIT).await;
    settle().await;
    assert_eq!(server.closes_of(&sid), [CloseReason::ForcedClose]);
}

#[tokio::test]
async fn server_close_flushes_queued_packets_then_the_close_packet_on_the_next_poll() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let socket = server.socket(&sid);
    socket.send_text("bye").unwrap();
    socket.close();
    assert!(socket.is_closed());
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::ForcedClose
    );
    // Nothing more may be queued.
    assert!(socket.send_text("late").is_err());
    // As the official server does: the queued packets leave first, and the close packet never shares
    // their response (the client would act on the close before on them); a later poll gets `6␞1`.
    let response = server.get(&polling(&sid)).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "4bye");
    let response = server.get(&polling(&sid)).await;
    assert_eq!(response.text(), "6\x1e1");
    // Once the close packet went out, the session is gone: the poll that carried it removed it
    // before its answer left, as the official server does (a request racing that answer gets 400).
    assert_eq!(server.engine.session_count(), 0);
    server
        .get(&polling(&sid))
        .await
        .assert_error(400, 1, "Session ID unknown");
    settle().await;
    assert_eq!(server.closes_of(&sid), [CloseReason::ForcedClose]);
}

#[tokio::test]
async fn server_close_on_websocket_sends_queued_packets_then_a_close_frame() {
    let server = start_default().await;
    let (mut ws, sid, _) = server.ws_session().await;
    let socket = server.socket(&sid);
    socket.send_text("bye").unwrap();
    socket.close();
    let (frame, texts) = recv_close(&mut ws, WAIT).await;
    assert_eq!(texts, ["4bye"]);
    assert!(
        frame.as_ref().is_none_or(|f| u16::from(f.code) == 1000),
        "{frame:?}"
    );
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::ForcedClose
    );
    server.wait_session_count(0, WAIT).await;
    settle().await;
    assert_eq!(server.closes_of(&sid), [CloseReason::ForcedClose]);
}

#[tokio::test]
async fn closing_twice_calls_on_close_once() {
    let server = start_default().await;
    let (mut ws, sid, _) = server.ws_session().await;
    let socket = server.socket(&sid);
    socket.close();
    socket.close_with(CloseReason::ServerShuttingDown);
    let _ = recv_close(&mut ws, WAIT).await;
    server.wait_session_count(0, WAIT).await;
    settle().await;
    assert_eq!(server.closes_of(&sid), [CloseReason::ForcedClose]);
}

#[tokio::test]
async fn shutdown_closes_every_session_and_refuses_new_ones() {
    let server = start_default().await;
    let (mut ws, ws_sid, _) = server.ws_session().await;
    let (poll_sid, _) = server.handshake().await;
    server.engine.shutdown();
    let _ = recv_close(&mut ws, WAIT).await;
    assert_eq!(
        server.wait_close(&ws_sid, WAIT).await,
        CloseReason::ServerShuttingDown
    );
    assert_eq!(
        server.wait_close(&poll_sid, WAIT).await,
        CloseReason::ServerShuttingDown
    );
    // No poll was waiting: the next one gets a noop then the close packet, as from the official server.
    assert_eq!(server.get(&polling(&poll_sid)).await.text(), "6\x1e1");
    server.wait_session_count(0, WAIT).await;
    let refused = server.get(POLLING_HANDSHAKE).await;
    assert_eq!(refused.status, 503);
}

#[tokio::test]
async fn polling_client_that_goes_away_mid_poll_is_closed() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let poll = {
        let addr = server.addr;
        let target = server.target(&polling(&sid));
        tokio::spawn(async move { http(addr, "GET", &target, &[], b"").await })
    };
    let socket = server.socket(&sid);
    let waiting = wait_for(WAIT, || socket.is_writable().then_some(())).await;
    assert!(waiting.is_some());
    // The client drops its connection while the poll waits.
    poll.abort();
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::TransportError
    );
    server.wait_session_count(0, WAIT).await;
}

#[tokio::test]
async fn a_waiting_poll_gets_the_answers_to_a_post_that_ends_the_session() {
    // The official server writes a message to a waiting poll as soon as it is sent, so the echo of
    // `4hello` reaches the client even though the same POST then ends the session.
    for (body, reason) in [
        ("4hello\x1e1", CloseReason::TransportClose),
        ("4hello\x1e9", CloseReason::ParseError),
    ] {
        let server = start_default().await;
        let (sid, _) = server.handshake().await;
        let poll = {
            let server_addr = server.addr;
            let target = server.target(&polling(&sid));
            tokio::spawn(async move { http(server_addr, "GET", &target, &[], b"").await })
        };
        // Let the poll reach the server and wait there.
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.post(&polling(&sid), body).await;
        assert_eq!(poll.await.unwrap().text(), "4hello", "{body:?}");
        assert_eq!(server.wait_close(&sid, WAIT).await, reason);
        server
            .get(&polling(&sid))
            .await
            .assert_error(400, 1, "Session ID unknown");
    }
}

/// A session the server closed waits for a poll to carry its close packet; as the official server,
/// a client that ends it first (a close packet, or a request that breaks the transport) ends it at
/// once, with no close packet left to fetch. A payload that cannot be parsed changes nothing.
#[tokio::test]
async fn a_client_close_ends_a_server_closed_session_still_waiting_for_its_poll() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    server.socket(&sid).close();
    assert_eq!(server.post(&polling(&sid), "4x\x1e1").await.text(), "ok");
    server
        .get(&polling(&sid))
        .await
        .assert_error(400, 1, "Session ID unknown");
    assert!(
        server.messages().is_empty(),
        "packets after a close are dropped"
    );

    let (sid, _) = server.handshake().await;
    server.socket(&sid).close();
    let binary = server
        .request(
            "POST",
            &polling(&sid),
            &[("content-type", "application/octet-stream")],
            b"4x",
        )
        .await;
    assert_eq!(binary.status, 400);
    server
        .get(&polling(&sid))
        .await
        .assert_error(400, 1, "Session ID unknown");

    let (sid, _) = server.handshake().await;
    server.socket(&sid).close();
    assert_eq!(server.post(&polling(&sid), "9").await.text(), "ok");
    assert_eq!(server.get(&polling(&sid)).await.text(), "6\x1e1");
    settle().await;
    assert_eq!(server.closes_of(&sid), [CloseReason::ForcedClose]);
}
