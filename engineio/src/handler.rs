//! How the application hears about connections and their messages.

use bytes::Bytes;

use crate::session::CloseReason;
use crate::socket::Socket;

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// Receives every new connection; implemented by the application (the Socket.IO layer is one).
///
/// ```
/// use engineio::{ConnectionHandler, Handler, Message, Socket, CloseReason};
/// use std::sync::Arc;
///
/// struct Echo;
/// struct EchoConnection(Socket);
/// impl Handler for Echo {
///     fn on_connection(&self, socket: Socket) -> Arc<dyn ConnectionHandler> {
///         Arc::new(EchoConnection(socket))
///     }
/// }
/// impl ConnectionHandler for EchoConnection {
///     fn on_message(&self, message: Message) {
///         let _ = self.0.send(message);
///     }
///     fn on_close(&self, _reason: CloseReason) {}
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// A session opened. The returned handler receives its messages and its close; it is dropped when
    /// the session closes, so it may hold the [`Socket`].
    fn on_connection(&self, socket: Socket) -> std::sync::Arc<dyn ConnectionHandler>;
}

/// Receives the messages and the close of one connection.
///
/// Calls for one connection never overlap and come in the order the client sent its packets. They run
/// on the connection's I/O task: do not block in them.
pub trait ConnectionHandler: Send + Sync + 'static {
    /// A message arrived.
    fn on_message(&self, message: Message);
    /// The session closed; called exactly once, after the last [`on_message`](Self::on_message).
    fn on_close(&self, reason: CloseReason);
}
