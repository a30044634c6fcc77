//! The protocol state of one Engine.IO session, apart from any I/O.
//!
//! [`SessionState`] takes packets and [`Instant`]s and answers with what the transport shell must do;
//! it never reads a clock and never touches a socket, so heartbeats, upgrades and every close path are
//! tested on a virtual clock.
//!
//! ```text
//!  handshake (t0)                                  the client answers every ping within pingTimeout
//!      │  next ping at t0 + pingInterval
//!      ▼
//!  ┌──────────┐ ping sent ┌───────────────┐ pong
//!  │ idle     ├──────────►│ awaiting pong ├──────► idle (next ping at pong + pingInterval)
//!  └──────────┘           └──────┬────────┘
//!                                │ pingTimeout elapsed
//!                                ▼
//!                        closed: "ping timeout"
//!
//!  upgrade (polling → websocket), on the new transport:
//!   client: 2probe ─► server: 3probe (and a pending poll is answered 6)
//!   client: 5       ─► the session now lives on the WebSocket; queued packets leave there, in order
//!   no 5 within upgradeTimeout ─► the new transport is closed, the session stays on polling
//! ```

use std::time::{Duration, Instant};

use crate::packet::Packet;

/// Why a session closed, with the official server's wording (see [`CloseReason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client closed the transport or sent a close packet.
    TransportClose,
    /// The transport failed: a network error, a protocol violation by the client, or a client that
    /// stopped reading while its outgoing buffer filled up.
    TransportError,
    /// No pong arrived within `pingTimeout` after a ping.
    PingTimeout,
    /// The client sent bytes that do not decode as Engine.IO packets.
    ParseError,
    /// The server application closed the session.
    ForcedClose,
    /// The server is shutting down.
    ServerShuttingDown,
}

impl CloseReason {
    /// The reason as the official server names it (`"transport close"`, `"ping timeout"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ParseError => "parse error",
            CloseReason::ForcedClose => "forced close",
            CloseReason::ServerShuttingDown => "server shutting down",
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two transports of Engine.IO v4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

impl TransportKind {
    /// The name used in the `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::WebSocket => "websocket",
        }
    }

    /// Parses a `transport` query parameter.
    pub fn parse(name: &str) -> Option<TransportKind> {
        match name {
            "polling" => Some(TransportKind::Polling),
            "websocket" => Some(TransportKind::WebSocket),
            _ => None,
        }
    }
}

/// Heartbeat and upgrade timings of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// Time between a pong (or the handshake) and the next ping.
    pub ping_interval: Duration,
    /// Time the client has to answer a ping.
    pub ping_timeout: Duration,
    /// Time a started upgrade may take before the new transport is dropped.
    pub upgrade_timeout: Duration,
}

/// What the shell must do when a deadline passes (see [`SessionState::handle_timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutAction {
    /// Queue a ping packet (`2`) for the client.
    SendPing,
    /// Close the session with this reason.
    Close(CloseReason),
    /// Drop the transport that was being upgraded to; the session stays where it was.
    AbortUpgrade,
}

/// What the shell must do with a packet that arrived (see [`SessionState::on_packet`] and
/// [`SessionState::on_probe_packet`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do (a pong, a noop, an ignored packet).
    Nothing,
    /// Hand this message (text or binary) to the application.
    Deliver(Packet),
    /// Close the session with this reason.
    Close(CloseReason),
    /// Answer `3probe` on the new transport and end a pending poll with a noop.
    AnswerProbe,
    /// The upgrade is complete: the session now lives on the new transport.
    CompleteUpgrade,
    /// The new transport misbehaved during the upgrade: drop it, the session stays where it was.
    AbortUpgrade,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    None,
    Started { deadline: Instant, probed: bool },
    Done,
}

/// Why an upgrade cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeRefused {
    /// The session already lives on WebSocket.
    #[error("the session is already upgraded")]
    AlreadyUpgraded,
    /// Another upgrade is in progress.
    #[error("an upgrade is already in progress")]
    InProgress,
    /// The session is closed.
    #[error("the session is closed")]
    Closed,
}

/// The protocol state of one session: heartbeat, upgrade and close.
///
/// ```
/// use std::time::{Duration, Instant};
/// use engineio::session::{SessionState, Timings, TimeoutAction, TransportKind};
///
/// let t0 = Instant::now();
/// let timings = Timings {
///     ping_interval: Duration::from_millis(300),
///     ping_timeout: Duration::from_millis(200),
///     upgrade_timeout: Duration::from_secs(10),
/// };
/// let mut state = SessionState::new(t0, TransportKind::Polling, timings);
/// assert_eq!(state.poll_timeout(), Some(t0 + Duration::from_millis(300)));
/// assert_eq!(state.handle_timeout(t0 + Duration::from_millis(300)), Some(TimeoutAction::SendPing));
/// ```
#[derive(Debug, Clone)]
pub struct SessionState {
    timings: Timings,
    transport: TransportKind,
    next_ping: Option<Instant>,
    pong_deadline: Option<Instant>,
    /// The pong deadline was already pushed back once for this ping.
    pong_deadline_refreshed: bool,
    upgrade: Upgrade,
    closed: Option<CloseReason>,
}

impl SessionState {
    /// A session opened at `now` on `transport`; the first ping is due one `ping_interval` later.
    pub fn new(now: Instant, transport: TransportKind, timings: Timings) -> Self {
        SessionState {
            timings,
            transport,
            next_ping: Some(now + timings.ping_interval),
            pong_deadline: None,
            pong_deadline_refreshed: false,
            upgrade: match transport {
                TransportKind::Polling => Upgrade::None,
                TransportKind::WebSocket => Upgrade::Done,
            },
            closed: None,
        }
    }

    /// The timings the session runs with.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// The transport the session currently lives on.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// Whether an upgrade has started and is not finished.
    pub fn is_upgrading(&self) -> bool {
        matches!(self.upgrade, Upgrade::Started { .. })
    }

    /// Whether the probe of a started upgrade was answered (a waiting poll is then ended with a noop).
    pub fn is_probed(&self) -> bool {
        matches!(self.upgrade, Upgrade::Started { probed: true, .. })
    }

    /// The reason the session closed, if it did.
    pub fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let upgrade = match self.upgrade {
            Upgrade::Started { deadline, .. } => Some(deadline),
            _ => None,
        };
        [self.next_ping, self.pong_deadline, upgrade]
            .into_iter()
            .flatten()
            .min()
    }

    /// Applies every deadline that passed by `now`, one at a time: call it again until it answers
    /// `None`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TimeoutAction> {
        if self.closed.is_some() {
            return None;
        }
        if self.pong_deadline.is_some_and(|d| d <= now) {
            return Some(TimeoutAction::Close(self.close(CloseReason::PingTimeout)));
        }
        if let Some(due) = self.next_ping.filter(|d| *d <= now) {
            self.next_ping = None;
            // Counted from when the ping was due, not from when the timer got to run, so that a
            // silent client is gone at exactly pingInterval + pingTimeout as with the official
            // server; a timer that ran very late still leaves the client a whole pingTimeout.
            let anchored = due + self.timings.ping_timeout;
            self.pong_deadline_refreshed = false;
            self.pong_deadline = Some(if anchored > now {
                anchored
            } else {
                now + self.timings.ping_timeout
            });
            return Some(TimeoutAction::SendPing);
        }
        if let Upgrade::Started { deadline, .. } = self.upgrade {
            if deadline <= now {
                self.upgrade = Upgrade::None;
                return Some(TimeoutAction::AbortUpgrade);
            }
        }
        None
    }

    /// A packet arrived on the transport the session lives on.
    pub fn on_packet(&mut self, now: Instant, packet: Packet) -> Step {
        if self.closed.is_some() {
            // Only a close packet still counts: it ends a session the server closed while that
            // close waits to be delivered.
            return match packet {
                Packet::Close => Step::Close(CloseReason::TransportClose),
                _ => Step::Nothing,
            };
        }
        // Anything from the client shows it is alive: the first packet other than the pong that
        // arrives while a pong is awaited gives it one more whole pingTimeout, as the official
        // server does (a pong can be stuck behind a large message).
        if self.pong_deadline.is_some()
            && !self.pong_deadline_refreshed
            && !matches!(packet, Packet::Pong(_))
        {
            self.pong_deadline = Some(now + self.timings.ping_timeout);
            self.pong_deadline_refreshed = true;
        }
        match packet {
            Packet::Pong(_) => {
                self.pong_deadline = None;
                self.next_ping = Some(now + self.timings.ping_interval);
                Step::Nothing
            }
            Packet::Message(_) | Packet::Binary(_) => Step::Deliver(packet),
            Packet::Close => Step::Close(self.close(CloseReason::TransportClose)),
            // In v4 only the server pings: a ping from the client breaks the heartbeat contract.
            Packet::Ping(_) => Step::Close(self.close(CloseReason::TransportError)),
            Packet::Open(_) | Packet::Upgrade | Packet::Noop => Step::Nothing,
        }
    }

    /// A packet arrived on the transport being upgraded to, before the upgrade completed.
    pub fn on_probe_packet(&mut self, packet: Packet) -> Step {
        let Upgrade::Started { deadline, .. } = self.upgrade else {
            return Step::AbortUpgrade;
        };
        if self.closed.is_some() {
            return Step::AbortUpgrade;
        }
        match packet {
            Packet::Ping(data) if data == "probe" => {
                self.upgrade = Upgrade::Started {
                    deadline,
                    probed: true,
                };
                Step::AnswerProbe
            }
            Packet::Upgrade => {
                self.upgrade = Upgrade::Done;
                self.transport = TransportKind::WebSocket;
                Step::CompleteUpgrade
            }
            _ => {
                self.upgrade = Upgrade::None;
                Step::AbortUpgrade
            }
        }
    }

    /// A WebSocket asks to take over the session at `now`.
    pub fn start_upgrade(&mut self, now: Instant) -> Result<(), UpgradeRefused> {
        if self.closed.is_some() {
            return Err(UpgradeRefused::Closed);
        }
        match self.upgrade {
            Upgrade::Done => Err(UpgradeRefused::AlreadyUpgraded),
            Upgrade::Started { .. } => Err(UpgradeRefused::InProgress),
            Upgrade::None => {
                self.upgrade = Upgrade::Started {
                    deadline: now + self.timings.upgrade_timeout,
                    probed: false,
                };
                Ok(())
            }
        }
    }

    /// The transport being upgraded to went away before the upgrade completed.
    pub fn abort_upgrade(&mut self) {
        if self.is_upgrading() {
            self.upgrade = Upgrade::None;
        }
    }

    /// Marks the session closed; the first reason wins and is returned.
    pub fn close(&mut self, reason: CloseReason) -> CloseReason {
        // An upgrade under way ends with the session: its WebSocket is closed too.
        if let Upgrade::Started { .. } = self.upgrade {
            self.upgrade = Upgrade::None;
        }
        *self.closed.get_or_insert(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn timings() -> Timings {
        Timings {
            ping_interval: 300 * MS,
            ping_timeout: 200 * MS,
            upgrade_timeout: 1000 * MS,
        }
    }

    #[test]
    fn first_ping_one_interval_after_handshake() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::Polling, timings());
        assert_eq!(s.handle_timeout(t0 + 299 * MS), None);
        assert_eq!(
            s.handle_timeout(t0 + 300 * MS),
            Some(TimeoutAction::SendPing)
        );
        assert_eq!(s.poll_timeout(), Some(t0 + 500 * MS));
    }

    #[test]
    fn silent_client_dies_at_interval_plus_timeout() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::Polling, timings());
        assert_eq!(
            s.handle_timeout(t0 + 300 * MS),
            Some(TimeoutAction::SendPing)
        );
        assert_eq!(s.handle_timeout(t0 + 499 * MS), None);
        assert_eq!(
            s.handle_timeout(t0 + 500 * MS),
            Some(TimeoutAction::Close(CloseReason::PingTimeout))
        );
        assert_eq!(s.closed(), Some(CloseReason::PingTimeout));
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.handle_timeout(t0 + 10_000 * MS), None);
    }

    #[test]
    fn the_first_other_packet_awaiting_a_pong_gives_one_more_ping_timeout() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::WebSocket, timings());
        assert_eq!(
            s.handle_timeout(t0 + 300 * MS),
            Some(TimeoutAction::SendPing)
        );
        let message = || Packet::Message("hello".into());
        assert_eq!(
            s.on_packet(t0 + 450 * MS, message()),
            Step::Deliver(message())
        );
        assert_eq!(s.poll_timeout(), Some(t0 + 650 * MS));
        // Once per ping only.
        s.on_packet(t0 + 600 * MS, message());
        assert_eq!(s.poll_timeout(), Some(t0 + 650 * MS));
        assert_eq!(s.handle_timeout(t0 + 649 * MS), None);
        assert_eq!(
            s.handle_timeout(t0 + 650 * MS),
            Some(TimeoutAction::Close(CloseReason::PingTimeout))
        );
    }

    #[test]
    fn the_refresh_is_granted_again_after_the_next_ping() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::WebSocket, timings());
        s.handle_timeout(t0 + 300 * MS);
        s.on_packet(t0 + 350 * MS, Packet::Message("a".into()));
        s.on_packet(t0 + 400 * MS, Packet::Pong(String::new()));
        // Between pings nothing is awaited: a packet moves no deadline.
        s.on_packet(t0 + 500 * MS, Packet::Message("b".into()));
        assert_eq!(s.poll_timeout(), Some(t0 + 700 * MS));
        assert_eq!(
            s.handle_timeout(t0 + 700 * MS),
            Some(TimeoutAction::SendPing)
        );
        s.on_packet(t0 + 800 * MS, Packet::Noop);
        assert_eq!(s.poll_timeout(), Some(t0 + 1000 * MS));
    }

    #[test]
    fn pong_deadline_is_counted_from_when_the_ping_was_due() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::Polling, timings());
        // The timer ran 3 ms late: the deadline stays at interval + timeout.
        assert_eq!(
            s.handle_timeout(t0 + 303 * MS),
            Some(TimeoutAction::SendPing)
        );
        assert_eq!(s.poll_timeout(), Some(t0 + 500 * MS));
    }

    #[test]
    fn late_timer_still_closes_by_the_deadline() {
        // A shell that wakes late must still see one ping then the close, never a second ping first.
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::Polling, timings());
        let late = t0 + 900 * MS;
        assert_eq!(s.handle_timeout(late), Some(TimeoutAction::SendPing));
        assert_eq!(s.poll_timeout(), Some(late + 200 * MS));
    }

    #[test]
    fn pong_reschedules_the_next_ping() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::WebSocket, timings());
        s.handle_timeout(t0 + 300 * MS);
        assert_eq!(
            s.on_packet(t0 + 350 * MS, Packet::Pong(String::new())),
            Step::Nothing
        );
        assert_eq!(s.poll_timeout(), Some(t0 + 650 * MS));
        assert_eq!(s.handle_timeout(t0 + 600 * MS), None);
        assert_eq!(
            s.handle_timeout(t0 + 650 * MS),
            Some(TimeoutAction::SendPing)
        );
    }

    #[test]
    fn messages_are_delivered_and_close_closes() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::Polling, timings());
        let msg = Packet::Message("hi".into());
        assert_eq!(s.on_packet(t0, msg.clone()), Step::Deliver(msg));
        assert_eq!(s.on_packet(t0, Packet::Noop), Step::Nothing);
        assert_eq!(
            s.on_packet(t0, Packet::Close),
            Step::Close(CloseReason::TransportClose)
        );
        assert_eq!(
            s.on_packet(t0, Packet::Message("late".into())),
            Step::Nothing
        );
    }

    #[test]
    fn after_a_close_only_a_close_packet_counts() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::Polling, timings());
        s.close(CloseReason::ForcedClose);
        for packet in [
            Packet::Message("x".into()),
            Packet::Ping(String::new()),
            Packet::Pong(String::new()),
        ] {
            assert_eq!(s.on_packet(t0, packet), Step::Nothing);
        }
        assert_eq!(
            s.on_packet(t0, Packet::Close),
            Step::Close(CloseReason::TransportClose)
        );
        assert_eq!(s.closed(), Some(CloseReason::ForcedClose));
    }

    #[test]
    fn client_ping_is_a_transport_error() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::WebSocket, timings());
        assert_eq!(
            s.on_packet(t0, Packet::Ping(String::new())),
            Step::Close(CloseReason::TransportError)
        );
    }

    #[test]
    fn upgrade_probe_then_upgrade() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::Polling, timings());
        s.start_upgrade(t0).unwrap();
        assert!(s.is_upgrading() && !s.is_probed());
        assert_eq!(s.start_upgrade(t0), Err(UpgradeRefused::InProgress));
        assert_eq!(
            s.on_probe_packet(Packet::Ping("probe".into())),
            Step::AnswerProbe
        );
        assert!(s.is_probed());
        assert_eq!(s.on_probe_packet(Packet::Upgrade), Step::CompleteUpgrade);
        assert_eq!(s.transport(), TransportKind::WebSocket);
        assert_eq!(s.start_upgrade(t0), Err(UpgradeRefused::AlreadyUpgraded));
    }

    #[test]
    fn unfinished_upgrade_times_out_and_session_stays() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::Polling, timings());
        s.on_packet(t0, Packet::Pong(String::new()));
        s.start_upgrade(t0 + 100 * MS).unwrap();
        // Pings keep their schedule while the upgrade waits.
        assert_eq!(
            s.handle_timeout(t0 + 300 * MS),
            Some(TimeoutAction::SendPing)
        );
        s.on_packet(t0 + 310 * MS, Packet::Pong(String::new()));
        s.on_packet(t0 + 900 * MS, Packet::Pong(String::new()));
        assert_eq!(
            s.handle_timeout(t0 + 1100 * MS),
            Some(TimeoutAction::AbortUpgrade)
        );
        assert!(!s.is_upgrading());
        assert_eq!(s.transport(), TransportKind::Polling);
        assert_eq!(s.closed(), None);
        s.start_upgrade(t0 + 1100 * MS).unwrap();
    }

    #[test]
    fn closing_the_session_ends_an_upgrade_under_way() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::Polling, timings());
        s.start_upgrade(t0).unwrap();
        assert_eq!(
            s.on_probe_packet(Packet::Ping("probe".into())),
            Step::AnswerProbe
        );
        s.close(CloseReason::PingTimeout);
        assert!(!s.is_upgrading() && !s.is_probed());
    }

    #[test]
    fn unexpected_probe_packet_aborts_the_upgrade() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::Polling, timings());
        s.start_upgrade(t0).unwrap();
        assert_eq!(
            s.on_probe_packet(Packet::Message("x".into())),
            Step::AbortUpgrade
        );
        assert!(!s.is_upgrading());
    }

    #[test]
    fn first_close_reason_wins() {
        let t0 = Instant::now();
        let mut s = SessionState::new(t0, TransportKind::Polling, timings());
        assert_eq!(s.close(CloseReason::ForcedClose), CloseReason::ForcedClose);
        assert_eq!(s.close(CloseReason::PingTimeout), CloseReason::ForcedClose);
        assert_eq!(s.start_upgrade(t0), Err(UpgradeRefused::Closed));
    }
}
