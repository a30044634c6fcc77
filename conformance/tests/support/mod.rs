//! A `conformance-server` process for the integration tests of this crate.

#![allow(dead_code)] // each test file uses its own part

use std::io::Read;
use std::process::{Child, Command, Stdio};

use tokio::net::TcpStream;

/// A running `conformance-server` on a free port; killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Starts the server (pingInterval 1 s, pingTimeout 2 s) and reads the port it prints.
    pub fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_conformance-server"))
            .args([
                "--port",
                "0",
                "--ping-interval",
                "1000",
                "--ping-timeout",
                "2000",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("conformance-server starts");
        let mut line = String::new();
        let mut stdout = child.stdout.take().expect("stdout");
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte).map(|n| n == 1).unwrap_or(false) && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .expect("the server prints its port");
        Server { child, port }
    }

    /// The server's resident memory, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is still running");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A `ws://` URL of `path` on the server.
    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{}", self.port, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebSocket client connection.
pub type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens a WebSocket to a `ws://127.0.0.1:PORT/...` URL.
pub async fn ws_connect(url: String) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let port: u16 = url
        .trim_start_matches("ws://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a loopback URL with a port");
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let (ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
    Ok(ws)
}
