//! Benchmark server on socketioxide (crates.io), used as a dependency only.
//!
//! Handlers on `/` (identical in every bench server): on connect join room `all`; `echo` → ack with
//! the same arguments; `broadcast` → emit `broadcast` with the same arguments to room `all`.
//! Settings: pingInterval 25 s, pingTimeout 20 s, max payload 1e6, no compression, 127.0.0.1 only.
//! Port: first argument, else `PORT`, else 3000. The bench payloads carry one argument, so
//! `Data<Value>` (a single argument) round-trips them unchanged.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use serde_json::Value;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::SocketIo;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let threads = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(serve(port))
}

async fn serve(port: u16) -> std::io::Result<()> {
    let (svc, io) = SocketIo::builder()
        .ping_interval(Duration::from_millis(25_000))
        .ping_timeout(Duration::from_millis(20_000))
        .max_payload(1_000_000)
        .build_svc();
    io.ns("/", async |socket: SocketRef| {
        socket.join("all");
        socket.on("echo", async |Data(data): Data<Value>, ack: AckSender| {
            ack.send(&data).ok();
        });
        socket.on("broadcast", async |io: SocketIo, Data(data): Data<Value>| {
            io.to("all").emit("broadcast", &data).await.ok();
        });
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("bench-socketioxide listening on 127.0.0.1:{port}");
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true).ok();
        let svc = svc.clone();
        tokio::spawn(async move {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await
                .ok();
        });
    }
}
