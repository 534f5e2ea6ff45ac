//! The proxy's relay App in the deterministic simulator: client engines, the proxy engine and backend engines on one
//! simulated network. Every byte is checked with SHA-256 digests of what each side sent and received.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xdptcp::app::echo::Echo;
use xdptcp::app::App;
use xdptcp::proxy::{Balance, ProxyConfig, Relay};
use xdptcp::sim::{CloseMode, LinkConfig, Network, Role, StreamApp};
use xdptcp::tcp::{CloseReason, Config, ConnId, Engine, Event};
use xdptcp::time::Instant;
use xdptcp::wire::{ProxyV2Packet, ProxyV2Repr};

const PROXY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PORT: u16 = 8080;

fn client_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, i as u8 + 1)
}

fn backend_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 2, i as u8 + 1)
}

fn backend(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(backend_ip(i), 80)
}

/// The relay behind a lock, so the test can read its pools and counters while the network owns it.
#[derive(Clone)]
struct Shared(Arc<Mutex<Relay>>);

impl App for Shared {
    fn on_event(&mut self, engine: &mut Engine, now: Instant, event: Event) {
        self.0.lock().unwrap().on_event(engine, now, event)
    }
    fn shutdown(&mut self, engine: &mut Engine, now: Instant) {
        self.0.lock().unwrap().shutdown(engine, now)
    }
    fn connections(&self) -> usize {
        self.0.lock().unwrap().connections()
    }
    fn on_tick(&mut self, engine: &mut Engine, now: Instant) {
        self.0.lock().unwrap().on_tick(engine, now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.0.lock().unwrap().poll_timeout()
    }
}

struct Lab {
    net: Network,
    proxy: usize,
    relay: Shared,
    clients: Vec<usize>,
    backends: Vec<usize>,
}

impl Lab {
    fn client(&self, i: usize) -> &StreamApp {
        &self.net.hosts[self.clients[i]].app
    }
    fn backend_app(&self, i: usize) -> &StreamApp {
        &self.net.hosts[self.backends[i]].app
    }
    fn relay(&self) -> std::sync::MutexGuard<'_, Relay> {
        self.relay.0.lock().unwrap()
    }
    fn proxy_engine(&self) -> &Engine {
        &self.net.hosts[self.proxy].engine
    }
}

/// What a backend host runs.
enum Backend {
    /// One connection, its own stream of `n` bytes, closing as the mode says.
    Stream(u64, CloseMode),
    /// Echo for any number of connections.
    Echo,
    /// A host that answers SYNs with RST (no listener).
    Refusing,
    /// No host at all: SYNs vanish (connect timeout).
    Missing,
    /// Records what each connection received.
    Probe(Arc<Mutex<Vec<Vec<u8>>>>),
}

/// A client sending `n` bytes, closing as the mode says.
struct Client(u64, CloseMode);

fn build(
    frontend: impl FnOnce(&mut xdptcp::proxy::FrontendConfig),
    clients: &[Client],
    backends: Vec<Backend>,
    client_link: LinkConfig,
    backend_link: LinkConfig,
    seed: u64,
) -> Lab {
    let addrs: Vec<SocketAddrV4> = (0..backends.len()).map(backend).collect();
    let mut cfg = ProxyConfig::from_flags(&[PORT], &addrs, Balance::RoundRobin).unwrap();
    // Checks are off unless a test turns them on: a one-connection StreamApp backend would take a check for its
    // connection.
    cfg.frontends[0].check.enabled = false;
    frontend(&mut cfg.frontends[0]);
    let mut net = Network::new(Instant::from_secs(1));
    let relay = Shared(Arc::new(Mutex::new(Relay::new(&cfg, PROXY, net.now))));
    let r = relay.clone();
    let proxy = net.add_app_host("proxy", PROXY, Config::default(), seed, move |engine, _| {
        r.0.lock().unwrap().listen_all(engine, PROXY, 4096).unwrap();
        Box::new(r)
    });
    let mut backend_hosts = Vec::new();
    for (i, b) in backends.into_iter().enumerate() {
        let ip = backend_ip(i);
        let seed = seed + 100 + i as u64;
        let h = match b {
            Backend::Stream(n, mode) => {
                let app = StreamApp::new(Role::Server { listen: backend(i) }, n, mode, seed * 7);
                net.add_host(&format!("b{i}"), ip, Config::default(), seed, app)
            }
            Backend::Echo => net.add_app_host(&format!("b{i}"), ip, Config::default(), seed, move |e, _| {
                e.listen(backend(i), 1024).unwrap();
                Box::new(Echo::new(None))
            }),
            Backend::Refusing => {
                net.add_app_host(&format!("b{i}"), ip, Config::default(), seed, |_, _| Box::new(Echo::new(None)))
            }
            Backend::Probe(seen) => net.add_app_host(&format!("b{i}"), ip, Config::default(), seed, move |e, _| {
                e.listen(backend(i), 1024).unwrap();
                Box::new(Probe { seen, conns: Vec::new() })
            }),
            Backend::Missing => {
                backend_hosts.push(usize::MAX);
                continue;
            }
        };
        net.connect(proxy, h, backend_link.clone(), backend_link.clone(), seed);
        backend_hosts.push(h);
    }
    let mut client_hosts = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let role =
            Role::Client { local: SocketAddrV4::new(client_ip(i), 40000), remote: SocketAddrV4::new(PROXY, PORT) };
        let app = StreamApp::new(role, c.0, c.1, seed * 13 + i as u64);
        let h = net.add_host(&format!("c{i}"), client_ip(i), Config::default(), seed + 1000 + i as u64, app);
        net.connect(h, proxy, client_link.clone(), client_link.clone(), seed + i as u64);
        client_hosts.push(h);
    }
    Lab { net, proxy, relay, clients: client_hosts, backends: backend_hosts }
}

/// A backend app that keeps every byte each connection received and closes at the peer's end of stream.
struct Probe {
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    conns: Vec<(ConnId, usize)>,
}

impl App for Probe {
    fn on_event(&mut self, engine: &mut Engine, now: Instant, event: Event) {
        match event {
            Event::Incoming(l) => {
                while let Ok(c) = engine.accept(l) {
                    let mut seen = self.seen.lock().unwrap();
                    seen.push(Vec::new());
                    self.conns.push((c, seen.len() - 1));
                }
            }
            Event::Readable(c) | Event::Closed(c, _) => {
                let Some(&(_, slot)) = self.conns.iter().find(|(x, _)| *x == c) else { return };
                let mut buf = [0u8; 4096];
                loop {
                    match engine.recv(c, &mut buf) {
                        Ok(0) | Err(_) => {
                            let _ = engine.close(now, c);
                            self.conns.retain(|(x, _)| *x != c);
                            return;
                        }
                        Ok(n) => self.seen.lock().unwrap()[slot].extend_from_slice(&buf[..n]),
                    }
                }
            }
            _ => {}
        }
    }
    fn shutdown(&mut self, _: &mut Engine, _: Instant) {}
    fn connections(&self) -> usize {
        self.conns.len()
    }
}

fn clean() -> LinkConfig {
    LinkConfig::default()
}

fn lossy() -> LinkConfig {
    LinkConfig {
        loss: 0.02,
        reorder: 0.02,
        duplicate: 0.01,
        corrupt: 0.005,
        jitter: Duration::from_millis(2),
        ..LinkConfig::default()
    }
}

/// Resets client `i`'s connection now (the StreamApp's own Abort mode fires in the same instant as its handshake,
/// before the proxy has even accepted).
fn abort_client(lab: &mut Lab, i: usize) {
    let (h, now) = (lab.clients[i], lab.net.now);
    let host = &mut lab.net.hosts[h];
    let c = host.app.conn.expect("client connection");
    host.engine.abort(now, c).unwrap();
    lab.net.settle();
}

/// A client is done when the engine closed its connection, or when it read the end of stream after sending
/// everything (it then closes, and releasing the handle first means no `Closed` event reaches it).
fn done(c: &StreamApp) -> bool {
    c.closed.is_some() || (c.peer_eof && c.sent == c.send_total && c.close_mode != CloseMode::Keep)
}

/// Ended in an orderly way, with no error on its side.
fn clean_end(c: &StreamApp) -> bool {
    c.errors.is_empty() && (c.closed == Some(CloseReason::Normal) || (c.closed.is_none() && c.peer_eof))
}

fn all_clients_closed(net: &Network, clients: &[usize]) -> bool {
    clients.iter().all(|&c| done(&net.hosts[c].app))
}

/// After the run: no pair, no connection left in the proxy but TIME_WAIT.
fn assert_released(lab: &Lab) {
    assert_eq!(lab.relay().pair_count(), 0, "pairs released");
    assert_eq!(lab.proxy_engine().connection_count().0, 0, "no live connection left in the proxy");
}

#[test]
fn one_pair_relays_every_byte_both_ways_with_half_close() {
    // The client sends 64 KB and half-closes at once; the backend keeps sending 2 MB after that, then closes after
    // the client's FIN reached it: both half-closes crossed the proxy, in both directions, after the data.
    let mut lab = build(
        |_| {},
        &[Client(64 * 1024, CloseMode::Shutdown)],
        vec![Backend::Stream(2 << 20, CloseMode::Shutdown)],
        clean(),
        clean(),
        1,
    );
    lab.net.start();
    let clients = lab.clients.clone();
    lab.net.run_until(Duration::from_secs(60), |n| all_clients_closed(n, &clients)).unwrap();
    lab.net.run_for(Duration::from_secs(1));
    let (c, b) = (lab.client(0), lab.backend_app(0));
    assert!(clean_end(c) && clean_end(b));
    assert_eq!((c.sent, b.received), (64 * 1024, 64 * 1024));
    assert_eq!((b.sent, c.received), (2 << 20, 2 << 20));
    assert_eq!(c.sent_digest(), b.received_digest());
    assert_eq!(b.sent_digest(), c.received_digest());
    assert!(c.errors.is_empty() && b.errors.is_empty(), "{:?} {:?}", c.errors, b.errors);
    let r = lab.relay();
    assert_eq!(r.stats.bytes_client_to_server, 64 * 1024);
    assert_eq!(r.stats.bytes_server_to_client, 2 << 20);
    let s = r.pool(0).backends()[0].stats;
    assert_eq!((s.total, s.bytes_to, s.bytes_from), (1, 64 * 1024, 2 << 20));
    drop(r);
    assert_released(&lab);
}

#[test]
fn many_pairs_over_impaired_links_every_byte_checked() {
    // 12 clients, 3 echo backends, loss, reordering, duplication and corruption on both sides of the proxy.
    for seed in [3, 4] {
        let clients: Vec<Client> = (0..12).map(|i| Client(100_000 + i * 7919, CloseMode::Shutdown)).collect();
        let mut lab =
            build(|_| {}, &clients, vec![Backend::Echo, Backend::Echo, Backend::Echo], lossy(), lossy(), seed);
        lab.net.start();
        let hosts = lab.clients.clone();
        lab.net.run_until(Duration::from_secs(300), |n| all_clients_closed(n, &hosts)).unwrap();
        lab.net.run_for(Duration::from_secs(2));
        for i in 0..clients.len() {
            let c = lab.client(i);
            assert!(clean_end(c), "seed {seed} client {i}");
            assert_eq!(c.received, c.sent, "seed {seed} client {i}");
            assert_eq!(c.received_digest(), c.sent_digest(), "seed {seed} client {i}");
        }
        let r = lab.relay();
        let per_backend: Vec<u64> = r.pool(0).backends().iter().map(|b| b.stats.total).collect();
        assert_eq!(per_backend, vec![4, 4, 4], "round robin");
        drop(r);
        assert_released(&lab);
    }
}

#[test]
fn a_slow_reader_closes_the_other_window_and_memory_stays_bounded() {
    // The client does not read; the backend offers 8 MB. The proxy must hold at most about one receive buffer plus
    // one send buffer of it, and the backend must be stopped by a closed window.
    let mut lab = build(
        |_| {},
        &[Client(0, CloseMode::AfterPeer)],
        vec![Backend::Stream(8 << 20, CloseMode::Close)],
        clean(),
        clean(),
        5,
    );
    let c = lab.clients[0];
    lab.net.hosts[c].app.read_paused = true;
    lab.net.start();
    lab.net.run_for(Duration::from_secs(20));
    let cfg = Config::default();
    let bound = (cfg.tcp_rmem[2] + cfg.tcp_wmem[2]) as usize * 2;
    let held = lab.proxy_engine().buffer_bytes_in_use();
    assert!(held <= bound, "proxy holds {held} B, bound {bound}");
    let sent = lab.backend_app(0).sent;
    assert!(sent < 8 << 20, "backend was not held back: sent {sent}");
    // Reading again lets everything through, intact.
    lab.net.hosts[c].app.read_paused = false;
    let hosts = lab.clients.clone();
    lab.net.run_until(Duration::from_secs(120), |n| all_clients_closed(n, &hosts)).unwrap();
    assert_eq!(lab.client(0).received, 8 << 20);
    assert_eq!(lab.client(0).received_digest(), lab.backend_app(0).sent_digest());
}

#[test]
fn resets_propagate_both_ways() {
    // Backend resets after its data: the client's connection is reset.
    let mut lab = build(
        |_| {},
        &[Client(0, CloseMode::Keep)],
        vec![Backend::Stream(10_000, CloseMode::Abort)],
        clean(),
        clean(),
        6,
    );
    lab.net.start();
    let hosts = lab.clients.clone();
    lab.net.run_until(Duration::from_secs(10), |n| all_clients_closed(n, &hosts)).unwrap();
    assert_eq!(lab.client(0).closed, Some(CloseReason::Reset));
    assert!(lab.relay().stats.resets >= 1);
    lab.net.run_for(Duration::from_secs(1));
    assert_released(&lab);
    // Client resets: the backend's connection is reset.
    let mut lab = build(
        |_| {},
        &[Client(10_000, CloseMode::Keep)],
        vec![Backend::Stream(0, CloseMode::Keep)],
        clean(),
        clean(),
        7,
    );
    lab.net.start();
    lab.net.run_for(Duration::from_millis(100));
    assert_eq!(lab.backend_app(0).received, 10_000);
    abort_client(&mut lab, 0);
    let b = lab.backends[0];
    lab.net.run_until(Duration::from_secs(10), |n| n.hosts[b].app.closed.is_some()).unwrap();
    assert_eq!(lab.backend_app(0).closed, Some(CloseReason::Reset));
    lab.net.run_for(Duration::from_secs(1));
    assert_released(&lab);
}

#[test]
fn failed_connects_retry_other_backends_while_the_early_bytes_wait() {
    // Round robin starts with the missing backend (times out), then the refusing one (RST), then the good one;
    // the client's bytes, sent at once, wait in its receive buffer meanwhile and arrive whole.
    let mut lab = build(
        |f| f.timeouts.connect = Duration::from_millis(300),
        &[Client(50_000, CloseMode::Shutdown)],
        vec![Backend::Missing, Backend::Refusing, Backend::Stream(30_000, CloseMode::Shutdown)],
        clean(),
        clean(),
        8,
    );
    lab.net.start();
    let hosts = lab.clients.clone();
    lab.net.run_until(Duration::from_secs(30), |n| all_clients_closed(n, &hosts)).unwrap();
    let (c, b) = (lab.client(0), lab.backend_app(2));
    assert!(clean_end(c));
    assert_eq!(c.sent_digest(), b.received_digest());
    assert_eq!(b.sent_digest(), c.received_digest());
    let r = lab.relay();
    assert_eq!((r.stats.retries, r.stats.redispatches, r.stats.connect_timeouts), (2, 2, 1));
    let fails: Vec<u64> = r.pool(0).backends().iter().map(|b| b.stats.connect_failures).collect();
    assert_eq!(fails, vec![1, 1, 0]);
}

#[test]
fn when_every_attempt_fails_the_client_gets_a_reset() {
    let mut lab = build(
        |f| {
            f.timeouts.connect = Duration::from_millis(200);
            f.retries = 2;
            f.check.enabled = false;
        },
        &[Client(1000, CloseMode::Keep)],
        vec![Backend::Refusing, Backend::Missing],
        clean(),
        clean(),
        9,
    );
    lab.net.start();
    let hosts = lab.clients.clone();
    lab.net.run_until(Duration::from_secs(10), |n| all_clients_closed(n, &hosts)).unwrap();
    assert_eq!(lab.client(0).closed, Some(CloseReason::Reset));
    let r = lab.relay();
    assert_eq!(r.stats.retries, 2, "retries = 2: three attempts");
    assert_eq!(r.stats.no_backend, 1);
    drop(r);
    lab.net.run_for(Duration::from_secs(1));
    assert_released(&lab);
}

#[test]
fn a_client_leaving_mid_connect_aborts_the_backend_connect() {
    let mut lab = build(
        |f| f.timeouts.connect = Duration::from_secs(30),
        &[Client(0, CloseMode::Keep)],
        vec![Backend::Missing],
        clean(),
        clean(),
        10,
    );
    lab.net.start();
    lab.net.run_for(Duration::from_millis(200));
    assert_eq!(lab.relay().pair_count(), 1);
    assert_eq!(lab.proxy_engine().connection_count().0, 2, "client connection and backend SYN_SENT");
    abort_client(&mut lab, 0);
    lab.net.run_for(Duration::from_millis(100));
    assert_eq!(lab.relay().stats.client_aborts_connecting, 1);
    assert_released(&lab);
}

#[test]
fn health_checks_take_a_dead_backend_out_and_bring_it_back() {
    // Backend 1 refuses: `fall` failed checks take it down, after which no client is sent there. When it listens
    // again, `rise` good checks bring it back.
    let clients: Vec<Client> = (0..6).map(|_| Client(10_000, CloseMode::Shutdown)).collect();
    let mut lab = build(
        |f| {
            f.check.enabled = true;
            f.check.inter = Duration::from_millis(100);
            f.check.rise = 2;
            f.check.fall = 3;
        },
        &clients[..0],
        vec![Backend::Echo, Backend::Refusing],
        clean(),
        clean(),
        11,
    );
    lab.net.start();
    // Checks at 0, 100 and 200 ms; each answered after one 10 ms round trip.
    lab.net.run_for(Duration::from_millis(150));
    assert!(lab.relay().pool(0).backends()[1].health.is_up(), "2 failed checks are not enough");
    lab.net.run_for(Duration::from_millis(100));
    assert!(lab.relay().pool(0).backends()[0].health.is_up());
    assert!(!lab.relay().pool(0).backends()[1].health.is_up(), "down after 3 failed checks");
    assert_eq!(lab.relay().stats.checks_failed, 3);
    // It comes back.
    let b1 = lab.backends[1];
    lab.net.hosts[b1].engine.listen(backend(1), 64).unwrap();
    lab.net.run_for(Duration::from_millis(150));
    assert!(!lab.relay().pool(0).backends()[1].health.is_up(), "one good check is not enough");
    lab.net.run_for(Duration::from_millis(100));
    assert!(lab.relay().pool(0).backends()[1].health.is_up(), "up after 2 good checks");
}

#[test]
fn passive_marking_after_consecutive_connect_failures() {
    // Checks off: only client traffic sees that backend 0 refuses. After error_limit failures it is marked down
    // and later clients go straight to backend 1; no client connection fails.
    let clients: Vec<Client> = (0..8).map(|i| Client(5_000 + i, CloseMode::Shutdown)).collect();
    let mut lab = build(
        |f| {
            f.check.enabled = false;
            f.check.error_limit = 2;
        },
        &clients,
        vec![Backend::Refusing, Backend::Echo],
        clean(),
        clean(),
        12,
    );
    lab.net.start();
    let hosts = lab.clients.clone();
    lab.net.run_until(Duration::from_secs(30), |n| all_clients_closed(n, &hosts)).unwrap();
    for i in 0..clients.len() {
        assert!(clean_end(lab.client(i)), "client {i}");
        assert_eq!(lab.client(i).received_digest(), lab.client(i).sent_digest());
    }
    let r = lab.relay();
    assert!(!r.pool(0).backends()[0].health.is_up());
    assert!(r.pool(0).backends()[0].stats.connect_failures >= 2);
    assert_eq!(r.pool(0).backends()[1].stats.total, 8);
}

#[test]
fn proxy_protocol_v2_tells_the_backend_who_the_client_is() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut lab = build(
        |f| f.proxy_protocol = true,
        &[Client(3000, CloseMode::Shutdown)],
        vec![Backend::Probe(seen.clone())],
        clean(),
        clean(),
        13,
    );
    lab.net.start();
    lab.net.run_for(Duration::from_secs(2));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let p = ProxyV2Packet::new_checked(&seen[0][..]).unwrap();
    assert_eq!(
        ProxyV2Repr::parse(&p).unwrap(),
        ProxyV2Repr::Tcp4 {
            source: SocketAddrV4::new(client_ip(0), 40000),
            destination: SocketAddrV4::new(PROXY, PORT)
        }
    );
    assert_eq!(seen[0].len() - p.total_len(), 3000, "then the client's bytes");
}

#[test]
fn frontend_maxconn_keeps_clients_in_the_backlog() {
    // Two pairs at a time; the others wait in the listen backlog, then go through when a pair ends.
    let clients: Vec<Client> = (0..5).map(|_| Client(200_000, CloseMode::Shutdown)).collect();
    let mut lab = build(|f| f.maxconn = 2, &clients, vec![Backend::Echo], clean(), clean(), 14);
    lab.net.start();
    let hosts = lab.clients.clone();
    let relay = lab.relay.clone();
    let mut most = 0;
    lab.net
        .run_until(Duration::from_secs(60), |n| {
            most = most.max(relay.0.lock().unwrap().pair_count());
            all_clients_closed(n, &hosts)
        })
        .unwrap();
    assert_eq!(most, 2);
    for i in 0..clients.len() {
        assert_eq!(lab.client(i).received_digest(), lab.client(i).sent_digest(), "client {i}");
    }
    assert!(lab.relay().stats.limit_waits > 0);
}

#[test]
fn idle_pairs_time_out() {
    let mut lab = build(
        |f| {
            f.timeouts.client = Duration::from_secs(2);
            f.timeouts.server = Duration::from_secs(2);
        },
        &[Client(100, CloseMode::Keep)],
        vec![Backend::Stream(100, CloseMode::Keep)],
        clean(),
        clean(),
        15,
    );
    lab.net.start();
    lab.net.run_for(Duration::from_millis(1500));
    assert_eq!(lab.relay().pair_count(), 1);
    assert!(lab.client(0).closed.is_none());
    lab.net.run_for(Duration::from_secs(1));
    assert_eq!(lab.relay().stats.idle_timeouts, 1);
    assert_eq!(lab.client(0).closed, Some(CloseReason::Reset));
    assert_eq!(lab.backend_app(0).closed, Some(CloseReason::Reset));
}

#[test]
fn drain_lets_open_pairs_finish() {
    let mut lab = build(
        |f| f.check.enabled = true,
        &[Client(300_000, CloseMode::Shutdown)],
        vec![Backend::Stream(300_000, CloseMode::Shutdown)],
        clean(),
        clean(),
        16,
    );
    lab.net.start();
    lab.net.run_for(Duration::from_millis(30));
    assert_eq!(lab.relay().pair_count(), 1);
    let (p, now) = (lab.proxy, lab.net.now);
    {
        let h = &mut lab.net.hosts[p];
        h.runner.as_mut().unwrap().shutdown(&mut h.engine, now);
    }
    let hosts = lab.clients.clone();
    lab.net.run_until(Duration::from_secs(30), |n| all_clients_closed(n, &hosts)).unwrap();
    assert!(clean_end(lab.client(0)));
    assert_eq!(lab.client(0).received_digest(), lab.backend_app(0).sent_digest());
    let checks = lab.relay().stats.checks_passed;
    lab.net.run_for(Duration::from_secs(10));
    assert_eq!(lab.relay().stats.checks_passed, checks, "no checks while draining");
}
