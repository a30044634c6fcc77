//! Connecting to `/sessions`: the `sessions:ready` → `sessions:update` order, the shape of the
//! `sessions` list (keys, `connectedAt` format, metadata, order), two users kept apart, where the token
//! is taken from (auth, `Authorization: Bearer`, `token` query, in that order), the socket id never
//! being the Engine.IO id, and the Engine.IO heartbeat settings.

mod support;

use std::time::{Duration, SystemTime};

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use support::*;

/// `connectedAt` looks exactly like JavaScript's `Date.prototype.toJSON`: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn assert_js_date(s: &str) {
    let b = s.as_bytes();
    assert_eq!(b.len(), 24, "connectedAt {s:?} has 24 characters");
    for (i, c) in b.iter().enumerate() {
        let ok = match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        };
        assert!(ok, "connectedAt {s:?}: unexpected {:?} at {i}", *c as char);
    }
    let at = humantime::parse_rfc3339(s).expect("RFC 3339");
    let now = SystemTime::now();
    let skew = now.duration_since(at).unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_secs(120),
        "connectedAt {s} is about now"
    );
}

fn assert_entry_shape(entry: &Value) {
    assert_eq!(
        sorted_keys(entry),
        vec!["connectedAt", "metadata", "socketId"],
        "entry {entry}"
    );
    assert_eq!(
        sorted_keys(&entry["metadata"]),
        vec!["context", "ip", "userAgent"],
        "metadata {entry}"
    );
    assert!(entry["socketId"].as_str().is_some_and(|s| !s.is_empty()));
    assert_js_date(entry["connectedAt"].as_str().expect("connectedAt string"));
}

#[tokio::test]
async fn ready_comes_first_then_every_socket_gets_the_update() {
    let server = TestServer::start(&[]).await;
    let mut a = login(server.addr, &token("alice")).await;
    // ready { socketId, sessions } then update sessions, both listing just this socket.
    assert_eq!(sorted_keys(&a.ready), vec!["sessions", "socketId"]);
    assert_eq!(ids(&a.ready["sessions"]), vec![a.sid.clone()]);
    assert_eq!(a.update, a.ready["sessions"]);

    let mut b = login(server.addr, &token("alice")).await;
    assert_eq!(
        ids(&b.ready["sessions"]),
        vec![a.sid.clone(), b.sid.clone()]
    );
    assert_eq!(ids(&b.update), vec![a.sid.clone(), b.sid.clone()]);
    // The older socket gets the same update, and nothing else.
    let update = a.expect_update().await;
    assert_eq!(update, b.update);
    a.expect_silence().await;
    b.expect_silence().await;
    server.stop().await;
}

#[tokio::test]
async fn list_entries_have_exactly_the_contract_keys_and_metadata() {
    let server = TestServer::start(&[]).await;
    // auth.context (any JSON value) and a User-Agent header.
    let ctx = json!({ "device": "laptop", "n": 1 });
    let a = join_with(
        server.addr,
        Some(json!({ "token": token("alice"), "context": ctx })),
        Opts::default().header("User-Agent", "IntegrationAgent/1.0"),
    )
    .await;
    let entry = &a.ready["sessions"][0];
    assert_entry_shape(entry);
    assert_eq!(entry["socketId"], json!(a.sid));
    assert_eq!(entry["metadata"]["ip"], json!("127.0.0.1"));
    assert_eq!(
        entry["metadata"]["userAgent"],
        json!("IntegrationAgent/1.0")
    );
    assert_eq!(entry["metadata"]["context"], ctx);

    // The `context` query parameter, no User-Agent: userAgent is null.
    let b = join_with(
        server.addr,
        Some(json!({ "token": token("bob") })),
        Opts::default().query("context", "phone"),
    )
    .await;
    let entry = &b.ready["sessions"][0];
    assert_entry_shape(entry);
    assert_eq!(entry["metadata"]["userAgent"], Value::Null);
    assert_eq!(entry["metadata"]["context"], json!("phone"));

    // Both: auth.context wins over the query parameter.
    let d = join_with(
        server.addr,
        Some(json!({ "token": token("dave"), "context": "from-auth" })),
        Opts::default().query("context", "from-query"),
    )
    .await;
    assert_eq!(
        d.ready["sessions"][0]["metadata"]["context"],
        json!("from-auth")
    );

    // Neither: context is null.
    let c = login(server.addr, &token("carol")).await;
    let entry = &c.ready["sessions"][0];
    assert_entry_shape(entry);
    assert_eq!(entry["metadata"]["context"], Value::Null);
    assert_eq!(entry["metadata"]["userAgent"], Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn list_is_ordered_oldest_first() {
    let server = TestServer::start(&[]).await;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(login(server.addr, &token("alice")).await);
        // Distinct milliseconds make the order observable in connectedAt too.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expected: Vec<String> = sessions.iter().map(|s| s.sid.clone()).collect();
    let last = sessions.last_mut().expect("four sessions");
    let list = last.list().await;
    assert_eq!(ids(&list), expected);
    let stamps: Vec<SystemTime> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|e| humantime::parse_rfc3339(e["connectedAt"].as_str().expect("str")).expect("date"))
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "connectedAt ascending: {list}"
    );
    server.stop().await;
}

#[tokio::test]
async fn two_users_never_see_each_other() {
    let server = TestServer::start(&[]).await;
    let mut a1 = login(server.addr, &token("alice")).await;
    let mut b1 = login(server.addr, &token("bob")).await;
    // Bob's first list is his alone; Alice heard nothing of Bob.
    assert_eq!(ids(&b1.ready["sessions"]), vec![b1.sid.clone()]);
    a1.expect_silence().await;

    let mut a2 = login(server.addr, &token("alice")).await;
    assert_eq!(
        ids(&a2.ready["sessions"]),
        vec![a1.sid.clone(), a2.sid.clone()]
    );
    assert_eq!(
        ids(&a1.expect_update().await),
        vec![a1.sid.clone(), a2.sid.clone()]
    );
    b1.expect_silence().await;

    assert_eq!(ids(&b1.list().await), vec![b1.sid.clone()]);
    assert_eq!(ids(&a1.list().await), vec![a1.sid.clone(), a2.sid.clone()]);

    // Bob leaving tells Alice nothing.
    b1.client.leave();
    a1.expect_silence().await;
    a2.expect_silence().await;
    server.stop().await;
}

#[tokio::test]
async fn socket_id_is_not_the_engine_id() {
    let server = TestServer::start(&[]).await;
    let a = login(server.addr, &token("alice")).await;
    assert_ne!(a.sid, a.client.engine_sid);
    for entry in a.ready["sessions"].as_array().expect("array") {
        assert_ne!(entry["socketId"], json!(a.client.engine_sid));
    }

    // The same over long-polling, with the token in an Authorization header.
    let bearer = format!("Bearer {}", token("alice"));
    let polling = Polling::open(server.addr, "", &[("Authorization", bearer.as_str())]).await;
    polling.send(&[&format!("40{NS},")]).await;
    let packets = polling.poll_until(3).await;
    let Incoming::Connect(connect) = &packets[0] else {
        panic!("CONNECT first: {packets:?}");
    };
    let sid = connect["sid"].as_str().expect("sid").to_owned();
    let Incoming::Event { name, args, .. } = &packets[1] else {
        panic!("ready second: {packets:?}");
    };
    assert_eq!(name, "sessions:ready");
    assert_eq!(args[0]["socketId"], json!(sid));
    assert_ne!(sid, polling.sid);
    let listed = ids(&args[0]["sessions"]);
    assert_eq!(listed, vec![a.sid.clone(), sid.clone()]);
    assert!(!listed.contains(&polling.sid) && !listed.contains(&a.client.engine_sid));
    let Incoming::Event { name, .. } = &packets[2] else {
        panic!("update third: {packets:?}");
    };
    assert_eq!(name, "sessions:update");
    server.stop().await;
}

/// A first session of `user`: a later session of the same user lists it, another user's does not.
async fn witness(addr: std::net::SocketAddr, user: &str) -> Session {
    login(addr, &token(user)).await
}

#[tokio::test]
async fn auth_token_comes_before_header_and_query() {
    let server = TestServer::start(&[]).await;
    let mut alice = witness(server.addr, "alice").await;
    // Valid auth.token (alice), a bearer token of bob and a query token of carol: alice wins.
    let bearer = format!("Bearer {}", token("bob"));
    let s = join_with(
        server.addr,
        Some(json!({ "token": token("alice") })),
        Opts::default()
            .header("Authorization", &bearer)
            .query("token", &token("carol")),
    )
    .await;
    assert_eq!(
        ids(&s.ready["sessions"]),
        vec![alice.sid.clone(), s.sid.clone()]
    );
    alice.expect_update().await;

    // A bad auth.token is used even when the header and query carry good ones.
    refused(
        server.addr,
        Some(json!({ "token": "garbage" })),
        Opts::default()
            .header("Authorization", &format!("Bearer {}", token("alice")))
            .query("token", &token("alice")),
        "invalid_token",
    )
    .await;
    // A non-string auth.token is a malformed token, not a missing one.
    refused(
        server.addr,
        Some(json!({ "token": 12345 })),
        Opts::default().query("token", &token("alice")),
        "invalid_token",
    )
    .await;
    alice.expect_silence().await;
    server.stop().await;
}

#[tokio::test]
async fn bearer_header_comes_before_query() {
    let server = TestServer::start(&[]).await;
    let mut bob = witness(server.addr, "bob").await;
    // Empty auth.token is "not present": the bearer header (bob) wins over the query (carol).
    let s = join_with(
        server.addr,
        Some(json!({ "token": "" })),
        Opts::default()
            .header("Authorization", &format!("Bearer {}", token("bob")))
            .query("token", &token("carol")),
    )
    .await;
    assert_eq!(
        ids(&s.ready["sessions"]),
        vec![bob.sid.clone(), s.sid.clone()]
    );
    bob.expect_update().await;

    // No auth payload at all, header only.
    let s2 = join_with(
        server.addr,
        None,
        Opts::default().header("Authorization", &format!("Bearer {}", token("bob"))),
    )
    .await;
    assert_eq!(ids(&s2.ready["sessions"]).len(), 3);
    assert!(ids(&s2.ready["sessions"]).contains(&bob.sid));

    // A bad bearer token is used even when the query has a good one.
    refused(
        server.addr,
        Some(json!({})),
        Opts::default()
            .header("Authorization", "Bearer not.a.jwt")
            .query("token", &token("bob")),
        "invalid_token",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn query_token_is_the_last_source() {
    let server = TestServer::start(&[]).await;
    let carol = witness(server.addr, "carol").await;
    let s = join_with(
        server.addr,
        Some(json!({})),
        Opts::default().query("token", &token("carol")),
    )
    .await;
    assert_eq!(
        ids(&s.ready["sessions"]),
        vec![carol.sid.clone(), s.sid.clone()]
    );
    // An Authorization header that is not a bearer token is not a token source.
    let s2 = join_with(
        server.addr,
        Some(json!({ "token": null })),
        Opts::default()
            .header("Authorization", "Basic dXNlcjpwYXNz")
            .query("token", &token("carol")),
    )
    .await;
    assert_eq!(ids(&s2.ready["sessions"]).len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn every_hmac_algorithm_of_the_secret_is_accepted() {
    let server = TestServer::start(&[]).await;
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let t = sign_hs(&claims("dave"), SECRET.as_bytes(), alg);
        let s = login(server.addr, &t).await;
        s.client.leave();
    }
    server.stop().await;
}

#[tokio::test]
async fn heartbeat_settings_reach_the_open_packet() {
    let server =
        TestServer::start(&["--ping-interval-ms", "1200", "--ping-timeout-ms", "900"]).await;
    let a = login(server.addr, &token("alice")).await;
    assert_eq!(a.client.open["pingInterval"], json!(1200));
    assert_eq!(a.client.open["pingTimeout"], json!(900));
    server.stop().await;

    let server = TestServer::start(&[]).await;
    let b = login(server.addr, &token("alice")).await;
    assert_eq!(b.client.open["pingInterval"], json!(25000));
    assert_eq!(b.client.open["pingTimeout"], json!(20000));
    server.stop().await;
}
