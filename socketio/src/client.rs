//! One Engine.IO connection seen by Socket.IO: it decodes packets and routes them to namespaces.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use engineio::{CloseReason, ConnectionHandler, Message};
use serde_json::{json, Value};

use crate::adapter::encode_frames;
use crate::handshake::Handshake;
use crate::namespace::NamespaceInner;
use crate::packet::{BinaryCollector, Collected, Packet, PacketType};
use crate::server::ServerInner;
use crate::socket::{lock, read, DisconnectReason, Socket};

pub(crate) struct Client {
    pub(crate) engine: engineio::Socket,
    server: Weak<ServerInner>,
    me: Weak<Client>,
    sockets: Mutex<HashMap<String, Socket>>,
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
            sockets: Mutex::new(HashMap::new()),
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
        let socket = lock(&self.sockets).get(&packet.nsp).cloned();
        match (packet.kind, socket) {
            (PacketType::Connect, None) => {
                let auth = packet.data.unwrap_or_else(|| json!({}));
                self.connect(packet.nsp, auth);
            }
            (PacketType::Disconnect, Some(socket)) => {
                socket.on_close(DisconnectReason::ClientNamespaceDisconnect);
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
        let Some(nsp) = server.namespace_for(&name) else {
            tracing::debug!(nsp = %name, "connect to an unknown namespace");
            let refusal = json!({ "message": "Invalid namespace" });
            self.send_packet(&Packet::new(PacketType::ConnectError, &name, Some(refusal)));
            return;
        };
        let handshake = Handshake::new(self.engine.clone(), auth);
        let socket = Socket::new(engineio::generate_id(), nsp.clone(), me.clone(), handshake);
        let middlewares = read(&nsp.handlers.middlewares).clone();
        if middlewares.is_empty() {
            me.finish_connect(nsp, socket);
            return;
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
            for middleware in middlewares {
                if let Err(refusal) = middleware(socket.clone()).await {
                    tracing::debug!(nsp = %nsp.name, message = %refusal.message, "connect refused by a middleware");
                    let mut data = json!({ "message": refusal.message });
                    if let Some(extra) = refusal.data {
                        data["data"] = extra;
                    }
                    me.send_packet(&Packet::new(
                        PacketType::ConnectError,
                        &nsp.name,
                        Some(data),
                    ));
                    return;
                }
            }
            drop(pending);
            me.finish_connect(nsp, socket);
        });
    }

    fn finish_connect(&self, nsp: Arc<NamespaceInner>, socket: Socket) {
        // Connected before it is reachable, and registered under the lock the connection's close
        // drains: a close racing this connect either comes first (nothing is registered) or finds
        // the socket and cleans it up.
        socket.mark_connected();
        let previous = {
            let mut sockets = lock(&self.sockets);
            if self.engine.is_closed() {
                return;
            }
            crate::socket::write(&nsp.sockets).insert(socket.id().to_owned(), socket.clone());
            nsp.adapter.add_all(socket.id(), &[socket.id().to_owned()]);
            sockets.insert(nsp.name.clone(), socket.clone())
        };
        self.ever_connected.store(true, Ordering::Release);
        if let Some(timer) = lock(&self.connect_timer).take() {
            timer.abort();
        }
        if let Some(previous) = previous {
            previous.on_close(DisconnectReason::ClientNamespaceDisconnect);
        }
        self.send_packet(&Packet::connect(&nsp.name, socket.id()));
        tracing::debug!(sid = socket.id(), nsp = %nsp.name, "socket connected");
        let handlers = read(&nsp.handlers.connection).clone();
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
        if sockets
            .get(socket.ns())
            .is_some_and(|s| Arc::ptr_eq(&s.inner, &socket.inner))
        {
            sockets.remove(socket.ns());
        }
    }

    /// Disconnects every namespace, then closes the connection.
    pub(crate) fn disconnect_all(&self) {
        let sockets: Vec<Socket> = lock(&self.sockets).values().cloned().collect();
        for socket in sockets {
            socket.disconnect_reason(DisconnectReason::ServerNamespaceDisconnect);
        }
        self.engine.close();
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
                self.engine.close();
            }
        }
    }

    fn on_close(&self, reason: CloseReason) {
        if let Some(timer) = lock(&self.connect_timer).take() {
            timer.abort();
        }
        let sockets: Vec<Socket> = lock(&self.sockets).drain().map(|(_, s)| s).collect();
        for socket in sockets {
            socket.on_close(reason.into());
        }
    }
}
