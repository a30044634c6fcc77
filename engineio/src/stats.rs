//! Traffic counters of a server, read by metrics endpoints.

use std::sync::atomic::{AtomicU64, Ordering};

/// Packets and bytes that crossed the server's transports since it started.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    handshakes: AtomicU64,
}

/// A copy of the counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Engine.IO packets received from clients.
    pub packets_in: u64,
    /// Bytes of the packets received.
    pub bytes_in: u64,
    /// Engine.IO packets queued for clients.
    pub packets_out: u64,
    /// Bytes of the packets queued.
    pub bytes_out: u64,
    /// Sessions opened.
    pub handshakes: u64,
}

impl Stats {
    pub(crate) fn incoming(&self, bytes: usize) {
        self.packets_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn outgoing(&self, packets: usize, bytes: usize) {
        self.packets_out
            .fetch_add(packets as u64, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn handshake(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            packets_in: self.packets_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            packets_out: self.packets_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            handshakes: self.handshakes.load(Ordering::Relaxed),
        }
    }
}
