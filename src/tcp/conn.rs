//! The transmission control block (RFC 9293 §3.3.1): everything one connection remembers.
//!
//! Kept compact: buffers are chunked and empty until data flows, the assembler allocates only when a hole appears,
//! and the congestion state is an enum (no box per connection).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::assembler::Assembler;
use super::autotune::RecvAutotune;
use super::buffer::{RecvBuffer, SendBuffer};
use super::congestion::{Congestion, CongestionControl};
use super::engine::{CloseReason, ConnInfo, Error, ListenerId, State};
use super::rtt::RttEstimator;
use crate::time::Instant;
use crate::timer::TimerHandle;
use crate::wire::SeqNum;

/// The four-tuple as the table keys it, from our side.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct FourTuple {
    pub local_ip: Ipv4Addr,
    pub remote_ip: Ipv4Addr,
    pub local_port: u16,
    pub remote_port: u16,
}

impl FourTuple {
    pub fn local(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.local_ip, self.local_port)
    }
    pub fn remote(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.remote_ip, self.remote_port)
    }
}

/// Which of a connection's timers an expiry belongs to. Like Linux, one retransmit timer serves RTO, SYN/SYN-ACK
/// retries and zero-window probes (they never run at once), and the keepalive timer doubles as the orphan
/// FIN_WAIT_2 timeout.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum TimerKind {
    Retransmit = 0,
    DelayedAck = 1,
    Keepalive = 2,
    TimeWait = 3,
    /// A half-open record's SYN-ACK retransmission.
    SynAck = 4,
}

pub(crate) const CONN_TIMERS: usize = 3;

/// What the retransmit timer is doing right now.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum RetransmitMode {
    /// Waiting for an ACK of outstanding data, SYN or FIN (RFC 6298).
    Rto,
    /// The peer's window is zero and we have data: probe it (RFC 9293 §3.8.6.1).
    Persist,
    /// A tail loss probe is due before the RTO (RFC 8985 §7.2).
    Probe,
}

pub(crate) struct Conn {
    pub tuple: FourTuple,
    pub state: State,
    pub generation: u32,

    // Send sequence space (RFC 9293 §3.3.1).
    pub iss: SeqNum,
    pub snd_una: SeqNum,
    pub snd_nxt: SeqNum,
    /// Highest sequence number sent so far; `snd_nxt` rewinds below it after an RTO (go-back-N).
    pub snd_max: SeqNum,
    /// Sequence number of the first byte in `sendbuf`.
    pub snd_buf_seq: SeqNum,
    pub snd_wnd: u32,
    pub max_snd_wnd: u32,
    pub snd_wl1: SeqNum,
    pub snd_wl2: SeqNum,
    pub snd_wscale: u8,

    // Receive sequence space.
    pub irs: SeqNum,
    pub rcv_nxt: SeqNum,
    /// Right edge of the window we last advertised; it never moves left (RFC 9293 §3.8.6.2.2).
    pub rcv_adv: SeqNum,
    pub rcv_wscale: u8,
    /// Sequence number of a FIN that arrived ahead of missing data.
    pub ooo_fin: Option<SeqNum>,

    /// Sender MSS: the peer's MSS, capped by ours, minus the timestamp option when it is in use.
    pub smss: u16,
    pub peer_mss: u16,

    // RFC 7323 timestamps.
    pub ts_enabled: bool,
    pub ts_recent: u32,
    pub ts_recent_at: Instant,
    pub ts_offset: u32,
    pub sack_ok: bool,
    pub wscale_ok: bool,

    pub rtt: RttEstimator,
    /// Karn's algorithm: one timed segment at a time, invalidated by any retransmission.
    pub rtt_seq: Option<(SeqNum, Instant)>,
    pub cc: Congestion,
    // RFC 6582 NewReno recovery.
    pub in_recovery: bool,
    pub recover: SeqNum,
    pub dupacks: u8,
    /// Retransmit the segment at `snd_una` on the next output (fast retransmit, partial ACK).
    pub retransmit_head: bool,
    /// The sender's SACK scoreboard: ranges above SND.UNA the peer reported holding (RFC 2018, RFC 6675).
    pub scoreboard: Assembler,
    /// RFC 6675 / RFC 6937 / RFC 8985 recovery state.
    pub recovery: super::recovery::Recovery,
    /// RFC 3042 limited transmit: new segments allowed beyond cwnd by the first two duplicate ACKs.
    pub limited_transmit: u8,
    /// Duplicate ACKs owed: one per out-of-order or duplicate segment (RFC 5681 §4.2), even when a receive batch
    /// brought several at once, so the sender's three-duplicate rule still sees them.
    pub dup_acks_owed: u8,
    /// The persist timer found a small (non-zero) window with data held back by SWS avoidance: send what fits
    /// (RFC 9293 §3.8.6.2.1's override timeout).
    pub sws_override: bool,

    pub sendbuf: SendBuffer,
    pub recvbuf: RecvBuffer,
    /// Receive-buffer autotuning state (`tcp_moderate_rcvbuf`).
    pub autotune: RecvAutotune,
    pub assembler: Assembler,

    /// The application asked for a FIN (shutdown_write or close).
    pub fin_queued: bool,
    /// We have received the peer's FIN (end of stream).
    pub peer_fin: bool,

    pub timers: [Option<TimerHandle>; CONN_TIMERS],
    pub retransmit_mode: RetransmitMode,
    /// Consecutive RTO expiries (or probes) without progress.
    pub retransmits: u32,
    pub total_retransmits: u64,
    pub keepalive_probes: u8,
    pub last_rx: Instant,
    pub last_tx_data: Instant,

    // Delayed ACK (RFC 9293 §3.8.6.3; RFC 5681 §4.2).
    pub ack_now: bool,
    pub unacked_bytes: u32,
    pub quickack: u8,
    /// Send a window update: the window grew enough to be worth telling the peer.
    pub window_update: bool,
    /// The last window we advertised was zero (for the TCP*ZeroWindowAdv counters).
    pub zero_window_advertised: bool,

    pub nodelay: bool,
    pub keepalive: bool,
    /// The application holds the handle (after connect/accept, until close/abort).
    pub app_owned: bool,
    /// Not yet accepted: the handle belongs to the listener's accept queue.
    pub listener: Option<ListenerId>,
    pub in_accept_queue: bool,
    /// A Fast Open connection accepted with its SYN's data, handshake not yet complete.
    pub tfo_passive: bool,
    /// Client Fast Open on our SYN: 0 none, 1 ask for a cookie, 2 send the cached cookie with data.
    pub tfo_syn: u8,
    pub error: Option<Error>,
    pub close_reason: Option<CloseReason>,
    /// Closed on the wire and out of the table; the slot lives on only for the application's handle.
    pub finished: bool,

    /// Output is queued in the engine's dirty list.
    pub dirty: bool,
    /// A Readable event was raised and the application has not drained since.
    pub readable_signalled: bool,
    pub want_writable: bool,
    /// When (4 ms units, wrapping, 0 = never) we last answered an invalid segment (`tcp_invalid_ratelimit`, Linux's
    /// `last_oow_ack_time`).
    pub last_oow_ack: u16,
    /// More than 2^30 bytes were acknowledged, so `SND.UNA - ISS` no longer measures them (it wraps at 4 GiB).
    pub acked_far: bool,
}

impl Conn {
    /// Sequence number just past the last byte the application queued (where a FIN goes).
    pub fn data_end(&self) -> SeqNum {
        self.snd_buf_seq + self.sendbuf.len() as u32
    }

    /// Sequence number of our FIN, if one is queued.
    pub fn fin_seq(&self) -> Option<SeqNum> {
        self.fin_queued.then(|| self.data_end())
    }

    /// Our FIN has been sent and acknowledged.
    pub fn fin_acked(&self) -> bool {
        self.fin_seq().is_some_and(|f| self.snd_una.gt(f))
    }

    /// RFC 5961 §5.2 as Linux: how far below SND.UNA an ACK may lie, `min(MAX.SND.WND, bytes acknowledged)`, so a
    /// fresh connection accepts no old ACK at all (review M2).
    pub fn old_ack_range(&self) -> u32 {
        let acked = if self.acked_far { u32::MAX } else { (self.snd_una - self.iss).saturating_sub(1) };
        self.max_snd_wnd.min(acked)
    }

    pub fn bytes_in_flight(&self) -> u32 {
        self.snd_nxt - self.snd_una
    }

    /// What we may still send: the smaller of congestion and peer windows, past what is in flight.
    pub fn send_window(&self) -> u32 {
        let cwnd = self.cc.cwnd().saturating_add(self.limited_transmit as u32 * self.smss as u32);
        cwnd.min(self.snd_wnd)
    }

    pub fn is_synchronized(&self) -> bool {
        !matches!(self.state, State::Closed | State::Listen | State::SynSent | State::SynReceived)
    }

    pub fn info(&self) -> ConnInfo {
        ConnInfo {
            state: self.state,
            local: self.tuple.local(),
            remote: self.tuple.remote(),
            srtt: self.rtt.srtt().unwrap_or(Duration::ZERO),
            rttvar: self.rtt.rttvar(),
            rto: self.rtt.rto(),
            mss: self.smss,
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
            bytes_in_flight: self.bytes_in_flight(),
            snd_wnd: self.snd_wnd,
            rcv_wnd: self.rcv_adv - self.rcv_nxt,
            recv_q: self.recvbuf.len() as u32,
            send_q: self.sendbuf.len() as u32,
            retransmits: self.retransmits,
            total_retransmits: self.total_retransmits,
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            timestamps: self.ts_enabled,
            sack: self.sack_ok,
            rcv_rtt: Duration::from_micros(self.autotune.rtt_us().unwrap_or(0) as u64),
            rcv_space: self.autotune.space(),
            rcvbuf: self.recvbuf.capacity() as u32,
            congestion: self.cc.name(),
            ca_state: if self.in_recovery {
                "recovery"
            } else if self.retransmits > 0 {
                "loss"
            } else {
                self.cc.state_name()
            },
            sacked: self.recovery.sacked,
        }
    }
}

/// What the two SYNs agreed on, from the peer's options and our configuration.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub peer_mss: u16,
    /// The peer's window-scale shift, when both sides use scaling.
    pub peer_wscale: Option<u8>,
    pub sack: bool,
    /// The peer's TSval from its SYN, when both sides use timestamps.
    pub ts_recent: Option<u32>,
}

impl Negotiated {
    /// Each option is used only if the peer offered it and our configuration allows it.
    pub fn from_syn(
        opts: &crate::wire::TcpOptions,
        window_scaling: bool,
        sack: bool,
        timestamps: bool,
        min_mss: u16,
    ) -> Self {
        Negotiated {
            // RFC 9293 §3.7.1: without the option the peer takes 536; a silly small MSS is raised to
            // `tcp_min_snd_mss` (48, as Linux) so a hostile peer cannot make us send one-byte segments.
            peer_mss: opts.mss.unwrap_or(536).max(min_mss),
            peer_wscale: opts.window_scale.filter(|_| window_scaling).map(|w| w.min(14)),
            sack: sack && opts.sack_permitted,
            ts_recent: opts.timestamps.filter(|_| timestamps).map(|(v, _)| v),
        }
    }
}

impl Conn {
    /// Takes the peer's SYN options (RFC 9293 §3.7.1 MSS, RFC 7323 window scale and timestamps, RFC 2018
    /// SACK-permitted) and the window its SYN carried.
    pub fn apply_syn_options(
        &mut self,
        now: Instant,
        seg: &crate::wire::TcpRepr<'_>,
        our_mss: u16,
        (window_scaling, sack, timestamps): (bool, bool, bool),
        min_mss: u16,
    ) {
        let n = Negotiated::from_syn(&seg.options, window_scaling, sack, timestamps, min_mss);
        self.apply_negotiated(now, &n, our_mss);
        // The window in a SYN is never scaled (RFC 7323 §2.2).
        self.snd_wnd = seg.window as u32;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = seg.ack;
    }

    pub fn apply_negotiated(&mut self, now: Instant, n: &Negotiated, our_mss: u16) {
        self.peer_mss = n.peer_mss;
        match n.peer_wscale {
            Some(ws) => {
                self.wscale_ok = true;
                self.snd_wscale = ws;
            }
            None => {
                self.wscale_ok = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_ok = n.sack;
        match n.ts_recent {
            Some(tsval) => {
                self.ts_enabled = true;
                self.ts_recent = tsval;
                self.ts_recent_at = now;
            }
            None => self.ts_enabled = false,
        }
        let ts_overhead = if self.ts_enabled { 12 } else { 0 };
        self.smss = self.peer_mss.min(our_mss).saturating_sub(ts_overhead).max(1);
        self.cc.set_mss(self.smss as u32);
    }
}
