//! The `/sessions` namespace: authentication, the live list, revocation.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{json, Value};
use socketio::{AckSender, Data, DisconnectReason, Socket, SocketIo};

use crate::auth::{extract_token, ErrorCode, Identity, TokenLookup, Verifier};
use crate::registry::{Registry, SessionInfo};

/// The namespace every client connects to.
pub const NAMESPACE: &str = "/sessions";

/// Settings of the sessions behaviour.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// Checks tokens.
    pub verifier: Verifier,
    /// Live sessions allowed per user.
    pub max_sessions_per_user: usize,
    /// Take the client address from `X-Forwarded-For`.
    pub trust_proxy: bool,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    auth_failures: [AtomicU64; ErrorCode::ALL.len()],
}

impl Counters {
    fn failure(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.auth_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Refusals so far, by code.
    pub fn failures(&self) -> Vec<(ErrorCode, u64)> {
        ErrorCode::ALL
            .iter()
            .zip(&self.auth_failures)
            .map(|(c, n)| (*c, n.load(Ordering::Relaxed)))
            .collect()
    }
}

/// The state of the sessions server.
pub struct App {
    settings: AppSettings,
    registry: Mutex<Registry>,
    io: SocketIo,
    /// Counters for `/metrics`.
    pub counters: Counters,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("settings", &self.settings)
            .finish()
    }
}

/// What a connected socket is, stored on it once authenticated.
#[derive(Clone)]
struct Session {
    user: Arc<str>,
    expiry: Option<Arc<tokio::task::AbortHandle>>,
}

fn user_room(user: &str) -> String {
    format!("user:{user}")
}

impl App {
    /// Registers the `/sessions` namespace on `io`.
    pub fn install(io: &SocketIo, settings: AppSettings) -> Arc<App> {
        let app = Arc::new(App {
            settings,
            registry: Mutex::new(Registry::default()),
            io: io.clone(),
            counters: Counters::default(),
        });
        let handle = app.clone();
        io.of(NAMESPACE).on_connection(move |socket| {
            let app = handle.clone();
            async move { app.on_connection(socket) }
        });
        app
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (live sockets, users with at least one).
    pub fn counts(&self) -> (usize, usize) {
        let registry = self.registry();
        (registry.socket_count(), registry.user_count())
    }

    fn authenticate(&self, socket: &Socket) -> Result<Identity, ErrorCode> {
        let handshake = socket.handshake();
        let query_token = handshake.query("token");
        let authorization = handshake.header_bytes("authorization");
        match extract_token(&handshake.auth, authorization, query_token.as_deref()) {
            TokenLookup::Found(token) => self.settings.verifier.verify(token),
            TokenLookup::Malformed => Err(ErrorCode::InvalidToken),
            TokenLookup::Missing => Err(ErrorCode::MissingToken),
        }
    }

    fn session_info(&self, socket: &Socket) -> SessionInfo {
        let handshake = socket.handshake();
        let forwarded_for = self
            .settings
            .trust_proxy
            .then(|| handshake.header("x-forwarded-for"))
            .flatten();
        let forwarded = forwarded_for
            .as_deref()
            .and_then(|list| list.split(',').next())
            .map(str::trim)
            .filter(|ip| !ip.is_empty());
        let ip = match forwarded {
            Some(ip) => ip.to_owned(),
            // IPv4-mapped IPv6 addresses in their IPv4 form, as people write them.
            None => handshake.address().ip().to_canonical().to_string(),
        };
        let context = match handshake.auth.get("context") {
            Some(context) if !context.is_null() => context.clone(),
            _ => handshake
                .query("context")
                .map(|c| Value::String(c.to_owned()))
                .unwrap_or(Value::Null),
        };
        SessionInfo {
            socket_id: socket.id().to_owned(),
            connected_at: SystemTime::now(),
            ip,
            user_agent: handshake.header("user-agent").map(Cow::into_owned),
            context,
        }
    }

    fn on_connection(self: Arc<Self>, socket: Socket) {
        let identity = match self.authenticate(&socket) {
            Ok(identity) => identity,
            Err(code) => return self.refuse(&socket, None, code),
        };
        let user: Arc<str> = identity.user.as_str().into();
        let info = self.session_info(&socket);
        {
            let mut registry = self.registry();
            if registry
                .add(&user, info, self.settings.max_sessions_per_user)
                .is_err()
            {
                drop(registry);
                return self.refuse(&socket, Some(&user), ErrorCode::SessionLimit);
            }
            socket.join(user_room(&user));
            let expiry = identity
                .expires_at
                .map(|at| Arc::new(self.clone().expire_at(socket.clone(), at)));
            socket.set_extension(Session {
                user: user.clone(),
                expiry,
            });
            // Sent under the registry lock, so every socket sees the lists in the order they changed.
            let sessions = registry.list(&user);
            socket
                .emit(
                    "sessions:ready",
                    &(json!({ "socketId": socket.id(), "sessions": sessions }),),
                )
                .ok();
            self.broadcast_update(&user, sessions);
        }
        tracing::info!(user = ?user, socket = socket.id(), "session connected");
        self.register_handlers(&socket);
    }

    fn broadcast_update(&self, user: &str, sessions: Vec<Value>) {
        self.io
            .of(NAMESPACE)
            .to(user_room(user))
            .emit("sessions:update", &(sessions,))
            .ok();
    }

    /// Tells the socket why, then removes it from the namespace (`io server disconnect`).
    fn refuse(&self, socket: &Socket, user: Option<&str>, code: ErrorCode) {
        if code != ErrorCode::Revoked {
            self.counters.failure(code);
        }
        tracing::info!(
            user = user.unwrap_or("-"),
            socket = socket.id(),
            code = code.as_str(),
            "session refused"
        );
        socket
            .emit(
                "sessions:error",
                &(json!({ "code": code.as_str(), "message": code.message() }),),
            )
            .ok();
        socket.disconnect();
    }

    fn expire_at(self: Arc<Self>, socket: Socket, at: SystemTime) -> tokio::task::AbortHandle {
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if socket.connected() {
                let user = socket.extension::<Session>().map(|s| s.user);
                self.refuse(&socket, user.as_deref(), ErrorCode::TokenExpired);
            }
        })
        .abort_handle()
    }

    fn register_handlers(self: &Arc<Self>, socket: &Socket) {
        let app = self.clone();
        socket.on("sessions:list", move |socket, _, ack| {
            let app = app.clone();
            async move {
                let Some(session) = socket.extension::<Session>() else {
                    return;
                };
                let sessions = app.registry().list(&session.user);
                reply(ack, json!(sessions));
            }
        });
        let app = self.clone();
        socket.on("sessions:revoke", move |socket, data: Data, ack| {
            let app = app.clone();
            async move {
                let target = data
                    .args()
                    .first()
                    .and_then(|v| v.get("socketId"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let revoked = match target {
                    Some(target) => app.revoke(&socket, &target),
                    None => false,
                };
                let answer = if revoked {
                    json!({ "ok": true })
                } else {
                    json!({ "ok": false, "error": "not_found" })
                };
                reply(ack, answer);
            }
        });
        let app = self.clone();
        socket.on("sessions:revoke-others", move |socket, _, ack| {
            let app = app.clone();
            async move {
                let Some(session) = socket.extension::<Session>() else {
                    return;
                };
                let others = app.registry().others(&session.user, socket.id());
                let revoked = others.iter().filter(|id| app.revoke(&socket, id)).count();
                reply(ack, json!({ "ok": true, "revoked": revoked }));
            }
        });
        let app = self.clone();
        socket.on_disconnect(move |socket, reason| {
            let app = app.clone();
            async move { app.on_disconnect(&socket, reason) }
        });
    }

    /// Signs out `target` if it is another live session of the caller's user.
    fn revoke(&self, caller: &Socket, target: &str) -> bool {
        let Some(session) = caller.extension::<Session>() else {
            return false;
        };
        if target == caller.id() || !self.registry().contains(&session.user, target) {
            return false;
        }
        let Some(socket) = self.io.of(NAMESPACE).socket(target) else {
            return false;
        };
        tracing::info!(user = ?session.user, socket = target, by = caller.id(), "session revoked");
        self.refuse(&socket, Some(&session.user), ErrorCode::Revoked);
        true
    }

    fn on_disconnect(&self, socket: &Socket, reason: DisconnectReason) {
        let Some(session) = socket.extension::<Session>() else {
            return;
        };
        if let Some(expiry) = &session.expiry {
            expiry.abort();
        }
        let mut registry = self.registry();
        if registry.remove(&session.user, socket.id()) {
            let sessions = registry.list(&session.user);
            self.broadcast_update(&session.user, sessions);
        }
        drop(registry);
        tracing::info!(user = ?session.user, socket = socket.id(), %reason, "session disconnected");
    }
}

fn reply(ack: Option<AckSender>, value: Value) {
    if let Some(ack) = ack {
        ack.send(&(value,)).ok();
    }
}
