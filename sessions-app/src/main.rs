//! `sessions-app`: runs the sessions server, or prints a token (`sessions-app token --sub alice`).

use std::process::ExitCode;
use std::time::Duration;

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

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sessions-app: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
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
