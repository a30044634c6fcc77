//! Direct WebSocket sessions: the open packet comes first as a text frame, text packets travel as
//! text frames and binary ones as binary frames, and a message over `maxHttpBufferSize` closes the
//! connection with close code 1009.

mod support;

use std::time::Duration;

use engineio::{CloseReason, Config, Message, TransportKind};
use support::*;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test]
async fn open_packet_is_the_first_text_frame() {
    let server = start_default().await;
    let mut ws = server.ws(WS_HANDSHAKE).await.unwrap();
    let first = recv_text(&mut ws).await;
    assert!(first.starts_with("0{"), "{first:?}");
    let open = parse_open(&first);
    let sid = open["sid"].as_str().unwrap();
    assert_eq!(
        server.engine.socket(sid).unwrap().transport(),
        TransportKind::WebSocket
    );
    assert_eq!(*server.record.connections.lock().unwrap(), [sid.to_owned()]);
}

#[tokio::test]
async fn text_is_echoed_as_text_frames() {
    let server = start_default().await;
    let (mut ws, sid, _) = server.ws_session().await;
    send_text(&mut ws, "4hello").await;
    send_text(&mut ws, "4héllo 😀").await;
    assert_eq!(recv_text(&mut ws).await, "4hello");
    assert_eq!(recv_text(&mut ws).await, "4héllo 😀");
    let messages = server.record.messages.lock().unwrap().clone();
    assert_eq!(
        messages,
        [
            (sid.clone(), Message::Text("hello".into())),
            (sid, Message::Text("héllo 😀".into()))
        ]
    );
}

#[tokio::test]
async fn binary_is_echoed_as_binary_frames() {
    let server = start_default().await;
    let (mut ws, _, _) = server.ws_session().await;
    send_binary(&mut ws, &[0, 1, 2, 255]).await;
    assert_eq!(recv_binary(&mut ws).await, [0, 1, 2, 255]);
    // A binary frame is raw bytes: no type digit, no base64.
    send_binary(&mut ws, b"4abc").await;
    assert_eq!(recv_binary(&mut ws).await, b"4abc");
    let messages = server.messages();
    assert_eq!(
        messages,
        [
            Message::Binary(vec![0u8, 1, 2, 255].into()),
            Message::Binary(b"4abc".to_vec().into())
        ]
    );
}

#[tokio::test]
async fn server_sends_text_and_binary_in_order() {
    let server = start_default().await;
    let (mut ws, sid, _) = server.ws_session().await;
    let socket = server.socket(&sid);
    socket.send_text("a").unwrap();
    socket.send_binary(vec![9u8].into()).unwrap();
    socket.send_text("b").unwrap();
    assert_eq!(recv_text(&mut ws).await, "4a");
    assert_eq!(recv_binary(&mut ws).await, [9]);
    assert_eq!(recv_text(&mut ws).await, "4b");
}

#[tokio::test]
async fn message_over_the_limit_closes_with_1009() {
    let mut config = Config::default();
    config.max_http_buffer_size = 1000;
    let server = start(config).await;
    let (mut ws, sid, open) = server.ws_session().await;
    assert_eq!(open["maxPayload"], 1000);
    // At the limit: fine.
    let fits = format!("4{}", "x".repeat(999));
    send_text(&mut ws, &fits).await;
    assert_eq!(recv_text(&mut ws).await, fits);
    // Over it: closed with 1009 (message too big).
    send_text(&mut ws, &format!("4{}", "x".repeat(5000))).await;
    let (frame, texts) = recv_close(&mut ws, WAIT).await;
    assert!(texts.is_empty(), "{texts:?}");
    let frame = frame.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1009);
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::TransportError
    );
    server.wait_session_count(0, WAIT).await;
    // Only the message that fitted reached the application.
    assert_eq!(server.record.messages.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn binary_message_over_the_limit_closes_with_1009() {
    let mut config = Config::default();
    config.max_http_buffer_size = 1000;
    let server = start(config).await;
    let (mut ws, sid, _) = server.ws_session().await;
    send_binary(&mut ws, &vec![7u8; 4000]).await;
    let (frame, _) = recv_close(&mut ws, WAIT).await;
    assert_eq!(u16::from(frame.expect("a close frame").code), 1009);
    server.wait_close(&sid, WAIT).await;
    server.wait_session_count(0, WAIT).await;
}

#[tokio::test]
async fn undecodable_text_frame_closes_the_session() {
    let server = start_default().await;
    let (mut ws, sid, _) = server.ws_session().await;
    send_text(&mut ws, "9nope").await;
    let _ = recv_close(&mut ws, WAIT).await;
    assert_eq!(server.wait_close(&sid, WAIT).await, CloseReason::ParseError);
    server.wait_session_count(0, WAIT).await;
}

#[tokio::test]
async fn dropping_the_connection_closes_the_session() {
    let server = start_default().await;
    let (ws, sid, _) = server.ws_session().await;
    drop(ws);
    let reason = server.wait_close(&sid, WAIT).await;
    assert!(
        matches!(
            reason,
            CloseReason::TransportClose | CloseReason::TransportError
        ),
        "{reason:?}"
    );
    server.wait_session_count(0, WAIT).await;
}

#[tokio::test]
async fn websocket_close_frame_is_a_transport_close() {
    let server = start_default().await;
    let (mut ws, sid, _) = server.ws_session().await;
    futures_util::SinkExt::send(&mut ws, WsMessage::Close(None))
        .await
        .unwrap();
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::TransportClose
    );
    server.wait_session_count(0, WAIT).await;
}

#[tokio::test]
async fn frames_queued_behind_a_blocked_write_leave_once_it_drains() {
    let mut config = Config::default();
    config.max_buffered_bytes = 64 << 20;
    let server = start(config).await;
    let (mut ws, sid, _) = server.ws_session().await;
    let socket = server.socket(&sid);
    // 16 MiB while the client reads nothing: more than the kernel's socket buffers take, so the
    // writer's batch is stuck and what follows waits in the session's queue.
    let chunk = "b".repeat(64 * 1024);
    const CHUNKS: usize = 256;
    for _ in 0..CHUNKS {
        socket.send_text(&chunk).unwrap();
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    socket.send_text("last").unwrap();
    // pingInterval is 25 s: nothing but the drained batch can bring the rest out before that.
    let last = tokio::time::timeout(Duration::from_secs(10), async {
        for i in 0..CHUNKS {
            assert_eq!(recv_text(&mut ws).await.len(), chunk.len() + 1, "frame {i}");
        }
        recv_text(&mut ws).await
    })
    .await
    .expect("frames were left in the queue after the blocked write drained");
    assert_eq!(last, "4last");
}

#[tokio::test]
async fn a_client_that_pings_but_never_reads_is_held_back_by_tcp() {
    let server = start_default().await;
    let (mut ws, _sid, _) = server.ws_session().await;
    let payload = vec![0u8; 125];
    // Every ping asks for a pong of the same size. A server that reads on regardless would queue
    // 25 MB of pongs for this client; one that stops reading lets TCP block the client's sends.
    const PINGS: usize = 200_000;
    let mut sent = 0;
    while sent < PINGS {
        let ping = futures_util::SinkExt::send(&mut ws, WsMessage::Ping(payload.clone().into()));
        if tokio::time::timeout(Duration::from_secs(1), ping)
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    assert!(
        sent < PINGS,
        "the server read {sent} pings from a client that reads none of its pongs"
    );
}

/// Records closes and panics on the message `boom`.
struct Panicky(std::sync::Arc<std::sync::Mutex<Vec<CloseReason>>>);

struct PanickyConnection(std::sync::Arc<std::sync::Mutex<Vec<CloseReason>>>);

impl engineio::Handler for Panicky {
    fn on_connection(
        &self,
        _socket: engineio::Socket,
    ) -> std::sync::Arc<dyn engineio::ConnectionHandler> {
        std::sync::Arc::new(PanickyConnection(self.0.clone()))
    }
}

impl engineio::ConnectionHandler for PanickyConnection {
    fn on_message(&self, message: Message) {
        assert!(
            message != Message::Text("boom".into()),
            "the handler panics, as asked"
        );
    }

    fn on_close(&self, reason: CloseReason) {
        self.0.lock().unwrap().push(reason);
    }
}

#[tokio::test]
async fn a_handler_that_panics_ends_its_connection_and_its_session() {
    let closes = std::sync::Arc::default();
    let server = start_with(Config::default(), Panicky(std::sync::Arc::clone(&closes))).await;
    let (mut ws, _sid, _) = server.ws_session().await;
    send_text(&mut ws, "4boom").await;
    // The connection's task is gone: its socket must close too, not stay open half-alive.
    recv_close(&mut ws, WAIT).await;
    let closed = wait_for(WAIT, || closes.lock().unwrap().first().copied()).await;
    assert_eq!(closed, Some(CloseReason::TransportError));
    server.wait_session_count(0, WAIT).await;
}

#[tokio::test]
async fn a_close_frame_is_answered_with_its_code_then_the_stream_ends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start_default().await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.target(WS_HANDSHAKE),
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    // The 101 response and the open packet, up to the end of the open packet's JSON.
    let mut seen = Vec::new();
    while !seen.ends_with(b"}") {
        let mut byte = [0u8; 1];
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "stream ended early");
        seen.push(byte[0]);
    }
    // A masked close frame with code 1000; the client's write side stays open, as a browser's does
    // until the server has closed.
    let mask = [1u8, 2, 3, 4];
    let code = 1000u16.to_be_bytes();
    let mut frame = vec![0x88, 0x82];
    frame.extend_from_slice(&mask);
    frame.extend(code.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&frame).await.unwrap();
    // The close frame comes back with the same code, then the stream ends cleanly (no reset): the
    // server closes the TCP connection first, as RFC 6455 asks.
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest))
        .await
        .expect("the server kept the connection open after the close handshake")
        .expect("the connection ended with an error, not a clean end");
    assert_eq!(rest, [0x88, 0x02, 0x03, 0xe8]);
}

#[tokio::test]
async fn binary_goes_out_as_base64_text_to_a_client_that_set_b64() {
    let server = start_default().await;
    let mut ws = server.ws(&format!("{WS_HANDSHAKE}&b64=1")).await.unwrap();
    let sid = parse_open(&recv_text(&mut ws).await)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    // Its own binary arrives either way; the echo comes back as `b` + base64 text.
    send_binary(&mut ws, &[1, 2, 3]).await;
    assert_eq!(recv_text(&mut ws).await, "bAQID");
    send_text(&mut ws, "b/wA=").await;
    assert_eq!(recv_text(&mut ws).await, "b/wA=");
    server.socket(&sid).send_binary(Vec::new().into()).unwrap();
    assert_eq!(recv_text(&mut ws).await, "b");
    send_text(&mut ws, "4text").await;
    assert_eq!(recv_text(&mut ws).await, "4text");
}

#[tokio::test]
async fn an_empty_b64_parameter_keeps_binary_frames() {
    // As the official server reads its query: `b64=` is empty, so false.
    let server = start_default().await;
    let mut ws = server.ws(&format!("{WS_HANDSHAKE}&b64=")).await.unwrap();
    recv_text(&mut ws).await;
    send_binary(&mut ws, &[7]).await;
    assert_eq!(recv_binary(&mut ws).await, [7]);
}
