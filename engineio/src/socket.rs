//! The handle of one Engine.IO connection, and the state its transports share.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::handler::{ConnectionHandler, Message};
use crate::packet::Frame;
use crate::request::RequestInfo;
use crate::server::ServerShared;
use crate::session::{CloseReason, SessionState, TimeoutAction, TransportKind};
use crate::stats::Stats;
use crate::websocket::{self, WsWriter};

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed.
    #[error("the session is closed")]
    Closed,
}

/// How long a session closed by the server waits for the polling client's next request, which carries
/// the close packet, before it is forgotten (the official server's `closeTimeout`). Like the official
/// server, a client that does not come back within pingInterval + pingTimeout is not waited for longer.
const CLOSE_PACKET_GRACE: Duration = Duration::from_secs(30);

/// A handle to one Engine.IO session: cheap to clone, usable from any task.
///
/// ```no_run
/// # fn demo(socket: engineio::Socket) {
/// socket.send_text("hello").ok();
/// socket.send_binary(vec![1u8, 2, 3].into()).ok();
/// println!("{} over {:?} from {}", socket.id(), socket.transport(), socket.request().remote_addr);
/// socket.close();
/// # }
/// ```
#[derive(Clone)]
pub struct Socket {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.shared.id)
            .finish()
    }
}

pub(crate) struct Shared {
    pub(crate) id: Arc<str>,
    pub(crate) request: RequestInfo,
    pub(crate) core: Mutex<Core>,
    /// Wakes whoever writes to the client (a pending poll or the WebSocket writer): frames were
    /// queued, the session closed, or an upgrade went forward.
    pub(crate) writer_wake: Notify,
    /// Wakes the tasks that watch the session's state: it closed or an upgrade was abandoned.
    pub(crate) state_wake: Notify,
    pub(crate) server: Weak<ServerShared>,
    pub(crate) stats: Arc<Stats>,
    max_buffered_bytes: usize,
    /// The callback index of a JSONP polling session (its handshake had `j`), else `None`.
    pub(crate) jsonp: Option<Box<str>>,
}

/// A frame waiting in a session's queue, with its sender's `compress` flag.
pub(crate) struct Queued {
    pub(crate) frame: Frame,
    /// The official per-packet flag: `false` keeps the frame out of WebSocket compression, and a
    /// long-polling answer of such frames only is not compressed either.
    pub(crate) compress: bool,
}

pub(crate) struct Core {
    pub(crate) state: SessionState,
    pub(crate) queue: VecDeque<Queued>,
    pub(crate) queued_bytes: usize,
    pub(crate) handler: Option<Arc<dyn ConnectionHandler>>,
    /// A GET is waiting for data.
    pub(crate) poll_active: bool,
    /// During an upgrade whose probe was answered, the periodic check found a poll waiting: it is
    /// ended with a noop so that the client can pause polling.
    pub(crate) noop_due: bool,
    /// A POST is being read.
    pub(crate) post_active: bool,
    /// The polling client has yet to receive the close packet.
    pub(crate) close_packet_pending: bool,
    /// The close code the WebSocket writer sends, when not a plain close.
    pub(crate) ws_close_code: Option<u16>,
    /// The close path ran (the application was told, the transports woken).
    pub(crate) finished: bool,
    /// Closed by the server: the session stays reachable until a poll carries the close packet
    /// (bounded by `CLOSE_PACKET_GRACE`).
    pub(crate) lingering: bool,
    /// The close packet goes alone (`1`) rather than after a noop (`6␞1`).
    pub(crate) close_alone: bool,
    /// The WebSocket connection's task, waiting for frames: woken directly, without a `Notify`,
    /// when frames are sent outside a read turn or a socket is too full to take them at once.
    /// It stays in place once woken (by reference), so parking again costs no clone.
    pub(crate) ws_writer: Option<std::task::Waker>,
    /// The WebSocket's write side while the connection's task drives the session: whoever holds
    /// the lock writes, so a broadcast writes to each socket itself instead of waking its task.
    pub(crate) ws_out: Option<WsWriter>,
}

impl Socket {
    /// The session id (`sid`).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The request that opened the session.
    pub fn request(&self) -> &RequestInfo {
        &self.shared.request
    }

    /// The transport the session lives on now.
    pub fn transport(&self) -> TransportKind {
        self.shared.lock().state.transport()
    }

    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().state.closed().is_some()
    }

    /// Whether a packet sent now would leave at once: a poll is waiting, or the WebSocket writer has
    /// nothing queued. Volatile messages are dropped when this is false.
    pub fn is_writable(&self) -> bool {
        let core = self.shared.lock();
        core.state.closed().is_none()
            && core.queue.is_empty()
            && core.ws_out.as_ref().is_none_or(|w| w.unwritten() == 0)
            && (core.poll_active || core.state.transport() == TransportKind::WebSocket)
    }

    /// Bytes queued for the client and not yet handed to its transport.
    pub fn buffered_bytes(&self) -> usize {
        self.shared.lock().queued_bytes
    }

    /// Queues a message for the client.
    pub fn send(&self, message: Message) -> Result<(), SendError> {
        match message {
            Message::Text(text) => self.send_text(&text),
            Message::Binary(data) => self.send_binary(data),
        }
    }

    /// Queues a text message.
    pub fn send_text(&self, text: &str) -> Result<(), SendError> {
        self.send_frames([Frame::message(text)])
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: Bytes) -> Result<(), SendError> {
        self.send_frames([Frame::Binary(data)])
    }

    /// Queues already-encoded frames, contiguously: no other sender's frame lands between them. A
    /// frame shared by many sockets (a broadcast) is queued without a copy.
    pub fn send_frames<I: IntoIterator<Item = Frame>>(&self, frames: I) -> Result<(), SendError> {
        self.shared.enqueue(frames, false, true)
    }

    /// Like [`send_frames`](Self::send_frames), with the official per-packet `compress` flag
    /// (`socket.compress(false)` on the official server). With `compress` false the frames never
    /// leave compressed: no `permessage-deflate` for them, and a long-polling answer that carries
    /// only such frames is sent without `Content-Encoding`. With `true` it is `send_frames`: frames
    /// are compressed when the configuration and their size call for it.
    ///
    /// ```no_run
    /// # fn demo(socket: engineio::Socket) {
    /// use engineio::Frame;
    /// // Already compressed data gains nothing from a second pass.
    /// let jpeg = bytes::Bytes::from_static(b"\xff\xd8\xff\xe0");
    /// socket.send_frames_with([Frame::Binary(jpeg)], false).ok();
    /// # }
    /// ```
    pub fn send_frames_with<I: IntoIterator<Item = Frame>>(
        &self,
        frames: I,
        compress: bool,
    ) -> Result<(), SendError> {
        self.shared.enqueue(frames, false, compress)
    }

    /// Closes the session after the frames already queued have been sent (`forced close`).
    pub fn close(&self) {
        self.shared.close(CloseReason::ForcedClose, true);
    }

    /// Closes the session with a given reason; queued frames are still sent.
    pub fn close_with(&self, reason: CloseReason) {
        self.shared.close(reason, true);
    }
}

impl Shared {
    pub(crate) fn new(
        id: Arc<str>,
        request: RequestInfo,
        state: SessionState,
        server: Weak<ServerShared>,
        stats: Arc<Stats>,
        max_buffered_bytes: usize,
        jsonp: Option<Box<str>>,
    ) -> Self {
        Shared {
            jsonp,
            id,
            request,
            core: Mutex::new(Core {
                state,
                queue: VecDeque::new(),
                queued_bytes: 0,
                handler: None,
                poll_active: false,
                noop_due: false,
                post_active: false,
                close_packet_pending: false,
                ws_close_code: None,
                finished: false,
                lingering: false,
                close_alone: false,
                ws_writer: None,
                ws_out: None,
            }),
            writer_wake: Notify::new(),
            state_wake: Notify::new(),
            server,
            stats,
            max_buffered_bytes,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic in a handler must not take every later request of this session down with it.
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues frames; `force` skips the byte limit (heartbeats are never held back by data);
    /// `compress` is the sender's per-packet flag.
    pub(crate) fn enqueue<I: IntoIterator<Item = Frame>>(
        self: &Arc<Self>,
        frames: I,
        force: bool,
        compress: bool,
    ) -> Result<(), SendError> {
        let mut core = self.lock();
        if core.state.closed().is_some() {
            return Err(SendError::Closed);
        }
        let was_empty = core.queue.is_empty();
        let before = core.queue.len();
        let mut added = 0;
        for frame in frames {
            added += frame.len();
            core.queue.push_back(Queued { frame, compress });
        }
        self.stats.outgoing(core.queue.len() - before, added);
        core.queued_bytes += added;
        if !force && core.queued_bytes > self.max_buffered_bytes {
            let queued = core.queued_bytes;
            core.queue.truncate(before);
            core.queued_bytes -= added;
            drop(core);
            tracing::warn!(sid = %self.id, queued, limit = self.max_buffered_bytes,
                "client does not read fast enough: outgoing buffer full, closing the session");
            // The sender may be holding its own locks (a broadcast, a handler): the application
            // hears of the close on a task of its own, never inside a send.
            self.close_on_own_task(CloseReason::TransportError);
            return Err(SendError::Closed);
        }
        if was_empty {
            // Sent from a WebSocket connection's read turn (a handler's broadcast, say): that turn
            // writes the frames when it ends, and this session's task need not wake.
            if core.ws_out.is_some() && websocket::defer_flush(self) {
                return Ok(());
            }
            let polling = core.state.transport() == TransportKind::Polling;
            // Only the first frame of a batch wakes the writer: it takes the whole queue once what
            // it holds has left.
            // Waking under the lock is fine: a wake only schedules the task, it never polls it here.
            if let Some(writer) = &core.ws_writer {
                writer.wake_by_ref();
            } else if polling {
                drop(core);
                // A poll (or an upgrade in progress) waits on the notify.
                self.writer_wake.notify_waiters();
            }
        }
        Ok(())
    }

    /// Takes every queued frame (a poll's batch), and whether any of them may be compressed.
    pub(crate) fn take_queue(core: &mut Core) -> (Vec<Frame>, bool) {
        core.queued_bytes = 0;
        let mut compress = false;
        let frames = core
            .queue
            .drain(..)
            .map(|queued| {
                compress |= queued.compress;
                queued.frame
            })
            .collect();
        (frames, compress)
    }

    /// Closes the session once: tells the application, wakes the transports, forgets the session.
    /// With `flush`, frames already queued still leave (a server-side close); without, they are dropped.
    pub(crate) fn close(self: &Arc<Self>, reason: CloseReason, flush: bool) {
        if let Some((handler, reason)) = self.close_quietly(reason, flush) {
            handler.on_close(reason);
        }
    }

    /// Closes the session (frames dropped) from a place that must not run application code: a
    /// send that may hold the caller's locks, an unwinding task. `on_close` runs on a task of its own.
    pub(crate) fn close_on_own_task(self: &Arc<Self>, reason: CloseReason) {
        if let Some((handler, reason)) = self.close_quietly(reason, false) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(async move { handler.on_close(reason) })),
                Err(_) => handler.on_close(reason),
            }
        }
    }

    /// Like [`close`](Self::close), but hands back the application's handler and the reason instead
    /// of telling it: the caller chooses where `on_close` runs.
    fn close_quietly(
        self: &Arc<Self>,
        reason: CloseReason,
        flush: bool,
    ) -> Option<(Arc<dyn ConnectionHandler>, CloseReason)> {
        let (handler, forget_now, reason, writer) = {
            let mut core = self.lock();
            // The state machine may have recorded the reason already (a ping timeout, a close packet);
            // `finished` tells whether this path ran.
            if core.finished {
                // The client ends a session the server closed before a poll fetched its close
                // packet (a close packet, a broken request): as the official server, it is gone at
                // once, without the close packet. A payload it cannot parse changes nothing: the
                // official server drops packets that reach a closing session.
                if core.lingering && !flush && reason != CloseReason::ParseError {
                    core.lingering = false;
                    core.close_packet_pending = false;
                    drop(core);
                    self.forget();
                    self.state_wake.notify_waiters();
                }
                return None;
            }
            core.finished = true;
            let reason = core.state.close(reason);
            let polling = core.state.transport() == TransportKind::Polling;
            // Frames queued while a poll waits count as sent: the official server writes them to
            // the waiting poll at once, so a close right after them (a POST of a message and a
            // close packet, say) still lets them reach the client.
            if !flush && (!polling || !core.poll_active) {
                core.queue.clear();
                core.queued_bytes = 0;
            }
            // A client that closed needs no close packet (a waiting poll gets a noop); any other
            // close is announced to a polling client with `1`.
            core.close_packet_pending = polling && reason != CloseReason::TransportClose;
            // As the official server does: a poll waiting with nothing queued gets `1` alone; otherwise
            // the queued frames leave first and a later poll gets `6␞1`.
            core.close_alone = core.poll_active && core.queue.is_empty();
            // A server-side close on polling keeps the session reachable until a poll carries the
            // close packet (bounded by CLOSE_PACKET_GRACE); any other close forgets it at once.
            let forget_now = !(polling && flush);
            core.lingering = !forget_now;
            (
                core.handler.take(),
                forget_now,
                reason,
                core.ws_writer.take(),
            )
        };
        tracing::debug!(sid = %self.id, %reason, "session closed");
        if let Some(writer) = writer {
            writer.wake();
        }
        self.writer_wake.notify_waiters();
        self.state_wake.notify_waiters();
        if forget_now {
            self.forget();
        }
        handler.map(|handler| (handler, reason))
    }

    /// Removes the session from the server's table.
    pub(crate) fn forget(self: &Arc<Self>) {
        if let Some(server) = self.server.upgrade() {
            server.remove(&self.id, self);
        }
    }

    /// Hands a decoded message to the application.
    pub(crate) fn deliver(&self, message: Message) {
        let handler = self.lock().handler.clone();
        if let Some(handler) = handler {
            handler.on_message(message);
        }
    }

    /// The heartbeat task of a session: sends pings and closes the session when a pong is late.
    pub(crate) async fn drive_heartbeat(self: Arc<Self>) {
        loop {
            let notified = self.state_wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (deadline, closed) = {
                let core = self.lock();
                (core.state.poll_timeout(), core.state.closed().is_some())
            };
            if closed {
                break;
            }
            match deadline {
                Some(deadline) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline.into()) => self.on_deadline(),
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
        // A server-side close on polling waits for the client's next poll to carry the close packet;
        // that poll (or the grace running out) ends the wait.
        let delivered = self.state_wake.notified();
        tokio::pin!(delivered);
        delivered.as_mut().enable();
        let (lingering, timings) = {
            let core = self.lock();
            (core.lingering, core.state.timings())
        };
        if lingering {
            let grace = CLOSE_PACKET_GRACE.min(timings.ping_interval + timings.ping_timeout);
            let _ = tokio::time::timeout(grace, delivered).await;
        }
        // The close packet may have gone out before this task got here: forget in every case.
        self.forget();
    }

    /// Acts on the heartbeat or upgrade deadline that has passed.
    pub(crate) fn on_deadline(self: &Arc<Self>) {
        let now = Instant::now();
        loop {
            let action = self.lock().state.handle_timeout(now);
            match action {
                None => break,
                Some(TimeoutAction::SendPing) => {
                    let _ = self.enqueue([Frame::Text(Bytes::from_static(b"2"))], true, true);
                }
                Some(TimeoutAction::Close(reason)) => {
                    self.close(reason, false);
                    break;
                }
                Some(TimeoutAction::AbortUpgrade) => {
                    tracing::debug!(sid = %self.id, "upgrade timed out");
                    self.state_wake.notify_waiters();
                }
            }
        }
    }
}
