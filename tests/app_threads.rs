//! The app-thread model without a NIC: one or two server engines, each driven by a `Bridge` as its worker would,
//! and a client engine, joined in memory by a driver loop on the test thread under the real clock; the app logic
//! runs on real threads through `Listener`/`Connection`/`Poller`. The driver sleeps like a worker (announce, then
//! poll the eventfd until the next engine timer), so a lost wake-up shows up as a stall.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use xdptcp::app::threaded::{apps, Bridge, Hub, HubConfig};
use xdptcp::app::{App, AppSpec};
use xdptcp::tcp::{CloseReason, Config, ConnId, Engine, Error, Event, PacketSink, State};
use xdptcp::time::Instant;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const PORT: u16 = 7;

fn server_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 1 + 2 * i as u8)
}

/// Byte `k` of connection `c`'s stream.
fn pattern(c: usize, k: u64) -> u8 {
    ((k.wrapping_mul(7) ^ (c as u64).wrapping_mul(131)) % 251) as u8
}

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

/// How a client connection behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Send everything, read the whole echo, close.
    Echo,
    /// Send everything, shut the write side, read the echo to end of stream, close.
    HalfClose,
    /// Send `total` bytes and read nothing back (the app only reads).
    SendOnly,
    /// Send `total` bytes then reset.
    AbortAfterSend,
}

struct ClientConn {
    idx: usize,
    id: ConnId,
    mode: Mode,
    total: u64,
    sent: u64,
    received: u64,
    shut: bool,
    eof: bool,
    closed: Option<CloseReason>,
    released: bool,
    bad: Option<String>,
}

struct Client {
    engine: Engine,
    conns: Vec<ClientConn>,
    by_id: HashMap<ConnId, usize>,
    rng: Xoshiro256PlusPlus,
    buf: Vec<u8>,
}

impl Client {
    fn pump(&mut self, now: Instant, i: usize) {
        let c = &mut self.conns[i];
        if c.released {
            return;
        }
        let e = &mut self.engine;
        // Send with random write sizes.
        for _ in 0..64 {
            if c.sent >= c.total || c.closed.is_some() {
                break;
            }
            let len = self.rng.gen_range(1..20_000).min((c.total - c.sent) as usize);
            let chunk: Vec<u8> = (0..len as u64).map(|k| pattern(c.idx, c.sent + k)).collect();
            match e.send(now, c.id, &chunk) {
                Ok(n) => c.sent += n as u64,
                Err(Error::WouldBlock) => break,
                Err(_) => break,
            }
        }
        if c.sent == c.total && !c.shut {
            match c.mode {
                Mode::HalfClose => {
                    c.shut = true;
                    let _ = e.shutdown_write(now, c.id);
                }
                // Reset once the server holds every byte (acknowledged), so the app reads them all first.
                Mode::AbortAfterSend
                    if e.info(c.id).is_some_and(|i| i.state == State::Established && i.send_q == 0) =>
                {
                    c.shut = true;
                    c.released = true;
                    let _ = e.abort(now, c.id);
                    return;
                }
                _ => {}
            }
        }
        // Read with random sizes, checking every byte.
        for _ in 0..64 {
            let want = self.rng.gen_range(1..self.buf.len());
            match e.recv(c.id, &mut self.buf[..want]) {
                Ok(0) => {
                    c.eof = true;
                    break;
                }
                Ok(n) => {
                    for (k, b) in self.buf[..n].iter().enumerate() {
                        if *b != pattern(c.idx, c.received + k as u64) && c.bad.is_none() {
                            c.bad = Some(format!("conn {} byte {} differs", c.idx, c.received + k as u64));
                        }
                    }
                    c.received += n as u64;
                }
                Err(_) => break,
            }
        }
        let done = match c.mode {
            Mode::Echo => c.received == c.total,
            Mode::HalfClose => c.received == c.total && c.eof,
            Mode::SendOnly => false, // the test decides
            Mode::AbortAfterSend => false,
        };
        if done && !c.released {
            c.released = true;
            let _ = e.close(now, c.id);
        }
    }
}

/// Server engines with their bridges, a client engine, and the wires between them.
struct Net {
    start: std::time::Instant,
    servers: Vec<(Engine, Bridge)>,
    client: Client,
    out: Outbox,
    hub: Arc<Hub>,
    /// The wire is cut: every packet is dropped.
    cut: bool,
}

fn config() -> Config {
    // Small buffers so back-pressure shows with little data; few, fast retransmissions so a dead path times out
    // within the test.
    Config {
        tcp_rmem: [4096, 65536, 65536],
        tcp_wmem: [4096, 65536, 65536],
        tcp_retries2: 3,
        tcp_rto_min_us: 20_000,
        tcp_rto_max_ms: 1000,
        ..Config::default()
    }
}

impl Net {
    fn new(servers: usize, hub_config: HubConfig) -> Net {
        let start = std::time::Instant::now();
        let (hub, bridges) = Hub::new(servers, hub_config).expect("hub");
        let servers = bridges
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let mut e = Engine::new(config(), Instant::ZERO, 100 + i as u64);
                e.listen(SocketAddrV4::new(server_addr(i), PORT), 1024).expect("listen");
                (e, b)
            })
            .collect();
        let client = Client {
            engine: Engine::new(config(), Instant::ZERO, 7),
            conns: Vec::new(),
            by_id: HashMap::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(42),
            buf: vec![0; 40_000],
        };
        Net { start, servers, client, out: Outbox::default(), hub, cut: false }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }

    /// Opens `n` client connections, spread over the servers.
    fn connect(&mut self, n: usize, total: u64, mode: Mode) {
        let now = self.now();
        for _ in 0..n {
            let idx = self.client.conns.len();
            let server = idx % self.servers.len();
            let local = SocketAddrV4::new(CLIENT, 20_000 + idx as u16);
            let id = self.client.engine.connect(now, local, SocketAddrV4::new(server_addr(server), PORT)).unwrap();
            self.client.by_id.insert(id, idx);
            self.client.conns.push(ClientConn {
                idx,
                id,
                mode,
                total,
                sent: 0,
                received: 0,
                shut: false,
                eof: false,
                closed: None,
                released: false,
                bad: None,
            });
        }
    }

    /// One pass: timers, events, bridge ticks, client work, packets both ways. Returns whether anything moved.
    fn step(&mut self) -> bool {
        let now = self.now();
        let mut work = false;
        for (e, b) in &mut self.servers {
            if e.poll_timeout().is_some_and(|t| t <= now) {
                e.handle_timeout(now);
            }
            while let Some(ev) = e.poll_event() {
                b.on_event(e, now, ev);
                work = true;
            }
            b.on_tick(e, now);
        }
        let c = &mut self.client;
        if c.engine.poll_timeout().is_some_and(|t| t <= now) {
            c.engine.handle_timeout(now);
        }
        while let Some(ev) = c.engine.poll_event() {
            work = true;
            match ev {
                Event::Closed(id, reason) => {
                    if let Some(&i) = c.by_id.get(&id) {
                        c.conns[i].closed = Some(reason);
                        c.pump(now, i);
                        if !c.conns[i].released {
                            c.conns[i].released = true;
                            let _ = c.engine.close(now, id);
                        }
                    }
                }
                Event::Readable(id) | Event::Writable(id) | Event::Connected(id) => {
                    if let Some(&i) = c.by_id.get(&id) {
                        c.pump(now, i);
                    }
                }
                Event::Incoming(_) => {}
            }
        }
        for i in 0..c.conns.len() {
            if !c.conns[i].released && (c.conns[i].sent < c.conns[i].total || c.conns[i].mode == Mode::AbortAfterSend) {
                c.pump(now, i);
            }
        }
        // Packets: client -> servers, servers -> client, until quiet (bounded).
        for _ in 0..64 {
            let mut moved = false;
            self.out.packets.clear();
            self.client.engine.poll_transmit(now, &mut self.out);
            if self.cut {
                self.out.packets.clear();
            }
            for p in std::mem::take(&mut self.out.packets) {
                let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
                if let Some(s) = (0..self.servers.len()).find(|&i| server_addr(i) == dst) {
                    self.servers[s].0.handle_ipv4(now, &p);
                    moved = true;
                }
            }
            for (e, _) in &mut self.servers {
                e.poll_transmit(now, &mut self.out);
            }
            if self.cut {
                self.out.packets.clear();
            }
            for p in std::mem::take(&mut self.out.packets) {
                self.client.engine.handle_ipv4(now, &p);
                moved = true;
            }
            if !moved {
                break;
            }
            work = true;
            // Deliver the events those packets raised before the next exchange.
            for (e, b) in &mut self.servers {
                while let Some(ev) = e.poll_event() {
                    b.on_event(e, now, ev);
                }
            }
        }
        work
    }

    /// Sleeps like a worker: announce idleness to the app threads, then poll the eventfds until the next timer
    /// (at most `cap`).
    fn sleep(&mut self, cap: Duration) {
        let now = self.now();
        let mut wake = now + cap;
        for t in self.servers.iter().filter_map(|(e, _)| e.poll_timeout()).chain(self.client.engine.poll_timeout()) {
            wake = wake.min(t);
        }
        let mut fds: Vec<libc::pollfd> = Vec::new();
        for (_, b) in &mut self.servers {
            if !b.prepare_sleep() {
                for (_, b) in &mut self.servers {
                    b.woke();
                }
                return;
            }
            let fd: RawFd = b.wake_fd().expect("bridges have an eventfd");
            fds.push(libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
        }
        let ms = wake.saturating_since(now).as_millis().min(cap.as_millis()) as i32;
        // SAFETY: valid pollfd array.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as u64, ms) };
        for (_, b) in &mut self.servers {
            b.woke();
        }
    }

    /// Drives until `done` or `limit`; sleeps when idle for a few passes.
    fn run(&mut self, limit: Duration, sleep_cap: Duration, mut done: impl FnMut(&Net) -> bool) {
        let deadline = std::time::Instant::now() + limit;
        let mut idle = 0;
        while !done(self) {
            assert!(std::time::Instant::now() < deadline, "timed out: {}", self.describe());
            if self.step() {
                idle = 0;
                continue;
            }
            idle += 1;
            if idle > 16 {
                self.sleep(sleep_cap);
            } else {
                std::thread::yield_now();
            }
        }
    }

    fn describe(&self) -> String {
        let c = &self.client.conns;
        let unfinished: Vec<String> = c
            .iter()
            .filter(|c| !c.released)
            .take(5)
            .map(|c| {
                let state = self.client.engine.info(c.id).map(|i| i.state);
                format!("#{} sent {}/{} recv {} eof {} {:?}", c.idx, c.sent, c.total, c.received, c.eof, state)
            })
            .collect();
        format!(
            "{} conns, {} unreleased, e.g. {unfinished:?}; stats {:?}",
            c.len(),
            c.iter().filter(|c| !c.released).count(),
            xdptcp::app::threaded::stats_snapshot(&self.hub)
        )
    }

    fn all_released(&self) -> bool {
        self.client.conns.iter().all(|c| c.released)
    }

    fn check_bytes(&self) {
        for c in &self.client.conns {
            assert!(c.bad.is_none(), "{:?}", c.bad);
        }
    }

    /// Runs until the servers have no connections left (closes reach them).
    fn settle(&mut self) {
        self.run(Duration::from_secs(20), Duration::from_millis(20), |n| {
            n.servers.iter().all(|(e, b)| b.connections() == 0 && e.connection_count().0 == 0)
        });
    }
}

fn spawn_apps(hub: &Arc<Hub>, threads: usize, spec: AppSpec) -> Vec<std::thread::JoinHandle<u64>> {
    (0..threads)
        .map(|_| {
            let (hub, spec) = (hub.clone(), spec.clone());
            std::thread::spawn(move || apps::serve(&hub, &spec))
        })
        .collect()
}

#[test]
fn echo_many_connections_random_sizes_two_workers_two_app_threads() {
    let mut net = Net::new(2, HubConfig { ring: 4096, ..Default::default() });
    let apps = spawn_apps(&net.hub, 2, AppSpec::Echo { abort_after: None });
    net.connect(100, 200_000, Mode::Echo);
    net.run(Duration::from_secs(60), Duration::from_millis(50), Net::all_released);
    net.check_bytes();
    for c in &net.client.conns {
        assert_eq!(c.received, c.total, "conn {}", c.idx);
    }
    net.settle();
    net.hub.close();
    let served: u64 = apps.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(served, 100);
    // Both workers fed the app threads.
    for (e, _) in &net.servers {
        assert_eq!(e.counters().get(xdptcp::tcp::Counter::PassiveOpens), 50);
    }
}

#[test]
fn half_close_returns_everything_then_eof() {
    let mut net = Net::new(1, HubConfig { ring: 2048, ..Default::default() });
    let apps = spawn_apps(&net.hub, 1, AppSpec::Echo { abort_after: None });
    net.connect(30, 100_000, Mode::HalfClose);
    net.run(Duration::from_secs(60), Duration::from_millis(50), Net::all_released);
    net.check_bytes();
    for c in &net.client.conns {
        assert!(c.eof && c.received == c.total, "conn {}: {} / {}", c.idx, c.received, c.total);
    }
    net.settle();
    net.hub.close();
    apps.into_iter().for_each(|h| {
        h.join().unwrap();
    });
}

/// Thread per connection with blocking calls: accept on one thread, hand each connection to a new thread (the
/// wake-ups must follow the connection), echo with blocking read/write_all, close at end of stream.
#[test]
fn blocking_thread_per_connection_echo() {
    let mut net = Net::new(1, HubConfig { ring: 1024, ..Default::default() });
    let hub = net.hub.clone();
    let acceptor = std::thread::spawn(move || {
        let mut listener = hub.listener();
        let mut handlers = Vec::new();
        while let Ok(mut c) = listener.accept() {
            handlers.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 3000];
                loop {
                    match c.read_timeout(&mut buf, Some(Duration::from_secs(30))) {
                        Ok(0) => break,
                        Ok(n) => c.write_all(&buf[..n]).expect("write"),
                        Err(e) => panic!("read: {e}"),
                    }
                }
                c.close();
            }));
        }
        for h in handlers {
            h.join().expect("handler");
        }
    });
    net.connect(20, 150_000, Mode::Echo);
    net.run(Duration::from_secs(60), Duration::from_millis(50), Net::all_released);
    net.check_bytes();
    net.settle();
    net.hub.close();
    acceptor.join().unwrap();
}

/// Ping-pong with blocking calls while the driver sleeps until its next timer (up to 1 s): each round trip needs
/// the app to wake the sleeping worker and the worker to unpark the parked app thread.
#[test]
fn wakeups_are_not_lost() {
    let mut net = Net::new(1, HubConfig::default());
    let hub = net.hub.clone();
    const ROUNDS: usize = 100;
    let app = std::thread::spawn(move || {
        let mut c = hub.listener().accept_timeout(Some(Duration::from_secs(10))).expect("accept");
        let mut buf = [0u8; 100];
        for _ in 0..ROUNDS {
            let mut got = 0;
            while got < 100 {
                let n = c.read_timeout(&mut buf[got..], Some(Duration::from_secs(10))).expect("read");
                assert!(n > 0, "early end of stream");
                got += n;
            }
            c.write_all(&buf).expect("write");
        }
        c.close();
    });
    net.connect(1, 0, Mode::Echo);
    net.run(Duration::from_secs(10), Duration::from_secs(1), |n| {
        n.client.engine.info(n.client.conns[0].id).is_some_and(|i| i.state == State::Established)
    });
    let id = net.client.conns[0].id;
    net.client.conns[0].released = true; // driven by hand below
    let mut rtts = Vec::new();
    for r in 0..ROUNDS {
        let t0 = std::time::Instant::now();
        let now = net.now();
        let msg: Vec<u8> = (0..100u64).map(|k| pattern(r, k)).collect();
        assert_eq!(net.client.engine.send(now, id, &msg), Ok(100));
        let mut echoed = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while echoed.len() < 100 {
            assert!(std::time::Instant::now() < deadline, "round {r} stalled: {}", net.describe());
            if !net.step() {
                net.sleep(Duration::from_secs(1));
            }
            let mut b = [0u8; 100];
            if let Ok(n) = net.client.engine.recv(id, &mut b) {
                echoed.extend_from_slice(&b[..n]);
            }
        }
        assert_eq!(echoed, msg);
        rtts.push(t0.elapsed());
    }
    app.join().unwrap();
    rtts.sort();
    let median = rtts[ROUNDS / 2];
    let (unparks, wakes, _, _) = xdptcp::app::threaded::stats_snapshot(&net.hub);
    // A lost wake-up would cost the delayed-ACK or RTO timer (40-200 ms) or the 1 s sleep cap.
    assert!(median < Duration::from_millis(20), "median round trip {median:?}");
    assert!(unparks > 0 && wakes > 0, "unparks {unparks} wakes {wakes}");
}

/// A slow app: nothing is read for a while, so the ring fills, the engine's receive buffer fills and the window
/// the client sees closes; then everything is read and checked.
#[test]
fn back_pressure_closes_the_window_and_loses_nothing() {
    let mut net = Net::new(1, HubConfig { ring: 8192, ..Default::default() });
    let hub = net.hub.clone();
    const TOTAL: u64 = 2_000_000;
    let go = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let (go2, read2) = (go.clone(), read.clone());
    let app = std::thread::spawn(move || {
        let mut c = hub.listener().accept_timeout(Some(Duration::from_secs(10))).expect("accept");
        while !go2.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut buf = vec![0u8; 1500];
        let mut got = 0u64;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        loop {
            let want = rng.gen_range(1..buf.len());
            match c.read_timeout(&mut buf[..want], Some(Duration::from_secs(20))) {
                Ok(0) => break,
                Ok(n) => {
                    for (k, b) in buf[..n].iter().enumerate() {
                        assert_eq!(*b, pattern(0, got + k as u64), "byte {}", got + k as u64);
                    }
                    got += n as u64;
                    read2.store(got, Ordering::Release);
                    // Slow reader: a pause now and then.
                    if rng.gen_ratio(1, 50) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                Err(e) => panic!("read: {e}"),
            }
        }
        c.close();
        got
    });
    net.connect(1, TOTAL, Mode::SendOnly);
    // Phase 1: the app does not read. The client must end up facing a zero window with data still unsent.
    net.run(Duration::from_secs(20), Duration::from_millis(20), |n| {
        let c = &n.client.conns[0];
        n.client.engine.info(c.id).is_some_and(|i| i.snd_wnd == 0 && i.state == State::Established)
    });
    let sent_at_stall = net.client.conns[0].sent;
    assert!(sent_at_stall < TOTAL, "the window closed before everything was sent");
    let (srv_engine, srv_bridge) = &net.servers[0];
    assert_eq!(srv_bridge.connections(), 1);
    let mut recv_q = 0;
    srv_engine.for_each_connection(&mut |_, i| recv_q = i.recv_q);
    assert!(recv_q > 0, "the engine keeps what the full ring cannot take");
    // Phase 2: the app reads; everything arrives.
    go.store(true, Ordering::Release);
    net.run(Duration::from_secs(60), Duration::from_millis(20), |n| n.client.conns[0].sent == TOTAL);
    let id = net.client.conns[0].id;
    let now = net.now();
    net.client.engine.close(now, id).unwrap();
    net.client.conns[0].released = true;
    net.run(Duration::from_secs(60), Duration::from_millis(20), |_| read.load(Ordering::Acquire) == TOTAL);
    assert_eq!(app.join().unwrap(), TOTAL);
    net.settle();
}

/// The peer resets: a blocked app read sees ConnectionReset after the bytes before the reset.
#[test]
fn peer_reset_is_seen_by_the_app() {
    // A ring much smaller than the stream, and an app that starts reading late: the reset arrives while most bytes
    // still wait in the engine.
    let mut net = Net::new(1, HubConfig { ring: 4096, ..Default::default() });
    let hub = net.hub.clone();
    let app = std::thread::spawn(move || {
        let mut c = hub.listener().accept_timeout(Some(Duration::from_secs(10))).expect("accept");
        std::thread::sleep(Duration::from_millis(300));
        let mut buf = vec![0u8; 4096];
        let mut got = 0u64;
        loop {
            match c.read_timeout(&mut buf, Some(Duration::from_secs(20))) {
                Ok(0) => return (got, None),
                Ok(n) => got += n as u64,
                Err(e) => return (got, Some(e.kind())),
            }
        }
    });
    net.connect(1, 50_000, Mode::AbortAfterSend);
    net.run(Duration::from_secs(20), Duration::from_millis(20), |_| app.is_finished());
    let (got, err) = app.join().unwrap();
    assert_eq!(err, Some(ErrorKind::ConnectionReset), "after {got} bytes");
    assert_eq!(got, 50_000, "every byte before the reset is delivered first");
    net.settle();
}

/// The app aborts (echo with abort_after): the client sees the reset; and writes after a reset fail.
#[test]
fn app_abort_resets_the_peer() {
    let mut net = Net::new(1, HubConfig::default());
    let apps = spawn_apps(&net.hub, 1, AppSpec::Echo { abort_after: Some(10_000) });
    net.connect(5, 100_000, Mode::Echo);
    net.run(Duration::from_secs(30), Duration::from_millis(20), |n| n.client.conns.iter().all(|c| c.closed.is_some()));
    for c in &net.client.conns {
        assert_eq!(c.closed, Some(CloseReason::Reset), "conn {}", c.idx);
    }
    net.settle();
    net.hub.close();
    apps.into_iter().for_each(|h| {
        h.join().unwrap();
    });
}

/// Rounds of short connections through one poller thread: headers and their buffers are recycled, not leaked.
#[test]
fn poller_and_recycling() {
    let mut net = Net::new(1, HubConfig { ring: 1024, pool: 16, ..Default::default() });
    let apps = spawn_apps(&net.hub, 1, AppSpec::Echo { abort_after: None });
    for round in 0..3 {
        net.connect(10, 5_000, Mode::Echo);
        net.run(Duration::from_secs(30), Duration::from_millis(20), Net::all_released);
        net.check_bytes();
        net.settle();
        let bytes = net.servers[0].1.ring_bytes();
        // Ten connections' headers went back to the pool with their buffers (2 x 1 KiB each), no more.
        assert!(bytes <= 16 * 2048, "round {round}: {bytes}");
    }
    net.hub.close();
    for h in apps {
        assert_eq!(h.join().unwrap(), 30);
    }
}

/// The path dies while the app has data in flight: the engine's retransmissions run out and the app's blocked read
/// sees TimedOut, and a write after it fails too.
#[test]
fn timeout_is_seen_by_the_app() {
    let mut net = Net::new(1, HubConfig::default());
    let hub = net.hub.clone();
    let cut = Arc::new(AtomicBool::new(false));
    let cut2 = cut.clone();
    let app = std::thread::spawn(move || {
        let mut c = hub.listener().accept_timeout(Some(Duration::from_secs(10))).expect("accept");
        while !cut2.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        c.write_all(&[1u8; 1000]).expect("write before the timeout");
        let mut buf = [0u8; 100];
        // Blocking without a timeout of its own, so TimedOut can only be the connection's (the driver bounds the test).
        let read = c.read(&mut buf).map_err(|e| e.kind());
        let write = c.try_write(b"more").map_err(|e| e.kind());
        (read, write)
    });
    net.connect(1, 0, Mode::SendOnly);
    net.run(Duration::from_secs(10), Duration::from_millis(20), |n| n.servers[0].1.connections() == 1);
    net.cut = true;
    cut.store(true, Ordering::Release);
    net.run(Duration::from_secs(20), Duration::from_millis(20), |_| app.is_finished());
    let (read, write) = app.join().unwrap();
    assert_eq!(read, Err(ErrorKind::TimedOut));
    assert_eq!(write, Err(ErrorKind::TimedOut));
}
