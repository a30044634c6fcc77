//! A chat server in a few lines: everyone in `/` joins `lobby`; `chat` messages go to the others and
//! are acknowledged; `typing` is volatile (dropped for clients that cannot take it right now).
//!
//! ```text
//! cargo run -p socketio --example chat
//! ```
//! Then, from Node: `io("http://localhost:3000").emit("chat", "hi", (ack) => console.log(ack))`.

use socketio::{Config, SocketIo};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let io = SocketIo::new(Config::default());
    io.of("/").on_connection(|socket| async move {
        socket.join("lobby");
        socket.on("chat", |socket, data, ack| async move {
            let text: String = data.arg(0).unwrap_or_default();
            socket.to("lobby").emit("chat", &(socket.id(), &text)).ok();
            if let Some(ack) = ack {
                ack.send(&"delivered").ok();
            }
        });
        socket.on("typing", |socket, _, _| async move {
            socket
                .to("lobby")
                .volatile()
                .emit("typing", socket.id())
                .ok();
        });
        socket.on_disconnect(|socket, reason| async move {
            socket
                .to("lobby")
                .emit("left", &(socket.id(), reason.as_str()))
                .ok();
        });
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("chat server on http://localhost:3000/socket.io/");
    io.serve(listener).await
}
