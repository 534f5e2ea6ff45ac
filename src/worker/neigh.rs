//! The stack's own neighbour (ARP) cache, RFC 826 with Linux's neighbour state machine in miniature:
//!
//! - `Incomplete`: a broadcast request went out; packets wait in a bounded queue; requests are repeated every
//!   `retrans` up to `probes` times, then the entry fails and its packets are dropped (counted by the caller).
//! - `Reachable`: the MAC was confirmed less than `reachable` ago.
//! - `Probe`: the confirmation is older; the MAC is still used while unicast requests re-confirm it; if `probes` go
//!   unanswered the entry is removed (the next packet starts over from `Incomplete`).
//!
//! Bounded: at most `max_entries` entries and `max_queued` waiting packets in total (and `max_queued_per_entry` per
//! entry). Pure logic over an opaque packet handle `T` (a UMEM descriptor in the worker), driven by time passed in.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::time::Instant;

pub type Mac = [u8; 6];

#[derive(Clone, Debug)]
pub struct NeighConfig {
    pub reachable: Duration,
    pub retrans: Duration,
    pub probes: u32,
    pub max_entries: usize,
    pub max_queued: usize,
    pub max_queued_per_entry: usize,
    /// Entries not used for this long are forgotten.
    pub gc_after: Duration,
}

impl Default for NeighConfig {
    fn default() -> Self {
        // Linux defaults: base_reachable_time 30 s, retrans_time 1 s, mcast_solicit/ucast_solicit 3.
        NeighConfig {
            reachable: Duration::from_secs(30),
            retrans: Duration::from_secs(1),
            probes: 3,
            max_entries: 1024,
            max_queued: 256,
            max_queued_per_entry: 64,
            gc_after: Duration::from_secs(300),
        }
    }
}

#[derive(Debug)]
enum State<T> {
    Incomplete { sent: u32, next: Instant, queue: Vec<T> },
    Reachable { mac: Mac, confirmed: Instant },
    Probe { mac: Mac, sent: u32, next: Instant },
}

#[derive(Debug)]
struct Entry<T> {
    state: State<T>,
    used: Instant,
}

/// What to do with a packet for a next hop.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolve<T> {
    /// Send it now to this MAC.
    Send(Mac, T),
    /// It waits for resolution; `request` says whether to broadcast a request now.
    Queued { request: bool },
    /// No room to wait: drop it (counted as ArpQueueDrops).
    Dropped(T),
}

/// Requests and failures due at a `poll`.
#[derive(Debug, Default)]
pub struct Due<T> {
    /// Broadcast requests to send (Incomplete entries).
    pub broadcast: Vec<Ipv4Addr>,
    /// Unicast re-confirmation requests (Probe entries).
    pub unicast: Vec<(Ipv4Addr, Mac)>,
    /// Packets whose next hop failed to resolve (counted as ArpResolveFails per entry, the packets dropped).
    pub failed: Vec<T>,
    /// Entries that failed.
    pub failed_entries: u64,
}

impl<T> Due<T> {
    pub fn clear(&mut self) {
        self.broadcast.clear();
        self.unicast.clear();
        self.failed.clear();
        self.failed_entries = 0;
    }
}

#[derive(Debug)]
pub struct NeighborCache<T> {
    cfg: NeighConfig,
    entries: HashMap<Ipv4Addr, Entry<T>>,
    queued: usize,
}

impl<T> NeighborCache<T> {
    pub fn new(cfg: NeighConfig) -> Self {
        NeighborCache { cfg, entries: HashMap::new(), queued: 0 }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Packets waiting for resolution.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The MAC for `ip`, if known (any state but Incomplete).
    pub fn get(&self, ip: Ipv4Addr) -> Option<Mac> {
        match self.entries.get(&ip)?.state {
            State::Reachable { mac, .. } | State::Probe { mac, .. } => Some(mac),
            State::Incomplete { .. } => None,
        }
    }

    /// Routes one packet to `ip`.
    pub fn resolve(&mut self, now: Instant, ip: Ipv4Addr, pkt: T) -> Resolve<T> {
        if !self.entries.contains_key(&ip) && !self.make_room(now) {
            return Resolve::Dropped(pkt);
        }
        let cfg = &self.cfg;
        let e = self
            .entries
            .entry(ip)
            .or_insert_with(|| Entry { state: State::Incomplete { sent: 0, next: now, queue: Vec::new() }, used: now });
        e.used = now;
        match &mut e.state {
            State::Reachable { mac, confirmed } => {
                let mac = *mac;
                if now.saturating_since(*confirmed) >= cfg.reachable {
                    // Stale: keep sending, re-confirm by unicast (first probe at the next poll).
                    e.state = State::Probe { mac, sent: 0, next: now };
                }
                Resolve::Send(mac, pkt)
            }
            State::Probe { mac, .. } => Resolve::Send(*mac, pkt),
            State::Incomplete { sent, next, queue } => {
                if queue.len() >= cfg.max_queued_per_entry || self.queued >= cfg.max_queued {
                    return Resolve::Dropped(pkt);
                }
                queue.push(pkt);
                self.queued += 1;
                let request = *sent == 0;
                if request {
                    *sent = 1;
                    *next = now + cfg.retrans;
                }
                Resolve::Queued { request }
            }
        }
    }

    /// Records `ip -> mac` from a received ARP packet (RFC 826 "merge"); `create` when the packet was addressed to
    /// us (RFC 826 adds the sender then) or answers our request. Returns the packets that were waiting for it.
    pub fn learn(&mut self, now: Instant, ip: Ipv4Addr, mac: Mac, create: bool, released: &mut Vec<T>) {
        if !self.entries.contains_key(&ip) {
            if !create || !self.make_room(now) {
                return;
            }
            self.entries.insert(ip, Entry { state: State::Reachable { mac, confirmed: now }, used: now });
            return;
        }
        let e = self.entries.get_mut(&ip).expect("checked");
        let old = std::mem::replace(&mut e.state, State::Reachable { mac, confirmed: now });
        if let State::Incomplete { queue, .. } = old {
            self.queued -= queue.len();
            released.extend(queue);
        }
    }

    /// Runs retransmissions, failures, and garbage collection due by `now`.
    pub fn poll(&mut self, now: Instant, due: &mut Due<T>) {
        let cfg = &self.cfg;
        let mut dead = Vec::new();
        for (&ip, e) in self.entries.iter_mut() {
            match &mut e.state {
                State::Incomplete { sent, next, queue } => {
                    if now < *next {
                        continue;
                    }
                    if *sent >= cfg.probes {
                        self.queued -= queue.len();
                        due.failed.append(queue);
                        due.failed_entries += 1;
                        dead.push(ip);
                    } else {
                        *sent += 1;
                        *next = now + cfg.retrans;
                        due.broadcast.push(ip);
                    }
                }
                State::Probe { mac, sent, next } => {
                    if now < *next {
                        continue;
                    }
                    if *sent >= cfg.probes {
                        due.failed_entries += 1;
                        dead.push(ip);
                    } else {
                        *sent += 1;
                        *next = now + cfg.retrans;
                        due.unicast.push((ip, *mac));
                    }
                }
                State::Reachable { .. } => {
                    if now.saturating_since(e.used) >= cfg.gc_after {
                        dead.push(ip);
                    }
                }
            }
        }
        for ip in dead {
            self.entries.remove(&ip);
        }
    }

    /// The earliest instant `poll` has work (retransmissions; GC is not urgent and is not reported).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match &e.state {
                State::Incomplete { next, .. } | State::Probe { next, .. } => Some(*next),
                State::Reachable { .. } => None,
            })
            .min()
    }

    /// Makes room for one more entry: evicts the least recently used resolved entry if the table is full.
    fn make_room(&mut self, _now: Instant) -> bool {
        if self.entries.len() < self.cfg.max_entries {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| !matches!(e.state, State::Incomplete { .. }))
            .min_by_key(|(_, e)| e.used)
            .map(|(ip, _)| *ip);
        match victim {
            Some(ip) => {
                self.entries.remove(&ip);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
    const M: Mac = [2, 0, 0, 0, 0, 1];

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn queues_then_releases_on_reply() {
        let mut c = NeighborCache::new(NeighConfig::default());
        assert_eq!(c.resolve(t(0), A, 1), Resolve::Queued { request: true });
        assert_eq!(c.resolve(t(1), A, 2), Resolve::Queued { request: false });
        assert_eq!(c.queued(), 2);
        let mut rel = Vec::new();
        c.learn(t(2), A, M, true, &mut rel);
        assert_eq!(rel, vec![1, 2]);
        assert_eq!(c.queued(), 0);
        assert_eq!(c.resolve(t(3), A, 3), Resolve::Send(M, 3));
    }

    #[test]
    fn retries_then_fails_and_drops_queue() {
        let mut c = NeighborCache::new(NeighConfig::default());
        c.resolve(t(0), A, 1);
        let mut due = Due::default();
        c.poll(t(500), &mut due);
        assert!(due.broadcast.is_empty(), "not yet due");
        c.poll(t(1000), &mut due);
        assert_eq!(due.broadcast, vec![A]);
        due.clear();
        c.poll(t(2000), &mut due);
        assert_eq!(due.broadcast, vec![A]);
        due.clear();
        c.poll(t(3000), &mut due);
        assert_eq!(due.failed, vec![1]);
        assert_eq!(due.failed_entries, 1);
        assert!(c.is_empty());
        assert_eq!(c.queued(), 0);
    }

    #[test]
    fn stale_entries_are_probed_and_removed_if_silent() {
        let mut c = NeighborCache::new(NeighConfig::default());
        let mut rel = Vec::new();
        c.learn(t(0), A, M, true, &mut rel);
        assert_eq!(c.resolve(t(31_000), A, 1), Resolve::Send(M, 1));
        let mut due = Due::default();
        c.poll(t(31_000), &mut due);
        assert_eq!(due.unicast, vec![(A, M)]);
        // A reply re-confirms.
        c.learn(t(31_100), A, M, false, &mut rel);
        due.clear();
        c.poll(t(40_000), &mut due);
        assert!(due.unicast.is_empty());
        // Stale again, never answered: gone after the probes.
        c.resolve(t(62_000), A, 2);
        for s in 0..4 {
            due.clear();
            c.poll(t(62_000 + s * 1000), &mut due);
        }
        assert_eq!(due.failed_entries, 1);
        assert!(c.get(A).is_none());
    }

    #[test]
    fn bounded_queues_and_table() {
        let cfg = NeighConfig { max_entries: 2, max_queued: 3, max_queued_per_entry: 2, ..Default::default() };
        let mut c = NeighborCache::new(cfg);
        let b = Ipv4Addr::new(198, 18, 0, 9);
        let x = Ipv4Addr::new(198, 18, 0, 10);
        assert!(matches!(c.resolve(t(0), A, 1), Resolve::Queued { .. }));
        assert!(matches!(c.resolve(t(0), A, 2), Resolve::Queued { .. }));
        assert_eq!(c.resolve(t(0), A, 3), Resolve::Dropped(3), "per-entry bound");
        assert!(matches!(c.resolve(t(0), b, 4), Resolve::Queued { .. }));
        assert_eq!(c.resolve(t(0), b, 5), Resolve::Dropped(5), "global bound");
        assert_eq!(c.resolve(t(0), x, 6), Resolve::Dropped(6), "table full of incomplete entries");
        let mut rel = Vec::new();
        c.learn(t(1), A, M, false, &mut rel);
        assert_eq!(rel.len(), 2);
        // Now A is resolved and can be evicted for x.
        assert!(matches!(c.resolve(t(2), x, 7), Resolve::Queued { .. }));
        assert!(c.get(A).is_none());
    }

    #[test]
    fn unsolicited_arp_does_not_create_entries() {
        let mut c: NeighborCache<u32> = NeighborCache::new(NeighConfig::default());
        let mut rel = Vec::new();
        c.learn(t(0), A, M, false, &mut rel);
        assert!(c.get(A).is_none());
        c.learn(t(0), A, M, true, &mut rel);
        assert_eq!(c.get(A), Some(M));
    }
}
