//! HTTP long-polling: a GET waits until there is something to send, a POST answers `ok`, queued
//! packets leave together joined by `\x1e`, binary travels as `b<base64>`, UTF-8 survives, an
//! overlapping GET closes the session, and a bad POST (too large, undecodable) closes it too.

mod support;

use std::time::Duration;

use engineio::{CloseReason, Config, Message};
use support::*;

#[tokio::test]
async fn get_waits_until_the_server_sends() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let mut poll = {
        let addr = server.addr;
        let target = server.target(&polling(&sid));
        tokio::spawn(async move { http(addr, "GET", &target, &[], b"").await })
    };
    // Nothing to send: the poll stays open.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut poll)
            .await
            .is_err(),
        "the poll answered with nothing queued"
    );
    server.socket(&sid).send_text("late news").unwrap();
    let response = tokio::time::timeout(WAIT, poll)
        .await
        .expect("the poll is answered once something is queued")
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "4late news");
}

#[tokio::test]
async fn post_answers_ok_and_the_echo_comes_on_the_next_get() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let response = server.post(&polling(&sid), "4hello").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "ok");
    let messages = server.record.messages.lock().unwrap().clone();
    assert_eq!(messages, [(sid.clone(), Message::Text("hello".into()))]);
    let response = server.get(&polling(&sid)).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "4hello");
}

#[tokio::test]
async fn several_queued_packets_leave_in_one_get() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let response = server.post(&polling(&sid), "4one\x1e4two\x1e4three").await;
    assert_eq!(response.text(), "ok");
    server.socket(&sid).send_text("four").unwrap();
    let response = server.get(&polling(&sid)).await;
    assert_eq!(response.text(), "4one\x1e4two\x1e4three\x1e4four");
    // The queue was emptied: the next poll waits again.
    let next = tokio::time::timeout(Duration::from_millis(150), server.get(&polling(&sid))).await;
    assert!(next.is_err(), "a second poll found data: {next:?}");
}

#[tokio::test]
async fn binary_is_echoed_as_base64() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    // [1, 2, 3] then [0xff, 0, 0x80, 0x7f]
    let response = server.post(&polling(&sid), "bAQID\x1eb/wCAfw==").await;
    assert_eq!(response.text(), "ok");
    let messages = server.messages();
    assert_eq!(
        messages,
        [
            Message::Binary(vec![1u8, 2, 3].into()),
            Message::Binary(vec![0xffu8, 0, 0x80, 0x7f].into())
        ]
    );
    let response = server.get(&polling(&sid)).await;
    assert_eq!(response.text(), "bAQID\x1eb/wCAfw==");
}

#[tokio::test]
async fn text_and_binary_mixed_in_one_payload_keep_their_order() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    server.post(&polling(&sid), "4a\x1ebAQID\x1e4b").await;
    assert_eq!(server.get(&polling(&sid)).await.text(), "4a\x1ebAQID\x1e4b");
}

#[tokio::test]
async fn multibyte_utf8_round_trips() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let text = "héllo wörld 😀🎉 日本語";
    let response = server.post(&polling(&sid), format!("4{text}\x1e4€")).await;
    assert_eq!(response.text(), "ok");
    let response = server.get(&polling(&sid)).await;
    assert_eq!(response.text(), format!("4{text}\x1e4€"));
}

#[tokio::test]
async fn the_size_limit_counts_bytes_not_characters() {
    let mut config = Config::default();
    config.max_http_buffer_size = 20;
    let server = start(config).await;
    let (sid, open) = server.handshake().await;
    assert_eq!(open["maxPayload"], 20);
    // 1 + 4 × 4 + 3 = 20 bytes (8 characters): accepted.
    let fits = "4😀😀😀😀abc";
    assert_eq!(fits.len(), 20);
    let response = server.post(&polling(&sid), fits).await;
    assert_eq!(response.status, 200);
    assert_eq!(server.get(&polling(&sid)).await.text(), fits);
    // 1 + 5 × 4 = 21 bytes (6 characters): refused.
    let too_big = "4😀😀😀😀😀";
    assert_eq!(too_big.len(), 21);
    let response = server.post(&polling(&sid), too_big).await;
    assert_eq!(response.status, 413);
    server
        .get(&polling(&sid))
        .await
        .assert_error(400, 1, "Session ID unknown");
}

#[tokio::test]
async fn post_over_the_limit_is_413_and_closes_the_session() {
    let mut config = Config::default();
    config.max_http_buffer_size = 100;
    let server = start(config).await;
    let (sid, _) = server.handshake().await;
    let body = format!("4{}", "x".repeat(200));
    let response = server.post(&polling(&sid), &body).await;
    assert_eq!(response.status, 413);
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::TransportError
    );
    assert_eq!(server.engine.session_count(), 0);
    server
        .get(&polling(&sid))
        .await
        .assert_error(400, 1, "Session ID unknown");
    // Nothing of the refused body reached the application.
    assert!(server.record.messages.lock().unwrap().is_empty());
}

#[tokio::test]
async fn chunked_post_over_the_limit_is_413() {
    let mut config = Config::default();
    config.max_http_buffer_size = 100;
    let server = start(config).await;
    let (sid, _) = server.handshake().await;
    let body = format!("4{}", "y".repeat(150));
    let response = server
        .request(
            "POST",
            &polling(&sid),
            &[("Transfer-Encoding", "chunked")],
            body.as_bytes(),
        )
        .await;
    assert_eq!(response.status, 413);
    server.wait_session_count(0, WAIT).await;
    assert!(server.record.messages.lock().unwrap().is_empty());
}

#[tokio::test]
async fn overlapping_get_closes_the_session() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let first = {
        let addr = server.addr;
        let target = server.target(&polling(&sid));
        tokio::spawn(async move { http(addr, "GET", &target, &[], b"").await })
    };
    // Let the first poll settle in before the intruder arrives.
    let waiting = wait_for(WAIT, || server.socket(&sid).is_writable().then_some(())).await;
    assert!(waiting.is_some(), "the first poll never started waiting");
    let intruder = server.get(&polling(&sid)).await;
    assert_eq!(intruder.status, 400);
    let first = tokio::time::timeout(WAIT, first).await.unwrap().unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "1");
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
async fn undecodable_post_closes_the_session() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let response = server.post(&polling(&sid), "9").await;
    assert_eq!(response.status, 200);
    assert_eq!(server.wait_close(&sid, WAIT).await, CloseReason::ParseError);
    server.wait_session_count(0, WAIT).await;
    server
        .get(&polling(&sid))
        .await
        .assert_error(400, 1, "Session ID unknown");
}

#[tokio::test]
async fn packets_before_a_bad_record_are_delivered_and_the_rest_is_not() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    server
        .post(&polling(&sid), "4first\x1e9not a packet type\x1e4never")
        .await;
    server.wait_close(&sid, WAIT).await;
    let messages = server.messages();
    assert_eq!(messages, [Message::Text("first".into())]);
}

#[tokio::test]
async fn post_on_a_websocket_session_is_bad_request() {
    let server = start_default().await;
    let (_ws, sid, _) = server.ws_session().await;
    server
        .get(&polling(&sid))
        .await
        .assert_error(400, 3, "Bad request");
    server
        .post(&polling(&sid), "4x")
        .await
        .assert_error(400, 3, "Bad request");
    // The session itself is untouched.
    assert!(server.engine.socket(&sid).is_some());
}
