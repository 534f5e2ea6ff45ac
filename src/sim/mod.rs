//! A deterministic network simulator: engines joined by seeded, impaired links under a virtual clock.
//!
//! The same `tcp::Engine` the AF_XDP worker drives runs here against another engine, with loss, reordering,
//! duplication, bit corruption, delay, jitter and bandwidth per direction. Every random choice comes from a
//! per-direction xoshiro stream derived from the seed, and events are ordered by (time, insertion number), so the
//! same seed replays bit for bit. Idle time is skipped: a 60 s TIME_WAIT costs microseconds.
//!
//! `script` runs packetdrill-style conformance scripts: one engine against a scripted peer (`tests/scripts/`).
//!
//! Owns: the virtual clock, links, scenario applications, traces, conformance scripts. Must not touch: real sockets or threads.

pub mod app;
pub mod link;
pub mod scenario;
pub mod script;
pub mod trace;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::time::Duration;

pub use app::{CloseMode, Role, StreamApp};
pub use link::{Fate, Link, LinkConfig};
pub use scenario::{run_scenario, Report, Scenario, ScenarioConfig, SimError};
pub use trace::{Trace, TraceEntry};

use crate::tcp::{Config, Engine, PacketSink};
use crate::time::Instant;

/// A host: one engine, its address, and the application driving it.
pub struct Host {
    pub name: String,
    pub addr: Ipv4Addr,
    pub engine: Engine,
    pub app: StreamApp,
    /// When set, this [`crate::app::App`] (echo, the proxy's relay, ...) drives the engine instead of `app`.
    pub runner: Option<Box<dyn crate::app::App>>,
}

/// A packet on its way to host `to`.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    seq: u64,
    from: usize,
    to: usize,
    packet: Vec<u8>,
}

/// Output side of a host: collects the engine's packets.
#[derive(Default)]
struct Outbox {
    scratch: Vec<u8>,
    packets: Vec<Vec<u8>>,
}

impl PacketSink for Outbox {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        self.scratch.resize(65536, 0);
        Some(&mut self.scratch)
    }
    fn commit(&mut self, len: usize) {
        self.packets.push(self.scratch[..len].to_vec());
    }
}

/// Two or more hosts joined pairwise by links (one `Link` per direction).
pub struct Network {
    pub now: Instant,
    pub hosts: Vec<Host>,
    links: Vec<Vec<Option<Link>>>,
    queue: BinaryHeap<Reverse<InFlight>>,
    next_seq: u64,
    pub trace: Option<Trace>,
    outbox: Outbox,
    /// Packets injected by a scenario (forged segments) bypass the links.
    pub injected: u64,
    /// Every state change of every host, in order.
    pub transitions: Vec<(usize, crate::tcp::Transition)>,
}

impl Network {
    pub fn new(start: Instant) -> Network {
        Network {
            now: start,
            hosts: Vec::new(),
            links: Vec::new(),
            queue: BinaryHeap::new(),
            next_seq: 0,
            trace: None,
            outbox: Outbox::default(),
            injected: 0,
            transitions: Vec::new(),
        }
    }

    /// Adds a host and returns its index. `seed` keys its engine (ISNs, timestamps offsets).
    pub fn add_host(&mut self, name: &str, addr: Ipv4Addr, config: Config, seed: u64, app: StreamApp) -> usize {
        let mut engine = Engine::new(config, self.now, seed);
        engine.record_transitions(true);
        self.hosts.push(Host { name: name.to_string(), addr, engine, app, runner: None });
        for row in &mut self.links {
            row.push(None);
        }
        self.links.push((0..self.hosts.len()).map(|_| None).collect());
        self.hosts.len() - 1
    }

    /// Adds a host driven by an [`crate::app::App`]; `make` builds it with the host's engine (to listen) and the
    /// current time. Returns the host's index.
    pub fn add_app_host(
        &mut self,
        name: &str,
        addr: Ipv4Addr,
        config: Config,
        seed: u64,
        make: impl FnOnce(&mut Engine, Instant) -> Box<dyn crate::app::App>,
    ) -> usize {
        let idle = StreamApp::new(Role::Server { listen: std::net::SocketAddrV4::new(addr, 0) }, 0, CloseMode::Keep, 0);
        let i = self.add_host(name, addr, config, seed, idle);
        let now = self.now;
        let h = &mut self.hosts[i];
        h.runner = Some(make(&mut h.engine, now));
        i
    }

    /// Joins `a` and `b` with one link per direction; each direction gets its own random stream.
    pub fn connect(&mut self, a: usize, b: usize, a_to_b: LinkConfig, b_to_a: LinkConfig, seed: u64) {
        self.links[a][b] = Some(Link::new(a_to_b, link::stream_seed(seed, a, b)));
        self.links[b][a] = Some(Link::new(b_to_a, link::stream_seed(seed, b, a)));
    }

    fn host_by_addr(&self, addr: Ipv4Addr) -> Option<usize> {
        self.hosts.iter().position(|h| h.addr == addr)
    }

    /// Delivers a packet to a host now, bypassing links (a forged segment from an off-path attacker).
    pub fn inject(&mut self, to: usize, packet: &[u8]) {
        self.injected += 1;
        if let Some(t) = self.trace.as_mut() {
            t.packet(self.now, usize::MAX, to, packet, Fate::Injected);
            if to == 0 {
                t.host0_wire.push((self.now, false, packet.to_vec()));
            }
        }
        self.hosts[to].engine.handle_ipv4(self.now, packet);
        self.settle();
    }

    /// Starts every host's application.
    pub fn start(&mut self) {
        let now = self.now;
        for h in self.hosts.iter_mut().filter(|h| h.runner.is_none()) {
            h.app.start(&mut h.engine, now);
        }
        self.settle();
    }

    /// Lets applications react to events and engines transmit, until nothing changes at the current instant.
    pub fn settle(&mut self) {
        for _ in 0..1_000_000 {
            let mut progressed = false;
            for i in 0..self.hosts.len() {
                let now = self.now;
                let h = &mut self.hosts[i];
                if let Some(r) = h.runner.as_mut() {
                    while let Some(ev) = h.engine.poll_event() {
                        r.on_event(&mut h.engine, now, ev);
                        progressed = true;
                    }
                    r.on_tick(&mut h.engine, now);
                } else {
                    while let Some(ev) = h.engine.poll_event() {
                        h.app.on_event(&mut h.engine, now, ev);
                        progressed = true;
                    }
                    h.app.pump(&mut h.engine, now);
                }
                while let Some(tr) = h.engine.poll_transition() {
                    if let Some(t) = self.trace.as_mut() {
                        t.transition(i, tr);
                    }
                    self.transitions.push((i, tr));
                }
                if h.engine.wants_transmit() {
                    self.outbox.packets.clear();
                    h.engine.poll_transmit(now, &mut self.outbox);
                    let packets = std::mem::take(&mut self.outbox.packets);
                    for p in packets {
                        self.send(i, p);
                        progressed = true;
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Puts a packet from host `from` on the link towards its destination address.
    fn send(&mut self, from: usize, packet: Vec<u8>) {
        let dst =
            if packet.len() >= 20 { Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]) } else { return };
        let Some(to) = self.host_by_addr(dst) else { return };
        let Some(link) = self.links[from][to].as_mut() else { return };
        let now = self.now;
        if let (0, Some(t)) = (from, self.trace.as_mut()) {
            t.host0_wire.push((now, true, packet.clone()));
        }
        let outcomes = link.transmit(now, packet);
        for (fate, at, p) in outcomes {
            if let Some(t) = self.trace.as_mut() {
                t.packet(now, from, to, &p, fate);
            }
            if let Some(at) = at {
                self.next_seq += 1;
                self.queue.push(Reverse(InFlight { at, seq: self.next_seq, from, to, packet: p }));
            }
        }
    }

    /// The next instant anything happens: a delivery or an engine timer.
    pub fn next_event(&self) -> Option<Instant> {
        let delivery = self.queue.peek().map(|r| r.0.at);
        let timers = self.hosts.iter().filter_map(|h| h.engine.poll_timeout()).min();
        let apps = self.hosts.iter().filter_map(|h| h.runner.as_ref()?.poll_timeout()).min();
        [delivery, timers, apps].into_iter().flatten().min()
    }

    /// Advances to the next event and processes everything due then. Returns false when nothing is pending.
    pub fn step(&mut self) -> bool {
        let Some(at) = self.next_event() else { return false };
        self.now = self.now.max(at);
        let now = self.now;
        while self.queue.peek().is_some_and(|r| r.0.at <= now) {
            let Reverse(f) = self.queue.pop().expect("peeked");
            if let (0, Some(t)) = (f.to, self.trace.as_mut()) {
                t.host0_wire.push((now, false, f.packet.clone()));
            }
            self.hosts[f.to].engine.handle_ipv4(now, &f.packet);
        }
        for h in &mut self.hosts {
            h.engine.handle_timeout(now);
        }
        self.settle();
        true
    }

    /// Runs until `done` holds, nothing is pending, or virtual time passes `limit`.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Network) -> bool) -> Result<(), SimError> {
        let deadline = self.now + limit;
        loop {
            if done(self) {
                return Ok(());
            }
            match self.next_event() {
                Some(t) if t <= deadline => {
                    self.step();
                }
                Some(_) => return Err(SimError::TimeLimit(limit)),
                None => return if done(self) { Ok(()) } else { Err(SimError::Stalled(self.now)) },
            }
        }
    }

    /// Sets the loss probability of every link (e.g. 1.0: the path dies).
    pub fn set_loss(&mut self, loss: f64) {
        for link in self.links.iter_mut().flatten().flatten() {
            link.config.loss = loss;
        }
    }

    /// Runs for exactly `d` of virtual time (or until nothing is pending).
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.next_event().is_some_and(|t| t <= end) {
            self.step();
        }
        self.now = self.now.max(end);
    }
}
