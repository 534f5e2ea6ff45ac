//! The relay: an [`App`] that pairs every accepted client connection with one backend connection opened from the
//! same engine (so from the same worker; with RSS steering set, the engine picks a source port whose replies land on
//! this worker's queue), and moves bytes both ways.
//!
//! - Back-pressure: a direction moves only as many bytes as the receiving side's send buffer takes now; the rest
//!   stays in the sending side's receive buffer, whose window then closes. Memory per pair is the two connections'
//!   socket buffers plus a few words here, whatever the peers send.
//! - Copies per relayed byte: frame → receive buffer (engine), receive buffer → the worker's one scratch buffer,
//!   scratch → the other connection's send buffer, send buffer → frame (engine): four.
//! - Half-close: a side's FIN becomes a FIN on the other side after the data; the other direction stays open.
//! - Resets: a reset (or a timeout) on either side aborts the other side.
//! - Connect: the client's first bytes wait in its receive buffer until the backend connection is up. A refused or
//!   timed-out connect retries (`retries`), on another backend with `redispatch`; when every attempt failed the
//!   client gets a RST. A client that leaves while its backend connect is pending aborts that connect.
//! - Limits: beyond a frontend's `maxconn` pairs, or while every healthy backend is at its `maxconn`, connections
//!   wait in the listen backlog (never in a queue of ours). No healthy backend at all: the client is reset.
//! - Health: active TCP-connect checks every `inter` and passive marking (see [`super::health`]).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::balance::{Admin, Pool};
use super::config::{FrontendConfig, ProxyConfig};
use super::health::HealthChange;
use crate::app::App;
use crate::tcp::{CloseReason, ConnId, Engine, Error, Event, ListenerId};
use crate::time::Instant;
use crate::wire::ProxyV2Repr;

/// Timeouts and checks are looked at this often, not on every loop pass.
const SWEEP_EVERY: Duration = Duration::from_millis(10);
/// Bytes moved per read: the scratch buffer shared by every pair of a worker.
const SCRATCH: usize = 64 * 1024;

/// Counters of the relay (per worker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Client connections accepted.
    pub accepted: u64,
    /// Pairs whose backend connection came up.
    pub paired: u64,
    /// Backend connects that failed and were tried again.
    pub retries: u64,
    /// Retries sent to another backend.
    pub redispatches: u64,
    /// Clients reset because no backend could be reached.
    pub no_backend: u64,
    /// Clients that left while their backend connect was pending.
    pub client_aborts_connecting: u64,
    /// Backend connects that ran out of `timeout connect`.
    pub connect_timeouts: u64,
    /// Pairs ended by `timeout client`/`timeout server`.
    pub idle_timeouts: u64,
    /// Pairs ended by a reset (or error) on either side.
    pub resets: u64,
    /// Times accepting was held back because a frontend or all its backends were at `maxconn`.
    pub limit_waits: u64,
    pub checks_passed: u64,
    pub checks_failed: u64,
    pub bytes_client_to_server: u64,
    pub bytes_server_to_client: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Client(usize),
    Server(usize),
    Check { frontend: usize, backend: usize },
}

struct Pair {
    frontend: usize,
    client: ConnId,
    client_addr: SocketAddrV4,
    local: SocketAddrV4,
    /// The backend connection held now (connecting or connected).
    server: Option<ConnId>,
    /// Index of its backend in the frontend's pool.
    backend: usize,
    connected: bool,
    attempts: u32,
    tried: Vec<usize>,
    connect_deadline: Instant,
    /// Client EOF forwarded to the backend (FIN queued there).
    c2s_done: bool,
    s2c_done: bool,
    /// The engine said the connection is over (`Closed`); its handle is released once its bytes are relayed.
    client_over: bool,
    server_over: bool,
    last_activity: Instant,
}

struct Frontend {
    config: FrontendConfig,
    pool: Pool,
    listeners: Vec<ListenerId>,
    pairs: u32,
}

struct Check {
    deadline: Instant,
}

/// The proxy application of one worker.
pub struct Relay {
    local_ip: Ipv4Addr,
    frontends: Vec<Frontend>,
    /// Listen port → frontend.
    ports: HashMap<u16, usize>,
    pairs: Vec<Option<Pair>>,
    free: Vec<usize>,
    roles: HashMap<ConnId, Role>,
    checks: HashMap<ConnId, Check>,
    /// Backends with a check in flight, per frontend.
    checking: Vec<Vec<bool>>,
    scratch: Vec<u8>,
    next_sweep: Instant,
    draining: bool,
    pub stats: RelayStats,
}

enum Capacity {
    Room,
    /// Healthy backends exist but all are at their limit, or the frontend is: leave clients in the backlog.
    Full,
    /// No healthy backend.
    Down,
}

impl Relay {
    /// A relay for `config`; `local_ip` is the stack's address (backend connects and checks leave from it).
    pub fn new(config: &ProxyConfig, local_ip: Ipv4Addr, now: Instant) -> Relay {
        let mut frontends = Vec::new();
        let mut ports = HashMap::new();
        for (i, f) in config.frontends.iter().enumerate() {
            let mut pool = Pool::new(f.balance, f.check.clone());
            for b in &f.backends {
                // Duplicates were refused by the configuration already.
                let _ = pool.add(now, b.addr, b.weight, b.maxconn);
            }
            for &p in &f.listen {
                ports.insert(p, i);
            }
            frontends.push(Frontend { config: f.clone(), pool, listeners: Vec::new(), pairs: 0 });
        }
        let checking = frontends.iter().map(|f| vec![false; f.pool.backends().len()]).collect();
        Relay {
            local_ip,
            frontends,
            ports,
            pairs: Vec::new(),
            free: Vec::new(),
            roles: HashMap::new(),
            checks: HashMap::new(),
            checking,
            scratch: vec![0; SCRATCH],
            next_sweep: now,
            draining: false,
            stats: RelayStats::default(),
        }
    }

    /// Listens on every frontend port of `ip` (for hosts that do not get listeners from the worker).
    pub fn listen_all(&mut self, engine: &mut Engine, ip: Ipv4Addr, backlog: u32) -> Result<(), Error> {
        for f in &mut self.frontends {
            for &p in &f.config.listen {
                let l = engine.listen(SocketAddrV4::new(ip, p), backlog)?;
                f.listeners.push(l);
            }
        }
        Ok(())
    }

    /// Listen ports of every frontend.
    pub fn ports(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.ports.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// The pool of frontend `i` (for `backend list`, counters, and run-time changes).
    pub fn pool(&self, i: usize) -> &Pool {
        &self.frontends[i].pool
    }

    pub fn pool_mut(&mut self, i: usize) -> &mut Pool {
        &mut self.frontends[i].pool
    }

    pub fn frontend_count(&self) -> usize {
        self.frontends.len()
    }

    /// Pairs open now (connecting or connected).
    pub fn pair_count(&self) -> usize {
        self.pairs.len() - self.free.len()
    }

    /// Every pair: (client connection, backend connection if any), for `ss`.
    pub fn for_each_pair(&self, f: &mut dyn FnMut(ConnId, Option<ConnId>)) {
        for p in self.pairs.iter().flatten() {
            f(p.client, p.server);
        }
    }

    fn frontend_of(&mut self, engine: &Engine, l: ListenerId) -> Option<usize> {
        let port = engine.listener_info(l)?.local.port();
        let i = *self.ports.get(&port)?;
        if !self.frontends[i].listeners.contains(&l) {
            self.frontends[i].listeners.push(l);
        }
        Some(i)
    }

    fn capacity(&self, f: usize) -> Capacity {
        let fe = &self.frontends[f];
        if fe.config.maxconn > 0 && fe.pairs >= fe.config.maxconn {
            return Capacity::Full;
        }
        if fe.pool.any_eligible() {
            return Capacity::Room;
        }
        let up = fe.pool.backends().iter().any(|b| b.admin == Admin::Ready && b.health.is_up() && b.weight > 0);
        if up {
            Capacity::Full
        } else {
            Capacity::Down
        }
    }

    /// Accepts what the frontend has room for; the rest waits in the backlog.
    fn accept_from(&mut self, engine: &mut Engine, now: Instant, f: usize) {
        if self.draining {
            return;
        }
        for li in 0..self.frontends[f].listeners.len() {
            let l = self.frontends[f].listeners[li];
            // Bounded by the accept queue, which the engine bounds.
            loop {
                let cap = self.capacity(f);
                if matches!(cap, Capacity::Full) {
                    if engine.listener_info(l).is_some_and(|i| i.accept_queue > 0) {
                        self.stats.limit_waits += 1;
                    }
                    return;
                }
                let Ok(c) = engine.accept(l) else { break };
                self.stats.accepted += 1;
                if matches!(cap, Capacity::Down) {
                    self.stats.no_backend += 1;
                    let _ = engine.abort(now, c);
                    continue;
                }
                self.start_pair(engine, now, f, c);
            }
        }
    }

    fn start_pair(&mut self, engine: &mut Engine, now: Instant, f: usize, client: ConnId) {
        let Some((local, client_addr)) = engine.local_addr_of(client) else {
            let _ = engine.abort(now, client);
            return;
        };
        let pair = Pair {
            frontend: f,
            client,
            client_addr,
            local,
            server: None,
            backend: usize::MAX,
            connected: false,
            attempts: 0,
            tried: Vec::new(),
            connect_deadline: now,
            c2s_done: false,
            s2c_done: false,
            client_over: false,
            server_over: false,
            last_activity: now,
        };
        let id = match self.free.pop() {
            Some(i) => {
                self.pairs[i] = Some(pair);
                i
            }
            None => {
                self.pairs.push(Some(pair));
                self.pairs.len() - 1
            }
        };
        self.roles.insert(client, Role::Client(id));
        self.frontends[f].pairs += 1;
        self.connect(engine, now, id);
    }

    /// Opens (or reopens) the backend connection of pair `id`; resets the client when no attempt is left.
    fn connect(&mut self, engine: &mut Engine, now: Instant, id: usize) {
        // Bounded: each pass uses one attempt.
        loop {
            let Some(p) = self.pairs[id].as_mut() else { return };
            let fe = &mut self.frontends[p.frontend];
            if p.attempts > fe.config.retries {
                self.stats.no_backend += 1;
                self.reset_pair(engine, now, id);
                return;
            }
            // Without redispatch a retry goes back to the same backend while it can take it (HAProxy's default).
            let same = p.attempts > 0
                && !fe.config.redispatch
                && fe.pool.backends().get(p.backend).is_some_and(|b| b.admin == Admin::Ready && b.health.is_up());
            let choice = if same { Some(p.backend) } else { fe.pool.pick(*p.client_addr.ip(), &p.tried) };
            let choice = choice.or_else(|| {
                // Every eligible backend was tried: start over rather than give up while attempts remain.
                p.tried.clear();
                fe.pool.pick(*p.client_addr.ip(), &[])
            });
            let Some(b) = choice else {
                self.stats.no_backend += 1;
                self.reset_pair(engine, now, id);
                return;
            };
            if p.attempts > 0 {
                self.stats.retries += 1;
                if b != p.backend {
                    self.stats.redispatches += 1;
                }
            }
            p.attempts += 1;
            p.backend = b;
            if !p.tried.contains(&b) {
                p.tried.push(b);
            }
            let target = fe.pool.backends()[b].addr;
            match engine.connect(now, SocketAddrV4::new(*p.local.ip(), 0), target) {
                Ok(c) => {
                    fe.pool.opened(b);
                    p.server = Some(c);
                    p.connect_deadline = now + fe.config.timeouts.connect;
                    if fe.config.proxy_protocol {
                        let header = ProxyV2Repr::Tcp4 { source: p.client_addr, destination: p.local }.to_bytes();
                        // Queued before the handshake completes: the header always precedes the client's bytes.
                        let _ = engine.send(now, c, &header);
                    }
                    self.roles.insert(c, Role::Server(id));
                    return;
                }
                Err(_) => {
                    // No port or no room in the table: a local failure, counted against this attempt.
                    fe.pool.connect_failed(b);
                }
            }
        }
    }

    /// The backend connect of pair `id` failed: count it, release the handle, try again or give up.
    fn connect_failed(&mut self, engine: &mut Engine, now: Instant, id: usize) {
        let Some(p) = self.pairs[id].as_mut() else { return };
        if let Some(c) = p.server.take() {
            self.roles.remove(&c);
            let _ = engine.abort(now, c);
        }
        let pool = &mut self.frontends[p.frontend].pool;
        pool.closed(p.backend);
        if pool.connect_failed(p.backend) == HealthChange::WentDown {
            tracing::warn!(backend = %pool.backends()[p.backend].addr, "backend marked down after failed connects");
        }
        if p.client_over {
            // The client left meanwhile.
            self.release_pair(engine, now, id);
            return;
        }
        self.connect(engine, now, id);
    }

    /// Aborts both sides and forgets the pair.
    fn reset_pair(&mut self, engine: &mut Engine, now: Instant, id: usize) {
        let Some(p) = self.pairs[id].as_mut() else { return };
        if !p.client_over {
            p.client_over = true;
        }
        self.roles.remove(&p.client);
        let _ = engine.abort(now, p.client);
        if let Some(c) = p.server.take() {
            self.roles.remove(&c);
            let _ = engine.abort(now, c);
            self.frontends[p.frontend].pool.closed(p.backend);
        }
        self.forget(engine, now, id);
    }

    /// Releases whatever handles are left (orderly) and forgets the pair.
    fn release_pair(&mut self, engine: &mut Engine, now: Instant, id: usize) {
        let Some(p) = self.pairs[id].as_mut() else { return };
        if self.roles.remove(&p.client).is_some() {
            let _ = engine.close(now, p.client);
        }
        if let Some(c) = p.server.take() {
            if self.roles.remove(&c).is_some() {
                let _ = engine.close(now, c);
            }
            self.frontends[p.frontend].pool.closed(p.backend);
        }
        self.forget(engine, now, id);
    }

    fn forget(&mut self, engine: &mut Engine, now: Instant, id: usize) {
        let Some(p) = self.pairs[id].take() else { return };
        self.free.push(id);
        let f = p.frontend;
        self.frontends[f].pairs = self.frontends[f].pairs.saturating_sub(1);
        // Room may have appeared for clients waiting in the backlog.
        self.accept_from(engine, now, f);
    }

    /// Moves what can move in both directions; propagates FINs; releases the pair when both sides are done.
    fn pump(&mut self, engine: &mut Engine, now: Instant, id: usize) {
        let Some(p) = self.pairs[id].as_ref() else { return };
        if !p.connected {
            return;
        }
        let Some(server) = p.server else { return };
        let (client, frontend, backend) = (p.client, p.frontend, p.backend);
        let up = self.relay(engine, now, client, server, true, id);
        let down = up.and_then(|_| self.relay(engine, now, server, client, false, id));
        let Some(p) = self.pairs[id].as_mut() else { return };
        let (moved_up, moved_down) = match (up, down) {
            (Ok(u), Ok(d)) => (u, d),
            _ => {
                self.stats.resets += 1;
                self.reset_pair(engine, now, id);
                return;
            }
        };
        if moved_up + moved_down > 0 {
            p.last_activity = now;
            let stats = &mut self.frontends[frontend].pool.backend_mut(backend).stats;
            stats.bytes_to += moved_up as u64;
            stats.bytes_from += moved_down as u64;
            self.stats.bytes_client_to_server += moved_up as u64;
            self.stats.bytes_server_to_client += moved_down as u64;
        }
        // A side is released once the engine declared it over and its bytes were relayed.
        if p.client_over && p.c2s_done && self.roles.remove(&p.client).is_some() {
            let _ = engine.close(now, p.client);
        }
        if p.server_over && p.s2c_done && self.roles.remove(&server).is_some() {
            let _ = engine.close(now, server);
        }
        if !self.roles.contains_key(&p.client) && !self.roles.contains_key(&server) {
            p.server = None;
            self.frontends[frontend].pool.closed(backend);
            self.forget(engine, now, id);
        }
    }

    /// Moves bytes from `from` to `to` as far as `to`'s send buffer takes them; at `from`'s end of stream, shuts
    /// `to`'s write side. Returns the bytes moved, or an error when either side is broken.
    fn relay(
        &mut self,
        engine: &mut Engine,
        now: Instant,
        from: ConnId,
        to: ConnId,
        upstream: bool,
        id: usize,
    ) -> Result<usize, Error> {
        let mut moved = 0;
        // Bounded: each pass moves bytes into a bounded send buffer or returns.
        loop {
            let p = self.pairs[id].as_mut().expect("pair exists while relaying");
            let done = if upstream { &mut p.c2s_done } else { &mut p.s2c_done };
            if *done {
                return Ok(moved);
            }
            let room = engine.send_capacity(to).min(self.scratch.len());
            if room == 0 && engine.recv_queue_len(from) > 0 {
                // A short send arms the engine's Writable event for `to`; we resume then.
                return match engine.send(now, to, &self.scratch[..1]) {
                    Ok(_) | Err(Error::WouldBlock) => Ok(moved),
                    Err(e) => Err(e),
                };
            }
            // With no room the queue is empty here, and the empty read only reports end of stream or an error.
            let n = match engine.recv(from, &mut self.scratch[..room]) {
                Ok(0) => {
                    // RFC 9293 §3.6: the peer's FIN after its data; pass it on, the other direction stays open.
                    *done = true;
                    return match engine.shutdown_write(now, to) {
                        Ok(()) | Err(Error::NotConnected) => Ok(moved),
                        Err(e) => Err(e),
                    };
                }
                Ok(n) => n,
                Err(Error::WouldBlock) => return Ok(moved),
                Err(e) => return Err(e),
            };
            match engine.send(now, to, &self.scratch[..n]) {
                Ok(sent) if sent == n => moved += n,
                Ok(_) => unreachable!("send takes what send_capacity offered"),
                Err(e) => return Err(e),
            }
        }
    }

    fn on_closed(&mut self, engine: &mut Engine, now: Instant, c: ConnId, reason: CloseReason) {
        match self.roles.get(&c).copied() {
            Some(Role::Check { frontend, backend }) => {
                self.roles.remove(&c);
                self.checks.remove(&c);
                let _ = engine.close(now, c);
                self.check_result(frontend, backend, false);
            }
            Some(Role::Client(id)) => {
                let Some(p) = self.pairs[id].as_mut() else { return };
                p.client_over = true;
                if !p.connected {
                    // The client left before its backend answered: abort that connect (RFC 9293 §3.10.7.4 ABORT).
                    self.stats.client_aborts_connecting += 1;
                    self.reset_pair(engine, now, id);
                } else if reason != CloseReason::Normal {
                    self.stats.resets += 1;
                    self.reset_pair(engine, now, id);
                } else {
                    self.pump(engine, now, id);
                }
            }
            Some(Role::Server(id)) => {
                let Some(p) = self.pairs[id].as_mut() else { return };
                if !p.connected {
                    self.connect_failed(engine, now, id);
                } else if reason != CloseReason::Normal {
                    p.server_over = true;
                    self.stats.resets += 1;
                    self.reset_pair(engine, now, id);
                } else {
                    p.server_over = true;
                    self.pump(engine, now, id);
                }
            }
            None => {
                let _ = engine.close(now, c);
            }
        }
    }

    fn check_result(&mut self, f: usize, b: usize, passed: bool) {
        self.checking[f][b] = false;
        let fe = &mut self.frontends[f];
        let cfg = fe.pool.check.clone();
        let backend = fe.pool.backend_mut(b);
        let change = if passed {
            self.stats.checks_passed += 1;
            backend.health.check_passed(&cfg)
        } else {
            self.stats.checks_failed += 1;
            backend.health.check_failed(&cfg)
        };
        match change {
            HealthChange::WentUp => tracing::info!(backend = %backend.addr, "backend up"),
            HealthChange::WentDown => tracing::warn!(backend = %backend.addr, "backend down"),
            HealthChange::None => {}
        }
    }

    /// Starts due health checks; expires connects, checks and idle pairs.
    fn sweep(&mut self, engine: &mut Engine, now: Instant) {
        // Checks.
        for f in 0..self.frontends.len() {
            let fe = &mut self.frontends[f];
            if !fe.pool.check.enabled || self.draining {
                continue;
            }
            let inter = fe.pool.check.inter;
            let timeout = inter.min(fe.config.timeouts.connect);
            self.checking[f].resize(fe.pool.backends().len(), false);
            for b in 0..fe.pool.backends().len() {
                let backend = fe.pool.backend_mut(b);
                if backend.admin == Admin::Removed || self.checking[f][b] || backend.health.next_check > now {
                    continue;
                }
                backend.health.next_check = now + inter;
                if let Ok(c) = engine.connect(now, SocketAddrV4::new(self.local_ip, 0), backend.addr) {
                    self.checking[f][b] = true;
                    self.roles.insert(c, Role::Check { frontend: f, backend: b });
                    self.checks.insert(c, Check { deadline: now + timeout });
                }
            }
        }
        let expired: Vec<ConnId> = self.checks.iter().filter(|(_, k)| k.deadline <= now).map(|(c, _)| *c).collect();
        for c in expired {
            if let Some(Role::Check { frontend, backend }) = self.roles.remove(&c) {
                self.checks.remove(&c);
                let _ = engine.abort(now, c);
                self.check_result(frontend, backend, false);
            }
        }
        // Pairs.
        for id in 0..self.pairs.len() {
            let Some(p) = self.pairs[id].as_ref() else { continue };
            let t = &self.frontends[p.frontend].config.timeouts;
            if !p.connected {
                if p.server.is_some() && now >= p.connect_deadline {
                    self.stats.connect_timeouts += 1;
                    self.connect_failed(engine, now, id);
                }
                continue;
            }
            // HAProxy's timeout client/server: the pair ends when neither side has moved a byte for that long.
            let idle = now.saturating_since(p.last_activity);
            if idle >= t.client.max(t.server) {
                self.stats.idle_timeouts += 1;
                self.reset_pair(engine, now, id);
            }
        }
        // Clients left in a backlog because a limit was reached.
        for f in 0..self.frontends.len() {
            self.accept_from(engine, now, f);
        }
    }

    /// The next instant the relay has timed work (for the simulator; the worker ticks every few milliseconds).
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |t: Instant| t.min(x)));
        for (f, fe) in self.frontends.iter().enumerate() {
            if fe.pool.check.enabled && !self.draining {
                for (b, backend) in fe.pool.backends().iter().enumerate() {
                    if backend.admin != Admin::Removed && !self.checking[f].get(b).copied().unwrap_or(false) {
                        at(backend.health.next_check);
                    }
                }
            }
        }
        for k in self.checks.values() {
            at(k.deadline);
        }
        for p in self.pairs.iter().flatten() {
            let t = &self.frontends[p.frontend].config.timeouts;
            if p.connected {
                at(p.last_activity + t.client.max(t.server));
            } else if p.server.is_some() {
                at(p.connect_deadline);
            }
        }
        t.map(|t| t.max(self.next_sweep))
    }
}

impl App for Relay {
    fn on_event(&mut self, engine: &mut Engine, now: Instant, event: Event) {
        match event {
            Event::Incoming(l) => {
                if let Some(f) = self.frontend_of(engine, l) {
                    self.accept_from(engine, now, f);
                }
            }
            Event::Connected(c) => match self.roles.get(&c).copied() {
                Some(Role::Check { frontend, backend }) => {
                    self.roles.remove(&c);
                    self.checks.remove(&c);
                    // RST rather than FIN: a check leaves no TIME_WAIT behind on either side.
                    let _ = engine.abort(now, c);
                    self.check_result(frontend, backend, true);
                }
                Some(Role::Server(id)) => {
                    let Some(p) = self.pairs[id].as_mut() else { return };
                    p.connected = true;
                    p.last_activity = now;
                    self.stats.paired += 1;
                    self.frontends[p.frontend].pool.connect_passed(p.backend);
                    self.pump(engine, now, id);
                }
                _ => {}
            },
            Event::Readable(c) | Event::Writable(c) => {
                if let Some(Role::Client(id) | Role::Server(id)) = self.roles.get(&c).copied() {
                    self.pump(engine, now, id);
                }
            }
            Event::Closed(c, reason) => self.on_closed(engine, now, c, reason),
        }
    }

    fn on_tick(&mut self, engine: &mut Engine, now: Instant) {
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            self.sweep(engine, now);
        }
    }

    /// Drain: accept nothing more and stop checking; open pairs finish on their own (the worker waits for them up
    /// to its drain timeout).
    fn shutdown(&mut self, engine: &mut Engine, now: Instant) {
        self.draining = true;
        for (c, role) in self.roles.clone() {
            if let Role::Check { .. } = role {
                self.roles.remove(&c);
                self.checks.remove(&c);
                let _ = engine.abort(now, c);
            }
        }
    }

    fn connections(&self) -> usize {
        self.roles.len()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_deadline()
    }
}
