//! The `sessions-app` binary as a process: the `token` subcommand (default TTL 1 h, `--ttl`, `iss`/`aud`
//! carried), flags overriding environment variables, configuration errors exiting non-zero before
//! binding, SIGTERM/SIGINT telling connected clients and exiting 0 within 10 s, the connect/disconnect
//! log lines without tokens, and development mode printing a token the same server accepts.

mod support;

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use support::*;

/// Verifies an HS256 token against `secret` (no exp/iss/aud checks beyond the signature).
fn decode(token: &str, secret: &str) -> Value {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .unwrap_or_else(|e| panic!("token {token:?} verifies with {secret:?}: {e}"))
    .claims
}

fn single_token(stdout: &str) -> String {
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stdout: {stdout:?}");
    let token = lines[0].trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    token
}

/// A port nobody listens on right now.
async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn token_subcommand_defaults_to_one_hour() {
    let (code, stdout, stderr) =
        run_to_end(&["--jwt-secret", SECRET, "token", "--sub", "alice"], &[]).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let token = single_token(&stdout);
    assert_eq!(jwt_header(&token)["alg"], json!("HS256"));
    let claims = decode(&token, SECRET);
    assert_eq!(claims["sub"], json!("alice"));
    let exp = claims["exp"].as_u64().expect("exp");
    let iat = claims["iat"].as_u64().expect("iat");
    assert_eq!(exp - iat, 3600);
    assert!(
        exp.abs_diff(now() + 3600) < 120,
        "exp about an hour from now"
    );
    assert!(
        claims.get("iss").is_none() && claims.get("aud").is_none(),
        "{claims}"
    );
    assert!(!stderr.contains(&token), "the token is not logged");

    // The token works against a server with the same secret.
    let server = TestServer::start(&[]).await;
    let s = login(server.addr, &token).await;
    assert_eq!(ids(&s.ready["sessions"]), vec![s.sid.clone()]);
    server.stop().await;
}

#[tokio::test]
async fn token_subcommand_honours_ttl_issuer_and_audience() {
    let (code, stdout, stderr) = run_to_end(
        &[
            "--jwt-secret",
            SECRET,
            "--jwt-issuer",
            "issuer-x",
            "--jwt-audience",
            "aud-x",
            "token",
            "--sub",
            "bob",
            "--ttl",
            "90s",
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let token = single_token(&stdout);
    let claims = decode(&token, SECRET);
    assert_eq!(claims["sub"], json!("bob"));
    assert_eq!(claims["iss"], json!("issuer-x"));
    assert_eq!(claims["aud"], json!("aud-x"));
    let exp = claims["exp"].as_u64().expect("exp");
    assert_eq!(exp - claims["iat"].as_u64().expect("iat"), 90);
    assert!(exp.abs_diff(now() + 90) < 120);

    // The issuer and audience the server requires are the ones the token carries.
    let server = TestServer::start(&["--jwt-issuer", "issuer-x", "--jwt-audience", "aud-x"]).await;
    let s = login(server.addr, &token).await;
    assert_eq!(ids(&s.ready["sessions"]), vec![s.sid.clone()]);
    server.stop().await;

    // Other TTL spellings.
    for (ttl, secs) in [("15m", 900), ("2h", 7200)] {
        let (code, stdout, _) = run_to_end(
            &[
                "--jwt-secret",
                SECRET,
                "token",
                "--sub",
                "bob",
                "--ttl",
                ttl,
            ],
            &[],
        )
        .await;
        assert_eq!(code, Some(0));
        let claims = decode(&single_token(&stdout), SECRET);
        assert_eq!(
            claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
            secs
        );
    }
}

#[tokio::test]
async fn token_subcommand_without_a_secret_fails() {
    let (code, stdout, stderr) = run_to_end(&["token", "--sub", "alice"], &[]).await;
    assert_ne!(
        code,
        Some(0),
        "no secret: stdout {stdout:?} stderr {stderr:?}"
    );
    assert!(stdout.trim().is_empty(), "no token printed: {stdout:?}");
    assert!(!stderr.trim().is_empty(), "says why");
}

#[tokio::test]
async fn flags_override_environment_variables() {
    // The environment alone is used...
    let (code, stdout, _) = run_to_end(
        &["token", "--sub", "alice"],
        &[("JWT_SECRET", "env-secret"), ("JWT_ISSUER", "env-issuer")],
    )
    .await;
    assert_eq!(code, Some(0));
    let claims = decode(&single_token(&stdout), "env-secret");
    assert_eq!(claims["iss"], json!("env-issuer"));
    // ...and a flag wins over it.
    let (code, stdout, _) = run_to_end(
        &[
            "--jwt-secret",
            "flag-secret",
            "--jwt-issuer",
            "flag-issuer",
            "token",
            "--sub",
            "alice",
        ],
        &[("JWT_SECRET", "env-secret"), ("JWT_ISSUER", "env-issuer")],
    )
    .await;
    assert_eq!(code, Some(0));
    let claims = decode(&single_token(&stdout), "flag-secret");
    assert_eq!(claims["iss"], json!("flag-issuer"));
}

#[tokio::test]
async fn defaults_apply_without_flags_or_environment() {
    use clap::Parser;
    // Parsed in-process: the test environment does not set the SESSIONS_*/JWT_* variables.
    let cli = sessions_app::config::Cli::try_parse_from(["sessions-app"]).expect("parses");
    let s = cli.settings;
    assert_eq!(s.listen, "0.0.0.0:3000".parse().expect("addr"));
    assert_eq!(s.jwt_secret, None);
    assert_eq!(s.jwt_public_key, None);
    assert_eq!(s.jwt_issuer, None);
    assert_eq!(s.jwt_audience, None);
    assert!(s.cors_origins.is_empty());
    assert_eq!(s.max_sessions_per_user, 100);
    assert!(!s.trust_proxy);
    assert_eq!(s.ping_interval_ms, 25_000);
    assert_eq!(s.ping_timeout_ms, 20_000);
    assert!(cli.command.is_none());
    // --trust-proxy is a plain switch.
    let cli = sessions_app::config::Cli::try_parse_from(["sessions-app", "--trust-proxy"])
        .expect("parses");
    assert!(cli.settings.trust_proxy);
}

#[tokio::test]
async fn environment_configures_a_running_server() {
    let mut proc = Proc::spawn(
        &[],
        &[
            ("SESSIONS_LISTEN", "127.0.0.1:0"),
            ("JWT_SECRET", SECRET),
            ("JWT_ISSUER", "env-iss"),
            ("JWT_AUDIENCE", "env-aud"),
            ("TRUST_PROXY", "1"),
            ("MAX_SESSIONS_PER_USER", "1"),
            ("PING_INTERVAL_MS", "1500"),
            ("PING_TIMEOUT_MS", "1000"),
            ("CORS_ORIGINS", "https://a.example,https://b.example"),
        ],
    );
    let addr = proc.address().await;
    let good = sign_hs(
        &json!({ "sub": "alice", "iss": "env-iss", "aud": "env-aud", "exp": now() + 600 }),
        SECRET.as_bytes(),
        Algorithm::HS256,
    );
    let s = join_with(
        addr,
        Some(json!({ "token": good })),
        Opts::default().header("X-Forwarded-For", "192.0.2.9"),
    )
    .await;
    assert_eq!(s.ready["sessions"][0]["metadata"]["ip"], json!("192.0.2.9"));
    assert_eq!(s.client.open["pingInterval"], json!(1500));
    assert_eq!(s.client.open["pingTimeout"], json!(1000));
    // The limit of 1, and the issuer requirement, come from the environment.
    refused(
        addr,
        Some(json!({ "token": good })),
        Opts::default(),
        "session_limit",
    )
    .await;
    refused(
        addr,
        Some(json!({ "token": token("bob") })),
        Opts::default(),
        "invalid_token",
    )
    .await;
    for origin in ["https://a.example", "https://b.example"] {
        let response = http(
            addr,
            "GET",
            "/socket.io/?EIO=4&transport=polling",
            &[("Origin", origin)],
            b"",
        )
        .await;
        assert_eq!(response.header("access-control-allow-origin"), Some(origin));
    }
    // TRUST_PROXY=true works too.
    drop(s);
    drop(proc);
    let mut proc = Proc::spawn(
        &[],
        &[
            ("SESSIONS_LISTEN", "127.0.0.1:0"),
            ("JWT_SECRET", SECRET),
            ("TRUST_PROXY", "true"),
        ],
    );
    let addr = proc.address().await;
    let s = join_with(
        addr,
        Some(json!({ "token": token("alice") })),
        Opts::default().header("X-Forwarded-For", "192.0.2.10"),
    )
    .await;
    assert_eq!(
        s.ready["sessions"][0]["metadata"]["ip"],
        json!("192.0.2.10")
    );
}

/// Runs the binary expecting a configuration error: non-zero exit, a message, never listening.
async fn expect_config_error(args: &[&str], env: &[(&str, &str)], mention: &str) {
    let started = Instant::now();
    let (code, stdout, stderr) = run_to_end(args, env).await;
    assert!(
        matches!(code, Some(c) if c != 0),
        "{args:?}: non-zero exit, got {code:?}; stderr {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains(&mention.to_lowercase()),
        "{args:?}: the message mentions {mention:?}: {stderr}"
    );
    assert!(
        !stderr.contains("listening") && !stdout.contains("token"),
        "{args:?}: it never started serving: {stdout} {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn configuration_errors_exit_non_zero_before_binding() {
    let port = free_port().await;
    let listen = format!("127.0.0.1:{port}");
    // Unreadable key file.
    let missing = fixture("does-not-exist.pem");
    let missing = missing.to_str().expect("utf-8");
    expect_config_error(
        &["--listen", &listen, "--jwt-public-key", missing],
        &[],
        "does-not-exist.pem",
    )
    .await;
    expect_config_error(
        &["--listen", &listen],
        &[("JWT_PUBLIC_KEY_FILE", missing)],
        "does-not-exist.pem",
    )
    .await;
    // A file that is not a public key (a private key is not one either... this one is not a PEM).
    let not_a_key = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    expect_config_error(
        &["--listen", &listen, "--jwt-public-key", not_a_key],
        &[],
        "key",
    )
    .await;
    // Bad listen addresses, by flag and by environment.
    expect_config_error(
        &["--jwt-secret", SECRET, "--listen", "not-an-address"],
        &[],
        "listen",
    )
    .await;
    expect_config_error(
        &["--jwt-secret", SECRET, "--listen", "127.0.0.1:99999"],
        &[],
        "listen",
    )
    .await;
    expect_config_error(
        &["--jwt-secret", SECRET],
        &[("SESSIONS_LISTEN", "nowhere")],
        "listen",
    )
    .await;
    // Nothing bound the port meanwhile: it is still free.
    let again = tokio::net::TcpListener::bind(("127.0.0.1", port)).await;
    assert!(again.is_ok(), "port {port} was never taken");
}

#[tokio::test]
async fn an_address_in_use_exits_non_zero() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();
    let (code, _stdout, stderr) =
        run_to_end(&["--jwt-secret", SECRET, "--listen", &listen], &[]).await;
    assert!(matches!(code, Some(c) if c != 0), "{code:?} {stderr}");
    assert!(stderr.contains(&listen), "names the address: {stderr}");
}

/// Starts the binary, connects one WebSocket session of alice, sends `sig`, and checks the client is
/// told and the process exits 0 within 10 s.
async fn graceful_stop(sig: &str) {
    let mut proc = Proc::spawn(&["--listen", "127.0.0.1:0", "--jwt-secret", SECRET], &[]);
    let addr = proc.address().await;
    let tok = token("alice");
    let mut s = login(addr, &tok).await;
    // A long-polling client of the same user too.
    let polling = Polling::open(addr, &format!("&token={}", token("alice")), &[]).await;
    polling.send(&[&format!("40{NS},")]).await;
    polling.poll_until(3).await;
    s.expect_update().await;

    let sent = Instant::now();
    proc.signal(sig);
    // The WebSocket client gets an orderly close (Engine.IO close / WebSocket close frame).
    let told = s
        .client
        .wait_for(|i| {
            matches!(
                i,
                Incoming::WsClose | Incoming::EngineClose | Incoming::Ended
            )
        })
        .await;
    assert!(
        matches!(told, Incoming::WsClose | Incoming::EngineClose),
        "an orderly close, not a dropped connection: {told:?}"
    );
    // The polling client hears the Engine.IO close packet, after whatever was queued before it (the
    // WebSocket session's disconnect may have sent it an update first, as the official server does).
    let mut packets = Vec::new();
    for _ in 0..3 {
        packets.extend(polling.poll().await);
        if packets.contains(&Incoming::EngineClose) {
            break;
        }
    }
    assert!(
        packets.contains(&Incoming::EngineClose),
        "close packet for the polling client: {packets:?}"
    );
    let code = proc
        .wait_exit(Duration::from_secs(10).saturating_sub(sent.elapsed()))
        .await;
    assert_eq!(
        code,
        Some(Some(0)),
        "exit 0 within 10 s of {sig}; output {:#?}",
        proc.seen
    );
    assert!(sent.elapsed() <= Duration::from_secs(10));
    // No longer accepting.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    // The log: a line per connect and disconnect with user, socket id and reason; never the token.
    proc.drain().await;
    let stderr: Vec<&String> = proc
        .seen
        .iter()
        .filter(|(stream, _)| *stream == Stream::Err)
        .map(|(_, l)| l)
        .collect();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("connected") && l.contains("alice") && l.contains(&s.sid)),
        "a connect line with user and socket id: {stderr:#?}"
    );
    assert!(
        stderr.iter().any(|l| l.contains("disconnected")
            && l.contains("alice")
            && l.contains(&s.sid)
            && l.contains("reason")),
        "a disconnect line with user, socket id and reason: {stderr:#?}"
    );
    assert!(
        !proc.seen.iter().any(|(_, l)| l.contains(&tok)),
        "the token is never logged"
    );
}

#[tokio::test]
async fn sigterm_tells_clients_and_exits_zero_within_ten_seconds() {
    graceful_stop("TERM").await;
}

#[tokio::test]
async fn sigint_tells_clients_and_exits_zero_within_ten_seconds() {
    graceful_stop("INT").await;
}

#[tokio::test]
async fn development_mode_prints_a_token_the_server_accepts() {
    let mut proc = Proc::spawn(&["--listen", "127.0.0.1:0"], &[]);
    let addr = proc.address().await;
    let line = proc
        .wait_line(|s, l| {
            s == Stream::Out
                && l.split_whitespace()
                    .any(|w| w.split('.').count() == 3 && w.starts_with("eyJ"))
        })
        .await;
    let token = line
        .split_whitespace()
        .find(|w| w.split('.').count() == 3 && w.starts_with("eyJ"))
        .expect("a JWT on the line")
        .to_owned();
    // It says so loudly.
    assert!(
        proc.seen
            .iter()
            .any(|(s, l)| *s == Stream::Err && l.to_lowercase().contains("development")),
        "development mode is announced in the log: {:#?}",
        proc.seen
    );
    let mut s = login(addr, &token).await;
    assert_eq!(ids(&s.ready["sessions"]), vec![s.sid.clone()]);
    assert_eq!(ids(&s.list().await), vec![s.sid.clone()]);
    // A token signed with any other secret is not accepted: the secret really is random.
    refused(
        addr,
        Some(json!({ "token": token_with("alice", "guessable") })),
        Opts::default(),
        "invalid_token",
    )
    .await;
}

fn token_with(sub: &str, secret: &str) -> String {
    sign_hs(&claims(sub), secret.as_bytes(), Algorithm::HS256)
}
