//! WebSocket compression (`permessage-deflate`, the official `perMessageDeflate` option) over
//! loopback, with a raw client that writes and reads the frames itself.

mod support;

use engineio::deflate::{compress, inflate, RESPONSE};
use engineio::{Config, PerMessageDeflate};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WS_QUERY: &str = "EIO=4&transport=websocket";

/// A WebSocket client on a raw TCP stream.
struct RawWs {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Sends a handshake offering `extensions`; returns the client and the response head.
    async fn connect(server: &TestServer, query: &str, extensions: Option<&str>) -> (Self, String) {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let offer = extensions
            .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{offer}\r\n",
            server.target(query),
            server.addr
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut ws = RawWs {
            tcp,
            buf: Vec::new(),
        };
        let end = loop {
            if let Some(end) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            ws.fill().await;
        };
        let head = String::from_utf8(ws.buf.drain(..end).collect()).unwrap();
        (ws, head.to_ascii_lowercase())
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, self.tcp.read(&mut chunk))
            .await
            .expect("nothing came from the server")
            .unwrap();
        assert!(n > 0, "the server closed the stream");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next server frame: its first byte and its payload.
    async fn frame(&mut self) -> (u8, Vec<u8>) {
        loop {
            if self.buf.len() >= 2 {
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    ),
                    127 if self.buf.len() >= 10 => {
                        let mut be = [0u8; 8];
                        be.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(be) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (usize::from(n), 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let b0 = self.buf[0];
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return (b0, payload);
                }
            }
            self.fill().await;
        }
    }

    /// Sends one masked frame with first byte `b0`.
    async fn send(&mut self, b0: u8, payload: &[u8]) {
        let mask = [7u8, 1, 9, 3];
        let mut frame = vec![b0];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        self.tcp.write_all(&frame).await.unwrap();
    }
}

/// The handshake was accepted without compression.
fn assert_accepted_uncompressed(head: &str) {
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(!head.contains("sec-websocket-extensions"), "{head}");
}

fn deflate_config() -> Config {
    let mut config = Config::default();
    config.per_message_deflate = Some(PerMessageDeflate::default());
    config
}

const TEXT: u8 = 0x81;
const BINARY: u8 = 0x82;
const RSV1: u8 = 0x40;

#[tokio::test]
async fn messages_over_the_threshold_travel_compressed_both_ways() {
    let server = start(deflate_config()).await;
    let (mut ws, head) = RawWs::connect(
        &server,
        WS_QUERY,
        Some("permessage-deflate; client_max_window_bits"),
    )
    .await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains(&format!("sec-websocket-extensions: {RESPONSE}\r\n")),
        "{head}"
    );
    // The open packet is below the threshold: a plain text frame.
    let (b0, open) = ws.frame().await;
    assert_eq!(b0, TEXT);
    assert!(open.starts_with(b"0{\"sid\""));

    // A compressed text message is read decompressed and its echo leaves compressed.
    let long = format!("4{}", "hello socket ".repeat(200));
    ws.send(TEXT | RSV1, &compress(long.as_bytes()).unwrap())
        .await;
    let (b0, echo) = ws.frame().await;
    assert_eq!(b0, TEXT | RSV1);
    assert!(echo.len() < long.len() / 10);
    assert_eq!(inflate(&echo, 1 << 20).unwrap(), long.as_bytes());

    // A small message leaves as it is, even when the client compressed it.
    ws.send(TEXT | RSV1, &compress(b"4hello hello hello").unwrap())
        .await;
    assert_eq!(ws.frame().await, (TEXT, b"4hello hello hello".to_vec()));
    ws.send(TEXT, b"4hi").await;
    assert_eq!(ws.frame().await, (TEXT, b"4hi".to_vec()));

    // Binary too; and each message is compressed on its own (no context kept between them).
    let binary: Vec<u8> = (0..4000u32).map(|i| (i % 7) as u8).collect();
    for _ in 0..2 {
        ws.send(BINARY | RSV1, &compress(&binary).unwrap()).await;
        let (b0, echo) = ws.frame().await;
        assert_eq!(b0, BINARY | RSV1);
        assert_eq!(inflate(&echo, 1 << 20).unwrap(), &binary[..]);
    }
    let messages = server.messages();
    assert_eq!(messages.len(), 5);
}

#[tokio::test]
async fn a_fragmented_compressed_message_is_one_message() {
    let server = start(deflate_config()).await;
    let (mut ws, _) = RawWs::connect(&server, WS_QUERY, Some("permessage-deflate")).await;
    ws.frame().await;
    let long = format!("4{}", "fragment ".repeat(300));
    let compressed = compress(long.as_bytes()).unwrap();
    let (first, second) = compressed.split_at(compressed.len() / 2);
    // RSV1 on the first frame only (text, not final), then a final continuation.
    ws.send(0x01 | RSV1, first).await;
    ws.send(0x80, second).await;
    let (b0, echo) = ws.frame().await;
    assert_eq!(b0, TEXT | RSV1);
    assert_eq!(inflate(&echo, 1 << 20).unwrap(), long.as_bytes());
}

#[tokio::test]
async fn a_compressed_message_over_the_limit_once_decompressed_closes_with_1009() {
    let mut config = deflate_config();
    config.max_http_buffer_size = 1000;
    let server = start(config).await;
    let (mut ws, _) = RawWs::connect(&server, WS_QUERY, Some("permessage-deflate")).await;
    ws.frame().await;
    let bomb = compress(format!("4{}", "a".repeat(100_000)).as_bytes()).unwrap();
    assert!(bomb.len() < 1000);
    ws.send(TEXT | RSV1, &bomb).await;
    assert_eq!(ws.frame().await, (0x88, 1009u16.to_be_bytes().to_vec()));
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn bad_deflate_data_closes_with_1007_and_rsv1_elsewhere_with_1002() {
    let server = start(deflate_config()).await;
    let (mut ws, _) = RawWs::connect(&server, WS_QUERY, Some("permessage-deflate")).await;
    ws.frame().await;
    ws.send(TEXT | RSV1, &[0xff; 32]).await;
    assert_eq!(ws.frame().await, (0x88, 1007u16.to_be_bytes().to_vec()));

    // A compressed control frame is a protocol error.
    let (mut ws, _) = RawWs::connect(&server, WS_QUERY, Some("permessage-deflate")).await;
    ws.frame().await;
    ws.send(0x89 | RSV1, b"").await;
    assert_eq!(ws.frame().await, (0x88, 1002u16.to_be_bytes().to_vec()));
}

#[tokio::test]
async fn off_by_default_offers_are_ignored_and_rsv1_is_an_error() {
    let server = start_default().await;
    let (mut ws, head) = RawWs::connect(
        &server,
        WS_QUERY,
        Some("permessage-deflate; client_max_window_bits"),
    )
    .await;
    assert_accepted_uncompressed(&head);
    ws.frame().await;
    ws.send(TEXT | RSV1, &compress(b"4hello hello hello").unwrap())
        .await;
    assert_eq!(ws.frame().await, (0x88, 1002u16.to_be_bytes().to_vec()));
}

#[tokio::test]
async fn a_client_without_an_offer_gets_plain_frames() {
    let server = start(deflate_config()).await;
    let (mut ws, head) = RawWs::connect(&server, WS_QUERY, None).await;
    assert!(!head.contains("sec-websocket-extensions"), "{head}");
    ws.frame().await;
    let long = format!("4{}", "x".repeat(5000));
    ws.send(TEXT, long.as_bytes()).await;
    assert_eq!(ws.frame().await, (TEXT, long.into_bytes()));
    // A window the compressor cannot promise: no compression, the connection goes on.
    let (mut ws, head) = RawWs::connect(
        &server,
        WS_QUERY,
        Some("permessage-deflate; server_max_window_bits=10"),
    )
    .await;
    assert_accepted_uncompressed(&head);
    assert_eq!(ws.frame().await.0, TEXT);
}

#[tokio::test]
async fn a_malformed_offer_is_refused_with_400_before_the_upgrade() {
    let server = start(deflate_config()).await;
    for offer in [
        "permessage-deflate; unknown",
        "permessage-deflate; server_max_window_bits=20",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    ] {
        let (_, head) = RawWs::connect(&server, WS_QUERY, Some(offer)).await;
        assert!(head.starts_with("http/1.1 400"), "{offer}: {head}");
    }
    // Without the option the header is not read at all, as in the official server.
    let server = start_default().await;
    let (_, head) = RawWs::connect(&server, WS_QUERY, Some("permessage-deflate; unknown")).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
}

#[tokio::test]
async fn an_upgraded_session_negotiates_too_and_gets_its_queued_packets_compressed() {
    let server = start(deflate_config()).await;
    let (sid, _) = server.handshake().await;
    let (mut ws, head) = RawWs::connect(
        &server,
        &format!("{WS_QUERY}&sid={sid}"),
        Some("permessage-deflate; client_max_window_bits"),
    )
    .await;
    assert!(
        head.contains(&format!("sec-websocket-extensions: {RESPONSE}\r\n")),
        "{head}"
    );
    ws.send(TEXT, b"2probe").await;
    assert_eq!(ws.frame().await, (TEXT, b"3probe".to_vec()));
    // Queued while the upgrade is under way: leaves on the WebSocket, compressed, once it is done.
    let long = "queued ".repeat(400);
    server.socket(&sid).send_text(&long).unwrap();
    ws.send(TEXT, b"5").await;
    let (b0, payload) = ws.frame().await;
    assert_eq!(b0, TEXT | RSV1);
    assert_eq!(
        inflate(&payload, 1 << 20).unwrap(),
        format!("4{long}").as_bytes()
    );
}

#[tokio::test]
async fn one_packet_sent_to_many_sessions_reaches_each_compressed() {
    let server = start(deflate_config()).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (mut ws, _) = RawWs::connect(&server, WS_QUERY, Some("permessage-deflate")).await;
        let (_, open) = ws.frame().await;
        let open = parse_open(std::str::from_utf8(&open).unwrap());
        clients.push((ws, open["sid"].as_str().unwrap().to_owned()));
    }
    // One encoded packet shared by every receiver, as a broadcast hands it out; two of them, so
    // that each receiver takes several before the next.
    let first = bytes::Bytes::from(format!("4{}", "broadcast ".repeat(300)));
    let second = bytes::Bytes::from(format!("4{}", "another one ".repeat(300)));
    for (_, sid) in &clients {
        server
            .socket(sid)
            .send_frames([
                engineio::Frame::Text(first.clone()),
                engineio::Frame::Text(second.clone()),
            ])
            .unwrap();
    }
    for (ws, _) in &mut clients {
        for expected in [&first, &second] {
            let (b0, payload) = ws.frame().await;
            assert_eq!(b0, TEXT | RSV1);
            assert_eq!(inflate(&payload, 1 << 20).unwrap(), expected);
        }
    }
}

#[tokio::test]
async fn frames_sent_with_the_compress_flag_off_leave_plain() {
    let server = start(deflate_config()).await;
    let (mut ws, _) = RawWs::connect(&server, WS_QUERY, Some("permessage-deflate")).await;
    let (_, open) = ws.frame().await;
    let open = parse_open(std::str::from_utf8(&open).unwrap());
    let socket = server.socket(open["sid"].as_str().unwrap());
    let long = bytes::Bytes::from(format!("4{}", "compressible ".repeat(300)));
    let binary = bytes::Bytes::from(vec![9u8; 5000]);
    // Off: plain frames, however large and compressible; on (the default): compressed.
    socket
        .send_frames_with(
            [
                engineio::Frame::Text(long.clone()),
                engineio::Frame::Binary(binary.clone()),
            ],
            false,
        )
        .unwrap();
    socket
        .send_frames_with([engineio::Frame::Text(long.clone())], true)
        .unwrap();
    socket
        .send_frames([engineio::Frame::Binary(binary.clone())])
        .unwrap();
    assert_eq!(ws.frame().await, (TEXT, long.to_vec()));
    assert_eq!(ws.frame().await, (BINARY, binary.to_vec()));
    let (b0, payload) = ws.frame().await;
    assert_eq!(b0, TEXT | RSV1);
    assert_eq!(inflate(&payload, 1 << 20).unwrap(), long);
    let (b0, payload) = ws.frame().await;
    assert_eq!(b0, BINARY | RSV1);
    assert_eq!(inflate(&payload, 1 << 20).unwrap(), binary);
}
