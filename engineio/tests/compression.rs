//! HTTP compression of long-polling answers, as the official server's default `httpCompression`:
//! an answer of 1024 bytes or more is gzip- or deflate-compressed when the client accepts it, a
//! shorter one or one to a client that does not is sent as it is, and `None` turns it off.

mod support;

use std::io::Read;

use engineio::{Config, HttpCompression};
use support::*;

/// Queues `message` for `sid`, then polls with `accept_encoding`.
async fn poll_message(
    server: &TestServer,
    sid: &str,
    message: &str,
    accept_encoding: Option<&str>,
) -> HttpResponse {
    server.socket(sid).send_text(message).unwrap();
    let headers: Vec<(&str, &str)> = accept_encoding
        .map(|value| ("Accept-Encoding", value))
        .into_iter()
        .collect();
    http(
        server.addr,
        "GET",
        &server.target(&polling(sid)),
        &headers,
        b"",
    )
    .await
}

fn gunzip(body: &[u8]) -> String {
    read_text(flate2::read::GzDecoder::new(body))
}

fn inflate(body: &[u8]) -> String {
    read_text(flate2::read::ZlibDecoder::new(body))
}

fn read_text(mut decoder: impl Read) -> String {
    let mut text = String::new();
    decoder
        .read_to_string(&mut text)
        .expect("a stream of the announced coding");
    text
}

#[tokio::test]
async fn an_answer_of_1024_bytes_or_more_is_gzipped_for_a_client_that_accepts_it() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let message = "x".repeat(1023); // "4" + 1023 bytes: exactly the threshold
    let response = poll_message(&server, &sid, &message, Some("gzip, deflate, br")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Encoding"), Some("gzip"));
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; charset=UTF-8")
    );
    assert!(response.body.len() < 100, "{} bytes", response.body.len());
    assert_eq!(gunzip(&response.body), format!("4{message}"));
}

#[tokio::test]
async fn deflate_when_the_client_prefers_it() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let message = "hello ".repeat(400);
    let response = poll_message(&server, &sid, &message, Some("deflate, gzip")).await;
    assert_eq!(response.header("Content-Encoding"), Some("deflate"));
    assert_eq!(inflate(&response.body), format!("4{message}"));
}

#[tokio::test]
async fn a_shorter_answer_or_a_client_without_gzip_gets_the_plain_payload() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let short = "x".repeat(1022); // 1023 bytes with the packet type
    let response = poll_message(&server, &sid, &short, Some("gzip")).await;
    assert_eq!(response.header("Content-Encoding"), None);
    assert_eq!(response.text(), format!("4{short}"));

    let long = "y".repeat(5000);
    for accept in [None, Some("br"), Some("gzip;q=0"), Some("identity")] {
        let response = poll_message(&server, &sid, &long, accept).await;
        assert_eq!(response.header("Content-Encoding"), None, "{accept:?}");
        assert_eq!(response.text(), format!("4{long}"), "{accept:?}");
    }
}

#[tokio::test]
async fn a_large_answer_is_compressed_whole() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    // Above the size that is compressed off the runtime's threads; varied so it does not shrink
    // to almost nothing.
    let message: String = (0..40_000).map(|i| format!("{i},")).collect();
    assert!(message.len() > 64 * 1024);
    let response = poll_message(&server, &sid, &message, Some("gzip")).await;
    assert_eq!(response.header("Content-Encoding"), Some("gzip"));
    assert_eq!(gunzip(&response.body), format!("4{message}"));
}

#[tokio::test]
async fn compression_can_be_turned_off_or_given_another_threshold() {
    let mut config = Config::default();
    config.http_compression = None;
    let server = start(config).await;
    let (sid, _) = server.handshake().await;
    let message = "z".repeat(4000);
    let response = poll_message(&server, &sid, &message, Some("gzip")).await;
    assert_eq!(response.header("Content-Encoding"), None);
    assert_eq!(response.text(), format!("4{message}"));

    let mut config = Config::default();
    config.http_compression = Some(HttpCompression::with_threshold(10));
    let server = start(config).await;
    let (sid, _) = server.handshake().await;
    let response = poll_message(&server, &sid, "a short one", Some("gzip")).await;
    assert_eq!(response.header("Content-Encoding"), Some("gzip"));
    assert_eq!(gunzip(&response.body), "4a short one");
}

#[tokio::test]
async fn an_answer_of_packets_sent_with_the_compress_flag_off_is_not_compressed() {
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    let socket = server.socket(&sid);
    let long = format!("4{}", "y".repeat(2000));
    let target = server.target(&polling(&sid));
    let gzip = [("Accept-Encoding", "gzip")];
    let poll = || http(server.addr, "GET", &target, &gzip, b"");

    socket
        .send_frames_with([engineio::Frame::Text(long.clone().into())], false)
        .unwrap();
    let response = poll().await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Encoding"), None);
    assert_eq!(response.text(), long);

    // One packet of the answer with the flag on is enough, as on the official server.
    socket
        .send_frames_with([engineio::Frame::Text(long.clone().into())], false)
        .unwrap();
    socket
        .send_frames_with([engineio::Frame::Text("4on".into())], true)
        .unwrap();
    let response = poll().await;
    assert_eq!(response.header("Content-Encoding"), Some("gzip"));
    assert_eq!(gunzip(&response.body), format!("{long}\u{1e}4on"));
}

#[tokio::test]
async fn the_transport_s_own_packets_are_never_compressed() {
    // As engine.io's polling transport, which sends a noop or a close without the compress flag:
    // even with a threshold of 0, only data packets are compressed.
    let mut config = Config::default();
    config.http_compression = Some(HttpCompression::with_threshold(0));
    let server = start(config).await;
    let (sid, _) = server.handshake().await;
    let response = poll_message(&server, &sid, "x", Some("gzip")).await;
    assert_eq!(response.header("Content-Encoding"), Some("gzip"));
    server.socket(&sid).close();
    let target = server.target(&polling(&sid));
    let response = http(
        server.addr,
        "GET",
        &target,
        &[("Accept-Encoding", "gzip")],
        b"",
    )
    .await;
    assert_eq!(response.header("Content-Encoding"), None);
    assert!(
        ["1", "6\u{1e}1"].contains(&response.text().as_str()),
        "{}",
        response.text()
    );
}
