//! The send path (Linux's `tcp_output.c`): builds segments straight into the buffers the runtime lends (a UMEM
//! frame), applying the congestion and peer windows, Nagle (RFC 896) and sender SWS avoidance (RFC 9293
//! §3.8.6.2.1), receiver window advertisement (§3.8.6.2.2), and the RFC 7323 / RFC 2018 options.

use std::net::Ipv4Addr;

use super::conn::{Conn, RetransmitMode, TimerKind};
use super::engine::conn;
use super::engine::{ControlSegment, Engine, PacketSink, State};
use super::input::ts_clock;
use super::Counter;
use crate::time::Instant;
use crate::wire::tcp::MAX_SACK_BLOCKS;
use crate::wire::{IpProtocol, Ipv4Repr, SackBlock, SeqNum, TcpFlags, TcpOptions, TcpRepr};

/// The sink had no buffer: stop and keep the remaining work for the next call.
pub(crate) struct NoBuffer;

const IP_HEADER: usize = Ipv4Repr::HEADER_LEN;
const TTL: u8 = 64;

impl Engine {
    /// Writes every segment that is due into the sink, until the sink runs out of buffers.
    pub fn poll_transmit(&mut self, now: Instant, sink: &mut dyn PacketSink) {
        self.now = self.now.max(now);
        while let Some(seg) = self.control.front().copied() {
            let Some(buf) = sink.buffer() else {
                self.counters.inc(Counter::TxNoBuffer);
                return;
            };
            match emit_control(buf, &seg) {
                Some(len) => {
                    sink.commit(len);
                    self.counters.inc(Counter::OutSegs);
                }
                None => self.counters.inc(Counter::TxNoBuffer),
            }
            self.control.pop_front();
        }
        while let Some(&index) = self.dirty.front() {
            let live = self.slots.get(index as usize).and_then(|s| s.conn.as_ref()).is_some_and(|c| !c.finished);
            if live {
                if self.output_conn(now, index, sink).is_err() {
                    self.counters.inc(Counter::TxNoBuffer);
                    return;
                }
                self.conn_mut(index).dirty = false;
            }
            self.dirty.pop_front();
        }
    }

    /// Everything connection `index` has to send now.
    fn output_conn(&mut self, now: Instant, index: u32, sink: &mut dyn PacketSink) -> Result<(), NoBuffer> {
        let c = self.conn_ref(index);
        match c.state {
            State::SynSent | State::SynReceived => {
                if c.snd_nxt == c.iss {
                    self.send_syn(now, index, sink)?;
                } else if c.ack_now {
                    self.send_ack(now, index, sink)?;
                }
                return Ok(());
            }
            State::Closed | State::Listen | State::TimeWait => return Ok(()),
            _ => {}
        }
        if let Some(seq) = conn!(self, index).recovery.probe.take() {
            // RFC 8985 §7.3: the tail loss probe, outside the congestion window.
            let c = self.conn_ref(index);
            // An ACK may have moved SND.UNA past the probe's start since the timer chose it: probe from SND.UNA.
            let seq = if seq.lt(c.snd_una) { c.snd_una } else { seq };
            let new_data = seq == c.snd_max;
            self.send_data_at(now, index, seq, sink, true, u32::MAX)?;
            let c = conn!(self, index);
            if new_data {
                c.snd_nxt = c.snd_max;
            }
        }
        // RFC 6675 recovery sends what NextSeg picks, as much as PRR allows, and nothing else.
        let in_sack_recovery = self.recovery_output(now, index, sink)?;
        let c = self.conn_ref(index);
        if c.retransmit_head && !in_sack_recovery {
            let c = conn!(self, index);
            c.retransmit_head = false;
            let una = c.snd_una;
            let limit = self.hole_limit(index, una);
            // With SACK, retransmit only the hole at SND.UNA, not data the peer reported holding.
            self.send_data_at(now, index, una, sink, true, limit)?;
        }
        loop {
            if in_sack_recovery {
                break;
            }
            let c = self.conn_ref(index);
            let seq = c.snd_nxt;
            // After an RTO rewound SND.NXT, do not resend what the peer reported holding.
            if seq.lt(c.snd_max) && !c.scoreboard.is_empty() {
                if let Some((start, end)) = c.scoreboard.range_from(c.snd_una, seq) {
                    if start.le(seq) && end.gt(seq) {
                        conn!(self, index).snd_nxt = end.min(c.snd_max);
                        continue;
                    }
                }
            }
            let data_end = c.data_end();
            let unsent = if seq.lt(data_end) { data_end - seq } else { 0 };
            let fin_due = c.fin_queued && seq.le(data_end);
            if unsent == 0 && !fin_due {
                break;
            }
            let wnd_end = c.snd_una + c.send_window();
            let room = if wnd_end.gt(seq) { wnd_end - seq } else { 0 };
            let mss = effective_mss(c, self.config.mtu);
            let len = unsent.min(room).min(mss);
            let fin = fin_due && seq + len == data_end;
            if len == 0 && !fin {
                // Zero window with data waiting and nothing in flight to bring an ACK: probe (persist timer).
                if c.snd_wnd == 0 && c.snd_una == c.snd_max && c.timers[TimerKind::Retransmit as usize].is_none() {
                    let at = now + c.rtt.rto();
                    self.conn_mut(index).retransmit_mode = RetransmitMode::Persist;
                    self.set_timer(index, TimerKind::Retransmit, at);
                }
                break;
            }
            if len < mss && !fin && !c.sws_override {
                // Nagle and sender SWS avoidance: a short segment goes only if it empties the queue and nothing is
                // in flight (or TCP_NODELAY), or if it is at least half the largest window the peer offered.
                let in_flight = c.snd_nxt != c.snd_una;
                let empties = len == unsent;
                let half_window = c.max_snd_wnd > 0 && len >= c.max_snd_wnd / 2;
                if !((empties && (c.nodelay || !in_flight)) || half_window) {
                    if !in_flight && c.timers[TimerKind::Retransmit as usize].is_none() {
                        // Held back by a small window with nothing in flight: the persist timer is the override.
                        let at = now + c.rtt.rto();
                        self.conn_mut(index).retransmit_mode = RetransmitMode::Persist;
                        self.set_timer(index, TimerKind::Retransmit, at);
                    }
                    break;
                }
            }
            self.conn_mut(index).sws_override = false;
            let limit = self.hole_limit(index, seq);
            self.send_data_at(now, index, seq, sink, false, limit)?;
        }
        // One duplicate ACK per out-of-order segment received (RFC 5681 §4.2); otherwise one ACK if one is due
        // and no data segment carried it.
        while self.conn_ref(index).dup_acks_owed > 0 {
            self.send_ack(now, index, sink)?;
            let c = conn!(self, index);
            c.dup_acks_owed -= 1;
        }
        let c = self.conn_ref(index);
        if c.ack_now || c.window_update {
            self.send_ack(now, index, sink)?;
        }
        Ok(())
    }

    /// Sends one segment starting at `seq` (new data, or a retransmission when `seq` is below SND.MAX). A FIN rides
    /// along when the segment reaches the end of the queued data.
    fn send_data_at(
        &mut self,
        now: Instant,
        index: u32,
        seq: SeqNum,
        sink: &mut dyn PacketSink,
        head_retransmit: bool,
        limit: u32,
    ) -> Result<(), NoBuffer> {
        let mtu = self.config.mtu;
        let c = self.conn_ref(index);
        let data_end = c.data_end();
        let unsent = if seq.lt(data_end) { data_end - seq } else { 0 };
        let len = if head_retransmit {
            unsent.min(effective_mss(c, mtu))
        } else {
            let wnd_end = c.snd_una + c.send_window();
            let room = if wnd_end.gt(seq) { wnd_end - seq } else { 0 };
            unsent.min(room).min(effective_mss(c, mtu))
        }
        .min(limit);
        let fin = c.fin_queued && seq.le(data_end) && seq + len == data_end;
        if len == 0 && !fin {
            return Ok(());
        }
        let mut flags = TcpFlags::ACK;
        if fin {
            flags |= TcpFlags::FIN;
        }
        if len > 0 && len == unsent {
            flags |= TcpFlags::PSH;
        }
        let offset = (seq - c.snd_buf_seq) as usize;
        self.emit(now, index, sink, seq, flags, offset, len as usize)?;

        let retransmission = seq.lt(self.conn_ref(index).snd_max);
        if retransmission {
            self.counters.inc(Counter::RetransSegs);
            if head_retransmit {
                self.counters.inc(Counter::TCPFastRetrans);
            }
        } else if len > 0 {
            self.counters.inc(Counter::TCPOrigDataSent);
        }
        let c = conn!(self, index);
        if retransmission {
            c.total_retransmits += 1;
            // Karn: a retransmission makes the timed segment's sample ambiguous.
            c.rtt_seq = None;
        } else if c.rtt_seq.is_none() && len > 0 {
            c.rtt_seq = Some((seq, now));
        }
        let end = seq + len + fin as u32;
        if !head_retransmit {
            c.snd_nxt = end;
        }
        if end.gt(c.snd_max) {
            c.snd_max = end;
        }
        if len > 0 {
            c.last_tx_data = now;
        }
        if (c.timers[TimerKind::Retransmit as usize].is_none() || c.retransmit_mode == RetransmitMode::Persist)
            && !self.arm_tlp(now, index)
        {
            // RFC 6298 §5.1: start the timer when sending data if it is not running (RFC 8985 §7.2: or the probe
            // timer, when a tail loss probe applies).
            let c = conn!(self, index);
            c.retransmit_mode = RetransmitMode::Rto;
            let at = now + c.rtt.rto();
            self.set_timer(index, TimerKind::Retransmit, at);
        }
        if fin {
            match self.conn_ref(index).state {
                State::Established => self.set_state(now, index, State::FinWait1),
                State::CloseWait => self.set_state(now, index, State::LastAck),
                _ => {}
            }
        }
        Ok(())
    }

    /// A retransmission (or, at SND.MAX, new data) chosen by loss recovery: at most `limit` bytes and one MSS,
    /// outside the congestion window (PRR accounts for it); SND.NXT is the caller's business.
    pub(crate) fn send_data_at_for_recovery(
        &mut self,
        now: Instant,
        index: u32,
        seq: SeqNum,
        sink: &mut dyn PacketSink,
        limit: u32,
    ) -> Result<(), NoBuffer> {
        self.send_data_at(now, index, seq, sink, true, limit)
    }

    /// How far a segment starting at `seq` may reach before running into data the peer already holds (SACKed).
    fn hole_limit(&self, index: u32, seq: SeqNum) -> u32 {
        let c = self.conn_ref(index);
        if seq.ge(c.snd_max) || c.scoreboard.is_empty() {
            return u32::MAX;
        }
        match c.scoreboard.range_from(c.snd_una, seq) {
            Some((start, _)) if start.gt(seq) => start - seq,
            _ => u32::MAX,
        }
    }

    /// SYN (active open) or SYN-ACK (passive or simultaneous open), with our options.
    fn send_syn(&mut self, now: Instant, index: u32, sink: &mut dyn PacketSink) -> Result<(), NoBuffer> {
        let c = self.conn_ref(index);
        let iss = c.iss;
        let flags = if c.state == State::SynSent { TcpFlags::SYN } else { TcpFlags::SYN | TcpFlags::ACK };
        let retransmission = c.snd_max.gt(iss);
        if retransmission && c.tfo_syn != 0 {
            // RFC 7413 §4.1.3: a SYN with data or a cookie request may be dropped by middleboxes: retry plainly.
            self.counters.inc(Counter::TCPFastOpenActiveFail);
            conn!(self, index).tfo_syn = 0;
        }
        let c = self.conn_ref(index);
        let mtu = self.config.mtu;
        let syn_data = if c.tfo_syn == 2 && c.state == State::SynSent {
            // Conservative until the peer's MSS is known: the default 536 (RFC 9293 §3.7.1) less options.
            (c.sendbuf.len() as u32).min(536u32.min(mtu - 40) - 40) as usize
        } else {
            0
        };
        self.emit(now, index, sink, iss, flags, 0, syn_data)?;
        if retransmission {
            self.counters.inc(Counter::RetransSegs);
            self.counters.inc(Counter::TCPSynRetrans);
        }
        let c = conn!(self, index);
        if retransmission {
            c.total_retransmits += 1;
        } else {
            c.rtt_seq = Some((iss, now));
        }
        c.snd_nxt = iss + 1 + syn_data as u32;
        if c.snd_max.lt(c.snd_nxt) {
            c.snd_max = c.snd_nxt;
        }
        if c.timers[TimerKind::Retransmit as usize].is_none() {
            c.retransmit_mode = RetransmitMode::Rto;
            let at = now + c.rtt.rto();
            self.set_timer(index, TimerKind::Retransmit, at);
        }
        Ok(())
    }

    fn send_ack(&mut self, now: Instant, index: u32, sink: &mut dyn PacketSink) -> Result<(), NoBuffer> {
        // SND.MAX, not a rewound SND.NXT: after an RTO the peer may already hold everything up to SND.MAX, and an
        // ACK below its RCV.NXT would be unacceptable there and its acknowledgment lost.
        let seq = self.conn_ref(index).snd_max;
        self.emit(now, index, sink, seq, TcpFlags::ACK, 0, 0)
    }

    /// Builds one segment of connection `index` into a buffer from the sink: IPv4 header, TCP header and options,
    /// `len` payload bytes copied from the send buffer at `offset`, checksums. Everything we send carries our
    /// current ACK and window, so it also settles any pending (delayed) ACK.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        now: Instant,
        index: u32,
        sink: &mut dyn PacketSink,
        seq: SeqNum,
        flags: u8,
        offset: usize,
        len: usize,
    ) -> Result<(), NoBuffer> {
        let syn = flags & TcpFlags::SYN != 0;
        let (ws_cfg, sack_cfg, ts_cfg, our_mss) =
            (self.config.tcp_window_scaling, self.config.tcp_sack, self.config.tcp_timestamps != 0, self.config.mss());
        let c = self.conn_ref(index);
        let window = advertised_window(c, syn);
        let mut options = TcpOptions::default();
        if syn {
            let active = c.state == State::SynSent;
            options.mss = Some(our_mss);
            // In a SYN-ACK we may only offer what the peer offered (RFC 7323 §1.3, RFC 2018 §2).
            if (active && ws_cfg) || (!active && c.wscale_ok) {
                options.window_scale = Some(c.rcv_wscale);
            }
            options.sack_permitted = if active { sack_cfg } else { c.sack_ok };
            if (active && ts_cfg) || (!active && c.ts_enabled) {
                let ecr = if active { 0 } else { c.ts_recent };
                options.timestamps = Some((ts_clock(now).wrapping_add(c.ts_offset), ecr));
            }
            match (active, c.tfo_syn) {
                (true, 1) => options.tfo_cookie = Some(Default::default()),
                (true, 2) => options.tfo_cookie = self.tfo_cache.get(&c.tuple.remote_ip).copied(),
                _ => {}
            }
        } else {
            if c.ts_enabled {
                options.timestamps = Some((ts_clock(now).wrapping_add(c.ts_offset), c.ts_recent));
            }
            if c.sack_ok && !c.assembler.is_empty() {
                let mut blocks = [SackBlock::default(); MAX_SACK_BLOCKS];
                let room = sack_room(c);
                let n = c.assembler.sack_blocks(&mut blocks[..room]);
                options.sack[..n].copy_from_slice(&blocks[..n]);
                options.sack_count = n as u8;
            }
        }
        let ack = if flags & TcpFlags::ACK != 0 { c.rcv_nxt } else { SeqNum(0) };
        let repr = TcpRepr {
            src_port: c.tuple.local_port,
            dst_port: c.tuple.remote_port,
            seq,
            ack,
            flags: TcpFlags(flags),
            window: window.field,
            urgent: 0,
            options,
            payload: &[],
        };
        let tcp_header = repr.header_len();
        let total = IP_HEADER + tcp_header + len;
        let Some(buf) = sink.buffer() else { return Err(NoBuffer) };
        if buf.len() < total {
            return Err(NoBuffer);
        }
        let copied = c.sendbuf.copy_out(offset, &mut buf[IP_HEADER + tcp_header..total]);
        debug_assert_eq!(copied, len);
        let (src, dst) = (c.tuple.local_ip, c.tuple.remote_ip);
        if repr.emit(&mut buf[IP_HEADER..total], len, src, dst).is_err() {
            return Err(NoBuffer);
        }
        let ip = ip_repr(src, dst, tcp_header + len);
        if ip.emit(&mut buf[..IP_HEADER]).is_err() {
            return Err(NoBuffer);
        }
        sink.commit(total);
        self.counters.inc(Counter::OutSegs);

        let c = conn!(self, index);
        if flags & TcpFlags::ACK != 0 {
            let was_zero = c.zero_window_advertised;
            c.rcv_adv = c.rcv_nxt + window.bytes;
            c.zero_window_advertised = window.bytes == 0;
            if window.bytes == 0 && !was_zero {
                self.counters.inc(Counter::TCPToZeroWindowAdv);
            } else if window.bytes > 0 && was_zero {
                self.counters.inc(Counter::TCPFromZeroWindowAdv);
            }
            let c = conn!(self, index);
            c.ack_now = false;
            c.window_update = false;
            c.unacked_bytes = 0;
            self.cancel_timer(index, TimerKind::DelayedAck);
        }
        Ok(())
    }
}

/// What we advertise: the window field and the bytes it stands for.
struct Window {
    field: u16,
    bytes: u32,
}

/// The receive window from free buffer space (RFC 9293 §3.8.6.2.2): never shrinks the right edge already
/// advertised, and does not open a small window a little at a time (receiver SWS avoidance).
fn advertised_window(c: &Conn, syn: bool) -> Window {
    let free = c.recvbuf.free() as u32;
    if syn {
        // RFC 7323 §2.2: the window in a SYN or SYN-ACK is never scaled.
        let w = free.min(65535);
        return Window { field: w as u16, bytes: w };
    }
    let scale = c.rcv_wscale as u32;
    let max = 65535u32 << scale;
    let mut bytes = free.min(max) >> scale << scale;
    let current = if c.rcv_adv.gt(c.rcv_nxt) { c.rcv_adv - c.rcv_nxt } else { 0 };
    let threshold = (c.recvbuf.capacity() as u32 / 2).min(c.smss as u32);
    if bytes < current || bytes < threshold {
        // Keep the edge already promised (never shrink the window), rounded down to what the scaled field can say:
        // RFC 7323 §2.4 lets the edge recede by less than 2^S for that. Never promise more than the buffer holds.
        bytes = bytes.max(current >> scale << scale);
    }
    Window { field: (bytes >> scale).min(65535) as u16, bytes }
}

/// Payload a segment keeps when SACK blocks ride along: blocks are dropped (oldest last) rather than shrink the
/// payload below this, so a receiver announcing a tiny MSS cannot multiply our packet rate with SACK (review L11).
const MIN_PAYLOAD_WITH_SACK: u32 = 64;

/// SACK blocks a segment of ours may carry: what the option space allows (3 with timestamps, 4 without), fewer
/// when they would push the payload under `MIN_PAYLOAD_WITH_SACK` (or under the MSS itself when that is smaller).
fn sack_room(c: &Conn) -> usize {
    let base = c.smss as u32;
    let floor = base.min(MIN_PAYLOAD_WITH_SACK);
    let mut room = if c.ts_enabled { 3 } else { 4 };
    while room > 0 && base.saturating_sub(4 + 8 * room as u32) < floor {
        room -= 1;
    }
    room
}

/// Largest payload for a data segment: the sender MSS, minus SACK option bytes when they ride along.
fn effective_mss(c: &Conn, mtu: u32) -> u32 {
    let mut options = if c.ts_enabled { 12 } else { 0 };
    if c.sack_ok && !c.assembler.is_empty() {
        let blocks = c.assembler.range_count().min(sack_room(c));
        if blocks > 0 {
            options += 4 + 8 * blocks as u32;
        }
    }
    let by_mtu = mtu.saturating_sub(40 + options);
    (c.smss as u32 + if c.ts_enabled { 12 } else { 0 }).saturating_sub(options).min(by_mtu).max(1)
}

fn ip_repr(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> Ipv4Repr {
    Ipv4Repr { src, dst, protocol: IpProtocol::Tcp, payload_len, ttl: TTL, tos: 0, ident: 0, dont_fragment: true }
}

/// A connectionless reply (RST, TIME_WAIT ACK, probes): returns its length, or None if the buffer is too small.
fn emit_control(buf: &mut [u8], seg: &ControlSegment) -> Option<usize> {
    let options = seg.options;
    let repr = TcpRepr {
        src_port: seg.tuple.local_port,
        dst_port: seg.tuple.remote_port,
        seq: seg.seq,
        ack: seg.ack,
        flags: TcpFlags(seg.flags),
        window: seg.window,
        urgent: 0,
        options,
        payload: &[],
    };
    let total = IP_HEADER + repr.header_len();
    if buf.len() < total {
        return None;
    }
    repr.emit(&mut buf[IP_HEADER..total], 0, seg.tuple.local_ip, seg.tuple.remote_ip).ok()?;
    ip_repr(seg.tuple.local_ip, seg.tuple.remote_ip, total - IP_HEADER).emit(&mut buf[..IP_HEADER]).ok()?;
    Some(total)
}
