//! Broadcast operators: which sockets an emit reaches.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::adapter::{AckResponses, BroadcastOptions, Room};
use crate::data::Data;
use crate::namespace::NamespaceInner;
use crate::socket::{event_packet, AckError, EmitError, Socket};

/// A selection of sockets of one namespace, built by chaining `to`, `except`, `volatile`, …
///
/// ```no_run
/// # fn demo(io: socketio::SocketIo) {
/// io.to("room1").to("room2").except("banned").emit("news", &("hello", 1)).ok();
/// # }
/// ```
#[derive(Clone)]
pub struct BroadcastOperator {
    nsp: Arc<NamespaceInner>,
    opts: BroadcastOptions,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for BroadcastOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastOperator")
            .field("nsp", &self.nsp.name)
            .field("opts", &self.opts)
            .finish()
    }
}

/// The default timeout of a broadcast with acknowledgement when none was set.
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

impl BroadcastOperator {
    pub(crate) fn new(nsp: Arc<NamespaceInner>, opts: BroadcastOptions) -> Self {
        BroadcastOperator {
            nsp,
            opts,
            timeout: None,
        }
    }

    /// Also targets the sockets in `room`.
    pub fn to(mut self, room: impl Into<Room>) -> Self {
        let room = room.into();
        if !self.opts.rooms.contains(&room) {
            self.opts.rooms.push(room);
        }
        self
    }

    /// Same as [`to`](Self::to).
    pub fn within(self, room: impl Into<Room>) -> Self {
        self.to(room)
    }

    /// Leaves out the sockets in `room`.
    pub fn except(mut self, room: impl Into<Room>) -> Self {
        self.opts.except.push(room.into());
        self
    }

    /// Only the sockets of this server.
    pub fn local(mut self) -> Self {
        self.opts.local = true;
        self
    }

    /// Drops the packet for sockets that cannot take it now.
    pub fn volatile(mut self) -> Self {
        self.opts.volatile = true;
        self
    }

    /// Sets the compress flag, on by default: with `false` the packet never leaves compressed
    /// (see [`BroadcastOptions::compress`]).
    pub fn compress(mut self, compress: bool) -> Self {
        self.opts.compress = compress;
        self
    }

    /// The time [`emit_with_ack`](Self::emit_with_ack) waits for answers.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends an event; the packet is encoded once for every target.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) -> Result<(), EmitError> {
        self.emit_data(event, Data::from_serialize(args)?)
    }

    /// Sends an event with prepared arguments.
    pub fn emit_data(&self, event: &str, data: Data) -> Result<(), EmitError> {
        let packet = event_packet(&self.nsp.name, event, data, None)?;
        self.nsp.broadcast(packet, &self.opts);
        Ok(())
    }

    /// Sends an event and collects every target's acknowledgement (its first argument) until the
    /// timeout; [`AckResponses::missing`] lists who did not answer.
    pub async fn emit_with_ack<T: Serialize + ?Sized>(
        &self,
        event: &str,
        args: &T,
    ) -> Result<AckResponses, AckError> {
        self.emit_with_ack_data(event, Data::from_serialize(args)?)
            .await
    }

    /// Like [`emit_with_ack`](Self::emit_with_ack), with prepared arguments.
    pub async fn emit_with_ack_data(
        &self,
        event: &str,
        data: Data,
    ) -> Result<AckResponses, AckError> {
        let packet = event_packet(&self.nsp.name, event, data, None)?;
        let timeout = self.timeout.unwrap_or(DEFAULT_ACK_TIMEOUT);
        Ok(self
            .nsp
            .adapter
            .broadcast_with_ack(packet, self.opts.clone(), timeout)
            .await)
    }

    /// The targeted sockets.
    pub async fn fetch_sockets(&self) -> Vec<Socket> {
        self.nsp.adapter.fetch_sockets(self.opts.clone()).await
    }

    /// Makes the targeted sockets join rooms.
    pub async fn sockets_join(&self, rooms: Vec<Room>) {
        self.nsp.adapter.add_sockets(self.opts.clone(), rooms).await
    }

    /// Makes the targeted sockets leave rooms.
    pub async fn sockets_leave(&self, rooms: Vec<Room>) {
        self.nsp.adapter.del_sockets(self.opts.clone(), rooms).await
    }

    /// Disconnects the targeted sockets (closing their connections with `close`).
    pub async fn disconnect_sockets(&self, close: bool) {
        self.nsp
            .adapter
            .disconnect_sockets(self.opts.clone(), close)
            .await
    }
}
