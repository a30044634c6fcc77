//! An Engine.IO v4 server.
//!
//! Engine.IO is the transport under Socket.IO: a session that starts on HTTP long-polling or WebSocket,
//! may upgrade from polling to WebSocket without losing a packet, and stays alive with server-sent
//! pings. This crate is built in layers, each usable on its own:
//!
//! - [`packet`]: one packet ↔ its text or binary form;
//! - [`payload`]: several packets in one long-polling body;
//! - [`jsonp`]: the JSONP form of long-polling answers and POST bodies;
//! - [`wsframe`] and [`deflate`]: WebSocket frames, and their compression when it is enabled;
//! - [`session`]: the protocol state of a session (heartbeat, upgrade, close) with no I/O: packets and
//!   instants in, actions out;
//! - the server ([`EngineIo`]): a thin tokio/hyper shell that routes requests, runs the transports and
//!   hands messages to your [`Handler`].
//!
//! # Example: an echo server
//!
//! ```no_run
//! use std::sync::Arc;
//! use engineio::{CloseReason, Config, ConnectionHandler, EngineIo, Handler, Message, Socket};
//!
//! struct Echo;
//! struct EchoConnection(Socket);
//!
//! impl Handler for Echo {
//!     fn on_connection(&self, socket: Socket) -> Arc<dyn ConnectionHandler> {
//!         Arc::new(EchoConnection(socket))
//!     }
//! }
//!
//! impl ConnectionHandler for EchoConnection {
//!     fn on_message(&self, message: Message) {
//!         let _ = self.0.send(message); // text back as text, binary as binary
//!     }
//!     fn on_close(&self, reason: CloseReason) {
//!         println!("{} closed: {reason}", self.0.id());
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     EngineIo::new(Config::default(), Echo).serve(listener).await
//! }
//! ```

#![warn(missing_docs)]

mod accepted;
mod compression;
mod config;
mod cookie;
mod cors;
pub mod deflate;
mod handler;
pub mod jsonp;
pub mod packet;
pub mod payload;
mod polling;
mod request;
mod server;
pub mod session;
mod sid;
pub use sid::generate as generate_id;
mod socket;
mod stats;
mod websocket;
pub mod wsframe;

pub use compression::{ContentCoding, HttpCompression};
pub use config::{
    AllowRequest, Config, ConnectionError, ConnectionErrorHook, HeadersHook, Refusal,
};
pub use cookie::{SameSite, SessionCookie};
pub use cors::{AllowedOrigins, Cors};
pub use deflate::PerMessageDeflate;
pub use handler::{ConnectionHandler, Handler, Message};
pub use packet::{Frame, Packet, PacketError};
pub use request::RequestInfo;
pub use server::{serve_fn, serve_fn_until, Body, EngineIo, ErrorCode};
pub use session::{CloseReason, TransportKind};
pub use socket::{SendError, Socket};
pub use stats::StatsSnapshot;
