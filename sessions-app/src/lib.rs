//! The sessions server: each authenticated user keeps many live connections (tabs, browsers, devices)
//! and every one of them always knows the full, current list, and can sign any other one out.
//!
//! Built on the project's [`socketio`] crate: the `/sessions` namespace is in [`app`], token handling
//! in [`auth`], the live list in [`registry`], and the HTTP routes (`/healthz`, `/metrics`, `/`) here.

#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod config;
pub mod metrics;
pub mod origin;
pub mod registry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use engineio::{AllowedOrigins, Body, Cors};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use rand::RngCore;
use socketio::SocketIo;

use crate::app::{App, AppSettings};
use crate::auth::{KeyError, KeyMaterial, Verifier};
use crate::config::Settings;

/// The page at `/`.
const PAGE: &str = include_str!("page.html");

/// A configuration that cannot work; reported before the server binds.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The public key file could not be read.
    #[error("cannot read the JWT public key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The key is not usable.
    #[error("the JWT key is not usable: {0}")]
    Key(#[from] KeyError),
    /// Both a secret and a public key were given.
    #[error("set either --jwt-secret or --jwt-public-key, not both")]
    TwoKeys,
    /// The secret is empty.
    #[error("--jwt-secret is empty")]
    EmptySecret,
}

/// The token verifier the settings describe, and whether it is a development secret made up now.
pub fn verifier_from(settings: &Settings) -> Result<(Verifier, bool), ConfigError> {
    let (material, development) = match (&settings.jwt_secret, &settings.jwt_public_key) {
        (Some(_), Some(_)) => return Err(ConfigError::TwoKeys),
        (Some(secret), None) if secret.is_empty() => return Err(ConfigError::EmptySecret),
        (Some(secret), None) => (KeyMaterial::Secret(secret.as_bytes().to_vec()), false),
        (None, Some(path)) => {
            let pem = std::fs::read(path).map_err(|source| ConfigError::KeyFile {
                path: path.clone(),
                source,
            })?;
            (KeyMaterial::from_public_pem(&pem)?, false)
        }
        (None, None) => {
            let mut secret = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            (KeyMaterial::Secret(secret.to_vec()), true)
        }
    };
    let verifier = Verifier::new(
        material,
        settings.jwt_issuer.clone(),
        settings.jwt_audience.clone(),
    )?;
    Ok((verifier, development))
}

/// The Socket.IO settings the server settings describe.
pub fn socketio_config(settings: &Settings) -> socketio::Config {
    let mut config = socketio::Config::default();
    config.engine.ping_interval = Duration::from_millis(settings.ping_interval_ms);
    config.engine.ping_timeout = Duration::from_millis(settings.ping_timeout_ms);
    let origins: Vec<String> = settings
        .cors_origins
        .iter()
        .filter(|origin| !origin.is_empty())
        .cloned()
        .collect();
    if !origins.is_empty() {
        // As the official `cors: { origin: "*" }` or `{ origin: [...] }`: the token travels in
        // the handshake, not in cookies, so no credentials are allowed.
        let allowed = if origins.iter().any(|origin| origin == "*") {
            AllowedOrigins::Any
        } else {
            AllowedOrigins::List(origins.clone())
        };
        config.engine.cors = Some(Cors {
            origins: allowed,
            ..Cors::default()
        });
    }
    let trust_proxy = settings.trust_proxy;
    config.engine.allow_request = Some(Arc::new(move |request, remote| {
        // Refusals are logged at debug, as the engine's own: a hostile page could flood a warning.
        if !origin::websocket_origin_allowed(request, &origins, trust_proxy) {
            tracing::debug!(%remote, origin = ?request.headers.get(header::ORIGIN),
                "WebSocket handshake from an origin that is neither this server nor a --cors-origin: refused");
            return Err(engineio::Refusal::default());
        }
        if !origin::jsonp_allowed(request, &origins) {
            tracing::debug!(%remote, "JSONP handshake without --cors-origin '*': refused");
            return Err(engineio::Refusal::default());
        }
        Ok(())
    }));
    config
}

/// The whole server: Socket.IO with `/sessions`, and the HTTP routes beside it.
#[derive(Clone, Debug)]
pub struct Server {
    io: SocketIo,
    app: Arc<App>,
}

impl Server {
    /// A server with these settings and this verifier.
    pub fn new(settings: &Settings, verifier: Verifier) -> Self {
        let io = SocketIo::new(socketio_config(settings));
        let app = App::install(
            &io,
            AppSettings {
                verifier,
                max_sessions_per_user: settings.max_sessions_per_user,
                trust_proxy: settings.trust_proxy,
            },
        );
        Server { io, app }
    }

    /// The Socket.IO server.
    pub fn io(&self) -> &SocketIo {
        &self.io
    }

    /// Answers one HTTP request.
    pub async fn handle(&self, request: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
        let path = request.uri().path();
        if self.io.handles_path(path) {
            return self.io.handle(request, remote).await;
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return respond(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                Bytes::from_static(b"method not allowed\n"),
            );
        }
        match path {
            "/healthz" => respond(
                StatusCode::OK,
                "application/json",
                Bytes::from_static(br#"{"status":"ok"}"#),
            ),
            "/metrics" => {
                let (sockets, users) = self.app.counts();
                let text = metrics::render(&metrics::Snapshot {
                    sockets,
                    users,
                    failures: self.app.counters.failures(),
                    engine: self.io.engine().stats(),
                });
                respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    Bytes::from(text),
                )
            }
            "/" | "/index.html" => respond(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from_static(PAGE.as_bytes()),
            ),
            _ => respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                Bytes::from_static(b"not found\n"),
            ),
        }
    }

    /// Serves on `listener` until `shutdown` completes; then tells every client the server is going
    /// away (an Engine.IO close) and keeps answering while the goodbyes drain — a polling client
    /// between two polls needs one more request to hear it — before it stops accepting.
    pub async fn serve_until(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let server = self.clone();
        let io = self.io.clone();
        let drained = async move {
            shutdown.await;
            tracing::info!("shutting down: closing every connection");
            // New handshakes get 503 from here on; every session is closed with its queue flushed.
            io.shutdown();
            // Well under the 10 s contract.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
            while io.engine().session_count() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        };
        engineio::serve_fn_until(
            listener,
            move |request, remote| {
                let server = server.clone();
                async move { server.handle(request, remote).await }
            },
            drained,
        )
        .await?;
        // Let the last close frames leave their sockets.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
