//! A connection accepted by [`serve_fn_until`](crate::serve_fn_until), as hyper sees it.
//!
//! It holds back the `101 Switching Protocols` answer to a WebSocket upgrade: the WebSocket code
//! sends it together with its first frames (for a new session, the open packet), in one write
//! instead of two. Everything else passes straight through.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How a response that switches to WebSocket starts (hyper writes HTTP/1.1 status lines).
const SWITCHING_PROTOCOLS: &[u8] = b"HTTP/1.1 101 ";

pub(crate) struct AcceptedStream {
    stream: TcpStream,
    /// The 101 response hyper wrote and believes sent. Whoever takes the stream over sends it first.
    held: Vec<u8>,
}

impl AcceptedStream {
    pub(crate) fn new(stream: TcpStream) -> Self {
        AcceptedStream {
            stream,
            held: Vec::new(),
        }
    }

    /// The stream and the bytes still owed to the client before anything else.
    pub(crate) fn into_parts(self) -> (TcpStream, Bytes) {
        (self.stream, Bytes::from(self.held))
    }

    /// Sends what was held back; only reached if hyper writes again after a 101 (it does not).
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let written = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.held))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

/// Whether the bytes of `bufs`, taken in order, start with the 101 status line.
fn starts_switching(bufs: &[IoSlice<'_>]) -> bool {
    let mut expected = SWITCHING_PROTOCOLS;
    for buf in bufs {
        let n = buf.len().min(expected.len());
        if buf[..n] != expected[..n] {
            return false;
        }
        expected = &expected[n..];
        if expected.is_empty() {
            return true;
        }
    }
    false
}

impl AsyncRead for AcceptedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for AcceptedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.is_empty() && buf.starts_with(SWITCHING_PROTOCOLS) {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.is_empty() && starts_switching(bufs) {
            for buf in bufs {
                this.held.extend_from_slice(buf);
            }
            return Poll::Ready(Ok(this.held.len()));
        }
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The held response is not flushed: holding it until the first frames is the point.
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (AcceptedStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (AcceptedStream::new(server), client)
    }

    #[tokio::test]
    async fn other_responses_pass_straight_through() {
        let (mut server, mut client) = pair().await;
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        server.flush().await.unwrap();
        let mut got = [0u8; 19];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(server.into_parts().1.is_empty());
    }

    #[tokio::test]
    async fn a_switching_response_is_held_for_whoever_takes_the_stream() {
        let (mut server, mut client) = pair().await;
        let head = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
        let parts = [IoSlice::new(&head[..10]), IoSlice::new(&head[10..])];
        let written =
            std::future::poll_fn(|cx| Pin::new(&mut server).poll_write_vectored(cx, &parts))
                .await
                .unwrap();
        assert_eq!(written, head.len());
        server.flush().await.unwrap();
        let mut byte = [0u8; 1];
        let nothing = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            client.read(&mut byte),
        )
        .await;
        assert!(
            nothing.is_err(),
            "the 101 response left before it was taken"
        );
        let (_stream, held) = server.into_parts();
        assert_eq!(&held[..], &head[..]);
    }

    #[tokio::test]
    async fn a_held_response_still_leaves_first_if_hyper_writes_again() {
        let (mut server, mut client) = pair().await;
        server
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
            .await
            .unwrap();
        server.write_all(b"after").await.unwrap();
        server.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(&got[..], b"HTTP/1.1 101 Switching Protocols\r\n\r\nafter");
    }
}
