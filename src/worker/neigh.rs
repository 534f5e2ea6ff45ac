//! The stack's own neighbour (ARP) cache, RFC 826 with Linux's neighbour state machine in miniature:
//!
//! - `Incomplete`: a broadcast request went out; packets wait in a bounded queue; requests are repeated every
//!   `retrans` up to `probes` times, then the entry fails and its packets are dropped (counted by the caller).
//! - `Reachable`: the MAC was confirmed less than `reachable` ago.
//! - `Probe`: the confirmation is older; the MAC is still used while unicast requests re-confirm it; if `probes` go
//!   unanswered the entry is removed (the next packet starts over from `Incomplete`).
//! - `Permanent`: a configured static neighbour (Linux `NUD_PERMANENT`): never probed, aged or evicted.
//!
//! Bounded: at most `max_entries` entries, of which at most `max_incomplete` unresolved (so spoofed on-link
//! sources cannot fill the table with entries nobody answers for), and `max_queued` waiting packets in total (and
//! `max_queued_per_entry` per entry). Pinned next hops (the gateway) are never evicted, aged out or refused for
//! lack of room: they are the one entry every off-link reply needs. Deadlines sit in a min-heap, so a `poll` costs
//! what is due, not the table size.
//!
//! Pure logic over an opaque packet handle `T` (a UMEM descriptor in the worker), driven by time passed in. Owns
//! no I/O: the datapath sends the requests `poll` asks for.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
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
    /// At most this many entries may be unresolved at once (new unresolved next hops beyond it are refused).
    pub max_incomplete: usize,
    pub max_queued: usize,
    pub max_queued_per_entry: usize,
    /// Entries not used for this long are forgotten.
    pub gc_after: Duration,
}

impl Default for NeighConfig {
    fn default() -> Self {
        // Linux defaults: base_reachable_time 30 s, retrans_time 1 s, mcast_solicit/ucast_solicit 3. Linux has no
        // separate cap on unresolved entries (its gc_thresh3 covers all); a quarter of the table keeps three
        // quarters for neighbours that answer.
        NeighConfig {
            reachable: Duration::from_secs(30),
            retrans: Duration::from_secs(1),
            probes: 3,
            max_entries: 1024,
            max_incomplete: 256,
            max_queued: 256,
            max_queued_per_entry: 64,
            gc_after: Duration::from_secs(300),
        }
    }
}

#[derive(Debug)]
enum State<T> {
    Incomplete { sent: u32, queue: Vec<T> },
    Reachable { mac: Mac, confirmed: Instant },
    Probe { mac: Mac, sent: u32 },
    Permanent { mac: Mac },
}

#[derive(Debug)]
struct Entry<T> {
    state: State<T>,
    used: Instant,
    /// The deadline of this entry's live item in the heap (older items for it are stale and skipped).
    timer: Option<Instant>,
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
    /// Too many unresolved next hops already: drop it without creating an entry (counted as ArpIncompleteDrops).
    Refused(T),
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
    /// Next hops that are never evicted nor aged out (the gateway).
    pinned: Vec<Ipv4Addr>,
    /// (deadline, entry) in deadline order; an item whose deadline is not its entry's `timer` is stale.
    timers: BinaryHeap<Reverse<(Instant, Ipv4Addr)>>,
    queued: usize,
    incomplete: usize,
}

impl<T> NeighborCache<T> {
    pub fn new(cfg: NeighConfig) -> Self {
        NeighborCache {
            cfg,
            entries: HashMap::new(),
            pinned: Vec::new(),
            timers: BinaryHeap::new(),
            queued: 0,
            incomplete: 0,
        }
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
    /// Entries still unresolved.
    pub fn incomplete(&self) -> usize {
        self.incomplete
    }
    /// Items in the deadline heap (live and stale), for tests and fuzzing of its bound.
    pub fn timers_len(&self) -> usize {
        self.timers.len()
    }

    /// Never evicts nor ages out `ip` (the gateway), and always admits it even when the caps are reached.
    pub fn pin(&mut self, ip: Ipv4Addr) {
        if !self.pinned.contains(&ip) {
            self.pinned.push(ip);
        }
    }

    fn is_pinned(&self, ip: Ipv4Addr) -> bool {
        self.pinned.contains(&ip)
    }

    /// A static neighbour (Linux `ip neigh add ... nud permanent`): used as is, never probed, aged or evicted, and
    /// not overwritten by ARP.
    pub fn add_static(&mut self, ip: Ipv4Addr, mac: Mac, released: &mut Vec<T>) {
        self.pin(ip);
        let e = Entry { state: State::Permanent { mac }, used: Instant::ZERO, timer: None };
        if let Some(old) = self.entries.insert(ip, e) {
            self.forget_state(old.state, released);
        }
    }

    /// Undoes the accounting of a state that is being replaced; its queued packets go to `released`.
    fn forget_state(&mut self, old: State<T>, released: &mut Vec<T>) {
        if let State::Incomplete { queue, .. } = old {
            self.incomplete -= 1;
            self.queued -= queue.len();
            released.extend(queue);
        }
    }

    fn arm(timers: &mut BinaryHeap<Reverse<(Instant, Ipv4Addr)>>, e: &mut Entry<T>, ip: Ipv4Addr, at: Instant) {
        if e.timer != Some(at) {
            e.timer = Some(at);
            timers.push(Reverse((at, ip)));
        }
    }

    /// The MAC for `ip`, if known (any state but Incomplete).
    pub fn get(&self, ip: Ipv4Addr) -> Option<Mac> {
        match self.entries.get(&ip)?.state {
            State::Reachable { mac, .. } | State::Probe { mac, .. } | State::Permanent { mac } => Some(mac),
            State::Incomplete { .. } => None,
        }
    }

    /// Routes one packet to `ip`.
    pub fn resolve(&mut self, now: Instant, ip: Ipv4Addr, pkt: T) -> Resolve<T> {
        self.compact_timers();
        if !self.entries.contains_key(&ip) {
            // Refuse before creating anything: an entry for a packet that is dropped anyway only costs a request
            // and a slot (review M3).
            let pinned = self.is_pinned(ip);
            if !pinned && self.incomplete >= self.cfg.max_incomplete {
                return Resolve::Refused(pkt);
            }
            if !pinned && self.queued >= self.cfg.max_queued {
                return Resolve::Dropped(pkt);
            }
            if !pinned && !self.make_room() {
                return Resolve::Refused(pkt);
            }
            let mut e = Entry { state: State::Incomplete { sent: 1, queue: Vec::new() }, used: now, timer: None };
            Self::arm(&mut self.timers, &mut e, ip, now + self.cfg.retrans);
            self.incomplete += 1;
            self.entries.insert(ip, e);
            let State::Incomplete { queue, .. } = &mut self.entries.get_mut(&ip).expect("inserted").state else {
                unreachable!("just inserted as Incomplete")
            };
            queue.push(pkt);
            self.queued += 1;
            return Resolve::Queued { request: true };
        }
        let cfg = &self.cfg;
        let e = self.entries.get_mut(&ip).expect("checked");
        e.used = now;
        match &mut e.state {
            State::Reachable { mac, confirmed } => {
                let mac = *mac;
                if now.saturating_since(*confirmed) >= cfg.reachable {
                    // Stale: keep sending, re-confirm by unicast (first probe at the next poll).
                    e.state = State::Probe { mac, sent: 0 };
                    Self::arm(&mut self.timers, e, ip, now);
                }
                Resolve::Send(mac, pkt)
            }
            State::Probe { mac, .. } | State::Permanent { mac } => Resolve::Send(*mac, pkt),
            State::Incomplete { queue, .. } => {
                if queue.len() >= cfg.max_queued_per_entry || self.queued >= cfg.max_queued {
                    return Resolve::Dropped(pkt);
                }
                queue.push(pkt);
                self.queued += 1;
                Resolve::Queued { request: false }
            }
        }
    }

    /// Records `ip -> mac` from a received ARP packet (RFC 826 "merge"); `create` when the packet was addressed to
    /// us (RFC 826 adds the sender then) or answers our request. Returns the packets that were waiting for it.
    pub fn learn(&mut self, now: Instant, ip: Ipv4Addr, mac: Mac, create: bool, released: &mut Vec<T>) {
        self.compact_timers();
        let gc = now + self.cfg.gc_after;
        if !self.entries.contains_key(&ip) {
            if !create || (!self.is_pinned(ip) && !self.make_room()) {
                return;
            }
            let mut e = Entry { state: State::Reachable { mac, confirmed: now }, used: now, timer: None };
            Self::arm(&mut self.timers, &mut e, ip, gc);
            self.entries.insert(ip, e);
            return;
        }
        let e = self.entries.get_mut(&ip).expect("checked");
        if matches!(e.state, State::Permanent { .. }) {
            return;
        }
        let old = std::mem::replace(&mut e.state, State::Reachable { mac, confirmed: now });
        Self::arm(&mut self.timers, e, ip, gc);
        self.forget_state(old, released);
    }

    /// Runs retransmissions, failures, and garbage collection due by `now`: pops due deadlines only.
    pub fn poll(&mut self, now: Instant, due: &mut Due<T>) {
        while let Some(&Reverse((at, ip))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let pinned = self.is_pinned(ip);
            let cfg = &self.cfg;
            let Some(e) = self.entries.get_mut(&ip) else { continue };
            if e.timer != Some(at) {
                continue; // stale: the entry was re-armed since
            }
            e.timer = None;
            let mut dead = false;
            match &mut e.state {
                State::Incomplete { sent, queue } => {
                    if *sent >= cfg.probes {
                        self.queued -= queue.len();
                        due.failed.append(queue);
                        due.failed_entries += 1;
                        dead = true;
                    } else {
                        *sent += 1;
                        due.broadcast.push(ip);
                        Self::arm(&mut self.timers, e, ip, now + cfg.retrans);
                    }
                }
                State::Probe { mac, sent } => {
                    if *sent >= cfg.probes {
                        due.failed_entries += 1;
                        dead = true;
                    } else {
                        *sent += 1;
                        due.unicast.push((ip, *mac));
                        Self::arm(&mut self.timers, e, ip, now + cfg.retrans);
                    }
                }
                State::Reachable { .. } => {
                    let idle_until = e.used + cfg.gc_after;
                    if now >= idle_until && !pinned {
                        dead = true;
                    } else if !pinned {
                        Self::arm(&mut self.timers, e, ip, idle_until);
                    }
                }
                State::Permanent { .. } => {}
            }
            if dead {
                if let Some(e) = self.entries.remove(&ip) {
                    if matches!(e.state, State::Incomplete { .. }) {
                        self.incomplete -= 1;
                    }
                }
            }
        }
        self.compact_timers();
    }

    /// Stale items are dropped when their time comes; rebuilds the heap if state churn piled up more than a few
    /// per entry (amortized: at least 3 pushes per entry between rebuilds).
    fn compact_timers(&mut self) {
        if self.timers.len() <= 4 * self.entries.len() + 64 {
            return;
        }
        self.timers.clear();
        for (&ip, e) in &self.entries {
            if let Some(at) = e.timer {
                self.timers.push(Reverse((at, ip)));
            }
        }
    }

    /// The earliest instant `poll` has work (possibly a stale deadline or a GC check, which `poll` then skips).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Makes room for one more entry: evicts the least recently used resolved, unpinned entry if the table is full.
    /// The scan runs only when the table is full and a new next hop arrives, never per loop pass.
    fn make_room(&mut self) -> bool {
        if self.entries.len() < self.cfg.max_entries {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(ip, e)| {
                matches!(e.state, State::Reachable { .. } | State::Probe { .. }) && !self.pinned.contains(ip)
            })
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
        assert_eq!(c.resolve(t(0), x, 6), Resolve::Dropped(6), "no queue room: no entry either");
        assert_eq!(c.len(), 2);
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

    fn on_link(i: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + 1 + i)
    }

    /// The review's F4: after more spoofed on-link sources than the table holds, the gateway still resolves and
    /// off-link replies still go out; unresolved entries stay under their own cap.
    #[test]
    fn spoofed_on_link_sources_never_push_out_the_gateway() {
        let cfg = NeighConfig::default();
        let mut c = NeighborCache::new(cfg.clone());
        c.pin(A);
        let mut rel = Vec::new();
        c.learn(t(0), A, M, true, &mut rel);
        let mut refused = 0;
        for i in 0..2 * cfg.max_entries as u32 {
            // One SYN-ACK (or RST, or echo reply) to a spoofed on-link source every few ms.
            let now = t(u64::from(i) * 3);
            if let Resolve::Refused(_) = c.resolve(now, on_link(i), i) {
                refused += 1;
            }
            let mut due = Due::default();
            c.poll(now, &mut due);
            assert_eq!(c.resolve(now, A, 0), Resolve::Send(M, 0), "gateway after {i} spoofed sources");
        }
        assert!(refused > 0, "the incomplete cap was reached");
        assert!(c.incomplete() <= cfg.max_incomplete, "{} incomplete", c.incomplete());
        assert!(c.len() <= cfg.max_entries);
        // Even when the gateway's entry fails and must be resolved again, it is admitted while the cap is reached.
        let mut c = NeighborCache::new(NeighConfig { max_incomplete: 2, ..Default::default() });
        c.pin(A);
        for i in 0..4 {
            c.resolve(t(0), on_link(i), i);
        }
        assert_eq!(c.incomplete(), 2);
        assert_eq!(c.resolve(t(0), A, 9), Resolve::Queued { request: true });
    }

    #[test]
    fn pinned_and_static_neighbours_are_never_evicted_or_aged() {
        let cfg = NeighConfig { max_entries: 4, ..Default::default() };
        let mut c: NeighborCache<u32> = NeighborCache::new(cfg);
        let s = Ipv4Addr::new(198, 18, 0, 200);
        let mut rel = Vec::new();
        c.pin(A);
        c.learn(t(0), A, M, true, &mut rel);
        c.add_static(s, [2, 0, 0, 0, 0, 2], &mut rel);
        // Resolved neighbours come and go (LRU eviction among them only).
        for i in 0..20 {
            c.learn(t(10 + i), on_link(u32::from(i as u8)), [2, 0, 0, 0, 1, i as u8], true, &mut rel);
        }
        assert_eq!(c.len(), 4);
        assert_eq!(c.get(A), Some(M));
        assert_eq!(c.get(s), Some([2, 0, 0, 0, 0, 2]));
        // Static entries ignore ARP and never age.
        c.learn(t(100), s, [2, 9, 9, 9, 9, 9], true, &mut rel);
        let mut due = Due::default();
        c.poll(t(1_000_000), &mut due);
        assert_eq!(c.get(s), Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(c.get(A), Some(M), "the gateway is not garbage-collected");
        assert_eq!(c.get(on_link(19)), None, "idle ordinary entries are");
    }

    #[test]
    fn poll_pops_only_due_deadlines_and_the_heap_stays_bounded() {
        let mut c = NeighborCache::new(NeighConfig::default());
        let mut rel = Vec::new();
        for i in 0..200 {
            c.learn(t(0), on_link(i), M, true, &mut rel);
        }
        assert_eq!(c.next_deadline(), Some(t(300_000)), "only GC checks are pending");
        c.resolve(t(5), A, 1);
        assert_eq!(c.next_deadline(), Some(t(1005)));
        // Churn: entries go stale, are probed and re-confirmed many times.
        let mut due = Due::default();
        for round in 1..200u64 {
            let now = t(round * 31_000);
            for i in 0..200 {
                c.resolve(now, on_link(i), 0);
            }
            due.clear();
            c.poll(now, &mut due);
            for i in 0..200 {
                c.learn(now, on_link(i), M, false, &mut rel);
            }
        }
        assert!(c.timers_len() <= 4 * c.len() + 65, "{} heap items for {} entries", c.timers_len(), c.len());
    }
}
