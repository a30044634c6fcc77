//! Command line and environment: flags override environment variables; every setting has a default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The sessions server: every device of a user, live, in sync.
#[derive(Debug, Parser)]
#[command(name = "sessions-app", version, about)]
pub struct Cli {
    /// Server settings.
    #[command(flatten)]
    pub settings: Settings,
    /// A subcommand; none runs the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prints a token signed with the configured secret.
    Token {
        /// The user (`sub` claim).
        #[arg(long)]
        sub: String,
        /// How long the token is valid (`90s`, `15m`, `1h`, `2d`).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

/// Server settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address to serve HTTP and Socket.IO on.
    #[arg(
        long,
        env = "SESSIONS_LISTEN",
        default_value = "0.0.0.0:3000",
        global = true
    )]
    pub listen: SocketAddr,
    /// HS256/384/512 shared secret.
    #[arg(long, env = "JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM file of an RSA or EC public key (RS*/PS*/ES256/ES384).
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE", global = true)]
    pub jwt_public_key: Option<PathBuf>,
    /// When set, tokens must carry this `iss`.
    #[arg(long, env = "JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    #[arg(long, env = "JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    /// Allowed browser origin (repeatable); none means same-origin only.
    #[arg(
        long = "cors-origin",
        env = "CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,
    /// Live sessions allowed per user; the next connection is refused.
    #[arg(
        long,
        env = "MAX_SESSIONS_PER_USER",
        default_value_t = 100,
        global = true
    )]
    pub max_sessions_per_user: usize,
    /// Take the client IP from the first `X-Forwarded-For` entry.
    #[arg(long, env = "TRUST_PROXY", global = true, action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub trust_proxy: bool,
    /// Engine.IO pingInterval in milliseconds.
    #[arg(
        long,
        env = "PING_INTERVAL_MS",
        default_value_t = 25_000,
        global = true
    )]
    pub ping_interval_ms: u64,
    /// Engine.IO pingTimeout in milliseconds.
    #[arg(long, env = "PING_TIMEOUT_MS", default_value_t = 20_000, global = true)]
    pub ping_timeout_ms: u64,
}
