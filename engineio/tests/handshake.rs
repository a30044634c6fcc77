//! The handshake: the open packet over polling and over WebSocket, and every official error answer
//! (codes 0–5), including the plain 400 a WebSocket upgrade request gets before any `101`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use engineio::{Config, ErrorCode, Refusal};
use serde_json::Value;
use support::*;
use tokio_tungstenite::tungstenite;

fn assert_sid(sid: &str) {
    assert_eq!(sid.len(), 20, "sid {sid:?}");
    assert!(
        sid.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "sid {sid:?} is not URL-safe"
    );
}

fn assert_open_keys(open: &Value) {
    let mut keys: Vec<&str> = open
        .as_object()
        .expect("open JSON is an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
}

#[tokio::test]
async fn polling_open_packet() {
    let mut config = Config::default();
    config.ping_interval = Duration::from_millis(1234);
    config.ping_timeout = Duration::from_millis(567);
    config.max_http_buffer_size = 4321;
    let server = start(config).await;
    let response = server.get(POLLING_HANDSHAKE).await;
    assert_eq!(response.status, 200);
    let body = response.text();
    assert!(body.starts_with('0'), "{body:?}");
    let open = parse_open(&body);
    assert_open_keys(&open);
    assert_sid(open["sid"].as_str().unwrap());
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(open["pingInterval"], 1234);
    assert_eq!(open["pingTimeout"], 567);
    assert_eq!(open["maxPayload"], 4321);
    assert_eq!(server.engine.session_count(), 1);
    assert!(server
        .engine
        .socket(open["sid"].as_str().unwrap())
        .is_some());
}

#[tokio::test]
async fn default_open_packet_values() {
    let server = start_default().await;
    let (_, open) = server.handshake().await;
    assert_eq!(open["pingInterval"], 25_000);
    assert_eq!(open["pingTimeout"], 20_000);
    assert_eq!(open["maxPayload"], 1_000_000);
}

#[tokio::test]
async fn session_ids_are_distinct() {
    let server = start_default().await;
    let (a, _) = server.handshake().await;
    let (b, _) = server.handshake().await;
    assert_ne!(a, b);
    assert_eq!(server.engine.session_count(), 2);
}

#[tokio::test]
async fn no_upgrades_advertised_when_upgrades_are_off() {
    let mut config = Config::default();
    config.allow_upgrades = false;
    let server = start(config).await;
    let (_, open) = server.handshake().await;
    assert_eq!(open["upgrades"], serde_json::json!([]));
}

#[tokio::test]
async fn websocket_open_packet_has_no_upgrades() {
    let server = start_default().await;
    let (_ws, sid, open) = server.ws_session().await;
    assert_open_keys(&open);
    assert_sid(&sid);
    assert_eq!(open["upgrades"], serde_json::json!([]));
    assert_eq!(open["maxPayload"], 1_000_000);
    assert!(server.engine.socket(&sid).is_some());
}

#[tokio::test]
async fn unknown_transport_is_code_0() {
    let server = start_default().await;
    server
        .get("EIO=4&transport=carrier-pigeon")
        .await
        .assert_error(400, 0, "Transport unknown");
    server
        .get("EIO=4")
        .await
        .assert_error(400, 0, "Transport unknown");
    assert_eq!(server.engine.session_count(), 0);
}

#[tokio::test]
async fn disabled_transport_is_code_0() {
    let mut config = Config::default();
    config.allow_polling = false;
    let server = start(config).await;
    server
        .get(POLLING_HANDSHAKE)
        .await
        .assert_error(400, 0, "Transport unknown");
}

#[tokio::test]
async fn unknown_sid_is_code_1() {
    let server = start_default().await;
    server
        .get(&polling("AAAAAAAAAAAAAAAAAAAA"))
        .await
        .assert_error(400, 1, "Session ID unknown");
    server
        .post(&polling("AAAAAAAAAAAAAAAAAAAA"), "4x")
        .await
        .assert_error(400, 1, "Session ID unknown");
}

#[tokio::test]
async fn handshake_with_another_method_is_code_2() {
    let server = start_default().await;
    server
        .post(POLLING_HANDSHAKE, "4hello")
        .await
        .assert_error(400, 2, "Bad handshake method");
    server
        .request("PUT", POLLING_HANDSHAKE, &[], b"4hello")
        .await
        .assert_error(400, 2, "Bad handshake method");
    assert_eq!(server.engine.session_count(), 0);
}

#[tokio::test]
async fn websocket_transport_without_upgrade_is_code_3() {
    let server = start_default().await;
    server
        .get(WS_HANDSHAKE)
        .await
        .assert_error(400, 3, "Bad request");
    assert_eq!(server.engine.session_count(), 0);
}

#[tokio::test]
async fn refused_by_allow_request_is_403_code_4() {
    let mut config = Config::default();
    config.allow_request = Some(Arc::new(|parts: &http::request::Parts, _| {
        if parts.headers.contains_key("x-let-me-in") {
            Ok(())
        } else {
            Err(Refusal::default())
        }
    }));
    let server = start(config).await;
    server
        .get(POLLING_HANDSHAKE)
        .await
        .assert_error(403, 4, "Forbidden");
    assert_eq!(server.engine.session_count(), 0);
    let allowed = server
        .request("GET", POLLING_HANDSHAKE, &[("x-let-me-in", "1")], b"")
        .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(server.engine.session_count(), 1);
}

#[tokio::test]
async fn refusal_message_is_the_error_message() {
    let mut config = Config::default();
    config.allow_request = Some(Arc::new(|_: &http::request::Parts, _| {
        Err(Refusal {
            message: Some("not today".to_owned()),
        })
    }));
    let server = start(config).await;
    server
        .get(POLLING_HANDSHAKE)
        .await
        .assert_error(403, 4, "not today");
}

#[tokio::test]
async fn missing_or_wrong_eio_is_code_5() {
    let server = start_default().await;
    for query in [
        "transport=polling",
        "EIO=3&transport=polling",
        "EIO=5&transport=polling",
        "EIO=abc&transport=polling",
    ] {
        server
            .get(query)
            .await
            .assert_error(400, 5, "Unsupported protocol version");
    }
    assert_eq!(server.engine.session_count(), 0);
}

#[tokio::test]
async fn other_paths_are_404() {
    let server = start_default().await;
    let response = support::http(
        server.addr,
        "GET",
        "/elsewhere/?EIO=4&transport=polling",
        &[],
        b"",
    )
    .await;
    assert_eq!(response.status, 404);
}

#[tokio::test]
async fn the_path_without_its_trailing_slash_is_served_only_when_add_trailing_slash_is_off() {
    // As the official `addTrailingSlash`: by default only `/engine.io/…` is ours.
    let targets = [
        ("/engine.io?EIO=4&transport=polling", false),
        ("/engine.iox/?EIO=4&transport=polling", false),
        ("/engine.io/?EIO=4&transport=polling", true),
        ("/engine.io/deeper?EIO=4&transport=polling", true),
    ];
    let server = start_default().await;
    for (target, served) in targets {
        let response = support::http(server.addr, "GET", target, &[], b"").await;
        assert_eq!(
            response.status == 200,
            served,
            "{target}: {}",
            response.status
        );
    }
    let mut config = Config::default();
    config.add_trailing_slash = false;
    let server = start(config).await;
    for (target, _) in targets {
        let response = support::http(server.addr, "GET", target, &[], b"").await;
        assert_eq!(response.status, 200, "{target} without addTrailingSlash");
    }
}

fn http_status(err: tungstenite::Error) -> u16 {
    match err {
        tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn websocket_upgrade_with_bad_eio_is_refused_before_101() {
    let server = start_default().await;
    for query in ["transport=websocket", "EIO=3&transport=websocket"] {
        let err = server.ws(query).await.expect_err("no 101");
        assert_eq!(http_status(err), 400);
    }
    assert_eq!(server.engine.session_count(), 0);
    assert!(server.record.connections.lock().unwrap().is_empty());
}

#[tokio::test]
async fn websocket_upgrade_with_bad_transport_is_refused_before_101() {
    let server = start_default().await;
    for query in ["EIO=4&transport=nope", "EIO=4"] {
        let err = server.ws(query).await.expect_err("no 101");
        assert_eq!(http_status(err), 400);
    }
    // An upgrade request naming an unknown session is refused as well.
    let err = server
        .ws("EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAA")
        .await
        .expect_err("no 101");
    assert_eq!(http_status(err), 400);
    assert_eq!(server.engine.session_count(), 0);
}

#[tokio::test]
async fn websocket_upgrade_refusal_body_is_the_message() {
    let server = start_default().await;
    let headers = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let response = server
        .request("GET", "EIO=3&transport=websocket", &headers, b"")
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.text(), "Unsupported protocol version");
    let response = server
        .request("GET", "EIO=4&transport=nope", &headers, b"")
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.text(), "Transport unknown");
}

#[tokio::test]
async fn the_session_cookie_is_set_on_handshakes_only_when_configured() {
    let plain = start_default().await;
    assert_eq!(
        plain.get(POLLING_HANDSHAKE).await.header("set-cookie"),
        None
    );

    let mut config = Config::default();
    config.cookie = Some(engineio::SessionCookie::default());
    let server = start(config).await;
    let response = server.get(POLLING_HANDSHAKE).await;
    let sid = parse_open(&response.text())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response.header("set-cookie"),
        Some(format!("io={sid}; Path=/; HttpOnly; SameSite=Lax").as_str())
    );
    // Later requests of the session set nothing.
    let poll = server.post(&polling(&sid), "4x").await;
    assert_eq!(poll.header("set-cookie"), None);
    let poll = server.get(&polling(&sid)).await;
    assert_eq!(poll.header("set-cookie"), None);

    // A WebSocket handshake sets it on the 101 answer.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let url = format!("ws://{}{}", server.addr, server.target(WS_HANDSHAKE));
    let (mut ws, answer) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let sid = parse_open(&recv_text(&mut ws).await)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        answer.headers()["set-cookie"],
        format!("io={sid}; Path=/; HttpOnly; SameSite=Lax").as_str()
    );
}

#[tokio::test]
async fn the_headers_hook_adds_to_polling_answers_and_101s_and_knows_handshakes() {
    let mut config = Config::default();
    config.headers = Some(Arc::new(|request, headers, handshake| {
        let value = format!("{} {handshake}", request.method);
        headers.insert("x-hook", http::HeaderValue::from_str(&value).unwrap());
    }));
    let server = start(config).await;
    let response = server.get(POLLING_HANDSHAKE).await;
    assert_eq!(response.header("x-hook"), Some("GET true"));
    let sid = parse_open(&response.text())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = server.post(&polling(&sid), "4x").await;
    assert_eq!(post.header("x-hook"), Some("POST false"));
    let poll = server.get(&polling(&sid)).await;
    assert_eq!(poll.header("x-hook"), Some("GET false"));
    // Error answers do not go through it.
    let refused = server.get("EIO=4&transport=polling&sid=unknown").await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.header("x-hook"), None);
    // The WebSocket 101 does.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let url = format!("ws://{}{}", server.addr, server.target(WS_HANDSHAKE));
    let (_ws, answer) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    assert_eq!(answer.headers()["x-hook"], "GET true");
}

/// Writes `request` on a new connection; everything the server sends until it closes.
async fn raw_exchange(server: &TestServer, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the server kept the connection open")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn badly_framed_requests_get_an_empty_400_and_the_connection_closed() {
    let server = start_default().await;
    let target = "/engine.io/?EIO=4&transport=polling";
    for request in [
        // RFC 9112 §3.2: no Host, or two, on HTTP/1.1.
        format!("GET {target} HTTP/1.1\r\n\r\n"),
        format!("GET {target} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ] {
        let answer = raw_exchange(&server, &request).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{request:?}: {answer}"
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("connection: close\r\n"),
            "{answer}"
        );
        assert!(
            answer.ends_with("\r\n\r\n"),
            "no body and nothing after it: {answer}"
        );
    }
    assert_eq!(server.engine.stats().handshakes, 0);
    // §6.3: both lengths (the request smuggling pattern): the body is read as chunked and the
    // connection closes after the answer, so what would be a second request is never read.
    let answer = raw_exchange(
        &server,
        &format!(
            "POST {target}&sid=x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
             Content-Length: 3\r\n\r\n0\r\n\r\nGET {target} HTTP/1.1\r\nHost: a\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(answer.contains("Session ID unknown"), "{answer}");
    assert_eq!(server.engine.stats().handshakes, 0);
    // HTTP/1.0 has no Host requirement.
    let answer = raw_exchange(&server, &format!("GET {target} HTTP/1.0\r\n\r\n")).await;
    assert!(answer.contains(" 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\"sid\""), "{answer}");
}

#[tokio::test]
async fn refused_requests_reach_the_connection_error_hook() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let mut config = Config::default();
    config.connection_error = Some(Arc::new(move |err: &engineio::ConnectionError<'_>| {
        record.lock().unwrap().push((
            err.code,
            match err.refusal {
                Some(refusal) => format!("{} ({refusal})", err.message),
                None => err.message.to_owned(),
            },
            err.request.method.to_string(),
            err.request.uri.query().unwrap_or_default().to_owned(),
            err.remote.ip().is_loopback(),
        ));
    }));
    config.allow_request = Some(Arc::new(|parts: &http::request::Parts, _| {
        if parts.uri.query().is_some_and(|q| q.contains("deny")) {
            Err(Refusal {
                message: Some("not today".to_owned()),
            })
        } else {
            Ok(())
        }
    }));
    let server = start(config).await;
    server.get("EIO=4&transport=carrier-pigeon").await;
    server.get("EIO=4&transport=polling&sid=nope").await;
    server.post(POLLING_HANDSHAKE, "x").await;
    server.get("EIO=4&transport=polling&deny=1").await;
    server.get("EIO=3&transport=polling").await;
    // Answered without error: not seen.
    let (sid, _) = server.handshake().await;
    server.get(&polling(&sid)).await;

    let query = |q: &str| q.to_owned();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (
                ErrorCode::UnknownTransport,
                "Transport unknown".to_owned(),
                "GET".to_owned(),
                query("EIO=4&transport=carrier-pigeon"),
                true
            ),
            (
                ErrorCode::UnknownSid,
                "Session ID unknown".to_owned(),
                "GET".to_owned(),
                query("EIO=4&transport=polling&sid=nope"),
                true
            ),
            (
                ErrorCode::BadHandshakeMethod,
                "Bad handshake method".to_owned(),
                "POST".to_owned(),
                query(POLLING_HANDSHAKE),
                true
            ),
            (
                ErrorCode::Forbidden,
                "Forbidden (not today)".to_owned(),
                "GET".to_owned(),
                query("EIO=4&transport=polling&deny=1"),
                true
            ),
            (
                ErrorCode::UnsupportedProtocolVersion,
                "Unsupported protocol version".to_owned(),
                "GET".to_owned(),
                query("EIO=3&transport=polling"),
                true
            ),
        ]
    );
}
