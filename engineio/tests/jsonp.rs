//! JSONP long-polling, as the official server still serves it: a handshake with `j` opens a session
//! whose answers are `___eio[j]("…");` scripts (the callback index is the digits of `j`) and whose
//! POSTs carry the payload in the form field `d`; such a session upgrades to WebSocket as any other.

mod support;

use std::time::Duration;

use engineio::{CloseReason, Message};
use support::*;

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// The string a JSONP answer passes to `___eio[index]`.
fn called_with(script: &str, index: &str) -> String {
    let literal = script
        .strip_prefix(&format!("___eio[{index}]("))
        .and_then(|rest| rest.strip_suffix(");"))
        .unwrap_or_else(|| panic!("not a call of ___eio[{index}]: {script:?}"));
    serde_json::from_str(literal).expect("the argument is a string literal")
}

/// A form POST on the session `sid`.
async fn post_form(server: &TestServer, sid: &str, form: &[u8]) -> HttpResponse {
    server.request("POST", &polling(sid), &[FORM], form).await
}

/// A JSONP session opened with `j`: its sid.
async fn jsonp_handshake(server: &TestServer, j: &str, index: &str) -> String {
    let response = server.get(&format!("{POLLING_HANDSHAKE}&j={j}")).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );
    let open = called_with(&response.text(), index);
    parse_open(&open)["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn handshake_post_and_poll_speak_jsonp() {
    let server = start_default().await;
    let sid = jsonp_handshake(&server, "x12", "12").await;
    // `\n` in the form stands for a newline; `+` is a space; two packets.
    let response = post_form(&server, &sid, b"d=4a\\nb+c%1E4%C3%A9").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "ok");
    let messages = server.messages();
    assert_eq!(
        messages,
        [Message::Text("a\nb c".into()), Message::Text("é".into())]
    );
    let echo = server.get(&polling(&sid)).await;
    assert_eq!(echo.status, 200);
    assert_eq!(echo.text(), "___eio[12](\"4a\\nb c\\u001e4é\");");
    assert_eq!(called_with(&echo.text(), "12"), "4a\nb c\u{1e}4é");
}

#[tokio::test]
async fn a_post_without_the_d_field_carries_nothing() {
    let server = start_default().await;
    let sid = jsonp_handshake(&server, "", "").await;
    let response = post_form(&server, &sid, b"data=4hello").await;
    assert_eq!(response.text(), "ok");
    assert!(server.messages().is_empty());
    // The session is untouched: a close packet in `d` still closes it.
    let response = post_form(&server, &sid, b"d=1").await;
    assert_eq!(response.text(), "ok");
    assert_eq!(
        server.wait_close(&sid, WAIT).await,
        CloseReason::TransportClose
    );
}

#[tokio::test]
async fn a_plain_session_ignores_j_after_the_handshake() {
    // JSONP is chosen at the handshake, as in the official server: `j` on a later request of a
    // plain session changes nothing.
    let server = start_default().await;
    let (sid, _) = server.handshake().await;
    server.socket(&sid).send_text("plain").unwrap();
    let response = server.get(&format!("{}&j=3", polling(&sid))).await;
    assert_eq!(response.text(), "4plain");
}

#[tokio::test]
async fn a_jsonp_session_upgrades_to_websocket() {
    let server = start_default().await;
    let sid = jsonp_handshake(&server, "0", "0").await;
    let mut ws = server.upgrade(&sid).await;
    send_text(&mut ws, "4over ws").await;
    // WebSocket frames are plain Engine.IO: no script around them.
    let echoed = tokio::time::timeout(Duration::from_secs(5), recv_text(&mut ws))
        .await
        .unwrap();
    assert_eq!(echoed, "4over ws");
}
