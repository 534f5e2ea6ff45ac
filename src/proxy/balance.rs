//! A frontend's backend pool and the choice of a backend for each new client connection.
//!
//! - `roundrobin`: smooth weighted round robin (each pick adds every eligible backend's weight to its credit, takes
//!   the backend with the most credit and takes the total back from it), so a 5:1:1 pool goes a a b a c a a rather
//!   than a a a a a b c.
//! - `leastconn`: the fewest active connections per unit of weight; ties rotate.
//! - `maglev`: Maglev consistent hashing of the client address (see [`super::maglev`]).
//!
//! Eligible means: not removed, not draining, healthy, weight > 0, and below its `maxconn`. A backend's open
//! connections never move: down, draining or removed only stops new ones.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::health::{CheckConfig, Health, HealthChange};
use super::maglev::{client_hash, table_size_for, MaglevTable};
use crate::time::Instant;

/// The balancing algorithm (HAProxy's `balance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConn,
    Maglev,
}

impl Balance {
    pub const NAMES: &'static str = "roundrobin, leastconn, maglev";

    pub fn parse(s: &str) -> Option<Balance> {
        match s {
            "roundrobin" => Some(Balance::RoundRobin),
            "leastconn" => Some(Balance::LeastConn),
            "maglev" => Some(Balance::Maglev),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Balance::RoundRobin => "roundrobin",
            Balance::LeastConn => "leastconn",
            Balance::Maglev => "maglev",
        }
    }
}

/// What the operator set for a backend (HAProxy's `set server ... state ready|drain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admin {
    Ready,
    /// No new connections; open ones finish.
    Drain,
    /// Removed: like drain, and forgotten once its last connection ends (`Pool::add` of the same address revives it).
    Removed,
}

/// Counters of one backend, shown by `backend list`, `stat` and `--metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Connections opened to it (successful connects).
    pub total: u64,
    /// Connects that failed (refused, reset, timed out).
    pub connect_failures: u64,
    /// Bytes relayed from clients to it.
    pub bytes_to: u64,
    /// Bytes relayed from it to clients.
    pub bytes_from: u64,
}

#[derive(Clone, Debug)]
pub struct Backend {
    pub addr: SocketAddrV4,
    pub weight: u32,
    /// Connection limit (0: none).
    pub maxconn: u32,
    pub admin: Admin,
    pub health: Health,
    /// Pairs using it now (connecting or connected).
    pub active: u32,
    pub stats: BackendStats,
    /// Smooth round-robin credit.
    credit: i64,
    /// The name Maglev hashes: "ip:port", the same on every node.
    key: Vec<u8>,
}

impl Backend {
    fn eligible(&self) -> bool {
        self.admin == Admin::Ready
            && self.health.is_up()
            && self.weight > 0
            && (self.maxconn == 0 || self.active < self.maxconn)
    }
}

/// Why a pool change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("backend {0} already in the pool")]
    Duplicate(SocketAddrV4),
    #[error("no backend {0} in the pool")]
    Unknown(SocketAddrV4),
    #[error("weight {0} out of range (allowed: 0..=256)")]
    Weight(u32),
}

/// Largest weight, as HAProxy's.
pub const MAX_WEIGHT: u32 = 256;

/// One frontend's backends.
#[derive(Clone, Debug)]
pub struct Pool {
    pub balance: Balance,
    pub check: CheckConfig,
    backends: Vec<Backend>,
    maglev: MaglevTable,
    /// Rotates leastconn ties.
    cursor: usize,
}

impl Pool {
    pub fn new(balance: Balance, check: CheckConfig) -> Pool {
        Pool { balance, check, backends: Vec::new(), maglev: MaglevTable::build(&[], 1), cursor: 0 }
    }

    /// Adds a backend (or brings back a removed one with new settings). Returns its index, stable for the pool's
    /// life.
    pub fn add(&mut self, now: Instant, addr: SocketAddrV4, weight: u32, maxconn: u32) -> Result<usize, PoolError> {
        if weight > MAX_WEIGHT {
            return Err(PoolError::Weight(weight));
        }
        if let Some(i) = self.index_of(addr) {
            let b = &mut self.backends[i];
            if b.admin != Admin::Removed {
                return Err(PoolError::Duplicate(addr));
            }
            b.admin = Admin::Ready;
            b.weight = weight;
            b.maxconn = maxconn;
            b.health = Health::new(&self.check, now);
            self.rebuild();
            return Ok(i);
        }
        self.backends.push(Backend {
            addr,
            weight,
            maxconn,
            admin: Admin::Ready,
            health: Health::new(&self.check, now),
            active: 0,
            stats: BackendStats::default(),
            credit: 0,
            key: addr.to_string().into_bytes(),
        });
        self.rebuild();
        Ok(self.backends.len() - 1)
    }

    pub fn index_of(&self, addr: SocketAddrV4) -> Option<usize> {
        self.backends.iter().position(|b| b.addr == addr)
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    pub fn backend_mut(&mut self, i: usize) -> &mut Backend {
        &mut self.backends[i]
    }

    /// Sets the operator state (`drain`, `remove`, `ready`).
    pub fn set_admin(&mut self, addr: SocketAddrV4, admin: Admin) -> Result<(), PoolError> {
        let i = self.index_of(addr).ok_or(PoolError::Unknown(addr))?;
        if self.backends[i].admin == Admin::Removed && admin != Admin::Removed {
            return Err(PoolError::Unknown(addr));
        }
        self.backends[i].admin = admin;
        self.rebuild();
        Ok(())
    }

    pub fn set_weight(&mut self, addr: SocketAddrV4, weight: u32) -> Result<(), PoolError> {
        if weight > MAX_WEIGHT {
            return Err(PoolError::Weight(weight));
        }
        let i = self.index_of(addr).filter(|&i| self.backends[i].admin != Admin::Removed);
        let i = i.ok_or(PoolError::Unknown(addr))?;
        self.backends[i].weight = weight;
        self.rebuild();
        Ok(())
    }

    /// The Maglev table lists every backend not removed, with its weight: drain and health are skipped at lookup
    /// so that they do not reshuffle anyone else's clients (and every node builds the same table from the same
    /// configuration, whatever its own health view).
    fn rebuild(&mut self) {
        if self.balance != Balance::Maglev {
            return;
        }
        let list: Vec<(&[u8], u32)> = self
            .backends
            .iter()
            .map(|b| (b.key.as_slice(), if b.admin == Admin::Removed { 0 } else { b.weight }))
            .collect();
        let n = list.iter().filter(|(_, w)| *w > 0).count();
        self.maglev = MaglevTable::build(&list, table_size_for(n));
    }

    /// Chooses a backend for a client, skipping `tried` (backends this connection already failed on). Does not count
    /// the connection: call [`Pool::opened`] when the connect starts.
    pub fn pick(&mut self, client: Ipv4Addr, tried: &[usize]) -> Option<usize> {
        let ok = |b: &Backend, i: usize| b.eligible() && !tried.contains(&i);
        match self.balance {
            Balance::RoundRobin => {
                let mut total = 0i64;
                let mut best: Option<usize> = None;
                for i in 0..self.backends.len() {
                    let b = &mut self.backends[i];
                    if !ok(b, i) {
                        continue;
                    }
                    b.credit += b.weight as i64;
                    total += b.weight as i64;
                    if best.is_none_or(|j| self.backends[i].credit > self.backends[j].credit) {
                        best = Some(i);
                    }
                }
                let best = best?;
                self.backends[best].credit -= total;
                Some(best)
            }
            Balance::LeastConn => {
                let n = self.backends.len();
                let mut best: Option<usize> = None;
                for k in 0..n {
                    let i = (self.cursor + k) % n;
                    let b = &self.backends[i];
                    if !ok(b, i) {
                        continue;
                    }
                    // active / weight < best.active / best.weight, without division.
                    let better = best.is_none_or(|j| {
                        let o = &self.backends[j];
                        (b.active as u64) * (o.weight as u64) < (o.active as u64) * (b.weight as u64)
                    });
                    if better {
                        best = Some(i);
                    }
                }
                let best = best?;
                self.cursor = (best + 1) % n.max(1);
                Some(best)
            }
            Balance::Maglev => {
                let backends = &self.backends;
                self.maglev.lookup(client_hash(client), |i| ok(&backends[i], i))
            }
        }
    }

    /// A connect to backend `i` started.
    pub fn opened(&mut self, i: usize) {
        self.backends[i].active += 1;
    }

    /// A pair that used backend `i` is over (or its connect failed).
    pub fn closed(&mut self, i: usize) {
        let b = &mut self.backends[i];
        b.active = b.active.saturating_sub(1);
    }

    /// A client connect to `i` succeeded.
    pub fn connect_passed(&mut self, i: usize) {
        let b = &mut self.backends[i];
        b.stats.total += 1;
        b.health.connect_passed();
    }

    /// A client connect to `i` failed: counted, and maybe marks it down (passive health).
    pub fn connect_failed(&mut self, i: usize) -> HealthChange {
        let b = &mut self.backends[i];
        b.stats.connect_failures += 1;
        b.health.connect_failed(&self.check)
    }

    /// Whether any backend could take a connection now.
    pub fn any_eligible(&self) -> bool {
        self.backends.iter().any(Backend::eligible)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, i), 80)
    }

    fn pool(balance: Balance, weights: &[u32]) -> Pool {
        let mut p = Pool::new(balance, CheckConfig::default());
        for (i, &w) in weights.iter().enumerate() {
            p.add(Instant::ZERO, addr(i as u8 + 1), w, 0).unwrap();
        }
        p
    }

    fn client(i: u32) -> Ipv4Addr {
        Ipv4Addr::from(0xc612_0000 + i)
    }

    #[test]
    fn smooth_weighted_round_robin_interleaves() {
        let mut p = pool(Balance::RoundRobin, &[5, 1, 1]);
        let seq: Vec<usize> = (0..7).map(|_| p.pick(client(0), &[]).unwrap()).collect();
        // nginx's / HAProxy's smooth sequence for 5:1:1.
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
        let mut counts = [0; 3];
        for _ in 0..700 {
            counts[p.pick(client(0), &[]).unwrap()] += 1;
        }
        assert_eq!(counts, [500, 100, 100]);
    }

    #[test]
    fn round_robin_skips_down_draining_full_and_tried() {
        let mut p = pool(Balance::RoundRobin, &[1, 1, 1, 0]);
        p.set_admin(addr(2), Admin::Drain).unwrap();
        let cfg = p.check.clone();
        for _ in 0..cfg.fall {
            p.backend_mut(2).health.check_failed(&cfg);
        }
        for _ in 0..10 {
            assert_eq!(p.pick(client(0), &[]), Some(0));
        }
        assert_eq!(p.pick(client(0), &[0]), None, "weight 0 never chosen");
        p.set_admin(addr(2), Admin::Ready).unwrap();
        p.backend_mut(0).maxconn = 1;
        p.opened(0);
        assert_eq!(p.pick(client(0), &[]), Some(1), "backend 0 is full");
        p.closed(0);
        assert!(p.any_eligible());
    }

    #[test]
    fn least_connections_per_weight() {
        let mut p = pool(Balance::LeastConn, &[1, 2]);
        let mut picks = Vec::new();
        for _ in 0..6 {
            let i = p.pick(client(0), &[]).unwrap();
            p.opened(i);
            picks.push(i);
        }
        assert_eq!(p.backends()[0].active, 2);
        assert_eq!(p.backends()[1].active, 4);
        p.closed(1);
        p.closed(1);
        p.closed(1);
        assert_eq!(p.pick(client(0), &[]), Some(1));
        // Ties rotate instead of always hitting the first.
        let mut q = pool(Balance::LeastConn, &[1, 1, 1]);
        let seq: Vec<usize> = (0..3).map(|_| q.pick(client(0), &[]).unwrap()).collect();
        assert_eq!(seq, vec![0, 1, 2]);
    }

    #[test]
    fn maglev_is_sticky_per_client_and_consistent_across_nodes() {
        let mut a = pool(Balance::Maglev, &[1, 1, 1, 1]);
        // Another node, configured with the same backends listed in another order.
        let mut b = Pool::new(Balance::Maglev, CheckConfig::default());
        for i in [4u8, 2, 3, 1] {
            b.add(Instant::ZERO, addr(i), 1, 0).unwrap();
        }
        let mut counts = [0; 4];
        for c in 0..4000 {
            let x = a.pick(client(c), &[]).unwrap();
            assert_eq!(a.pick(client(c), &[]).unwrap(), x, "same client, same backend");
            let y = b.pick(client(c), &[]).unwrap();
            assert_eq!(a.backends()[x].addr, b.backends()[y].addr);
            counts[x] += 1;
        }
        assert!(counts.iter().all(|&n| (800..1200).contains(&n)), "{counts:?}");
        // A backend going down moves only its own clients.
        let before: Vec<usize> = (0..4000).map(|c| a.pick(client(c), &[]).unwrap()).collect();
        a.set_admin(addr(2), Admin::Drain).unwrap();
        for (c, &x) in before.iter().enumerate() {
            let y = a.pick(client(c as u32), &[]).unwrap();
            assert_ne!(y, 1);
            if x != 1 {
                assert_eq!(x, y);
            }
        }
    }

    #[test]
    fn pool_changes() {
        let mut p = pool(Balance::Maglev, &[1, 1]);
        assert_eq!(p.add(Instant::ZERO, addr(1), 1, 0), Err(PoolError::Duplicate(addr(1))));
        assert_eq!(p.set_weight(addr(1), 300), Err(PoolError::Weight(300)));
        assert_eq!(p.set_admin(addr(9), Admin::Drain), Err(PoolError::Unknown(addr(9))));
        p.set_admin(addr(1), Admin::Removed).unwrap();
        assert_eq!(p.set_weight(addr(1), 2), Err(PoolError::Unknown(addr(1))));
        for c in 0..100 {
            assert_eq!(p.pick(client(c), &[]), Some(1));
        }
        assert_eq!(p.add(Instant::ZERO, addr(1), 3, 0), Ok(0), "re-added in place");
        let zeros = (0..1000).filter(|&c| p.pick(client(c), &[]) == Some(0)).count();
        assert!((650..850).contains(&zeros), "weight 3 of 4: {zeros}");
    }
}
