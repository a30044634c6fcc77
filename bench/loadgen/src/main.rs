//! Load generator for the Socket.IO benchmarks.
//!
//! Speaks Engine.IO v4 / Socket.IO v5 itself (raw WebSocket frames and raw long-polling requests; no
//! Socket.IO client library), runs one scenario against `127.0.0.1:PORT/socket.io/` and prints:
//!
//! * `#start` / `#end` on stdout at the edges of the measured window (the driver samples the
//!   server's CPU time there),
//! * for `connect`: `#connected N` once every client is connected and idle (with `--wait-stdin` it
//!   then waits for a line on stdin before disconnecting, so the driver can read the server's RSS),
//!   and `#disconnected` once all are closed,
//! * one JSON line (starting with `{`) with every figure, including the load generator's own CPU
//!   time over the measured window (`getrusage`).
//!
//! Client sockets are bound to the loopback source addresses 127.0.0.1 … 127.0.0.16 (round robin)
//! before connecting, so that 10k+ connections never exhaust the ephemeral ports of one address.
//! Everything runs on one thread (tokio current-thread runtime + `LocalSet`): the driver pins the
//! load generator to one core.

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::spawn_local;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;
type R<T> = Result<T, String>;

const SOURCE_ADDRESSES: u8 = 16;
const ECHO_PAD: &str = "0123456789abcdef0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Clone, Debug)]
struct Opts {
    scenario: String,
    port: u16,
    clients: usize,
    concurrency: usize,
    duration: f64,
    warmup: f64,
    inflight: usize,
    hold: f64,
    wait_stdin: bool,
    drain_timeout: f64,
    label: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen SCENARIO [--port P] [--clients N] [--concurrency C] [--duration S] \
         [--warmup S] [--inflight K] [--hold S] [--wait-stdin] [--drain-timeout S] [--label L]\n\
         scenarios: connect echo broadcast polling-handshake polling-echo upgrade"
    );
    std::process::exit(2)
}

fn parse_opts() -> Opts {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| usage());
    let mut o = Opts {
        scenario,
        port: 3000,
        clients: 100,
        concurrency: 128,
        duration: 5.0,
        warmup: 1.0,
        inflight: 1,
        hold: 1.0,
        wait_stdin: false,
        drain_timeout: 10.0,
        label: String::new(),
    };
    while let Some(flag) = args.next() {
        if flag == "--wait-stdin" {
            o.wait_stdin = true;
            continue;
        }
        let value = args.next().unwrap_or_else(|| usage());
        let num = || value.parse::<f64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--port" => o.port = num() as u16,
            "--clients" => o.clients = num() as usize,
            "--concurrency" => o.concurrency = num() as usize,
            "--duration" => o.duration = num(),
            "--warmup" => o.warmup = num(),
            "--inflight" => o.inflight = num() as usize,
            "--hold" => o.hold = num(),
            "--drain-timeout" => o.drain_timeout = num(),
            "--label" => o.label = value.clone(),
            _ => usage(),
        }
    }
    o.clients = o.clients.max(1);
    o.concurrency = o.concurrency.max(1);
    o.inflight = o.inflight.max(1);
    o
}

// ---------------------------------------------------------------------------------------------
// Clock, CPU time, statistics

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    // getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn mark(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Percentiles (nearest rank) of latencies in microseconds.
fn percentiles(mut v: Vec<u32>) -> serde_json::Value {
    if v.is_empty() {
        return serde_json::json!({"n": 0});
    }
    v.sort_unstable();
    let pick = |p: f64| {
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1] as f64 / 1000.0
    };
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64 / 1000.0;
    serde_json::json!({
        "n": v.len(),
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "p999_ms": pick(0.999),
        "max_ms": pick(1.0),
        "mean_ms": mean,
    })
}

fn us_since(t0: u64) -> u32 {
    ((now_ns().saturating_sub(t0)) / 1000).min(u32::MAX as u64) as u32
}

/// The measured window: CPU time and wall time between `#start` and `#end`.
struct Window {
    t0: Instant,
    cpu0: f64,
}

impl Window {
    fn start() -> Window {
        let w = Window { t0: Instant::now(), cpu0: cpu_seconds() };
        mark("#start");
        w
    }
    fn end(self) -> (f64, f64) {
        let wall = self.t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - self.cpu0;
        mark("#end");
        (wall, cpu)
    }
}

struct Errors {
    count: Cell<u64>,
    samples: RefCell<Vec<String>>,
}

impl Errors {
    fn new() -> Rc<Errors> {
        Rc::new(Errors { count: Cell::new(0), samples: RefCell::new(Vec::new()) })
    }
    fn add(&self, e: String) {
        self.count.set(self.count.get() + 1);
        let mut s = self.samples.borrow_mut();
        if s.len() < 5 && !s.contains(&e) {
            s.push(e);
        }
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({"count": self.count.get(), "samples": *self.samples.borrow()})
    }
}

// ---------------------------------------------------------------------------------------------
// Transport helpers

fn source_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + (i % SOURCE_ADDRESSES as usize) as u8)
}

async fn tcp_connect(i: usize, port: u16) -> R<TcpStream> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::from((source_ip(i), 0)))
        .map_err(|e| format!("bind {}: {e}", source_ip(i)))?;
    let stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).ok();
    Ok(stream)
}

async fn ws_open(i: usize, port: u16, sid: Option<&str>) -> R<Ws> {
    let stream = tcp_connect(i, port).await?;
    let url = match sid {
        None => format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"),
        Some(sid) => format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&sid={sid}"),
    };
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| format!("ws handshake: {e}"))?;
    Ok(ws)
}

async fn ws_text(ws: &mut Ws, text: String) -> R<()> {
    ws.send(Message::text(text)).await.map_err(|e| format!("ws send: {e}"))
}

/// Next text frame; answers pings (`2`) on the way.
async fn ws_next_text(ws: &mut Ws) -> R<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                if t.as_str() == "2" {
                    ws_text(ws, "3".into()).await?;
                    continue;
                }
                return Ok(t.as_str().to_owned());
            }
            Some(Ok(Message::Close(_))) | None => return Err("ws closed by server".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("ws read: {e}")),
        }
    }
}

/// WebSocket-only Socket.IO connection to `/`: Engine.IO open, then CONNECT `40` and its answer.
async fn sio_connect_ws(i: usize, port: u16) -> R<Ws> {
    let mut ws = ws_open(i, port, None).await?;
    let open = ws_next_text(&mut ws).await?;
    if !open.starts_with("0{") {
        return Err(format!("expected open packet, got {open:.40}"));
    }
    ws_text(&mut ws, "40".into()).await?;
    loop {
        let t = ws_next_text(&mut ws).await?;
        if t.starts_with("40") {
            return Ok(ws);
        }
        if t.starts_with("44") {
            return Err(format!("connect error: {t:.80}"));
        }
    }
}

/// Sends a close frame and waits (briefly) for the server to close too.
async fn ws_close(mut ws: Ws) {
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// One HTTP/1.1 keep-alive connection from a fixed source address.
struct Http {
    i: usize,
    port: u16,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Http {
    fn new(i: usize, port: u16) -> Http {
        Http { i, port, sender: None }
    }

    async fn connect(&mut self) -> R<()> {
        let stream = tcp_connect(self.i, self.port).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("http handshake: {e}"))?;
        spawn_local(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// A request on `/socket.io/?EIO=4&transport=polling{query}`; returns the body of a 200.
    async fn request(&mut self, method: Method, query: &str, body: Option<String>) -> R<Bytes> {
        let mut reusable = None;
        if let Some(mut s) = self.sender.take() {
            if s.ready().await.is_ok() {
                reusable = Some(s);
            }
        }
        let mut sender = match reusable {
            Some(s) => s,
            None => {
                self.connect().await?;
                let mut s = self.sender.take().unwrap();
                s.ready().await.map_err(|e| format!("http ready: {e}"))?;
                s
            }
        };
        let uri = format!("/socket.io/?EIO=4&transport=polling{query}");
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", format!("127.0.0.1:{}", self.port));
        if body.is_some() {
            req = req.header("content-type", "text/plain;charset=UTF-8");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| format!("request: {e}"))?;
        let resp = sender.send_request(req).await.map_err(|e| format!("http: {e}"))?;
        let status = resp.status();
        let keep = !resp
            .headers()
            .get("connection")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("http body: {e}"))?
            .to_bytes();
        if keep {
            self.sender = Some(sender);
        }
        if !status.is_success() {
            return Err(format!("http status {status}: {:.80}", String::from_utf8_lossy(&bytes)));
        }
        Ok(bytes)
    }
}

/// Splits a long-polling payload into its packets.
fn packets(body: &Bytes) -> Vec<String> {
    String::from_utf8_lossy(body).split('\u{1e}').map(str::to_owned).collect()
}

fn sid_of_open(open: &str) -> R<String> {
    let v: serde_json::Value = serde_json::from_str(open.strip_prefix('0').unwrap_or(open))
        .map_err(|e| format!("open packet {open:.60}: {e}"))?;
    v["sid"].as_str().map(str::to_owned).ok_or_else(|| "open packet without sid".into())
}

/// Polling handshake with the namespace CONNECT: GET open, POST `40`, GET until `40{…}`.
async fn sio_connect_polling(http: &mut Http) -> R<String> {
    let body = http.request(Method::GET, "", None).await?;
    let first = packets(&body).into_iter().next().unwrap_or_default();
    if !first.starts_with("0{") {
        return Err(format!("expected open packet, got {first:.60}"));
    }
    let sid = sid_of_open(&first)?;
    let q = format!("&sid={sid}");
    let ok = http.request(Method::POST, &q, Some("40".into())).await?;
    if &ok[..] != b"ok" {
        return Err(format!("POST 40 answered {:.40}", String::from_utf8_lossy(&ok)));
    }
    loop {
        let body = http.request(Method::GET, &q, None).await?;
        for p in packets(&body) {
            if p.starts_with("40") {
                return Ok(sid);
            }
            if p.starts_with("44") {
                return Err(format!("connect error: {p:.80}"));
            }
            if p == "2" {
                http.request(Method::POST, &q, Some("3".into())).await?;
            }
            if p == "1" {
                return Err("session closed during handshake".into());
            }
        }
    }
}

fn echo_packet(id: u64) -> String {
    format!("42{id}[\"echo\",{{\"seq\":{id},\"pad\":\"{ECHO_PAD}\"}}]")
}

/// Whether `text` is the ack `43<id>[…]`.
fn is_ack(text: &str, id: u64) -> bool {
    let Some(rest) = text.strip_prefix("43") else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse::<u64>().ok() == Some(id) && rest[digits..].starts_with('[')
}

fn parse_u64_after(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Shared: connect N WebSocket clients, each kept alive by its own task

/// A connected client handed to a scenario.
struct Conn {
    ws: Ws,
}

/// Connects `n` clients with at most `concurrency` handshakes in flight. Returns the connections
/// (in the order they completed), their connect latencies (µs) and the wall time.
async fn connect_many(o: &Opts, errors: &Rc<Errors>) -> (Vec<Conn>, Vec<u32>, f64) {
    let sem = Rc::new(Semaphore::new(o.concurrency));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let t0 = Instant::now();
    for i in 0..o.clients {
        let sem = sem.clone();
        let tx = tx.clone();
        let port = o.port;
        spawn_local(async move {
            let _permit = sem.acquire().await;
            let started = now_ns();
            let r = sio_connect_ws(i, port).await;
            let _ = tx.send(r.map(|ws| (ws, us_since(started))));
        });
    }
    drop(tx);
    let mut conns = Vec::with_capacity(o.clients);
    let mut lat = Vec::with_capacity(o.clients);
    while let Some(r) = rx.recv().await {
        match r {
            Ok((ws, l)) => {
                conns.push(Conn { ws });
                lat.push(l);
            }
            Err(e) => errors.add(e),
        }
    }
    (conns, lat, t0.elapsed().as_secs_f64())
}

/// Keeps a connection alive (answers pings) until `stop` flips, then closes it.
async fn idle_until(mut ws: Ws, mut stop: watch::Receiver<bool>, closed: Rc<Cell<usize>>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    if ws.send(Message::text("3")).await.is_err() { break; }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
    ws_close(ws).await;
    closed.set(closed.get() + 1);
}

async fn wait_count(counter: &Rc<Cell<usize>>, target: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while counter.get() < target {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn scenario_connect(o: &Opts) -> serde_json::Value {
    let errors = Errors::new();
    let w = Window::start();
    let (conns, lat, wall) = connect_many(o, &errors).await;
    let (window, cpu) = w.end();
    let connected = conns.len();
    let (stop_tx, stop_rx) = watch::channel(false);
    let closed = Rc::new(Cell::new(0usize));
    for c in conns {
        spawn_local(idle_until(c.ws, stop_rx.clone(), closed.clone()));
    }
    mark(&format!("#connected {connected}"));
    if o.wait_stdin {
        let mut line = String::new();
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let _ = tokio::io::AsyncBufReadExt::read_line(&mut stdin, &mut line).await;
    } else {
        tokio::time::sleep(Duration::from_secs_f64(o.hold)).await;
    }
    let t = Instant::now();
    let _ = stop_tx.send(true);
    let all_closed = wait_count(&closed, connected, Duration::from_secs(30)).await;
    let disconnect_s = t.elapsed().as_secs_f64();
    mark("#disconnected");
    serde_json::json!({
        "connected": connected,
        "errors": errors.json(),
        "connect_wall_s": wall,
        "window_s": window,
        "loadgen_cpu_s": cpu,
        "throughput": connected as f64 / window,
        "unit": "connects/s",
        "latency": percentiles(lat),
        "disconnect_s": disconnect_s,
        "all_closed": all_closed,
    })
}

/// Phases shared by the echo-style scenarios.
const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

struct EchoStats {
    phase: Cell<u8>,
    count: Cell<u64>,
    lat: RefCell<Vec<u32>>,
    done: Cell<usize>,
}

async fn echo_client(mut ws: Ws, st: Rc<EchoStats>, errors: Rc<Errors>) {
    let mut id: u64 = 0;
    'outer: while st.phase.get() != STOP {
        id += 1;
        let t0 = now_ns();
        if let Err(e) = ws_text(&mut ws, echo_packet(id)).await {
            errors.add(e);
            break;
        }
        loop {
            match ws_next_text(&mut ws).await {
                Ok(t) if is_ack(&t, id) => break,
                Ok(_) => {}
                Err(e) => {
                    errors.add(e);
                    break 'outer;
                }
            }
        }
        if st.phase.get() == MEASURE {
            st.count.set(st.count.get() + 1);
            st.lat.borrow_mut().push(us_since(t0));
        }
    }
    ws_close(ws).await;
    st.done.set(st.done.get() + 1);
}

async fn measure_phases(o: &Opts, phase: &Cell<u8>) -> (f64, f64) {
    tokio::time::sleep(Duration::from_secs_f64(o.warmup)).await;
    phase.set(MEASURE);
    let w = Window::start();
    tokio::time::sleep(Duration::from_secs_f64(o.duration)).await;
    phase.set(STOP);
    w.end()
}

async fn scenario_echo(o: &Opts) -> serde_json::Value {
    let errors = Errors::new();
    let (conns, _, _) = connect_many(o, &errors).await;
    let n = conns.len();
    let st = Rc::new(EchoStats {
        phase: Cell::new(WARMUP),
        count: Cell::new(0),
        lat: RefCell::new(Vec::new()),
        done: Cell::new(0),
    });
    for c in conns {
        spawn_local(echo_client(c.ws, st.clone(), errors.clone()));
    }
    let (window, cpu) = measure_phases(o, &st.phase).await;
    let count = st.count.get();
    let _ = wait_until(|| st.done.get() >= n, Duration::from_secs(10)).await;
    serde_json::json!({
        "connected": n,
        "errors": errors.json(),
        "window_s": window,
        "loadgen_cpu_s": cpu,
        "acks": count,
        "throughput": count as f64 / window,
        "unit": "acks/s",
        "latency": percentiles(st.lat.take()),
    })
}

async fn wait_until(cond: impl Fn() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

struct Broadcast {
    receivers: u32,
    phase: Cell<u8>,
    /// Per message: deliveries so far, send time, time of the last delivery.
    count: RefCell<Vec<u32>>,
    sent_at: RefCell<Vec<u64>>,
    last_at: RefCell<Vec<u64>>,
    /// Messages sent during the measured window (by sequence number).
    measured_from: Cell<usize>,
    measured_to: Cell<usize>,
    completed: Cell<usize>,
    delivered_in_window: Cell<u64>,
    delivered_total: Cell<u64>,
    unexpected: Cell<u64>,
    lat: RefCell<Vec<u32>>,
    notify: Notify,
    done: Cell<usize>,
}

impl Broadcast {
    fn deliver(&self, text: &str) {
        let (Some(seq), Some(ts)) = (parse_u64_after(text, "\"seq\":"), parse_u64_after(text, "\"ts\":"))
        else {
            self.unexpected.set(self.unexpected.get() + 1);
            return;
        };
        let now = now_ns();
        let seq = seq as usize;
        let mut count = self.count.borrow_mut();
        if seq >= count.len() || count[seq] >= self.receivers {
            self.unexpected.set(self.unexpected.get() + 1);
            return;
        }
        count[seq] += 1;
        self.last_at.borrow_mut()[seq] = now;
        self.delivered_total.set(self.delivered_total.get() + 1);
        if self.phase.get() == MEASURE {
            self.delivered_in_window.set(self.delivered_in_window.get() + 1);
            self.lat.borrow_mut().push(((now.saturating_sub(ts)) / 1000).min(u32::MAX as u64) as u32);
        }
        if count[seq] == self.receivers {
            self.completed.set(self.completed.get() + 1);
            self.notify.notify_one();
        }
    }
}

/// The next outgoing frame; never ready without a channel (`None` ends that select branch).
async fn recv_opt(rx: &mut Option<mpsc::UnboundedReceiver<String>>) -> Option<String> {
    match rx.as_mut() {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A broadcast receiver; the sender's connection also gets `outgoing` frames to write.
async fn broadcast_client(
    mut ws: Ws,
    st: Rc<Broadcast>,
    mut outgoing: Option<mpsc::UnboundedReceiver<String>>,
    mut stop: watch::Receiver<bool>,
    errors: Rc<Errors>,
) {
    loop {
        tokio::select! {
            biased;
            Some(text) = recv_opt(&mut outgoing) => {
                if let Err(e) = ws_text(&mut ws, text).await { errors.add(e); break; }
            }
            _ = stop.changed() => break,
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str();
                    if t == "2" {
                        if let Err(e) = ws_text(&mut ws, "3".into()).await { errors.add(e); break; }
                    } else if t.starts_with("42[\"broadcast\"") {
                        st.deliver(t);
                    }
                }
                Some(Ok(Message::Close(_))) | None => { errors.add("ws closed by server".into()); break; }
                Some(Ok(_)) => {}
                Some(Err(e)) => { errors.add(format!("ws read: {e}")); break; }
            },
        }
    }
    ws_close(ws).await;
    st.done.set(st.done.get() + 1);
}

async fn scenario_broadcast(o: &Opts) -> serde_json::Value {
    let errors = Errors::new();
    let (mut conns, _, connect_wall) = connect_many(o, &errors).await;
    let n = conns.len();
    if n == 0 {
        return serde_json::json!({"connected": 0, "errors": errors.json()});
    }
    let st = Rc::new(Broadcast {
        receivers: n as u32,
        phase: Cell::new(WARMUP),
        count: RefCell::new(Vec::new()),
        sent_at: RefCell::new(Vec::new()),
        last_at: RefCell::new(Vec::new()),
        measured_from: Cell::new(usize::MAX),
        measured_to: Cell::new(0),
        completed: Cell::new(0),
        delivered_in_window: Cell::new(0),
        delivered_total: Cell::new(0),
        unexpected: Cell::new(0),
        lat: RefCell::new(Vec::new()),
        notify: Notify::new(),
        done: Cell::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (out_tx, out_rx) = mpsc::unbounded_channel::<String>();
    let sender_conn = conns.remove(0);
    spawn_local(broadcast_client(sender_conn.ws, st.clone(), Some(out_rx), stop_rx.clone(), errors.clone()));
    for c in conns {
        spawn_local(broadcast_client(c.ws, st.clone(), None, stop_rx.clone(), errors.clone()));
    }
    // Let every connection task reach its read loop.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The sender: at most `inflight` messages not yet delivered to every receiver.
    let sender = {
        let st = st.clone();
        let inflight = o.inflight;
        spawn_local(async move {
            let mut seq = 0usize;
            while st.phase.get() != STOP {
                while seq - st.completed.get() < inflight && st.phase.get() != STOP {
                    let ts = now_ns();
                    st.count.borrow_mut().push(0);
                    st.sent_at.borrow_mut().push(ts);
                    st.last_at.borrow_mut().push(0);
                    if st.phase.get() == MEASURE {
                        if st.measured_from.get() == usize::MAX {
                            st.measured_from.set(seq);
                        }
                        st.measured_to.set(seq + 1);
                    }
                    let text = format!("42[\"broadcast\",{{\"seq\":{seq},\"ts\":{ts}}}]");
                    if out_tx.send(text).is_err() {
                        return seq;
                    }
                    seq += 1;
                }
                tokio::select! {
                    _ = st.notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
            seq
        })
    };
    let (window, cpu) = measure_phases(o, &st.phase).await;
    let sent = sender.await.unwrap_or(0);
    // Drain: wait for every message sent to reach every receiver.
    let drained = wait_until(|| st.completed.get() >= sent, Duration::from_secs_f64(o.drain_timeout)).await;
    let _ = stop_tx.send(true);
    let _ = wait_until(|| st.done.get() >= n, Duration::from_secs(30)).await;

    let count = st.count.borrow();
    let expected = sent as u64 * n as u64;
    let lost: u64 = count.iter().map(|&c| (n as u32 - c.min(n as u32)) as u64).sum();
    let (from, to) = (st.measured_from.get(), st.measured_to.get());
    let sent_at = st.sent_at.borrow();
    let last_at = st.last_at.borrow();
    let mut last_receiver = Vec::new();
    if from != usize::MAX {
        for s in from..to {
            if count[s] == n as u32 {
                last_receiver.push(((last_at[s] - sent_at[s]) / 1000).min(u32::MAX as u64) as u32);
            }
        }
    }
    let delivered = st.delivered_in_window.get();
    serde_json::json!({
        "connected": n,
        "connect_wall_s": connect_wall,
        "errors": errors.json(),
        "inflight": o.inflight,
        "window_s": window,
        "loadgen_cpu_s": cpu,
        "messages_sent": sent,
        "messages_in_window": to.saturating_sub(if from == usize::MAX { to } else { from }),
        "deliveries_in_window": delivered,
        "throughput": delivered as f64 / window,
        "unit": "deliveries/s",
        "latency": percentiles(st.lat.take()),
        "last_receiver": percentiles(last_receiver),
        "expected_deliveries": expected,
        "delivered_total": st.delivered_total.get(),
        "lost": lost,
        "unexpected": st.unexpected.get(),
        "drained": drained,
    })
}

/// Closes a polling session with a `1` packet (so sessions do not pile up on the server).
async fn polling_close(http: &mut Http, sid: &str) -> R<()> {
    http.request(Method::POST, &format!("&sid={sid}"), Some("1".into())).await.map(|_| ())
}

struct LoopStats {
    phase: Cell<u8>,
    count: Cell<u64>,
    lat: RefCell<Vec<u32>>,
    done: Cell<usize>,
}

impl LoopStats {
    fn new() -> Rc<LoopStats> {
        Rc::new(LoopStats { phase: Cell::new(WARMUP), count: Cell::new(0), lat: RefCell::new(Vec::new()), done: Cell::new(0) })
    }
    fn record(&self, t0: u64) {
        if self.phase.get() == MEASURE {
            self.count.set(self.count.get() + 1);
            self.lat.borrow_mut().push(us_since(t0));
        }
    }
}

async fn polling_handshake_client(i: usize, port: u16, st: Rc<LoopStats>, errors: Rc<Errors>) {
    let mut http = Http::new(i, port);
    while st.phase.get() != STOP {
        let t0 = now_ns();
        match sio_connect_polling(&mut http).await {
            Ok(sid) => {
                st.record(t0);
                if let Err(e) = polling_close(&mut http, &sid).await {
                    errors.add(format!("close: {e}"));
                }
            }
            Err(e) => {
                errors.add(e);
                http.sender = None;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    st.done.set(st.done.get() + 1);
}

async fn polling_echo_client(i: usize, port: u16, st: Rc<LoopStats>, errors: Rc<Errors>, ready: Rc<Cell<usize>>) {
    let mut http = Http::new(i, port);
    let sid = match sio_connect_polling(&mut http).await {
        Ok(sid) => sid,
        Err(e) => {
            errors.add(format!("handshake: {e}"));
            ready.set(ready.get() + 1);
            st.done.set(st.done.get() + 1);
            return;
        }
    };
    ready.set(ready.get() + 1);
    let q = format!("&sid={sid}");
    let mut id = 0u64;
    'outer: while st.phase.get() != STOP {
        id += 1;
        let t0 = now_ns();
        match http.request(Method::POST, &q, Some(echo_packet(id))).await {
            Ok(b) if &b[..] == b"ok" => {}
            Ok(b) => {
                errors.add(format!("POST answered {:.40}", String::from_utf8_lossy(&b)));
                break;
            }
            Err(e) => {
                errors.add(e);
                break;
            }
        }
        loop {
            let body = match http.request(Method::GET, &q, None).await {
                Ok(b) => b,
                Err(e) => {
                    errors.add(e);
                    break 'outer;
                }
            };
            let mut got = false;
            for p in packets(&body) {
                if is_ack(&p, id) {
                    got = true;
                } else if p == "2" {
                    if let Err(e) = http.request(Method::POST, &q, Some("3".into())).await {
                        errors.add(e);
                        break 'outer;
                    }
                } else if p == "1" {
                    errors.add("session closed by server".into());
                    break 'outer;
                }
            }
            if got {
                break;
            }
        }
        st.record(t0);
    }
    let _ = polling_close(&mut http, &sid).await;
    st.done.set(st.done.get() + 1);
}

async fn upgrade_once(i: usize, port: u16, http: &mut Http) -> R<()> {
    let sid = sio_connect_polling(http).await?;
    let mut ws = ws_open(i, port, Some(&sid)).await?;
    ws_text(&mut ws, "2probe".into()).await?;
    loop {
        let t = ws_next_text(&mut ws).await?;
        if t == "3probe" {
            break;
        }
    }
    ws_text(&mut ws, "5".into()).await?;
    // Prove the session now runs over WebSocket: one echo round trip on it.
    ws_text(&mut ws, echo_packet(1)).await?;
    loop {
        let t = ws_next_text(&mut ws).await?;
        if is_ack(&t, 1) {
            break;
        }
        if t == "6" {
            continue;
        }
    }
    ws_close(ws).await;
    Ok(())
}

async fn upgrade_client(i: usize, port: u16, st: Rc<LoopStats>, errors: Rc<Errors>) {
    let mut http = Http::new(i, port);
    while st.phase.get() != STOP {
        let t0 = now_ns();
        match upgrade_once(i, port, &mut http).await {
            Ok(()) => st.record(t0),
            Err(e) => {
                errors.add(e);
                http.sender = None;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    st.done.set(st.done.get() + 1);
}

async fn scenario_loop(o: &Opts) -> serde_json::Value {
    let errors = Errors::new();
    let st = LoopStats::new();
    let ready = Rc::new(Cell::new(0usize));
    let n = o.clients;
    for i in 0..n {
        let (st, errors, port) = (st.clone(), errors.clone(), o.port);
        match o.scenario.as_str() {
            "polling-handshake" => {
                spawn_local(polling_handshake_client(i, port, st, errors));
            }
            "polling-echo" => {
                spawn_local(polling_echo_client(i, port, st, errors, ready.clone()));
            }
            "upgrade" => {
                spawn_local(upgrade_client(i, port, st, errors));
            }
            _ => usage(),
        }
    }
    if o.scenario == "polling-echo" {
        let _ = wait_until(|| ready.get() >= n, Duration::from_secs(30)).await;
    }
    let (window, cpu) = measure_phases(o, &st.phase).await;
    let count = st.count.get();
    let _ = wait_until(|| st.done.get() >= n, Duration::from_secs(30)).await;
    let unit = match o.scenario.as_str() {
        "polling-handshake" => "handshakes/s",
        "polling-echo" => "round trips/s",
        _ => "upgrades/s",
    };
    serde_json::json!({
        "connected": if o.scenario == "polling-echo" { ready.get() } else { n },
        "errors": errors.json(),
        "window_s": window,
        "loadgen_cpu_s": cpu,
        "completed": count,
        "throughput": count as f64 / window,
        "unit": unit,
        "latency": percentiles(st.lat.take()),
    })
}

fn main() {
    let o = parse_opts();
    base();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    let cpu_start = cpu_seconds();
    let t_start = Instant::now();
    let mut result = local.block_on(&rt, async {
        match o.scenario.as_str() {
            "connect" => scenario_connect(&o).await,
            "echo" => scenario_echo(&o).await,
            "broadcast" => scenario_broadcast(&o).await,
            "polling-handshake" | "polling-echo" | "upgrade" => scenario_loop(&o).await,
            _ => usage(),
        }
    });
    if let serde_json::Value::Object(map) = &mut result {
        map.insert("scenario".into(), o.scenario.clone().into());
        map.insert("label".into(), o.label.clone().into());
        map.insert("clients".into(), o.clients.into());
        map.insert("concurrency".into(), o.concurrency.into());
        map.insert("loadgen_cpu_total_s".into(), (cpu_seconds() - cpu_start).into());
        map.insert("loadgen_wall_total_s".into(), t_start.elapsed().as_secs_f64().into());
        if let (Some(c), Some(w)) = (map.get("loadgen_cpu_s").and_then(|v| v.as_f64()), map.get("window_s").and_then(|v| v.as_f64())) {
            map.insert("loadgen_cpu_pct".into(), (100.0 * c / w).into());
        }
    }
    mark(&result.to_string());
    // Do not wait for lingering tasks.
    std::process::exit(0);
}
