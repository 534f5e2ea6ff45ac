//! The load generator's logic, written once for both transports: which connections to open, what to send, how to
//! recognise a complete response, what each failure counts as, and when the latency clock starts.
//!
//! The driver (the AF_XDP worker or an epoll loop) owns the sockets and the clock. It calls [`Generator::start`],
//! then [`Generator::tick`] on every loop iteration and the `on_*` methods when the transport reports something,
//! and [`Generator::finish`] at the end. Times are nanoseconds on the driver's monotonic clock.
//!
//! Closed loop: each connection sends its next request as soon as the previous response is complete. Open loop
//! (`rate`): a pacer produces intended start times at a constant rate; each is served by an idle connection (rps)
//! or a new connection (cps) as soon as one is available, and the latency is measured from the intended time
//! (coordinated-omission correction), so queueing in front of a slow server shows up in the percentiles.

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::proto::{http_request, EchoPattern, HttpResponseParser};
use super::stats::{Progress, StreamConn, WorkerStats};
use super::{Mode, Workload};

/// Connects in flight at once per worker: a burst of thousands of SYNs would overflow the server's SYN and accept
/// queues and turn into 1 s SYN retransmissions that measure nothing but the burst.
pub const MAX_CONNECTING: usize = 512;
// Until the first connection is established only one connect is in flight: the first packets to a new next hop
// wait for ARP, and a stack queues only a few of them (Linux: unres_qlen), so a burst would be dropped and show up
// as 1 s SYN retransmissions.
/// Open loop: intended sends waiting for a free connection, at most. Beyond it they are counted and dropped.
pub const BACKLOG_LIMIT: usize = 1 << 20;
/// Pacer steps handled per tick (the rest waits for the next tick, keeping its intended time).
const PACER_BURST: usize = 4096;
/// How often timeouts are checked.
const SWEEP_EVERY_NS: u64 = 20_000_000;
/// After a failed connect, wait this long before opening again (a refusing server would otherwise be hammered).
const RETRY_DELAY_NS: u64 = 10_000_000;
/// Bytes per receive call.
const RECV_CHUNK: usize = 64 * 1024;

/// A transport error, as the generator classifies it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NetError {
    WouldBlock,
    /// RST in answer to our SYN.
    Refused,
    TimedOut,
    /// RST on an established connection.
    Reset,
    /// No local port left for an active open.
    NoPorts,
    /// The connection is no longer usable (already closed, write side shut).
    Closed,
    Other,
}

/// What the generator needs from a network stack. Handles are released by exactly one `close` or `abort`.
pub trait Transport {
    type Handle: Copy + Eq + Hash + Debug;
    /// Starts an active open (non-blocking; completion is reported through `Generator::on_connected`).
    fn connect(&mut self, target: SocketAddrV4) -> Result<Self::Handle, NetError>;
    /// Queues bytes; returns how many were taken (`WouldBlock` when none).
    fn send(&mut self, h: Self::Handle, data: &[u8]) -> Result<usize, NetError>;
    /// Reads bytes; `Ok(0)` is the peer's FIN.
    fn recv(&mut self, h: Self::Handle, buf: &mut [u8]) -> Result<usize, NetError>;
    /// Orderly close (FIN after queued data) and release of the handle.
    fn close(&mut self, h: Self::Handle);
    /// Abortive close (RST) and release of the handle.
    fn abort(&mut self, h: Self::Handle);
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    Connecting,
    Established,
}

#[derive(Debug)]
struct Conn {
    state: State,
    opened_at: u64,
    established_at: u64,
    /// Where this request's latency is measured from: the intended time (open loop), else the send time. For cps,
    /// the connect.
    start: u64,
    /// When the current request was actually handed to the transport (timeouts count from here).
    sent_at: u64,
    in_flight: bool,
    /// The server announced it will close after the response just received: wait for its FIN.
    awaiting_eof: bool,
    seq: u64,
    sent: usize,
    received: usize,
    parser: HttpResponseParser,
    bytes_sent: u64,
    bytes_received: u64,
}

/// Constant-rate schedule of intended start times (evenly spaced, from `start`).
#[derive(Clone, Debug)]
pub struct Pacer {
    start: u64,
    interval_ns: f64,
    next: u64,
}

impl Pacer {
    pub fn new(start: u64, per_second: f64) -> Pacer {
        Pacer { start, interval_ns: 1e9 / per_second.max(1e-9), next: 0 }
    }

    /// The next intended time if it is due by `now`.
    pub fn due(&mut self, now: u64) -> Option<u64> {
        let at = self.start + (self.next as f64 * self.interval_ns) as u64;
        if at <= now {
            self.next += 1;
            Some(at)
        } else {
            None
        }
    }

    /// When the next intended time is (for a driver that wants to sleep until then).
    pub fn next_at(&self) -> u64 {
        self.start + (self.next as f64 * self.interval_ns) as u64
    }
}

type Hasher = foldhash::fast::RandomState;

/// One worker's generator. See the module doc.
pub struct Generator<H> {
    w: Workload,
    conns: HashMap<H, Conn, Hasher>,
    /// Established rps connections with no request in flight (open loop only).
    idle: Vec<H>,
    /// Open loop: intended start times not yet served.
    backlog: VecDeque<u64>,
    pacer: Option<Pacer>,
    echo: EchoPattern,
    http_req: Vec<u8>,
    rbuf: Vec<u8>,
    stats: WorkerStats,
    progress: Arc<Progress>,
    connecting: usize,
    /// Connects allowed in flight: 1 until the first handshake completed, then [`MAX_CONNECTING`].
    connect_window: usize,
    established: usize,
    in_flight: usize,
    /// Requests (cps: connections) started.
    issued: u64,
    started: bool,
    finishing: bool,
    retry_at: u64,
    last_sweep: u64,
}

impl<H: Copy + Eq + Hash + Debug> Generator<H> {
    pub fn new(w: Workload, progress: Arc<Progress>) -> Generator<H> {
        let host = w.target.to_string();
        let close = w.mode == Mode::Cps;
        let pattern_size = if w.mode == Mode::Stream { w.request_size.max(1) } else { w.request_size };
        Generator {
            echo: EchoPattern::new(pattern_size),
            http_req: http_request(&host, close),
            rbuf: vec![0; RECV_CHUNK],
            conns: HashMap::with_hasher(Hasher::default()),
            idle: Vec::new(),
            backlog: VecDeque::new(),
            pacer: None,
            stats: WorkerStats::default(),
            progress,
            connecting: 0,
            connect_window: 1,
            established: 0,
            in_flight: 0,
            issued: 0,
            started: false,
            finishing: false,
            retry_at: 0,
            last_sweep: 0,
            w,
        }
    }

    pub fn workload(&self) -> &Workload {
        &self.w
    }

    /// Connections held now (connecting or established).
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    pub fn established(&self) -> usize {
        self.established
    }

    /// Whether `h` is a connection still waiting for its handshake.
    pub fn is_connecting(&self, h: H) -> bool {
        self.conns.get(&h).is_some_and(|c| c.state == State::Connecting)
    }

    /// The request limit is reached and nothing is in flight any more: the driver may stop.
    pub fn is_complete(&self) -> bool {
        let Some(limit) = self.w.requests else { return false };
        if !matches!(self.w.mode, Mode::Rps | Mode::Cps) || self.issued < limit {
            return false;
        }
        match self.w.mode {
            Mode::Cps => self.conns.is_empty(),
            _ => self.in_flight == 0,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finishing
    }

    /// When the pacer next wants to send (open loop), so a driver can sleep until then.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.finishing {
            return None;
        }
        self.pacer.as_ref().map(Pacer::next_at)
    }

    fn can_issue(&self) -> bool {
        !self.finishing && self.w.requests.is_none_or(|l| self.issued < l)
    }

    /// Begins the run: the measurement window opens and the first connections are started.
    pub fn start<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T) {
        if self.started {
            return;
        }
        self.started = true;
        self.stats.started_ns = now;
        self.last_sweep = now;
        if let (Some(rate), Mode::Rps | Mode::Cps) = (self.w.rate, self.w.mode) {
            self.pacer = Some(Pacer::new(now, rate));
        }
        self.maintain(now, t);
        self.publish();
    }

    /// Periodic work: pacing, timeouts, replacing lost connections, the progress counters.
    pub fn tick<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T) {
        if !self.started || self.finishing {
            return;
        }
        if let Some(p) = self.pacer.as_mut() {
            let limit = self.w.requests.unwrap_or(u64::MAX);
            for _ in 0..PACER_BURST {
                if self.issued + self.backlog.len() as u64 >= limit {
                    break;
                }
                let Some(at) = p.due(now) else { break };
                if self.backlog.len() >= BACKLOG_LIMIT {
                    self.stats.errors.schedule_overflow += 1;
                } else {
                    self.backlog.push_back(at);
                }
            }
            if self.w.mode == Mode::Rps {
                while !self.backlog.is_empty() {
                    let Some(h) = self.idle.pop() else { break };
                    let at = self.backlog.pop_front().expect("checked non-empty");
                    self.start_request(now, t, h, at);
                }
            }
        }
        // A sweep walks every connection: with a million held, once a second (1 µs per connection) is plenty for
        // timeouts of seconds, and keeps the walk off the hot path.
        let sweep_every = SWEEP_EVERY_NS.max(self.conns.len() as u64 * 1_000);
        if now.saturating_sub(self.last_sweep) >= sweep_every {
            self.last_sweep = now;
            self.sweep(now, t);
        }
        self.maintain(now, t);
        self.publish();
    }

    /// The handshake of `h` completed.
    pub fn on_connected<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T, h: H) {
        let Some(c) = self.conns.get_mut(&h) else { return };
        if c.state != State::Connecting {
            return;
        }
        c.state = State::Established;
        c.established_at = now;
        self.connecting -= 1;
        let first = self.connect_window < MAX_CONNECTING;
        self.connect_window = MAX_CONNECTING;
        self.established += 1;
        self.stats.connections_opened += 1;
        self.stats.connect.saturating_record(now.saturating_sub(c.opened_at).max(1));
        if self.finishing {
            return;
        }
        if first {
            // The path works: open the rest now rather than at the next tick.
            self.maintain(now, t);
        }
        match self.w.mode {
            Mode::Rps => {
                if self.pacer.is_some() {
                    match self.backlog.pop_front() {
                        Some(at) => self.start_request(now, t, h, at),
                        None => self.idle.push(h),
                    }
                } else if self.can_issue() {
                    self.start_request(now, t, h, now);
                }
            }
            Mode::Cps => {
                let start = self.conns.get(&h).map_or(now, |c| c.start);
                self.start_request(now, t, h, start);
            }
            Mode::Stream => self.pump_stream(now, t, h),
            Mode::Hold | Mode::Synflood | Mode::Ceiling => {}
        }
    }

    /// `h` may have data (or the peer's FIN, or an error) to read.
    pub fn on_readable<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T, h: H) {
        if !self.conns.get(&h).is_some_and(|c| c.state == State::Established) {
            return;
        }
        let mut buf = std::mem::take(&mut self.rbuf);
        // Ends when the transport has nothing more (its buffers are bounded) or the connection is gone.
        loop {
            match t.recv(h, &mut buf) {
                Ok(0) => {
                    self.on_eof(now, t, h);
                    break;
                }
                Ok(n) => {
                    self.stats.bytes_received += n as u64;
                    if !self.consume(now, t, h, &buf[..n]) {
                        break;
                    }
                }
                Err(NetError::WouldBlock) => break,
                Err(e) => {
                    self.fail(now, t, h, e, false);
                    break;
                }
            }
        }
        self.rbuf = buf;
    }

    /// `h` can take more bytes.
    pub fn on_writable<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T, h: H) {
        let Some(c) = self.conns.get(&h) else { return };
        if c.state != State::Established || self.finishing {
            return;
        }
        if self.w.mode == Mode::Stream {
            self.pump_stream(now, t, h);
        } else if c.in_flight {
            self.pump_send(now, t, h);
        }
    }

    /// The transport says `h` is over (`cause` None: an orderly end). The generator releases the handle.
    pub fn on_closed<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T, h: H, cause: Option<NetError>) {
        let Some(c) = self.remove(now, h) else { return };
        let e = &mut self.stats.errors;
        if c.state == State::Connecting {
            match cause {
                Some(NetError::Refused) | Some(NetError::Reset) => e.connect_refused += 1,
                Some(NetError::TimedOut) => e.connect_timeouts += 1,
                _ => e.connect_other += 1,
            }
            self.retry_at = now + RETRY_DELAY_NS;
        } else {
            match cause {
                Some(NetError::Reset) | Some(NetError::Refused) => e.resets += 1,
                Some(NetError::TimedOut) => e.timeouts += 1,
                None | Some(NetError::Closed) if c.in_flight => e.short_reads += 1,
                None | Some(NetError::Closed) => self.stats.server_closed_first += 1,
                Some(_) => e.other += 1,
            }
        }
        t.close(h);
        self.after_close(now, t);
    }

    /// Ends the run: no new requests, the window closes, every connection is closed (FIN).
    pub fn finish<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T) {
        if self.finishing {
            return;
        }
        self.finishing = true;
        if !self.started {
            self.stats.started_ns = now;
        }
        self.stats.ended_ns = now;
        self.stats.in_flight_at_end = self.in_flight as u64;
        let handles: Vec<H> = self.conns.keys().copied().collect();
        for h in handles {
            self.remove(now, h);
            t.close(h);
        }
        self.backlog.clear();
        self.publish();
    }

    /// Takes the results (call after `finish`).
    pub fn take_stats(&mut self) -> WorkerStats {
        std::mem::take(&mut self.stats)
    }

    // ----- internals -----

    fn publish(&self) {
        let p = &self.progress;
        p.requests.store(self.stats.requests, Ordering::Relaxed);
        p.bytes_sent.store(self.stats.bytes_sent, Ordering::Relaxed);
        p.bytes_received.store(self.stats.bytes_received, Ordering::Relaxed);
        p.errors.store(self.stats.errors.total(), Ordering::Relaxed);
        p.open.store(self.conns.len() as u64, Ordering::Relaxed);
        p.established.store(self.established as u64, Ordering::Relaxed);
        p.done.store(u64::from(self.is_complete() || self.finishing), Ordering::Relaxed);
    }

    /// Keeps the connection count up (and, for cps, starts connections for the work there is).
    fn maintain<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T) {
        if self.finishing || now < self.retry_at {
            return;
        }
        // Bounded by the connection target.
        while self.conns.len() < self.w.connections && self.connecting < self.connect_window {
            let start = match self.w.mode {
                Mode::Cps if self.pacer.is_some() => match self.backlog.pop_front() {
                    Some(at) => at,
                    None => break,
                },
                Mode::Cps | Mode::Rps if !self.can_issue() => break,
                _ => now,
            };
            if self.w.mode == Mode::Cps {
                self.issued += 1;
            }
            if !self.open(now, t, start) {
                break;
            }
        }
    }

    fn open<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T, start: u64) -> bool {
        match t.connect(self.w.target) {
            Ok(h) => {
                let c = Conn {
                    state: State::Connecting,
                    opened_at: now,
                    established_at: 0,
                    start,
                    sent_at: 0,
                    in_flight: false,
                    awaiting_eof: false,
                    seq: 0,
                    sent: 0,
                    received: 0,
                    parser: HttpResponseParser::default(),
                    bytes_sent: 0,
                    bytes_received: 0,
                };
                if let Some(old) = self.conns.insert(h, c) {
                    // A transport reusing a live handle is a bug there; count it rather than lose track.
                    self.stats.errors.other += 1;
                    if old.state == State::Connecting {
                        self.connecting -= 1;
                    } else {
                        self.established -= 1;
                    }
                }
                self.connecting += 1;
                true
            }
            Err(e) => {
                let errs = &mut self.stats.errors;
                match e {
                    NetError::NoPorts => errs.no_ports += 1,
                    NetError::Refused => errs.connect_refused += 1,
                    NetError::TimedOut => errs.connect_timeouts += 1,
                    _ => errs.connect_other += 1,
                }
                self.retry_at = now + RETRY_DELAY_NS;
                false
            }
        }
    }

    fn start_request<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T, h: H, start: u64) {
        let Some(c) = self.conns.get_mut(&h) else { return };
        c.in_flight = true;
        c.start = start;
        c.sent_at = now;
        c.seq += 1;
        c.sent = 0;
        c.received = 0;
        self.in_flight += 1;
        if self.w.mode == Mode::Rps {
            self.issued += 1;
        }
        self.pump_send(now, t, h);
    }

    fn pump_send<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T, h: H) {
        let Some(c) = self.conns.get_mut(&h) else { return };
        let req: &[u8] = if self.w.http { &self.http_req } else { self.echo.request(c.seq) };
        // Bounded: every pass sends at least one byte of a finite request or returns.
        while c.sent < req.len() {
            match t.send(h, &req[c.sent..]) {
                Ok(n) => {
                    c.sent += n;
                    self.stats.bytes_sent += n as u64;
                }
                Err(NetError::WouldBlock) => return,
                Err(e) => {
                    self.fail(now, t, h, e, false);
                    return;
                }
            }
        }
    }

    fn pump_stream<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T, h: H) {
        let Some(c) = self.conns.get_mut(&h) else { return };
        let chunk = self.echo.request(0);
        // Ends when the transport's (bounded) send buffer is full.
        loop {
            match t.send(h, chunk) {
                Ok(n) => {
                    c.bytes_sent += n as u64;
                    self.stats.bytes_sent += n as u64;
                }
                Err(NetError::WouldBlock) => return,
                Err(e) => {
                    self.fail(now, t, h, e, false);
                    return;
                }
            }
        }
    }

    /// Handles received bytes; false when the connection is gone (stop reading).
    fn consume<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T, h: H, data: &[u8]) -> bool {
        let Some(c) = self.conns.get_mut(&h) else { return false };
        match self.w.mode {
            Mode::Stream | Mode::Hold | Mode::Synflood | Mode::Ceiling => {
                c.bytes_received += data.len() as u64;
                return true;
            }
            Mode::Rps | Mode::Cps => {}
        }
        if !c.in_flight || c.awaiting_eof {
            // Bytes nobody asked for.
            self.fail(now, t, h, NetError::Other, true);
            return false;
        }
        if self.w.http {
            match c.parser.feed(data) {
                Ok((_, None)) => true,
                Ok((used, Some(resp))) => {
                    if !(200..300).contains(&resp.status) {
                        self.stats.errors.http_non_2xx += 1;
                    }
                    if used < data.len() {
                        // More than one response to one request.
                        self.fail(now, t, h, NetError::Other, true);
                        return false;
                    }
                    self.complete(now, t, h, resp.close)
                }
                Err(_) => {
                    self.fail(now, t, h, NetError::Other, true);
                    false
                }
            }
        } else {
            let want = self.w.response_size - c.received;
            let check = self.w.verify && self.w.request_size == self.w.response_size;
            if data.len() > want || (check && !self.echo.check(c.seq, c.received, data)) {
                self.fail(now, t, h, NetError::Other, true);
                return false;
            }
            c.received += data.len();
            if c.received == self.w.response_size {
                self.complete(now, t, h, false)
            } else {
                true
            }
        }
    }

    /// A response completed. Returns whether the connection is still open.
    fn complete<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T, h: H, server_closes: bool) -> bool {
        let Some(c) = self.conns.get_mut(&h) else { return false };
        self.stats.latency.saturating_record(now.saturating_sub(c.start).max(1));
        self.stats.requests += 1;
        c.in_flight = false;
        self.in_flight -= 1;
        if server_closes {
            // Wait for the server's FIN so that "who closed first" is what happened on the wire.
            c.awaiting_eof = true;
            c.sent_at = now;
            return true;
        }
        match self.w.mode {
            Mode::Cps => {
                self.stats.client_closed_first += 1;
                self.remove(now, h);
                t.close(h);
                self.after_close(now, t);
                false
            }
            _ => {
                if self.finishing {
                    return true;
                }
                if self.pacer.is_some() {
                    match self.backlog.pop_front() {
                        Some(at) => self.start_request(now, t, h, at),
                        None => self.idle.push(h),
                    }
                } else if self.can_issue() {
                    self.start_request(now, t, h, now);
                }
                self.conns.contains_key(&h)
            }
        }
    }

    /// The peer sent FIN.
    fn on_eof<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T, h: H) {
        let Some(c) = self.remove(now, h) else { return };
        if c.in_flight {
            self.stats.errors.short_reads += 1;
        } else {
            // Either announced (Connection: close) or the server ended an idle connection.
            self.stats.server_closed_first += 1;
        }
        t.close(h);
        self.after_close(now, t);
    }

    /// A send/receive error or a protocol violation on `h`: count it, drop the connection.
    fn fail<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T, h: H, e: NetError, data_error: bool) {
        let Some(c) = self.remove(now, h) else { return };
        let errs = &mut self.stats.errors;
        if data_error {
            errs.data_errors += 1;
            t.abort(h);
        } else {
            match e {
                NetError::Reset | NetError::Refused => errs.resets += 1,
                NetError::TimedOut => errs.timeouts += 1,
                NetError::Closed if c.in_flight => errs.short_reads += 1,
                NetError::NoPorts | NetError::WouldBlock | NetError::Closed | NetError::Other => errs.other += 1,
            }
            t.close(h);
        }
        self.after_close(now, t);
    }

    /// Timeouts: connects and responses older than the limit are aborted and counted.
    fn sweep<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T) {
        let limit = self.w.timeout.as_nanos() as u64;
        let expired: Vec<(H, State, bool)> = self
            .conns
            .iter()
            .filter(|(_, c)| match c.state {
                State::Connecting => now.saturating_sub(c.opened_at) > limit,
                State::Established => (c.in_flight || c.awaiting_eof) && now.saturating_sub(c.sent_at) > limit,
            })
            .map(|(h, c)| (*h, c.state, c.in_flight))
            .collect();
        for (h, state, in_flight) in expired {
            self.remove(now, h);
            match (state, in_flight) {
                (State::Connecting, _) => self.stats.errors.connect_timeouts += 1,
                (State::Established, true) => self.stats.errors.timeouts += 1,
                // The server announced a close and never sent its FIN: not an error of the request.
                (State::Established, false) => {}
            }
            t.abort(h);
        }
    }

    /// Replacement work after a connection went away.
    fn after_close<T: Transport<Handle = H>>(&mut self, now: u64, t: &mut T) {
        self.maintain(now, t);
    }

    /// Forgets `h` (the caller releases the transport handle).
    fn remove(&mut self, now: u64, h: H) -> Option<Conn> {
        let c = self.conns.remove(&h)?;
        match c.state {
            State::Connecting => self.connecting -= 1,
            State::Established => {
                self.established -= 1;
                if self.w.mode == Mode::Stream {
                    self.stats.stream.push(StreamConn {
                        bytes_sent: c.bytes_sent,
                        bytes_received: c.bytes_received,
                        seconds: now.saturating_sub(c.established_at) as f64 / 1e9,
                    });
                }
            }
        }
        if c.in_flight {
            self.in_flight -= 1;
        }
        if let Some(i) = self.idle.iter().position(|x| *x == h) {
            self.idle.swap_remove(i);
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    /// An in-memory echo (or fixed-response) server behind the transport API. Connects complete when the test
    /// says so; sent bytes become readable replies immediately unless `hold_replies` is set.
    #[derive(Default)]
    struct Fake {
        next: u32,
        live: HashMap<u32, Vec<u8>>,
        /// Bytes the server has received but not yet answered (while `hold_replies`).
        held: HashMap<u32, Vec<u8>>,
        hold_replies: bool,
        /// Answer every request with this instead of an echo.
        fixed_reply: Option<Vec<u8>>,
        closed: Vec<u32>,
        aborted: Vec<u32>,
        refuse: bool,
        send_limit: Option<usize>,
    }

    impl Transport for Fake {
        type Handle = u32;
        fn connect(&mut self, _: SocketAddrV4) -> Result<u32, NetError> {
            if self.refuse {
                return Err(NetError::NoPorts);
            }
            self.next += 1;
            self.live.insert(self.next, Vec::new());
            Ok(self.next)
        }
        fn send(&mut self, h: u32, data: &[u8]) -> Result<usize, NetError> {
            let n = self.send_limit.map_or(data.len(), |l| l.min(data.len()));
            if n == 0 {
                return Err(NetError::WouldBlock);
            }
            if self.hold_replies {
                self.held.entry(h).or_default().extend_from_slice(&data[..n]);
                return Ok(n);
            }
            let reply = self.fixed_reply.clone().unwrap_or_else(|| data[..n].to_vec());
            self.live.get_mut(&h).ok_or(NetError::Closed)?.extend_from_slice(&reply);
            Ok(n)
        }
        fn recv(&mut self, h: u32, buf: &mut [u8]) -> Result<usize, NetError> {
            let q = self.live.get_mut(&h).ok_or(NetError::Closed)?;
            if q.is_empty() {
                return Err(NetError::WouldBlock);
            }
            let n = q.len().min(buf.len());
            buf[..n].copy_from_slice(&q[..n]);
            q.drain(..n);
            Ok(n)
        }
        fn close(&mut self, h: u32) {
            self.live.remove(&h);
            self.closed.push(h);
        }
        fn abort(&mut self, h: u32) {
            self.live.remove(&h);
            self.aborted.push(h);
        }
    }

    impl Fake {
        fn release_held(&mut self) {
            for (h, data) in self.held.drain() {
                if let Some(q) = self.live.get_mut(&h) {
                    q.extend_from_slice(&data);
                }
            }
        }
    }

    fn workload(mode: Mode) -> Workload {
        let mut w = Workload::new(mode, SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 7));
        w.connections = 2;
        w
    }

    const MS: u64 = 1_000_000;

    /// Delivers connect completions and readable events until nothing changes.
    fn pump(g: &mut Generator<u32>, t: &mut Fake, now: u64, rounds: usize) {
        for _ in 0..rounds {
            let handles: Vec<u32> = t.live.keys().copied().collect();
            for h in handles {
                if g.is_connecting(h) {
                    g.on_connected(now, t, h);
                }
                g.on_readable(now, t, h);
            }
        }
    }

    #[test]
    fn closed_loop_rps_stops_at_the_request_limit() {
        let mut w = workload(Mode::Rps);
        w.requests = Some(10);
        let mut g = Generator::new(w, Arc::new(Progress::default()));
        let mut t = Fake::default();
        g.start(0, &mut t);
        assert_eq!(g.open_connections(), 1, "one connect until the first handshake completes");
        pump(&mut g, &mut t, 5 * MS, 20);
        assert!(g.is_complete());
        g.finish(6 * MS, &mut t);
        let s = g.take_stats();
        assert_eq!(s.requests, 10);
        assert_eq!(s.errors.total(), 0, "{:?}", s.errors);
        assert_eq!(s.bytes_sent, 640);
        assert_eq!(s.bytes_received, 640);
        assert_eq!(s.connections_opened, 2);
        assert_eq!(t.closed.len(), 2, "finish closes every connection");
    }

    #[test]
    fn a_corrupted_echo_is_a_data_error() {
        let mut g = Generator::new(workload(Mode::Rps), Arc::new(Progress::default()));
        let mut t = Fake { fixed_reply: Some(vec![0xee; 64]), ..Default::default() };
        g.start(0, &mut t);
        pump(&mut g, &mut t, MS, 1);
        let s = g.take_stats();
        assert_eq!(s.requests, 0);
        assert!(s.errors.data_errors >= 1);
        assert_eq!(t.aborted.len() as u64, s.errors.data_errors, "each bad echo aborts its connection");
        // The lost connections are replaced.
        assert_eq!(g.open_connections(), 2);
    }

    #[test]
    fn open_loop_latency_counts_from_the_intended_time() {
        let mut w = workload(Mode::Rps);
        w.connections = 1;
        w.rate = Some(1000.0); // one every ms
        let mut g = Generator::new(w, Arc::new(Progress::default()));
        let mut t = Fake { hold_replies: true, ..Default::default() };
        g.start(0, &mut t);
        pump(&mut g, &mut t, 0, 1);
        // The server stalls for 10 ms: ten more requests become due meanwhile but the one connection is busy.
        g.tick(10 * MS, &mut t);
        t.release_held();
        pump(&mut g, &mut t, 10 * MS, 1);
        // Now the queued requests go one after another, answered at once.
        t.hold_replies = false;
        t.release_held();
        for _ in 0..12 {
            g.tick(10 * MS, &mut t);
            pump(&mut g, &mut t, 10 * MS, 1);
        }
        g.finish(11 * MS, &mut t);
        let s = g.take_stats();
        assert_eq!(s.requests, 11, "intended at 0..=10 ms");
        // The first waited 10 ms; the one intended at 5 ms waited 5 ms: all from their intended times.
        assert_eq!(s.latency.max(), s.latency.highest_equivalent(10 * MS));
        assert!(s.latency.equivalent(s.latency.value_at_quantile(0.5), 5 * MS));
        assert_eq!(s.errors.total(), 0);
    }

    #[test]
    fn cps_closes_client_first_and_reconnects() {
        let mut w = workload(Mode::Cps);
        w.requests = Some(6);
        let mut g = Generator::new(w, Arc::new(Progress::default()));
        let mut t = Fake::default();
        g.start(0, &mut t);
        pump(&mut g, &mut t, MS, 10);
        assert!(g.is_complete());
        let s = g.take_stats();
        assert_eq!(s.requests, 6);
        assert_eq!(s.connections_opened, 6);
        assert_eq!(s.client_closed_first, 6);
        assert_eq!(t.closed.len(), 6);
        assert_eq!(s.latency.len(), 6);
    }

    #[test]
    fn http_responses_are_parsed_and_non_2xx_counted() {
        let mut w = workload(Mode::Rps);
        w.http = true;
        w.requests = Some(4);
        w.connections = 1;
        let body = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n".to_vec();
        let mut g = Generator::new(w, Arc::new(Progress::default()));
        let mut t = Fake { fixed_reply: Some(body), ..Default::default() };
        g.start(0, &mut t);
        pump(&mut g, &mut t, MS, 10);
        let s = g.take_stats();
        assert_eq!((s.requests, s.errors.http_non_2xx), (4, 4));
    }

    #[test]
    fn timeouts_and_resets_are_counted_never_hidden() {
        let mut w = workload(Mode::Rps);
        w.timeout = Duration::from_millis(100);
        let mut g = Generator::new(w, Arc::new(Progress::default()));
        let mut t = Fake { hold_replies: true, ..Default::default() };
        g.start(0, &mut t);
        let hs: Vec<u32> = t.live.keys().copied().collect();
        // One connection never completes its handshake; the other sends and never gets an answer.
        g.on_connected(0, &mut t, hs[0]);
        g.tick(200 * MS, &mut t);
        let s = g.take_stats();
        assert_eq!((s.errors.connect_timeouts, s.errors.timeouts), (1, 1));
        assert_eq!(t.aborted.len(), 2);
        // A reset on an established connection.
        let hs: Vec<u32> = t.live.keys().copied().collect();
        g.on_connected(200 * MS, &mut t, hs[0]);
        g.on_closed(201 * MS, &mut t, hs[0], Some(NetError::Reset));
        g.on_closed(201 * MS, &mut t, hs[1], Some(NetError::Refused));
        let s = g.take_stats();
        assert_eq!((s.errors.resets, s.errors.connect_refused), (1, 1));
    }

    #[test]
    fn no_ports_is_counted_and_retried_later() {
        let mut g = Generator::new(workload(Mode::Rps), Arc::new(Progress::default()));
        let mut t = Fake { refuse: true, ..Default::default() };
        g.start(0, &mut t);
        g.tick(MS, &mut t); // within the retry delay: no new attempt
        assert_eq!(g.take_stats().errors.no_ports, 1);
        t.refuse = false;
        g.tick(20 * MS, &mut t);
        assert_eq!(g.open_connections(), 1, "retried, one at a time until a handshake completes");
    }

    #[test]
    fn stream_sends_until_the_transport_pushes_back() {
        let mut w = workload(Mode::Stream);
        w.request_size = 1000;
        w.connections = 1;
        let mut g = Generator::new(w, Arc::new(Progress::default()));
        let mut t = Fake { hold_replies: true, send_limit: Some(0), ..Default::default() };
        g.start(0, &mut t);
        let h = *t.live.keys().next().unwrap();
        g.on_connected(0, &mut t, h);
        t.send_limit = Some(300);
        // Writable: the fake takes 300 bytes per call forever, so give it a finite budget by switching to 0 after.
        struct Budget<'a>(&'a mut Fake, usize);
        impl Transport for Budget<'_> {
            type Handle = u32;
            fn connect(&mut self, a: SocketAddrV4) -> Result<u32, NetError> {
                self.0.connect(a)
            }
            fn send(&mut self, h: u32, d: &[u8]) -> Result<usize, NetError> {
                if self.1 == 0 {
                    return Err(NetError::WouldBlock);
                }
                self.1 -= 1;
                self.0.send(h, d)
            }
            fn recv(&mut self, h: u32, b: &mut [u8]) -> Result<usize, NetError> {
                self.0.recv(h, b)
            }
            fn close(&mut self, h: u32) {
                self.0.close(h)
            }
            fn abort(&mut self, h: u32) {
                self.0.abort(h)
            }
        }
        g.on_writable(MS, &mut Budget(&mut t, 10), h);
        g.finish(1_000 * MS, &mut t);
        let s = g.take_stats();
        assert_eq!(s.bytes_sent, 3000);
        assert_eq!(s.stream.len(), 1);
        assert_eq!(s.stream[0].bytes_sent, 3000);
        assert!((s.stream[0].seconds - 1.0).abs() < 1e-9);
    }

    #[test]
    fn hold_opens_and_keeps_connections() {
        let mut w = workload(Mode::Hold);
        w.connections = 700;
        let p = Arc::new(Progress::default());
        let mut g = Generator::new(w, p.clone());
        let mut t = Fake::default();
        g.start(0, &mut t);
        assert_eq!(g.open_connections(), 1, "one connect until the path is known to work");
        pump(&mut g, &mut t, MS, 1);
        g.tick(2 * MS, &mut t);
        assert_eq!(g.open_connections(), 1 + MAX_CONNECTING, "then connects are paced");
        pump(&mut g, &mut t, 2 * MS, 1);
        g.tick(3 * MS, &mut t);
        pump(&mut g, &mut t, 3 * MS, 1);
        g.tick(4 * MS, &mut t);
        assert_eq!(g.established(), 700);
        assert_eq!(p.snapshot().established, 700);
        g.finish(5 * MS, &mut t);
        assert_eq!(t.closed.len(), 700);
    }

    #[test]
    fn pacer_spaces_intended_times_evenly() {
        let mut p = Pacer::new(1_000, 4.0);
        assert_eq!(p.due(1_000), Some(1_000));
        assert_eq!(p.due(1_000), None);
        assert_eq!(p.next_at(), 1_000 + 250_000_000);
        assert_eq!(p.due(1_000_000_000), Some(250_001_000));
        assert_eq!(p.due(1_000_000_000), Some(500_001_000));
    }
}
