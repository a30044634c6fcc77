//! CORS: `Cors::default()` answers `Access-Control-Allow-Origin: *` (errors included), an `OPTIONS`
//! preflight gets 204 with the allowed methods and headers, a list of origins echoes a listed origin
//! with credentials and leaves out others, and without a CORS config no CORS header is sent.

mod support;

use engineio::{AllowedOrigins, Config, Cors};
use support::*;

fn with_cors(cors: Cors) -> Config {
    let mut config = Config::default();
    config.cors = Some(cors);
    config
}

const ORIGIN: (&str, &str) = ("Origin", "https://app.example");

#[tokio::test]
async fn default_cors_allows_any_origin() {
    let server = start(with_cors(Cors::default())).await;
    let response = server
        .request("GET", POLLING_HANDSHAKE, &[ORIGIN], b"")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(response.header("access-control-allow-credentials"), None);
    let sid = parse_open(&response.text())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = server
        .request(
            "POST",
            &polling(&sid),
            &[ORIGIN, ("Content-Type", "text/plain")],
            b"4hi",
        )
        .await;
    assert_eq!(response.text(), "ok");
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    // Error answers carry the headers too, so that a browser can read them.
    let response = server
        .request("GET", "EIO=4&transport=nope", &[ORIGIN], b"")
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn preflight_is_204_with_methods_and_headers() {
    let server = start(with_cors(Cors::default())).await;
    let response = server
        .request(
            "OPTIONS",
            POLLING_HANDSHAKE,
            &[
                ORIGIN,
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type,x-custom"),
            ],
            b"",
        )
        .await;
    assert_eq!(response.status, 204);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        response.header("access-control-allow-methods"),
        Some("GET,HEAD,PUT,PATCH,POST,DELETE")
    );
    assert_eq!(
        response.header("access-control-allow-headers"),
        Some("content-type,x-custom")
    );
    assert!(response.body.is_empty());
    // A preflight opens no session.
    assert_eq!(server.engine.session_count(), 0);
}

#[tokio::test]
async fn configured_allowed_headers_and_max_age() {
    let server = start(with_cors(Cors {
        methods: "GET,POST".to_owned(),
        allowed_headers: Some("x-token".to_owned()),
        max_age: Some(600),
        ..Cors::default()
    }))
    .await;
    let response = server
        .request(
            "OPTIONS",
            POLLING_HANDSHAKE,
            &[ORIGIN, ("Access-Control-Request-Headers", "x-other")],
            b"",
        )
        .await;
    assert_eq!(response.status, 204);
    assert_eq!(
        response.header("access-control-allow-methods"),
        Some("GET,POST")
    );
    assert_eq!(
        response.header("access-control-allow-headers"),
        Some("x-token")
    );
    assert_eq!(response.header("access-control-max-age"), Some("600"));
}

fn listed() -> Config {
    with_cors(Cors {
        origins: AllowedOrigins::List(vec![
            "https://app.example".to_owned(),
            "https://other.example".to_owned(),
        ]),
        credentials: true,
        ..Cors::default()
    })
}

/// The answer lets `https://app.example` read it, with credentials.
fn assert_allows_app_with_credentials(response: &HttpResponse) {
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true")
    );
}

#[tokio::test]
async fn listed_origin_is_echoed_with_credentials() {
    let server = start(listed()).await;
    let response = server
        .request("GET", POLLING_HANDSHAKE, &[ORIGIN], b"")
        .await;
    assert_eq!(response.status, 200);
    assert_allows_app_with_credentials(&response);
    assert!(response
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("vary") && v.contains("Origin")));
    let response = server
        .request(
            "OPTIONS",
            POLLING_HANDSHAKE,
            &[("Origin", "https://other.example")],
            b"",
        )
        .await;
    assert_eq!(response.status, 204);
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://other.example")
    );
}

#[tokio::test]
async fn unlisted_origin_gets_no_allow_origin() {
    let server = start(listed()).await;
    for origin in ["https://evil.example", "https://app.example.evil", "null"] {
        let response = server
            .request("GET", POLLING_HANDSHAKE, &[("Origin", origin)], b"")
            .await;
        assert_eq!(
            response.header("access-control-allow-origin"),
            None,
            "{origin}"
        );
        let response = server
            .request("OPTIONS", POLLING_HANDSHAKE, &[("Origin", origin)], b"")
            .await;
        assert_eq!(
            response.header("access-control-allow-origin"),
            None,
            "{origin}"
        );
    }
}

#[tokio::test]
async fn mirror_echoes_any_origin() {
    let server = start(with_cors(Cors {
        origins: AllowedOrigins::Mirror,
        credentials: true,
        ..Cors::default()
    }))
    .await;
    let response = server
        .request(
            "GET",
            POLLING_HANDSHAKE,
            &[("Origin", "https://x.example")],
            b"",
        )
        .await;
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://x.example")
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true")
    );
}

#[tokio::test]
async fn without_cors_config_no_cors_headers() {
    let server = start_default().await;
    let response = server
        .request("GET", POLLING_HANDSHAKE, &[ORIGIN], b"")
        .await;
    assert_eq!(response.status, 200);
    assert!(
        !response.has_header_prefix("access-control-"),
        "{:?}",
        response.headers
    );
    let sid = parse_open(&response.text())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = server
        .request("POST", &polling(&sid), &[ORIGIN], b"4x")
        .await;
    assert!(!response.has_header_prefix("access-control-"));
    let response = server
        .request(
            "OPTIONS",
            POLLING_HANDSHAKE,
            &[ORIGIN, ("Access-Control-Request-Method", "POST")],
            b"",
        )
        .await;
    assert!(
        !response.has_header_prefix("access-control-"),
        "{:?}",
        response.headers
    );
}

#[tokio::test]
async fn a_websocket_101_carries_the_headers_and_a_refused_upgrade_none() {
    // As the official server, whose `cors` middleware runs for upgrades too (its headers go out on
    // the 101) while a refused upgrade gets the bare `abortUpgrade` answer.
    let server = start(listed()).await;
    let upgrade = [
        ORIGIN,
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let response = server
        .request("GET", "EIO=4&transport=websocket", &upgrade, b"")
        .await;
    assert_eq!(response.status, 101);
    assert_allows_app_with_credentials(&response);
    for query in [
        "EIO=4&transport=websocket&sid=unknown",
        "EIO=3&transport=websocket",
    ] {
        let response = server.request("GET", query, &upgrade, b"").await;
        assert_eq!(response.status, 400, "{query}");
        assert!(!response.has_header_prefix("access-control-"), "{query}");
    }
    // The same refusal without Upgrade is a plain request: it keeps its headers.
    let response = server
        .request(
            "GET",
            "EIO=4&transport=websocket&sid=unknown",
            &[ORIGIN],
            b"",
        )
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://app.example")
    );
}
