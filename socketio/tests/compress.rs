//! The official per-packet `compress` flag (`socket.compress(false)`, `io.compress(false)`): a
//! long-polling answer whose packets all had it off is not gzipped, whatever its size.

mod support;

use std::io::Read;

use support::*;

/// Polls accepting gzip: the Content-Encoding and the payload, decompressed.
async fn poll(server: &TestServer, query: &str) -> (Option<String>, String) {
    let response = http_with(
        server.addr,
        "GET",
        &server.target(query),
        &[("Accept-Encoding", "gzip")],
        b"",
    )
    .await;
    let coding = response.header("content-encoding").map(str::to_owned);
    let text = match coding.as_deref() {
        Some("gzip") => {
            let mut text = String::new();
            flate2::read::GzDecoder::new(&response.body[..])
                .read_to_string(&mut text)
                .unwrap();
            text
        }
        _ => response.text(),
    };
    (coding, text)
}

#[tokio::test]
async fn packets_sent_with_compress_false_leave_uncompressed() {
    let server = start(|_| {}).await;
    let (engine_sid, id) = server.polling_connected().await;
    let query = polling_query(&engine_sid);
    let socket = server.socket(&id);
    let long = "z".repeat(3000);
    let expected = format!(r#"42["big","{long}"]"#);

    socket.compress(false).emit("big", &long).unwrap();
    assert_eq!(poll(&server, &query).await, (None, expected.clone()));

    server.io.compress(false).emit("big", &long).unwrap();
    assert_eq!(poll(&server, &query).await, (None, expected.clone()));

    let (other, _) = server.polling_connected().await;
    let other_query = polling_query(&other);
    socket
        .broadcast()
        .compress(false)
        .emit("big", &long)
        .unwrap();
    server
        .io
        .to(id.as_str())
        .compress(false)
        .emit("big", &long)
        .unwrap();
    assert_eq!(poll(&server, &query).await, (None, expected.clone()));
    assert_eq!(poll(&server, &other_query).await, (None, expected.clone()));

    // The flag is on by default: the same packet is gzipped.
    socket.emit("big", &long).unwrap();
    assert_eq!(
        poll(&server, &query).await,
        (Some("gzip".to_owned()), expected.clone())
    );
    server.io.emit("big", &long).unwrap();
    assert_eq!(
        poll(&server, &query).await,
        (Some("gzip".to_owned()), expected)
    );
}
