//! A socket: one client connected to one namespace.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use engineio::Frame;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::adapter::{encode_frames, BoxFuture, BroadcastOptions, Room};
use crate::client::Client;
use crate::data::Data;
use crate::handshake::Handshake;
use crate::namespace::NamespaceInner;
use crate::operators::BroadcastOperator;
use crate::packet::{is_reserved_event, DecodeError, Packet, PacketType};
use crate::recovery::PersistedSession;

/// Why a socket left its namespace, with the official server's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client closed the connection.
    TransportClose,
    /// The connection failed.
    TransportError,
    /// The client stopped answering pings.
    PingTimeout,
    /// The client sent something undecodable.
    ParseError,
    /// The server closed the whole connection.
    ForcedClose,
    /// The server is shutting down.
    ServerShuttingDown,
    /// The client left the namespace (`socket.disconnect()` on the client).
    ClientNamespaceDisconnect,
    /// The server removed the socket from the namespace (`socket.disconnect()` on the server).
    ServerNamespaceDisconnect,
}

impl DisconnectReason {
    /// The reason as the official server names it.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ForcedClose => "forced close",
            DisconnectReason::ServerShuttingDown => "server shutting down",
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
        }
    }

    /// Whether a socket that left for this reason is kept for connection state recovery: the
    /// connection was lost or closed under it, rather than left on purpose by either side.
    pub(crate) fn is_recoverable(self) -> bool {
        matches!(
            self,
            DisconnectReason::TransportClose
                | DisconnectReason::TransportError
                | DisconnectReason::PingTimeout
                | DisconnectReason::ForcedClose
                | DisconnectReason::ServerShuttingDown
        )
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<engineio::CloseReason> for DisconnectReason {
    fn from(reason: engineio::CloseReason) -> Self {
        match reason {
            engineio::CloseReason::TransportClose => DisconnectReason::TransportClose,
            engineio::CloseReason::PingTimeout => DisconnectReason::PingTimeout,
            engineio::CloseReason::ParseError => DisconnectReason::ParseError,
            engineio::CloseReason::ForcedClose => DisconnectReason::ForcedClose,
            engineio::CloseReason::ServerShuttingDown => DisconnectReason::ServerShuttingDown,
            _ => DisconnectReason::TransportError,
        }
    }
}

/// Why an emit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The socket is disconnected.
    #[error("the socket is disconnected")]
    Disconnected,
    /// The event name is one of the lifecycle events a client reserves for itself (`connect`,
    /// `connect_error`, `disconnect`, `disconnecting`, `newListener`, `removeListener`), or for
    /// a server-side emit one of a namespace's own (`connect`, `connection`, `new_namespace`);
    /// the official server throws for these as well.
    #[error("\"{0}\" is a reserved event name")]
    ReservedEvent(String),
    /// The arguments could not be serialized to JSON.
    #[error("arguments are not serializable: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Why an acknowledgement did not come.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// No answer within the timeout (the official message: `operation has timed out`).
    #[error("operation has timed out")]
    Timeout,
    /// The socket disconnected before answering.
    #[error("the socket disconnected before answering")]
    Disconnected,
    /// Too many acknowledgements are already awaited from this socket (`max_pending_acks`).
    #[error("too many acknowledgements pending for this socket")]
    TooManyPending,
    /// The event name is reserved (see [`EmitError::ReservedEvent`]).
    #[error("\"{0}\" is a reserved event name")]
    ReservedEvent(String),
    /// The arguments could not be serialized to JSON.
    #[error("arguments are not serializable: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// An incoming event as the socket's packet middlewares see it (the official `[event, ...args]`
/// of `socket.use`). A middleware may change both parts: the handler run is the one of the name
/// the last middleware hands on.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// The arguments (without the client's ack, which is answered by the handler).
    pub data: Data,
}

/// A packet middleware's refusal of an event: the event reaches no handler, its acknowledgement
/// is never sent, and the socket's [`on_error`](Socket::on_error) handlers see
/// [`SocketError::Middleware`] (the official `next(new Error(message))`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MiddlewareError {
    message: String,
}

impl MiddlewareError {
    /// A refusal with this message.
    pub fn new(message: impl Into<String>) -> Self {
        MiddlewareError {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// What a socket's [`on_error`](Socket::on_error) handlers see: the official server's `error`
/// event on a socket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// A packet middleware refused an event.
    #[error("{0}")]
    Middleware(#[from] MiddlewareError),
    /// The client sent something that is not a Socket.IO packet; the connection (and so this
    /// socket) is closed right after. Its message is the parser's, as the official error's.
    #[error("{0}")]
    InvalidPacket(#[from] DecodeError),
}

impl From<EmitError> for AckError {
    fn from(err: EmitError) -> Self {
        match err {
            EmitError::Disconnected => AckError::Disconnected,
            EmitError::ReservedEvent(name) => AckError::ReservedEvent(name),
            EmitError::Serialize(err) => AckError::Serialize(err),
        }
    }
}

type EventHandler =
    Arc<dyn Fn(Socket, Data, Option<AckSender>) -> BoxFuture<'static, ()> + Send + Sync>;
type AnyHandler = Arc<dyn Fn(Socket, String, Data) -> BoxFuture<'static, ()> + Send + Sync>;

type PacketMiddleware =
    Arc<dyn Fn(Socket, Event) -> BoxFuture<'static, Result<Event, MiddlewareError>> + Send + Sync>;
type ErrorHandler = Arc<dyn Fn(Socket, SocketError) -> BoxFuture<'static, ()> + Send + Sync>;
type DisconnectHandler =
    Arc<dyn Fn(Socket, DisconnectReason) -> BoxFuture<'static, ()> + Send + Sync>;

/// Everything registered on one socket, under one lock: it is read once per event and written
/// rarely, and one lock instead of one per kind keeps each socket's allocation a size class
/// smaller.
#[derive(Default)]
struct Listeners {
    events: foldhash::HashMap<String, EventHandler>,
    any: Vec<AnyHandler>,
    outgoing: Vec<AnyHandler>,
    /// Whether the socket counts in its namespace's `outgoing_listeners` (from when it is
    /// connected with an outgoing listener until it leaves).
    outgoing_counted: bool,
    packet_middlewares: Vec<PacketMiddleware>,
    error: Vec<ErrorHandler>,
    disconnecting: Vec<DisconnectHandler>,
    disconnect: Vec<DisconnectHandler>,
}

pub(crate) enum AckSlot {
    Single(oneshot::Sender<Data>),
    Broadcast(mpsc::UnboundedSender<(String, Data)>),
}

pub(crate) struct SocketInner {
    pub(crate) id: String,
    pub(crate) nsp: Arc<NamespaceInner>,
    pub(crate) client: Arc<Client>,
    pub(crate) handshake: Handshake,
    listeners: RwLock<Listeners>,
    acks: Mutex<foldhash::HashMap<u64, AckSlot>>,
    connected: AtomicBool,
    extensions: Mutex<http::Extensions>,
    /// The private session id, with connection state recovery on.
    pub(crate) pid: Option<Box<str>>,
    recovered: bool,
}

/// One client in one namespace. Cheap to clone; every clone is the same socket.
///
/// ```no_run
/// # fn demo(socket: socketio::Socket) {
/// socket.on("chat", |socket, data, ack| async move {
///     let text: String = data.arg(0).unwrap_or_default();
///     socket.to("lobby").emit("chat", &(socket.id(), text)).ok();
///     if let Some(ack) = ack {
///         ack.send(&"delivered").ok();
///     }
/// });
/// # }
/// ```
#[derive(Clone)]
pub struct Socket {
    pub(crate) inner: Arc<SocketInner>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.inner.id)
            .field("nsp", &self.inner.nsp.name)
            .finish()
    }
}

impl Socket {
    pub(crate) fn new(
        id: String,
        nsp: Arc<NamespaceInner>,
        client: Arc<Client>,
        handshake: Handshake,
        recovery: Recovery,
    ) -> Socket {
        let (pid, recovered, extensions) = match recovery {
            Recovery::Off => (None, false, http::Extensions::new()),
            Recovery::New(pid) => (Some(pid.into()), false, http::Extensions::new()),
            Recovery::Restored { pid, extensions } => (Some(pid.into()), true, extensions),
        };
        Socket {
            inner: Arc::new(SocketInner {
                id,
                nsp,
                client,
                handshake,
                listeners: RwLock::new(Listeners::default()),
                acks: Mutex::new(foldhash::HashMap::default()),
                connected: AtomicBool::new(false),
                extensions: Mutex::new(extensions),
                pid,
                recovered,
            }),
        }
    }

    /// The socket id (also the name of its own room). Never the Engine.IO session id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The namespace name.
    pub fn ns(&self) -> &str {
        &self.inner.nsp.name
    }

    /// The handshake: headers, query, auth, address, time.
    pub fn handshake(&self) -> &Handshake {
        &self.inner.handshake
    }

    /// Whether this socket is one that had lost its connection and was brought back by connection
    /// state recovery: same id, rooms and extensions, and the packets it missed were sent again.
    pub fn recovered(&self) -> bool {
        self.inner.recovered
    }

    /// Whether the socket is still in its namespace.
    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// The transport the connection uses now.
    pub fn transport(&self) -> engineio::TransportKind {
        self.inner.client.engine.transport()
    }

    /// Registers the handler of an event. Handlers of one socket start in the order the events
    /// arrived; an `ack` is present when the client asked for an acknowledgement.
    pub fn on<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Socket, Data, Option<AckSender>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: EventHandler = Arc::new(move |s, d, a| Box::pin(handler(s, d, a)));
        write(&self.inner.listeners)
            .events
            .insert(event.into(), handler);
    }

    /// Registers a handler that sees every incoming event, before the event's own handler.
    pub fn on_any<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, String, Data) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        write(&self.inner.listeners)
            .any
            .push(Arc::new(move |s, e, d| Box::pin(handler(s, e, d))));
    }

    /// Removes the handler of an event (the official `socket.off(event)` /
    /// `removeAllListeners(event)`); its events then reach only the catch-all handlers.
    pub fn off(&self, event: &str) {
        write(&self.inner.listeners).events.remove(event);
    }

    /// Removes every catch-all handler (the official `socket.offAny()`).
    pub fn off_any(&self) {
        write(&self.inner.listeners).any.clear();
    }

    /// Removes every outgoing handler (the official `socket.offAnyOutgoing()`).
    pub fn off_any_outgoing(&self) {
        let mut listeners = write(&self.inner.listeners);
        listeners.outgoing.clear();
        self.uncount_outgoing(&mut listeners);
    }

    /// Registers a handler that sees every event sent to this client (the official
    /// `socket.onAnyOutgoing`): its own emits and the broadcasts that reach it, volatile ones
    /// included, with the arguments as sent (and the offset appended by connection state
    /// recovery). Acknowledgement answers are not events and are not seen. Broadcasts are seen
    /// through [`LocalAdapter`](crate::LocalAdapter); another adapter delivers them without it.
    /// With connection state recovery on, the handler runs on a task of its own (the packet goes
    /// out under the recovery store's lock, which an emit from the handler needs).
    ///
    /// ```no_run
    /// # fn demo(socket: socketio::Socket) {
    /// socket.on_any_outgoing(|socket, event, _data| async move {
    ///     tracing::debug!(sid = socket.id(), event, "sent");
    /// });
    /// # }
    /// ```
    pub fn on_any_outgoing<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, String, Data) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut listeners = write(&self.inner.listeners);
        listeners
            .outgoing
            .push(Arc::new(move |s, e, d| Box::pin(handler(s, e, d))));
        self.count_outgoing(&mut listeners);
    }

    /// Counts this socket in its namespace's `outgoing_listeners` once it is connected with a
    /// listener. Called under the listeners' lock, as [`uncount_outgoing`](Self::uncount_outgoing),
    /// so a socket is counted at most once and never after it has left.
    fn count_outgoing(&self, listeners: &mut Listeners) {
        if !listeners.outgoing_counted && !listeners.outgoing.is_empty() && self.connected() {
            listeners.outgoing_counted = true;
            self.inner
                .nsp
                .outgoing_listeners
                .fetch_add(1, Ordering::AcqRel);
        }
    }

    fn uncount_outgoing(&self, listeners: &mut Listeners) {
        if listeners.outgoing_counted {
            listeners.outgoing_counted = false;
            self.inner
                .nsp
                .outgoing_listeners
                .fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Runs the outgoing listeners with the event `packet` carries.
    pub(crate) fn notify_outgoing(&self, packet: &Packet) {
        // No socket of the namespace listens (the common case): no lock taken.
        if self.inner.nsp.outgoing_listeners.load(Ordering::Acquire) == 0 {
            return;
        }
        let handlers: Vec<AnyHandler> = read(&self.inner.listeners).outgoing.clone();
        if handlers.is_empty() {
            return;
        }
        let Some(Value::Array(args)) = &packet.data else {
            return;
        };
        let Some((name, rest)) = args.split_first() else {
            return;
        };
        let name = match name {
            Value::String(name) => name.clone(),
            other => other.to_string(),
        };
        let data = Data::new(rest.to_vec(), packet.attachments.clone());
        for handler in handlers {
            let call = handler(self.clone(), name.clone(), data.clone());
            if self.inner.nsp.recovery.is_some() {
                // Called with the recovery store locked (`NamespaceInner::broadcast`), which an
                // emit from the handler needs: it must not start on this thread now.
                self.inner.client.runtime.spawn(call);
            } else {
                self.run_handler(call);
            }
        }
    }

    /// Adds a packet middleware (the official `socket.use`): every incoming event goes through the
    /// middlewares in the order they were added, after the [`on_any`](Self::on_any) handlers and
    /// before its own handler. Each hands the event on, changed or not, or refuses it with a
    /// [`MiddlewareError`]: the event then reaches no handler, the client's acknowledgement is
    /// never sent, and the [`on_error`](Self::on_error) handlers run.
    ///
    /// ```no_run
    /// # fn demo(socket: socketio::Socket) {
    /// use socketio::MiddlewareError;
    /// socket.use_middleware(|socket, event| async move {
    ///     if event.name.starts_with("admin:") && socket.extension::<bool>() != Some(true) {
    ///         return Err(MiddlewareError::new("unauthorized event"));
    ///     }
    ///     Ok(event)
    /// });
    /// socket.on_error(|socket, err| async move {
    ///     tracing::info!(sid = socket.id(), %err, "event refused");
    ///     socket.disconnect();
    /// });
    /// # }
    /// ```
    pub fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Event, MiddlewareError>> + Send + 'static,
    {
        write(&self.inner.listeners)
            .packet_middlewares
            .push(Arc::new(move |s, e| Box::pin(middleware(s, e))));
    }

    /// Registers a handler of the socket's errors (the official `socket.on("error")`): an event
    /// a packet middleware refused, or an invalid packet just before the connection closes.
    /// Without one, a refused event is logged. An event the client itself names `error` goes to
    /// [`on`](Self::on)`("error", …)` handlers, not here (the official server hands it to its
    /// `error` listeners as well).
    pub fn on_error<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, SocketError) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        write(&self.inner.listeners)
            .error
            .push(Arc::new(move |s, e| Box::pin(handler(s, e))));
    }

    /// Runs the `on_error` handlers with `error`; false when there is none.
    pub(crate) fn report_error(&self, error: SocketError) -> bool {
        let handlers: Vec<ErrorHandler> = read(&self.inner.listeners).error.clone();
        for handler in &handlers {
            self.run_handler(handler(self.clone(), error.clone()));
        }
        !handlers.is_empty()
    }

    /// Registers a handler run when the socket is about to leave (its rooms are still readable).
    pub fn on_disconnecting<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        write(&self.inner.listeners)
            .disconnecting
            .push(Arc::new(move |s, r| Box::pin(handler(s, r))));
    }

    /// Registers a handler run once the socket has left its namespace.
    pub fn on_disconnect<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        write(&self.inner.listeners)
            .disconnect
            .push(Arc::new(move |s, r| Box::pin(handler(s, r))));
    }

    /// Sends an event to this client. See [`Data::from_serialize`] for how `args` become arguments.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<(), EmitError> {
        self.emit_data(event, Data::from_serialize(args)?)
    }

    /// Sends an event with prepared arguments.
    ///
    /// With connection state recovery on, the event is kept (as the official server does) even
    /// when the socket has just lost its connection: it is sent again if the client comes back.
    pub fn emit_data(&self, event: &str, data: Data) -> Result<(), EmitError> {
        self.send_event(
            event_packet(&self.inner.nsp.name, event, data, None)?,
            EmitFlags::default(),
        )
    }

    /// Sends an event packet (with an ack id or not) to this client. With connection state
    /// recovery on, it goes out as the official server sends it: through the adapter, to the room
    /// named by this socket's id (the event without ack id is then kept for a reconnection).
    /// Volatile, it is dropped when the connection cannot take it now.
    fn send_event(&self, packet: Packet, flags: EmitFlags) -> Result<(), EmitError> {
        if self.inner.nsp.recovery.is_some() {
            let own_room = BroadcastOptions {
                rooms: vec![self.inner.id.clone()],
                volatile: flags.volatile,
                compress: flags.compress,
                ..BroadcastOptions::default()
            };
            self.inner.nsp.broadcast(packet, &own_room);
            return Ok(());
        }
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        self.notify_outgoing(&packet);
        let engine = &self.inner.client.engine;
        if flags.volatile && !engine.is_writable() {
            return Ok(());
        }
        if self.send_frames_with(encode_frames(&packet), flags.compress) {
            Ok(())
        } else {
            Err(EmitError::Disconnected)
        }
    }

    /// Sends an event and waits for the client's acknowledgement, at most `timeout`.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        timeout: Duration,
    ) -> Result<Data, AckError> {
        self.emit_with_ack_data(event, Data::from_serialize(args)?, timeout)
            .await
    }

    /// Like [`emit_with_ack`](Self::emit_with_ack), with prepared arguments.
    pub async fn emit_with_ack_data(
        &self,
        event: &str,
        data: Data,
        timeout: Duration,
    ) -> Result<Data, AckError> {
        self.ask(event, data, timeout, EmitFlags::default()).await
    }

    async fn ask(
        &self,
        event: &str,
        data: Data,
        timeout: Duration,
        flags: EmitFlags,
    ) -> Result<Data, AckError> {
        if !self.connected() {
            return Err(AckError::Disconnected);
        }
        let id = self.inner.nsp.next_ack_id();
        let packet = event_packet(&self.inner.nsp.name, event, data, Some(id))?;
        let (tx, rx) = oneshot::channel();
        if !self.insert_ack(id, AckSlot::Single(tx)) {
            return Err(AckError::TooManyPending);
        }
        // However this call ends (answer, timeout, disconnect, or the caller dropping it), the slot
        // does not outlive it.
        struct Forget<'a>(&'a Socket, u64);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.forget_ack(self.1);
            }
        }
        let _forget = Forget(self, id);
        if self.send_event(packet, flags).is_err() {
            return Err(AckError::Disconnected);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(data)) => Ok(data),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => Err(AckError::Timeout),
        }
    }

    /// Joins a room.
    pub fn join(&self, room: impl Into<Room>) {
        self.inner
            .nsp
            .adapter
            .add_all(&self.inner.id, &[room.into()]);
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        self.inner.nsp.adapter.del(&self.inner.id, room);
    }

    /// The rooms this socket is in, in the order it joined them: its own id room first, as the
    /// official `socket.rooms`.
    pub fn rooms(&self) -> Vec<Room> {
        self.inner.nsp.adapter.socket_rooms(&self.inner.id)
    }

    /// Targets the sockets in `room`, except this one.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.broadcast().to(room)
    }

    /// Same as [`to`](Self::to).
    pub fn within(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.to(room)
    }

    /// Targets every socket of the namespace except this one and those in `room`.
    pub fn except(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.broadcast().except(room)
    }

    /// Targets every other socket of the namespace.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(
            self.inner.nsp.clone(),
            BroadcastOptions {
                except: vec![self.inner.id.clone()],
                ..BroadcastOptions::default()
            },
        )
    }

    /// A view of this socket that drops packets the client cannot take now (a connection in the
    /// middle of an upgrade, a poll not waiting).
    ///
    /// ```no_run
    /// # fn demo(socket: socketio::Socket) {
    /// socket.volatile().emit("position", &(12, 34)).ok();
    /// # }
    /// ```
    pub fn volatile(&self) -> FlaggedSocket {
        FlaggedSocket {
            socket: self.clone(),
            flags: EmitFlags::default(),
        }
        .volatile()
    }

    /// A view of this socket whose packets carry the official `compress` flag: with `false`
    /// they never leave compressed (see [`BroadcastOptions::compress`]).
    ///
    /// ```no_run
    /// # fn demo(socket: socketio::Socket, thumbnail: Vec<u8>) {
    /// // Already compressed bytes gain nothing from WebSocket compression.
    /// socket.compress(false).emit("thumbnail", &thumbnail).ok();
    /// # }
    /// ```
    pub fn compress(&self, compress: bool) -> FlaggedSocket {
        FlaggedSocket {
            socket: self.clone(),
            flags: EmitFlags::default(),
        }
        .compress(compress)
    }

    /// Stores a value of type `T` on the socket (one per type).
    pub fn set_extension<T: Clone + Send + Sync + 'static>(&self, value: T) {
        lock(&self.inner.extensions).insert(value);
    }

    /// The stored value of type `T`.
    pub fn extension<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        lock(&self.inner.extensions).get::<T>().cloned()
    }

    /// Removes the socket from its namespace: the client gets a DISCONNECT packet and sees
    /// `io server disconnect`; the connection and its other namespaces stay.
    pub fn disconnect(&self) {
        self.disconnect_reason(DisconnectReason::ServerNamespaceDisconnect);
    }

    /// Disconnects every namespace of this connection and closes it.
    pub fn disconnect_connection(&self) {
        self.inner.client.disconnect_all();
    }

    pub(crate) fn disconnect_reason(&self, reason: DisconnectReason) {
        if !self.connected() {
            return;
        }
        let packet = Packet::new(PacketType::Disconnect, &self.inner.nsp.name, None);
        self.send_frames(encode_frames(&packet));
        self.inner.client.left_by_server(&self.inner.nsp.name);
        self.on_close(reason);
    }

    /// Queues frames for the client; false when the connection is closed.
    pub(crate) fn send_frames(&self, frames: impl IntoIterator<Item = Frame>) -> bool {
        self.send_frames_with(frames, true)
    }

    /// Queues frames for the client with the `compress` flag; false when the connection is closed.
    pub(crate) fn send_frames_with(
        &self,
        frames: impl IntoIterator<Item = Frame>,
        compress: bool,
    ) -> bool {
        self.inner
            .client
            .engine
            .send_frames_with(frames, compress)
            .is_ok()
    }

    pub(crate) fn register_broadcast_ack(
        &self,
        id: u64,
        tx: mpsc::UnboundedSender<(String, Data)>,
    ) -> bool {
        self.connected() && self.insert_ack(id, AckSlot::Broadcast(tx))
    }

    /// Records an awaited acknowledgement unless `max_pending_acks` are already awaited.
    fn insert_ack(&self, id: u64, slot: AckSlot) -> bool {
        let mut acks = lock(&self.inner.acks);
        if acks.len() >= self.inner.client.max_pending_acks() {
            tracing::warn!(sid = %self.inner.id, pending = acks.len(), "too many pending acknowledgements");
            return false;
        }
        acks.insert(id, slot);
        true
    }

    pub(crate) fn forget_ack(&self, id: u64) {
        lock(&self.inner.acks).remove(&id);
    }

    /// Marks the socket connected: from now on it leaves through [`on_close`](Self::on_close).
    pub(crate) fn mark_connected(&self) {
        self.inner.connected.store(true, Ordering::Release);
        // Listeners added before (by a connect middleware) count from now on.
        self.count_outgoing(&mut write(&self.inner.listeners));
    }

    /// Undoes [`mark_connected`](Self::mark_connected) for a socket whose connection closed
    /// before it was registered: it never leaves through `on_close`.
    pub(crate) fn abandon(&self) {
        self.inner.connected.store(false, Ordering::Release);
        self.uncount_outgoing(&mut write(&self.inner.listeners));
    }

    /// Starts the connection handlers.
    pub(crate) fn start(&self, on_connect: BoxFuture<'static, ()>) {
        self.run_handler(on_connect);
    }

    /// Starts a handler. It is polled here first, so a handler that finishes at once (the common
    /// case) costs no task; one that has to wait goes on on a task of its own (on the connection's
    /// runtime, whatever thread this is), whose first poll registers the wakers this one could not.
    /// Handlers of one socket thus start in the order their events arrived, and a slow one never
    /// holds back the next.
    fn run_handler(&self, mut handler: BoxFuture<'static, ()>) {
        let mut cx = Context::from_waker(Waker::noop());
        // A panicking handler must not take the connection's I/O task down with it.
        match std::panic::catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(&mut cx))) {
            Ok(Poll::Ready(())) => {}
            Ok(Poll::Pending) => {
                self.inner.client.runtime.spawn(handler);
            }
            Err(_) => tracing::error!(sid = %self.inner.id, "a handler panicked"),
        }
    }

    /// An EVENT or ACK packet from the client.
    pub(crate) fn on_packet(&self, packet: Packet) {
        match packet.kind {
            // A socket still running its `disconnecting` handlers takes no more events.
            PacketType::Event | PacketType::BinaryEvent if !self.connected() => {}
            PacketType::Event | PacketType::BinaryEvent => {
                if let Some(handler) = self.dispatch_event(packet) {
                    self.run_handler(handler);
                }
            }
            PacketType::Ack | PacketType::BinaryAck => {
                let Some(id) = packet.id else { return };
                let slot = lock(&self.inner.acks).remove(&id);
                // An ACK without payload answers with no arguments, as in the official server.
                let args = match packet.data {
                    Some(Value::Array(args)) => args,
                    _ => Vec::new(),
                };
                let data = Data::new(args, packet.attachments);
                match slot {
                    Some(AckSlot::Single(tx)) => {
                        let _ = tx.send(data);
                    }
                    Some(AckSlot::Broadcast(tx)) => {
                        // Each socket of a broadcast answers with its first argument.
                        let first =
                            Data::new(data.args.into_iter().take(1).collect(), data.attachments);
                        let _ = tx.send((self.inner.id.clone(), first));
                    }
                    None => tracing::debug!(sid = %self.inner.id, id, "ack for an unknown id"),
                }
            }
            _ => {}
        }
    }

    /// Leaves the namespace: `disconnecting` handlers, then rooms are left, then `disconnect`.
    pub(crate) fn on_close(&self, reason: DisconnectReason) {
        if !self.inner.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        tracing::debug!(sid = %self.inner.id, nsp = %self.inner.nsp.name, %reason, "socket disconnected");
        self.run_handler(Box::pin(self.clone().close_sequence(reason)));
    }

    fn cleanup(&self) {
        self.uncount_outgoing(&mut write(&self.inner.listeners));
        self.inner.nsp.adapter.del_all(&self.inner.id);
        self.inner.nsp.remove_socket(&self.inner.id);
        self.inner.client.remove_socket(self);
        // Waiting emit_with_ack calls see `Disconnected`.
        lock(&self.inner.acks).clear();
    }

    fn dispatch_event(&self, packet: Packet) -> Option<BoxFuture<'static, ()>> {
        let Some(Value::Array(mut args)) = packet.data else {
            return None;
        };
        if args.is_empty() {
            return None;
        }
        let name = match args.remove(0) {
            Value::String(name) => name,
            other => other.to_string(),
        };
        let data = Data::new(args, packet.attachments);
        let ack = packet.id.map(|id| AckSender {
            socket: self.clone(),
            id,
        });
        let (any, middlewares) = {
            let listeners = read(&self.inner.listeners);
            if listeners.any.is_empty() && listeners.packet_middlewares.is_empty() {
                let handler = listeners.events.get(&name).cloned();
                drop(listeners);
                return handler.map(|handler| handler(self.clone(), data, ack));
            }
            (listeners.any.clone(), listeners.packet_middlewares.clone())
        };
        Some(Box::pin(self.clone().through_middlewares(
            any,
            middlewares,
            Event { name, data },
            ack,
        )))
    }

    /// An event's way past catch-all listeners and packet middlewares, in the official order:
    /// catch-all listeners, then the middlewares one after the other, then the handler of the
    /// name they handed on (unless the socket has left meanwhile, as the official `dispatch`).
    async fn through_middlewares(
        self,
        any: Vec<AnyHandler>,
        middlewares: Vec<PacketMiddleware>,
        mut event: Event,
        ack: Option<AckSender>,
    ) {
        for h in any {
            h(self.clone(), event.name.clone(), event.data.clone()).await;
        }
        for middleware in middlewares {
            event = match middleware(self.clone(), event).await {
                Ok(event) => event,
                Err(err) => {
                    if !self.report_error(SocketError::Middleware(err.clone())) {
                        tracing::warn!(sid = %self.inner.id, %err, "event refused by a packet middleware, and the socket has no error handler");
                    }
                    return;
                }
            };
        }
        if !self.connected() {
            return;
        }
        let handler = read(&self.inner.listeners).events.get(&event.name).cloned();
        if let Some(handler) = handler {
            handler(self, event.data, ack).await;
        }
    }

    /// Keeps the socket for connection state recovery when it is on and the reason allows it.
    fn persist(&self, reason: DisconnectReason) {
        let (Some(store), Some(pid)) = (&self.inner.nsp.recovery, &self.inner.pid) else {
            return;
        };
        if !reason.is_recoverable() {
            return;
        }
        let session = PersistedSession {
            sid: self.inner.id.clone(),
            pid: pid.to_string(),
            rooms: self.rooms(),
            extensions: lock(&self.inner.extensions).clone(),
        };
        lock(store).persist(session, Instant::now());
    }

    async fn close_sequence(self, reason: DisconnectReason) {
        // The socket leaves its rooms and namespace even if a `disconnecting` handler panics.
        struct Cleanup(Socket);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                self.0.cleanup();
            }
        }
        let cleanup = Cleanup(self.clone());
        let disconnecting: Vec<_> = read(&self.inner.listeners).disconnecting.clone();
        for handler in disconnecting {
            handler(self.clone(), reason).await;
        }
        self.persist(reason);
        drop(cleanup);
        let disconnect: Vec<_> = read(&self.inner.listeners).disconnect.clone();
        for handler in disconnect {
            handler(self.clone(), reason).await;
        }
    }
}

/// The flags of one emit, as the official server's `socket.volatile` / `socket.compress(…)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EmitFlags {
    volatile: bool,
    compress: bool,
}

impl Default for EmitFlags {
    fn default() -> Self {
        EmitFlags {
            volatile: false,
            compress: true,
        }
    }
}

/// A socket whose emits carry flags: volatile (dropped when the connection cannot take them now)
/// and compress. Made by [`Socket::volatile`] and [`Socket::compress`]; the flags chain.
///
/// ```no_run
/// # fn demo(socket: socketio::Socket) {
/// socket.volatile().compress(false).emit("tick", &1).ok();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FlaggedSocket {
    socket: Socket,
    flags: EmitFlags,
}

impl FlaggedSocket {
    /// Makes the emits volatile.
    pub fn volatile(mut self) -> Self {
        self.flags.volatile = true;
        self
    }

    /// Sets the compress flag (see [`Socket::compress`]).
    pub fn compress(mut self, compress: bool) -> Self {
        self.flags.compress = compress;
        self
    }

    /// Sends an event to this client (unless volatile and its connection cannot take it now).
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<(), EmitError> {
        self.emit_data(event, Data::from_serialize(args)?)
    }

    /// Like [`emit`](Self::emit), with prepared arguments.
    pub fn emit_data(&self, event: &str, data: Data) -> Result<(), EmitError> {
        let packet = event_packet(self.socket.ns(), event, data, None)?;
        self.socket.send_event(packet, self.flags)
    }

    /// Sends an event (unless volatile and the connection cannot take it now) and waits for the
    /// client's acknowledgement, at most `timeout` (a dropped event times out).
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
        timeout: Duration,
    ) -> Result<Data, AckError> {
        self.emit_with_ack_data(event, Data::from_serialize(args)?, timeout)
            .await
    }

    /// Like [`emit_with_ack`](Self::emit_with_ack), with prepared arguments.
    pub async fn emit_with_ack_data(
        &self,
        event: &str,
        data: Data,
        timeout: Duration,
    ) -> Result<Data, AckError> {
        self.socket.ask(event, data, timeout, self.flags).await
    }

    /// Targets the sockets in `room` except this one, with these flags.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.flagged(self.socket.to(room))
    }

    /// Targets every other socket of the namespace, with these flags.
    pub fn broadcast(&self) -> BroadcastOperator {
        self.flagged(self.socket.broadcast())
    }

    fn flagged(&self, operator: BroadcastOperator) -> BroadcastOperator {
        let operator = operator.compress(self.flags.compress);
        if self.flags.volatile {
            operator.volatile()
        } else {
            operator
        }
    }
}

/// Answers one client acknowledgement; consumed by sending, so it answers at most once.
#[derive(Debug)]
pub struct AckSender {
    socket: Socket,
    id: u64,
}

impl AckSender {
    /// Answers with arguments (see [`Data::from_serialize`]).
    pub fn send<T: Serialize + ?Sized>(self, args: &T) -> Result<(), EmitError> {
        self.send_data(Data::from_serialize(args)?)
    }

    /// Answers with prepared arguments.
    pub fn send_data(self, data: Data) -> Result<(), EmitError> {
        let kind = if data.attachments.is_empty() {
            PacketType::Ack
        } else {
            PacketType::BinaryAck
        };
        let packet = Packet {
            kind,
            nsp: self.socket.inner.nsp.name.clone(),
            id: Some(self.id),
            data: Some(Value::Array(data.args)),
            attachments: data.attachments,
        };
        if self.socket.send_frames(encode_frames(&packet)) {
            Ok(())
        } else {
            Err(EmitError::Disconnected)
        }
    }
}

/// A new socket's part in connection state recovery.
pub(crate) enum Recovery {
    /// Recovery is off.
    Off,
    /// A new session with this private id.
    New(String),
    /// A kept session brought back.
    Restored {
        pid: String,
        extensions: http::Extensions,
    },
}

/// An EVENT (or BINARY_EVENT) packet for `event` with `data`, unless `event` is reserved.
pub(crate) fn event_packet(
    nsp: &str,
    event: &str,
    data: Data,
    id: Option<u64>,
) -> Result<Packet, EmitError> {
    if is_reserved_event(event) {
        return Err(EmitError::ReservedEvent(event.to_owned()));
    }
    let mut args = Vec::with_capacity(data.args.len() + 1);
    args.push(Value::String(event.to_owned()));
    args.extend(data.args);
    Ok(Packet {
        kind: if data.attachments.is_empty() {
            PacketType::Event
        } else {
            PacketType::BinaryEvent
        },
        nsp: nsp.to_owned(),
        id,
        data: Some(Value::Array(args)),
        attachments: data.attachments,
    })
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}
