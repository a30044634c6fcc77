//! Namespaces: static ones by name, dynamic ones created on first connect.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::adapter::{AckResponses, Adapter, BoxFuture, BroadcastOptions, Room, RoomEvent};
use crate::data::Data;
use crate::operators::BroadcastOperator;
use crate::packet::Packet;
use crate::recovery::RecoveryStore;
use crate::server::{Config, ServerInner};
use crate::socket::{lock, read, write, AckError, EmitError, Socket};

/// A connect middleware's refusal: the client gets `connect_error` with this message and data.
///
/// ```
/// let refusal = socketio::ConnectError::new("not authorized").with_data(serde_json::json!({"reason": "bad token"}));
/// assert_eq!(refusal.to_string(), "not authorized");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectError {
    /// The `message` the client sees.
    pub message: String,
    /// Optional `data` the client sees.
    pub data: Option<Value>,
}

impl ConnectError {
    /// A refusal with a message.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    /// Adds `data` to the refusal.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

pub(crate) type Middleware =
    Arc<dyn Fn(Socket) -> BoxFuture<'static, Result<(), ConnectError>> + Send + Sync>;
pub(crate) type ConnectionHandler = Arc<dyn Fn(Socket) -> BoxFuture<'static, ()> + Send + Sync>;

/// A CONNECT under way to a child namespace that is removed once unused: while it lives, the child
/// stays; when the last one ends without a socket (a refusal), the child goes.
pub(crate) struct Connecting(Option<Arc<NamespaceInner>>);

impl Drop for Connecting {
    fn drop(&mut self) {
        if let Some(nsp) = self.0.take() {
            nsp.connecting.fetch_sub(1, Ordering::AcqRel);
            nsp.clean_up_if_unused();
        }
    }
}

/// Middlewares and connection handlers: a namespace's own, or a dynamic namespace's (which its
/// children run before their own).
#[derive(Default)]
pub(crate) struct Handlers {
    pub(crate) middlewares: RwLock<Vec<Middleware>>,
    pub(crate) connection: RwLock<Vec<ConnectionHandler>>,
}

impl Handlers {
    fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        write(&self.middlewares).push(Arc::new(move |s| Box::pin(middleware(s))));
    }

    fn on_connection<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        write(&self.connection).push(Arc::new(move |s| Box::pin(handler(s))));
    }
}

/// A listener of room changes.
pub(crate) type RoomListener = Arc<dyn Fn(&RoomEvent) + Send + Sync>;

/// Room events queued in the order of the changes, and whether a thread is delivering them.
#[derive(Default)]
struct RoomEventQueue {
    events: VecDeque<RoomEvent>,
    delivering: bool,
}

/// Holds room events back while alive (see [`NamespaceInner::hold_room_events`]); delivers them
/// when dropped.
pub(crate) struct RoomEventHold(Option<Arc<NamespaceInner>>);

impl Drop for RoomEventHold {
    fn drop(&mut self) {
        if let Some(nsp) = self.0.take() {
            nsp.drain_room_events();
        }
    }
}

/// The state of one namespace.
pub struct NamespaceInner {
    pub(crate) name: String,
    /// What was registered on this namespace itself.
    handlers: Handlers,
    /// For a child of a dynamic namespace: the parent's, run first (as the official server
    /// copies them into each child).
    parent: Option<Arc<Handlers>>,
    pub(crate) sockets: RwLock<foldhash::HashMap<String, Socket>>,
    pub(crate) adapter: Arc<dyn Adapter>,
    ack_ids: AtomicU64,
    /// How many sockets of this namespace have outgoing listeners: while none has, a broadcast
    /// never looks at its targets one socket at a time.
    pub(crate) outgoing_listeners: AtomicUsize,
    /// Listeners of room changes (`Namespace::on_room_event`).
    room_listeners: RwLock<Vec<RoomListener>>,
    /// Room events on their way to the listeners.
    room_events: Mutex<RoomEventQueue>,
    /// Kept sessions and packets, when connection state recovery is on.
    pub(crate) recovery: Option<Mutex<RecoveryStore>>,
    /// For a child of a dynamic namespace with `cleanup_empty_child_namespaces` on: the server
    /// whose table it leaves once its last socket has left.
    cleanup: Option<Weak<ServerInner>>,
    /// CONNECTs between this namespace's lookup and their socket's registration or refusal: a
    /// child is not removed under them.
    connecting: AtomicUsize,
}

impl NamespaceInner {
    /// A namespace; for a child of a dynamic namespace, `parent` holds its handlers and
    /// `cleanup` the server to leave once empty.
    pub(crate) fn new(
        name: String,
        parent: Option<Arc<Handlers>>,
        config: &Config,
        cleanup: Option<Weak<ServerInner>>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|weak| NamespaceInner {
            name,
            handlers: Handlers::default(),
            parent,
            sockets: RwLock::new(foldhash::HashMap::default()),
            adapter: (config.adapter)(weak.clone()),
            ack_ids: AtomicU64::new(0),
            outgoing_listeners: AtomicUsize::new(0),
            room_listeners: RwLock::new(Vec::new()),
            room_events: Mutex::new(RoomEventQueue::default()),
            recovery: config
                .connection_state_recovery
                .clone()
                .map(|settings| Mutex::new(RecoveryStore::new(settings, Instant::now()))),
            cleanup,
            connecting: AtomicUsize::new(0),
        })
    }

    /// The connect middlewares, in the order they run: a parent's first.
    pub(crate) fn middlewares(&self) -> Vec<Middleware> {
        self.layers()
            .flat_map(|handlers| read(&handlers.middlewares).clone())
            .collect()
    }

    /// The connection handlers, in the order they run: a parent's first.
    pub(crate) fn connection_handlers(&self) -> Vec<ConnectionHandler> {
        self.layers()
            .flat_map(|handlers| read(&handlers.connection).clone())
            .collect()
    }

    fn layers(&self) -> impl Iterator<Item = &Handlers> {
        self.parent.as_deref().into_iter().chain([&self.handlers])
    }

    /// Notes a CONNECT to this namespace until the returned guard is dropped. Called under the
    /// server's table lock, so that a removal (under the same lock) sees it.
    pub(crate) fn connecting(self: &Arc<Self>) -> Connecting {
        if self.cleanup.is_none() {
            return Connecting(None);
        }
        self.connecting.fetch_add(1, Ordering::AcqRel);
        Connecting(Some(self.clone()))
    }

    /// Whether a child may leave the server's table: no socket, no CONNECT under way.
    pub(crate) fn is_unused(&self) -> bool {
        self.connecting.load(Ordering::Acquire) == 0 && read(&self.sockets).is_empty()
    }

    /// Removes an unused child from its server's table (`cleanup_empty_child_namespaces`).
    fn clean_up_if_unused(&self) {
        if let Some(server) = self.cleanup.as_ref().and_then(Weak::upgrade) {
            if self.is_unused() {
                server.forget_child(self);
            }
        }
    }

    /// Sends a packet to the sockets `opts` targets. With connection state recovery on, an event
    /// without acknowledgement that is not volatile gets its offset and is kept; the store stays
    /// locked while it goes out, so every socket sees the offsets in order.
    pub(crate) fn broadcast(&self, mut packet: Packet, opts: &BroadcastOptions) {
        match &self.recovery {
            Some(store) if RecoveryStore::keeps(&packet, opts.volatile) => {
                let mut store = lock(store);
                match store.stamp(&mut packet, &opts.rooms, &opts.except, Instant::now()) {
                    Some(frames) => self.adapter.broadcast_encoded(&packet, &frames, opts),
                    None => self.adapter.broadcast(&packet, opts),
                }
            }
            _ => self.adapter.broadcast(&packet, opts),
        }
    }

    /// Whether room events are wanted (the adapter records them only then).
    pub(crate) fn records_room_events(&self) -> bool {
        !read(&self.room_listeners).is_empty()
    }

    /// Queues room events; the adapter calls it under its own lock, so that the queue has them in
    /// the order of the changes.
    pub(crate) fn queue_room_events(&self, events: Vec<RoomEvent>) {
        lock(&self.room_events).events.extend(events);
    }

    /// Delivers the queued room events, unless a thread is already at it (it delivers these
    /// too) or this one holds them back ([`hold_room_events`](Self::hold_room_events)).
    pub(crate) fn deliver_room_events(&self) {
        {
            let mut queue = lock(&self.room_events);
            if queue.delivering || queue.events.is_empty() {
                return;
            }
            queue.delivering = true;
        }
        self.drain_room_events();
    }

    /// Keeps room events queued until the returned guard drops, for a caller that holds a lock a
    /// listener might need.
    pub(crate) fn hold_room_events(self: &Arc<Self>) -> RoomEventHold {
        let mut queue = lock(&self.room_events);
        if queue.delivering {
            // Another thread delivers; it will deliver ours too, never on this thread.
            return RoomEventHold(None);
        }
        queue.delivering = true;
        RoomEventHold(Some(self.clone()))
    }

    /// Calls the listeners with each queued event, one at a time, until the queue is empty; the
    /// caller has set `delivering`, which is cleared under the same lock that finds it empty, so
    /// an event queued meanwhile is never left behind.
    fn drain_room_events(&self) {
        loop {
            let event = {
                let mut queue = lock(&self.room_events);
                match queue.events.pop_front() {
                    Some(event) => event,
                    None => {
                        queue.delivering = false;
                        return;
                    }
                }
            };
            let listeners: Vec<RoomListener> = read(&self.room_listeners).clone();
            for listener in listeners {
                // A panicking listener must not stop the deliveries of this namespace.
                if std::panic::catch_unwind(AssertUnwindSafe(|| listener(&event))).is_err() {
                    tracing::error!(nsp = %self.name, ?event, "a room listener panicked");
                }
            }
        }
    }

    /// A fresh ack id: one counter per namespace, so a broadcast can use one id for every socket.
    pub(crate) fn next_ack_id(&self) -> u64 {
        self.ack_ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn remove_socket(&self, sid: &str) {
        {
            let mut sockets = write(&self.sockets);
            sockets.remove(sid);
            crate::compact::shrink_sparse(&mut sockets);
        }
        self.clean_up_if_unused();
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local socket with this id.
    pub fn socket(&self, sid: &str) -> Option<Socket> {
        read(&self.sockets).get(sid).cloned()
    }

    /// Every local socket.
    pub fn sockets(&self) -> Vec<Socket> {
        read(&self.sockets).values().cloned().collect()
    }
}

/// A namespace: register middlewares and connection handlers, and broadcast to its sockets.
///
/// ```no_run
/// # fn demo(io: socketio::SocketIo) {
/// let admin = io.of("/admin");
/// admin.use_middleware(|socket| async move {
///     match socket.handshake().auth.get("token") {
///         Some(_) => Ok(()),
///         None => Err(socketio::ConnectError::new("not authorized")),
///     }
/// });
/// admin.on_connection(|socket| async move {
///     socket.join("admins");
/// });
/// admin.to("admins").emit("hello", &"everyone").ok();
/// # }
/// ```
#[derive(Clone)]
pub struct Namespace {
    pub(crate) inner: Arc<NamespaceInner>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.inner.name)
            .finish()
    }
}

impl Namespace {
    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Adds a connect middleware; middlewares run in the order they were added, and the first
    /// refusal ends the connect with a CONNECT_ERROR.
    pub fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.inner.handlers.use_middleware(middleware);
    }

    /// Adds a handler run for every socket that joins the namespace.
    pub fn on_connection<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner.handlers.on_connection(handler);
    }

    /// Adds a listener of this namespace's room changes on this server: the official in-memory
    /// adapter's `create-room`, `join-room`, `leave-room` and `delete-room` events, from
    /// [`LocalAdapter`](crate::LocalAdapter) (another adapter sends none). Events come in the
    /// order of the changes, one at a time, and never under a lock of the server's, so a
    /// listener may join, leave or disconnect sockets itself; a socket that leaves the namespace
    /// leaves its rooms in the order it joined them.
    ///
    /// ```no_run
    /// # fn demo(io: socketio::SocketIo) {
    /// use socketio::RoomEvent;
    /// io.of("/").on_room_event(|event| {
    ///     if let RoomEvent::Created(room) = event {
    ///         tracing::info!(room, "room created");
    ///     }
    /// });
    /// # }
    /// ```
    pub fn on_room_event<F>(&self, listener: F)
    where
        F: Fn(&RoomEvent) + Send + Sync + 'static,
    {
        write(&self.inner.room_listeners).push(Arc::new(listener));
    }

    /// The local sockets of the namespace.
    pub fn sockets(&self) -> Vec<Socket> {
        self.inner.sockets()
    }

    /// The local socket with this id.
    pub fn socket(&self, sid: &str) -> Option<Socket> {
        self.inner.socket(sid)
    }

    /// Targets every socket of the namespace.
    pub fn to_all(&self) -> BroadcastOperator {
        self.all()
    }

    fn all(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.inner.clone(), Default::default())
    }

    /// Targets the sockets in `room`.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.all().to(room)
    }

    /// Same as [`to`](Self::to).
    pub fn within(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.to(room)
    }

    /// Targets every socket except those in `room`.
    pub fn except(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.all().except(room)
    }

    /// Targets the sockets of this server only.
    pub fn local(&self) -> BroadcastOperator {
        self.all().local()
    }

    /// Drops packets for sockets that cannot take them now.
    pub fn volatile(&self) -> BroadcastOperator {
        self.all().volatile()
    }

    /// Sets the compress flag (see [`BroadcastOptions::compress`]).
    pub fn compress(&self, compress: bool) -> BroadcastOperator {
        self.all().compress(compress)
    }

    /// Sets the timeout of a following [`BroadcastOperator::emit_with_ack`].
    pub fn timeout(&self, timeout: Duration) -> BroadcastOperator {
        self.all().timeout(timeout)
    }

    /// Sends an event to every socket of the namespace.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<(), EmitError> {
        self.all().emit(event, args)
    }

    /// Sends an event to every socket and collects their acknowledgements.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<AckResponses, AckError> {
        self.all().emit_with_ack(event, args).await
    }

    /// The sockets of the namespace, across the cluster.
    pub async fn fetch_sockets(&self) -> Vec<Socket> {
        self.all().fetch_sockets().await
    }

    /// Makes every socket join rooms.
    pub async fn sockets_join(&self, rooms: Vec<Room>) {
        self.all().sockets_join(rooms).await
    }

    /// Makes every socket leave rooms.
    pub async fn sockets_leave(&self, rooms: Vec<Room>) {
        self.all().sockets_leave(rooms).await
    }

    /// Disconnects every socket (closing their connections with `close`).
    pub async fn disconnect_sockets(&self, close: bool) {
        self.all().disconnect_sockets(close).await
    }

    /// Sends an event to the other servers of the cluster. `connect`, `connection` and
    /// `new_namespace` are refused with [`EmitError::ReservedEvent`], as the official server
    /// throws for them.
    pub async fn server_side_emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<(), EmitError> {
        // The official namespace's own event names.
        if matches!(event, "connect" | "connection" | "new_namespace") {
            return Err(EmitError::ReservedEvent(event.to_owned()));
        }
        let data = Data::from_serialize(args)?;
        self.inner
            .adapter
            .server_side_emit(event.to_owned(), data)
            .await;
        Ok(())
    }
}

/// A family of namespaces created on first connect when their name matches; its middlewares and
/// handlers apply to every child.
#[derive(Clone)]
pub struct DynamicNamespace {
    pub(crate) handlers: Arc<Handlers>,
}

impl std::fmt::Debug for DynamicNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicNamespace").finish()
    }
}

impl DynamicNamespace {
    /// Adds a connect middleware to every child namespace.
    pub fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.handlers.use_middleware(middleware);
    }

    /// Adds a connection handler to every child namespace.
    pub fn on_connection<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.handlers.on_connection(handler);
    }
}
