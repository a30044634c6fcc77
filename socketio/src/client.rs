//! One Engine.IO connection seen by Socket.IO: it decodes packets and routes them to namespaces.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use engineio::{CloseReason, ConnectionHandler, Message};
use serde_json::{json, Value};

use crate::adapter::{encode_frames, Room};
use crate::handshake::Handshake;
use crate::namespace::{ConnectError, NamespaceInner};
use crate::packet::{BinaryCollector, Collected, Packet, PacketType};
use crate::recovery::{PersistedSession, RestoredSession};
use crate::server::ServerInner;
use crate::socket::{lock, DisconnectReason, Recovery, Socket, SocketError};

pub(crate) struct Client {
    pub(crate) engine: engineio::Socket,
    server: Weak<ServerInner>,
    me: Weak<Client>,
    /// The connection's sockets, one per namespace, in the order they connected: the official
    /// server disconnects them in that order when it closes the connection. A connection has a
    /// few (at most `max_namespaces_per_connection`): a vector searched by name costs less than a
    /// map, in time and in memory.
    sockets: Mutex<Vec<Socket>>,
    /// Namespaces whose socket the server disconnected (until they connect again): what the
    /// client sent them before it read the DISCONNECT is dropped rather than taken for a protocol
    /// violation, as the official server does with the packets that reach it in the same read.
    left_by_server: Mutex<Vec<String>>,
    collector: Mutex<BinaryCollector>,
    ever_connected: AtomicBool,
    max_attachments: usize,
    /// The connectTimeout timer, cancelled once a namespace is joined.
    connect_timer: Mutex<Option<tokio::task::AbortHandle>>,
    /// CONNECTs waiting for their namespace's middlewares.
    pending_connects: AtomicUsize,
    /// Where the handlers of this connection's sockets that have to wait run.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Client {
    pub(crate) fn new(engine: engineio::Socket, server: &Arc<ServerInner>) -> Arc<Client> {
        let client = Arc::new_cyclic(|me| Client {
            engine,
            server: Arc::downgrade(server),
            me: me.clone(),
            sockets: Mutex::new(Vec::new()),
            left_by_server: Mutex::new(Vec::new()),
            collector: Mutex::new(BinaryCollector::default()),
            ever_connected: AtomicBool::new(false),
            max_attachments: server.config.max_attachments,
            connect_timer: Mutex::new(None),
            pending_connects: AtomicUsize::new(0),
            runtime: tokio::runtime::Handle::current(),
        });
        // A connection that joins no namespace within connectTimeout is closed.
        let weak = Arc::downgrade(&client);
        let timeout = server.config.connect_timeout;
        let timer = client.runtime.spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(client) = weak.upgrade() {
                if !client.ever_connected.load(Ordering::Acquire) {
                    tracing::debug!(
                        sid = client.engine.id(),
                        "no namespace joined within connectTimeout"
                    );
                    client.engine.close();
                }
            }
        });
        *lock(&client.connect_timer) = Some(timer.abort_handle());
        client
    }

    pub(crate) fn max_pending_acks(&self) -> usize {
        self.server
            .upgrade()
            .map_or(0, |s| s.config.max_pending_acks)
    }

    fn send_packet(&self, packet: &Packet) {
        let _ = self.engine.send_frames(encode_frames(packet));
    }

    fn on_packet(&self, packet: Packet) {
        let socket = lock(&self.sockets)
            .iter()
            .find(|socket| socket.ns() == packet.nsp)
            .cloned();
        match (packet.kind, socket) {
            (PacketType::Connect, None) => {
                let auth = packet.data.unwrap_or_else(|| json!({}));
                self.connect(packet.nsp, auth);
            }
            (PacketType::Disconnect, Some(socket)) => {
                socket.on_close(DisconnectReason::ClientNamespaceDisconnect);
            }
            (_, None)
                if !matches!(packet.kind, PacketType::Connect | PacketType::ConnectError)
                    && lock(&self.left_by_server).contains(&packet.nsp) =>
            {
                tracing::debug!(
                    sid = self.engine.id(),
                    nsp = %packet.nsp,
                    kind = ?packet.kind,
                    "packet for a namespace the server just left: dropped"
                );
            }
            (PacketType::Connect | PacketType::ConnectError, _) | (_, None) => {
                // A CONNECT to a namespace already joined, a CONNECT_ERROR (only servers send
                // those), anything else for a namespace not joined: the official server closes
                // the whole connection.
                tracing::warn!(
                    sid = self.engine.id(),
                    nsp = %packet.nsp,
                    kind = ?packet.kind,
                    "packet does not fit the connection's state: closing the connection"
                );
                self.engine.close();
            }
            (_, Some(socket)) => socket.on_packet(packet),
        }
    }

    fn connect(&self, name: String, auth: Value) {
        let (Some(server), Some(me)) = (self.server.upgrade(), self.me.upgrade()) else {
            return;
        };
        // CONNECTs still in their middlewares count too: a flood of them cannot pile up tasks.
        let in_progress = self.pending_connects.load(Ordering::Acquire);
        if lock(&self.sockets).len() + in_progress >= server.config.max_namespaces_per_connection {
            tracing::warn!(sid = self.engine.id(), nsp = %name, "too many namespaces on one connection");
            let refusal = json!({ "message": "Too many namespaces" });
            self.send_packet(&Packet::new(PacketType::ConnectError, &name, Some(refusal)));
            return;
        }
        let Some((nsp, connecting)) = server.namespace_for(&name) else {
            tracing::debug!(nsp = %name, "connect to an unknown namespace");
            let refusal = json!({ "message": "Invalid namespace" });
            self.send_packet(&Packet::new(PacketType::ConnectError, &name, Some(refusal)));
            return;
        };
        let restored = restore_session(&nsp, &auth);
        let handshake = Handshake::new(self.engine.clone(), auth);
        let (socket, rooms, skip_middlewares, claim) = match restored {
            Some((restored, skip_middlewares, claim)) => {
                let PersistedSession {
                    sid,
                    pid,
                    rooms,
                    extensions,
                } = restored.session;
                tracing::debug!(sid, nsp = %nsp.name, missed = restored.missed.len(), "connection state recovered");
                let recovery = Recovery::Restored { pid, extensions };
                let socket = Socket::new(sid, nsp.clone(), me.clone(), handshake, recovery);
                // As the official server does, the missed packets leave at once, before the CONNECT
                // answer: the client holds them until it is connected.
                for frames in restored.missed {
                    let _ = self.engine.send_frames(frames);
                }
                (socket, rooms, skip_middlewares, Some(claim))
            }
            None => {
                let recovery = match nsp.recovery {
                    Some(_) => Recovery::New(engineio::generate_id()),
                    None => Recovery::Off,
                };
                let socket = Socket::new(
                    engineio::generate_id(),
                    nsp.clone(),
                    me.clone(),
                    handshake,
                    recovery,
                );
                (socket, Vec::new(), false, None)
            }
        };
        let middlewares = nsp.middlewares();
        if middlewares.is_empty() || skip_middlewares {
            me.finish_connect(nsp, socket, rooms);
            drop((claim, connecting));
            return;
        }
        let mut verdict = Box::pin({
            let socket = socket.clone();
            async move {
                for middleware in middlewares {
                    middleware(socket.clone()).await?;
                }
                Ok(())
            }
        });
        // Middlewares that decide at once (a token check, say) are answered here, so that CONNECTs
        // are answered in the order they came, as the official server does; only one that waits
        // (a database, say) goes on on a task of its own.
        let mut noop = Context::from_waker(Waker::noop());
        // A panicking middleware must not take the connection's I/O task down with it; its CONNECT
        // stays unanswered, as when one panics on its own task.
        match std::panic::catch_unwind(AssertUnwindSafe(|| verdict.as_mut().poll(&mut noop))) {
            Ok(Poll::Ready(verdict)) => {
                me.conclude_connect(nsp, socket, rooms, verdict);
                drop((claim, connecting));
                return;
            }
            Ok(Poll::Pending) => {}
            Err(_) => {
                tracing::error!(nsp = %nsp.name, "a connect middleware panicked");
                return;
            }
        }
        self.pending_connects.fetch_add(1, Ordering::AcqRel);
        self.runtime.spawn(async move {
            // Released however this task ends (refusal, success, a panicking middleware).
            struct Pending(Arc<Client>);
            impl Drop for Pending {
                fn drop(&mut self) {
                    self.0.pending_connects.fetch_sub(1, Ordering::AcqRel);
                }
            }
            let pending = Pending(me.clone());
            let verdict = verdict.await;
            drop(pending);
            me.conclude_connect(nsp, socket, rooms, verdict);
            drop((claim, connecting));
        });
    }

    /// Connects the socket once its namespace's middlewares let it in, or tells the client why not.
    fn conclude_connect(
        &self,
        nsp: Arc<NamespaceInner>,
        socket: Socket,
        rooms: Vec<Room>,
        verdict: Result<(), ConnectError>,
    ) {
        match verdict {
            Ok(()) => self.finish_connect(nsp, socket, rooms),
            Err(refusal) => {
                tracing::debug!(nsp = %nsp.name, message = %refusal.message, "connect refused by a middleware");
                let mut data = json!({ "message": refusal.message });
                if let Some(extra) = refusal.data {
                    data["data"] = extra;
                }
                self.send_packet(&Packet::new(
                    PacketType::ConnectError,
                    &nsp.name,
                    Some(data),
                ));
            }
        }
    }

    /// Registers the socket (back in `rooms` when recovered) and answers its CONNECT.
    fn finish_connect(&self, nsp: Arc<NamespaceInner>, socket: Socket, rooms: Vec<Room>) {
        // Connected before it is reachable, and registered under the lock the connection's close
        // drains: a close racing this connect either comes first (nothing is registered) or finds
        // the socket and cleans it up.
        socket.mark_connected();
        // Room listeners may disconnect sockets, which needs `self.sockets`: the events of the
        // joins below wait until it is released.
        let hold = nsp.hold_room_events();
        let previous = {
            let mut sockets = lock(&self.sockets);
            if self.engine.is_closed() {
                socket.abandon();
                return;
            }
            crate::socket::write(&nsp.sockets).insert(socket.id().to_owned(), socket.clone());
            nsp.adapter.add_all(socket.id(), &[socket.id().to_owned()]);
            if !rooms.is_empty() {
                nsp.adapter.add_all(socket.id(), &rooms);
            }
            // A socket that connects again takes the last place, as it would in the official
            // server's map of sockets by id.
            let previous = sockets
                .iter()
                .position(|s| s.ns() == nsp.name)
                .map(|at| sockets.remove(at));
            sockets.push(socket.clone());
            lock(&self.left_by_server).retain(|name| *name != nsp.name);
            previous
        };
        drop(hold);
        self.ever_connected.store(true, Ordering::Release);
        if let Some(timer) = lock(&self.connect_timer).take() {
            timer.abort();
        }
        if let Some(previous) = previous {
            previous.on_close(DisconnectReason::ClientNamespaceDisconnect);
        }
        let answer = match &socket.inner.pid {
            Some(pid) => Packet::connect_with_pid(&nsp.name, socket.id(), pid),
            None => Packet::connect(&nsp.name, socket.id()),
        };
        self.send_packet(&answer);
        tracing::debug!(sid = socket.id(), nsp = %nsp.name, "socket connected");
        let handlers = nsp.connection_handlers();
        let on_connect = {
            let socket = socket.clone();
            Box::pin(async move {
                for handler in handlers {
                    handler(socket.clone()).await;
                }
            })
        };
        socket.start(on_connect);
    }

    pub(crate) fn remove_socket(&self, socket: &Socket) {
        let mut sockets = lock(&self.sockets);
        if let Some(at) = sockets
            .iter()
            .position(|s| Arc::ptr_eq(&s.inner, &socket.inner))
        {
            sockets.remove(at);
        }
    }

    /// Notes that the server disconnected the socket of namespace `name` (see `left_by_server`).
    pub(crate) fn left_by_server(&self, name: &str) {
        let mut left = lock(&self.left_by_server);
        if left.iter().any(|n| n == name) {
            return;
        }
        // Bounded like the namespaces a connection may join at once.
        let max = self
            .server
            .upgrade()
            .map_or(1, |s| s.config.max_namespaces_per_connection.max(1));
        if left.len() >= max {
            left.remove(0);
        }
        left.push(name.to_owned());
    }

    /// Disconnects every namespace, then closes the connection.
    pub(crate) fn disconnect_all(&self) {
        let sockets: Vec<Socket> = lock(&self.sockets).clone();
        for socket in sockets {
            socket.disconnect_reason(DisconnectReason::ServerNamespaceDisconnect);
        }
        self.engine.close();
    }
}

/// The kept session a CONNECT asks back (`auth.pid` and `auth.offset`, both strings), with whether
/// it skips the middlewares and the claim that keeps a second CONNECT from restoring it at the same
/// time; none when recovery is off, the session or offset is unknown, or the session is being
/// restored or is back already.
fn restore_session(
    nsp: &Arc<NamespaceInner>,
    auth: &Value,
) -> Option<(RestoredSession, bool, RestoreClaim)> {
    let store = nsp.recovery.as_ref()?;
    let pid = auth.get("pid")?.as_str()?;
    let offset = auth.get("offset")?.as_str()?;
    let mut store = lock(store);
    let restored = store.restore(pid, offset, Instant::now())?;
    // Its socket is back already (a half-open connection): this one starts anew rather than share
    // the id.
    if nsp.socket(&restored.session.sid).is_some() {
        tracing::debug!(sid = %restored.session.sid, "connection state recovery: socket already back");
        return None;
    }
    store.claim(pid);
    let claim = RestoreClaim {
        nsp: nsp.clone(),
        pid: pid.to_owned(),
    };
    Some((restored, store.settings().skip_middlewares, claim))
}

/// A session being restored; dropped once its socket is registered, refused, or its connection
/// gone (a middleware that panics or never answers included), which lets the pid be restored again.
struct RestoreClaim {
    nsp: Arc<NamespaceInner>,
    pid: String,
}

impl Drop for RestoreClaim {
    fn drop(&mut self) {
        if let Some(store) = &self.nsp.recovery {
            lock(store).release(&self.pid);
        }
    }
}

impl ConnectionHandler for Client {
    fn on_message(&self, message: Message) {
        let max = self.max_attachments;
        let result = {
            let mut collector = lock(&self.collector);
            match message {
                Message::Text(text) => collector.text(&text, max),
                Message::Binary(data) => collector.binary(data),
            }
        };
        match result {
            Ok(Collected::Packet(packet)) => self.on_packet(packet),
            Ok(Collected::Incomplete) => {}
            Err(err) => {
                tracing::warn!(sid = self.engine.id(), %err, "invalid Socket.IO packet: closing the connection");
                // As the official client.onerror: every socket's `error` handlers, then the close.
                let sockets: Vec<Socket> = lock(&self.sockets).clone();
                for socket in sockets {
                    socket.report_error(SocketError::InvalidPacket(err.clone()));
                }
                self.engine.close();
            }
        }
    }

    fn on_close(&self, reason: CloseReason) {
        if let Some(timer) = lock(&self.connect_timer).take() {
            timer.abort();
        }
        let sockets = std::mem::take(&mut *lock(&self.sockets));
        for socket in sockets {
            socket.on_close(reason.into());
        }
    }
}
