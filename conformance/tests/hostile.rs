//! Hostile clients against a running `conformance-server`, over loopback.
//!
//! Each attack runs while a well-behaved Socket.IO client stays connected beside it. After each one:
//! the server is still up, the well-behaved client saw no disruption (it is still connected and gets
//! its acknowledgements), and the server's memory (VmRSS from /proc) came back near its baseline.
//! Run with `--nocapture` to see the memory figures before, during and after each attack.

use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::{ws_connect, Server, Ws};

/// Memory the server may keep above its baseline once an attack is over.
const RSS_SLACK_KIB: u64 = 48 * 1024;

/// A Socket.IO client over WebSocket that answers pings (on its own task, as a real client does) and
/// checks acknowledgements.
struct GoodClient {
    outgoing: tokio::sync::mpsc::UnboundedSender<String>,
    acks: tokio::sync::mpsc::UnboundedReceiver<String>,
    next_id: u64,
}

impl GoodClient {
    async fn connect(server: &Server) -> GoodClient {
        let mut ws = ws_connect(server.url("/socket.io/?EIO=4&transport=websocket"))
            .await
            .expect("websocket connects");
        let open = next_text(&mut ws).await;
        assert!(open.starts_with('0'), "open packet, got {open}");
        ws.send(Message::text("40")).await.unwrap();
        let connect = next_text(&mut ws).await;
        assert!(connect.starts_with("40{"), "CONNECT answer, got {connect}");
        let (outgoing, mut to_send) = tokio::sync::mpsc::unbounded_channel::<String>();
        let (ack_tx, acks) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    out = to_send.recv() => match out {
                        Some(text) => if ws.send(Message::text(text)).await.is_err() { return },
                        None => return,
                    },
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Text(text))) => {
                            if text.as_str() == "2" {
                                if ws.send(Message::text("3")).await.is_err() { return }
                            } else if text.as_str().starts_with("43") {
                                let _ = ack_tx.send(text.as_str().to_owned());
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                }
            }
        });
        GoodClient {
            outgoing,
            acks,
            next_id: 0,
        }
    }

    fn send(&self, packet: String) {
        self.outgoing
            .send(packet)
            .expect("the good client is still connected");
    }

    /// One acknowledged round trip; panics if it does not complete in time.
    async fn round_trip(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        self.send(format!("42{id}[\"message-with-ack\",{id},\"ok\"]"));
        let expected = format!("43{id}[{id},\"ok\"]");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let ack = tokio::time::timeout(remaining, self.acks.recv())
                .await
                .expect("the good client got its ack in time")
                .expect("the good client's connection stays open");
            if ack == expected {
                return;
            }
        }
    }
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
            .expect("connection open")
            .expect("no error");
        if let Message::Text(text) = frame {
            return text.as_str().to_owned();
        }
    }
}

/// Waits until the server's RSS is within the slack of `baseline` (or the deadline passes).
async fn settle(server: &Server, baseline: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rss = server.rss_kib();
        if rss <= baseline + RSS_SLACK_KIB / 2 || Instant::now() > deadline {
            return rss;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct Report {
    name: &'static str,
    before: u64,
    during: u64,
    after: u64,
}

async fn check_after(server: &mut Server, good: &mut GoodClient, report: Report) {
    assert!(server.alive(), "{}: the server died", report.name);
    good.round_trip().await;
    eprintln!(
        "hostile: {:<34} RSS before {:>7} KiB, during {:>7} KiB, after {:>7} KiB",
        report.name, report.before, report.during, report.after
    );
    assert!(
        report.after <= report.before + RSS_SLACK_KIB,
        "{}: memory did not come back ({} KiB before, {} KiB after)",
        report.name,
        report.before,
        report.after
    );
}

async fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// Opens a polling session and returns its sid.
async fn polling_handshake(port: u16) -> String {
    let (status, body) = http_get(port, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(status, 200, "handshake answered");
    let json: serde_json::Value = serde_json::from_str(&body[1..]).expect("open packet JSON");
    json["sid"].as_str().expect("sid").to_owned()
}

/// Sends one Socket.IO packet on a fresh WebSocket connection and reports whether the server closed
/// the connection (as it must for an invalid packet).
async fn closes_on(server: &Server, packet: Message) -> bool {
    let mut ws = ws_connect(server.url("/socket.io/?EIO=4&transport=websocket"))
        .await
        .unwrap();
    next_text(&mut ws).await;
    ws.send(Message::text("40")).await.unwrap();
    next_text(&mut ws).await;
    if ws.send(packet).await.is_err() {
        return true;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_disturb_the_server() {
    let mut server = Server::start();
    let port = server.port;
    let mut good = GoodClient::connect(&server).await;
    good.round_trip().await;
    let baseline = server.rss_kib();

    // 1. Random bytes on the TCP port.
    let before = server.rss_kib();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..50 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let bytes: Vec<u8> = (0..20_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let _ = stream.write_all(&bytes).await;
    }
    let during = server.rss_kib();
    let after = settle(&server, baseline).await;
    check_after(
        &mut server,
        &mut good,
        Report {
            name: "random bytes (50 x 20 KB)",
            before,
            during,
            after,
        },
    )
    .await;

    // 2. Truncated HTTP requests.
    let before = server.rss_kib();
    for cut in [5, 20, 40, 60] {
        for _ in 0..25 {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let request =
                b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: localhost\r\n\r\n";
            let _ = stream.write_all(&request[..cut.min(request.len())]).await;
        }
    }
    let during = server.rss_kib();
    let after = settle(&server, baseline).await;
    check_after(
        &mut server,
        &mut good,
        Report {
            name: "truncated HTTP (100)",
            before,
            during,
            after,
        },
    )
    .await;

    // 3. Slowloris: many connections trickling their headers.
    let before = server.rss_kib();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream
            .write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nX-a: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    for round in 0..10 {
        for stream in &mut slow {
            let _ = stream.write_all(&[b'a' + (round as u8 % 26)]).await;
        }
        good.round_trip().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = server.rss_kib();
    drop(slow);
    let after = settle(&server, baseline).await;
    check_after(
        &mut server,
        &mut good,
        Report {
            name: "slowloris (200 trickling)",
            before,
            during,
            after,
        },
    )
    .await;

    // 4. A POST body that never ends.
    let before = server.rss_kib();
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let sid = polling_handshake(port).await;
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!(
            "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 900000\r\n\r\n40"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&vec![b'x'; 10_000]).await.unwrap();
        stalled.push(stream);
    }
    good.round_trip().await;
    let during = server.rss_kib();
    drop(stalled);
    let after = settle(&server, baseline).await;
    check_after(
        &mut server,
        &mut good,
        Report {
            name: "POST body that never ends (50)",
            before,
            during,
            after,
        },
    )
    .await;

    // 5. A WebSocket frame announcing 4 GiB.
    let before = server.rss_kib();
    for _ in 0..20 {
        let mut ws = ws_connect(server.url("/socket.io/?EIO=4&transport=websocket"))
            .await
            .unwrap();
        next_text(&mut ws).await;
        // Take the raw TCP stream back and write a frame header by hand: FIN + text, masked,
        // 64-bit length 2^32, mask key, and a little payload.
        let tcp = ws.get_mut();
        let mut frame = vec![0x81, 0xff];
        frame.extend_from_slice(&(1u64 << 32).to_be_bytes());
        frame.extend_from_slice(&[1, 2, 3, 4]);
        frame.extend_from_slice(&[0u8; 1024]);
        let _ = tcp.write_all(&frame).await;
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    // A close frame (opcode 8) with code 1009.
                    Ok(n) if n >= 4 && buf[0] == 0x88 && buf[2..4] == [0x03, 0xf1] => return true,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert_eq!(closed, Ok(true), "a 4 GiB frame closes the connection");
    }
    let during = server.rss_kib();
    let after = settle(&server, baseline).await;
    check_after(
        &mut server,
        &mut good,
        Report {
            name: "frame announcing 4 GiB (20)",
            before,
            during,
            after,
        },
    )
    .await;

    // 6-8. Invalid Socket.IO packets: 1,000 attachments, 100,000 nesting levels, ack id 2^64.
    let before = server.rss_kib();
    let placeholders: Vec<String> = (0..1000)
        .map(|n| format!("{{\"_placeholder\":true,\"num\":{n}}}"))
        .collect();
    let thousand = format!("51000-[\"message\",{}]", placeholders.join(","));
    assert!(
        closes_on(&server, Message::text(thousand)).await,
        "1,000 attachments close the connection"
    );
    let nested = format!(
        "42[\"message\",{}{}]",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(
        closes_on(&server, Message::text(nested)).await,
        "100,000 levels close the connection"
    );
    assert!(
        closes_on(
            &server,
            Message::text("4218446744073709551616[\"message-with-ack\"]")
        )
        .await,
        "an ack id of 2^64 closes the connection"
    );
    let during = server.rss_kib();
    let after = settle(&server, baseline).await;
    check_after(
        &mut server,
        &mut good,
        Report {
            name: "invalid packets (attach/nest/ack id)",
            before,
            during,
            after,
        },
    )
    .await;

    // 9. A client that never reads while others are broadcast to.
    let before = server.rss_kib();
    let mut sleeper = ws_connect(server.url("/socket.io/?EIO=4&transport=websocket"))
        .await
        .unwrap();
    next_text(&mut sleeper).await;
    sleeper.send(Message::text("40")).await.unwrap();
    next_text(&mut sleeper).await;
    // From now on the sleeper reads nothing. The good client broadcasts 40 MB to everyone.
    let chunk = "y".repeat(100_000);
    for i in 0..400 {
        let packet = format!("42[\"emit-all\",\"{chunk}\"]");
        good.send(packet);
        if i % 50 == 0 {
            good.round_trip().await;
        }
    }
    good.round_trip().await;
    let during = server.rss_kib();
    drop(sleeper);
    let after = settle(&server, baseline).await;
    check_after(
        &mut server,
        &mut good,
        Report {
            name: "never-reading client, 40 MB fan-out",
            before,
            during,
            after,
        },
    )
    .await;

    // 10. 10,000 polling sessions opened and abandoned.
    let before = server.rss_kib();
    let mut peak = before;
    for batch in 0..100 {
        let handshakes = (0..100).map(|_| polling_handshake(port));
        futures_util::future::join_all(handshakes).await;
        if batch % 20 == 0 {
            peak = peak.max(server.rss_kib());
            good.round_trip().await;
        }
    }
    peak = peak.max(server.rss_kib());
    // pingInterval + pingTimeout is 3 s here: every abandoned session is gone after that.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = settle(&server, baseline).await;
    check_after(
        &mut server,
        &mut good,
        Report {
            name: "10,000 abandoned polling sessions",
            before,
            during: peak,
            after,
        },
    )
    .await;

    // 11. 1,000 upgrades started and never finished.
    let before = server.rss_kib();
    let mut half_done = Vec::new();
    for _ in 0..1000 {
        let sid = polling_handshake(port).await;
        let url = server.url(&format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"));
        if let Ok(mut ws) = ws_connect(url).await {
            let _ = ws.send(Message::text("2probe")).await;
            half_done.push(ws);
        }
        if half_done.len() % 250 == 0 {
            good.round_trip().await;
        }
    }
    let during = server.rss_kib();
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(half_done);
    let after = settle(&server, baseline).await;
    check_after(
        &mut server,
        &mut good,
        Report {
            name: "1,000 unfinished upgrades",
            before,
            during,
            after,
        },
    )
    .await;

    // The plain HTTP side still answers too.
    let mut probe = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
    probe
        .write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = probe.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "a fresh handshake still works: {answer}"
    );
    eprintln!(
        "hostile: baseline {baseline} KiB, final {} KiB",
        server.rss_kib()
    );
}
