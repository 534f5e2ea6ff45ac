//! The engine's public face: handles, events, errors, the packet sink, and the socket-like API.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::{Config, Counters};
use crate::time::Instant;

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

/// The engine. See the module doc for how it is driven.
pub struct Engine {
    _todo: (),
}

#[allow(unused_variables)]
impl Engine {
    /// `seed` keys the ISN and cookie secrets and the per-connection timestamp offsets; runtimes pass a random value,
    /// the simulator a fixed one so runs replay bit for bit.
    pub fn new(config: Config, now: Instant, seed: u64) -> Engine {
        todo!()
    }
    pub fn config(&self) -> &Config {
        todo!()
    }
    pub fn counters(&self) -> &Counters {
        todo!()
    }
    /// Counters are also bumped by the runtime (ring and ARP counters) in the same array.
    pub fn counters_mut(&mut self) -> &mut Counters {
        todo!()
    }

    /// One received IPv4 packet (header and TCP segment). Anything not TCP is counted and ignored.
    pub fn handle_ipv4(&mut self, now: Instant, packet: &[u8]) {
        todo!()
    }
    /// Runs every timer due by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        todo!()
    }
    /// The earliest instant at which `handle_timeout` has work, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
    /// Writes every segment that is due into the sink, until the sink runs out of buffers.
    pub fn poll_transmit(&mut self, now: Instant, sink: &mut dyn PacketSink) {
        todo!()
    }
    /// True when `poll_transmit` has something to send.
    pub fn wants_transmit(&self) -> bool {
        todo!()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        todo!()
    }
    /// Turns the transition log on or off (off by default: it costs a push per state change).
    pub fn record_transitions(&mut self, on: bool) {
        todo!()
    }
    pub fn poll_transition(&mut self) -> Option<Transition> {
        todo!()
    }

    pub fn listen(&mut self, addr: SocketAddrV4, backlog: u32) -> Result<ListenerId, Error> {
        todo!()
    }
    pub fn unlisten(&mut self, listener: ListenerId) -> Result<(), Error> {
        todo!()
    }
    pub fn accept(&mut self, listener: ListenerId) -> Result<ConnId, Error> {
        todo!()
    }
    /// Active open. A local port of 0 picks one from `ip_local_port_range`.
    pub fn connect(&mut self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4) -> Result<ConnId, Error> {
        todo!()
    }
    /// Queues up to `data.len()` bytes; returns how many were taken (`WouldBlock` if none).
    pub fn send(&mut self, now: Instant, conn: ConnId, data: &[u8]) -> Result<usize, Error> {
        todo!()
    }
    /// Reads up to `buf.len()` bytes; `Ok(0)` is end of stream (peer sent FIN); `WouldBlock` if nothing yet.
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, Error> {
        todo!()
    }
    /// Zero-copy receive: `f` sees the contiguous readable bytes and returns how many it consumed.
    pub fn recv_with(&mut self, conn: ConnId, f: &mut dyn FnMut(&[u8]) -> usize) -> Result<usize, Error> {
        todo!()
    }
    /// Half-close: send FIN after the queued data; reading continues.
    pub fn shutdown_write(&mut self, now: Instant, conn: ConnId) -> Result<(), Error> {
        todo!()
    }
    /// Orderly close; the handle is released and the engine finishes the close on its own (an orphan).
    /// Unread received data makes this an abort (RST), as in Linux (RFC 2525 §2.17).
    pub fn close(&mut self, now: Instant, conn: ConnId) -> Result<(), Error> {
        todo!()
    }
    /// Abortive close (SO_LINGER 0): RST now, handle released.
    pub fn abort(&mut self, now: Instant, conn: ConnId) -> Result<(), Error> {
        todo!()
    }
    pub fn set_nodelay(&mut self, conn: ConnId, nodelay: bool) -> Result<(), Error> {
        todo!()
    }
    pub fn set_keepalive(&mut self, conn: ConnId, keepalive: bool) -> Result<(), Error> {
        todo!()
    }
    pub fn info(&self, conn: ConnId) -> Option<ConnInfo> {
        todo!()
    }
    pub fn listener_info(&self, listener: ListenerId) -> Option<ListenerInfo> {
        todo!()
    }
    /// Number of connections in the table (all states but TIME_WAIT) and of TIME_WAIT records.
    pub fn connection_count(&self) -> (usize, usize) {
        todo!()
    }
    /// Readable bytes queued on a connection.
    pub fn recv_queue_len(&self, conn: ConnId) -> usize {
        todo!()
    }
    /// Free send-buffer space.
    pub fn send_capacity(&self, conn: ConnId) -> usize {
        todo!()
    }
    pub fn local_addr_of(&self, conn: ConnId) -> Option<(SocketAddrV4, SocketAddrV4)> {
        let _ = Ipv4Addr::UNSPECIFIED;
        todo!()
    }
}
