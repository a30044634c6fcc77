//! Connection state recovery: a client that lost its connection for a moment gets back its socket
//! id, rooms and extensions, and the packets broadcast to it meanwhile.
//!
//! Opt-in, as `connectionStateRecovery` is in the official server ([`ConnectionStateRecovery`] in
//! [`Config`](crate::Config)). While it is on, every EVENT a namespace sends without an
//! acknowledgement and without `volatile` carries one more argument, its offset (a string), and is
//! kept for `max_disconnection_duration`. A socket that leaves for a transport reason (not by a
//! namespace disconnect of either side) is kept as long. The client reconnects with its private
//! session id (`pid`, sent once in the CONNECT answer) and the last offset it saw; if both are still
//! known, the socket comes back with the packets it missed, sent before its CONNECT answer.
//!
//! The store is this process's: with a cluster adapter a client recovers only on the server that
//! kept its session.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use engineio::Frame;
use serde_json::Value;

use crate::adapter::{encode_frames, Room};
use crate::packet::Packet;

/// Settings of connection state recovery (off unless set in [`Config`](crate::Config)).
///
/// ```
/// let mut config = socketio::Config::default();
/// config.connection_state_recovery = Some(socketio::ConnectionStateRecovery::default());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStateRecovery {
    /// How long a disconnected socket and the packets sent are kept (default 2 minutes).
    pub max_disconnection_duration: Duration,
    /// A recovered socket skips the namespace's middlewares (default true, as in the official server).
    pub skip_middlewares: bool,
    /// Packets kept per namespace at most; the oldest go first (default 100,000). The official
    /// server bounds them by time only; a bound on memory keeps a burst of broadcasts from growing
    /// the store without limit. A client whose offset has gone simply connects anew.
    pub max_packets: usize,
    /// Encoded bytes of the kept packets per namespace at most; the oldest go first (default
    /// 64 MiB).
    pub max_bytes: usize,
    /// Disconnected sockets kept per namespace at most (default 100,000); past it, a socket that
    /// leaves is not kept.
    pub max_sessions: usize,
}

impl Default for ConnectionStateRecovery {
    fn default() -> Self {
        ConnectionStateRecovery {
            max_disconnection_duration: Duration::from_secs(120),
            skip_middlewares: true,
            max_packets: 100_000,
            max_bytes: 64 << 20,
            max_sessions: 100_000,
        }
    }
}

/// A socket that left and may come back.
#[derive(Debug, Clone)]
pub(crate) struct PersistedSession {
    pub(crate) sid: String,
    pub(crate) pid: String,
    pub(crate) rooms: Vec<Room>,
    pub(crate) extensions: http::Extensions,
}

/// A socket brought back: its state and the packets it missed, oldest first, encoded.
#[derive(Debug)]
pub(crate) struct RestoredSession {
    pub(crate) session: PersistedSession,
    pub(crate) missed: Vec<Vec<Frame>>,
}

struct StoredPacket {
    seq: u64,
    emitted_at: Instant,
    rooms: Vec<Room>,
    except: Vec<Room>,
    /// The packet as it went out: its text frame and attachments share their bytes with it.
    frames: Vec<Frame>,
}

/// The sessions and packets of one namespace. Pure: the caller passes the time.
pub(crate) struct RecoveryStore {
    settings: ConnectionStateRecovery,
    next_seq: u64,
    /// In `seq` order, without gaps: the packet of `seq` is at `seq - front.seq`.
    packets: VecDeque<StoredPacket>,
    /// Encoded bytes of `packets`.
    bytes: usize,
    sessions: HashMap<String, (PersistedSession, Instant)>,
    /// Sessions being restored: from the restore until the socket is registered or refused, the
    /// same pid cannot be restored a second time.
    restoring: HashSet<String>,
    created: Instant,
    /// The last sweep tick run (a multiple of `SWEEP_EVERY` after `created`).
    last_sweep: Instant,
}

/// Expired sessions and packets go on a fixed period, as the official server's timer removes them
/// (a restore checks its session's age itself, not the age of the packet at its offset).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl RecoveryStore {
    pub(crate) fn new(settings: ConnectionStateRecovery, now: Instant) -> Self {
        RecoveryStore {
            settings,
            next_seq: 0,
            packets: VecDeque::new(),
            bytes: 0,
            sessions: HashMap::new(),
            restoring: HashSet::new(),
            created: now,
            last_sweep: now,
        }
    }

    pub(crate) fn settings(&self) -> &ConnectionStateRecovery {
        &self.settings
    }

    /// Whether a packet sent with these options is kept (and carries an offset): an EVENT without
    /// acknowledgement, not volatile.
    pub(crate) fn keeps(packet: &Packet, volatile: bool) -> bool {
        packet.id.is_none() && !volatile && matches!(packet.data, Some(Value::Array(_)))
    }

    /// Appends the packet's offset to its arguments and keeps a copy for the sockets targeted by
    /// `rooms` (all when empty) and not in `except`; the frames it was encoded to, for sending.
    pub(crate) fn stamp(
        &mut self,
        packet: &mut Packet,
        rooms: &[Room],
        except: &[Room],
        now: Instant,
    ) -> Option<Vec<Frame>> {
        let Some(Value::Array(args)) = packet.data.as_mut() else {
            return None;
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        args.push(Value::String(offset_of(seq)));
        let frames = encode_frames(packet);
        self.bytes += frames_len(&frames);
        self.packets.push_back(StoredPacket {
            seq,
            emitted_at: now,
            rooms: rooms.to_vec(),
            except: except.to_vec(),
            frames: frames.clone(),
        });
        self.sweep(now);
        self.enforce_bounds();
        Some(frames)
    }

    /// Keeps a socket that left for a transport reason.
    pub(crate) fn persist(&mut self, session: PersistedSession, now: Instant) {
        self.sweep(now);
        if self.sessions.len() >= self.settings.max_sessions
            && !self.sessions.contains_key(&session.pid)
        {
            tracing::warn!(
                max_sessions = self.settings.max_sessions,
                sid = %session.sid,
                "connection state recovery: session store full, the socket is not kept"
            );
            return;
        }
        self.sessions.insert(session.pid.clone(), (session, now));
    }

    /// The session of `pid` with the packets after `offset` that were meant for it, if both are
    /// still known. As in the official server, the session stays kept until it expires: a client
    /// may come back with it again.
    pub(crate) fn restore(
        &mut self,
        pid: &str,
        offset: &str,
        now: Instant,
    ) -> Option<RestoredSession> {
        self.sweep(now);
        if self.restoring.contains(pid) {
            return None;
        }
        let (_, left_at) = self.sessions.get(pid)?;
        if now.saturating_duration_since(*left_at) > self.settings.max_disconnection_duration {
            // Expired though not swept yet.
            self.sessions.remove(pid);
            return None;
        }
        let index = self.index_of(offset)?;
        let (session, _) = self.sessions.get(pid)?;
        let session = session.clone();
        let missed = self
            .packets
            .iter()
            .skip(index + 1)
            .filter(|stored| reaches(&session.rooms, &stored.rooms, &stored.except))
            .map(|stored| stored.frames.clone())
            .collect();
        Some(RestoredSession { session, missed })
    }

    /// Marks `pid` as being restored: [`restore`](Self::restore) refuses it until
    /// [`release`](Self::release).
    pub(crate) fn claim(&mut self, pid: &str) {
        self.restoring.insert(pid.to_owned());
    }

    /// Ends the restore of `pid`, whether its socket was registered or refused.
    pub(crate) fn release(&mut self, pid: &str) {
        self.restoring.remove(pid);
    }

    /// Where the packet of `offset` sits, if it is still kept.
    fn index_of(&self, offset: &str) -> Option<usize> {
        let seq = seq_of(offset)?;
        let first = self.packets.front()?.seq;
        let index = usize::try_from(seq.checked_sub(first)?).ok()?;
        (index < self.packets.len()).then_some(index)
    }

    /// Drops the oldest packets while the store is over its count or byte bound.
    fn enforce_bounds(&mut self) {
        while self.packets.len() > self.settings.max_packets || self.bytes > self.settings.max_bytes
        {
            match self.packets.pop_front() {
                Some(gone) => self.bytes -= frames_len(&gone.frames),
                None => break,
            }
        }
    }

    /// Runs the latest sweep tick not run yet: sessions and packets older than the limit at that
    /// tick go.
    fn sweep(&mut self, now: Instant) {
        let period = SWEEP_EVERY.as_nanos();
        let ticks = now.saturating_duration_since(self.created).as_nanos() / period;
        let since_created = Duration::from_nanos(u64::try_from(ticks * period).unwrap_or(u64::MAX));
        let tick = self.created + since_created;
        if tick <= self.last_sweep {
            return;
        }
        self.last_sweep = tick;
        let Some(threshold) = tick.checked_sub(self.settings.max_disconnection_duration) else {
            return;
        };
        self.sessions
            .retain(|_, (_, left_at)| *left_at >= threshold);
        while self
            .packets
            .front()
            .is_some_and(|front| front.emitted_at < threshold)
        {
            if let Some(gone) = self.packets.pop_front() {
                self.bytes -= frames_len(&gone.frames);
            }
        }
    }
}

/// Whether a packet for `rooms` (all when empty) except `except` reaches a socket in `socket_rooms`.
fn reaches(socket_rooms: &[Room], rooms: &[Room], except: &[Room]) -> bool {
    let included = rooms.is_empty() || socket_rooms.iter().any(|room| rooms.contains(room));
    included && !socket_rooms.iter().any(|room| except.contains(room))
}

fn frames_len(frames: &[Frame]) -> usize {
    frames.iter().map(Frame::len).sum()
}

/// Offsets are the packet's sequence number in lowercase hex: short, and found again by arithmetic.
fn offset_of(seq: u64) -> String {
    format!("{seq:x}")
}

fn seq_of(offset: &str) -> Option<u64> {
    if offset.is_empty()
        || offset.len() > 16
        || !offset
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(offset, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::PacketType;
    use serde_json::json;

    fn event(name: &str) -> Packet {
        Packet::new(PacketType::Event, "/", Some(json!([name])))
    }

    fn session(sid: &str, pid: &str, rooms: &[&str]) -> PersistedSession {
        PersistedSession {
            sid: sid.into(),
            pid: pid.into(),
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            extensions: http::Extensions::new(),
        }
    }

    /// The event name of each missed packet (its frames decoded).
    fn names(missed: &[Vec<Frame>]) -> Vec<Value> {
        missed
            .iter()
            .map(|frames| args(frames)[0].clone())
            .collect()
    }

    fn args(frames: &[Frame]) -> Value {
        let Frame::Text(text) = &frames[0] else {
            panic!("{frames:?}")
        };
        let text = std::str::from_utf8(text).unwrap();
        serde_json::from_str(text.strip_prefix("42").unwrap()).unwrap()
    }

    #[test]
    fn stamped_packets_carry_their_offset_last() {
        let now = Instant::now();
        let mut store = RecoveryStore::new(ConnectionStateRecovery::default(), now);
        let mut first = event("a");
        store.stamp(&mut first, &[], &[], now);
        let mut second = event("b");
        store.stamp(&mut second, &[], &[], now);
        assert_eq!(first.data, Some(json!(["a", "0"])));
        assert_eq!(second.data, Some(json!(["b", "1"])));
    }

    #[test]
    fn restore_gives_the_packets_after_the_offset_meant_for_the_socket() {
        let now = Instant::now();
        let mut store = RecoveryStore::new(ConnectionStateRecovery::default(), now);
        let room = |r: &str| vec![r.to_string()];
        for (name, rooms, except) in [
            ("seen", vec![], vec![]),
            ("all", vec![], vec![]),
            ("mine", room("sid1"), vec![]),
            ("other", room("sid2"), vec![]),
            ("lobby", room("lobby"), vec![]),
            ("excepted", vec![], room("lobby")),
        ] {
            store.stamp(&mut event(name), &rooms, &except, now);
        }
        store.persist(session("sid1", "pid1", &["sid1", "lobby"]), now);
        let restored = store.restore("pid1", "0", now).unwrap();
        assert_eq!(restored.session.sid, "sid1");
        assert_eq!(
            names(&restored.missed),
            [json!("all"), json!("mine"), json!("lobby")]
        );
        assert_eq!(args(&restored.missed[0]), json!(["all", "1"]));
        // Kept until it expires, as in the official server.
        let again = store.restore("pid1", "2", now).unwrap();
        assert_eq!(names(&again.missed), [json!("lobby")]);
    }

    #[test]
    fn a_session_being_restored_cannot_be_restored_again_until_released() {
        let now = Instant::now();
        let mut store = RecoveryStore::new(ConnectionStateRecovery::default(), now);
        store.stamp(&mut event("a"), &[], &[], now);
        store.persist(session("sid1", "pid1", &["sid1"]), now);
        assert!(store.restore("pid1", "0", now).is_some());
        store.claim("pid1");
        assert!(store.restore("pid1", "0", now).is_none());
        store.release("pid1");
        assert!(store.restore("pid1", "0", now).is_some());
    }

    #[test]
    fn unknown_pid_or_offset_restores_nothing() {
        let now = Instant::now();
        let mut store = RecoveryStore::new(ConnectionStateRecovery::default(), now);
        store.stamp(&mut event("a"), &[], &[], now);
        store.persist(session("s", "p", &["s"]), now);
        for offset in ["1", "", "-0", "+0", "0x0", "A", "ffffffffffffffffff", "zz"] {
            assert!(store.restore("p", offset, now).is_none(), "{offset:?}");
        }
        assert!(store.restore("other", "0", now).is_none());
        assert!(store.restore("p", "0", now).is_some());
    }

    #[test]
    fn sessions_expire_at_once_and_packets_on_the_sweep_tick() {
        let start = Instant::now();
        let settings = ConnectionStateRecovery::default();
        let limit = settings.max_disconnection_duration;
        assert_eq!(limit, Duration::from_secs(120));
        let ms = Duration::from_millis;
        let mut store = RecoveryStore::new(settings, start);
        store.stamp(&mut event("old"), &[], &[], start);
        // A session older than the limit is gone, swept or not.
        store.persist(session("s", "p", &["s"]), start);
        assert!(store.restore("p", "0", start + limit + ms(1)).is_none());
        // A young session whose offset is older than the limit comes back while no sweep tick has
        // removed that packet yet (the tick at 120 s removes what is older than 0 s: nothing).
        store.persist(session("s", "p", &["s"]), start + limit);
        assert!(store.restore("p", "0", start + limit + ms(1)).is_some());
        // The tick at 180 s removes what is older than 60 s: "old" goes, and sessions that left
        // before 60 s too.
        let later = start + Duration::from_secs(180);
        store.persist(session("s2", "q", &["s2"]), start + ms(59_999));
        store.stamp(&mut event("new"), &[], &[], later);
        store.persist(session("s", "p2", &["s"]), later);
        assert!(store.restore("p2", "0", later).is_none());
        assert!(store.restore("p2", "1", later).is_some());
        assert!(!store.sessions.contains_key("q"));
        assert!(store.sessions.contains_key("p"));
    }

    #[test]
    fn the_packet_bound_drops_the_oldest() {
        let now = Instant::now();
        let settings = ConnectionStateRecovery {
            max_packets: 2,
            ..ConnectionStateRecovery::default()
        };
        let mut store = RecoveryStore::new(settings, now);
        for name in ["a", "b", "c"] {
            store.stamp(&mut event(name), &[], &[], now);
        }
        store.persist(session("s", "p", &["s"]), now);
        assert!(store.restore("p", "0", now).is_none());
        let restored = store.restore("p", "1", now).unwrap();
        assert_eq!(names(&restored.missed), [json!("c")]);
    }

    #[test]
    fn the_byte_bound_drops_the_oldest() {
        let now = Instant::now();
        // `42["a","0"]` is 11 bytes: two fit in 22, not three.
        let settings = ConnectionStateRecovery {
            max_bytes: 22,
            ..ConnectionStateRecovery::default()
        };
        let mut store = RecoveryStore::new(settings, now);
        for name in ["a", "b", "c"] {
            store.stamp(&mut event(name), &[], &[], now);
        }
        assert_eq!(store.packets.len(), 2);
        assert_eq!(store.bytes, 22);
        store.persist(session("s", "p", &["s"]), now);
        assert!(store.restore("p", "0", now).is_none());
        assert_eq!(
            names(&store.restore("p", "1", now).unwrap().missed),
            [json!("c")]
        );
    }

    #[test]
    fn the_session_bound_refuses_new_sessions() {
        let now = Instant::now();
        let settings = ConnectionStateRecovery {
            max_sessions: 1,
            ..ConnectionStateRecovery::default()
        };
        let mut store = RecoveryStore::new(settings, now);
        store.stamp(&mut event("a"), &[], &[], now);
        store.persist(session("s1", "p1", &[]), now);
        store.persist(session("s2", "p2", &[]), now);
        assert!(store.restore("p2", "0", now).is_none());
        assert!(store.restore("p1", "0", now).is_some());
    }

    #[test]
    fn acked_and_volatile_packets_are_not_kept() {
        let mut acked = event("a");
        acked.id = Some(1);
        assert!(!RecoveryStore::keeps(&acked, false));
        assert!(!RecoveryStore::keeps(&event("a"), true));
        assert!(RecoveryStore::keeps(&event("a"), false));
    }
}
