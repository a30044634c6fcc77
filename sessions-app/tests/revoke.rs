//! Acknowledged requests on `/sessions`: `sessions:list` answers the bare array; `sessions:revoke`
//! signs out another session of the same user (`revoked` error, then a namespace DISCONNECT) and
//! answers `not_found` for everything else without touching anything; `sessions:revoke-others`
//! counts what it revoked; events without acks and payloads of the wrong shape break nothing.

mod support;

use serde_json::{json, Value};
use support::*;

fn not_found() -> Vec<Value> {
    vec![json!({ "ok": false, "error": "not_found" })]
}

#[tokio::test]
async fn list_answers_the_bare_array() {
    let server = TestServer::start(&[]).await;
    let mut a = login(server.addr, &token("alice")).await;
    let list = a.list().await;
    assert!(list.is_array(), "bare array: {list}");
    assert_eq!(list, a.ready["sessions"]);
    let b = login(server.addr, &token("alice")).await;
    a.expect_update().await;
    // An ignored payload does not change the answer.
    let answer = a
        .client
        .call("sessions:list", &[json!({ "x": 1 }), json!(5)])
        .await;
    assert_eq!(answer, vec![b.update.clone()]);
    server.stop().await;
}

#[tokio::test]
async fn revoke_answers_not_found_and_does_nothing_otherwise() {
    let server = TestServer::start(&[]).await;
    let mut a = login(server.addr, &token("alice")).await;
    let mut b = login(server.addr, &token("alice")).await;
    a.expect_update().await;
    let mut c = login(server.addr, &token("bob")).await;

    let cases: Vec<Vec<Value>> = vec![
        vec![json!({ "socketId": a.sid })],            // own id
        vec![json!({ "socketId": "no-such-socket" })], // unknown
        vec![json!({ "socketId": "" })],
        vec![json!({ "socketId": 42 })], // malformed
        vec![json!({ "socketId": null })],
        vec![json!({ "socketId": [b.sid.clone()] })],
        vec![json!({ "socket": b.sid.clone() })],
        vec![json!({})],
        vec![],             // missing payload
        vec![json!(b.sid)], // a bare string, not an object
        vec![Value::Null],
        vec![json!([1, 2])],
        vec![json!({ "socketId": c.sid })], // another user's session
        vec![json!({ "socketId": c.client.engine_sid })], // an Engine.IO id
    ];
    for args in cases {
        let answer = a.client.call("sessions:revoke", &args).await;
        assert_eq!(answer, not_found(), "revoke {args:?}");
    }
    // Nobody was touched, nobody heard anything.
    assert!(a.client.queued().is_empty(), "{:?}", a.client.queued());
    b.expect_silence().await;
    c.expect_silence().await;
    assert_eq!(ids(&a.list().await), vec![a.sid.clone(), b.sid.clone()]);
    assert_eq!(ids(&c.list().await), vec![c.sid.clone()]);

    // Bob cannot revoke Alice's sessions either.
    let answer = c
        .client
        .call("sessions:revoke", &[json!({ "socketId": a.sid })])
        .await;
    assert_eq!(answer, not_found());
    a.expect_silence().await;
    server.stop().await;
}

#[tokio::test]
async fn revoke_signs_out_another_session_of_the_same_user() {
    let server = TestServer::start(&[]).await;
    let mut a = login(server.addr, &token("alice")).await;
    let mut b = login(server.addr, &token("alice")).await;
    a.expect_update().await;
    let mut c = login(server.addr, &token("bob")).await;

    let answer = a
        .client
        .call("sessions:revoke", &[json!({ "socketId": b.sid })])
        .await;
    assert_eq!(answer, vec![json!({ "ok": true })]);
    b.client.expect_error_then_disconnect("revoked").await;
    assert_eq!(ids(&a.expect_update().await), vec![a.sid.clone()]);
    assert_eq!(ids(&a.list().await), vec![a.sid.clone()]);
    c.expect_silence().await;

    // Revoking it again: it is gone.
    let answer = a
        .client
        .call("sessions:revoke", &[json!({ "socketId": b.sid })])
        .await;
    assert_eq!(answer, not_found());
    server.stop().await;
}

#[tokio::test]
async fn revoke_others_revokes_every_other_session_and_counts() {
    let server = TestServer::start(&[]).await;
    let mut a = login(server.addr, &token("alice")).await;
    let mut b = login(server.addr, &token("alice")).await;
    a.expect_update().await;
    let mut c = login(server.addr, &token("alice")).await;
    a.expect_update().await;
    b.expect_update().await;
    let mut bob = login(server.addr, &token("bob")).await;

    let answer = a.client.call("sessions:revoke-others", &[]).await;
    assert_eq!(answer, vec![json!({ "ok": true, "revoked": 2 })]);
    // The one revoked second may first hear that the first one left.
    b.client
        .expect_updates_then_error_and_disconnect("revoked")
        .await;
    c.client
        .expect_updates_then_error_and_disconnect("revoked")
        .await;
    // Alice's remaining socket ends up alone (one update per departure).
    let mut last = a.expect_update().await;
    if ids(&last).len() > 1 {
        last = a.expect_update().await;
    }
    assert_eq!(ids(&last), vec![a.sid.clone()]);
    assert_eq!(ids(&a.list().await), vec![a.sid.clone()]);
    // Bob is untouched.
    bob.expect_silence().await;
    assert_eq!(ids(&bob.list().await), vec![bob.sid.clone()]);

    // Nothing left to revoke: 0.
    let answer = a.client.call("sessions:revoke-others", &[]).await;
    assert_eq!(answer, vec![json!({ "ok": true, "revoked": 0 })]);
    // A payload is ignored.
    let answer = bob
        .client
        .call("sessions:revoke-others", &[json!({ "socketId": a.sid })])
        .await;
    assert_eq!(answer, vec![json!({ "ok": true, "revoked": 0 })]);
    a.expect_silence().await;
    server.stop().await;
}

#[tokio::test]
async fn events_without_ack_and_odd_payloads_break_nothing() {
    let server = TestServer::start(&[]).await;
    let mut a = login(server.addr, &token("alice")).await;
    let mut b = login(server.addr, &token("alice")).await;
    a.expect_update().await;

    // No ack callback: nothing comes back, nothing breaks.
    a.client.emit("sessions:list", &[]);
    a.client
        .emit("sessions:revoke", &[json!({ "socketId": "unknown" })]);
    a.client.emit("sessions:revoke", &[]);
    a.client.emit("sessions:revoke", &[json!("garbage")]);
    // (revoke-others without an ack from a user's only session: nothing to revoke.)
    let mut solo = login(server.addr, &token("dave")).await;
    solo.client
        .emit("sessions:revoke-others", &[json!(1), json!(2)]);
    solo.client.emit("sessions:revoke-others", &[]);
    a.client
        .emit("no:such:event", &[json!({ "deep": [1, { "x": null }] })]);
    // Unknown events with an ack, odd argument types.
    let _ = a.client.emit_with_ack("no:such:event", &[]);
    let answer = a
        .client
        .call("sessions:revoke", &[json!({ "socketId": { "$ne": null } })])
        .await;
    assert_eq!(answer, not_found());
    let answer = a
        .client
        .call(
            "sessions:revoke",
            &[json!(true), json!({ "socketId": b.sid })],
        )
        .await;
    assert_eq!(
        answer,
        not_found(),
        "only the first argument is the payload"
    );
    // An acknowledgement nobody asked for.
    a.client.send_raw(&format!("43{NS},99[\"stray ack\"]"));

    // Both sessions still work, the list is intact, nobody was revoked.
    b.expect_silence().await;
    let list = a.list().await;
    assert_eq!(ids(&list), vec![a.sid.clone(), b.sid.clone()]);
    assert_eq!(ids(&b.list().await), vec![a.sid.clone(), b.sid.clone()]);
    assert_eq!(ids(&solo.list().await), vec![solo.sid.clone()]);
    assert!(
        solo.client.queued().is_empty(),
        "{:?}",
        solo.client.queued()
    );
    assert_eq!(get(server.addr, "/healthz").await.status, 200);
    // And new connections are served.
    let c = login(server.addr, &token("carol")).await;
    assert_eq!(ids(&c.ready["sessions"]), vec![c.sid.clone()]);
    server.stop().await;
}

#[tokio::test]
async fn garbage_on_the_wire_only_costs_the_sender_its_connection() {
    let server = TestServer::start(&[]).await;
    let mut a = login(server.addr, &token("alice")).await;
    let garbage = [
        format!("42{NS},{{broken json"),
        format!("42{NS},{{\"not\":\"an array\"}}"),
        format!("42{NS},[]"),
        format!("42{NS},[1,2,3]"),
        format!("42{NS},\"just a string\""),
        "4zzz".to_owned(),
        "9".to_owned(),
    ];
    for packet in garbage {
        let b = login(server.addr, &token("alice")).await;
        a.expect_update().await;
        b.client.send_raw(&packet);
        // Whatever happens to b (a protocol error may cost it its connection), a keeps working, and
        // if b is gone it is gone from the list, with an update to a.
        let list = a.list().await;
        let still = ids(&list);
        assert!(still.contains(&a.sid), "after {packet:?}: {list}");
        if still.contains(&b.sid) {
            b.client.leave();
        }
        assert_eq!(
            ids(&a.client.wait_event("sessions:update").await),
            vec![a.sid.clone()],
            "after {packet:?}"
        );
    }
    assert_eq!(get(server.addr, "/healthz").await.status, 200);
    let c = login(server.addr, &token("alice")).await;
    assert_eq!(
        ids(&c.ready["sessions"]),
        vec![a.sid.clone(), c.sid.clone()]
    );
    server.stop().await;
}

#[tokio::test]
async fn disconnects_of_any_kind_update_the_remaining_sessions() {
    let server =
        TestServer::start(&["--ping-interval-ms", "1000", "--ping-timeout-ms", "1000"]).await;
    let mut keeper = login(server.addr, &token("alice")).await;

    // A namespace disconnect by the client.
    let s = login(server.addr, &token("alice")).await;
    keeper.expect_update().await;
    s.client.leave();
    assert_eq!(ids(&keeper.expect_update().await), vec![keeper.sid.clone()]);

    // A WebSocket close.
    let s = login(server.addr, &token("alice")).await;
    keeper.expect_update().await;
    s.client.close_transport();
    assert_eq!(ids(&keeper.expect_update().await), vec![keeper.sid.clone()]);

    // Dropping the TCP connection without a goodbye.
    let s = login(server.addr, &token("alice")).await;
    keeper.expect_update().await;
    drop(s);
    assert_eq!(ids(&keeper.expect_update().await), vec![keeper.sid.clone()]);

    // A client that stops answering pings (ping timeout).
    let s = join_with(
        server.addr,
        Some(json!({ "token": token("alice") })),
        Opts::default().silent(),
    )
    .await;
    assert_eq!(
        ids(&keeper.expect_update().await),
        vec![keeper.sid.clone(), s.sid.clone()]
    );
    assert_eq!(ids(&keeper.expect_update().await), vec![keeper.sid.clone()]);
    assert_eq!(ids(&keeper.list().await), vec![keeper.sid.clone()]);
    drop(s);
    server.stop().await;
}
