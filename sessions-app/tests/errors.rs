//! Refused connections: every `sessions:error` code (`missing_token`, `invalid_token` for each kind of
//! bad token including the JWT attacks, `token_expired`, `session_limit`), each followed by a
//! namespace DISCONNECT (`41/sessions,`), never by a bare transport close, and never appearing in
//! anyone's `sessions`. Also a token that expires while connected.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use support::*;

/// A live session of `alice` that watches the refusals: a refused alice socket must never show up in
/// its list nor cause an update.
struct Watch {
    addr: SocketAddr,
    witness: Session,
}

impl Watch {
    async fn new(addr: SocketAddr, token: &str) -> Watch {
        Watch {
            addr,
            witness: login(addr, token).await,
        }
    }

    /// Joins with `auth` and `opts`, expects `code` then `41/sessions,`, then checks the witness.
    async fn refused(&mut self, auth: Option<Value>, opts: Opts, code: &str) {
        let sid = refused(self.addr, auth, opts, code).await;
        let list = self.witness.list().await;
        assert_eq!(ids(&list), vec![self.witness.sid.clone()], "after {code}");
        assert!(!ids(&list).contains(&sid));
        assert!(
            self.witness.client.queued().is_empty(),
            "a refused socket caused traffic to the user's live session: {:?}",
            self.witness.client.queued()
        );
    }

    async fn refused_token(&mut self, token: &str, code: &str) {
        self.refused(Some(json!({ "token": token })), Opts::default(), code)
            .await
    }
}

#[tokio::test]
async fn missing_token() {
    let server = TestServer::start(&[]).await;
    let mut watch = Watch::new(server.addr, &token("alice")).await;
    watch.refused(None, Opts::default(), "missing_token").await;
    watch
        .refused(Some(json!({})), Opts::default(), "missing_token")
        .await;
    watch
        .refused(
            Some(json!({ "token": "" })),
            Opts::default(),
            "missing_token",
        )
        .await;
    watch
        .refused(
            Some(json!({ "token": null })),
            Opts::default(),
            "missing_token",
        )
        .await;
    // Empty header and empty query are not tokens either.
    watch
        .refused(
            Some(json!({ "token": "" })),
            Opts::default()
                .header("Authorization", "Bearer ")
                .query("token", ""),
            "missing_token",
        )
        .await;
    server.stop().await;
}

#[tokio::test]
async fn malformed_and_badly_signed_tokens_are_invalid() {
    let server = TestServer::start(&[]).await;
    let mut watch = Watch::new(server.addr, &token("alice")).await;
    watch.refused_token("not-a-jwt", "invalid_token").await;
    watch.refused_token("a.b.c", "invalid_token").await;
    let other_secret = sign_hs(&claims("alice"), b"some-other-secret", Algorithm::HS256);
    watch.refused_token(&other_secret, "invalid_token").await;
    // A valid token with its signature cut off.
    let good = token("alice");
    let unsigned = &good[..good.rfind('.').expect("dots") + 1];
    watch.refused_token(unsigned, "invalid_token").await;
    // A valid signature over a tampered payload (sub changed).
    let forged = {
        let parts: Vec<&str> = good.split('.').collect();
        let other = token("mallory");
        let payload = other.split('.').nth(1).expect("payload");
        format!("{}.{}.{}", parts[0], payload, parts[2])
    };
    watch.refused_token(&forged, "invalid_token").await;
    server.stop().await;
}

#[tokio::test]
async fn not_yet_valid_token_is_invalid_not_expired() {
    let server = TestServer::start(&[]).await;
    let mut watch = Watch::new(server.addr, &token("alice")).await;
    let future = json!({ "sub": "alice", "nbf": now() + 600, "exp": now() + 3600 });
    // A time claim that is not a number is not a time: the token is invalid, not valid forever.
    let string_nbf = json!({ "sub": "alice", "nbf": (now() + 600).to_string() });
    let string_exp = json!({ "sub": "alice", "exp": (now() + 600).to_string() });
    for claims in [future, string_nbf, string_exp] {
        watch
            .refused_token(
                &sign_hs(&claims, SECRET.as_bytes(), Algorithm::HS256),
                "invalid_token",
            )
            .await;
    }
    server.stop().await;
}

#[tokio::test]
async fn expired_token_is_token_expired() {
    let server = TestServer::start(&[]).await;
    let mut watch = Watch::new(server.addr, &token("alice")).await;
    let expired = json!({ "sub": "alice", "iat": now() - 120, "exp": now() - 60 });
    watch
        .refused_token(
            &sign_hs(&expired, SECRET.as_bytes(), Algorithm::HS256),
            "token_expired",
        )
        .await;
    // An exp that is the current second has passed too (RFC 7519 4.1.4: the current time must be
    // before it), however early in that second the handshake comes; so has a negative one.
    for exp in [json!(now()), json!(-5)] {
        let claims = json!({ "sub": "alice", "exp": exp });
        watch
            .refused_token(
                &sign_hs(&claims, SECRET.as_bytes(), Algorithm::HS256),
                "token_expired",
            )
            .await;
    }
    // Only an exp in the past is token_expired: expired AND badly signed is invalid_token.
    let expired_bad = sign_hs(&expired, b"wrong-secret", Algorithm::HS256);
    watch.refused_token(&expired_bad, "invalid_token").await;
    server.stop().await;
}

#[tokio::test]
async fn issuer_and_audience_must_match_and_be_present_when_configured() {
    let server = TestServer::start(&["--jwt-issuer", "issuer-a", "--jwt-audience", "aud-a"]).await;
    let sign = |c: Value| sign_hs(&c, SECRET.as_bytes(), Algorithm::HS256);
    let exp = now() + 3600;
    let good = sign(json!({ "sub": "alice", "iss": "issuer-a", "aud": "aud-a", "exp": exp }));
    let mut watch = Watch::new(server.addr, &good).await;
    let cases = [
        json!({ "sub": "alice", "iss": "issuer-b", "aud": "aud-a", "exp": exp }),
        json!({ "sub": "alice", "iss": "issuer-a", "aud": "aud-b", "exp": exp }),
        json!({ "sub": "alice", "aud": "aud-a", "exp": exp }),
        json!({ "sub": "alice", "iss": "issuer-a", "exp": exp }),
        json!({ "sub": "alice", "exp": exp }),
        // `iss` is one string (RFC 7519 4.1.1), not a list to pick from.
        json!({ "sub": "alice", "iss": ["issuer-a"], "aud": "aud-a", "exp": exp }),
    ];
    for claims in cases {
        watch.refused_token(&sign(claims), "invalid_token").await;
    }
    // An audience array containing the configured one is fine.
    let array_aud =
        sign(json!({ "sub": "alice", "iss": "issuer-a", "aud": ["x", "aud-a"], "exp": exp }));
    let s = login(server.addr, &array_aud).await;
    assert_eq!(ids(&s.ready["sessions"]).len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let server = TestServer::start(&[]).await;
    let mut watch = Watch::new(server.addr, &token("alice")).await;
    watch
        .refused_token(&alg_none(&claims("alice")), "invalid_token")
        .await;
    // Also with a bogus signature part attached.
    watch
        .refused_token(
            &format!("{}AAAA", alg_none(&claims("alice"))),
            "invalid_token",
        )
        .await;
    server.stop().await;
    // And against a public-key server.
    let key = fixture("rsa_public.pem");
    let server = TestServer::start(&["--jwt-public-key", key.to_str().expect("utf-8 path")]).await;
    let mut watch = Watch::new(server.addr, &sign_rsa(&claims("alice"), Algorithm::RS256)).await;
    watch
        .refused_token(&alg_none(&claims("alice")), "invalid_token")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn bad_subjects_are_invalid() {
    let server = TestServer::start(&[]).await;
    let mut watch = Watch::new(server.addr, &token("alice")).await;
    let exp = now() + 3600;
    for claims in [
        json!({ "exp": exp }),
        json!({ "sub": "", "exp": exp }),
        json!({ "sub": 42, "exp": exp }),
        json!({ "sub": null, "exp": exp }),
        json!({ "sub": ["alice"], "exp": exp }),
        json!({ "sub": { "name": "alice" }, "exp": exp }),
    ] {
        watch
            .refused_token(
                &sign_hs(&claims, SECRET.as_bytes(), Algorithm::HS256),
                "invalid_token",
            )
            .await;
    }
    server.stop().await;
}

#[tokio::test]
async fn rsa_server_accepts_rsa_and_refuses_other_kinds_and_confusion() {
    let key = fixture("rsa_public.pem");
    let server = TestServer::start(&["--jwt-public-key", key.to_str().expect("utf-8 path")]).await;
    let mut watch = Watch::new(server.addr, &sign_rsa(&claims("alice"), Algorithm::RS256)).await;
    // Every RSA algorithm is accepted.
    for alg in [
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        let s = login(server.addr, &sign_rsa(&claims("alice"), alg)).await;
        assert_eq!(ids(&s.ready["sessions"]).len(), 2, "{alg:?}");
        s.client.leave();
        watch.witness.expect_update().await; // joined
        watch.witness.expect_update().await; // left
    }
    // Algorithm confusion: HS256 with the server's own public key PEM as the HMAC secret.
    let pem = std::fs::read(&key).expect("public key");
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        watch
            .refused_token(&sign_hs(&claims("alice"), &pem, alg), "invalid_token")
            .await;
    }
    // An EC-signed token: the wrong key kind.
    watch
        .refused_token(
            &sign_ec(&claims("alice"), Algorithm::ES256),
            "invalid_token",
        )
        .await;
    // Expired RSA token: token_expired.
    let expired = json!({ "sub": "alice", "exp": now() - 60 });
    watch
        .refused_token(&sign_rsa(&expired, Algorithm::RS256), "token_expired")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn ec_server_accepts_ec_and_refuses_other_kinds_and_confusion() {
    let key = fixture("ec_public.pem");
    let server = TestServer::start(&["--jwt-public-key", key.to_str().expect("utf-8 path")]).await;
    let mut watch = Watch::new(server.addr, &sign_ec(&claims("alice"), Algorithm::ES256)).await;
    let pem = std::fs::read(&key).expect("public key");
    watch
        .refused_token(
            &sign_hs(&claims("alice"), &pem, Algorithm::HS256),
            "invalid_token",
        )
        .await;
    watch
        .refused_token(
            &sign_rsa(&claims("alice"), Algorithm::RS256),
            "invalid_token",
        )
        .await;
    watch.refused_token(&token("alice"), "invalid_token").await;
    server.stop().await;
}

#[tokio::test]
async fn secret_server_refuses_public_key_algorithms() {
    let server = TestServer::start(&[]).await;
    let mut watch = Watch::new(server.addr, &token("alice")).await;
    watch
        .refused_token(
            &sign_rsa(&claims("alice"), Algorithm::RS256),
            "invalid_token",
        )
        .await;
    watch
        .refused_token(
            &sign_rsa(&claims("alice"), Algorithm::PS256),
            "invalid_token",
        )
        .await;
    watch
        .refused_token(
            &sign_ec(&claims("alice"), Algorithm::ES256),
            "invalid_token",
        )
        .await;
    server.stop().await;
}

#[tokio::test]
async fn session_limit_allows_n_and_refuses_n_plus_one() {
    let server = TestServer::start(&["--max-sessions-per-user", "2"]).await;
    let mut a = login(server.addr, &token("alice")).await;
    let mut b = login(server.addr, &token("alice")).await;
    assert_eq!(
        ids(&a.expect_update().await),
        vec![a.sid.clone(), b.sid.clone()]
    );

    let third = refused(
        server.addr,
        Some(json!({ "token": token("alice") })),
        Opts::default(),
        "session_limit",
    )
    .await;
    let list = a.list().await;
    assert_eq!(ids(&list), vec![a.sid.clone(), b.sid.clone()]);
    assert!(!ids(&list).contains(&third));
    assert!(a.client.queued().is_empty(), "{:?}", a.client.queued());
    b.expect_silence().await;

    // Another user is not affected by alice's limit.
    let c = login(server.addr, &token("bob")).await;
    assert_eq!(ids(&c.ready["sessions"]), vec![c.sid.clone()]);

    // Once one leaves, a new one fits again.
    b.client.leave();
    assert_eq!(ids(&a.expect_update().await), vec![a.sid.clone()]);
    let d = login(server.addr, &token("alice")).await;
    assert_eq!(
        ids(&d.ready["sessions"]),
        vec![a.sid.clone(), d.sid.clone()]
    );
    server.stop().await;
}

#[tokio::test]
async fn token_expiring_while_connected_disconnects_the_socket() {
    let server = TestServer::start(&[]).await;
    let mut keeper = login(server.addr, &token("alice")).await;
    let short = json!({ "sub": "alice", "iat": now(), "exp": now() + 4 });
    let mut s = login(
        server.addr,
        &sign_hs(&short, SECRET.as_bytes(), Algorithm::HS256),
    )
    .await;
    assert_eq!(
        ids(&keeper.expect_update().await),
        vec![keeper.sid.clone(), s.sid.clone()]
    );
    // Within a generous deadline after exp, the server says so and disconnects the namespace.
    let error = tokio::time::timeout(
        Duration::from_secs(15),
        s.client.expect_error_then_disconnect("token_expired"),
    )
    .await
    .expect("expired within 15 s");
    assert_eq!(error["code"], json!("token_expired"));
    assert_eq!(ids(&keeper.expect_update().await), vec![keeper.sid.clone()]);
    assert_eq!(ids(&keeper.list().await), vec![keeper.sid.clone()]);
    server.stop().await;
}
