//! HTTP beside Socket.IO: `GET /healthz`, the Prometheus families at `/metrics` and their counters
//! moving, the page at `/`, `--trust-proxy` taking the client IP from `X-Forwarded-For`, and
//! `--cors-origin`, also checked on WebSocket handshakes; JSONP sessions only with `*`.

mod support;

use serde_json::{json, Value};
use support::*;

#[tokio::test]
async fn healthz_is_ok_json() {
    let server = TestServer::start(&[]).await;
    let response = get(server.addr, "/healthz").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        response.headers
    );
    let body: Value = serde_json::from_slice(&response.body).expect("JSON body");
    assert_eq!(body, json!({ "status": "ok" }));
    server.stop().await;
}

#[tokio::test]
async fn metrics_has_every_family_and_counters_move() {
    let server = TestServer::start(&["--max-sessions-per-user", "1"]).await;
    let response = get(server.addr, "/metrics").await;
    assert_eq!(response.status, 200);
    assert!(response
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain")));
    let before = response.text();
    for family in [
        "sessions_connected_sockets",
        "sessions_connected_users",
        "sessions_handshakes_total",
        "sessions_auth_failures_total",
        "sessions_packets_total",
        "sessions_bytes_total",
    ] {
        assert!(
            before.contains(&format!("# TYPE {family} ")),
            "family {family} in:\n{before}"
        );
    }
    for code in [
        "missing_token",
        "invalid_token",
        "token_expired",
        "session_limit",
    ] {
        let series = format!("sessions_auth_failures_total{{code=\"{code}\"}}");
        assert_eq!(
            metric(&before, &series),
            Some(0.0),
            "{series} in:\n{before}"
        );
    }
    assert_eq!(metric(&before, "sessions_connected_sockets"), Some(0.0));
    assert_eq!(metric(&before, "sessions_connected_users"), Some(0.0));
    let handshakes0 = metric(&before, "sessions_handshakes_total").expect("handshakes");
    let series = |dir: &str, family: &str| format!("{family}{{direction=\"{dir}\"}}");
    let packets_in0 = metric(&before, &series("in", "sessions_packets_total")).expect("in");
    let packets_out0 = metric(&before, &series("out", "sessions_packets_total")).expect("out");
    let bytes_in0 = metric(&before, &series("in", "sessions_bytes_total")).expect("in");
    let bytes_out0 = metric(&before, &series("out", "sessions_bytes_total")).expect("out");

    // Two users, one of them twice would exceed the limit of 1.
    let mut a = login(server.addr, &token("alice")).await;
    let _b = login(server.addr, &token("bob")).await;
    refused(
        server.addr,
        Some(json!({ "token": token("alice") })),
        Opts::default(),
        "session_limit",
    )
    .await;
    refused(server.addr, None, Opts::default(), "missing_token").await;
    refused(
        server.addr,
        Some(json!({ "token": "junk" })),
        Opts::default(),
        "invalid_token",
    )
    .await;
    let expired = json!({ "sub": "carol", "exp": now() - 60 });
    refused(
        server.addr,
        Some(json!({ "token": sign_hs(&expired, SECRET.as_bytes(), jsonwebtoken::Algorithm::HS256) })),
        Opts::default(),
        "token_expired",
    )
    .await;
    a.list().await;

    let after = metrics(server.addr).await;
    assert_eq!(
        metric(&after, "sessions_connected_sockets"),
        Some(2.0),
        "{after}"
    );
    assert_eq!(
        metric(&after, "sessions_connected_users"),
        Some(2.0),
        "{after}"
    );
    for code in [
        "missing_token",
        "invalid_token",
        "token_expired",
        "session_limit",
    ] {
        let series = format!("sessions_auth_failures_total{{code=\"{code}\"}}");
        assert_eq!(metric(&after, &series), Some(1.0), "{series} in:\n{after}");
    }
    let handshakes = metric(&after, "sessions_handshakes_total").expect("handshakes");
    assert!(
        handshakes >= handshakes0 + 6.0,
        "6 connections opened: {after}"
    );
    assert!(metric(&after, &series("in", "sessions_packets_total")).expect("in") > packets_in0);
    assert!(metric(&after, &series("out", "sessions_packets_total")).expect("out") > packets_out0);
    assert!(metric(&after, &series("in", "sessions_bytes_total")).expect("in") > bytes_in0);
    assert!(metric(&after, &series("out", "sessions_bytes_total")).expect("out") > bytes_out0);

    // A revoke is not an auth failure; the gauges go down when sessions leave.
    a.client.leave();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = metrics(server.addr).await;
        if metric(&now, "sessions_connected_sockets") == Some(1.0) {
            assert_eq!(metric(&now, "sessions_connected_users"), Some(1.0));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gauge never went down: {now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn root_serves_the_sessions_page() {
    let server = TestServer::start(&[]).await;
    let response = get(server.addr, "/").await;
    assert_eq!(response.status, 200);
    assert!(response
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html")));
    let page = response.text();
    let lower = page.to_ascii_lowercase();
    assert!(lower.contains("<html"), "an HTML document");
    assert!(
        lower.contains("active sessions"),
        "shows your active sessions"
    );
    // Live: it talks to /sessions and listens for the list; it can sign another session out.
    assert!(page.contains("/socket.io/") && page.contains("/sessions"));
    assert!(page.contains("sessions:update") && page.contains("sessions:ready"));
    assert!(page.contains("sessions:revoke"));
    // The token comes from the URL fragment or a form.
    assert!(page.contains("location.hash"));
    assert!(lower.contains("<form"));
    // Unknown paths are not the page.
    assert_eq!(get(server.addr, "/nope").await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn trust_proxy_takes_the_first_forwarded_address() {
    let server = TestServer::start(&["--trust-proxy"]).await;
    let s = join_with(
        server.addr,
        Some(json!({ "token": token("alice") })),
        Opts::default().header("X-Forwarded-For", "203.0.113.7, 10.0.0.1"),
    )
    .await;
    assert_eq!(
        s.ready["sessions"][0]["metadata"]["ip"],
        json!("203.0.113.7")
    );
    // Without the header: the peer address.
    let t = login(server.addr, &token("bob")).await;
    assert_eq!(t.ready["sessions"][0]["metadata"]["ip"], json!("127.0.0.1"));
    // Over long-polling too.
    let polling = Polling::open(
        server.addr,
        &format!("&token={}", token("carol")),
        &[("X-Forwarded-For", "198.51.100.23")],
    )
    .await;
    polling.send(&[&format!("40{NS},")]).await;
    let packets = polling.poll_until(2).await;
    match &packets[1] {
        Incoming::Event { name, args, .. } if name == "sessions:ready" => {
            assert_eq!(
                args[0]["sessions"][0]["metadata"]["ip"],
                json!("198.51.100.23")
            );
        }
        other => panic!("expected ready, got {other:?} in {packets:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn without_trust_proxy_the_forwarded_header_is_ignored() {
    let server = TestServer::start(&[]).await;
    let s = join_with(
        server.addr,
        Some(json!({ "token": token("alice") })),
        Opts::default().header("X-Forwarded-For", "203.0.113.7"),
    )
    .await;
    assert_eq!(s.ready["sessions"][0]["metadata"]["ip"], json!("127.0.0.1"));
    server.stop().await;
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let path = "/socket.io/?EIO=4&transport=polling";
    // No --cors-origin: no cross-origin grant for anyone.
    let server = TestServer::start(&[]).await;
    let response = http(
        server.addr,
        "GET",
        path,
        &[("Origin", "https://evil.example")],
        b"",
    )
    .await;
    assert_eq!(response.header("access-control-allow-origin"), None);
    server.stop().await;

    let server = TestServer::start(&[
        "--cors-origin",
        "https://app.example",
        "--cors-origin",
        "https://other.example",
    ])
    .await;
    for origin in ["https://app.example", "https://other.example"] {
        let response = http(server.addr, "GET", path, &[("Origin", origin)], b"").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("access-control-allow-origin"), Some(origin));
        // As the official `cors: { origin: [...] }`: the token is no cookie, no credentials.
        assert_eq!(response.header("access-control-allow-credentials"), None);
    }
    let response = http(
        server.addr,
        "GET",
        path,
        &[("Origin", "https://evil.example")],
        b"",
    )
    .await;
    assert_ne!(
        response.header("access-control-allow-origin"),
        Some("https://evil.example")
    );
    assert_ne!(response.header("access-control-allow-origin"), Some("*"));
    server.stop().await;
}

/// Opens a WebSocket handshake with this `Origin`; the HTTP status of the answer.
async fn websocket_status(addr: std::net::SocketAddr, origin: Option<&str>) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("origin"));
    }
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("TCP connect");
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(err) => panic!("WebSocket handshake: {err}"),
    }
}

#[tokio::test]
async fn websocket_handshakes_from_foreign_origins_are_refused() {
    // Browsers do not apply CORS to WebSocket, so the origin is checked at the handshake.
    let server = TestServer::start(&["--cors-origin", "https://app.example"]).await;
    let own = format!("http://{}", server.addr);
    assert_eq!(websocket_status(server.addr, None).await, 101);
    assert_eq!(websocket_status(server.addr, Some(&own)).await, 101);
    assert_eq!(
        websocket_status(server.addr, Some("https://app.example")).await,
        101
    );
    // A refused upgrade is a 400, as the official server answers every refused upgrade.
    assert_eq!(
        websocket_status(server.addr, Some("https://evil.example")).await,
        400
    );
    assert_eq!(websocket_status(server.addr, Some("null")).await, 400);
    server.stop().await;
}

#[tokio::test]
async fn a_star_origin_lets_every_origin_in() {
    let server = TestServer::start(&["--cors-origin", "*"]).await;
    let origin = "https://anywhere.example";
    let response = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[("Origin", origin)],
        b"",
    )
    .await;
    assert_eq!(response.status, 200);
    // The literal `*` of the official `origin: "*"`: never an echo of any origin with credentials.
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(response.header("access-control-allow-credentials"), None);
    assert_eq!(websocket_status(server.addr, Some(origin)).await, 101);
    server.stop().await;
}

#[tokio::test]
async fn jsonp_handshakes_need_a_star_origin() {
    // A JSONP answer is a script any page may load, past CORS: refused unless every origin is.
    let jsonp = "/socket.io/?EIO=4&transport=polling&j=0";
    for flags in [&[][..], &["--cors-origin", "https://app.example"][..]] {
        let server = TestServer::start(flags).await;
        let response = http(server.addr, "GET", jsonp, &[], b"").await;
        assert_eq!(response.status, 403, "{flags:?}");
        assert_eq!(
            serde_json::from_str::<Value>(&response.text()).expect("JSON"),
            json!({ "code": 4, "message": "Forbidden" })
        );
        // Plain long-polling is not concerned.
        let response = http(
            server.addr,
            "GET",
            "/socket.io/?EIO=4&transport=polling",
            &[],
            b"",
        )
        .await;
        assert_eq!(response.status, 200);
        server.stop().await;
    }
    let server = TestServer::start(&["--cors-origin", "*"]).await;
    let response = http(server.addr, "GET", jsonp, &[], b"").await;
    assert_eq!(response.status, 200);
    assert!(
        response.text().starts_with("___eio[0](\"0{"),
        "{}",
        response.text()
    );
    server.stop().await;
}
