//! Which browser pages may open a WebSocket (or a JSONP session) to the server.
//!
//! Browsers enforce CORS on long-polling (the page cannot read an answer without
//! `Access-Control-Allow-Origin`), but not on WebSocket: any page can open one to any server. So a
//! WebSocket handshake that carries an `Origin` must come from the server's own origin or one of the
//! configured `--cors-origin`s; requests without `Origin` (non-browser clients) are not concerned.
//! Only handshakes are checked: upgrading a polling session needs its id, which a foreign page
//! cannot read (CORS keeps the handshake answer from it).
//!
//! JSONP long-polling (a `j` parameter) escapes CORS as well: its answers are scripts, which any
//! page may load, and a `<script>` request names no origin. So JSONP handshakes are refused unless
//! every origin is allowed (`*`).
//!
//! Behind a reverse proxy that rewrites `Host` (nginx does by default) and does not send
//! `X-Forwarded-Host`, list the public origin with `--cors-origin` or forward the host.

use http::{header, request::Parts};

/// Whether `request` may open a session, given the configured origins (`*` lets every one in).
///
/// ```
/// use sessions_app::origin::websocket_origin_allowed;
/// let request = http::Request::get("/socket.io/?EIO=4&transport=websocket")
///     .header("host", "app.example")
///     .header("origin", "https://app.example")
///     .body(())
///     .unwrap();
/// assert!(websocket_origin_allowed(&request.into_parts().0, &[], false));
/// ```
pub fn websocket_origin_allowed(request: &Parts, allowed: &[String], trust_proxy: bool) -> bool {
    if !is_websocket(request) {
        return true;
    }
    let Some(origin) = request.headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed
        .iter()
        .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    // Behind a proxy that rewrites `Host`, the host the browser asked for is in X-Forwarded-Host.
    let forwarded_host = trust_proxy
        .then(|| request.headers.get("x-forwarded-host"))
        .flatten()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .map(str::trim)
        .filter(|host| !host.is_empty());
    let host = forwarded_host.or_else(|| {
        request
            .headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
    });
    let (authority, default_port) = match origin.split_once("://") {
        Some((scheme, authority)) if scheme.eq_ignore_ascii_case("https") => (authority, ":443"),
        Some((scheme, authority)) if scheme.eq_ignore_ascii_case("http") => (authority, ":80"),
        _ => return false,
    };
    // Browsers leave the default port out of `Origin`; a proxy may write it in `Host`.
    matches!(host, Some(host) if authority.eq_ignore_ascii_case(
        host.strip_suffix(default_port).unwrap_or(host)
    ))
}

/// Whether `request` may open a session as far as JSONP is concerned: a handshake that asks for
/// JSONP (a `j` query parameter) only when every origin is allowed (`*`).
///
/// ```
/// use sessions_app::origin::jsonp_allowed;
/// let jsonp = http::Request::get("/socket.io/?EIO=4&transport=polling&j=0").body(()).unwrap();
/// assert!(!jsonp_allowed(&jsonp.into_parts().0, &[]));
/// let plain = http::Request::get("/socket.io/?EIO=4&transport=polling").body(()).unwrap();
/// assert!(jsonp_allowed(&plain.into_parts().0, &[]));
/// ```
pub fn jsonp_allowed(request: &Parts, allowed: &[String]) -> bool {
    let asks_jsonp = form_urlencoded::parse(request.uri.query().unwrap_or("").as_bytes())
        .any(|(key, _)| key == "j");
    !asks_jsonp || allowed.iter().any(|origin| origin == "*")
}

fn is_websocket(request: &Parts) -> bool {
    request
        .headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::get("/socket.io/?EIO=4&transport=websocket");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    const WS: (&str, &str) = ("upgrade", "websocket");

    #[test]
    fn same_origin_and_listed_origins_pass() {
        let none: &[String] = &[];
        let same = request(&[
            WS,
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3000"),
        ]);
        assert!(websocket_origin_allowed(&same, none, false));
        let listed = request(&[
            WS,
            ("host", "127.0.0.1:3000"),
            ("origin", "https://app.test"),
        ]);
        assert!(!websocket_origin_allowed(&listed, none, false));
        assert!(websocket_origin_allowed(
            &listed,
            &["https://app.test".to_owned()],
            false
        ));
    }

    #[test]
    fn other_origins_are_refused_on_websocket_only() {
        let none: &[String] = &[];
        let evil = request(&[
            WS,
            ("host", "127.0.0.1:3000"),
            ("origin", "http://evil.example"),
        ]);
        assert!(!websocket_origin_allowed(&evil, none, false));
        for origin in ["null", "http://127.0.0.1:3001", "ftp://127.0.0.1:3000"] {
            let r = request(&[WS, ("host", "127.0.0.1:3000"), ("origin", origin)]);
            assert!(!websocket_origin_allowed(&r, none, false), "{origin}");
        }
        // Polling is left to CORS, and clients that send no Origin are not browsers.
        let polling = request(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://evil.example"),
        ]);
        assert!(websocket_origin_allowed(&polling, none, false));
        let node = request(&[WS, ("host", "127.0.0.1:3000")]);
        assert!(websocket_origin_allowed(&node, none, false));
    }

    #[test]
    fn hosts_compare_as_browsers_write_origins() {
        let none: &[String] = &[];
        for (host, origin) in [
            ("[::1]:3000", "http://[::1]:3000"),
            ("App.Example", "https://app.example"),
            ("app.example:443", "https://app.example"),
            ("app.example:80", "http://app.example"),
        ] {
            let r = request(&[WS, ("host", host), ("origin", origin)]);
            assert!(websocket_origin_allowed(&r, none, false), "{host} {origin}");
        }
        let wrong_port = request(&[
            WS,
            ("host", "app.example:80"),
            ("origin", "https://app.example"),
        ]);
        assert!(!websocket_origin_allowed(&wrong_port, none, false));
        let listed = request(&[WS, ("host", "127.0.0.1"), ("origin", "https://app.example")]);
        assert!(websocket_origin_allowed(
            &listed,
            &["https://App.Example".to_owned()],
            false
        ));
        assert!(websocket_origin_allowed(&listed, &["*".to_owned()], false));
    }

    #[test]
    fn jsonp_needs_a_star_origin() {
        let get = |target: &str| http::Request::get(target).body(()).unwrap().into_parts().0;
        let listed = ["https://app.example".to_owned()];
        let star = ["*".to_owned()];
        for target in [
            "/socket.io/?EIO=4&transport=polling&j=0",
            "/socket.io/?j&EIO=4",
            "/?%6A=1",
        ] {
            assert!(!jsonp_allowed(&get(target), &[]), "{target}");
            assert!(!jsonp_allowed(&get(target), &listed), "{target}");
            assert!(jsonp_allowed(&get(target), &star), "{target}");
        }
        for target in [
            "/socket.io/?EIO=4&transport=polling",
            "/socket.io/?jj=1",
            "/",
        ] {
            assert!(jsonp_allowed(&get(target), &[]), "{target}");
        }
    }

    #[test]
    fn forwarded_host_counts_only_behind_a_trusted_proxy() {
        let none: &[String] = &[];
        let proxied = request(&[
            WS,
            ("host", "127.0.0.1:3000"),
            ("x-forwarded-host", "app.example, 10.0.0.1"),
            ("origin", "https://app.example"),
        ]);
        assert!(!websocket_origin_allowed(&proxied, none, false));
        assert!(websocket_origin_allowed(&proxied, none, true));
        // An empty forwarded host falls back to `Host`.
        let empty = request(&[
            WS,
            ("host", "app.example"),
            ("x-forwarded-host", " , x"),
            ("origin", "https://app.example"),
        ]);
        assert!(websocket_origin_allowed(&empty, none, true));
    }
}
