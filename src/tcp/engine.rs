//! The engine's public face: handles, events, errors, the packet sink, and the socket-like API.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::assembler::Assembler;
use super::autotune::RecvAutotune;
use super::buffer::{ChunkPool, RecvBuffer, SendBuffer, DEFAULT_CHUNK};
use super::congestion::{Congestion, CongestionControl};
use super::conn::{Conn, FourTuple, RetransmitMode, TimerKind, CONN_TIMERS};
use super::isn::IsnGenerator;
use super::listener::{Listener, SynQueue};
use super::rtt::RttEstimator;
use super::syncookies::SynCookies;
use super::timewait::TimeWaitTable;
use super::{Config, Counter, Counters};
use crate::time::Instant;
use crate::timer::TimerWheel;
use crate::wire::SeqNum;

/// A connection handle: slot index plus generation, so a stale handle never reaches a reused slot.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct ConnId {
    pub index: u32,
    pub generation: u32,
}

/// A listener handle.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct ListenerId(pub u32);

/// The RFC 9293 states. TIME_WAIT connections live as compact records; `info()` still reports them.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl State {
    /// The name `ss` prints (`ESTAB`, `SYN-SENT`, ...).
    pub fn ss_name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECV",
            State::Established => "ESTAB",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        }
    }
}

/// Why a connection ended.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum CloseReason {
    /// Orderly close completed (both FINs exchanged and acknowledged).
    Normal,
    /// The peer reset the connection (ECONNRESET).
    Reset,
    /// The peer refused an active open (RST to our SYN: ECONNREFUSED).
    Refused,
    /// Retransmissions, SYN retries or keepalive probes ran out (ETIMEDOUT).
    TimedOut,
    /// The application aborted it.
    Aborted,
}

/// Application events. They are edge-triggered hints: act on them, then drain with `recv`/`send`/`accept` until
/// they return `WouldBlock`.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// An active open completed.
    Connected(ConnId),
    /// The listener's accept queue went from empty to non-empty.
    Incoming(ListenerId),
    /// New in-order data, or the peer's FIN (then `recv` returns `Ok(0)`).
    Readable(ConnId),
    /// Send-buffer space became available after `send` had been short.
    Writable(ConnId),
    /// The connection is over; the handle stays valid (and `info` answers) until `close` or `abort`.
    Closed(ConnId, CloseReason),
}

/// Errors of the socket-like API.
#[derive(Copy, Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Error {
    #[error("operation would block")]
    WouldBlock,
    #[error("no such connection or listener")]
    InvalidHandle,
    #[error("not connected")]
    NotConnected,
    #[error("connection reset by peer")]
    Reset,
    #[error("connection refused")]
    Refused,
    #[error("connection timed out")]
    TimedOut,
    #[error("connection aborted")]
    Aborted,
    #[error("write side already shut down")]
    WriteClosed,
    #[error("address already in use")]
    AddrInUse,
    #[error("no free ephemeral port")]
    NoPorts,
    #[error("connection table full")]
    TableFull,
    #[error("invalid argument")]
    InvalidArgument,
}

/// Where the engine writes outgoing IPv4 packets. The runtime lends one buffer at a time (e.g. a UMEM frame past
/// its Ethernet header); the engine writes a whole IPv4 packet into it and commits its length.
pub trait PacketSink {
    /// A buffer for the next packet, at least `Config::mtu` bytes long; `None` when the runtime has no room now
    /// (the engine keeps the work and retries on the next `poll_transmit`).
    fn buffer(&mut self) -> Option<&mut [u8]>;
    /// The packet in the last lent buffer is `len` bytes long and ready to go.
    fn commit(&mut self, len: usize);
}

/// A snapshot of one connection, like `ss -tan -i`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnInfo {
    pub state: State,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub srtt: Duration,
    pub rttvar: Duration,
    pub rto: Duration,
    pub mss: u16,
    pub cwnd: u32,
    pub ssthresh: u32,
    pub bytes_in_flight: u32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    /// Bytes received and not yet read by the application (`ss` Recv-Q).
    pub recv_q: u32,
    /// Bytes sent or queued and not yet acknowledged (`ss` Send-Q).
    pub send_q: u32,
    pub retransmits: u32,
    pub total_retransmits: u64,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub timestamps: bool,
    pub sack: bool,
    /// The receiver-side RTT that paces buffer autotuning (`ss -i` `rcv_rtt`); zero until measured.
    pub rcv_rtt: Duration,
    /// Bytes the application read in the last measured RTT (`ss -i` `rcv_space`).
    pub rcv_space: u32,
    /// Current receive-buffer capacity (grows with autotuning, `ss -m`'s `rb`).
    pub rcvbuf: u32,
    /// Congestion control algorithm (`cubic`, `reno`) and where it stands (`slow_start`, `hystart_css`,
    /// `cong_avoid`, `recovery`, `loss`).
    pub congestion: &'static str,
    pub ca_state: &'static str,
    /// Bytes the peer SACKed above SND.UNA (`ss -i` `sacked`, in segments there).
    pub sacked: u32,
}

/// A state change of one connection, recorded when [`Engine::record_transitions`] is on (the simulator's ladder
/// diagrams and the state-machine coverage tests read these).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Transition {
    pub at: Instant,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub from: State,
    pub to: State,
}

/// A listener snapshot, like `ss -ltn`: Recv-Q is the accept queue length, Send-Q its limit.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerInfo {
    pub local: SocketAddrV4,
    pub accept_queue: u32,
    pub accept_limit: u32,
    pub syn_queue: u32,
}

/// Borrows one live connection through the `slots` field only, so that `self.pool`, `self.counters` and
/// `self.config` stay usable while it is held (a method call would borrow all of `self`).
macro_rules! conn {
    ($engine:ident, $index:expr) => {
        $engine.slots[$index as usize].conn.as_deref_mut().expect("live connection slot")
    };
}
pub(crate) use conn;

/// A timer's payload: which connection (or TIME_WAIT record) and which of its timers.
#[derive(Copy, Clone, Debug)]
pub(crate) struct TimerEntry {
    pub index: u32,
    pub generation: u32,
    pub kind: TimerKind,
}

/// A reply that belongs to no connection (RST to a closed port, ACK from a TIME_WAIT record). Queued, bounded,
/// and sent on the next `poll_transmit`.
#[derive(Copy, Clone, Debug)]
pub(crate) struct ControlSegment {
    pub tuple: FourTuple,
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: u8,
    pub window: u16,
    /// Timestamps on ACKs; MSS, window scale, SACK-permitted and TFO cookie too on SYN-ACKs from half-open records.
    pub options: crate::wire::TcpOptions,
}

impl ControlSegment {
    pub fn bare(tuple: FourTuple, seq: SeqNum, ack: SeqNum, flags: u8, window: u16, ts: Option<(u32, u32)>) -> Self {
        let options = crate::wire::TcpOptions { timestamps: ts, ..Default::default() };
        ControlSegment { tuple, seq, ack, flags, window, options }
    }
}

/// A connection's protocol state, from [`Engine::audit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnAudit {
    pub state: State,
    pub iss: SeqNum,
    pub snd_una: SeqNum,
    pub snd_nxt: SeqNum,
    pub snd_max: SeqNum,
    pub max_snd_wnd: u32,
    pub irs: SeqNum,
    pub rcv_nxt: SeqNum,
    /// Right edge of the window last advertised.
    pub rcv_adv: SeqNum,
    pub ts_enabled: bool,
    pub ts_recent: u32,
    pub peer_fin: bool,
    /// Readable bytes, and the receive buffer's capacity.
    pub recv_queue: usize,
    pub recv_capacity: usize,
    /// Out-of-order bytes held and the ranges they form.
    pub ooo_bytes: usize,
    pub ooo_ranges: usize,
    /// Heap held by the receive buffer (chunks plus their slots), and the chunk size.
    pub recv_bytes_held: usize,
    pub chunk_size: usize,
}

/// At most this many connectionless replies wait for the next `poll_transmit`; more are dropped (and counted).
const MAX_CONTROL_QUEUE: usize = 4096;

pub(crate) struct Slot {
    pub generation: u32,
    pub conn: Option<Box<Conn>>,
}

/// Tables keyed by what a peer chooses (four-tuples, addresses) use std's SipHash-1-3 with a random per-table key:
/// `foldhash::fast` is only "minimally DoS-resistant" against a peer that can time a long-running process (review L3).
pub(crate) type Hasher = std::collections::hash_map::RandomState;

/// The engine. See the module doc for how it is driven.
pub struct Engine {
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    pub(crate) slots: Vec<Slot>,
    pub(crate) free_slots: Vec<u32>,
    pub(crate) table: HashMap<FourTuple, u32, Hasher>,
    pub(crate) listeners: Vec<Option<Listener>>,
    pub(crate) listen_map: HashMap<SocketAddrV4, ListenerId, Hasher>,
    pub(crate) timewait: TimeWaitTable,
    pub(crate) syn_queue: SynQueue,
    pub(crate) cookies: SynCookies,
    pub(crate) last_cookie_sent: Option<Instant>,
    /// RFC 7413 §4.1.2 Fast Open cookie keys: the current one and the one it replaced, so cookies issued just
    /// before a rotation stay valid for one more period; and when the current one was made.
    pub(crate) tfo_key: [u8; 16],
    pub(crate) tfo_prev_key: [u8; 16],
    pub(crate) tfo_key_since: Instant,
    /// Master secret (256 bits) from which every per-purpose key is derived.
    pub(crate) secret: [u8; 32],
    /// Client Fast Open cookies by server address (RFC 7413 §4.1.3), bounded.
    pub(crate) tfo_cache: HashMap<Ipv4Addr, crate::wire::TfoCookie, Hasher>,
    pub(crate) timers: TimerWheel<TimerEntry>,
    pub(crate) dirty: VecDeque<u32>,
    pub(crate) control: VecDeque<ControlSegment>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) transitions: Option<VecDeque<Transition>>,
    pub(crate) isn: IsnGenerator,
    pub(crate) pool: ChunkPool,
    pub(crate) port_cursor: u32,
    /// RFC 5961 §7: start of the current one-second window and the challenge ACKs still allowed in it (drawn at
    /// random per window, as Linux 4.7+).
    pub(crate) challenge_window: (Option<Instant>, u32),
    /// State of the engine's small random generator (challenge-ACK budgets), keyed from the seed.
    pub(crate) rng: u64,
    /// Linux's `tcp_memory_pressure`: buffer memory went above `tcp_mem[1]` and has not yet fallen below `tcp_mem[0]`.
    pub(crate) mem_pressure: bool,
    pub(crate) orphans: u32,
    pub(crate) now: Instant,
    /// When set, active opens pick source ports whose replies the NIC's RSS puts on this engine's queue.
    pub(crate) steering: Option<(Box<crate::stack::rss::RssSteering>, u16)>,
}

impl Engine {
    /// A deterministic engine for the simulator, tests and benchmarks: the secrets are expanded from a 64-bit
    /// `seed` so runs replay bit for bit. A runtime facing a network uses [`Engine::with_secret`] with 256 random
    /// bits: 64 bits can be brute-forced offline from observed ISNs (review L4).
    pub fn new(config: Config, now: Instant, seed: u64) -> Engine {
        let mut secret = [0u8; 32];
        for (i, word) in secret.chunks_mut(8).enumerate() {
            word.copy_from_slice(&splitmix(seed.wrapping_add(i as u64)).to_le_bytes());
        }
        Engine::with_secret(config, now, secret)
    }

    /// An engine whose ISN, SYN-cookie, Fast Open and timestamp-offset keys all derive from `secret` (pass 256
    /// random bits).
    pub fn with_secret(config: Config, now: Instant, secret: [u8; 32]) -> Engine {
        let key = &secret;
        let seed = u64::from_le_bytes(derive_key(key, 4)[..8].try_into().unwrap_or([0; 8]));
        let tick = Duration::from_micros(config.timer_tick_us.max(1) as u64);
        Engine {
            timewait: TimeWaitTable::default(),
            syn_queue: SynQueue::default(),
            cookies: SynCookies::new(derive_key(key, 1)),
            last_cookie_sent: None,
            tfo_key: derive_tfo_key(key, 0),
            tfo_prev_key: derive_tfo_key(key, 0),
            tfo_key_since: now,
            secret,
            tfo_cache: HashMap::with_hasher(Hasher::default()),
            timers: TimerWheel::new(tick, now),
            counters: Counters::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            table: HashMap::with_hasher(Hasher::default()),
            listeners: Vec::new(),
            listen_map: HashMap::with_hasher(Hasher::default()),
            dirty: VecDeque::new(),
            control: VecDeque::new(),
            events: VecDeque::new(),
            transitions: None,
            isn: IsnGenerator::new(derive_key(key, 0)),
            pool: ChunkPool::new(DEFAULT_CHUNK, 4096),
            port_cursor: (seed as u32) ^ (seed >> 32) as u32,
            challenge_window: (None, 0),
            rng: u64::from_le_bytes(derive_key(key, 3)[..8].try_into().unwrap_or([1; 8])),
            mem_pressure: false,
            orphans: 0,
            now,
            steering: None,
            config,
        }
    }

    /// Makes active opens choose source ports so that replies arrive on `queue` under `steering` (mTCP/F-Stack
    /// style), so a connection never needs a hand-off between workers.
    pub fn set_rss_steering(&mut self, steering: crate::stack::rss::RssSteering, queue: u16) {
        self.steering = Some((Box::new(steering), queue));
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes settings at run time. Only the knobs `Config::is_runtime_settable` allows are taken from `new`; the
    /// others keep their value (buffer sizes apply to new connections).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counters are also bumped by the runtime (ring and ARP counters) in the same array.
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// Runs every timer due by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        while let Some((_, entry)) = self.timers.poll(now) {
            self.on_timer(now, entry);
        }
    }

    /// The earliest instant at which `handle_timeout` has work, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// True when `poll_transmit` has something to send.
    pub fn wants_transmit(&self) -> bool {
        !self.dirty.is_empty() || !self.control.is_empty()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Turns the transition log on or off (off by default: it costs a push per state change).
    pub fn record_transitions(&mut self, on: bool) {
        self.transitions = if on { Some(VecDeque::new()) } else { None };
    }

    pub fn poll_transition(&mut self) -> Option<Transition> {
        self.transitions.as_mut()?.pop_front()
    }

    // ----- the socket-like API -----

    /// Active open. A local port of 0 picks one from `ip_local_port_range`.
    pub fn connect(&mut self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4) -> Result<ConnId, Error> {
        self.now = self.now.max(now);
        if remote.port() == 0 || remote.ip().is_unspecified() || local.ip().is_unspecified() {
            return Err(Error::InvalidArgument);
        }
        let tuple = if local.port() == 0 {
            self.pick_ephemeral_port(now, *local.ip(), remote)?
        } else {
            let t = FourTuple {
                local_ip: *local.ip(),
                local_port: local.port(),
                remote_ip: *remote.ip(),
                remote_port: remote.port(),
            };
            if self.table.contains_key(&t) || !self.timewait_allows_reuse(now, &t) {
                return Err(Error::AddrInUse);
            }
            t
        };
        let iss = self.isn.isn(tuple.local(), tuple.remote(), now);
        let index = self.alloc_conn(now, tuple, iss, State::SynSent)?;
        let conn = self.conn_mut(index);
        conn.app_owned = true;
        let id = ConnId { index, generation: conn.generation };
        self.counters.inc(Counter::ActiveOpens);
        self.log_transition(now, tuple, State::Closed, State::SynSent);
        self.mark_dirty(index);
        Ok(id)
    }

    /// Active open with TCP Fast Open (RFC 7413, `tcp_fastopen` & 1): `data` is queued; with a cookie cached for
    /// the server it rides in the SYN, otherwise the SYN asks for a cookie and the data follows the handshake.
    /// Returns the handle and how many bytes were queued.
    pub fn connect_with_data(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        data: &[u8],
    ) -> Result<(ConnId, usize), Error> {
        let id = self.connect(now, local, remote)?;
        let use_tfo = self.config.tcp_fastopen & super::listener::TFO_CLIENT != 0;
        let cached = self.tfo_cache.contains_key(remote.ip());
        let c = conn!(self, id.index);
        let queued = c.sendbuf.append(&mut self.pool, data);
        if use_tfo {
            c.tfo_syn = if cached { 2 } else { 1 };
        }
        Ok((id, queued))
    }

    pub fn listen(&mut self, addr: SocketAddrV4, backlog: u32) -> Result<ListenerId, Error> {
        if addr.port() == 0 {
            return Err(Error::InvalidArgument);
        }
        if self.listen_map.contains_key(&addr) {
            return Err(Error::AddrInUse);
        }
        let limit = backlog.clamp(1, self.config.somaxconn.max(1));
        let slot = self.listeners.iter().position(Option::is_none).unwrap_or_else(|| {
            self.listeners.push(None);
            self.listeners.len() - 1
        });
        let id = ListenerId(slot as u32);
        self.listeners[slot] = Some(Listener::new(addr, limit));
        self.listen_map.insert(addr, id);
        Ok(id)
    }

    /// Closes a listener: connections still in its queues are reset, as Linux does on close(listen_fd).
    pub fn unlisten(&mut self, listener: ListenerId) -> Result<(), Error> {
        let now = self.now;
        self.drop_half_open_of(now, listener);
        let l = self.listeners.get_mut(listener.0 as usize).and_then(Option::take).ok_or(Error::InvalidHandle)?;
        self.listen_map.remove(&l.local);
        let half_open: Vec<ConnId> = (0..self.slots.len() as u32)
            .filter(|&i| self.slots[i as usize].conn.as_ref().is_some_and(|c| c.listener == Some(listener)))
            .map(|i| self.id_of(i))
            .collect();
        for id in half_open {
            self.reset_and_release(now, id.index, Counter::TCPAbortOnClose);
        }
        Ok(())
    }

    pub fn accept(&mut self, listener: ListenerId) -> Result<ConnId, Error> {
        let l = self.listeners.get_mut(listener.0 as usize).and_then(Option::as_mut).ok_or(Error::InvalidHandle)?;
        let id = l.accept_queue.pop_front().ok_or(Error::WouldBlock)?;
        let conn = self.conn_checked_mut(id).ok_or(Error::InvalidHandle)?;
        conn.in_accept_queue = false;
        conn.listener = None;
        conn.app_owned = true;
        // Data (or a FIN) may have arrived while the connection waited in the queue.
        if !conn.recvbuf.is_empty() || conn.peer_fin || conn.error.is_some() {
            conn.readable_signalled = true;
            self.events.push_back(Event::Readable(id));
        }
        Ok(id)
    }

    /// Queues up to `data.len()` bytes; returns how many were taken (`WouldBlock` if none).
    pub fn send(&mut self, now: Instant, conn: ConnId, data: &[u8]) -> Result<usize, Error> {
        self.now = self.now.max(now);
        self.app_conn_mut(conn)?;
        let c = conn!(self, conn.index);
        if let Some(e) = c.error {
            return Err(e);
        }
        if c.fin_queued {
            return Err(Error::WriteClosed);
        }
        if !matches!(c.state, State::SynSent | State::SynReceived | State::Established | State::CloseWait) {
            return Err(Error::NotConnected);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = c.sendbuf.append(&mut self.pool, data);
        if n < data.len() {
            c.want_writable = true;
        }
        if n == 0 {
            return Err(Error::WouldBlock);
        }
        // RFC 5681 §4.1: after an idle period longer than the RTO, restart from the initial window.
        if self.config.tcp_slow_start_after_idle
            && c.snd_una == c.snd_max
            && now.saturating_since(c.last_tx_data) > c.rtt.rto()
            && c.is_synchronized()
        {
            c.cc.on_idle_restart();
        }
        self.mark_dirty(conn.index);
        Ok(n)
    }

    /// Reads up to `buf.len()` bytes; `Ok(0)` is end of stream (peer sent FIN); `WouldBlock` if nothing yet.
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, Error> {
        let mut copied = 0;
        self.recv_with(conn, &mut |data: &[u8]| {
            let n = data.len().min(buf.len() - copied);
            buf[copied..copied + n].copy_from_slice(&data[..n]);
            copied += n;
            n
        })
        .map(|_| copied)
    }

    /// Zero-copy receive: `f` sees contiguous readable bytes (possibly several times, one chunk each) and returns
    /// how many it consumed; consuming less than offered stops the read.
    pub fn recv_with(&mut self, conn: ConnId, f: &mut dyn FnMut(&[u8]) -> usize) -> Result<usize, Error> {
        self.app_conn_mut(conn)?;
        let c = conn!(self, conn.index);
        let mut total = 0;
        loop {
            let chunk = c.recvbuf.peek();
            if chunk.is_empty() {
                break;
            }
            let offered = chunk.len();
            let n = f(chunk).min(offered);
            c.recvbuf.consume(&mut self.pool, n);
            total += n;
            if n < offered {
                break;
            }
        }
        if total > 0 {
            if c.recvbuf.is_empty() {
                c.readable_signalled = false;
            }
            // Dynamic right-sizing: a reader that keeps up earns a larger window.
            let advmss = self.config.mss() as u32;
            let (capacity, max) = (c.recvbuf.capacity(), self.config.tcp_rmem[2] as usize);
            if let Some(grown) = c.autotune.on_read(self.now, total, advmss, capacity, max) {
                if self.config.tcp_moderate_rcvbuf {
                    c.recvbuf.set_capacity(grown);
                }
            }
            self.after_app_read(conn.index);
            return Ok(total);
        }
        c.readable_signalled = false;
        if let Some(e) = c.error {
            return Err(e);
        }
        if c.peer_fin {
            return Ok(0);
        }
        match c.state {
            State::SynSent | State::SynReceived | State::Established | State::FinWait1 | State::FinWait2 => {
                Err(Error::WouldBlock)
            }
            _ => Ok(0),
        }
    }

    /// Half-close: send FIN after the queued data; reading continues.
    pub fn shutdown_write(&mut self, now: Instant, conn: ConnId) -> Result<(), Error> {
        self.now = self.now.max(now);
        let c = self.app_conn_mut(conn)?;
        if c.fin_queued {
            return Ok(());
        }
        match c.state {
            State::SynSent if c.snd_nxt == c.iss => {
                // Nothing sent yet: RFC 9293 §3.10.4 says delete the TCB.
                c.error = Some(Error::NotConnected);
                // finish() records SYN-SENT -> CLOSED.
                self.finish(now, conn.index, CloseReason::Aborted, false);
                Ok(())
            }
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => {
                c.fin_queued = true;
                self.mark_dirty(conn.index);
                Ok(())
            }
            _ => Err(Error::NotConnected),
        }
    }

    /// Orderly close; the handle is released and the engine finishes the close on its own (an orphan).
    /// Unread received data makes this an abort (RST), as in Linux (RFC 2525 §2.17).
    pub fn close(&mut self, now: Instant, conn: ConnId) -> Result<(), Error> {
        self.now = self.now.max(now);
        let c = self.app_conn_mut(conn)?;
        c.app_owned = false;
        if c.finished {
            self.release_slot(conn.index);
            return Ok(());
        }
        if !c.recvbuf.is_empty() {
            self.reset_and_release(now, conn.index, Counter::TCPAbortOnClose);
            return Ok(());
        }
        match c.state {
            State::SynSent => {
                self.finish(now, conn.index, CloseReason::Aborted, false);
                self.release_slot(conn.index);
            }
            _ => {
                if !c.fin_queued {
                    c.fin_queued = true;
                }
                self.orphans += 1;
                if self.orphans > self.config.tcp_max_orphans {
                    self.counters.inc(Counter::TCPAbortOnMemory);
                    self.reset_and_release(now, conn.index, Counter::TCPOrphanDrop);
                    return Ok(());
                }
                let c = self.conn_mut(conn.index);
                // An orphan in FIN_WAIT_2 must not linger forever (tcp_fin_timeout).
                if c.state == State::FinWait2 {
                    self.arm_fin_wait2_timer(now, conn.index);
                }
                self.mark_dirty(conn.index);
            }
        }
        Ok(())
    }

    /// Abortive close (SO_LINGER 0): RST now, handle released.
    pub fn abort(&mut self, now: Instant, conn: ConnId) -> Result<(), Error> {
        self.now = self.now.max(now);
        let c = self.app_conn_mut(conn)?;
        c.app_owned = false;
        if c.finished {
            self.release_slot(conn.index);
            return Ok(());
        }
        self.reset_and_release(now, conn.index, Counter::TCPAbortOnLinger);
        Ok(())
    }

    pub fn set_nodelay(&mut self, conn: ConnId, nodelay: bool) -> Result<(), Error> {
        let c = self.app_conn_mut(conn)?;
        c.nodelay = nodelay;
        if nodelay && !c.sendbuf.is_empty() {
            self.mark_dirty(conn.index);
        }
        Ok(())
    }

    /// Linux's `TCP_CONGESTION` socket option: the congestion control algorithm of this connection (one of
    /// [`congestion::AVAILABLE`](super::congestion::AVAILABLE)). The new algorithm starts from the initial window
    /// and an infinite ssthresh, so choose it before sending, as applications do.
    pub fn set_congestion_control(&mut self, conn: ConnId, algorithm: &str) -> Result<(), Error> {
        let init = self.config.tcp_init_cwnd;
        let c = self.app_conn_mut(conn)?;
        let cc = Congestion::new(algorithm, c.smss as u32, init).ok_or(Error::InvalidArgument)?;
        if cc.name() != c.cc.name() {
            c.cc = cc;
        }
        Ok(())
    }

    pub fn set_keepalive(&mut self, conn: ConnId, keepalive: bool) -> Result<(), Error> {
        let now = self.now;
        let c = self.app_conn_mut(conn)?;
        c.keepalive = keepalive;
        if keepalive {
            let at = now + Duration::from_secs(self.config.tcp_keepalive_time as u64);
            self.set_timer(conn.index, TimerKind::Keepalive, at);
        } else {
            self.cancel_timer(conn.index, TimerKind::Keepalive);
        }
        Ok(())
    }

    pub fn info(&self, conn: ConnId) -> Option<ConnInfo> {
        self.conn_checked(conn).map(|c| c.info())
    }

    pub fn listener_info(&self, listener: ListenerId) -> Option<ListenerInfo> {
        let l = self.listeners.get(listener.0 as usize)?.as_ref()?;
        Some(ListenerInfo {
            local: l.local,
            accept_queue: l.accept_queue.len() as u32,
            accept_limit: l.accept_limit,
            syn_queue: l.syn_queue_len,
        })
    }

    /// Every live connection's snapshot, streamed (for `ss`); TIME_WAIT records are reported by
    /// [`Engine::for_each_timewait`].
    pub fn for_each_connection(&self, f: &mut dyn FnMut(ConnId, ConnInfo)) {
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(c) = slot.conn.as_ref().filter(|c| !c.finished) {
                f(ConnId { index: i as u32, generation: slot.generation }, c.info());
            }
        }
    }

    /// Every TIME_WAIT record as (local, remote, time left).
    pub fn for_each_timewait(&self, f: &mut dyn FnMut(SocketAddrV4, SocketAddrV4, Duration)) {
        self.timewait.for_each(self.now, &self.timers, f);
    }

    /// A bounded, resumable part of [`Engine::for_each_timewait`]: visits at most `max_records` records and looks
    /// at most at `max_slots` slots from position `cursor` (start at 0); returns where to resume (`None`: done).
    /// Streaming a large table this way costs O(n) in total, never O(n²).
    pub fn for_each_timewait_from(
        &self,
        cursor: usize,
        max_records: usize,
        max_slots: usize,
        f: &mut dyn FnMut(SocketAddrV4, SocketAddrV4, Duration),
    ) -> Option<usize> {
        self.timewait.for_each_from(cursor, max_records, max_slots, self.now, &self.timers, f)
    }

    /// Test support: a TIME_WAIT record for (local, remote) lasting `ttl`, without a connection's history.
    #[cfg(test)]
    pub(crate) fn insert_timewait_for_test(&mut self, local: SocketAddrV4, remote: SocketAddrV4, ttl: Duration) {
        let t = FourTuple {
            local_ip: *local.ip(),
            remote_ip: *remote.ip(),
            local_port: local.port(),
            remote_port: remote.port(),
        };
        let (now, one) = (self.now, SeqNum(1));
        self.timewait.insert(&mut self.timers, now, ttl, t, one, one, false, 0, 0);
    }

    /// Test support: removes the TIME_WAIT record of (local, remote).
    #[cfg(test)]
    pub(crate) fn remove_timewait_for_test(&mut self, local: SocketAddrV4, remote: SocketAddrV4) -> bool {
        let t = FourTuple {
            local_ip: *local.ip(),
            remote_ip: *remote.ip(),
            local_port: local.port(),
            remote_port: remote.port(),
        };
        self.timewait.remove(&mut self.timers, &t).is_some()
    }

    /// Number of connections in the table (all states but TIME_WAIT) and of TIME_WAIT records.
    pub fn connection_count(&self) -> (usize, usize) {
        (self.table.len(), self.timewait.len())
    }

    /// SND.UNA, SND.MAX (the highest sequence number sent) and RCV.NXT, for tests and diagnostics.
    pub fn sequence_numbers(&self, conn: ConnId) -> Option<(SeqNum, SeqNum, SeqNum)> {
        self.conn_checked(conn).map(|c| (c.snd_una, c.snd_max, c.rcv_nxt))
    }

    /// Readable bytes queued on a connection.
    pub fn recv_queue_len(&self, conn: ConnId) -> usize {
        self.conn_checked(conn).map_or(0, |c| c.recvbuf.len())
    }

    /// Free send-buffer space.
    pub fn send_capacity(&self, conn: ConnId) -> usize {
        self.conn_checked(conn).map_or(0, |c| c.sendbuf.free())
    }

    pub fn local_addr_of(&self, conn: ConnId) -> Option<(SocketAddrV4, SocketAddrV4)> {
        self.conn_checked(conn).map(|c| (c.tuple.local(), c.tuple.remote()))
    }

    /// Bytes of buffer memory held in chunks right now (the engine's own accounting for memory per connection).
    pub fn buffer_bytes_in_use(&self) -> usize {
        self.pool.bytes_in_use()
    }

    /// The protocol state of the connection `local` <-> `remote` (any state but TIME_WAIT), for invariant checks
    /// in fuzzing and tests.
    pub fn audit(&self, local: SocketAddrV4, remote: SocketAddrV4) -> Option<ConnAudit> {
        let tuple = FourTuple {
            local_ip: *local.ip(),
            remote_ip: *remote.ip(),
            local_port: local.port(),
            remote_port: remote.port(),
        };
        let c = self.conn_ref(*self.table.get(&tuple)?);
        Some(ConnAudit {
            state: c.state,
            iss: c.iss,
            snd_una: c.snd_una,
            snd_nxt: c.snd_nxt,
            snd_max: c.snd_max,
            max_snd_wnd: c.max_snd_wnd,
            irs: c.irs,
            rcv_nxt: c.rcv_nxt,
            rcv_adv: c.rcv_adv,
            ts_enabled: c.ts_enabled,
            ts_recent: c.ts_recent,
            peer_fin: c.peer_fin,
            recv_queue: c.recvbuf.len(),
            recv_capacity: c.recvbuf.capacity(),
            ooo_bytes: c.assembler.bytes_buffered() as usize,
            ooo_ranges: c.assembler.range_count(),
            recv_bytes_held: c.recvbuf.bytes_held(&self.pool),
            chunk_size: self.pool.chunk_size(),
        })
    }

    // ----- internals shared by input, output and timers -----

    pub(crate) fn conn_checked(&self, id: ConnId) -> Option<&Conn> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_deref()
    }

    pub(crate) fn conn_checked_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_deref_mut()
    }

    /// A connection the application holds.
    fn app_conn_mut(&mut self, id: ConnId) -> Result<&mut Conn, Error> {
        match self.conn_checked_mut(id) {
            Some(c) if c.app_owned => Ok(c),
            _ => Err(Error::InvalidHandle),
        }
    }

    pub(crate) fn conn_mut(&mut self, index: u32) -> &mut Conn {
        self.slots[index as usize].conn.as_deref_mut().expect("live connection slot")
    }

    pub(crate) fn conn_ref(&self, index: u32) -> &Conn {
        self.slots[index as usize].conn.as_deref().expect("live connection slot")
    }

    pub(crate) fn conn_opt(&mut self, index: u32, generation: u32) -> Option<&mut Conn> {
        self.conn_checked_mut(ConnId { index, generation })
    }

    pub(crate) fn id_of(&self, index: u32) -> ConnId {
        ConnId { index, generation: self.slots[index as usize].generation }
    }

    /// Creates a connection in `state` and enters it in the four-tuple table.
    pub(crate) fn alloc_conn(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        iss: SeqNum,
        state: State,
    ) -> Result<u32, Error> {
        if self.table.len() >= self.config.max_connections as usize {
            self.counters.inc(Counter::TCPAbortOnMemory);
            return Err(Error::TableFull);
        }
        let cfg = &self.config;
        let mss = cfg.mss();
        let cc = Congestion::new(&cfg.tcp_congestion_control, mss as u32, cfg.tcp_init_cwnd)
            .or_else(|| Congestion::new("reno", mss as u32, cfg.tcp_init_cwnd))
            .expect("reno is always available");
        let rcv_wscale = if cfg.tcp_window_scaling { window_shift_for(cfg.tcp_rmem[2]) } else { 0 };
        let rto_min = Duration::from_micros(cfg.tcp_rto_min_us as u64);
        let rto_max = Duration::from_millis(cfg.tcp_rto_max_ms as u64);
        let conn = Conn {
            tuple,
            state,
            generation: 0,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_buf_seq: iss + 1,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: SeqNum(0),
            snd_wscale: 0,
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            rcv_adv: SeqNum(0),
            rcv_wscale,
            ooo_fin: None,
            smss: mss,
            peer_mss: 536,
            ts_enabled: false,
            ts_recent: 0,
            ts_recent_at: now,
            ts_offset: self.isn.ts_offset(tuple.local(), tuple.remote()),
            sack_ok: false,
            wscale_ok: false,
            rtt: RttEstimator::new(rto_min, rto_max),
            rtt_seq: None,
            cc,
            in_recovery: false,
            recover: iss,
            dupacks: 0,
            retransmit_head: false,
            limited_transmit: 0,
            scoreboard: Assembler::new(),
            recovery: Default::default(),
            dup_acks_owed: 0,
            sws_override: false,
            sendbuf: SendBuffer::new(cfg.tcp_wmem[1] as usize),
            recvbuf: RecvBuffer::new(cfg.tcp_rmem[1] as usize),
            autotune: RecvAutotune::new(now),
            assembler: Assembler::new(),
            fin_queued: false,
            peer_fin: false,
            timers: [None; CONN_TIMERS],
            retransmit_mode: RetransmitMode::Rto,
            retransmits: 0,
            total_retransmits: 0,
            keepalive_probes: 0,
            last_rx: now,
            last_tx_data: now,
            ack_now: false,
            unacked_bytes: 0,
            quickack: 0,
            window_update: false,
            zero_window_advertised: false,
            nodelay: false,
            keepalive: false,
            app_owned: false,
            listener: None,
            in_accept_queue: false,
            tfo_passive: false,
            tfo_syn: 0,
            error: None,
            close_reason: None,
            finished: false,
            dirty: false,
            readable_signalled: false,
            want_writable: false,
            last_oow_ack: 0,
            acked_far: false,
        };
        let index = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { generation: 0, conn: None });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        let mut conn = Box::new(conn);
        conn.generation = slot.generation;
        slot.conn = Some(conn);
        self.table.insert(tuple, index);
        Ok(index)
    }

    /// Frees the slot once nobody needs it: the application released it and the protocol is done with it.
    pub(crate) fn release_slot(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        let Some(c) = slot.conn.as_mut() else { return };
        if c.app_owned || c.in_accept_queue || !c.finished {
            return;
        }
        c.sendbuf.clear(&mut self.pool);
        c.recvbuf.clear(&mut self.pool);
        slot.conn = None;
        slot.generation = slot.generation.wrapping_add(1);
        self.free_slots.push(index);
    }

    /// The connection is over on the wire: out of the table, timers off, buffers freed, the application told.
    /// `to_timewait` keeps a compact TIME_WAIT record for the four-tuple.
    pub(crate) fn finish(&mut self, now: Instant, index: u32, reason: CloseReason, to_timewait: bool) {
        for kind in [TimerKind::Retransmit, TimerKind::DelayedAck, TimerKind::Keepalive] {
            self.cancel_timer(index, kind);
        }
        self.complete_passive_open(index);
        let c = conn!(self, index);
        if c.finished {
            return;
        }
        c.finished = true;
        c.close_reason = Some(reason);
        let tuple = c.tuple;
        let from = c.state;
        let app_owned = c.app_owned;
        let was_orphan = !app_owned && !c.in_accept_queue && c.listener.is_none();
        if c.error.is_none() {
            c.error = match reason {
                CloseReason::Normal => None,
                CloseReason::Reset => Some(Error::Reset),
                CloseReason::Refused => Some(Error::Refused),
                CloseReason::TimedOut => Some(Error::TimedOut),
                CloseReason::Aborted => Some(Error::Aborted),
            };
        }
        c.sendbuf.clear(&mut self.pool);
        if !app_owned {
            c.recvbuf.clear(&mut self.pool);
        }
        c.assembler.clear();
        let to_tw_state = if to_timewait { State::TimeWait } else { State::Closed };
        c.state = to_tw_state;
        let snapshot = to_timewait.then_some((c.snd_max, c.rcv_nxt, c.ts_enabled, c.ts_recent, c.ts_offset));
        if let Some(l) = c.listener.take() {
            // A half-open or not-yet-accepted connection leaves its listener's queues.
            let in_accept = std::mem::replace(&mut c.in_accept_queue, false);
            let id = self.id_of(index);
            if let Some(listener) = self.listeners.get_mut(l.0 as usize).and_then(Option::as_mut) {
                if in_accept {
                    listener.accept_queue.retain(|x| *x != id);
                } else {
                    listener.syn_queue_len = listener.syn_queue_len.saturating_sub(1);
                }
            }
        }
        self.table.remove(&tuple);
        if was_orphan {
            self.orphans = self.orphans.saturating_sub(1);
        }
        if from != to_tw_state {
            self.log_transition(now, tuple, from, to_tw_state);
        }
        if let Some((snd_nxt, rcv_nxt, ts, ts_recent, ts_offset)) = snapshot {
            if self.timewait.len() < self.config.tcp_max_tw_buckets as usize {
                self.counters.inc(Counter::TW);
                let len = self.config.time_wait_len();
                self.timewait.insert(&mut self.timers, now, len, tuple, snd_nxt, rcv_nxt, ts, ts_recent, ts_offset);
            } else {
                self.counters.inc(Counter::TCPTimeWaitOverflow);
                self.log_transition(now, tuple, State::TimeWait, State::Closed);
            }
        }
        if app_owned {
            let id = self.id_of(index);
            self.events.push_back(Event::Closed(id, reason));
        }
        self.release_slot(index);
    }

    /// Sends RST for the connection (if synchronized or SYN-RECEIVED) and frees it.
    pub(crate) fn reset_and_release(&mut self, now: Instant, index: u32, counter: Counter) {
        let c = conn!(self, index);
        if c.finished {
            self.release_slot(index);
            return;
        }
        let send_rst = !matches!(c.state, State::SynSent | State::Closed);
        let (tuple, seq, ack) = (c.tuple, c.snd_max, c.rcv_nxt);
        if send_rst {
            self.counters.inc(counter);
            if c.state == State::Established || c.state == State::CloseWait {
                self.counters.inc(Counter::EstabResets);
            }
            let flags = crate::wire::TcpFlags::RST | crate::wire::TcpFlags::ACK;
            self.queue_control(ControlSegment::bare(tuple, seq, ack, flags, 0, None));
        }
        self.finish(now, index, CloseReason::Aborted, false);
        self.release_slot(index);
    }

    pub(crate) fn queue_control(&mut self, seg: ControlSegment) {
        if self.control.len() >= MAX_CONTROL_QUEUE {
            self.counters.inc(Counter::TxNoBuffer);
            return;
        }
        if seg.flags & crate::wire::TcpFlags::RST != 0 {
            self.counters.inc(Counter::OutRsts);
        }
        self.control.push_back(seg);
    }

    pub(crate) fn mark_dirty(&mut self, index: u32) {
        let c = conn!(self, index);
        if !c.dirty {
            c.dirty = true;
            self.dirty.push_back(index);
        }
    }

    pub(crate) fn set_state(&mut self, now: Instant, index: u32, to: State) {
        let c = conn!(self, index);
        let from = c.state;
        if from == to {
            return;
        }
        c.state = to;
        let tuple = c.tuple;
        self.log_transition(now, tuple, from, to);
    }

    pub(crate) fn log_transition(&mut self, now: Instant, tuple: FourTuple, from: State, to: State) {
        if let Some(t) = self.transitions.as_mut() {
            t.push_back(Transition { at: now, local: tuple.local(), remote: tuple.remote(), from, to });
        }
    }

    /// After the application read: if the window opened enough, tell the peer (receiver-side SWS avoidance,
    /// RFC 9293 §3.8.6.2.2: only when it grows by min(buffer/2, MSS)).
    fn after_app_read(&mut self, index: u32) {
        let c = conn!(self, index);
        if !c.is_synchronized() || c.peer_fin {
            return;
        }
        let advertised = c.rcv_adv - c.rcv_nxt;
        let possible = c.recvbuf.free() as u32;
        let threshold = (c.recvbuf.capacity() as u32 / 2).min(c.smss as u32);
        if possible >= advertised.saturating_add(threshold) {
            c.window_update = true;
            self.mark_dirty(index);
        }
    }

    /// RFC 5961 §7: challenge ACKs are rate limited engine-wide.
    pub(crate) fn challenge_ack_allowed(&mut self, now: Instant) -> bool {
        let (start, left) = self.challenge_window;
        let expired = start.is_none_or(|s| now.saturating_since(s) >= Duration::from_secs(1) || s > now);
        let left = if expired {
            // Linux 4.7+ (CVE-2016-5696): a fresh budget of limit/2 + rand(0..limit) each second, so an off-path
            // prober cannot tell how much of it other connections used.
            let limit = self.config.tcp_challenge_ack_limit;
            let draw = if limit == 0 { 0 } else { (self.next_random() % limit as u64) as u32 };
            self.challenge_window.0 = Some(now);
            limit.div_ceil(2).saturating_add(draw)
        } else {
            left
        };
        self.challenge_window.1 = left.saturating_sub(1);
        left > 0
    }

    /// Linux's `__tcp_oow_rate_limited`: at most one reply to invalid segments per `tcp_invalid_ratelimit` per
    /// connection or TIME_WAIT record. Returns true (and counts `counter`) when this reply must be skipped.
    ///
    /// `last` is the stamp of the last reply in 4 ms units, wrapping every 262 s (0 = never), so the control block
    /// does not grow; intervals are therefore capped at 131 s, and a stamp exactly a multiple of 262 s old can
    /// suppress one reply it should not have.
    pub(crate) fn oow_rate_limited(&mut self, now: Instant, last: &mut u16, counter: Counter) -> bool {
        let stamp = ((now.as_millis() / 4) as u16).max(1);
        if *last != 0 {
            let elapsed = stamp.wrapping_sub(*last) as i16;
            let limit = (self.config.tcp_invalid_ratelimit / 4).min(i16::MAX as u32) as i16;
            if elapsed >= 0 && elapsed < limit {
                self.counters.inc(counter);
                return true;
            }
        }
        *last = stamp;
        false
    }

    /// splitmix64: cheap, unpredictable to a peer that does not know the seed.
    pub(crate) fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Buffer memory of the engine in 4 KiB pages (send and receive chunks, as Linux's `tcp_memory_allocated`),
    /// counting `extra` more chunks.
    pub(crate) fn mem_pages(&self, extra: usize) -> u64 {
        ((self.pool.allocated_chunks() + extra) * self.pool.chunk_size()).div_ceil(4096) as u64
    }

    /// Linux's `__sk_mem_raise_allocated` for a receive queue: may connection `index` take `chunks` more chunks?
    /// Below `tcp_mem[0]` always; above `tcp_mem[2]` never; in between a connection holding less than
    /// `tcp_rmem[0]` may, and under pressure one holding more than its share (`high / connections`) may not.
    pub(crate) fn rmem_schedule(&mut self, index: u32, chunks: usize) -> bool {
        let [low, pressure, high] = self.config.tcp_mem.map(u64::from);
        let allocated = self.mem_pages(chunks);
        if allocated <= low {
            self.mem_pressure = false;
            return true;
        }
        if allocated > pressure && !self.mem_pressure {
            self.mem_pressure = true;
            self.counters.inc(Counter::TCPMemoryPressures);
        }
        if allocated > high {
            return false;
        }
        let cs = self.pool.chunk_size();
        let c = self.conn_ref(index);
        if c.recvbuf.chunk_count() * cs < self.config.tcp_rmem[0] as usize {
            return true;
        }
        if self.mem_pressure {
            let own = (c.recvbuf.chunk_count() + c.sendbuf.chunk_count() + chunks) * cs;
            let sockets = self.table.len().max(1) as u64;
            return high > sockets * own.div_ceil(4096) as u64;
        }
        true
    }

    /// Linux's `tcp_prune_ofo_queue`: forget connection `index`'s out-of-order data (the peer still holds it and
    /// will send it again; RFC 2018 §8 lets a receiver renege on SACKed data). Returns whether anything was freed.
    pub(crate) fn prune_out_of_order(&mut self, index: u32) -> bool {
        let c = conn!(self, index);
        if c.assembler.is_empty() && c.recvbuf.out_of_order_extent() == 0 {
            return false;
        }
        c.assembler.clear();
        c.recvbuf.discard_out_of_order(&mut self.pool);
        c.ooo_fin = None;
        self.counters.inc(Counter::OfoPruned);
        true
    }

    /// Chooses a free local port for `remote`, Linux-style: start at a keyed offset, walk the range, skip tuples in
    /// use (or in TIME_WAIT that `tcp_tw_reuse` does not let us take).
    fn pick_ephemeral_port(
        &mut self,
        now: Instant,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
    ) -> Result<FourTuple, Error> {
        let [lo, hi] = self.config.ip_local_port_range;
        let (lo, hi) = (lo.min(hi) as u32, lo.max(hi) as u32);
        let span = hi - lo + 1;
        let offset = self.isn.hash_tuple(SocketAddrV4::new(local_ip, 0), remote) as u32;
        for i in 0..span {
            let port = lo + (offset.wrapping_add(self.port_cursor).wrapping_add(i) % span);
            let t =
                FourTuple { local_ip, local_port: port as u16, remote_ip: *remote.ip(), remote_port: remote.port() };
            if let Some((steer, queue)) = &self.steering {
                if steer.queue_of(*remote.ip(), local_ip, remote.port(), t.local_port) != *queue {
                    continue;
                }
            }
            if self.table.contains_key(&t) || !self.timewait_allows_reuse(now, &t) {
                continue;
            }
            // Step by 2 like Linux so that consecutive connects do not probe the same ports again.
            self.port_cursor = self.port_cursor.wrapping_add(i + 2);
            return Ok(t);
        }
        self.counters.inc(Counter::TCPConnectNoPorts);
        Err(Error::NoPorts)
    }

    /// An active open may take a four-tuple in TIME_WAIT only under `tcp_tw_reuse` = 1 with timestamps (so PAWS
    /// protects the new incarnation) and after one second, as Linux does. Taking it removes the record.
    fn timewait_allows_reuse(&mut self, now: Instant, t: &FourTuple) -> bool {
        match self.timewait.get(t) {
            None => true,
            Some(rec) => {
                let reusable = self.config.tcp_tw_reuse == 1
                    && rec.ts_enabled
                    && now.saturating_since(rec.entered) >= Duration::from_secs(1);
                if reusable {
                    self.timewait.remove(&mut self.timers, t);
                    self.counters.inc(Counter::TWRecycled);
                }
                reusable
            }
        }
    }
}

/// Independent secrets for ISNs, SYN cookies and Fast Open cookies, all from the engine's 256-bit secret: a 128-bit
/// SipHash key over the other 128 bits and the purpose.
fn derive_key(secret: &[u8; 32], purpose: u64) -> [u8; 16] {
    use std::hash::Hasher;
    let mut k = [0u8; 16];
    k.copy_from_slice(&secret[..16]);
    let mut h = siphasher::sip128::SipHasher24::new_with_key(&k);
    h.write(&secret[16..]);
    h.write_u64(purpose);
    siphasher::sip128::Hasher128::finish128(&h).as_bytes()
}

/// The smallest window-scale shift that lets `max_buffer` be advertised in 16 bits (RFC 7323 §2.3, at most 14).
pub(crate) fn window_shift_for(max_buffer: u32) -> u8 {
    let mut shift = 0u8;
    while shift < 14 && (max_buffer >> shift) > 65535 {
        shift += 1;
    }
    shift
}

/// The Fast Open key of rotation period `epoch` (RFC 7413 §4.1.2 asks servers to change the key periodically).
pub(crate) fn derive_tfo_key(secret: &[u8; 32], epoch: u64) -> [u8; 16] {
    derive_key(secret, (2 << 32) | epoch)
}

/// splitmix64's output function.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
