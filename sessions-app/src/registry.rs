//! Who is connected: every live session of every user, in connection order.

use std::collections::HashMap;
use std::time::SystemTime;

use serde_json::{json, Value};

/// One live session, as listed to its user's other sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    /// The Socket.IO socket id on `/sessions` (never the Engine.IO session id).
    pub socket_id: String,
    /// When the session connected.
    pub connected_at: SystemTime,
    /// The client's address.
    pub ip: String,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// `auth.context` or the `context` query parameter.
    pub context: Value,
}

impl SessionInfo {
    /// The wire form: `{ socketId, connectedAt, metadata: { ip, userAgent, context } }`.
    pub fn to_json(&self) -> Value {
        json!({
            "socketId": self.socket_id,
            "connectedAt": humantime::format_rfc3339_millis(self.connected_at).to_string(),
            "metadata": {
                "ip": self.ip,
                "userAgent": self.user_agent,
                "context": self.context,
            }
        })
    }
}

/// The user is at the session limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitReached;

/// Every live session, by user.
///
/// ```
/// use sessions_app::registry::{Registry, SessionInfo};
/// let mut registry = Registry::default();
/// let info = SessionInfo { socket_id: "s1".into(), connected_at: std::time::SystemTime::now(),
///     ip: "127.0.0.1".into(), user_agent: None, context: serde_json::Value::Null };
/// registry.add("alice", info, 100).unwrap();
/// assert_eq!(registry.list("alice").len(), 1);
/// assert!(registry.list("bob").is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Registry {
    users: HashMap<String, Vec<SessionInfo>>,
    sockets: usize,
}

impl Registry {
    /// Adds a session unless the user already has `max` of them.
    pub fn add(&mut self, user: &str, info: SessionInfo, max: usize) -> Result<(), LimitReached> {
        let sessions = self.users.entry(user.to_owned()).or_default();
        if sessions.len() >= max {
            if sessions.is_empty() {
                self.users.remove(user);
            }
            return Err(LimitReached);
        }
        // Keep connectedAt order (oldest first); equal instants keep arrival order.
        let at = sessions.partition_point(|s| s.connected_at <= info.connected_at);
        sessions.insert(at, info);
        self.sockets += 1;
        Ok(())
    }

    /// Removes a session; false when it was not there.
    pub fn remove(&mut self, user: &str, socket_id: &str) -> bool {
        let Some(sessions) = self.users.get_mut(user) else {
            return false;
        };
        let before = sessions.len();
        sessions.retain(|s| s.socket_id != socket_id);
        let removed = sessions.len() < before;
        if sessions.is_empty() {
            self.users.remove(user);
        }
        if removed {
            self.sockets -= 1;
        }
        removed
    }

    /// Whether `socket_id` is a live session of `user`.
    pub fn contains(&self, user: &str, socket_id: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|s| s.iter().any(|s| s.socket_id == socket_id))
    }

    /// The user's sessions in wire form, oldest first.
    pub fn list(&self, user: &str) -> Vec<Value> {
        self.users
            .get(user)
            .map(|s| s.iter().map(SessionInfo::to_json).collect())
            .unwrap_or_default()
    }

    /// The ids of the user's sessions other than `socket_id`.
    pub fn others(&self, user: &str, socket_id: &str) -> Vec<String> {
        self.users
            .get(user)
            .map(|s| {
                s.iter()
                    .filter(|s| s.socket_id != socket_id)
                    .map(|s| s.socket_id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Users with at least one session.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Live sessions in all.
    pub fn socket_count(&self) -> usize {
        self.sockets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn info(id: &str, at: u64) -> SessionInfo {
        SessionInfo {
            socket_id: id.into(),
            connected_at: SystemTime::UNIX_EPOCH + Duration::from_millis(at),
            ip: "1.2.3.4".into(),
            user_agent: Some("ua".into()),
            context: Value::Null,
        }
    }

    #[test]
    fn limit_and_order() {
        let mut r = Registry::default();
        r.add("u", info("b", 20), 2).unwrap();
        r.add("u", info("a", 10), 2).unwrap();
        assert_eq!(r.add("u", info("c", 30), 2), Err(LimitReached));
        let ids: Vec<_> = r.list("u").iter().map(|s| s["socketId"].clone()).collect();
        assert_eq!(ids, vec![json!("a"), json!("b")]);
        assert_eq!((r.user_count(), r.socket_count()), (1, 2));
        assert_eq!(r.others("u", "a"), vec!["b".to_owned()]);
        assert!(r.remove("u", "a") && !r.remove("u", "a") && !r.remove("v", "b"));
        assert!(r.remove("u", "b"));
        assert_eq!((r.user_count(), r.socket_count()), (0, 0));
    }

    #[test]
    fn wire_form_has_exactly_the_contract_keys() {
        let v = info("a", 1_700_000_000_123).to_json();
        assert_eq!(v["connectedAt"], json!("2023-11-14T22:13:20.123Z"));
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, vec!["socketId", "connectedAt", "metadata"]);
        let meta: Vec<_> = v["metadata"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(meta, vec!["ip", "userAgent", "context"]);
    }

    #[test]
    fn zero_limit_refuses_and_leaves_nothing() {
        let mut r = Registry::default();
        assert_eq!(r.add("u", info("a", 1), 0), Err(LimitReached));
        assert_eq!(r.user_count(), 0);
    }
}
