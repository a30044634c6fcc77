//! The Socket.IO server: configuration, namespaces, and the HTTP entry points.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use engineio::{Body, ConnectionHandler, EngineIo};
use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde::Serialize;

use crate::adapter::{AckResponses, AdapterFactory, LocalAdapter, Room};
use crate::client::Client;
use crate::client_files::ClientFiles;
use crate::namespace::{
    ConnectError, Connecting, DynamicNamespace, Handlers, Namespace, NamespaceInner,
};
use crate::operators::BroadcastOperator;
use crate::recovery::ConnectionStateRecovery;
use crate::socket::{read, write, AckError, EmitError, Socket};

/// Socket.IO server settings; `Config::default()` matches the official server's defaults.
///
/// ```
/// let mut config = socketio::Config::default();
/// config.engine.ping_interval = std::time::Duration::from_secs(10);
/// assert_eq!(config.engine.path, "/socket.io/");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The Engine.IO settings (the path defaults to `/socket.io/`).
    pub engine: engineio::Config,
    /// Time a connection has to join a namespace before it is closed (default 45 s).
    pub connect_timeout: Duration,
    /// Attachments one packet may announce; more closes the connection (default 10, as the official
    /// parser's `maxAttachments`).
    pub max_attachments: usize,
    /// Namespaces one connection may join at once (default 64).
    pub max_namespaces_per_connection: usize,
    /// Acknowledgements the server may await from one socket at once (default 10,000).
    pub max_pending_acks: usize,
    /// Removes a child of a dynamic namespace ([`SocketIo::dynamic`]) once its last socket has
    /// left, or its CONNECT was refused, as the official `cleanupEmptyChildNamespaces` (default
    /// false, as there). Without it, every name a client connects to stays in memory. As there, a
    /// [`Namespace`] handle kept from `of` no longer reaches the sockets of a child made again
    /// after its removal: look it up with `of` when it is needed.
    pub cleanup_empty_child_namespaces: bool,
    /// Builds each namespace's adapter (default: [`LocalAdapter`]).
    pub adapter: AdapterFactory,
    /// Connection state recovery, off by default as in the official server (see
    /// [`ConnectionStateRecovery`]).
    pub connection_state_recovery: Option<ConnectionStateRecovery>,
    /// The browser client bundle to serve under the path (`/socket.io/socket.io.js`, …), as the
    /// official `serveClient` option. The official server ships the bundle and serves it by
    /// default; this crate does not ship it, so this is `None` (those paths are then Engine.IO
    /// requests, answered as the official server answers them with `serveClient: false`).
    pub serve_client: Option<Arc<ClientFiles>>,
}

impl Default for Config {
    fn default() -> Self {
        let mut engine = engineio::Config::default();
        engine.path = "/socket.io/".to_owned();
        Config {
            engine,
            connect_timeout: Duration::from_secs(45),
            max_attachments: 10,
            max_namespaces_per_connection: 64,
            max_pending_acks: 10_000,
            cleanup_empty_child_namespaces: false,
            adapter: Arc::new(|nsp| Arc::new(LocalAdapter::new(nsp))),
            connection_state_recovery: None,
            serve_client: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("engine", &self.engine)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_attachments", &self.max_attachments)
            .field(
                "max_namespaces_per_connection",
                &self.max_namespaces_per_connection,
            )
            .field("max_pending_acks", &self.max_pending_acks)
            .field(
                "cleanup_empty_child_namespaces",
                &self.cleanup_empty_child_namespaces,
            )
            .field("connection_state_recovery", &self.connection_state_recovery)
            .field("serve_client", &self.serve_client.is_some())
            .finish()
    }
}

type Matcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

pub(crate) struct ServerInner {
    pub(crate) config: Config,
    namespaces: RwLock<HashMap<String, Arc<NamespaceInner>>>,
    dynamic: RwLock<Vec<(Matcher, Arc<Handlers>)>>,
}

impl ServerInner {
    /// The namespace a CONNECT names: a registered one, or a new child of a matching dynamic one;
    /// with the guard that keeps a child in place until the CONNECT is concluded.
    pub(crate) fn namespace_for(
        self: &Arc<Self>,
        name: &str,
    ) -> Option<(Arc<NamespaceInner>, Connecting)> {
        if let Some(nsp) = read(&self.namespaces).get(name) {
            return Some((nsp.clone(), nsp.connecting()));
        }
        let handlers = self.dynamic_handlers(name)?;
        let mut namespaces = write(&self.namespaces);
        let nsp = namespaces
            .entry(name.to_owned())
            .or_insert_with(|| self.child(name, handlers));
        Some((nsp.clone(), nsp.connecting()))
    }

    /// The handlers of the first dynamic namespace that matches `name`.
    fn dynamic_handlers(&self, name: &str) -> Option<Arc<Handlers>> {
        read(&self.dynamic)
            .iter()
            .find(|(matches, _)| matches(name))
            .map(|(_, handlers)| handlers.clone())
    }

    /// A new child of a dynamic namespace.
    fn child(self: &Arc<Self>, name: &str, handlers: Arc<Handlers>) -> Arc<NamespaceInner> {
        let cleanup = self
            .config
            .cleanup_empty_child_namespaces
            .then(|| Arc::downgrade(self));
        NamespaceInner::new(name.to_owned(), Some(handlers), &self.config, cleanup)
    }

    /// Removes `nsp`, a child found unused, from the table (unless a CONNECT took it meanwhile,
    /// or it was replaced).
    pub(crate) fn forget_child(&self, nsp: &NamespaceInner) {
        let mut namespaces = write(&self.namespaces);
        let current = namespaces
            .get(&nsp.name)
            .is_some_and(|entry| std::ptr::eq(Arc::as_ptr(entry), nsp));
        if current && nsp.is_unused() {
            namespaces.remove(&nsp.name);
            drop(namespaces);
            nsp.adapter.close();
            tracing::debug!(nsp = %nsp.name, "empty child namespace removed");
        }
    }

    /// `io.of(name)`: a registered namespace, else a new one; a child when a dynamic namespace
    /// matches the name (as the official `of` does for a parent namespace's regular expression).
    fn of(self: &Arc<Self>, name: &str) -> Arc<NamespaceInner> {
        let name = normalize(name);
        // Every `io.of(…)` / `io.to(…)` comes here: the write lock only for a new namespace.
        if let Some(nsp) = read(&self.namespaces).get(&name) {
            return nsp.clone();
        }
        let handlers = self.dynamic_handlers(&name);
        let mut namespaces = write(&self.namespaces);
        namespaces
            .entry(name.clone())
            .or_insert_with(|| match handlers {
                Some(handlers) => self.child(&name, handlers),
                None => NamespaceInner::new(name, None, &self.config, None),
            })
            .clone()
    }
}

fn normalize(name: &str) -> String {
    if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    }
}

struct EngineHandler(Weak<ServerInner>);

impl engineio::Handler for EngineHandler {
    fn on_connection(&self, socket: engineio::Socket) -> Arc<dyn ConnectionHandler> {
        match self.0.upgrade() {
            Some(server) => Client::new(socket, &server),
            None => {
                socket.close();
                Arc::new(Closed)
            }
        }
    }
}

struct Closed;

impl ConnectionHandler for Closed {
    fn on_message(&self, _: engineio::Message) {}
    fn on_close(&self, _: engineio::CloseReason) {}
}

/// A Socket.IO server.
///
/// ```no_run
/// use socketio::SocketIo;
///
/// # async fn run() -> std::io::Result<()> {
/// let io = SocketIo::new(socketio::Config::default());
/// io.of("/").on_connection(|socket| async move {
///     socket.on("ping", |socket, data, ack| async move {
///         if let Some(ack) = ack { ack.send_data(data).ok(); }
///     });
/// });
/// io.serve(tokio::net::TcpListener::bind("127.0.0.1:3000").await?).await
/// # }
/// ```
#[derive(Clone)]
pub struct SocketIo {
    inner: Arc<ServerInner>,
    engine: EngineIo,
}

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl SocketIo {
    /// A server with this configuration; the main namespace `/` exists from the start.
    pub fn new(config: Config) -> Self {
        let engine_config = config.engine.clone();
        let inner = Arc::new(ServerInner {
            config,
            namespaces: RwLock::new(HashMap::new()),
            dynamic: RwLock::new(Vec::new()),
        });
        inner.of("/");
        let engine = EngineIo::new(engine_config, EngineHandler(Arc::downgrade(&inner)));
        SocketIo { inner, engine }
    }

    /// The namespace named `name`, created when missing.
    pub fn of(&self, name: &str) -> Namespace {
        Namespace {
            inner: self.inner.of(name),
        }
    }

    /// The names of the namespaces that exist now, sorted: those made by [`of`](Self::of) and the
    /// children of dynamic namespaces.
    pub fn namespace_names(&self) -> Vec<String> {
        let mut names: Vec<String> = read(&self.inner.namespaces).keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// A dynamic namespace: any name `matches` accepts is created on its first connect.
    ///
    /// ```no_run
    /// # fn demo(io: socketio::SocketIo) {
    /// io.dynamic(|name| name.starts_with("/room-")).on_connection(|socket| async move {
    ///     socket.emit("welcome", socket.ns()).ok();
    /// });
    /// # }
    /// ```
    pub fn dynamic(
        &self,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> DynamicNamespace {
        let handlers: Arc<Handlers> = Arc::default();
        write(&self.inner.dynamic).push((Arc::new(matches), handlers.clone()));
        DynamicNamespace { handlers }
    }

    /// The Engine.IO server underneath.
    pub fn engine(&self) -> &EngineIo {
        &self.engine
    }

    /// Targets sockets of `/` in `room`.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.of("/").to(room)
    }

    /// Same as [`to`](Self::to).
    pub fn within(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.to(room)
    }

    /// Targets every socket of `/` except those in `room`.
    pub fn except(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.of("/").except(room)
    }

    /// Targets the sockets of `/` on this server only, not the whole cluster.
    pub fn local(&self) -> BroadcastOperator {
        self.of("/").local()
    }

    /// Drops packets for sockets of `/` that cannot take them now.
    pub fn volatile(&self) -> BroadcastOperator {
        self.of("/").volatile()
    }

    /// Sets the compress flag of a broadcast on `/` (see [`crate::BroadcastOptions::compress`]).
    pub fn compress(&self, compress: bool) -> BroadcastOperator {
        self.of("/").compress(compress)
    }

    /// Sets the timeout of a following broadcast with acknowledgement on `/`.
    pub fn timeout(&self, timeout: Duration) -> BroadcastOperator {
        self.of("/").timeout(timeout)
    }

    /// Sends an event to every socket of `/`.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<(), EmitError> {
        self.of("/").emit(event, args)
    }

    /// Sends an event to every socket of `/` and collects their acknowledgements.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<AckResponses, AckError> {
        self.of("/").emit_with_ack(event, args).await
    }

    /// Adds a connect middleware to `/` (the official `io.use`).
    pub fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.of("/").use_middleware(middleware);
    }

    /// Adds a handler run for every socket that joins `/` (the official `io.on("connection")`).
    pub fn on_connection<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.of("/").on_connection(handler);
    }

    /// The sockets of `/`, across the cluster.
    pub async fn fetch_sockets(&self) -> Vec<Socket> {
        self.of("/").fetch_sockets().await
    }

    /// Makes every socket of `/` join rooms.
    pub async fn sockets_join(&self, rooms: Vec<Room>) {
        self.of("/").sockets_join(rooms).await
    }

    /// Makes every socket of `/` leave rooms.
    pub async fn sockets_leave(&self, rooms: Vec<Room>) {
        self.of("/").sockets_leave(rooms).await
    }

    /// Disconnects every socket of `/` (closing their connections with `close`).
    pub async fn disconnect_sockets(&self, close: bool) {
        self.of("/").disconnect_sockets(close).await
    }

    /// Sends an event to the other servers of the cluster, on `/`.
    pub async fn server_side_emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<(), EmitError> {
        self.of("/").server_side_emit(event, args).await
    }

    /// Whether a request path belongs to this server.
    pub fn handles_path(&self, path: &str) -> bool {
        self.engine.handles_path(path) || self.client_file(path).is_some()
    }

    /// Answers one HTTP request addressed to this server's path.
    pub async fn handle(&self, request: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
        if let Some((files, name)) = self.client_file(request.uri().path()) {
            // A preflight gets the engine's CORS answer, as the official server's `cors`
            // middleware answers it before the file would be served; an upgrade request never
            // reaches the official server's file handler (Node hands it to the engine).
            let preflight =
                request.method() == Method::OPTIONS && self.engine.config().cors.is_some();
            let upgrade = request.headers().contains_key(http::header::UPGRADE);
            if !preflight && !upgrade {
                let mut response = files.respond(name, request.headers()).await;
                self.engine
                    .add_cors_headers(request.headers(), response.headers_mut());
                return response;
            }
        }
        self.engine.handle(request, remote).await
    }

    /// The client file a request path asks for, when [`Config::serve_client`] is set and has it.
    fn client_file(&self, path: &str) -> Option<(&Arc<ClientFiles>, &'static str)> {
        let files = self.inner.config.serve_client.as_ref()?;
        let name = files.file_for(&self.inner.config.engine.path, path)?;
        Some((files, name))
    }

    /// Accepts connections on `listener` and serves Socket.IO on its path (404 elsewhere).
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        engineio::serve_fn(listener, move |request, remote| {
            let io = self.clone();
            async move {
                if io.handles_path(request.uri().path()) {
                    io.handle(request, remote).await
                } else {
                    let mut response = Response::new(Body::default());
                    *response.status_mut() = http::StatusCode::NOT_FOUND;
                    response
                }
            }
        })
        .await
    }

    /// Disconnects every socket (`server shutting down`) and closes every connection.
    pub fn shutdown(&self) {
        self.engine.shutdown();
    }
}
