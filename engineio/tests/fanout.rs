//! Fan-out from a handler: a message that one WebSocket client sends is forwarded, inside the
//! server's `on_message`, to every session (the shape of a room broadcast). Those frames are
//! written by the sender's task at the end of its read turn; a receiver whose socket is full gets
//! the rest from its own task. Every receiver must get every frame once, in order, followed by
//! what is sent to it afterwards from outside any read turn.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use engineio::{CloseReason, Config, ConnectionHandler, Frame, Handler, Message, Socket};
use support::*;

/// Forwards every text message to every live session, sender included, as one shared frame.
#[derive(Clone, Default)]
struct FanOut {
    sockets: Arc<Mutex<Vec<Socket>>>,
}

struct FanOutConnection {
    socket: Socket,
    all: FanOut,
}

impl Handler for FanOut {
    fn on_connection(&self, socket: Socket) -> Arc<dyn ConnectionHandler> {
        self.sockets.lock().unwrap().push(socket.clone());
        Arc::new(FanOutConnection {
            socket,
            all: self.clone(),
        })
    }
}

impl ConnectionHandler for FanOutConnection {
    fn on_message(&self, message: Message) {
        let Message::Text(text) = message else { return };
        let mut encoded = Vec::with_capacity(1 + text.len());
        encoded.push(b'4');
        encoded.extend_from_slice(text.as_bytes());
        let frame = Frame::Text(Bytes::from(encoded));
        for socket in self.all.sockets.lock().unwrap().iter() {
            let _ = socket.send_frames([frame.clone()]);
        }
    }

    fn on_close(&self, _reason: CloseReason) {
        let id = self.socket.id().to_owned();
        self.all.sockets.lock().unwrap().retain(|s| s.id() != id);
    }
}

/// The `index`-th message of the run: its number, then padding up to `len` bytes.
fn message(index: usize, len: usize) -> String {
    let mut text = format!("{index:06}:");
    text.extend(std::iter::repeat_n('x', len - text.len()));
    text
}

async fn fan_out_reaches_every_receiver_in_order() {
    const RECEIVERS: usize = 8;
    const MESSAGES: usize = 300;
    // 300 × 32 KiB = 9.6 MB: more than a loopback socket's buffers hold, so the writes to the
    // receiver that does not read stop part-way and its own task must finish them.
    const LEN: usize = 32 * 1024;
    let mut config = Config::default();
    config.max_buffered_bytes = 64 << 20;
    let fan_out = FanOut::default();
    let client = start_with(config, fan_out.clone()).await;
    let (mut sender, _, _) = client.ws_session().await;
    let mut receivers = Vec::new();
    for _ in 0..RECEIVERS {
        receivers.push(client.ws_session().await);
    }
    let (mut stalled, stalled_sid, _) = receivers.pop().unwrap();
    for i in 0..MESSAGES {
        send_text(&mut sender, &format!("4{}", message(i, LEN))).await;
    }
    // Read by everyone who reads: the sender, then the receivers one after the other.
    let expected: Vec<String> = (0..MESSAGES)
        .map(|i| format!("4{}", message(i, LEN)))
        .collect();
    tokio::time::timeout(Duration::from_secs(30), async {
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(&recv_text(&mut sender).await, want, "sender, message {i}");
        }
        for (n, (ws, _, _)) in receivers.iter_mut().enumerate() {
            for (i, want) in expected.iter().enumerate() {
                assert_eq!(&recv_text(ws).await, want, "receiver {n}, message {i}");
            }
        }
    })
    .await
    .expect("a reading receiver did not get every message");

    // Sent from outside any read turn: it must come after everything fanned out before.
    client.socket(&stalled_sid).send_text("after").unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(
                &recv_text(&mut stalled).await,
                want,
                "stalled receiver, message {i}"
            );
        }
        assert_eq!(recv_text(&mut stalled).await, "4after");
    })
    .await
    .expect("the receiver that read late did not get every message");
    assert_eq!(fan_out.sockets.lock().unwrap().len(), RECEIVERS + 1);
}

#[tokio::test]
async fn fan_out_on_one_thread() {
    within_a_minute(fan_out_reaches_every_receiver_in_order()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_across_threads() {
    within_a_minute(fan_out_reaches_every_receiver_in_order()).await;
}

/// A server that stops reading would hang the sends: every step is bounded.
async fn within_a_minute(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the fan-out did not finish within a minute");
}
