//! Listeners (Linux's `inet_connection_sock.c`, `tcp_minisocks.c`, `syncookies.c`, `tcp_fastopen.c`): the SYN
//! queue of compact half-open records (`tcp_max_syn_backlog`), the accept queue (`min(backlog, somaxconn)`), SYN
//! cookies (`tcp_syncookies`), the overflow policy (`tcp_abort_on_overflow`) and the server side of TCP Fast Open
//! (RFC 7413). RFC 9293 §3.10.7.2 is the LISTEN state's segment processing.

use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use siphasher::sip::SipHasher24;

use super::conn::{FourTuple, Negotiated, TimerKind};
use super::engine::{conn, ConnId, ControlSegment, Engine, Event, ListenerId, State, TimerEntry};
use super::input::ts_clock;
use super::syncookies::{self, CookieOptions};
use super::Counter;
use crate::time::Instant;
use crate::timer::{TimerHandle, TimerWheel};
use crate::wire::{SeqNum, TcpFlags, TcpOptions, TcpRepr, TfoCookie};

/// Cookies are checked on bare ACKs only for this long after the last one was sent (Linux's
/// `tcp_synq_no_recent_overflow`), so random ACKs to a listener are not run through the MAC in normal times.
const COOKIE_VALIDITY: Duration = Duration::from_secs(128);
/// SYN-ACK retransmission starts at 1 s and doubles (1-2-4-8-16 s), as Linux's TCP_TIMEOUT_INIT.
const SYNACK_TIMEOUT: Duration = Duration::from_secs(1);
/// TFO cookie length we hand out (RFC 7413 §4.1.2 allows 4..=16; Linux uses 8).
const TFO_COOKIE_LEN: usize = 8;
/// `tcp_fastopen` bits, as Linux.
pub(crate) const TFO_CLIENT: u32 = 0x1;
pub(crate) const TFO_SERVER: u32 = 0x2;

pub(crate) struct Listener {
    pub local: SocketAddrV4,
    /// min(backlog, somaxconn), as Linux.
    pub accept_limit: u32,
    /// Established connections waiting for `accept`.
    pub accept_queue: VecDeque<ConnId>,
    /// Half-open records of this listener.
    pub syn_queue_len: u32,
    /// Fast Open connections accepted with data that have not completed their handshake yet.
    pub tfo_pending: u32,
}

impl Listener {
    pub fn new(local: SocketAddrV4, accept_limit: u32) -> Self {
        Listener { local, accept_limit, accept_queue: VecDeque::new(), syn_queue_len: 0, tfo_pending: 0 }
    }

    /// Linux's `sk_acceptq_is_full`: full only once the queue holds MORE than the backlog, so a listener with
    /// backlog N queues N + 1 connections (and `ss -ltn` shows Recv-Q N+1 over Send-Q N), as operators see on Linux.
    pub fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() as u32 > self.accept_limit
    }
}

/// A half-open connection (Linux's `request_sock`): what the third ACK needs to create the connection, and what a
/// SYN-ACK retransmission needs. No buffers, no congestion state. Kept at or under 128 bytes (a test checks).
#[derive(Clone, Debug)]
pub(crate) struct HalfOpen {
    pub tuple: FourTuple,
    pub iss: SeqNum,
    pub irs: SeqNum,
    pub ts_recent: u32,
    pub ts_offset: u32,
    pub timer: Option<TimerHandle>,
    pub listener: ListenerId,
    pub generation: u32,
    pub peer_mss: u16,
    /// 0xff when the peer did not offer window scaling.
    pub peer_wscale: u8,
    pub retries: u8,
    pub sack: bool,
    pub ts: bool,
    /// Hand the client a Fast Open cookie in the SYN-ACK.
    pub send_tfo_cookie: bool,
}

impl HalfOpen {
    fn negotiated(&self) -> Negotiated {
        Negotiated {
            peer_mss: self.peer_mss,
            peer_wscale: (self.peer_wscale != 0xff).then_some(self.peer_wscale),
            sack: self.sack,
            ts_recent: self.ts.then_some(self.ts_recent),
        }
    }
}

/// The SYN queue: half-open records by four-tuple, in a slab.
#[derive(Default)]
pub(crate) struct SynQueue {
    index: HashMap<FourTuple, u32, super::engine::Hasher>,
    records: Vec<Option<HalfOpen>>,
    free: Vec<u32>,
    generation: u32,
}

impl SynQueue {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn find(&self, t: &FourTuple) -> Option<u32> {
        self.index.get(t).copied()
    }

    pub fn get(&self, slot: u32) -> Option<&HalfOpen> {
        self.records.get(slot as usize)?.as_ref()
    }

    fn get_mut(&mut self, slot: u32) -> Option<&mut HalfOpen> {
        self.records.get_mut(slot as usize)?.as_mut()
    }

    fn insert(&mut self, timers: &mut TimerWheel<TimerEntry>, at: Instant, mut rec: HalfOpen) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.records.push(None);
            (self.records.len() - 1) as u32
        });
        self.generation = self.generation.wrapping_add(1);
        rec.generation = self.generation;
        rec.timer =
            Some(timers.insert(at, TimerEntry { index: slot, generation: rec.generation, kind: TimerKind::SynAck }));
        self.index.insert(rec.tuple, slot);
        self.records[slot as usize] = Some(rec);
    }

    fn remove(&mut self, timers: &mut TimerWheel<TimerEntry>, slot: u32) -> Option<HalfOpen> {
        let rec = self.records.get_mut(slot as usize)?.take()?;
        if let Some(t) = rec.timer {
            timers.cancel(t);
        }
        self.index.remove(&rec.tuple);
        self.free.push(slot);
        Some(rec)
    }

    pub fn slots_of(&self, listener: ListenerId) -> Vec<u32> {
        (0..self.records.len() as u32).filter(|&s| self.get(s).is_some_and(|r| r.listener == listener)).collect()
    }
}

impl Engine {
    /// The listener for a local address: an exact bind first, then the wildcard address.
    pub(crate) fn find_listener(&self, tuple: &FourTuple) -> Option<ListenerId> {
        self.listen_map
            .get(&tuple.local())
            .or_else(|| self.listen_map.get(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, tuple.local_port)))
            .copied()
    }

    /// RFC 9293 §3.10.7.2: a segment for a listening socket.
    pub(crate) fn listen_input(&mut self, now: Instant, lid: ListenerId, tuple: FourTuple, seg: &TcpRepr<'_>) {
        self.listen_input_with_iss(now, lid, tuple, seg, None)
    }

    /// `iss` overrides the RFC 6528 ISS (a SYN that reopens a TIME_WAIT four-tuple starts beyond the old space).
    pub(crate) fn listen_input_with_iss(
        &mut self,
        now: Instant,
        lid: ListenerId,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        iss: Option<SeqNum>,
    ) {
        if seg.flags.rst() {
            return;
        }
        if seg.flags.ack() {
            if !seg.flags.syn() && self.cookie_ack(now, lid, tuple, seg) {
                return;
            }
            // An ACK for a connection we do not have (an old duplicate, or a third ACK for an entry we dropped).
            self.send_reset_for(tuple, seg);
            return;
        }
        if !seg.flags.syn() || seg.flags.fin() {
            return;
        }
        let Some(l) = self.listeners[lid.0 as usize].as_ref() else { return };
        if l.accept_queue_full() {
            // Linux drops SYNs while the accept queue is full, cookies or not; the client's SYN retry gets another
            // chance once the application accepts.
            self.counters.inc(Counter::ListenOverflows);
            self.counters.inc(Counter::ListenDrops);
            return;
        }
        let queue_full = l.syn_queue_len >= self.config.tcp_max_syn_backlog;
        let cookie = match self.config.tcp_syncookies {
            2 => true,
            1 if queue_full => {
                self.counters.inc(Counter::TCPReqQFullDoCookies);
                true
            }
            _ if queue_full => {
                self.counters.inc(Counter::TCPReqQFullDrop);
                self.counters.inc(Counter::ListenDrops);
                return;
            }
            _ => false,
        };
        if cookie {
            self.send_cookie_syn_ack(now, tuple, seg);
            return;
        }
        let mut send_tfo_cookie = false;
        if self.config.tcp_fastopen & TFO_SERVER != 0 {
            if let Some(offered) = seg.options.tfo_cookie {
                self.rotate_tfo_key(now);
                if offered.len == 0 {
                    self.counters.inc(Counter::TCPFastOpenCookieReqd);
                    send_tfo_cookie = true;
                } else if self.tfo_cookie_valid(*tuple.remote().ip(), &offered) {
                    if !seg.payload.is_empty() && self.fast_open(now, lid, tuple, seg) {
                        return;
                    }
                } else {
                    // RFC 7413 §4.2.2: an invalid cookie: ignore the data, complete a normal handshake, and hand out
                    // a valid cookie.
                    self.counters.inc(Counter::TCPFastOpenPassiveFail);
                    send_tfo_cookie = true;
                }
            }
        }
        let n = Negotiated::from_syn(
            &seg.options,
            self.config.tcp_window_scaling,
            self.config.tcp_sack,
            self.config.tcp_timestamps != 0,
            self.config.tcp_min_snd_mss as u16,
        );
        let rec = HalfOpen {
            tuple,
            iss: iss.unwrap_or_else(|| self.isn.isn(tuple.local(), tuple.remote(), now)),
            irs: seg.seq,
            ts_recent: n.ts_recent.unwrap_or(0),
            ts_offset: self.isn.ts_offset(tuple.local(), tuple.remote()),
            timer: None,
            listener: lid,
            generation: 0,
            peer_mss: n.peer_mss,
            peer_wscale: n.peer_wscale.unwrap_or(0xff),
            retries: 0,
            sack: n.sack,
            ts: n.ts_recent.is_some(),
            send_tfo_cookie,
        };
        self.queue_syn_ack(now, &rec);
        self.log_transition(now, tuple, State::Listen, State::SynReceived);
        self.syn_queue.insert(&mut self.timers, now + SYNACK_TIMEOUT, rec);
        if let Some(l) = self.listeners[lid.0 as usize].as_mut() {
            l.syn_queue_len += 1;
        }
    }

    /// A segment for a half-open record (RFC 9293 §3.10.7.4 in SYN-RECEIVED, for a passive open).
    pub(crate) fn half_open_input(&mut self, now: Instant, slot: u32, seg: &TcpRepr<'_>) {
        let Some(rec) = self.syn_queue.get(slot).cloned() else { return };
        let flags = seg.flags;
        if flags.rst() {
            // RFC 5961 §3.2: only a RST at exactly RCV.NXT removes the entry.
            if seg.seq == rec.irs + 1 {
                self.drop_half_open(now, slot, State::Closed);
            }
            return;
        }
        if flags.syn() {
            if !flags.ack() && seg.seq == rec.irs {
                // The client retransmitted its SYN: our SYN-ACK was lost. Answer again; create nothing new.
                self.queue_syn_ack(now, &rec);
            }
            return;
        }
        if !flags.ack() {
            return;
        }
        if seg.ack != rec.iss + 1 {
            self.send_reset_for(rec.tuple, seg);
            return;
        }
        if rec.ts {
            if let Some((tsval, _)) = seg.options.timestamps {
                if (tsval.wrapping_sub(rec.ts_recent) as i32) < 0 {
                    self.counters.inc(Counter::PAWSActive);
                    return;
                }
            }
        }
        let window_left = rec.irs + 1;
        if seg.seq.lt(window_left) || seg.seq.gt(window_left + self.config.tcp_rmem[1]) {
            self.counters.inc(Counter::TCPACKSkippedSynRecv);
            return;
        }
        let Some(index) =
            self.establish_passive(now, rec.listener, rec.tuple, rec.iss, rec.irs, &rec.negotiated(), seg)
        else {
            return;
        };
        if rec.retries > 0 {
            // RFC 6298 §5.7: the SYN-ACK timed out and no echo gave a sample: data starts with a 3 s RTO.
            self.conn_mut(index).rtt.fallback_after_syn_timeout();
        }
        if let Some(r) = self.syn_queue.remove(&mut self.timers, slot) {
            if let Some(l) = self.listeners.get_mut(r.listener.0 as usize).and_then(Option::as_mut) {
                l.syn_queue_len = l.syn_queue_len.saturating_sub(1);
            }
        }
        self.after_establish(now, index, seg);
    }

    /// A bare ACK to a listener: the third ACK of a SYN-cookie handshake, if the cookie checks out.
    fn cookie_ack(&mut self, now: Instant, lid: ListenerId, tuple: FourTuple, seg: &TcpRepr<'_>) -> bool {
        let recent = self.last_cookie_sent.is_some_and(|t| now.saturating_since(t) <= COOKIE_VALIDITY);
        if self.config.tcp_syncookies == 0 || !recent {
            return false;
        }
        let Some(mss) = self.cookies.validate(now, tuple.local(), tuple.remote(), seg.seq, seg.ack) else {
            // A forged or stale cookie: dropped and counted, not answered (no RST reflection under an ACK flood).
            self.counters.inc(Counter::SyncookiesFailed);
            return true;
        };
        self.counters.inc(Counter::SyncookiesRecv);
        // With timestamps, the options the SYN offered come back encoded in TSecr; without, they are lost.
        let opts = match seg.options.timestamps {
            Some((_, tsecr)) if self.config.tcp_timestamps != 0 => syncookies::decode_timestamp(tsecr, mss),
            _ => CookieOptions { mss, window_scale: None, sack_permitted: false, ecn: false },
        };
        let n = Negotiated {
            peer_mss: opts.mss,
            peer_wscale: opts.window_scale.filter(|_| self.config.tcp_window_scaling),
            sack: opts.sack_permitted && self.config.tcp_sack,
            ts_recent: seg.options.timestamps.map(|(v, _)| v).filter(|_| self.config.tcp_timestamps != 0),
        };
        let (iss, irs) = (seg.ack - 1u32, seg.seq - 1u32);
        if let Some(index) = self.establish_passive(now, lid, tuple, iss, irs, &n, seg) {
            self.after_establish(now, index, seg);
        }
        true
    }

    /// Creates the ESTABLISHED connection for a completed passive handshake and queues it for `accept`, or applies
    /// the overflow policy when the accept queue is full (then returns None).
    #[allow(clippy::too_many_arguments)]
    fn establish_passive(
        &mut self,
        now: Instant,
        lid: ListenerId,
        tuple: FourTuple,
        iss: SeqNum,
        irs: SeqNum,
        n: &Negotiated,
        seg: &TcpRepr<'_>,
    ) -> Option<u32> {
        let full = self.listeners.get(lid.0 as usize).and_then(Option::as_ref).is_none_or(|l| l.accept_queue_full());
        if full {
            self.counters.inc(Counter::ListenOverflows);
            self.counters.inc(Counter::ListenDrops);
            if self.config.tcp_abort_on_overflow {
                self.send_reset_for(tuple, seg);
                if let Some(slot) = self.syn_queue.find(&tuple) {
                    self.drop_half_open(now, slot, State::Closed);
                }
                self.counters.inc(Counter::EmbryonicRsts);
            }
            // With overflow aborts off the ACK is ignored: the half-open entry stays, and our SYN-ACK retransmission
            // (or the client's next segment) completes the handshake once the application has made room.
            return None;
        }
        let Ok(index) = self.alloc_conn(now, tuple, iss, State::Established) else {
            self.counters.inc(Counter::ListenDrops);
            return None;
        };
        let our_mss = self.config.mss();
        let syn_window = (self.config.tcp_rmem[1]).min(65535);
        let c = conn!(self, index);
        c.irs = irs;
        c.rcv_nxt = irs + 1;
        c.rcv_adv = c.rcv_nxt + syn_window;
        c.snd_una = iss + 1;
        c.snd_nxt = iss + 1;
        c.snd_max = iss + 1;
        c.apply_negotiated(now, n, our_mss);
        c.snd_wnd = (seg.window as u32) << c.snd_wscale;
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = seg.seq;
        c.snd_wl2 = seg.ack;
        c.quickack = 16;
        // RTT from the timestamp our SYN-ACK carried and the ACK echoes (RFC 7323 §4.1).
        if let (true, Some((_, tsecr))) = (c.ts_enabled, seg.options.timestamps) {
            let sent = tsecr.wrapping_sub(c.ts_offset);
            let rtt_ms = ts_clock(now).wrapping_sub(sent);
            if rtt_ms < 60_000 {
                c.rtt.sample(Duration::from_millis(rtt_ms as u64));
            }
        }
        self.log_transition(now, tuple, State::SynReceived, State::Established);
        let id = self.id_of(index);
        let l = self.listeners[lid.0 as usize].as_mut().expect("listener checked above");
        let was_empty = l.accept_queue.is_empty();
        l.accept_queue.push_back(id);
        let c = conn!(self, index);
        c.in_accept_queue = true;
        c.listener = Some(lid);
        self.counters.inc(Counter::PassiveOpens);
        if was_empty {
            self.events.push_back(Event::Incoming(lid));
        }
        Some(index)
    }

    /// The third ACK may carry data or a FIN: process it as the new connection's first segment.
    fn after_establish(&mut self, now: Instant, index: u32, seg: &TcpRepr<'_>) {
        if !seg.payload.is_empty() || seg.flags.fin() {
            self.conn_segment(now, index, seg);
        }
        if self.conn_ref(index).keepalive {
            self.arm_keepalive(now, index);
        }
    }

    /// TCP Fast Open (RFC 7413 §4.2): a SYN with a valid cookie and data creates the connection at once, delivers the
    /// data before the handshake completes and puts the connection in the accept queue. Returns false to fall back
    /// to a normal handshake (the per-listener cap on pending Fast Open connections is reached).
    fn fast_open(&mut self, now: Instant, lid: ListenerId, tuple: FourTuple, seg: &TcpRepr<'_>) -> bool {
        let Some(l) = self.listeners[lid.0 as usize].as_ref() else { return false };
        if l.tfo_pending >= l.accept_limit {
            self.counters.inc(Counter::TCPFastOpenListenOverflow);
            return false;
        }
        let iss = self.isn.isn(tuple.local(), tuple.remote(), now);
        let Ok(index) = self.alloc_conn(now, tuple, iss, State::SynReceived) else { return false };
        self.log_transition(now, tuple, State::Listen, State::SynReceived);
        let (ws, sack, ts, mss) =
            (self.config.tcp_window_scaling, self.config.tcp_sack, self.config.tcp_timestamps != 0, self.config.mss());
        let c = conn!(self, index);
        c.irs = seg.seq;
        c.rcv_nxt = seg.seq + 1;
        c.apply_syn_options(now, seg, mss, (ws, sack, ts), self.config.tcp_min_snd_mss as u16);
        let written = c.recvbuf.write_at(&mut self.pool, 0, seg.payload);
        c.recvbuf.commit(written);
        c.rcv_nxt += written as u32;
        c.rcv_adv = c.rcv_nxt;
        c.listener = Some(lid);
        c.in_accept_queue = true;
        c.tfo_passive = true;
        let id = self.id_of(index);
        let l = self.listeners[lid.0 as usize].as_mut().expect("checked above");
        l.tfo_pending += 1;
        let was_empty = l.accept_queue.is_empty();
        l.accept_queue.push_back(id);
        self.counters.inc(Counter::TCPFastOpenPassive);
        self.counters.inc(Counter::PassiveOpens);
        if was_empty {
            self.events.push_back(Event::Incoming(lid));
        }
        self.mark_dirty(index);
        true
    }

    /// SYN-RECEIVED -> ESTABLISHED for a connection that already exists (Fast Open, or a simultaneous open).
    pub(crate) fn complete_passive_open(&mut self, index: u32) {
        let c = conn!(self, index);
        if !std::mem::take(&mut c.tfo_passive) {
            return;
        }
        if let Some(l) = c.listener.and_then(|lid| self.listeners.get_mut(lid.0 as usize)).and_then(Option::as_mut) {
            l.tfo_pending = l.tfo_pending.saturating_sub(1);
        }
    }

    /// The SYN-ACK of a half-open record: our ISS, our options where the peer offered them.
    fn queue_syn_ack(&mut self, now: Instant, rec: &HalfOpen) {
        let mut options = TcpOptions { mss: Some(self.config.mss()), ..Default::default() };
        if rec.peer_wscale != 0xff {
            options.window_scale = Some(super::engine::window_shift_for(self.config.tcp_rmem[2]));
        }
        options.sack_permitted = rec.sack;
        if rec.ts {
            options.timestamps = Some((ts_clock(now).wrapping_add(rec.ts_offset), rec.ts_recent));
        }
        if rec.send_tfo_cookie {
            options.tfo_cookie = Some(self.tfo_cookie_for(rec.tuple.remote_ip));
        }
        let window = self.config.tcp_rmem[1].min(65535) as u16;
        let flags = TcpFlags::SYN | TcpFlags::ACK;
        self.queue_control(ControlSegment { tuple: rec.tuple, seq: rec.iss, ack: rec.irs + 1, flags, window, options });
    }

    /// Answers a SYN statelessly: the cookie is our ISS; window scale and SACK survive only with timestamps.
    fn send_cookie_syn_ack(&mut self, now: Instant, tuple: FourTuple, seg: &TcpRepr<'_>) {
        let n = Negotiated::from_syn(
            &seg.options,
            self.config.tcp_window_scaling,
            self.config.tcp_sack,
            self.config.tcp_timestamps != 0,
            self.config.tcp_min_snd_mss as u16,
        );
        let (iss, _mss) = self.cookies.generate(now, tuple.local(), tuple.remote(), seg.seq, n.peer_mss);
        let mut options = TcpOptions { mss: Some(self.config.mss()), ..Default::default() };
        if let Some(tsval) = n.ts_recent {
            let encoded = syncookies::encode_timestamp(
                ts_clock(now).wrapping_add(self.isn.ts_offset(tuple.local(), tuple.remote())),
                &CookieOptions { mss: n.peer_mss, window_scale: n.peer_wscale, sack_permitted: n.sack, ecn: false },
            );
            options.timestamps = Some((encoded, tsval));
            if n.peer_wscale.is_some() {
                options.window_scale = Some(super::engine::window_shift_for(self.config.tcp_rmem[2]));
            }
            options.sack_permitted = n.sack;
        }
        let window = self.config.tcp_rmem[1].min(65535) as u16;
        self.last_cookie_sent = Some(now);
        self.counters.inc(Counter::SyncookiesSent);
        let flags = TcpFlags::SYN | TcpFlags::ACK;
        self.queue_control(ControlSegment { tuple, seq: iss, ack: seg.seq + 1, flags, window, options });
    }

    /// The SYN-ACK timer of half-open record `slot` (1-2-4-8-16 s, `tcp_synack_retries`).
    pub(crate) fn on_syn_ack_timer(&mut self, now: Instant, slot: u32, generation: u32) {
        let Some(rec) = self.syn_queue.get_mut(slot) else { return };
        if rec.generation != generation {
            return;
        }
        if rec.retries as u32 >= self.config.tcp_synack_retries {
            self.drop_half_open(now, slot, State::Closed);
            return;
        }
        rec.retries += 1;
        let backoff = SYNACK_TIMEOUT * (1u32 << rec.retries.min(16));
        let entry = TimerEntry { index: slot, generation, kind: TimerKind::SynAck };
        rec.timer = Some(self.timers.insert(now + backoff, entry));
        let rec = rec.clone();
        self.counters.inc(Counter::TCPSynRetrans);
        self.counters.inc(Counter::RetransSegs);
        self.queue_syn_ack(now, &rec);
    }

    fn drop_half_open(&mut self, now: Instant, slot: u32, to: State) {
        if let Some(rec) = self.syn_queue.remove(&mut self.timers, slot) {
            if let Some(l) = self.listeners.get_mut(rec.listener.0 as usize).and_then(Option::as_mut) {
                l.syn_queue_len = l.syn_queue_len.saturating_sub(1);
            }
            self.log_transition(now, rec.tuple, State::SynReceived, to);
        }
    }

    /// Removes every half-open record of a listener that is going away.
    pub(crate) fn drop_half_open_of(&mut self, now: Instant, lid: ListenerId) {
        for slot in self.syn_queue.slots_of(lid) {
            self.drop_half_open(now, slot, State::Closed);
        }
    }

    /// RFC 7413 §4.1.2: the cookie is a MAC of the client's address under a server secret.
    pub(crate) fn tfo_cookie_for(&self, client: Ipv4Addr) -> TfoCookie {
        tfo_cookie_with(&self.tfo_key, client)
    }

    /// A cookie made under the current key or the one before it (so a rotation does not strand recent clients).
    pub(crate) fn tfo_cookie_valid(&self, client: Ipv4Addr, offered: &TfoCookie) -> bool {
        [self.tfo_key, self.tfo_prev_key].iter().any(|k| tfo_cookie_with(k, client).as_slice() == offered.as_slice())
    }

    /// RFC 7413 §4.1.2: "the server SHOULD change the secret regularly": a new key every `TFO_KEY_PERIOD`, the
    /// previous one still accepted for one more period.
    pub(crate) fn rotate_tfo_key(&mut self, now: Instant) {
        if now.saturating_since(self.tfo_key_since) >= TFO_KEY_PERIOD {
            self.tfo_prev_key = self.tfo_key;
            self.tfo_key = super::engine::derive_tfo_key(&self.secret, now.as_micros());
            self.tfo_key_since = now;
        }
    }

    /// RFC 9293 §3.10.7.1: the RST that answers a segment nobody owns. If it carried an ACK, the RST takes its
    /// sequence number from it; otherwise it acknowledges the segment.
    pub(crate) fn send_reset_for(&mut self, tuple: FourTuple, seg: &TcpRepr<'_>) {
        if seg.flags.rst() {
            return;
        }
        let (seq, ack, flags) = if seg.flags.ack() {
            (seg.ack, SeqNum(0), TcpFlags::RST)
        } else {
            (SeqNum(0), seg.seq + seg.segment_len(), TcpFlags::RST | TcpFlags::ACK)
        };
        self.queue_control(ControlSegment::bare(tuple, seq, ack, flags, 0, None));
    }

    /// For tests and `ss`: half-open records in the engine.
    pub fn syn_queue_len(&self) -> usize {
        self.syn_queue.len()
    }
}

/// How long a Fast Open key is the current one (cookies stay valid for up to twice this).
pub(crate) const TFO_KEY_PERIOD: std::time::Duration = std::time::Duration::from_secs(4 * 3600);

fn tfo_cookie_with(key: &[u8; 16], client: Ipv4Addr) -> TfoCookie {
    let mut h = SipHasher24::new_with_key(key);
    h.write(&client.octets());
    let mut cookie = TfoCookie { len: TFO_COOKIE_LEN as u8, ..Default::default() };
    cookie.bytes[..TFO_COOKIE_LEN].copy_from_slice(&h.finish().to_le_bytes());
    cookie
}

#[cfg(test)]
mod tests {
    #[test]
    fn half_open_record_is_compact() {
        let size = std::mem::size_of::<Option<super::HalfOpen>>();
        assert!(size <= 128, "{size}");
    }
}
