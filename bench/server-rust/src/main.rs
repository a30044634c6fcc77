//! Benchmark server on the project's `socketio` crate.
//!
//! Handlers on `/` (identical in every bench server): on connect join room `all`; `echo` → ack with
//! the same arguments; `broadcast` → emit `broadcast` with the same arguments to room `all`.
//! Settings: pingInterval 25 s, pingTimeout 20 s, maxHttpBufferSize 1e6, no compression,
//! 127.0.0.1 only. Port: first argument, else `PORT`, else 3000.

use std::cell::Cell;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    // Worker threads: BENCH_THREADS, else one per available core (the driver pins us to one core).
    let threads = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(release_thread_cache)
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .on_thread_park(release_thread_cache)
            .build()?
    };
    runtime.block_on(async {
        // An idle runtime parks once and sleeps. One tick per worker, firing together, wakes every
        // worker each second (tokio hands the extra ready tasks to sleeping workers), so each passes
        // through `release_thread_cache` after the load is gone.
        for _ in 0..threads {
            tokio::spawn(async {
                let mut tick = tokio::time::interval(CACHE_RELEASE_PERIOD);
                loop {
                    tick.tick().await;
                }
            });
        }
        serve(port).await
    })
}

/// How often at most a worker thread hands its allocator cache back: flushing on every park
/// (thousands a second under load) cost 20–30 % of the echo benchmark's throughput.
const CACHE_RELEASE_PERIOD: Duration = Duration::from_secs(1);

/// When a worker goes idle, at most once per second: hand the thread's jemalloc cache of freed
/// blocks back to the arena (as the sessions-app binary does; jemalloc trims a thread cache only
/// while the thread allocates, so an idle server would otherwise keep those pages resident).
fn release_thread_cache() {
    thread_local! {
        static LAST_RELEASE: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    let due = LAST_RELEASE.with(|last| {
        let due = last
            .get()
            .is_none_or(|at| now.duration_since(at) >= CACHE_RELEASE_PERIOD);
        if due {
            last.set(Some(now));
        }
        due
    });
    if due {
        // SAFETY: "thread.tcache.flush" is a NUL-terminated control name that reads and writes
        // nothing, which is exactly what null pointers and a zero length tell mallctl.
        unsafe {
            tikv_jemalloc_sys::mallctl(
                c"thread.tcache.flush".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            );
        }
    }
}

async fn serve(port: u16) -> std::io::Result<()> {
    let mut config = socketio::Config::default();
    config.engine.ping_interval = Duration::from_millis(25_000);
    config.engine.ping_timeout = Duration::from_millis(20_000);
    config.engine.max_http_buffer_size = 1_000_000;
    let io = socketio::SocketIo::new(config);
    let root = io.of("/");
    let room_target = root.clone();
    root.on_connection(move |socket| {
        let room_target = room_target.clone();
        async move {
            socket.join("all");
            socket.on("echo", |_socket, data, ack| async move {
                if let Some(ack) = ack {
                    ack.send_data(data).ok();
                }
            });
            socket.on("broadcast", move |_socket, data, _ack| {
                let room_target = room_target.clone();
                async move {
                    room_target.to("all").emit_data("broadcast", data).ok();
                }
            });
        }
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("bench-server-rust listening on 127.0.0.1:{port}");
    io.serve(listener).await
}
