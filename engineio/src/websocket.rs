//! The WebSocket transport: one task per connection reads and (for a session opened on WebSocket)
//! drives the heartbeat; whoever holds the session's lock writes.
//!
//! Frames are written straight from the session's queue: a header built on the stack, then the
//! packet's shared bytes, many frames per `writev`. A packet broadcast to thousands of clients is
//! encoded once and never copied, and it is written by the task that broadcast it, at the end of
//! that task's read turn: no receiving connection's task is woken unless its socket is full. An
//! idle connection holds no read or write buffer.
//!
//! Every write happens under the session's lock and never blocks: a sender to a session that is
//! being written waits for one non-blocking `writev` at most.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::deflate;
use crate::packet::{Frame, Packet};
use crate::payload;
use crate::polling::apply_packet;
use crate::session::{CloseReason, Step};
use crate::socket::{Core, Queued, Shared};
use crate::wsframe::{frame_header, opcode, FrameDecoder, WsError, WsMessage, COMPRESSED};

/// How long the last frames and the close frame may take to leave a closed session.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Bytes read per `read` call, onto the stack.
const READ_CHUNK: usize = 4096;

/// Messages read and handled in one turn of a connection's task before it lets others run.
const MESSAGES_PER_POLL: usize = 64;

/// Frames handed to one `writev` call (two slices each: header and payload).
const FRAMES_PER_WRITE: usize = 64;

/// Frames of a write small enough for a small array of slices.
const SMALL_WRITE_FRAMES: usize = 4;

/// Reading pauses while more frames than this wait to be written: a client that sends (pings, say)
/// but does not read gets TCP backpressure instead of an ever longer queue of answers.
const MAX_UNWRITTEN_FRAMES: usize = 2 * FRAMES_PER_WRITE;

/// The flush list keeps at most this much capacity between read turns.
const DEFERRED_KEPT_CAPACITY: usize = 4096;

/// The upgraded connection: the plain TCP stream when the server accepted it itself (no dynamic
/// dispatch, no extra buffering), any other upgraded stream otherwise.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Other(TokioIo<Upgraded>),
}

/// The read half of a connection; only its task reads.
enum ReadSide {
    Tcp(OwnedReadHalf),
    Other(tokio::io::ReadHalf<TokioIo<Upgraded>>),
}

impl ReadSide {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self {
            ReadSide::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ReadSide::Other(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

/// The write half of a connection; it is written under the session's lock.
enum WriteSide {
    Tcp(OwnedWriteHalf),
    Other(tokio::io::WriteHalf<TokioIo<Upgraded>>),
}

impl WriteSide {
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self {
            WriteSide::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            WriteSide::Other(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    /// Writes what the socket takes now, without registering for more: `Pending` when it is
    /// full. A TCP stream is written outside tokio's cooperative budget, which is the task's that
    /// runs the broadcast, not the receiver's.
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let noop = &mut Context::from_waker(Waker::noop());
        match self {
            WriteSide::Tcp(s) => match s.try_write_vectored(bufs) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
                written => Poll::Ready(written),
            },
            WriteSide::Other(s) => Pin::new(s).poll_write_vectored(noop, bufs),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            WriteSide::Tcp(s) => Pin::new(s).poll_flush(cx),
            WriteSide::Other(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            WriteSide::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            WriteSide::Other(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    /// Lets go of the write half without ending the stream: it ends when the socket closes.
    fn forget(self) {
        match self {
            WriteSide::Tcp(s) => s.forget(),
            WriteSide::Other(s) => drop(s),
        }
    }
}

/// One frame waiting to be written: its header and its (shared) payload.
struct OutFrame {
    header: [u8; 10],
    header_len: u8,
    payload: Bytes,
}

impl OutFrame {
    fn new(opcode: u8, payload: Bytes) -> Self {
        let (header, header_len) = frame_header(opcode, payload.len());
        OutFrame {
            header,
            // At most 10.
            header_len: header_len as u8,
            payload,
        }
    }

    /// Bytes sent as they are, before any frame (the held 101 response).
    fn raw(bytes: Bytes) -> Self {
        OutFrame {
            header: [0; 10],
            header_len: 0,
            payload: bytes,
        }
    }

    fn len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len()
    }
}

/// The write side of a WebSocket and the frames handed to it but not yet written.
///
/// While the connection's task drives the session, it lives in the session's core
/// ([`Core::ws_out`]): every write happens under the session's lock, so the task that broadcasts a
/// packet can write it to each receiver itself, and frames never interleave.
pub(crate) struct WsWriter {
    sink: WriteSide,
    out: VecDeque<OutFrame>,
    /// Bytes of the first frame of `out` already written.
    written: usize,
    /// Binary messages leave as text frames, `b` and their base64 (the client asked with `b64`).
    binary_as_base64: bool,
    /// `permessage-deflate` was negotiated: messages of at least this many bytes leave compressed.
    compress_from: Option<usize>,
}

impl WsWriter {
    /// Turns a queued frame into a WebSocket frame, compressed when `permessage-deflate` was
    /// negotiated, the sender's flag allows it and the message reaches the threshold.
    fn push(&mut self, Queued { frame, compress }: Queued) {
        let (opcode, payload) = match frame {
            Frame::Text(text) => (opcode::TEXT, text),
            Frame::Binary(data) if self.binary_as_base64 => {
                (opcode::TEXT, crate::payload::encode(&[Frame::Binary(data)]))
            }
            Frame::Binary(data) => (opcode::BINARY, data),
        };
        let compressed = self
            .compress_from
            .filter(|threshold| compress && payload.len() >= *threshold)
            .and_then(|_| deflate::compress_shared(&payload));
        let out = match compressed {
            Some(compressed) => {
                let mut out = OutFrame::new(opcode, compressed);
                out.header[0] |= COMPRESSED;
                out
            }
            None => OutFrame::new(opcode, payload),
        };
        self.out.push_back(out);
    }

    fn push_close(&mut self, code: Option<u16>) {
        let payload = code.map_or_else(Bytes::new, |code| {
            Bytes::copy_from_slice(&code.to_be_bytes())
        });
        self.out.push_back(OutFrame::new(opcode::CLOSE, payload));
    }

    /// Moves `queue` (the session's) behind the frames already held; its bytes stop counting.
    fn take(&mut self, queue: &mut VecDeque<Queued>, queued_bytes: &mut usize) {
        for queued in queue.drain(..) {
            self.push(queued);
        }
        *queued_bytes = 0;
    }

    /// Frames handed over and not yet written.
    pub(crate) fn unwritten(&self) -> usize {
        self.out.len()
    }

    /// Writes every pending frame; `Ready(Ok)` once all have left. Called with the session locked
    /// (or with the writer owned by the connection's task).
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.write_out(|sink, slices| sink.poll_write_vectored(cx, slices)))?;
        self.sink.poll_flush(cx)
    }

    /// Writes what the socket takes now, for another task than the connection's: `Pending` when
    /// frames are left, and then no waker is registered (the connection's task must be woken).
    fn try_flush(&mut self) -> Poll<io::Result<()>> {
        ready!(self.write_out(WriteSide::try_write_vectored))?;
        self.sink
            .poll_flush(&mut Context::from_waker(Waker::noop()))
    }

    /// One call of `write` with the unwritten bytes of the first frames, at most `SLICES / 2` of
    /// them (a slice for the header, one for the payload).
    fn write_some<const SLICES: usize>(
        &mut self,
        write: &mut impl FnMut(&mut WriteSide, &[IoSlice<'_>]) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let mut slices = [IoSlice::new(&[]); SLICES];
        let count = fill_slices(&self.out, self.written, &mut slices);
        write(&mut self.sink, &slices[..count])
    }

    /// Hands the pending frames to `write`, many per call, until all have left.
    fn write_out(
        &mut self,
        mut write: impl FnMut(&mut WriteSide, &[IoSlice<'_>]) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            // Most writes carry a frame or two: those fill a small array, not a 2 KiB one.
            let mut n = if self.out.len() <= SMALL_WRITE_FRAMES {
                ready!(self.write_some::<{ 2 * SMALL_WRITE_FRAMES }>(&mut write))?
            } else {
                ready!(self.write_some::<{ 2 * FRAMES_PER_WRITE }>(&mut write))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            while let Some(front) = self.out.front() {
                let left = front.len() - self.written;
                if n < left {
                    self.written += n;
                    break;
                }
                n -= left;
                self.written = 0;
                self.out.pop_front();
            }
        }
        // A burst may have grown the queue: an idle connection gives the memory back.
        if self.out.capacity() > FRAMES_PER_WRITE {
            self.out = VecDeque::new();
        }
        Poll::Ready(Ok(()))
    }
}

/// Points `slices` at the unwritten bytes of the first frames of `out` (header and payload each),
/// the first `written` bytes skipped, as many as fit; returns how many slices it filled.
fn fill_slices<'a>(
    out: &'a VecDeque<OutFrame>,
    written: usize,
    slices: &mut [IoSlice<'a>],
) -> usize {
    let mut count = 0;
    let mut skip = written;
    for frame in out.iter().take(slices.len() / 2) {
        let header = &frame.header[..usize::from(frame.header_len)];
        for part in [header, &frame.payload[..]] {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            slices[count] = IoSlice::new(&part[skip..]);
            skip = 0;
            count += 1;
        }
    }
    count
}

/// Moves the session's queued frames behind the ones its writer already holds.
fn take_queued(core: &mut Core) {
    let Core {
        queue,
        queued_bytes,
        ws_out,
        ..
    } = core;
    if let Some(writer) = ws_out {
        writer.take(queue, queued_bytes);
    }
}

/// Sessions given frames during the read turn running on this thread, written when it ends.
struct Deferred {
    /// The session whose task runs the turn (it writes its own frames right after); null when no
    /// turn runs. Only compared, never dereferenced.
    owner: *const Shared,
    sessions: Vec<Arc<Shared>>,
}

thread_local! {
    static DEFERRED: RefCell<Deferred> = const {
        RefCell::new(Deferred {
            owner: std::ptr::null(),
            sessions: Vec::new(),
        })
    };
}

/// Called by a sender when a WebSocket session's queue goes from empty to not empty: true if a read
/// turn on this thread will write the frames when it ends, so nothing needs waking.
pub(crate) fn defer_flush(shared: &Arc<Shared>) -> bool {
    // `try_with`: a send while the thread's locals are being destroyed just wakes the writer.
    DEFERRED
        .try_with(|deferred| {
            let Ok(mut deferred) = deferred.try_borrow_mut() else {
                return false;
            };
            if deferred.owner.is_null() {
                return false;
            }
            if !std::ptr::eq(Arc::as_ptr(shared), deferred.owner) {
                deferred.sessions.push(shared.clone());
            }
            true
        })
        .unwrap_or(false)
}

/// A connection task's read turn: the frames its packets give to other WebSocket sessions (the
/// packets of a broadcast) are written when it ends, a batch per session, without waking the
/// sessions' tasks. Ends on drop, so a panic in the turn still writes (or hands on) what it listed.
struct ReadTurn {
    /// Whether this turn opened the list (turns never nest; if one did, the outer one writes).
    opened: bool,
}

impl ReadTurn {
    fn begin(owner: &Arc<Shared>) -> Self {
        let opened = DEFERRED.with(|deferred| {
            let mut deferred = deferred.borrow_mut();
            if !deferred.owner.is_null() {
                return false;
            }
            deferred.owner = Arc::as_ptr(owner);
            true
        });
        ReadTurn { opened }
    }
}

impl Drop for ReadTurn {
    fn drop(&mut self) {
        if !self.opened {
            return;
        }
        let mut sessions = DEFERRED.with(|deferred| {
            let mut deferred = deferred.borrow_mut();
            deferred.owner = std::ptr::null();
            std::mem::take(&mut deferred.sessions)
        });
        for shared in sessions.drain(..) {
            flush_deferred(&shared);
        }
        if sessions.capacity() <= DEFERRED_KEPT_CAPACITY {
            DEFERRED.with(|deferred| {
                let mut deferred = deferred.borrow_mut();
                if deferred.sessions.capacity() == 0 {
                    deferred.sessions = sessions;
                }
            });
        }
    }
}

/// Writes a session's queued frames from another connection's task, without waiting: what the
/// socket does not take at once is left to the session's own task, which is woken for it.
///
/// When everything was written, the session's task is not woken. If it waits for its socket to
/// take an earlier batch, it is woken anyway: the socket can only have taken these bytes after
/// tokio saw it become writable, and that event wakes the task registered for it.
fn flush_deferred(shared: &Shared) {
    let mut guard = shared.lock();
    let Core {
        state,
        queue,
        queued_bytes,
        ws_out,
        ws_writer,
        ..
    } = &mut *guard;
    let done = match ws_out {
        Some(writer) if state.closed().is_none() => loop {
            // The next batch is taken once the last one has left (as the session's task does).
            if writer.out.is_empty() {
                writer.take(queue, queued_bytes);
            }
            match writer.try_flush() {
                Poll::Ready(Ok(())) if queue.is_empty() => break true,
                Poll::Ready(Ok(())) => continue,
                _ => break false,
            }
        },
        // Closing (or not driven): the session's task writes what is left.
        _ => false,
    };
    if !done {
        if let Some(task) = ws_writer {
            task.wake_by_ref();
        }
    }
}

/// Why reading stopped.
enum ReadError {
    Ws(WsError),
    Io(io::Error),
}

/// A WebSocket connection as its task sees it: the read side, the bytes read but not yet decoded,
/// and the write side whenever the task holds it (before the session is driven, and when closing).
pub(crate) struct WsConn {
    source: ReadSide,
    decoder: FrameDecoder,
    in_buf: BytesMut,
    eof: bool,
    /// The client's close frame came in: like the end of its stream, it sends nothing more.
    close_received: bool,
    writer: Option<WsWriter>,
}

impl WsConn {
    /// A connection whose first bytes (read with the HTTP request) are `already_read`.
    pub(crate) fn new(stream: Stream, already_read: Bytes, max_message: usize) -> Self {
        let (source, sink) = match stream {
            Stream::Tcp(stream) => {
                let (read, write) = stream.into_split();
                (ReadSide::Tcp(read), WriteSide::Tcp(write))
            }
            Stream::Other(stream) => {
                let (read, write) = tokio::io::split(stream);
                (ReadSide::Other(read), WriteSide::Other(write))
            }
        };
        WsConn {
            source,
            decoder: FrameDecoder::new(max_message),
            in_buf: BytesMut::from(&already_read[..]),
            eof: false,
            close_received: false,
            writer: Some(WsWriter {
                sink,
                out: VecDeque::new(),
                written: 0,
                binary_as_base64: false,
                compress_from: None,
            }),
        }
    }

    /// The connection of a handshake that negotiated `permessage-deflate`: compressed messages
    /// are read, and messages of at least `threshold` bytes are sent compressed.
    pub(crate) fn with_deflate(mut self, threshold: usize) -> Self {
        self.decoder = std::mem::replace(&mut self.decoder, FrameDecoder::new(0)).with_deflate();
        if let Some(writer) = self.writer.as_mut() {
            writer.compress_from = Some(threshold);
        }
        self
    }

    /// The connection sending binary messages as `b` + base64 text frames when `on` (the client's
    /// `b64` query parameter, set by its `forceBase64` option).
    pub(crate) fn with_binary_as_base64(mut self, on: bool) -> Self {
        if let Some(writer) = self.writer.as_mut() {
            writer.binary_as_base64 = on;
        }
        self
    }

    /// The connection with the HTTP response that accepted it still to send, before any frame.
    pub(crate) fn with_unsent_response(mut self, response: Bytes) -> Self {
        if let Some(writer) = self.writer.as_mut().filter(|_| !response.is_empty()) {
            writer.out.push_front(OutFrame::raw(response));
        }
        self
    }

    /// Queues a frame on the write side the task holds (during an upgrade's probe).
    fn push_local(&mut self, frame: OutFrame) {
        if let Some(writer) = self.writer.as_mut() {
            writer.out.push_back(frame);
        }
    }

    /// Writes the frames on the write side the task holds.
    fn poll_flush_local(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.writer.as_mut() {
            Some(writer) => writer.poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// The next message from the client; `Ready(Ok(None))` at the end of the stream.
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<WsMessage>, ReadError>> {
        loop {
            if let Some(message) = self
                .decoder
                .decode(&mut self.in_buf)
                .map_err(ReadError::Ws)?
            {
                if self.in_buf.is_empty() && self.in_buf.capacity() > READ_CHUNK {
                    // The rest of a large message's allocation: let it go with the message.
                    self.in_buf = BytesMut::new();
                }
                self.close_received |= matches!(message, WsMessage::Close(_));
                return Poll::Ready(Ok(Some(message)));
            }
            if self.eof {
                return Poll::Ready(Ok(None));
            }
            // Read onto the stack and keep only what arrived: an idle connection holds no buffer,
            // and a client trickling a large frame costs a copy of what it sent, nothing more.
            // Uninitialised: zeroing 4 KiB on every poll, readable or not, was measurable.
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            ready!(self.source.poll_read(cx, &mut buf)).map_err(ReadError::Io)?;
            let read = buf.filled().len();
            self.in_buf.extend_from_slice(buf.filled());
            if read == 0 {
                self.eof = true;
            }
        }
    }

    /// Writes the pending frames, then a close frame, then ends the stream; bounded by `CLOSE_GRACE`.
    pub(crate) async fn close(&mut self, code: Option<u16>) {
        let Some(mut writer) = self.writer.take() else {
            return;
        };
        writer.push_close(code);
        let peer_closed = self.eof || self.close_received;
        if peer_closed && matches!(writer.try_flush(), Poll::Ready(Ok(()))) {
            // The client has closed and sends nothing more, so closing the socket now cannot
            // reset it: the stream ends right behind the close frame, with no wait for the client's
            // end and no `shutdown` call of its own.
            writer.sink.forget();
            return;
        }
        let source = &mut self.source;
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            poll_fn(|cx| writer.poll_flush(cx)).await?;
            poll_fn(|cx| writer.sink.poll_shutdown(cx)).await?;
            // Read (and drop) what the client still sends until it closes too: closing a socket with
            // unread input makes the kernel answer with a reset, which can destroy the close frame
            // before the client reads it.
            // On the heap: a buffer on the stack here would sit in every connection task's future,
            // idle or not (+4 KiB per connection, measured).
            let mut discard = vec![0u8; READ_CHUNK];
            loop {
                let mut buf = ReadBuf::new(&mut discard);
                poll_fn(|cx| source.poll_read(cx, &mut buf)).await?;
                if buf.filled().is_empty() {
                    break;
                }
            }
            io::Result::Ok(())
        })
        .await;
    }
}

/// Registers the task's waker in the session core, unless it is already there.
fn park_writer(core: &mut Core, cx: &Context<'_>) {
    if !core
        .ws_writer
        .as_ref()
        .is_some_and(|w| w.will_wake(cx.waker()))
    {
        core.ws_writer = Some(cx.waker().clone());
    }
}

/// Runs a session opened directly over WebSocket, heartbeat included: an idle connection costs one
/// task and no buffer. Spawn it as a task of its own (see [`serve`]).
pub(crate) fn run_direct(shared: Arc<Shared>, conn: WsConn) -> impl Future<Output = ()> {
    // Not an `async fn`: its future would hold its arguments beside `serve`'s copy of them.
    serve(shared, conn, true)
}

/// The long-lived part of a WebSocket session: its packets both ways until it closes, then the
/// close. Its future is what an idle connection keeps in memory, so it holds nothing else: it runs
/// as a task of its own rather than inside the handshake's or the upgrade's (whose states would
/// sit beside it for the connection's life), and the close, larger than the loop, is boxed.
///
/// An `async` block rather than an `async fn`: an `async fn` moves its arguments into locals of its
/// own, and its future keeps room for both copies (the 192-byte `WsConn` twice); the block uses
/// what it captured in place, which keeps the task in tokio's 640-byte cell instead of 768.
#[allow(clippy::manual_async_fn)] // On purpose: see above.
fn serve(shared: Arc<Shared>, mut conn: WsConn, heartbeat: bool) -> impl Future<Output = ()> {
    async move {
        drive(&shared, &mut conn, heartbeat).await;
        let code = shared.lock().ws_close_code;
        Box::pin(conn.close(code)).await;
    }
}

/// How often an upgrade whose probe was answered looks for a waiting poll to end with a noop (the
/// official server's interval).
const NOOP_CHECK: Duration = Duration::from_millis(100);

/// Runs a WebSocket that asks to take over a polling session: probe, then upgrade; an upgraded
/// session goes on in a task of its own ([`serve`]).
pub(crate) async fn run_upgrade(shared: Arc<Shared>, mut conn: WsConn) {
    if upgrade(&shared, &mut conn).await {
        // The heartbeat keeps running on the task the polling session started with.
        tokio::spawn(serve(shared, conn, false));
    }
}

/// The probe and upgrade packets of [`run_upgrade`]: true once the session has moved to `conn`;
/// false when the attempt ended (the connection is closed then, or given up).
async fn upgrade(shared: &Arc<Shared>, conn: &mut WsConn) -> bool {
    // The client sends its probe once it has the 101 response: that goes first, on its own.
    let notified = shared.state_wake.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if shared.lock().state.is_upgrading() && !flush_unless_state_changes(conn, notified).await {
        shared.lock().state.abort_upgrade();
        return false;
    }
    // Once the probe is answered, a poll found waiting is ended with a noop, checked every
    // `NOOP_CHECK` as the official server does (not at once: a client may still be reading the
    // poll's previous answer, and must not see a noop it would not get from Node).
    let mut noop_check: Option<tokio::time::Interval> = None;
    loop {
        let notified = shared.state_wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !shared.lock().state.is_upgrading() {
            // Timed out, or the session closed meanwhile.
            conn.close(None).await;
            return false;
        }
        let check = async {
            match noop_check.as_mut() {
                Some(interval) => interval.tick().await,
                None => std::future::pending().await,
            }
        };
        let message = tokio::select! {
            message = poll_fn(|cx| conn.poll_message(cx)) => message,
            _ = &mut notified => continue,
            _ = check => {
                let mut core = shared.lock();
                if core.poll_active && !core.noop_due {
                    core.noop_due = true;
                    drop(core);
                    shared.writer_wake.notify_waiters();
                }
                continue;
            }
        };
        // The packet, or the close code that ends the attempt.
        let packet = match message {
            Ok(Some(WsMessage::Text(text))) => match std::str::from_utf8(&text) {
                Ok(text) => payload::decode_record(text).map_err(|_| None),
                Err(_) => Err(Some(WsError::InvalidUtf8.close_code())),
            },
            Ok(Some(WsMessage::Binary(data))) => Ok(Packet::Binary(data)),
            Ok(Some(WsMessage::Ping(payload))) => {
                conn.push_local(OutFrame::new(opcode::PONG, payload));
                if !flush_unless_state_changes(conn, notified).await {
                    shared.lock().state.abort_upgrade();
                    return false;
                }
                continue;
            }
            Ok(Some(WsMessage::Pong)) => continue,
            Ok(Some(WsMessage::Close(code))) => Err(code),
            Ok(None) | Err(ReadError::Io(_)) => Err(None),
            Err(ReadError::Ws(err)) => Err(Some(err.close_code())),
        };
        let (step, code) = match packet {
            Ok(packet) => (shared.lock().state.on_probe_packet(packet), None),
            Err(code) => {
                shared.lock().state.abort_upgrade();
                (Step::AbortUpgrade, code)
            }
        };
        match step {
            Step::AnswerProbe => {
                conn.push_local(OutFrame::new(opcode::TEXT, Bytes::from_static(b"3probe")));
                if !flush_unless_state_changes(conn, notified).await {
                    shared.lock().state.abort_upgrade();
                    return false;
                }
                let mut interval =
                    tokio::time::interval_at(tokio::time::Instant::now() + NOOP_CHECK, NOOP_CHECK);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                noop_check = Some(interval);
            }
            Step::CompleteUpgrade => {
                tracing::debug!(sid = %shared.id, "upgraded to websocket");
                shared.writer_wake.notify_waiters();
                break;
            }
            _ => {
                tracing::debug!(sid = %shared.id, "upgrade abandoned");
                conn.close(code).await;
                return false;
            }
        }
    }
    true
}

/// Writes the pending frames of an upgrading connection; false if the write failed. A change of the
/// session's state (upgrade timeout, close) ends the wait: a client that sends probes but never
/// reads cannot hold the task past the upgrade deadline. Unwritten frames stay queued.
async fn flush_unless_state_changes(
    conn: &mut WsConn,
    state_change: Pin<&mut tokio::sync::futures::Notified<'_>>,
) -> bool {
    tokio::select! {
        flushed = poll_fn(|cx| conn.poll_flush_local(cx)) => flushed.is_ok(),
        _ = state_change => true,
    }
}

/// The connection's loop until the session closes: reads and applies the client's packets, writes
/// what is queued for it, and with `heartbeat` sends pings and enforces the pong deadline.
///
/// The write side moves into the session's core for the loop, and back to the task for the close.
async fn drive(shared: &Arc<Shared>, conn: &mut WsConn, heartbeat: bool) {
    let mut end = DriveGuard {
        shared,
        ended: false,
    };
    {
        let mut core = shared.lock();
        core.ws_out = conn.writer.take();
        // A new session's open packet leaves together with the 101 response, in one write.
        take_queued(&mut core);
    }
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    let mut armed = None;
    // More frames than `MAX_UNWRITTEN_FRAMES` wait to be written: reading pauses until they leave.
    let mut backlogged = false;
    let ended = poll_fn(|cx| loop {
        // What the client sent is handled before anything is written, so that the answers to a burst
        // of packets leave together, in one write.
        let more_to_read = !backlogged && read_turn(shared, conn, cx);
        let (deadline, flushed, had_unwritten) = {
            let mut guard = shared.lock();
            let core = &mut *guard;
            if core.state.closed().is_some() {
                // The task writes the last frames and the close frame itself.
                take_queued(core);
                conn.writer = core.ws_out.take();
                return Poll::Ready(conn.writer.is_some());
            }
            // The next batch is taken only once the last one has left: a client that does not read
            // keeps its frames counted against `max_buffered_bytes`.
            if core.ws_out.as_ref().is_some_and(|w| w.out.is_empty()) {
                take_queued(core);
            }
            park_writer(core, cx);
            let deadline = if heartbeat {
                core.state.poll_timeout()
            } else {
                None
            };
            let Some(writer) = core.ws_out.as_mut() else {
                // Never the case while the loop runs; if it were, the guard closes the session.
                return Poll::Ready(false);
            };
            let had_unwritten = !writer.out.is_empty();
            let flushed = writer.poll_flush(cx);
            backlogged = writer.out.len() > MAX_UNWRITTEN_FRAMES;
            (deadline, flushed, had_unwritten)
        };
        if let Some(deadline) = deadline {
            if armed != Some(deadline) {
                sleep.as_mut().reset(deadline.into());
                armed = Some(deadline);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                armed = None;
                shared.on_deadline();
                continue;
            }
        }
        match flushed {
            Poll::Ready(Err(err)) => {
                tracing::debug!(sid = %shared.id, %err, "WebSocket write failed");
                shared.close(CloseReason::TransportError, false);
                continue;
            }
            // The batch has left: frames queued while it was in the way were left in the queue,
            // and no wake-up will come for them. Take them now, and read again.
            Poll::Ready(Ok(())) if had_unwritten => continue,
            _ => {}
        }
        if more_to_read {
            // Give other connections their turn, then go on reading.
            cx.waker().wake_by_ref();
        }
        return Poll::Pending;
    })
    .await;
    end.ended = ended;
}

/// Ends a session whose `drive` did not end the normal way (a panic in the application's handler,
/// the task dropped): the write side is taken back out of the session's core, so that the socket
/// closes with the task and no other task writes to it, and the session is closed.
struct DriveGuard<'a> {
    shared: &'a Arc<Shared>,
    /// `drive` ended with the session closed and the write side back with the task.
    ended: bool,
}

impl Drop for DriveGuard<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let writer = self.shared.lock().ws_out.take();
        drop(writer);
        tracing::warn!(sid = %self.shared.id, "WebSocket task ended abnormally: closing the session");
        self.shared.close_on_own_task(CloseReason::TransportError);
    }
}

/// Reads and handles the client's messages until the socket has no more or the budget is spent
/// (then true). Frames the handlers give to other WebSocket sessions are written as the turn ends.
fn read_turn(shared: &Arc<Shared>, conn: &mut WsConn, cx: &mut Context<'_>) -> bool {
    let _turn = ReadTurn::begin(shared);
    for _ in 0..MESSAGES_PER_POLL {
        let Poll::Ready(result) = conn.poll_message(cx) else {
            return false;
        };
        let go_on = match result {
            Ok(Some(message)) => on_message(shared, message),
            Ok(None) => {
                shared.close(CloseReason::TransportClose, false);
                false
            }
            Err(ReadError::Ws(err)) => {
                tracing::warn!(sid = %shared.id, %err, "invalid WebSocket frame: closing");
                shared.lock().ws_close_code = Some(err.close_code());
                shared.close(CloseReason::TransportError, false);
                false
            }
            Err(ReadError::Io(err)) => {
                tracing::debug!(sid = %shared.id, %err, "WebSocket read failed");
                shared.close(CloseReason::TransportError, false);
                false
            }
        };
        if !go_on {
            return false;
        }
    }
    true
}

/// Handles one message; false when the session closed because of it.
fn on_message(shared: &Arc<Shared>, message: WsMessage) -> bool {
    match message {
        WsMessage::Text(bytes) => {
            let Ok(text) = std::str::from_utf8(&bytes) else {
                tracing::warn!(sid = %shared.id, "text frame is not UTF-8: closing");
                shared.lock().ws_close_code = Some(WsError::InvalidUtf8.close_code());
                shared.close(CloseReason::TransportError, false);
                return false;
            };
            match payload::decode_record(text) {
                Ok(packet) => apply_packet(shared, packet, text.len()),
                Err(err) => {
                    tracing::warn!(sid = %shared.id, %err, "undecodable packet: closing the session");
                    shared.close(CloseReason::ParseError, false);
                    false
                }
            }
        }
        WsMessage::Binary(data) => {
            let len = data.len();
            apply_packet(shared, Packet::Binary(data), len)
        }
        WsMessage::Ping(payload) => {
            // Written with the turn's other answers, after it ends.
            if let Some(writer) = shared.lock().ws_out.as_mut() {
                writer.out.push_back(OutFrame::new(opcode::PONG, payload));
            }
            true
        }
        WsMessage::Pong => true,
        WsMessage::Close(code) => {
            // The close frame is answered with the client's own code, as the RFC asks.
            shared.lock().ws_close_code = code;
            shared.close(CloseReason::TransportClose, false);
            false
        }
    }
}
