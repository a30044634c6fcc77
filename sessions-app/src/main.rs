//! `sessions-app`: runs the sessions server, or prints a token (`sessions-app token --sub alice`).

use std::cell::Cell;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use sessions_app::config::{Cli, Command};
use sessions_app::{verifier_from, Server};

// jemalloc hands freed memory back to the system, so RSS returns near its baseline after load.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: log files and journald get plain lines.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let (verifier, development) = match verifier_from(&cli.settings) {
        Ok(v) => v,
        Err(err) => {
            eprintln!("sessions-app: configuration error: {err}");
            return ExitCode::from(2);
        }
    };

    if let Some(Command::Token { sub, ttl }) = &cli.command {
        if development {
            eprintln!("sessions-app: no --jwt-secret configured: a token would be signed with a secret no server knows");
            return ExitCode::from(2);
        }
        return match verifier.issue(sub, *ttl) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("sessions-app: {err}");
                ExitCode::from(2)
            }
        };
    }

    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .on_thread_park(release_thread_cache)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sessions-app: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // An idle runtime parks once and sleeps. One tick per worker, firing together, wakes every
        // worker each second (tokio hands the extra ready tasks to sleeping workers), so each passes
        // through `release_thread_cache` after the load is gone. Measured with 2 workers: 1,000
        // closed connections gave back 53–63 % of their memory with a single tick, 87 % with these.
        for _ in 0..workers {
            tokio::spawn(async {
                let mut tick = tokio::time::interval(CACHE_RELEASE_PERIOD);
                loop {
                    tick.tick().await;
                }
            });
        }
        let listener = match tokio::net::TcpListener::bind(cli.settings.listen).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("sessions-app: cannot listen on {}: {err}", cli.settings.listen);
                return ExitCode::FAILURE;
            }
        };
        let bound = listener.local_addr().ok();
        let address = bound.map(|a| a.to_string()).unwrap_or_default();
        if development {
            tracing::warn!("DEVELOPMENT MODE: no --jwt-secret or --jwt-public-key given; using a random secret that dies with this process");
            match verifier.issue("alice", Duration::from_secs(3600)) {
                Ok(token) => {
                    tracing::warn!("a token for user \"alice\", valid 1 hour, is printed on stdout");
                    println!("development token (sub=alice, 1h): {token}");
                    let port = bound.map_or(cli.settings.listen.port(), |a| a.port());
                    println!("open http://localhost:{port}/#token={token}");
                }
                Err(err) => tracing::error!(%err, "could not make a development token"),
            }
        }
        tracing::info!(%address, "sessions server listening (Socket.IO namespace /sessions on /socket.io/)");
        let server = Server::new(&cli.settings, verifier);
        match server.serve_until(listener, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(%err, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}

/// How often at most a worker thread hands its allocator cache back: flushing on every park
/// (thousands a second under load) cost 20–30 % of the echo benchmark's throughput.
const CACHE_RELEASE_PERIOD: Duration = Duration::from_secs(1);

/// Runs when a worker thread goes idle: at most once per [`CACHE_RELEASE_PERIOD`], hands the
/// thread's jemalloc cache of freed blocks back to the shared arena.
///
/// jemalloc trims a thread's cache only while that thread keeps allocating, so after a wave of
/// disconnects an idle server would keep the blocks (and every page they sit on) for good: measured,
/// 1,000 closed connections left half of their memory resident. Flushed, the arena's background
/// thread returns those pages within its decay time (`.cargo/config.toml`).
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
        #[allow(unsafe_code)]
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

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return interrupt.await.unwrap_or(()),
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
