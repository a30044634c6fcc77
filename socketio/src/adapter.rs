//! Rooms and broadcasting, behind a trait so that a cluster of servers can serve one API.
//!
//! [`LocalAdapter`] keeps everything in this process. A cluster adapter (Redis, …) implements the same
//! [`Adapter`] trait: the local part of each operation plus the messages to the other servers.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use engineio::Frame;

use crate::data::Data;
use crate::namespace::NamespaceInner;
use crate::packet::Packet;
use crate::socket::{DisconnectReason, Socket};

/// A boxed future, as the adapter trait returns them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A room name. Every socket is in the room named by its own id.
pub type Room = String;

/// A change of a namespace's rooms on this server: the events of the official in-memory
/// adapter, in its order (a room is created before its first member joins, and deleted after its
/// last member left). Every socket also joins and leaves the room named by its own id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoomEvent {
    /// A room got its first member (`create-room`).
    Created(Room),
    /// A socket joined a room (`join-room`).
    Joined {
        /// The room.
        room: Room,
        /// The socket id.
        sid: String,
    },
    /// A socket left a room (`leave-room`), on its own or because it disconnected.
    Left {
        /// The room.
        room: Room,
        /// The socket id.
        sid: String,
    },
    /// A room lost its last member (`delete-room`).
    Deleted(Room),
}

/// Which sockets an operation targets, and how its packet is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastOptions {
    /// Only sockets in at least one of these rooms; every socket when empty.
    pub rooms: Vec<Room>,
    /// No socket in any of these rooms.
    pub except: Vec<Room>,
    /// Drop the packet for sockets that cannot take it now.
    pub volatile: bool,
    /// The official per-packet `compress` flag, on by default. Off, the packet never leaves
    /// compressed: no WebSocket compression (`engineio::Config::per_message_deflate`) for it, and
    /// a long-polling answer that carries only such packets is not gzipped
    /// (`engineio::Config::http_compression`). On, both still apply only from their thresholds.
    pub compress: bool,
    /// This server only, not the whole cluster.
    pub local: bool,
}

impl Default for BroadcastOptions {
    /// Every socket, compress flag on, as an emit of the official server.
    fn default() -> Self {
        BroadcastOptions {
            rooms: Vec::new(),
            except: Vec::new(),
            volatile: false,
            compress: true,
            local: false,
        }
    }
}

/// The replies to a broadcast with acknowledgement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AckResponses {
    /// The sockets that answered, with their answer, in arrival order.
    pub replies: Vec<(String, Data)>,
    /// The sockets that did not answer in time.
    pub missing: Vec<String>,
}

impl AckResponses {
    /// Whether some socket did not answer in time.
    pub fn timed_out(&self) -> bool {
        !self.missing.is_empty()
    }
}

/// What every server of a cluster must agree on: rooms, broadcasts and remote socket operations.
pub trait Adapter: Send + Sync + 'static {
    /// Adds a socket to rooms.
    fn add_all(&self, sid: &str, rooms: &[Room]);
    /// Removes a socket from a room.
    fn del(&self, sid: &str, room: &str);
    /// Removes a socket from every room.
    fn del_all(&self, sid: &str);
    /// The rooms a local socket is in.
    fn socket_rooms(&self, sid: &str) -> Vec<Room>;
    /// Sends an encoded packet to the targeted sockets.
    fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions);
    /// Sends `packet`, which the caller has already encoded into `frames` (the text frame then one
    /// binary frame per attachment), to the targeted sockets. The default ignores the frames; an
    /// adapter that writes to local sockets uses them rather than encode the packet again.
    fn broadcast_encoded(&self, packet: &Packet, frames: &[Frame], opts: &BroadcastOptions) {
        let _ = frames;
        self.broadcast(packet, opts);
    }
    /// Sends a packet that asks for an acknowledgement and collects the answers until `timeout`.
    fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Duration,
    ) -> BoxFuture<'static, AckResponses>;
    /// The targeted sockets.
    fn fetch_sockets(&self, opts: BroadcastOptions) -> BoxFuture<'static, Vec<Socket>>;
    /// Makes the targeted sockets join rooms.
    fn add_sockets(&self, opts: BroadcastOptions, rooms: Vec<Room>) -> BoxFuture<'static, ()>;
    /// Makes the targeted sockets leave rooms.
    fn del_sockets(&self, opts: BroadcastOptions, rooms: Vec<Room>) -> BoxFuture<'static, ()>;
    /// Disconnects the targeted sockets (and their whole connection with `close`).
    fn disconnect_sockets(&self, opts: BroadcastOptions, close: bool) -> BoxFuture<'static, ()>;
    /// Sends an event to the other servers of the cluster (none for a single server).
    fn server_side_emit(&self, event: String, data: Data) -> BoxFuture<'static, ()>;
    /// The namespace is gone (an empty child removed by `cleanup_empty_child_namespaces`): a
    /// cluster adapter lets go of what it holds for it. Nothing to do by default.
    fn close(&self) {}
}

/// The in-memory adapter: rooms in this process.
pub struct LocalAdapter {
    nsp: Weak<NamespaceInner>,
    rooms: RwLock<Rooms>,
}

/// Room membership. A member is stored with the connection its packets are written to, so that a
/// broadcast walks one map and never looks a socket up by id.
///
/// Each socket id and each room name is one shared `Arc<str>`, wherever it is a key: a socket in
/// its own room and one other costs one allocation for all its names instead of six.
#[derive(Default)]
struct Rooms {
    members: foldhash::HashMap<Arc<str>, Members>,
    /// Each socket's rooms in the order it joined them, as the official adapter's `Set` keeps
    /// them: `socket.rooms` lists its own id first, and leaving all walks them in that order.
    of_socket: foldhash::HashMap<Arc<str>, SocketRooms>,
}

/// The members of one room, each with its connection. Most rooms have one member (every socket's
/// own room), kept inline rather than in a table of its own.
/// (Generic over the connection for its tests.)
enum Members<C = engineio::Socket> {
    One(Arc<str>, C),
    Many(foldhash::HashMap<Arc<str>, C>),
}

impl<C> Members<C> {
    /// Adds `sid` (or replaces its connection); whether it was not a member yet.
    fn insert(&mut self, sid: Arc<str>, connection: C) -> bool {
        match self {
            Members::One(member, current) if *member == sid => {
                *current = connection;
                false
            }
            Members::Many(map) if map.is_empty() => {
                *self = Members::One(sid, connection);
                true
            }
            Members::Many(map) => map.insert(sid, connection).is_none(),
            Members::One(..) => {
                let mut map = foldhash::HashMap::with_capacity_and_hasher(2, Default::default());
                map.insert(sid, connection);
                if let Members::One(member, current) = std::mem::replace(self, Members::Many(map)) {
                    self.insert(member, current);
                }
                true
            }
        }
    }

    /// Takes `sid` out; whether it was a member.
    fn remove(&mut self, sid: &str) -> bool {
        match self {
            Members::One(member, _) if **member == *sid => {
                *self = Members::empty();
                true
            }
            Members::One(..) => false,
            Members::Many(map) => {
                let removed = map.remove(sid).is_some();
                crate::compact::shrink_sparse(map);
                removed
            }
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Members::Many(map) if map.is_empty())
    }

    fn empty() -> Self {
        Members::Many(Default::default())
    }

    /// Every member with its connection.
    fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &C)> {
        let (one, many) = match self {
            Members::One(sid, connection) => (Some((sid, connection)), None),
            Members::Many(map) => (None, Some(map.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// A socket's rooms in join order. A few in a vector, searched in place; past [`Self::SMALL`] an
/// index set, so that joining stays O(1) for a socket in thousands of rooms.
enum SocketRooms {
    Small(Vec<Arc<str>>),
    Large(indexmap::IndexSet<Arc<str>, foldhash::fast::RandomState>),
}

impl Default for SocketRooms {
    fn default() -> Self {
        SocketRooms::Small(Vec::new())
    }
}

impl SocketRooms {
    const SMALL: usize = 8;

    /// Adds `room` at the end, unless the socket is in it already.
    fn insert(&mut self, room: Arc<str>) {
        match self {
            SocketRooms::Small(rooms) if rooms.contains(&room) => {}
            SocketRooms::Small(rooms) if rooms.len() < Self::SMALL => {
                // Most sockets are in their own room and one or two others.
                if rooms.capacity() == 0 {
                    rooms.reserve_exact(2);
                }
                rooms.push(room);
            }
            SocketRooms::Small(rooms) => {
                let mut set: indexmap::IndexSet<_, _> = std::mem::take(rooms).into_iter().collect();
                set.insert(room);
                *self = SocketRooms::Large(set);
            }
            SocketRooms::Large(set) => {
                set.insert(room);
            }
        }
    }

    /// Takes `room` out, keeping the others in order.
    fn remove(&mut self, room: &str) {
        match self {
            SocketRooms::Small(rooms) => {
                if let Some(at) = rooms.iter().position(|r| **r == *room) {
                    rooms.remove(at);
                }
            }
            SocketRooms::Large(set) => {
                set.shift_remove(room);
            }
        }
    }

    /// The rooms in join order.
    fn iter(&self) -> impl Iterator<Item = &Arc<str>> {
        let (small, large) = match self {
            SocketRooms::Small(rooms) => (Some(rooms.iter()), None),
            SocketRooms::Large(set) => (None, Some(set.iter())),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }
}

impl LocalAdapter {
    pub(crate) fn new(nsp: Weak<NamespaceInner>) -> Self {
        LocalAdapter {
            nsp,
            rooms: RwLock::new(Rooms::default()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Rooms> {
        crate::socket::read(&self.rooms)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Rooms> {
        crate::socket::write(&self.rooms)
    }

    /// The local sockets targeted by `opts`.
    fn targets(&self, opts: &BroadcastOptions) -> Vec<Socket> {
        let Some(nsp) = self.nsp.upgrade() else {
            return Vec::new();
        };
        let rooms = self.read();
        let sockets = crate::socket::read(&nsp.sockets);
        if opts.rooms.is_empty() {
            let excluded = rooms.members_of(&opts.except);
            return sockets
                .iter()
                .filter(|(sid, _)| !excluded.contains(sid.as_str()))
                .map(|(_, s)| s.clone())
                .collect();
        }
        rooms
            .room_targets(opts)
            .filter_map(|(sid, _)| sockets.get(&**sid).cloned())
            .collect()
    }

    /// The connections targeted by `opts`, for a broadcast: no per-socket lookup, and with a single
    /// room and no exception (the common `io.to(room).emit(…)`), no deduplication either.
    fn target_connections(&self, opts: &BroadcastOptions) -> Vec<engineio::Socket> {
        if opts.rooms.is_empty() {
            return self
                .targets(opts)
                .into_iter()
                .map(|s| s.inner.client.engine.clone())
                .collect();
        }
        let rooms = self.read();
        if let ([room], []) = (opts.rooms.as_slice(), opts.except.as_slice()) {
            return rooms
                .members
                .get(room.as_str())
                .map(|members| members.iter().map(|(_, c)| c.clone()).collect())
                .unwrap_or_default();
        }
        rooms
            .room_targets(opts)
            .map(|(_, connection)| connection.clone())
            .collect()
    }
}

impl Rooms {
    /// Takes `sid` out of `room`, deleting the room once empty; records the events in `events`
    /// when given.
    fn remove_member(&mut self, room: &str, sid: &str, mut events: Option<&mut Vec<RoomEvent>>) {
        let Some(members) = self.members.get_mut(room) else {
            return;
        };
        if members.remove(sid) {
            if let Some(events) = events.as_deref_mut() {
                events.push(RoomEvent::Left {
                    room: room.to_owned(),
                    sid: sid.to_owned(),
                });
            }
        }
        if members.is_empty() {
            self.members.remove(room);
            crate::compact::shrink_sparse(&mut self.members);
            if let Some(events) = events {
                events.push(RoomEvent::Deleted(room.to_owned()));
            }
        }
    }

    /// The ids of the sockets in any of `rooms`.
    fn members_of(&self, rooms: &[Room]) -> foldhash::HashSet<&str> {
        rooms
            .iter()
            .filter_map(|room| self.members.get(room.as_str()))
            .flat_map(|members| members.iter().map(|(sid, _)| &**sid))
            .collect()
    }

    /// The shared name for `name`: the one already stored as a socket id or a room, else a new one.
    fn name(&self, name: &str) -> Arc<str> {
        self.of_socket
            .get_key_value(name)
            .map(|(key, _)| key)
            .or_else(|| self.members.get_key_value(name).map(|(key, _)| key))
            .cloned()
            .unwrap_or_else(|| Arc::from(name))
    }

    /// The members of `opts.rooms`, each once, except those in `opts.except`.
    fn room_targets<'a>(
        &'a self,
        opts: &'a BroadcastOptions,
    ) -> impl Iterator<Item = (&'a Arc<str>, &'a engineio::Socket)> + 'a {
        let excluded = self.members_of(&opts.except);
        // A single room lists each member once already (`socket.to(room)`: its own id excepted).
        let dedup = opts.rooms.len() > 1;
        let mut seen = foldhash::HashSet::default();
        opts.rooms
            .iter()
            .filter_map(|room| self.members.get(room.as_str()))
            .flat_map(Members::iter)
            .filter(move |&(sid, _)| !excluded.contains(&**sid) && (!dedup || seen.insert(sid)))
    }
}

/// Encodes a packet once into the frames every target socket shares.
pub(crate) fn encode_frames(packet: &Packet) -> Vec<Frame> {
    let mut text = String::with_capacity(64);
    text.push('4');
    packet.encode_into(&mut text);
    let mut frames = Vec::with_capacity(1 + packet.attachments.len());
    frames.push(Frame::Text(text.into()));
    frames.extend(packet.attachments.iter().cloned().map(Frame::Binary));
    frames
}

/// Queues a broadcast's frames on one target's connection, unless volatile and it cannot take
/// them now.
fn write_broadcast(connection: &engineio::Socket, frames: &[Frame], opts: &BroadcastOptions) {
    if opts.volatile && !connection.is_writable() {
        return;
    }
    let _ = connection.send_frames_with(frames.iter().cloned(), opts.compress);
}

impl Adapter for LocalAdapter {
    fn add_all(&self, sid: &str, rooms: &[Room]) {
        let Some(nsp) = self.nsp.upgrade() else {
            return;
        };
        // Only a connected socket can be in a room.
        let Some(connection) = nsp.socket(sid).map(|s| s.inner.client.engine.clone()) else {
            return;
        };
        let record = nsp.records_room_events();
        {
            let mut all = self.write();
            let mut events = Vec::new();
            let sid_name = all.name(sid);
            for room in rooms {
                let room_name = if room == sid {
                    sid_name.clone()
                } else {
                    all.name(room)
                };
                let members = all.members.entry(room_name.clone()).or_insert_with(|| {
                    if record {
                        events.push(RoomEvent::Created(room.clone()));
                    }
                    Members::empty()
                });
                let joined = members.insert(sid_name.clone(), connection.clone());
                if joined && record {
                    events.push(RoomEvent::Joined {
                        room: room.clone(),
                        sid: sid.to_owned(),
                    });
                }
                all.of_socket
                    .entry(sid_name.clone())
                    .or_default()
                    .insert(room_name);
            }
            if !events.is_empty() {
                nsp.queue_room_events(events);
            }
        }
        if record {
            nsp.deliver_room_events();
        }
    }

    fn del(&self, sid: &str, room: &str) {
        let nsp = self.nsp.upgrade();
        let record = nsp.as_ref().is_some_and(|nsp| nsp.records_room_events());
        {
            let mut all = self.write();
            let mut events = Vec::new();
            all.remove_member(room, sid, record.then_some(&mut events));
            if let Some(rooms) = all.of_socket.get_mut(sid) {
                rooms.remove(room);
            }
            if let (Some(nsp), false) = (&nsp, events.is_empty()) {
                nsp.queue_room_events(events);
            }
        }
        if let (Some(nsp), true) = (&nsp, record) {
            nsp.deliver_room_events();
        }
    }

    fn del_all(&self, sid: &str) {
        let nsp = self.nsp.upgrade();
        let record = nsp.as_ref().is_some_and(|nsp| nsp.records_room_events());
        {
            let mut all = self.write();
            let Some(rooms) = all.of_socket.remove(sid) else {
                return;
            };
            crate::compact::shrink_sparse(&mut all.of_socket);
            let mut events = Vec::new();
            for room in rooms.iter() {
                all.remove_member(room, sid, record.then_some(&mut events));
            }
            if let (Some(nsp), false) = (&nsp, events.is_empty()) {
                nsp.queue_room_events(events);
            }
        }
        if let (Some(nsp), true) = (&nsp, record) {
            nsp.deliver_room_events();
        }
    }

    fn socket_rooms(&self, sid: &str) -> Vec<Room> {
        self.read()
            .of_socket
            .get(sid)
            .map(|rooms| rooms.iter().map(|room| room.to_string()).collect())
            .unwrap_or_default()
    }

    fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions) {
        self.broadcast_encoded(packet, &encode_frames(packet), opts);
    }

    fn broadcast_encoded(&self, packet: &Packet, frames: &[Frame], opts: &BroadcastOptions) {
        if self
            .nsp
            .upgrade()
            .is_some_and(|nsp| nsp.outgoing_listeners.load(Ordering::Acquire) > 0)
        {
            // As the official adapter: each target's outgoing listeners, then its write.
            for socket in self.targets(opts) {
                socket.notify_outgoing(packet);
                write_broadcast(&socket.inner.client.engine, frames, opts);
            }
            return;
        }
        for connection in self.target_connections(opts) {
            write_broadcast(&connection, frames, opts);
        }
    }

    fn broadcast_with_ack(
        &self,
        mut packet: Packet,
        opts: BroadcastOptions,
        timeout: Duration,
    ) -> BoxFuture<'static, AckResponses> {
        let targets = self.targets(&opts);
        let Some(nsp) = self.nsp.upgrade() else {
            return Box::pin(async { AckResponses::default() });
        };
        // One id for every socket: ids come from the namespace's counter, so they never collide.
        let id = nsp.next_ack_id();
        packet.id = Some(id);
        let frames = encode_frames(&packet);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut waiting: Vec<Socket> = Vec::with_capacity(targets.len());
        for socket in targets {
            // As the official adapter: the outgoing listeners see the packet even when a volatile
            // one is dropped.
            socket.notify_outgoing(&packet);
            if opts.volatile && !socket.inner.client.engine.is_writable() {
                continue;
            }
            if socket.register_broadcast_ack(id, tx.clone()) {
                socket.send_frames_with(frames.iter().cloned(), opts.compress);
                waiting.push(socket);
            }
        }
        drop(tx);
        Box::pin(async move {
            let mut replies = Vec::with_capacity(waiting.len());
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            while replies.len() < waiting.len() {
                tokio::select! {
                    reply = rx.recv() => match reply {
                        Some(reply) => replies.push(reply),
                        None => break,
                    },
                    _ = &mut deadline => break,
                }
            }
            let answered: HashSet<&str> = replies.iter().map(|(sid, _)| sid.as_str()).collect();
            let missing: Vec<String> = waiting
                .iter()
                .filter(|s| !answered.contains(s.id()))
                .map(|s| s.id().to_owned())
                .collect();
            // A timed-out ack leaves nothing behind.
            for socket in &waiting {
                socket.forget_ack(id);
            }
            AckResponses { replies, missing }
        })
    }

    fn fetch_sockets(&self, opts: BroadcastOptions) -> BoxFuture<'static, Vec<Socket>> {
        let sockets = self.targets(&opts);
        Box::pin(async move { sockets })
    }

    fn add_sockets(&self, opts: BroadcastOptions, rooms: Vec<Room>) -> BoxFuture<'static, ()> {
        for socket in self.targets(&opts) {
            self.add_all(socket.id(), &rooms);
        }
        Box::pin(async {})
    }

    fn del_sockets(&self, opts: BroadcastOptions, rooms: Vec<Room>) -> BoxFuture<'static, ()> {
        for socket in self.targets(&opts) {
            for room in &rooms {
                self.del(socket.id(), room);
            }
        }
        Box::pin(async {})
    }

    fn disconnect_sockets(&self, opts: BroadcastOptions, close: bool) -> BoxFuture<'static, ()> {
        for socket in self.targets(&opts) {
            if close {
                socket.disconnect_connection();
            } else {
                socket.disconnect_reason(DisconnectReason::ServerNamespaceDisconnect);
            }
        }
        Box::pin(async {})
    }

    fn server_side_emit(&self, _event: String, _data: Data) -> BoxFuture<'static, ()> {
        // A single server has no peer to tell.
        Box::pin(async {})
    }
}

/// Builds the adapter of each namespace.
pub type AdapterFactory = Arc<dyn Fn(Weak<NamespaceInner>) -> Arc<dyn Adapter> + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(members: &Members<u32>) -> Vec<(String, u32)> {
        let mut all: Vec<_> = members.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        all.sort();
        all
    }

    #[test]
    fn one_member_inline_then_a_table_then_empty() {
        let mut members = Members::empty();
        assert!(members.is_empty());
        assert!(members.insert("a".into(), 1));
        assert!(matches!(members, Members::One(..)));
        // The same member again: its connection is replaced, it is not a new member.
        assert!(!members.insert("a".into(), 2));
        assert_eq!(ids(&members), [("a".to_owned(), 2)]);
        assert!(members.insert("b".into(), 3));
        assert!(matches!(members, Members::Many(_)));
        assert_eq!(ids(&members), [("a".to_owned(), 2), ("b".to_owned(), 3)]);
        assert!(!members.remove("c"));
        assert!(members.remove("a"));
        assert!(!members.remove("a"));
        assert_eq!(ids(&members), [("b".to_owned(), 3)]);
        assert!(members.remove("b"));
        assert!(members.is_empty());
        assert_eq!(members.iter().count(), 0);
    }

    fn names(rooms: &SocketRooms) -> Vec<&str> {
        rooms.iter().map(|room| &**room).collect()
    }

    #[test]
    fn a_sockets_rooms_keep_join_order_small_and_large() {
        let mut rooms = SocketRooms::default();
        for name in ["own", "b", "a", "b"] {
            rooms.insert(name.into());
        }
        assert_eq!(names(&rooms), ["own", "b", "a"]);
        rooms.remove("b");
        rooms.remove("missing");
        assert_eq!(names(&rooms), ["own", "a"]);
        let many: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
        for name in &many {
            rooms.insert(name.as_str().into());
        }
        rooms.insert("r3".into());
        assert!(matches!(rooms, SocketRooms::Large(_)));
        rooms.remove("r0");
        let mut expected = vec!["own", "a"];
        expected.extend(many[1..].iter().map(String::as_str));
        assert_eq!(names(&rooms), expected);
    }

    #[test]
    fn removing_the_inline_member() {
        let mut members = Members::empty();
        members.insert("a".into(), 1);
        assert!(!members.remove("b"));
        assert!(!members.is_empty());
        assert!(members.remove("a"));
        assert!(members.is_empty());
        // Reused after it emptied: back to one inline member.
        assert!(members.insert("c".into(), 4));
        assert!(matches!(members, Members::One(..)));
    }
}
