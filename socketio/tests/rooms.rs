//! Rooms and broadcasting: join/leave, `to`, `except`, `broadcast` leaving out the sender, broadcast
//! with acknowledgement (replies and missing sockets), and the server-wide operations
//! `fetch_sockets`, `sockets_join`, `sockets_leave` and `disconnect_sockets`.
//!
//! Absence is checked without sleeping: after the broadcast under test, a sentinel event goes to every
//! socket; a socket that was not targeted receives the sentinel first.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use support::*;

/// `/` sockets join the room named in their auth (`{"room": …}`); events `join`, `leave`, `shout`
/// (to everyone else), `tell` (to a room, except the sender) and `answer` (acks with the argument).
async fn room_server() -> TestServer {
    start(|io| {
        io.of("/").on_connection(|socket| async move {
            if let Some(room) = socket.handshake().auth.get("room").and_then(|r| r.as_str()) {
                socket.join(room.to_owned());
            }
            socket.on("join", |socket, data, ack| async move {
                socket.join(data.arg::<String>(0).unwrap());
                if let Some(ack) = ack {
                    ack.send(&()).unwrap();
                }
            });
            socket.on("leave", |socket, data, ack| async move {
                socket.leave(&data.arg::<String>(0).unwrap());
                if let Some(ack) = ack {
                    ack.send(&()).unwrap();
                }
            });
            socket.on("shout", |socket, data, _| async move {
                socket.broadcast().emit_data("shout", data).ok();
            });
            socket.on("tell", |socket, data, _| async move {
                let room: String = data.arg(0).unwrap();
                socket
                    .to(room)
                    .emit("told", &data.arg::<String>(1).unwrap())
                    .unwrap();
            });
        });
    })
    .await
}

async fn in_room(server: &TestServer, room: &str) -> (Client, String) {
    let mut client = server.client().await;
    let sid = client.join("/", Some(json!({ "room": room }))).await;
    (client, sid)
}

/// Sends the sentinel to every socket of `/`.
fn sentinel(server: &TestServer) {
    server.io.emit("sentinel", &()).unwrap();
}

async fn expect_sentinel(client: &mut Client) {
    assert_eq!(client.recv_packet().await, r#"2["sentinel"]"#);
}

#[tokio::test]
async fn to_reaches_the_room_only() {
    let server = room_server().await;
    let (mut a, _) = in_room(&server, "red").await;
    let (mut b, _) = in_room(&server, "red").await;
    let (mut c, _) = in_room(&server, "blue").await;
    server.io.to("red").emit("news", &"for red").unwrap();
    sentinel(&server);
    for client in [&mut a, &mut b] {
        assert_eq!(client.recv_packet().await, r#"2["news","for red"]"#);
        expect_sentinel(client).await;
    }
    expect_sentinel(&mut c).await;
}

#[tokio::test]
async fn to_several_rooms_reaches_each_socket_once() {
    let server = room_server().await;
    let (mut a, _) = in_room(&server, "red").await;
    a.send(r#"21["join","blue"]"#).await;
    assert_eq!(a.recv_packet().await, "31[]");
    let (mut b, _) = in_room(&server, "blue").await;
    let (mut c, _) = in_room(&server, "green").await;
    server.io.to("red").to("blue").emit("news", &1).unwrap();
    sentinel(&server);
    for client in [&mut a, &mut b] {
        assert_eq!(client.recv_packet().await, r#"2["news",1]"#);
        expect_sentinel(client).await;
    }
    expect_sentinel(&mut c).await;
}

#[tokio::test]
async fn except_leaves_out_the_room() {
    let server = room_server().await;
    let (mut a, _) = in_room(&server, "red").await;
    let (mut b, _) = in_room(&server, "blue").await;
    let (mut c, _) = in_room(&server, "green").await;
    server.io.except("red").emit("news", &"not red").unwrap();
    sentinel(&server);
    expect_sentinel(&mut a).await;
    for client in [&mut b, &mut c] {
        assert_eq!(client.recv_packet().await, r#"2["news","not red"]"#);
        expect_sentinel(client).await;
    }
    // `to` and `except` together.
    server
        .io
        .to("blue")
        .to("green")
        .except("green")
        .emit("news", &2)
        .unwrap();
    sentinel(&server);
    expect_sentinel(&mut a).await;
    assert_eq!(b.recv_packet().await, r#"2["news",2]"#);
    expect_sentinel(&mut b).await;
    expect_sentinel(&mut c).await;
}

#[tokio::test]
async fn broadcast_from_a_socket_excludes_the_sender() {
    let server = room_server().await;
    let (mut a, _) = in_room(&server, "red").await;
    let (mut b, _) = in_room(&server, "red").await;
    let (mut c, _) = in_room(&server, "blue").await;
    a.send(r#"2["shout","hello all"]"#).await;
    for client in [&mut b, &mut c] {
        assert_eq!(client.recv_packet().await, r#"2["shout","hello all"]"#);
    }
    sentinel(&server);
    for client in [&mut a, &mut b, &mut c] {
        expect_sentinel(client).await;
    }
    // socket.to(room) also leaves out the sender.
    a.send(r#"2["tell","red","psst"]"#).await;
    assert_eq!(b.recv_packet().await, r#"2["told","psst"]"#);
    sentinel(&server);
    for client in [&mut a, &mut b, &mut c] {
        expect_sentinel(client).await;
    }
}

#[tokio::test]
async fn join_and_leave() {
    let server = room_server().await;
    let (mut a, a_sid) = in_room(&server, "lobby").await;
    let socket = server.socket(&a_sid);
    // In join order, its own id first, as the official `socket.rooms` set.
    assert_eq!(socket.rooms(), [a_sid.clone(), "lobby".to_owned()]);
    for room in ["extra", "b", "a", "z"] {
        a.send(&format!(r#"21["join","{room}"]"#)).await;
        assert_eq!(a.recv_packet().await, "31[]");
    }
    assert_eq!(socket.rooms(), [&a_sid, "lobby", "extra", "b", "a", "z"]);
    a.send(r#"22["leave","lobby"]"#).await;
    assert_eq!(a.recv_packet().await, "32[]");
    assert_eq!(socket.rooms(), [&a_sid, "extra", "b", "a", "z"]);
    // Joining a room again keeps its place.
    socket.join("extra");
    assert_eq!(socket.rooms(), [&a_sid, "extra", "b", "a", "z"]);
    server.io.to("lobby").emit("news", &"lobby").unwrap();
    server.io.to("extra").emit("news", &"extra").unwrap();
    assert_eq!(a.recv_packet().await, r#"2["news","extra"]"#);
    // A socket's own id is a room.
    server.io.to(a_sid.clone()).emit("direct", &()).unwrap();
    assert_eq!(a.recv_packet().await, r#"2["direct"]"#);
}

#[tokio::test]
async fn rooms_are_per_namespace() {
    let server = start(|io| {
        for name in ["/", "/other"] {
            io.of(name).on_connection(|socket| async move {
                socket.join("shared-name");
            });
        }
    })
    .await;
    let mut client = server.client().await;
    client.join("/", None).await;
    client.join("/other", None).await;
    server
        .io
        .of("/other")
        .to("shared-name")
        .emit("x", &())
        .unwrap();
    assert_eq!(client.recv_packet().await, r#"2/other,["x"]"#);
    server.io.to("shared-name").emit("y", &()).unwrap();
    assert_eq!(client.recv_packet().await, r#"2["y"]"#);
}

#[tokio::test]
async fn broadcast_with_ack_collects_replies_and_reports_missing() {
    let server = room_server().await;
    let (mut a, a_sid) = in_room(&server, "r").await;
    let (mut b, b_sid) = in_room(&server, "r").await;
    let (mut c, c_sid) = in_room(&server, "r").await;
    let io = server.io.clone();
    let pending = tokio::spawn(async move {
        io.to("r")
            .timeout(Duration::from_millis(500))
            .emit_with_ack("vote", &"?")
            .await
    });
    // Every socket gets the same packet, with one ack id.
    let mut ids = HashSet::new();
    for client in [&mut a, &mut b, &mut c] {
        let packet = client.recv_packet().await;
        let (prefix, payload) = split_json(&packet);
        assert_eq!(payload, json!(["vote", "?"]));
        ids.insert(prefix.to_owned());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = ids.into_iter().next().unwrap()[1..].to_owned();
    a.send(&format!(r#"3{id}["yes","ignored extra"]"#)).await;
    b.send(&format!(r#"3{id}["no"]"#)).await;
    // c does not answer.
    let responses = pending.await.unwrap().unwrap();
    let mut replies: Vec<(String, serde_json::Value)> = responses
        .replies
        .iter()
        .map(|(sid, data)| (sid.clone(), json!(data.args())))
        .collect();
    replies.sort_by(|x, y| x.0.cmp(&y.0));
    let mut expected = vec![(a_sid, json!(["yes"])), (b_sid, json!(["no"]))];
    expected.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(replies, expected);
    assert_eq!(responses.missing, [c_sid]);
    assert!(responses.timed_out());
    // A late answer is ignored and the connection is fine.
    c.send(&format!(r#"3{id}["late"]"#)).await;
    c.send(r#"25["join","x"]"#).await;
    assert_eq!(c.recv_packet().await, "35[]");
}

#[tokio::test]
async fn broadcast_with_ack_resolves_early_when_everyone_answered() {
    let server = room_server().await;
    let (mut a, _) = in_room(&server, "r").await;
    let io = server.io.clone();
    let started = std::time::Instant::now();
    let pending = tokio::spawn(async move {
        io.timeout(Duration::from_secs(30))
            .emit_with_ack("ping", &())
            .await
    });
    let packet = a.recv_packet().await;
    let id = &split_json(&packet).0[1..];
    a.send(&format!("3{id}[1]")).await;
    let responses = tokio::time::timeout(WAIT, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < WAIT);
    assert_eq!(responses.replies.len(), 1);
    assert!(responses.missing.is_empty());
    assert!(!responses.timed_out());
}

#[tokio::test]
async fn fetch_sockets_and_remote_join_leave() {
    let server = room_server().await;
    let (mut a, a_sid) = in_room(&server, "red").await;
    let (mut b, b_sid) = in_room(&server, "red").await;
    let (mut c, c_sid) = in_room(&server, "blue").await;
    let nsp = server.io.of("/");
    let ids = |sockets: Vec<socketio::Socket>| -> HashSet<String> {
        sockets.iter().map(|s| s.id().to_owned()).collect()
    };
    assert_eq!(
        ids(nsp.fetch_sockets().await),
        HashSet::from([a_sid.clone(), b_sid.clone(), c_sid.clone()])
    );
    assert_eq!(
        ids(nsp.to("red").fetch_sockets().await),
        HashSet::from([a_sid.clone(), b_sid.clone()])
    );
    assert_eq!(
        ids(nsp.except("red").fetch_sockets().await),
        HashSet::from([c_sid.clone()])
    );

    // Everyone in red also joins green.
    nsp.to("red").sockets_join(vec!["green".to_owned()]).await;
    assert_eq!(
        ids(nsp.to("green").fetch_sockets().await),
        HashSet::from([a_sid.clone(), b_sid.clone()])
    );
    server.io.to("green").emit("g", &()).unwrap();
    sentinel(&server);
    for client in [&mut a, &mut b] {
        assert_eq!(client.recv_packet().await, r#"2["g"]"#);
        expect_sentinel(client).await;
    }
    expect_sentinel(&mut c).await;

    // Everyone leaves red.
    nsp.sockets_leave(vec!["red".to_owned()]).await;
    assert!(nsp.to("red").fetch_sockets().await.is_empty());
    assert!(!server.socket(&a_sid).rooms().contains(&"red".to_owned()));
    server.io.to("red").emit("r", &()).unwrap();
    sentinel(&server);
    for client in [&mut a, &mut b, &mut c] {
        expect_sentinel(client).await;
    }
}

#[tokio::test]
async fn disconnect_sockets_without_closing_the_connection() {
    let server = start(|io| {
        io.of("/chat").on_connection(|socket| async move {
            socket.join("kick-me");
        });
    })
    .await;
    let mut a = server.client().await;
    let a_main = a.join("/", None).await;
    let a_chat = a.join("/chat", None).await;
    let mut b = server.client().await;
    let b_chat = b.join("/chat", None).await;
    server
        .io
        .of("/chat")
        .to("kick-me")
        .disconnect_sockets(false)
        .await;
    assert_eq!(a.recv_packet().await, "1/chat,");
    assert_eq!(b.recv_packet().await, "1/chat,");
    let gone = wait_for(WAIT, || {
        let chat = server.io.of("/chat");
        (chat.socket(&a_chat).is_none() && chat.socket(&b_chat).is_none()).then_some(())
    })
    .await;
    assert!(gone.is_some());
    // The connections and their other namespaces stay.
    assert!(server.io.of("/").socket(&a_main).is_some());
    assert_eq!(server.io.engine().session_count(), 2);
    server.socket(&a_main).emit("still", &()).unwrap();
    assert_eq!(a.recv_packet().await, r#"2["still"]"#);
}

#[tokio::test]
async fn disconnect_sockets_closing_the_connection() {
    let server = room_server().await;
    let (mut a, _) = in_room(&server, "red").await;
    let (mut b, b_sid) = in_room(&server, "blue").await;
    server.io.of("/").to("red").disconnect_sockets(true).await;
    let frames = a.expect_closed().await;
    assert_eq!(frames, [Frame::Packet("1".to_owned())]);
    let one_left = wait_for(WAIT, || {
        (server.io.engine().session_count() == 1).then_some(())
    })
    .await;
    assert!(one_left.is_some());
    assert!(server.io.of("/").socket(&b_sid).is_some());
    sentinel(&server);
    expect_sentinel(&mut b).await;
}

#[tokio::test]
async fn room_events_follow_the_official_adapter() {
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let server = start(move |io| {
        let seen = seen.clone();
        io.of("/").on_room_event(move |event| {
            seen.lock().unwrap().push(event.clone());
        });
    })
    .await;
    let (_client, sid) = server.connected().await;
    let (_other, other) = server.connected().await;
    let socket = server.socket(&sid);
    let peer = server.socket(&other);
    socket.join("lobby");
    socket.join("lobby"); // already a member: nothing
    peer.join("lobby");
    socket.leave("lobby");
    socket.leave("nowhere"); // not a member: nothing
    peer.disconnect();

    use socketio::RoomEvent::*;
    let joined = |room: &str, sid: &str| Joined {
        room: room.into(),
        sid: sid.into(),
    };
    let left = |room: &str, sid: &str| Left {
        room: room.into(),
        sid: sid.into(),
    };
    let mut expected = vec![
        Created(sid.clone()),
        joined(&sid, &sid),
        Created(other.clone()),
        joined(&other, &other),
        Created("lobby".into()),
        joined("lobby", &sid),
        joined("lobby", &other),
        left("lobby", &sid),
    ];
    // A socket leaving the namespace leaves its rooms in any order; each empty room is deleted
    // right after its last member left.
    let all = wait_for(WAIT, || {
        let events = events.lock().unwrap();
        (events.len() == expected.len() + 4).then(|| events.clone())
    })
    .await
    .expect("every room event");
    assert_eq!(all[..expected.len()], expected[..]);
    let mut tail = all[expected.len()..].to_vec();
    let own_first = tail[0] == left(&other, &other);
    if !own_first {
        tail.rotate_left(2);
    }
    expected = vec![
        left(&other, &other),
        Deleted(other.clone()),
        left("lobby", &other),
        Deleted("lobby".into()),
    ];
    assert_eq!(tail, expected);
}

#[tokio::test]
async fn a_room_listener_may_change_rooms_itself() {
    let server = start(|io| {
        let nsp = io.of("/");
        let handle = nsp.clone();
        nsp.on_room_event(move |event| {
            if let socketio::RoomEvent::Joined { room, sid } = event {
                if room == "a" {
                    handle.socket(sid).unwrap().join("b");
                }
            }
        });
    })
    .await;
    let (_client, sid) = server.connected().await;
    let socket = server.socket(&sid);
    socket.join("a");
    let mut rooms = socket.rooms();
    rooms.sort();
    let mut expected = vec!["a".to_owned(), "b".to_owned(), sid.clone()];
    expected.sort();
    assert_eq!(rooms, expected);
}

#[tokio::test]
async fn server_level_calls_act_on_the_main_namespace() {
    let server = start(|io| {
        io.use_middleware(|socket| async move {
            match socket.handshake().auth.get("deny") {
                Some(_) => Err(socketio::ConnectError::new("denied")),
                None => Ok(()),
            }
        });
        io.on_connection(|socket| async move {
            socket.join("members");
        });
    })
    .await;
    let (mut a, a_id) = server.connected().await;
    let (mut b, b_id) = server.connected().await;
    let mut refused = server.client().await;
    refused.send(r#"0{"deny":true}"#).await;
    assert_eq!(refused.recv_packet().await, r#"4{"message":"denied"}"#);

    let mut ids: Vec<String> = server
        .io
        .fetch_sockets()
        .await
        .iter()
        .map(|s| s.id().to_owned())
        .collect();
    ids.sort();
    let mut expected = vec![a_id.clone(), b_id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(server.socket(&a_id).rooms().contains(&"members".to_owned()));

    server.io.sockets_join(vec!["extra".into()]).await;
    assert!(server.socket(&b_id).rooms().contains(&"extra".to_owned()));
    server.io.sockets_leave(vec!["extra".into()]).await;
    assert!(!server.socket(&b_id).rooms().contains(&"extra".to_owned()));

    let io = server.io.clone();
    let asked = tokio::spawn(async move {
        io.timeout(WAIT)
            .emit_with_ack("count", &())
            .await
            .unwrap()
            .replies
            .len()
    });
    for client in [&mut a, &mut b] {
        let packet = client.recv_packet().await;
        let (head, _) = split_json(&packet);
        client
            .send(&format!("3{}[1]", head.strip_prefix('2').unwrap()))
            .await;
    }
    assert_eq!(asked.await.unwrap(), 2);

    server.io.disconnect_sockets(false).await;
    assert_eq!(a.recv_packet().await, "1");
    assert_eq!(b.recv_packet().await, "1");
}

#[tokio::test]
async fn a_room_listener_may_disconnect_a_socket_that_is_connecting() {
    let server = start(|io| {
        let nsp = io.of("/");
        let handle = nsp.clone();
        nsp.on_room_event(move |event| {
            // The socket's own room is joined while it connects.
            if let socketio::RoomEvent::Joined { room, sid } = event {
                if room == sid {
                    handle.socket(sid).unwrap().disconnect();
                }
            }
        });
    })
    .await;
    let mut client = server.client().await;
    client.send("0").await;
    let mut packets = vec![client.recv_packet().await, client.recv_packet().await];
    packets.sort();
    assert!(packets[0].starts_with(r#"0{"sid":"#), "{packets:?}");
    assert_eq!(packets[1], "1");
    assert!(server.io.of("/").sockets().is_empty());
}
