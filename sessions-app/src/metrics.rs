//! Prometheus text exposition of the server's counters.

use std::fmt::Write as _;

use engineio::StatsSnapshot;

use crate::auth::ErrorCode;

/// What `/metrics` reports.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Live authenticated sockets on `/sessions`.
    pub sockets: usize,
    /// Users with at least one live socket.
    pub users: usize,
    /// Refusals by code.
    pub failures: Vec<(ErrorCode, u64)>,
    /// Engine.IO traffic.
    pub engine: StatsSnapshot,
}

/// Renders the text exposition format (version 0.0.4).
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(1024);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "sessions_connected_sockets",
        "gauge",
        "Authenticated sockets connected to /sessions.",
        &[("", s.sockets as u64)],
    );
    metric(
        "sessions_connected_users",
        "gauge",
        "Users with at least one connected socket.",
        &[("", s.users as u64)],
    );
    metric(
        "sessions_handshakes_total",
        "counter",
        "Engine.IO handshakes (connections opened).",
        &[("", s.engine.handshakes)],
    );
    let failures: Vec<(String, u64)> = s
        .failures
        .iter()
        .filter(|(code, _)| *code != ErrorCode::Revoked)
        .map(|(code, n)| (format!("{{code=\"{}\"}}", code.as_str()), *n))
        .collect();
    let failures: Vec<(&str, u64)> = failures.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    metric(
        "sessions_auth_failures_total",
        "counter",
        "Connections refused, by sessions:error code.",
        &failures,
    );
    metric(
        "sessions_packets_total",
        "counter",
        "Engine.IO packets, by direction.",
        &[
            ("{direction=\"in\"}", s.engine.packets_in),
            ("{direction=\"out\"}", s.engine.packets_out),
        ],
    );
    metric(
        "sessions_bytes_total",
        "counter",
        "Engine.IO packet bytes, by direction.",
        &[
            ("{direction=\"in\"}", s.engine.bytes_in),
            ("{direction=\"out\"}", s.engine.bytes_out),
        ],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let text = render(&Snapshot {
            sockets: 3,
            users: 2,
            failures: vec![(ErrorCode::MissingToken, 4), (ErrorCode::Revoked, 1)],
            engine: StatsSnapshot {
                packets_in: 5,
                bytes_in: 6,
                packets_out: 7,
                bytes_out: 8,
                handshakes: 9,
            },
        });
        assert!(text.contains("sessions_connected_sockets 3\n"));
        assert!(text.contains("sessions_connected_users 2\n"));
        assert!(text.contains("sessions_handshakes_total 9\n"));
        assert!(text.contains("sessions_auth_failures_total{code=\"missing_token\"} 4\n"));
        assert!(!text.contains("revoked"));
        assert!(text.contains("sessions_packets_total{direction=\"out\"} 7\n"));
        assert!(text.contains("sessions_bytes_total{direction=\"in\"} 6\n"));
    }
}
