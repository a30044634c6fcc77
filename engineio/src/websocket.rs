//! The WebSocket transport: one task per connection reads, writes and (for a session opened on
//! WebSocket) drives the heartbeat.
//!
//! Frames are written straight from the session's queue: a header built on the stack, then the
//! packet's shared bytes, many frames per `writev`. A packet broadcast to thousands of clients is
//! encoded once and never copied. An idle connection holds no read or write buffer.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::packet::{Frame, Packet};
use crate::polling::apply_packet;
use crate::session::{CloseReason, Step};
use crate::socket::Shared;
use crate::wsframe::{frame_header, opcode, FrameDecoder, WsError, WsMessage};

/// How long the last frames and the close frame may take to leave a closed session.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Bytes read per `read` call, onto the stack.
const READ_CHUNK: usize = 4096;

/// Messages read and handled in one turn of a connection's task before it lets others run.
const MESSAGES_PER_POLL: usize = 64;

/// Frames handed to one `writev` call (two slices each: header and payload).
const FRAMES_PER_WRITE: usize = 64;

/// Reading pauses while more frames than this wait to be written: a client that sends (pings, say)
/// but does not read gets TCP backpressure instead of an ever longer queue of answers.
const MAX_UNWRITTEN_FRAMES: usize = 2 * FRAMES_PER_WRITE;

/// The upgraded connection: the plain TCP stream when the server accepted it itself (no dynamic
/// dispatch, no extra buffering), any other upgraded stream otherwise.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Other(TokioIo<Upgraded>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Other(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Other(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Other(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Other(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Other(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Other(s) => Pin::new(s).poll_shutdown(cx),
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

/// Why reading stopped.
enum ReadError {
    Ws(WsError),
    Io(io::Error),
}

/// A WebSocket connection: the stream, the bytes read but not yet decoded, the frames not yet written.
pub(crate) struct WsConn {
    stream: Stream,
    decoder: FrameDecoder,
    in_buf: BytesMut,
    out: VecDeque<OutFrame>,
    /// Bytes of the first frame of `out` already written.
    written: usize,
    eof: bool,
}

impl WsConn {
    /// A connection whose first bytes (read with the HTTP request) are `already_read`.
    pub(crate) fn new(stream: Stream, already_read: Bytes, max_message: usize) -> Self {
        WsConn {
            stream,
            decoder: FrameDecoder::new(max_message),
            in_buf: BytesMut::from(&already_read[..]),
            out: VecDeque::new(),
            written: 0,
            eof: false,
        }
    }

    /// The connection with the HTTP response that accepted it still to send, before any frame.
    pub(crate) fn with_unsent_response(mut self, response: Bytes) -> Self {
        if !response.is_empty() {
            self.out.push_front(OutFrame::raw(response));
        }
        self
    }

    /// Moves the session's queued frames behind the ones already pending.
    fn take_queued(&mut self, core: &mut crate::socket::Core) {
        for frame in core.queue.drain(..) {
            self.push(frame);
        }
        core.queued_bytes = 0;
    }

    fn push(&mut self, frame: Frame) {
        let out = match frame {
            Frame::Text(text) => OutFrame::new(opcode::TEXT, text),
            Frame::Binary(data) => OutFrame::new(opcode::BINARY, data),
        };
        self.out.push_back(out);
    }

    fn push_close(&mut self, code: Option<u16>) {
        let payload = code.map_or_else(Bytes::new, |code| {
            Bytes::copy_from_slice(&code.to_be_bytes())
        });
        self.out.push_back(OutFrame::new(opcode::CLOSE, payload));
    }

    /// Writes every pending frame; `Ready(Ok)` once all have left.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); 2 * FRAMES_PER_WRITE];
            let mut count = 0;
            let mut skip = self.written;
            for frame in self.out.iter().take(FRAMES_PER_WRITE) {
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
            let mut n =
                ready!(Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..count]))?;
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
        Pin::new(&mut self.stream).poll_flush(cx)
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
            ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf)).map_err(ReadError::Io)?;
            let read = buf.filled().len();
            self.in_buf.extend_from_slice(buf.filled());
            if read == 0 {
                self.eof = true;
            }
        }
    }

    /// Writes the pending frames, then a close frame, then ends the stream; bounded by `CLOSE_GRACE`.
    pub(crate) async fn close(&mut self, code: Option<u16>) {
        self.push_close(code);
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            poll_fn(|cx| self.poll_flush(cx)).await?;
            self.stream.shutdown().await?;
            // Read (and drop) what the client still sends until it closes too: closing a socket with
            // unread input makes the kernel answer with a reset, which can destroy the close frame
            // before the client reads it.
            // On the heap: a buffer on the stack here would sit in every connection task's future,
            // idle or not (+4 KiB per connection, measured).
            let mut sink = vec![0u8; READ_CHUNK];
            while self.stream.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
    }
}

/// Registers the task's waker in the session core, unless it is already there.
fn park_writer(core: &mut crate::socket::Core, cx: &Context<'_>) {
    if !core
        .ws_writer
        .as_ref()
        .is_some_and(|w| w.will_wake(cx.waker()))
    {
        core.ws_writer = Some(cx.waker().clone());
    }
}

/// Runs a session opened directly over WebSocket, heartbeat included: an idle connection costs one
/// task and no buffer.
pub(crate) async fn run_direct(shared: Arc<Shared>, mut conn: WsConn) {
    // The open packet leaves together with the 101 response, in one write.
    conn.take_queued(&mut shared.lock());
    drive(&shared, &mut conn, true).await;
    let code = shared.lock().ws_close_code;
    conn.close(code).await;
}

/// Runs a WebSocket that asks to take over a polling session: probe, then upgrade.
pub(crate) async fn run_upgrade(shared: Arc<Shared>, mut conn: WsConn) {
    // The client sends its probe once it has the 101 response: that goes first, on its own.
    let notified = shared.state_wake.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if shared.lock().state.is_upgrading() && !flush_unless_state_changes(&mut conn, notified).await
    {
        shared.lock().state.abort_upgrade();
        return;
    }
    loop {
        let notified = shared.state_wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !shared.lock().state.is_upgrading() {
            // Timed out, or the session closed meanwhile.
            conn.close(None).await;
            return;
        }
        let message = tokio::select! {
            message = poll_fn(|cx| conn.poll_message(cx)) => message,
            _ = &mut notified => continue,
        };
        // The packet, or the close code that ends the attempt.
        let packet = match message {
            Ok(Some(WsMessage::Text(text))) => match std::str::from_utf8(&text) {
                Ok(text) => Packet::decode_text(text).map_err(|_| None),
                Err(_) => Err(Some(WsError::InvalidUtf8.close_code())),
            },
            Ok(Some(WsMessage::Binary(data))) => Ok(Packet::Binary(data)),
            Ok(Some(WsMessage::Ping(payload))) => {
                conn.out.push_back(OutFrame::new(opcode::PONG, payload));
                if !flush_unless_state_changes(&mut conn, notified).await {
                    shared.lock().state.abort_upgrade();
                    return;
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
                conn.push(Frame::Text(Bytes::from_static(b"3probe")));
                if !flush_unless_state_changes(&mut conn, notified).await {
                    shared.lock().state.abort_upgrade();
                    return;
                }
                // A poll still waiting is ended with a noop so that the client can pause polling.
                shared.writer_wake.notify_waiters();
            }
            Step::CompleteUpgrade => {
                tracing::debug!(sid = %shared.id, "upgraded to websocket");
                shared.writer_wake.notify_waiters();
                break;
            }
            _ => {
                tracing::debug!(sid = %shared.id, "upgrade abandoned");
                conn.close(code).await;
                return;
            }
        }
    }
    // The heartbeat keeps running on the task the polling session started with.
    drive(&shared, &mut conn, false).await;
    let code = shared.lock().ws_close_code;
    conn.close(code).await;
}

/// Writes the pending frames of an upgrading connection; false if the write failed. A change of the
/// session's state (upgrade timeout, close) ends the wait: a client that sends probes but never
/// reads cannot hold the task past the upgrade deadline. Unwritten frames stay queued.
async fn flush_unless_state_changes(
    conn: &mut WsConn,
    state_change: Pin<&mut tokio::sync::futures::Notified<'_>>,
) -> bool {
    tokio::select! {
        flushed = poll_fn(|cx| conn.poll_flush(cx)) => flushed.is_ok(),
        _ = state_change => true,
    }
}

/// The connection's loop until the session closes: hands queued frames to the socket, reads and
/// applies the client's packets, and with `heartbeat` sends pings and enforces the pong deadline.
async fn drive(shared: &Arc<Shared>, conn: &mut WsConn, heartbeat: bool) {
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    let mut armed = None;
    poll_fn(|cx| loop {
        // What the client sent is handled before anything is written, so that the answers to a burst
        // of packets leave together, in one write.
        let mut budget = MESSAGES_PER_POLL;
        let more_to_read = loop {
            if budget == 0 {
                break true;
            }
            if conn.out.len() > MAX_UNWRITTEN_FRAMES {
                // Resumed when the socket takes our frames again (the flush below wakes us).
                break false;
            }
            let Poll::Ready(result) = conn.poll_message(cx) else {
                break false;
            };
            budget -= 1;
            let go_on = match result {
                Ok(Some(message)) => on_message(shared, conn, message),
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
                break false;
            }
        };
        let (closed, deadline) = {
            let mut core = shared.lock();
            // The next batch is taken only once the last one has left: a client that does not read
            // keeps its frames counted against `max_buffered_bytes`.
            let closed = core.state.closed().is_some();
            if (conn.out.is_empty() || closed) && !core.queue.is_empty() {
                conn.take_queued(&mut core);
            }
            if !closed {
                park_writer(&mut core, cx);
            }
            let deadline = if heartbeat {
                core.state.poll_timeout()
            } else {
                None
            };
            (closed, deadline)
        };
        if closed {
            return Poll::Ready(());
        }
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
        let had_unwritten = !conn.out.is_empty();
        match conn.poll_flush(cx) {
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
    .await
}

/// Handles one message; false when the session closed because of it.
fn on_message(shared: &Arc<Shared>, conn: &mut WsConn, message: WsMessage) -> bool {
    match message {
        WsMessage::Text(bytes) => {
            let Ok(text) = std::str::from_utf8(&bytes) else {
                tracing::warn!(sid = %shared.id, "text frame is not UTF-8: closing");
                shared.lock().ws_close_code = Some(WsError::InvalidUtf8.close_code());
                shared.close(CloseReason::TransportError, false);
                return false;
            };
            match Packet::decode_text(text) {
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
            conn.out.push_back(OutFrame::new(opcode::PONG, payload));
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
