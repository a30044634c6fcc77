//! `conformance-server`: the server the official protocol test-suites and the differential suite drive.
//! Its contract is `conformance/SERVER.md`.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use engineio::{CloseReason, Config, ConnectionHandler, Cors, EngineIo, Handler, Message, Socket};

/// Command line of the conformance server.
#[derive(Debug, Parser)]
#[command(
    name = "conformance-server",
    about = "Test-mode Engine.IO / Socket.IO server"
)]
struct Args {
    /// TCP port (listens on 127.0.0.1).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Engine.IO pingInterval in milliseconds.
    #[arg(long, default_value_t = 300)]
    ping_interval: u64,
    /// Engine.IO pingTimeout in milliseconds.
    #[arg(long, default_value_t = 200)]
    ping_timeout: u64,
    /// Socket.IO connectTimeout in milliseconds.
    #[arg(long, default_value_t = 1000)]
    connect_timeout: u64,
    /// maxHttpBufferSize in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    max_payload: usize,
}

struct Echo;
struct EchoConnection(Socket);

impl Handler for Echo {
    fn on_connection(&self, socket: Socket) -> Arc<dyn ConnectionHandler> {
        Arc::new(EchoConnection(socket))
    }
}

impl ConnectionHandler for EchoConnection {
    fn on_message(&self, message: Message) {
        let _ = self.0.send(message);
    }
    fn on_close(&self, _reason: CloseReason) {}
}

fn engine_config(args: &Args, path: &str) -> Config {
    let mut config = Config::default();
    config.path = path.to_owned();
    config.ping_interval = Duration::from_millis(args.ping_interval);
    config.ping_timeout = Duration::from_millis(args.ping_timeout);
    config.max_http_buffer_size = args.max_payload;
    config.cors = Some(Cors::default());
    config
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let engine = EngineIo::new(engine_config(&args, "/engine.io/"), Echo);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on {}", listener.local_addr()?.port());
    let _ = args.connect_timeout;
    engineio::serve_fn(listener, move |request, remote| {
        let engine = engine.clone();
        async move {
            if engine.handles_path(request.uri().path()) {
                engine.handle(request, remote).await
            } else {
                let mut response = http::Response::new(engineio::Body::default());
                *response.status_mut() = http::StatusCode::NOT_FOUND;
                response
            }
        }
    })
    .await
}
