//! HTTP long-polling: a GET waits for data, a POST carries data.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::compression::{ContentCoding, HttpCompression, POLLING_CODINGS};
use crate::handler::Message;
use crate::jsonp;
use crate::packet::Packet;
use crate::payload;
use crate::server::{plain_response, Body};
use crate::session::{CloseReason, Step, TransportKind};
use crate::socket::{Core, Shared};

/// Answers a poll (GET): at once when something is queued, else when something is. With
/// `compression`, an answer of at least its threshold is compressed with a coding the request
/// accepts, as the official server does, unless every packet it carries was sent with the
/// `compress` flag off.
pub(crate) async fn get(
    shared: &Arc<Shared>,
    request: &header::HeaderMap,
    compression: Option<HttpCompression>,
) -> Response<Body> {
    let Ok(Answer { body, compress }) = poll_body(shared).await else {
        return plain_response(StatusCode::BAD_REQUEST, "");
    };
    let compression = compression.filter(|_| compress);
    // A JSONP session's answer is a script; it is compressed as such.
    let body = match &shared.jsonp {
        Some(index) => jsonp::wrap(index, &String::from_utf8_lossy(&body)),
        None => body,
    };
    // Most answers are short: the request's Accept-Encoding is only read for a long one.
    let coding = compression
        .filter(|compression| body.len() >= compression.threshold)
        .and_then(|_| accepted_coding(request));
    match coding {
        Some(coding) => {
            // Compressing a large answer takes milliseconds: off the runtime's threads.
            let compressed = if body.len() >= BLOCKING_COMPRESSION_BYTES {
                let original = body.clone();
                match tokio::task::spawn_blocking(move || coding.compress(&original)).await {
                    Ok(compressed) => compressed,
                    // Only if compressing panicked: the answer leaves as it is.
                    Err(_) => return payload_response(body),
                }
            } else {
                coding.compress(&body)
            };
            let mut response = payload_response(compressed);
            response.headers_mut().insert(
                header::CONTENT_ENCODING,
                header::HeaderValue::from_static(coding.name()),
            );
            response
        }
        None => payload_response(body),
    }
}

/// Answers of at least this many bytes are compressed on tokio's blocking pool.
const BLOCKING_COMPRESSION_BYTES: usize = 64 * 1024;

/// The coding a poll's answer may be compressed with, from the request's `Accept-Encoding`.
fn accepted_coding(request: &header::HeaderMap) -> Option<ContentCoding> {
    ContentCoding::for_request(request, &POLLING_CODINGS)
}

/// What a poll answers: the payload, and whether it may be compressed.
struct Answer {
    body: Bytes,
    compress: bool,
}

impl Answer {
    /// A packet of the transport itself (a noop, a close): the official polling transport sends
    /// it without options, so with the `compress` flag off.
    fn transport(body: &'static [u8]) -> Self {
        Answer {
            body: Bytes::from_static(body),
            compress: false,
        }
    }

    fn frames(core: &mut Core) -> Self {
        let (frames, compress) = Shared::take_queue(core);
        Answer {
            body: payload::encode(&frames),
            compress,
        }
    }
}

/// The payload a poll answers with, once there is one; `Err` for an overlapping poll (the session
/// is closed).
async fn poll_body(shared: &Arc<Shared>) -> Result<Answer, OverlappingPoll> {
    {
        let mut core = shared.lock();
        if core.poll_active {
            drop(core);
            tracing::warn!(sid = %shared.id, "overlapping poll from the client: closing the session");
            shared.close(CloseReason::TransportError, false);
            return Err(OverlappingPoll);
        }
        if let Some(answer) = ready_body(shared, &mut core) {
            answered(shared, core);
            return Ok(answer);
        }
        core.poll_active = true;
    }
    let mut guard = PollGuard {
        shared,
        armed: true,
    };
    loop {
        let notified = shared.writer_wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut core = shared.lock();
            if let Some(answer) = ready_body(shared, &mut core) {
                core.poll_active = false;
                guard.armed = false;
                answered(shared, core);
                return Ok(answer);
            }
        }
        notified.await;
    }
}

/// Ends the bookkeeping of a poll whose answer is ready. A noop due for it is no longer: whatever
/// it carries lets the client pause polling as well. If the session is closed with no close packet
/// left to deliver, it is forgotten before the answer leaves, so that a request the client sends
/// meanwhile (its own close packet, say) gets 400 as from the official server, which removes the
/// session as it writes the close packet. The lock is released first: the server's table lock is
/// never taken under it.
fn answered(shared: &Arc<Shared>, mut core: std::sync::MutexGuard<'_, Core>) {
    core.noop_due = false;
    let closed_for_good = core.finished && !core.lingering;
    drop(core);
    if closed_for_good {
        shared.forget();
    }
}

/// A GET that arrived while another was waiting.
struct OverlappingPoll;

/// What a poll can answer now, if anything. Called with the session locked.
fn ready_body(shared: &Arc<Shared>, core: &mut Core) -> Option<Answer> {
    if core.state.closed().is_some() {
        if !core.queue.is_empty() {
            // Frames queued before the close leave first; a close packet never shares their
            // response (the official client would act on the close before on them).
            return Some(Answer::frames(core));
        }
        if !core.close_packet_pending {
            return Some(Answer::transport(b"6"));
        }
        core.close_packet_pending = false;
        let body: &'static [u8] = if core.close_alone { b"1" } else { b"6\x1e1" };
        if core.lingering {
            core.lingering = false;
            // The heartbeat task forgets the session; it takes the server's table lock, which must
            // never be taken under the session lock.
            shared.state_wake.notify_waiters();
        }
        return Some(Answer::transport(body));
    }
    if core.state.transport() == TransportKind::WebSocket {
        // The session moved to WebSocket while this poll waited (an upgrade without a probe, or
        // before the probe's noop reached it): the polling transport is closed, and like the
        // official server it tells the waiting poll so with a close packet.
        return Some(Answer::transport(b"1"));
    }
    if !core.queue.is_empty() {
        return Some(Answer::frames(core));
    }
    if core.noop_due {
        return Some(Answer::transport(b"6"));
    }
    None
}

/// The headers the official polling transport puts on each of its answers: no caching anywhere,
/// and old Internet Explorer's XSS filter off (it mangled payloads).
pub(crate) fn add_transport_headers(request: &header::HeaderMap, response: &mut header::HeaderMap) {
    response.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    let old_ie = request
        .get(header::USER_AGENT)
        .map(header::HeaderValue::as_bytes)
        .is_some_and(|agent| {
            agent.windows(5).any(|w| w == b";MSIE") || agent.windows(8).any(|w| w == b"Trident/")
        });
    if old_ie {
        response.insert("x-xss-protection", header::HeaderValue::from_static("0"));
    }
}

fn payload_response(body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    response
}

/// A poll whose client went away before it was answered closes the session, as the official server
/// does ("poll connection closed prematurely").
struct PollGuard<'a> {
    shared: &'a Arc<Shared>,
    armed: bool,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.lock().poll_active = false;
            self.shared.close(CloseReason::TransportError, false);
        }
    }
}

/// Takes a POST: decodes its payload and hands the messages to the application, in order.
pub(crate) async fn post(
    shared: &Arc<Shared>,
    headers: &http::HeaderMap,
    body: Incoming,
    limit: usize,
) -> Response<Body> {
    {
        let mut core = shared.lock();
        if core.post_active {
            drop(core);
            tracing::warn!(sid = %shared.id, "overlapping POST from the client: closing the session");
            shared.close(CloseReason::TransportError, false);
            return plain_response(StatusCode::BAD_REQUEST, "");
        }
        core.post_active = true;
    }
    let result = read_post(shared, headers, body, limit).await;
    shared.lock().post_active = false;
    result
}

async fn read_post(
    shared: &Arc<Shared>,
    headers: &http::HeaderMap,
    body: Incoming,
    limit: usize,
) -> Response<Body> {
    if headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/octet-stream")
    {
        tracing::warn!(sid = %shared.id, "binary POST body is not Engine.IO v4: closing the session");
        shared.close(CloseReason::TransportError, false);
        return plain_response(StatusCode::BAD_REQUEST, "");
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return too_large(shared, limit);
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return too_large(shared, limit)
        }
        Err(err) => {
            tracing::debug!(sid = %shared.id, %err, "POST body could not be read");
            shared.close(CloseReason::TransportError, false);
            return plain_response(StatusCode::BAD_REQUEST, "");
        }
    };
    // The official server reads the body as UTF-8 with replacement characters; so do we. A JSONP
    // session posts a form: its `d` field is the payload, and without one there is no data.
    let text = match &shared.jsonp {
        None => String::from_utf8_lossy(&bytes),
        Some(_) => match jsonp::posted_payload(&bytes) {
            Some(payload) => Cow::Owned(payload),
            None => return ok_response(),
        },
    };
    for record in text.split(payload::SEPARATOR as char) {
        let wire_len = record.len();
        let packet = match payload::decode_record(record) {
            Ok(packet) => packet,
            Err(err) => {
                tracing::warn!(sid = %shared.id, %err, "undecodable polling payload: closing the session");
                shared.close(CloseReason::ParseError, false);
                break;
            }
        };
        if !apply_packet(shared, packet, wire_len) {
            break;
        }
    }
    ok_response()
}

/// The answer to a POST that was read: `ok`, as `text/html` (the official server's choice, so that
/// old browsers do not offer it as a download).
fn ok_response() -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html"),
    );
    response
}

fn too_large(shared: &Arc<Shared>, limit: usize) -> Response<Body> {
    tracing::warn!(sid = %shared.id, limit, "POST body over maxHttpBufferSize: closing the session");
    shared.close(CloseReason::TransportError, false);
    plain_response(StatusCode::PAYLOAD_TOO_LARGE, "")
}

/// Runs one packet through the state machine and acts on the answer; false when this packet closed
/// the session. (After a close the state machine ignores every packet but a close packet.)
pub(crate) fn apply_packet(shared: &Arc<Shared>, packet: Packet, wire_len: usize) -> bool {
    shared.stats.incoming(wire_len);
    let step = shared.lock().state.on_packet(Instant::now(), packet);
    match step {
        Step::Deliver(Packet::Message(text)) => shared.deliver(Message::Text(text)),
        Step::Deliver(Packet::Binary(data)) => shared.deliver(Message::Binary(data)),
        Step::Close(reason) => {
            shared.close(reason, false);
            return false;
        }
        _ => {}
    }
    true
}
