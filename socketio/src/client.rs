//! One Engine.IO connection seen by Socket.IO: it decodes packets and routes them to namespaces.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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
        });
        // A connection that joins no namespace within connectTimeout is closed.
        let weak = Arc::downgrade(&client);
        let timeout = server.config.connect_timeout;
        tokio::spawn(async move {
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
        match packet.kind {
            PacketType::Connect => {
                let auth = packet.data.unwrap_or_else(|| json!({}));
                self.connect(packet.nsp, auth);
            }
            PacketType::Disconnect => {
                let socket = lock(&self.sockets).get(&packet.nsp).cloned();
                if let Some(socket) = socket {
                    socket.on_close(DisconnectReason::ClientNamespaceDisconnect);
                }
            }
            PacketType::ConnectError => {}
            _ => {
                let socket = lock(&self.sockets).get(&packet.nsp).cloned();
                match socket {
                    Some(socket) => socket.on_packet(packet),
                    None => tracing::debug!(nsp = %packet.nsp, "packet for a namespace not joined"),
                }
            }
        }
    }

    fn connect(&self, name: String, auth: Value) {
        let (Some(server), Some(me)) = (self.server.upgrade(), self.me.upgrade()) else {
            return;
        };
        if lock(&self.sockets).len() >= server.config.max_namespaces_per_connection {
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
        tokio::spawn(async move {
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
            me.finish_connect(nsp, socket);
        });
    }

    fn finish_connect(&self, nsp: Arc<NamespaceInner>, socket: Socket) {
        if self.engine.is_closed() {
            return;
        }
        self.ever_connected.store(true, Ordering::Release);
        if let Some(timer) = lock(&self.connect_timer).take() {
            timer.abort();
        }
        let previous = lock(&self.sockets).insert(nsp.name.clone(), socket.clone());
        if let Some(previous) = previous {
            previous.on_close(DisconnectReason::ClientNamespaceDisconnect);
        }
        crate::socket::write(&nsp.sockets).insert(socket.id().to_owned(), socket.clone());
        nsp.adapter.add_all(socket.id(), &[socket.id().to_owned()]);
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
