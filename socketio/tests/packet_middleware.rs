//! Packet middlewares (the official `socket.use`) and the socket's `error` handlers: middlewares
//! run in order after the catch-all listeners and may change the event; a refused event reaches
//! no handler and is never acknowledged; an invalid packet is reported before the close; reserved
//! event names cannot be emitted.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use socketio::{AckError, Data, EmitError, MiddlewareError, SocketError};
use support::*;

/// `/` sockets with two packet middlewares: the first refuses `forbidden`, the second renames
/// `alias` to `echo` and appends `"checked"`. `echo` answers its ack (or emits `echo`) with its
/// arguments; every catch-all call and error is recorded in `log`.
async fn guarded_server(log: Arc<Mutex<Vec<String>>>, with_error_handler: bool) -> TestServer {
    start(move |io| {
        io.of("/").on_connection(move |socket| {
            let log = log.clone();
            async move {
                let any_log = log.clone();
                socket.on_any(move |_, name, _| {
                    any_log.lock().unwrap().push(format!("any {name}"));
                    async {}
                });
                socket.use_middleware(|_, event| async move {
                    if event.name == "forbidden" {
                        return Err(MiddlewareError::new("forbidden event"));
                    }
                    Ok(event)
                });
                socket.use_middleware(|_, mut event| async move {
                    if event.name == "alias" {
                        event.name = "echo".into();
                        let mut args = event.data.args().to_vec();
                        args.push(json!("checked"));
                        event.data = Data::new(args, event.data.attachments().to_vec());
                    }
                    Ok(event)
                });
                socket.on("echo", |socket, data, ack| async move {
                    match ack {
                        Some(ack) => ack.send_data(data).unwrap(),
                        None => socket.emit_data("echo", data).unwrap(),
                    }
                });
                socket.on("alias", |socket, _, _| async move {
                    socket.emit("alias-handler-ran", &()).unwrap();
                });
                if with_error_handler {
                    socket.on_error(move |socket, err| {
                        log.lock().unwrap().push(format!("error {err}"));
                        async move {
                            if let SocketError::Middleware(refusal) = err {
                                socket.emit("refused", &(refusal.message(),)).unwrap();
                            }
                        }
                    });
                }
            }
        });
    })
    .await
}

#[tokio::test]
async fn a_refused_event_reaches_no_handler_and_is_never_acknowledged() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = guarded_server(log.clone(), true).await;
    let (mut client, _) = server.connected().await;

    client.send(r#"21["forbidden",1]"#).await;
    assert_eq!(
        client.recv_packet().await,
        r#"2["refused","forbidden event"]"#
    );
    // No ACK 1 came before the next answer: the refused event was dropped, not answered.
    client.send(r#"22["echo",2]"#).await;
    assert_eq!(client.recv_packet().await, "32[2]");
    assert_eq!(
        *log.lock().unwrap(),
        ["any forbidden", "error forbidden event", "any echo"]
    );
}

#[tokio::test]
async fn middlewares_run_in_order_and_may_change_the_event() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = guarded_server(log.clone(), true).await;
    let (mut client, _) = server.connected().await;

    // Renamed to `echo` by the second middleware: the `echo` handler runs, not `alias`'s.
    client.send(r#"2["alias","x"]"#).await;
    assert_eq!(client.recv_packet().await, r#"2["echo","x","checked"]"#);
    client.send(r#"27["alias",{"y":1}]"#).await;
    assert_eq!(client.recv_packet().await, r#"37[{"y":1},"checked"]"#);
    // Catch-all listeners saw the event as the client sent it, before the middlewares.
    assert_eq!(*log.lock().unwrap(), ["any alias", "any alias"]);
}

#[tokio::test]
async fn without_an_error_handler_a_refused_event_is_only_dropped() {
    let server = guarded_server(Arc::new(Mutex::new(Vec::new())), false).await;
    let (mut client, sid) = server.connected().await;

    client.send(r#"21["forbidden"]"#).await;
    client.send(r#"22["echo","after"]"#).await;
    assert_eq!(client.recv_packet().await, r#"32["after"]"#);
    assert!(server.socket(&sid).connected());
}

#[tokio::test]
async fn an_async_middleware_delays_the_handler_and_a_socket_gone_meanwhile_gets_nothing() {
    let handled = Arc::new(Mutex::new(Vec::new()));
    let seen = handled.clone();
    let server = start(move |io| {
        io.of("/").on_connection(move |socket| {
            let seen = seen.clone();
            async move {
                socket.use_middleware(|_, event| async move {
                    let wait: u64 = event.data.arg(0).unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    Ok(event)
                });
                socket.on("work", move |_, data, _| {
                    seen.lock().unwrap().push(data.arg::<u64>(0).unwrap());
                    async {}
                });
            }
        });
    })
    .await;
    let (mut client, sid) = server.connected().await;

    client.send(r#"2["work",50]"#).await;
    let done = wait_for(WAIT, || handled.lock().unwrap().first().copied()).await;
    assert_eq!(done, Some(50));

    // The client leaves while the middleware waits: the handler never runs.
    client.send(r#"2["work",300]"#).await;
    client.send("1").await;
    let socket = server.socket(&sid);
    assert!(wait_for(WAIT, || (!socket.connected()).then_some(()))
        .await
        .is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*handled.lock().unwrap(), [50]);
}

#[tokio::test]
async fn an_invalid_packet_is_reported_to_every_socket_before_the_close() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = guarded_server(log.clone(), true).await;
    let (mut client, _) = server.connected().await;

    client.send(r#"2["echo""#).await;
    client.expect_closed().await;
    let seen = wait_for(WAIT, || {
        let log = log.lock().unwrap();
        (!log.is_empty()).then(|| log.clone())
    })
    .await;
    assert_eq!(seen.unwrap(), ["error invalid payload"]);
}

#[tokio::test]
async fn reserved_event_names_cannot_be_emitted() {
    let server = start(|_| {}).await;
    let (mut client, sid) = server.connected().await;
    let socket = server.socket(&sid);

    for name in [
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    ] {
        assert!(matches!(
            socket.emit(name, &()),
            Err(EmitError::ReservedEvent(n)) if n == name
        ));
        assert!(matches!(
            socket.emit_with_ack(name, &(), WAIT).await,
            Err(AckError::ReservedEvent(n)) if n == name
        ));
        assert!(matches!(
            socket.volatile().emit(name, &()),
            Err(EmitError::ReservedEvent(_))
        ));
        assert!(matches!(
            server.io.emit(name, &()),
            Err(EmitError::ReservedEvent(_))
        ));
        assert!(matches!(
            server.io.of("/").to("all").emit_with_ack(name, &()).await,
            Err(AckError::ReservedEvent(_))
        ));
    }
    assert_eq!(
        EmitError::ReservedEvent("connect".into()).to_string(),
        r#""connect" is a reserved event name"#
    );
    // Nothing of those went out; a name close to a reserved one does.
    socket.emit("connected", &()).unwrap();
    assert_eq!(client.recv_packet().await, r#"2["connected"]"#);
}
