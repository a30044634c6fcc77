//! A Socket.IO v5 server on top of the [`engineio`] crate.
//!
//! Namespaces, rooms, broadcasting, acknowledgements both ways, binary attachments anywhere in the
//! arguments, connect middlewares and packet middlewares ([`Socket::use_middleware`]), an
//! [`Adapter`] trait so that one server or a cluster serves the same API, and opt-in connection
//! state recovery ([`ConnectionStateRecovery`]).
//!
//! # Example: a chat server
//!
//! ```no_run
//! use socketio::{Config, SocketIo};
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let io = SocketIo::new(Config::default());
//!     io.of("/").on_connection(|socket| async move {
//!         socket.join("lobby");
//!         socket.on("chat", |socket, data, ack| async move {
//!             let text: String = data.arg(0).unwrap_or_default();
//!             socket.to("lobby").emit("chat", &(socket.id(), &text)).ok();
//!             if let Some(ack) = ack {
//!                 ack.send(&"ok").ok();
//!             }
//!         });
//!         socket.on_disconnect(|socket, reason| async move {
//!             println!("{} left: {reason}", socket.id());
//!         });
//!     });
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     io.serve(listener).await
//! }
//! ```

#![warn(missing_docs)]

pub mod adapter;
mod client;
mod client_files;
mod compact;
mod data;
mod handshake;
mod namespace;
mod operators;
pub mod packet;
mod recovery;
mod server;
mod socket;

pub use adapter::{AckResponses, Adapter, BroadcastOptions, LocalAdapter, Room, RoomEvent};
pub use client_files::{ClientFiles, ClientFilesError, CLIENT_FILE_NAMES};
pub use data::{Binary, Data};
/// The frames [`Adapter::broadcast_encoded`] hands over (an Engine.IO message, text or binary).
pub use engineio::Frame;
pub use handshake::{latin1, Handshake};
pub use namespace::{ConnectError, DynamicNamespace, Namespace, NamespaceInner};
pub use operators::BroadcastOperator;
pub use recovery::ConnectionStateRecovery;
pub use server::{Config, SocketIo};
pub use socket::{
    AckError, AckSender, DisconnectReason, EmitError, Event, FlaggedSocket, MiddlewareError,
    Socket, SocketError,
};
