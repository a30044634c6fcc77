//! An Engine.IO echo server on http://localhost:3000/engine.io/ : every message comes back as it came.
//!
//! ```text
//! cargo run -p engineio --example echo
//! ```

use std::sync::Arc;

use engineio::{CloseReason, Config, ConnectionHandler, Cors, EngineIo, Handler, Message, Socket};

struct Echo;
struct EchoConnection(Socket);

impl Handler for Echo {
    fn on_connection(&self, socket: Socket) -> Arc<dyn ConnectionHandler> {
        tracing::info!(sid = socket.id(), transport = ?socket.transport(), "connected");
        Arc::new(EchoConnection(socket))
    }
}

impl ConnectionHandler for EchoConnection {
    fn on_message(&self, message: Message) {
        let _ = self.0.send(message);
    }
    fn on_close(&self, reason: CloseReason) {
        tracing::info!(sid = self.0.id(), %reason, "closed");
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().init();
    let mut config = Config::default();
    config.cors = Some(Cors::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    tracing::info!("Engine.IO echo server on http://localhost:3000/engine.io/");
    EngineIo::new(config, Echo).serve(listener).await
}
