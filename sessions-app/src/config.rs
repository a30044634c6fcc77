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
        /// The user (`sub` claim), not empty.
        #[arg(long, value_parser = non_empty)]
        sub: String,
        /// How long the token is valid (`90s`, `15m`, `1h`, `2d`), at least one second.
        #[arg(long, default_value = "1h", value_parser = token_lifetime)]
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
    #[arg(long, env = "JWT_ISSUER", global = true, value_parser = non_empty)]
    pub jwt_issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    #[arg(long, env = "JWT_AUDIENCE", global = true, value_parser = non_empty)]
    pub jwt_audience: Option<String>,
    /// Allowed browser origin (repeatable); none means same-origin only.
    #[arg(
        long = "cors-origin",
        env = "CORS_ORIGINS",
        value_delimiter = ',',
        value_parser = origin,
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
    /// Take the client IP from the first `X-Forwarded-For` entry, and the host a browser asked
    /// for (to tell same-origin WebSocket handshakes) from the first `X-Forwarded-Host` entry.
    #[arg(long, env = "TRUST_PROXY", global = true, action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub trust_proxy: bool,
    /// Engine.IO pingInterval in milliseconds.
    #[arg(
        long,
        env = "PING_INTERVAL_MS",
        default_value_t = 25_000,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub ping_interval_ms: u64,
    /// Engine.IO pingTimeout in milliseconds.
    #[arg(
        long,
        env = "PING_TIMEOUT_MS",
        default_value_t = 20_000,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub ping_timeout_ms: u64,
}

/// A value that must say something: an empty `JWT_ISSUER=` is a mistake to report, not an issuer
/// that only tokens with `"iss": ""` would match.
fn non_empty(value: &str) -> Result<String, &'static str> {
    if value.trim().is_empty() {
        Err("must not be empty")
    } else {
        Ok(value.to_owned())
    }
}

/// A browser origin as the `Origin` header spells it: in lower case, surrounding spaces (`a, b` in
/// `CORS_ORIGINS`) and a trailing slash dropped. An empty entry (`a,,b`, a trailing comma) is
/// kept empty here and skipped where the list is used.
fn origin(value: &str) -> Result<String, std::convert::Infallible> {
    let origin = value.trim();
    Ok(origin
        .strip_suffix('/')
        .unwrap_or(origin)
        .to_ascii_lowercase())
}

/// A token lifetime: a token valid for less than a second would be expired when it arrives.
fn token_lifetime(value: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(value).map_err(|err| err.to_string())?;
    if ttl < Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sessions-app").chain(args.iter().copied()))
    }

    #[test]
    fn origins_are_trimmed() {
        let cli = parse(&["--cors-origin", "http://a.test, HTTP://B.test/ ,"]).unwrap();
        assert_eq!(
            cli.settings.cors_origins,
            ["http://a.test", "http://b.test", ""]
        );
    }

    #[test]
    fn empty_or_zero_values_are_refused() {
        for args in [
            &["--jwt-issuer", ""][..],
            &["--jwt-audience", ""],
            &["--ping-interval-ms", "0"],
            &["--ping-timeout-ms", "0"],
            &["token", "--sub", ""],
            &["token", "--sub", "a", "--ttl", "0s"],
            &["token", "--sub", "a", "--ttl", "500ms"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
        assert!(parse(&["token", "--sub", "a", "--ttl", "1s"]).is_ok());
    }
}
