//! The WebSocket transport: one reader and one writer task per connection.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::packet::{Frame, Packet};
use crate::polling::apply_packet;
use crate::session::{CloseReason, Step};
use crate::socket::Shared;

pub(crate) type Ws = WebSocketStream<TokioIo<Upgraded>>;
type Sink = SplitSink<Ws, WsMessage>;
type Stream = SplitStream<Ws>;

/// How long the last frames and the close frame may take to leave a closed session.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// WebSocket settings: incoming messages bounded by `maxHttpBufferSize` before they are buffered.
pub(crate) fn ws_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        // Allocated for every connection up front; grown on demand for larger frames.
        .read_buffer_size(2048)
        // Frames of one batch gather here and leave in one write when the batch is flushed.
        .write_buffer_size(64 * 1024)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Runs a session opened directly over WebSocket.
/// Reader, writer and heartbeat share the connection's one task: an idle connection costs one task.
pub(crate) async fn run_direct(shared: Arc<Shared>, ws: Ws) {
    let (sink, stream) = ws.split();
    tokio::join!(
        write_loop(shared.clone(), sink),
        read_loop(shared.clone(), stream),
        shared.drive_heartbeat(),
    );
}

/// Runs a WebSocket that asks to take over a polling session: probe, then upgrade.
pub(crate) async fn run_upgrade(shared: Arc<Shared>, ws: Ws) {
    let (mut sink, mut stream) = ws.split();
    loop {
        let notified = shared.state_wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !shared.lock().state.is_upgrading() {
            // Timed out, or the session closed meanwhile.
            let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(WsMessage::Close(None))).await;
            return;
        }
        let message = tokio::select! {
            message = stream.next() => message,
            _ = &mut notified => continue,
        };
        let packet = match message {
            Some(Ok(WsMessage::Text(text))) => Packet::decode_text(&text).ok(),
            Some(Ok(WsMessage::Binary(data))) => Some(Packet::Binary(data)),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => continue,
            Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => None,
        };
        let step = match packet {
            Some(packet) => shared.lock().state.on_probe_packet(packet),
            None => {
                shared.lock().state.abort_upgrade();
                Step::AbortUpgrade
            }
        };
        match step {
            Step::AnswerProbe => {
                if sink.send(WsMessage::text("3probe")).await.is_err() {
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
                let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(WsMessage::Close(None))).await;
                return;
            }
        }
    }
    // The heartbeat keeps running on the task the polling session started with.
    tokio::join!(write_loop(shared.clone(), sink), read_loop(shared, stream));
}

async fn read_loop(shared: Arc<Shared>, mut stream: Stream) {
    loop {
        let notified = shared.state_wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if shared.lock().state.closed().is_some() {
            return;
        }
        let message = tokio::select! {
            message = stream.next() => message,
            _ = &mut notified => continue,
        };
        match message {
            Some(Ok(WsMessage::Text(text))) => match Packet::decode_text(&text) {
                Ok(packet) => {
                    apply_packet(&shared, packet, text.len());
                }
                Err(err) => {
                    tracing::warn!(sid = %shared.id, %err, "undecodable packet: closing the session");
                    shared.close(CloseReason::ParseError, false);
                }
            },
            Some(Ok(WsMessage::Binary(data))) => {
                let len = data.len();
                apply_packet(&shared, Packet::Binary(data), len);
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
            Some(Ok(WsMessage::Close(_))) | None => {
                shared.close(CloseReason::TransportClose, false)
            }
            Some(Err(tungstenite::Error::Capacity(err))) => {
                tracing::warn!(sid = %shared.id, %err, "WebSocket message over maxHttpBufferSize: closing");
                shared.lock().ws_close_code = Some(1009);
                shared.close(CloseReason::TransportError, false);
            }
            Some(Err(err)) => {
                tracing::debug!(sid = %shared.id, %err, "WebSocket error");
                shared.close(CloseReason::TransportError, false);
            }
        }
    }
}

fn to_ws_message(frame: Frame) -> WsMessage {
    match frame {
        // Frames are built from `str`s, so this validation never fails.
        Frame::Text(bytes) => WsMessage::Text(Utf8Bytes::try_from(bytes).unwrap_or_default()),
        Frame::Binary(bytes) => WsMessage::Binary(bytes),
    }
}

async fn write_batch(
    sink: &mut Sink,
    frames: &mut VecDeque<Frame>,
) -> Result<(), tungstenite::Error> {
    while let Some(frame) = frames.pop_front() {
        sink.feed(to_ws_message(frame)).await?;
    }
    sink.flush().await
}

/// Registers the writer's waker in the session core, unless it is already there.
fn park_writer(core: &mut crate::socket::Core, cx: &Context<'_>) {
    if !core
        .ws_writer
        .as_ref()
        .is_some_and(|w| w.will_wake(cx.waker()))
    {
        core.ws_writer = Some(cx.waker().clone());
    }
}

/// Completes once the session is closed.
fn closed(shared: &Shared) -> impl Future<Output = ()> + '_ {
    poll_fn(move |cx| {
        let mut core = shared.lock();
        if core.state.closed().is_some() {
            return Poll::Ready(());
        }
        park_writer(&mut core, cx);
        Poll::Pending
    })
}

async fn write_loop(shared: Arc<Shared>, mut sink: Sink) {
    // Swapped with the session's queue: both keep their capacity, no allocation per batch.
    let mut batch: VecDeque<Frame> = VecDeque::new();
    loop {
        let (closed_now, code) = poll_fn(|cx| {
            let mut core = shared.lock();
            let closed = core.state.closed().is_some();
            if core.queue.is_empty() && !closed {
                park_writer(&mut core, cx);
                return Poll::Pending;
            }
            std::mem::swap(&mut core.queue, &mut batch);
            core.queued_bytes = 0;
            Poll::Ready((closed, core.ws_close_code))
        })
        .await;
        if closed_now {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                write_batch(&mut sink, &mut batch).await?;
                let frame = code.map(|code| CloseFrame {
                    code: CloseCode::from(code),
                    reason: Utf8Bytes::default(),
                });
                sink.send(WsMessage::Close(frame)).await
            })
            .await;
            return;
        }
        let outcome = {
            let write = write_batch(&mut sink, &mut batch);
            tokio::pin!(write);
            tokio::select! {
                result = &mut write => Some(result),
                // The session closed while this batch was leaving: give it a bounded grace, then stop
                // writing to a client that does not read.
                _ = closed(&shared) => tokio::time::timeout(CLOSE_GRACE, &mut write).await.ok(),
            }
        };
        match outcome {
            Some(Ok(())) => {}
            Some(Err(err)) => {
                tracing::debug!(sid = %shared.id, %err, "WebSocket write failed");
                shared.close(CloseReason::TransportError, false);
            }
            None => return,
        }
    }
}
