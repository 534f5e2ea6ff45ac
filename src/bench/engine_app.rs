//! The generator on the xdptcp engine: [`EngineTransport`] maps the generator's transport calls onto the engine's
//! socket-like API, and [`BenchApp`] is the client [`App`] an AF_XDP worker runs (events in, `on_tick` for pacing
//! and opening connections).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::gen::{Generator, NetError, Transport};
use super::stats::{Progress, WorkerStats};
use super::{Clock, Workload};
use crate::app::App;
use crate::tcp::{CloseReason, Config, ConnId, Engine, Error, Event};
use crate::time::Instant;

/// The engine configuration of the benchmark client: Linux defaults except what a load generator needs. Active
/// opens may take a TIME_WAIT four-tuple after 1 s (`tcp_tw_reuse` = 1, timestamps make it safe: RFC 7323 PAWS)
/// and use the whole unprivileged port range, so a cps run is not limited to 28k connections per minute; the send
/// buffer is what Linux autotunes to for bulk senders.
pub fn client_config() -> Config {
    Config {
        tcp_tw_reuse: 1,
        ip_local_port_range: [1024, 65535],
        tcp_wmem: [4096, 4 << 20, 4 << 20],
        ..Config::default()
    }
}

/// The generator's view of one engine, for the duration of one callback.
pub struct EngineTransport<'a> {
    pub engine: &'a mut Engine,
    pub now: Instant,
    /// Our addresses (sources of active opens, taken in turn).
    pub local: &'a [Ipv4Addr],
    /// Which of `local` the next connect starts with.
    pub next_local: &'a mut usize,
}

fn net_error(e: Error) -> NetError {
    match e {
        Error::WouldBlock => NetError::WouldBlock,
        Error::Reset => NetError::Reset,
        Error::Refused => NetError::Refused,
        Error::TimedOut => NetError::TimedOut,
        Error::NoPorts | Error::AddrInUse => NetError::NoPorts,
        Error::NotConnected | Error::WriteClosed | Error::InvalidHandle | Error::Aborted => NetError::Closed,
        Error::TableFull | Error::InvalidArgument => NetError::Other,
    }
}

impl Transport for EngineTransport<'_> {
    type Handle = ConnId;

    fn connect(&mut self, target: SocketAddrV4) -> Result<ConnId, NetError> {
        // Round robin over the source addresses, so each holds an equal share of the four-tuples; one whose ports
        // are all taken passes the connect on to the next.
        let mut result = Err(Error::InvalidArgument);
        for _ in 0..self.local.len() {
            let ip = self.local[*self.next_local % self.local.len()];
            *self.next_local = (*self.next_local + 1) % self.local.len();
            result = self.engine.connect(self.now, SocketAddrV4::new(ip, 0), target);
            if !matches!(result, Err(Error::NoPorts)) {
                break;
            }
        }
        let id = result.map_err(net_error)?;
        // Request/response latency must not wait for Nagle (wrk sets TCP_NODELAY too).
        let _ = self.engine.set_nodelay(id, true);
        Ok(id)
    }
    fn send(&mut self, h: ConnId, data: &[u8]) -> Result<usize, NetError> {
        self.engine.send(self.now, h, data).map_err(net_error)
    }
    fn recv(&mut self, h: ConnId, buf: &mut [u8]) -> Result<usize, NetError> {
        self.engine.recv(h, buf).map_err(net_error)
    }
    fn close(&mut self, h: ConnId) {
        let _ = self.engine.close(self.now, h);
    }
    fn abort(&mut self, h: ConnId) {
        let _ = self.engine.abort(self.now, h);
    }
}

/// Why the engine ended a connection, as the generator counts it.
fn close_cause(reason: CloseReason) -> Option<NetError> {
    match reason {
        CloseReason::Normal => None,
        CloseReason::Reset => Some(NetError::Reset),
        CloseReason::Refused => Some(NetError::Refused),
        CloseReason::TimedOut => Some(NetError::TimedOut),
        CloseReason::Aborted => Some(NetError::Other),
    }
}

/// Where a worker's app leaves its results when it shuts down.
pub type Outbox = Arc<Mutex<Option<WorkerStats>>>;

/// The load generator as an xdptcp application.
pub struct BenchApp {
    gen: Generator<ConnId>,
    local: Vec<Ipv4Addr>,
    next_local: usize,
    clock: Clock,
    progress: Arc<Progress>,
    outbox: Outbox,
    /// The run starts at the first tick after this is set (so the control thread can sample memory first).
    go: Arc<AtomicBool>,
}

impl BenchApp {
    pub fn new(
        w: Workload,
        local: Vec<Ipv4Addr>,
        clock: Clock,
        progress: Arc<Progress>,
        outbox: Outbox,
        go: Arc<AtomicBool>,
    ) -> BenchApp {
        BenchApp { gen: Generator::new(w, progress.clone()), local, next_local: 0, clock, progress, outbox, go }
    }

    /// When the generator next needs a tick (open-loop pacing), on the generator's clock (ns).
    pub fn next_deadline_ns(&self) -> Option<u64> {
        self.gen.next_deadline()
    }
}

impl App for BenchApp {
    fn on_event(&mut self, engine: &mut Engine, now: Instant, event: Event) {
        let t_ns = self.clock.now_ns();
        let mut t = EngineTransport { engine, now, local: &self.local, next_local: &mut self.next_local };
        match event {
            Event::Connected(c) => self.gen.on_connected(t_ns, &mut t, c),
            Event::Readable(c) => self.gen.on_readable(t_ns, &mut t, c),
            Event::Writable(c) => self.gen.on_writable(t_ns, &mut t, c),
            Event::Closed(c, reason) => self.gen.on_closed(t_ns, &mut t, c, close_cause(reason)),
            Event::Incoming(_) => {}
        }
    }

    fn on_tick(&mut self, engine: &mut Engine, now: Instant) {
        if self.gen.is_finished() || !self.go.load(Ordering::Relaxed) {
            return;
        }
        let t_ns = self.clock.now_ns();
        let mut t = EngineTransport { engine, now, local: &self.local, next_local: &mut self.next_local };
        self.gen.start(t_ns, &mut t);
        self.gen.tick(t_ns, &mut t);
        let p = &self.progress;
        p.engine_buffer_bytes.store(engine.buffer_bytes_in_use() as u64, Ordering::Relaxed);
        let (live, tw) = engine.connection_count();
        p.engine_connections.store(live as u64, Ordering::Relaxed);
        p.engine_time_wait.store(tw as u64, Ordering::Relaxed);
    }

    fn shutdown(&mut self, engine: &mut Engine, now: Instant) {
        let t_ns = self.clock.now_ns();
        let mut t = EngineTransport { engine, now, local: &self.local, next_local: &mut self.next_local };
        self.gen.finish(t_ns, &mut t);
        let (_, tw) = engine.connection_count();
        self.progress.engine_time_wait.store(tw as u64, Ordering::Relaxed);
        if let Ok(mut slot) = self.outbox.lock() {
            *slot = Some(self.gen.take_stats());
        }
    }

    fn connections(&self) -> usize {
        self.gen.open_connections()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AppSpec;
    use crate::bench::Mode;
    use crate::tcp::PacketSink;
    use std::time::Duration;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 3);
    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    #[derive(Default)]
    struct VecSink {
        buf: Vec<u8>,
        out: Vec<Vec<u8>>,
    }

    impl PacketSink for VecSink {
        fn buffer(&mut self) -> Option<&mut [u8]> {
            self.buf.resize(1500, 0);
            Some(&mut self.buf)
        }
        fn commit(&mut self, len: usize) {
            self.out.push(self.buf[..len].to_vec());
        }
    }

    /// A client engine running the generator wired back to back with a server engine running `server_app`, on
    /// a lossless in-memory link; virtual time advances `step` per round.
    fn run_pair(w: Workload, server_app: AppSpec, rounds: usize) -> (WorkerStats, Arc<Progress>) {
        let start = Instant::from_secs(1);
        let mut client = Engine::new(client_config(), start, 1);
        let mut server = Engine::new(Config::default(), start, 2);
        // The apps listen on 7 and 80; port 9 stays closed.
        for port in [7, 80] {
            server.listen(SocketAddrV4::new(SERVER, port), 128).unwrap();
        }
        let mut sapp = server_app.build();
        let progress = Arc::new(Progress::default());
        let outbox: Outbox = Arc::new(Mutex::new(None));
        let go = Arc::new(AtomicBool::new(true));
        let mut capp = BenchApp::new(w, vec![CLIENT], Clock::new(), progress.clone(), outbox.clone(), go);
        let mut now = start;
        let step = Duration::from_micros(50);
        for _ in 0..rounds {
            now += step;
            capp.on_tick(&mut client, now);
            for (engine, app) in [(&mut client, &mut capp as &mut dyn App), (&mut server, sapp.as_mut())] {
                engine.handle_timeout(now);
                while let Some(ev) = engine.poll_event() {
                    app.on_event(engine, now, ev);
                }
            }
            let mut to_server = VecSink::default();
            client.poll_transmit(now, &mut to_server);
            for p in to_server.out {
                server.handle_ipv4(now, &p);
            }
            let mut to_client = VecSink::default();
            server.poll_transmit(now, &mut to_client);
            for p in to_client.out {
                client.handle_ipv4(now, &p);
            }
        }
        capp.shutdown(&mut client, now);
        let stats = outbox.lock().unwrap().take().expect("stats left in the outbox");
        (stats, progress)
    }

    fn workload(mode: Mode, port: u16) -> Workload {
        let mut w = Workload::new(mode, SocketAddrV4::new(SERVER, port));
        w.connections = 4;
        w
    }

    #[test]
    fn rps_against_the_echo_app_over_the_engine() {
        let mut w = workload(Mode::Rps, 7);
        w.request_size = 3000; // more than one segment each way
        w.response_size = 3000;
        let (s, p) = run_pair(w, AppSpec::Echo { abort_after: None }, 400);
        assert!(s.requests > 50, "{} requests", s.requests);
        assert_eq!(s.errors.total(), 0, "{:?}", s.errors);
        assert_eq!(s.connections_opened, 4);
        assert_eq!(s.latency.len(), s.requests);
        assert!(p.snapshot().requests > 0);
    }

    #[test]
    fn http_rps_and_cps_against_the_http_app() {
        let mut w = workload(Mode::Rps, 80);
        w.http = true;
        let (s, _) = run_pair(w, AppSpec::Http, 300);
        assert!(s.requests > 50, "{} requests", s.requests);
        assert_eq!(s.errors.total(), 0, "{:?}", s.errors);

        let mut w = workload(Mode::Cps, 80);
        w.http = true;
        let (s, _) = run_pair(w, AppSpec::Http, 300);
        assert!(s.requests > 10, "{} connections", s.requests);
        assert_eq!(s.errors.total(), 0, "{:?}", s.errors);
        // Connection: close: the server's FIN comes first.
        assert_eq!(s.server_closed_first, s.requests);
    }

    #[test]
    fn cps_echo_closes_client_first_and_a_closed_port_is_refused() {
        let (s, _) = run_pair(workload(Mode::Cps, 7), AppSpec::Echo { abort_after: None }, 300);
        assert!(s.requests > 10);
        assert_eq!(s.client_closed_first, s.requests);
        assert_eq!(s.errors.total(), 0, "{:?}", s.errors);

        // The generator retries a refused connect after 10 ms of its own (real) clock, one at a time.
        let (s, _) = run_pair(workload(Mode::Rps, 9), AppSpec::Echo { abort_after: None }, 100);
        assert_eq!(s.requests, 0);
        assert!(s.errors.connect_refused >= 1, "{:?}", s.errors);
        assert_eq!(s.errors.total(), s.errors.connect_refused, "{:?}", s.errors);
    }

    #[test]
    fn connects_take_the_source_addresses_in_turn() {
        let mut engine = Engine::new(client_config(), Instant::from_secs(1), 1);
        let local = [CLIENT, Ipv4Addr::new(198, 18, 1, 4), Ipv4Addr::new(198, 18, 1, 5)];
        let mut next = 0;
        let mut t =
            EngineTransport { engine: &mut engine, now: Instant::from_secs(1), local: &local, next_local: &mut next };
        let target = SocketAddrV4::new(SERVER, 7);
        let ids: Vec<ConnId> = (0..6).map(|_| t.connect(target).unwrap()).collect();
        let sources: Vec<Ipv4Addr> = ids.iter().map(|&id| *engine.local_addr_of(id).unwrap().0.ip()).collect();
        assert_eq!(sources, [local, local].concat());
    }

    #[test]
    fn a_server_reset_is_counted() {
        let mut w = workload(Mode::Stream, 7);
        w.request_size = 16384;
        let (s, _) = run_pair(w, AppSpec::Echo { abort_after: Some(100_000) }, 300);
        assert!(s.errors.resets >= 4, "{:?}", s.errors);
    }
}
