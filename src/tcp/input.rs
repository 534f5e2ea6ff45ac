//! The receive path (Linux's `tcp_input.c`): RFC 9293 §3.10.7 "SEGMENT ARRIVES", with RFC 5961 challenge ACKs,
//! RFC 7323 PAWS, RFC 6582 NewReno recovery, RFC 1337 TIME_WAIT protection.

use std::time::Duration;

use super::congestion::CongestionControl;
use super::conn::{FourTuple, RetransmitMode, TimerKind};
use super::engine::conn;
use super::engine::{CloseReason, ControlSegment, Engine, Event, State};
use super::Counter;
use crate::time::Instant;
use crate::wire::{IpProtocol, Ipv4Repr, SeqNum, TcpFlags, TcpRepr, WireError};

/// PAWS does not apply to a TS.Recent older than this (RFC 7323 §5.5: 24 days).
const PAWS_IDLE_LIMIT: Duration = Duration::from_secs(24 * 24 * 3600);
/// Duplicate ACKs sent for one receive batch at most (more out-of-order segments in one batch add nothing).
const MAX_DUP_ACKS_OWED: u8 = 8;
/// Data segments at least this long (RFC 9293's default MSS) count as full-sized for the receiver's RTT sample: a
/// small segment may have waited behind the application (Linux uses its estimate of the peer's MSS).
const MIN_FULL_SEGMENT: usize = 536;
/// SACKed ranges a sender remembers per connection.
const MAX_SCOREBOARD_RANGES: usize = 64;
/// Fast Open cookies remembered per engine (one per server address).
const MAX_TFO_CACHE: usize = 4096;

impl Engine {
    /// One received IPv4 packet (header and TCP segment). Anything not TCP is counted and ignored.
    pub fn handle_ipv4(&mut self, now: Instant, packet: &[u8]) {
        self.now = self.now.max(now);
        self.counters.inc(Counter::InReceives);
        let verify = self.config.verify_checksums;
        let (ip, payload) = match Ipv4Repr::parse(packet, verify) {
            Ok(x) => x,
            Err(WireError::Unsupported) => {
                // Fragments and other versions: we never fragment (DF + MSS), so we do not reassemble either.
                self.counters.inc(Counter::ReasmReqds);
                self.counters.inc(Counter::InDiscards);
                return;
            }
            Err(_) => {
                self.counters.inc(Counter::InHdrErrors);
                return;
            }
        };
        if ip.protocol != IpProtocol::Tcp {
            self.counters.inc(Counter::InUnknownProtos);
            return;
        }
        if ip.src.is_broadcast() || ip.src.is_multicast() || ip.dst.is_broadcast() || ip.dst.is_multicast() {
            // RFC 9293 §3.10.7.1 / RFC 1122: TCP never answers broadcast or multicast.
            self.counters.inc(Counter::InAddrErrors);
            return;
        }
        self.counters.inc(Counter::InDelivers);
        let seg = match TcpRepr::parse(payload, ip.src, ip.dst, verify) {
            Ok(s) => s,
            Err(WireError::Checksum) => {
                self.counters.inc(Counter::InCsumErrors);
                self.counters.inc(Counter::InErrs);
                return;
            }
            Err(_) => {
                self.counters.inc(Counter::InErrs);
                return;
            }
        };
        self.counters.inc(Counter::InSegs);
        if seg.src_port == 0 || seg.dst_port == 0 {
            self.counters.inc(Counter::InErrs);
            return;
        }
        let tuple =
            FourTuple { local_ip: ip.dst, remote_ip: ip.src, local_port: seg.dst_port, remote_port: seg.src_port };
        if let Some(&index) = self.table.get(&tuple) {
            self.conn_segment(now, index, &seg);
        } else if let Some(slot) = self.syn_queue.find(&tuple) {
            self.half_open_input(now, slot, &seg);
        } else if self.timewait.get(&tuple).is_some() {
            self.timewait_input(now, tuple, &seg);
        } else if let Some(lid) = self.find_listener(&tuple) {
            self.listen_input(now, lid, tuple, &seg);
        } else {
            // RFC 9293 §3.10.7.1: CLOSED. Answer everything but a RST with a RST.
            self.send_reset_for(tuple, &seg);
        }
    }

    pub(crate) fn conn_segment(&mut self, now: Instant, index: u32, seg: &TcpRepr<'_>) {
        if self.conn_ref(index).state == State::SynSent {
            self.syn_sent_input(now, index, seg);
        } else {
            self.synchronized_input(now, index, seg);
        }
    }

    /// RFC 9293 §3.10.7.3.
    fn syn_sent_input(&mut self, now: Instant, index: u32, seg: &TcpRepr<'_>) {
        let c = conn!(self, index);
        let tuple = c.tuple;
        let mut ack_ok = false;
        if seg.flags.ack() {
            if seg.ack.le(c.iss) || seg.ack.gt(c.snd_max) {
                self.send_reset_for(tuple, seg);
                return;
            }
            ack_ok = true;
        }
        if seg.flags.rst() {
            // RFC 5961 §3.2: in SYN-SENT a RST is believed only if it acknowledges our SYN.
            if ack_ok {
                self.counters.inc(Counter::AttemptFails);
                self.finish(now, index, CloseReason::Refused, false);
            }
            return;
        }
        if !seg.flags.syn() {
            return;
        }
        let (ws, sack, ts, mss) =
            (self.config.tcp_window_scaling, self.config.tcp_sack, self.config.tcp_timestamps != 0, self.config.mss());
        let c = conn!(self, index);
        c.irs = seg.seq;
        c.rcv_nxt = seg.seq + 1;
        c.rcv_adv = c.rcv_nxt;
        c.last_rx = now;
        c.apply_syn_options(now, seg, mss, (ws, sack, ts), self.config.tcp_min_snd_mss as u16);
        if let Some(cookie) = seg.options.tfo_cookie.filter(|k| k.len > 0) {
            if self.tfo_cache.len() >= MAX_TFO_CACHE {
                self.tfo_cache.clear();
            }
            self.tfo_cache.insert(tuple.remote_ip, cookie);
        }
        let c = conn!(self, index);
        if ack_ok {
            c.snd_una = seg.ack;
            if c.tfo_syn == 2 {
                // Data in our SYN: the SYN-ACK says how much of it the server took (RFC 7413 §4.1.3).
                let taken = seg.ack - c.snd_buf_seq;
                c.sendbuf.consume(&mut self.pool, taken as usize);
                c.snd_buf_seq = seg.ack;
                let counter = if taken > 0 { Counter::TCPFastOpenActive } else { Counter::TCPFastOpenActiveFail };
                self.counters.inc(counter);
            }
            let c = conn!(self, index);
            // Anything past the ACK (SYN data the server ignored) is sent again after the handshake.
            c.snd_nxt = seg.ack;
            // RTT of the handshake: timed if the SYN went once (Karn), else from the echo of the SYN's timestamp,
            // which names the transmission answered (RFC 7323 §4.1). Without either, RFC 6298 §5.7: 3 s.
            let timed = c.rtt_seq.take().filter(|_| c.retransmits == 0).map(|(_, sent)| now.saturating_since(sent));
            let echo = c.ts_enabled.then(|| ts_echo_rtt(now, c.ts_offset, seg.options.timestamps)).flatten();
            if let Some(rtt) = timed.or(echo) {
                c.rtt.sample(rtt);
            } else if c.retransmits > 0 {
                c.rtt.fallback_after_syn_timeout();
            }
            c.retransmits = 0;
            c.rtt.reset_backoff();
            c.ack_now = true;
            c.quickack = 16;
            c.snd_wl1 = seg.seq;
            c.snd_wl2 = seg.ack;
            let id = self.id_of(index);
            self.cancel_timer(index, TimerKind::Retransmit);
            self.set_state(now, index, State::Established);
            self.events.push_back(Event::Connected(id));
            if self.conn_ref(index).keepalive {
                self.arm_keepalive(now, index);
            }
        } else {
            // Simultaneous open (RFC 9293 §3.5, figure 8): answer with SYN,ACK from our original ISS.
            c.snd_nxt = c.iss;
            self.cancel_timer(index, TimerKind::Retransmit);
            self.set_state(now, index, State::SynReceived);
        }
        self.mark_dirty(index);
    }

    /// RFC 9293 §3.10.7.4: SYN-RECEIVED and every synchronized state.
    fn synchronized_input(&mut self, now: Instant, index: u32, seg: &TcpRepr<'_>) {
        let c = conn!(self, index);
        let flags = seg.flags;

        // A retransmitted SYN for a half-open connection: send the SYN-ACK again, create nothing new.
        if c.state == State::SynReceived && flags.syn() && !flags.ack() && seg.seq == c.irs {
            c.snd_nxt = c.iss;
            self.mark_dirty(index);
            return;
        }

        // RFC 7323 §5.3 PAWS: an old timestamp marks an old duplicate.
        if c.ts_enabled && !flags.rst() {
            if let Some((tsval, _)) = seg.options.timestamps {
                let behind = c.ts_recent.wrapping_sub(tsval) as i32;
                // Linux's tcp_disordered_ack: a pure duplicate ACK that lost a race with newer segments is not an
                // old duplicate; dropping it would starve fast retransmit on reordering paths.
                let disordered_ack = seg.payload.is_empty()
                    && !flags.syn()
                    && !flags.fin()
                    && flags.ack()
                    && seg.seq == c.rcv_nxt
                    && seg.ack == c.snd_una
                    && (seg.window as u32) << c.snd_wscale == c.snd_wnd
                    && (behind as i64) <= c.rtt.rto().as_millis() as i64;
                if behind > 0 && !disordered_ack && now.saturating_since(c.ts_recent_at) < PAWS_IDLE_LIMIT {
                    self.counters.inc(Counter::PAWSEstab);
                    self.oow_ack(now, index, seg, Counter::TCPACKSkippedPAWS);
                    return;
                }
            }
        }

        // Step 1: sequence acceptability.
        let seg_len = seg.segment_len();
        let rcv_wnd = if c.rcv_adv.gt(c.rcv_nxt) { c.rcv_adv - c.rcv_nxt } else { 0 };
        let in_window = |s: SeqNum| c.rcv_nxt.le(s) && s.lt(c.rcv_nxt + rcv_wnd);
        let acceptable = match (seg_len, rcv_wnd) {
            (0, 0) => seg.seq == c.rcv_nxt,
            (0, _) => in_window(seg.seq),
            (_, 0) => false,
            (_, _) => in_window(seg.seq) || in_window(seg.seq + (seg_len - 1)),
        };
        // With a zero window nothing is acceptable, but valid ACKs and RSTs must still be processed (§3.10.7.4).
        let zero_window_edge = rcv_wnd == 0 && seg.seq == c.rcv_nxt;
        if !acceptable && !zero_window_edge {
            if !flags.rst() {
                if seg_len > 0 && seg.seq.lt(c.rcv_nxt) {
                    self.counters.inc(Counter::TCPDSACKOldSent);
                }
                self.oow_ack(now, index, seg, Counter::TCPACKSkippedSeq);
            }
            return;
        }
        c.last_rx = now;
        c.keepalive_probes = 0;

        // Step 2: RST (RFC 5961 §3.2: only an exact match resets; in-window draws a challenge ACK).
        if flags.rst() {
            if seg.seq == c.rcv_nxt {
                self.on_reset(now, index);
            } else {
                self.send_challenge_ack(now, index);
            }
            return;
        }

        // Step 4: SYN in a synchronized state (RFC 5961 §4.2): challenge ACK, never a reset.
        if flags.syn() {
            self.counters.inc(Counter::TCPSYNChallenge);
            self.send_challenge_ack(now, index);
            return;
        }

        // Step 5: ACK.
        if !flags.ack() {
            return;
        }
        if self.conn_ref(index).state == State::SynReceived {
            let c = self.conn_ref(index);
            if !(c.snd_una.lt(seg.ack) && seg.ack.le(c.snd_max)) {
                let tuple = c.tuple;
                self.send_reset_for(tuple, seg);
                return;
            }
            self.complete_passive_open(index);
            let c = conn!(self, index);
            c.snd_wnd = (seg.window as u32) << c.snd_wscale;
            c.max_snd_wnd = c.max_snd_wnd.max(c.snd_wnd);
            c.snd_wl1 = seg.seq;
            c.snd_wl2 = seg.ack;
            c.quickack = 16;
            let app_owned = c.app_owned;
            self.set_state(now, index, State::Established);
            if app_owned {
                // Simultaneous open completes the application's connect().
                let id = self.id_of(index);
                self.events.push_back(Event::Connected(id));
            }
        }
        if !self.process_ack(now, index, seg) {
            return;
        }
        // RFC 7323 §4.3: remember the timestamp of a segment that covers the left window edge, and only once its ACK
        // was accepted (as Linux's FLAG_UPDATE_TS_RECENT), so a forged segment with a bad ACK cannot poison PAWS
        // (review M1).
        if let Some((tsval, _)) = seg.options.timestamps {
            let c = conn!(self, index);
            if c.ts_enabled && seg.seq.le(c.rcv_nxt) && (tsval.wrapping_sub(c.ts_recent) as i32) >= 0 {
                c.ts_recent = tsval;
                c.ts_recent_at = now;
            }
        }

        // Step 7: segment text.
        if !seg.payload.is_empty() && !self.process_text(now, index, seg) {
            return;
        }

        // Step 8: FIN.
        if flags.fin() {
            let fin_seq = seg.seq + seg.payload.len() as u32;
            let c = conn!(self, index);
            if fin_seq == c.rcv_nxt {
                self.accept_fin(now, index);
            } else if fin_seq.gt(c.rcv_nxt) {
                c.ooo_fin = Some(fin_seq);
                c.ack_now = true;
                self.mark_dirty(index);
            }
        }
    }

    /// The ACK field (RFC 9293 §3.10.7.4 step 5, RFC 5961 §5.2, RFC 5681, RFC 6582). Returns false when the
    /// segment must be dropped.
    fn process_ack(&mut self, now: Instant, index: u32, seg: &TcpRepr<'_>) -> bool {
        let c = conn!(self, index);
        let ack = seg.ack;
        // RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT] (SND.MAX here, after an RTO rewind),
        // the range capped by the bytes acknowledged so far, as Linux (review M2).
        let lower = c.snd_una + 0u32.wrapping_sub(c.old_ack_range());
        if ack.gt(c.snd_max) || ack.lt(lower) {
            self.send_challenge_ack(now, index);
            return false;
        }
        let window = (seg.window as u32) << c.snd_wscale;
        let mut wake_output = false;
        let una_before = c.snd_una;
        if c.sack_ok && seg.options.sack_count > 0 {
            // RFC 2018: remember what the peer holds above SND.UNA; D-SACK and stale blocks (at or below the
            // cumulative ACK, or beyond anything sent) are ignored.
            let una = if ack.gt(c.snd_una) { ack } else { c.snd_una };
            // Ranges are kept relative to SND.UNA: drop what this ACK covers before adding new blocks.
            if una.gt(c.snd_una) && !c.scoreboard.is_empty() {
                c.scoreboard.advance(una);
            }
            for b in seg.options.sack_blocks() {
                if b.left.gt(una) && b.left.lt(b.right) && b.right.le(c.snd_max) {
                    let _ = c.scoreboard.insert(una, b.left, b.right, MAX_SCOREBOARD_RANGES);
                }
            }
        }
        if ack.gt(c.snd_una) {
            self.on_new_ack(now, index, ack, seg.options.timestamps);
            wake_output = true;
        } else if ack == c.snd_una
            && seg.payload.is_empty()
            && !seg.flags.syn()
            && !seg.flags.fin()
            && c.snd_max.gt(c.snd_una)
            && window == c.snd_wnd
        {
            // RFC 5681 §2 duplicate ACK.
            wake_output = self.on_dup_ack(now, index);
        } else if seg.payload.is_empty() {
            self.counters.inc(Counter::TCPPureAcks);
        }
        // RFC 6675 / RFC 6937: SACK-based loss detection and how much the ACK lets out during recovery.
        if self.recovery_on_ack(now, index, una_before) {
            wake_output = true;
        }
        // Window update (§3.10.7.4 step 5): only from a segment newer than the last one that updated it.
        let c = conn!(self, index);
        if c.snd_wl1.lt(seg.seq) || (c.snd_wl1 == seg.seq && c.snd_wl2.le(ack)) {
            let opened = c.snd_wnd == 0 && window > 0;
            c.snd_wnd = window;
            c.max_snd_wnd = c.max_snd_wnd.max(window);
            c.snd_wl1 = seg.seq;
            c.snd_wl2 = ack;
            if opened {
                if c.retransmit_mode == RetransmitMode::Persist {
                    c.retransmit_mode = RetransmitMode::Rto;
                    c.retransmits = 0;
                    c.rtt.reset_backoff();
                    self.cancel_timer(index, TimerKind::Retransmit);
                }
                wake_output = true;
            }
        }
        if wake_output {
            self.mark_dirty(index);
        }
        // The ACK may have completed our close.
        let c = self.conn_ref(index);
        if c.fin_acked() {
            match c.state {
                State::FinWait1 => {
                    self.set_state(now, index, State::FinWait2);
                    if !self.conn_ref(index).app_owned {
                        self.arm_fin_wait2_timer(now, index);
                    }
                }
                State::Closing => {
                    self.enter_time_wait(now, index);
                    return false;
                }
                State::LastAck => {
                    self.finish(now, index, CloseReason::Normal, false);
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    /// SND.UNA < SEG.ACK <= SND.MAX: new data (or our SYN/FIN) acknowledged.
    fn on_new_ack(&mut self, now: Instant, index: u32, ack: SeqNum, timestamps: Option<(u32, u32)>) {
        let c = conn!(self, index);
        let acked = ack - c.snd_una;
        let data_end = c.data_end();
        if ack.gt(c.snd_buf_seq) {
            let data_acked = ack.min(data_end) - c.snd_buf_seq;
            c.sendbuf.consume(&mut self.pool, data_acked as usize);
            c.snd_buf_seq += data_acked;
        }
        let flight_before = c.snd_max - c.snd_una;
        c.snd_una = ack;
        if (ack - c.iss) >= 1 << 30 {
            c.acked_far = true;
        }
        if !c.scoreboard.is_empty() {
            c.scoreboard.advance(ack);
        }
        if c.snd_nxt.lt(ack) {
            c.snd_nxt = ack;
        }
        // Karn's algorithm: only a segment sent once gives an RTT sample (RFC 6298 §3); an ACK of new data ends the
        // backoff (RFC 6298 §5.7 leaves it backed off until then; Linux resets it on forward progress). A path slower
        // than the initial RTO gets its first sample in the handshake (the SYN's timestamp echo, or the 3 s
        // fallback of §5.7), so data starts with an RTO above its RTT. Taking echoes after a retransmission as
        // samples instead inflated the RTO under heavy loss (RFC 7323 §4.3 makes them echo the older segment).
        let mut rtt = None;
        if let Some((seq, sent)) = c.rtt_seq {
            if ack.gt(seq) {
                let sample = now.saturating_since(sent);
                c.rtt.sample(sample);
                rtt = Some(sample);
                c.rtt_seq = None;
            }
        }
        c.rtt.reset_backoff();
        c.retransmits = 0;
        c.limited_transmit = 0;
        // RFC 9406 rounds: an ACK beyond the end of the last round starts the next one.
        if ack.ge(c.recovery.round_end) {
            c.recovery.round_end = c.snd_max;
            c.cc.on_round_start();
        }
        if c.in_recovery {
            if ack.ge(c.recover) {
                // RFC 6582 §3.2 step 6 / RFC 6675 §5: full acknowledgment ends recovery.
                c.in_recovery = false;
                c.dupacks = 0;
                c.recovery.sack_mode = false;
                c.recovery.sndcnt = 0;
                let flight = c.snd_max - c.snd_una;
                c.cc.on_exit_recovery(flight);
            } else if c.recovery.sack_mode {
                // RFC 6675: a partial ACK only moves the scoreboard; NextSeg and PRR decide what goes out.
            } else {
                // Step 5: partial acknowledgment: retransmit the next hole, deflate the window.
                c.cc.on_partial_ack(acked);
                c.retransmit_head = true;
            }
        } else {
            c.dupacks = 0;
            // Every timestamp echo is an RTT sample for the congestion algorithm (HyStart++ wants several per
            // round), while the RTO estimator above keeps Karn's rule.
            let ts_rtt = if c.ts_enabled { ts_echo_rtt(now, c.ts_offset, timestamps) } else { None };
            c.cc.on_ack(now, acked.min(flight_before), ts_rtt.or(rtt));
        }
        self.counters.add(Counter::TCPDelivered, 1);
        // RFC 6298 §5.2/5.3: stop the timer when everything is acknowledged, restart it otherwise.
        let c = self.conn_ref(index);
        if c.snd_una == c.snd_max {
            if c.retransmit_mode != RetransmitMode::Persist {
                self.cancel_timer(index, TimerKind::Retransmit);
            }
        } else if !self.arm_tlp(now, index) {
            let at = now + self.conn_ref(index).rtt.rto();
            self.conn_mut(index).retransmit_mode = RetransmitMode::Rto;
            self.set_timer(index, TimerKind::Retransmit, at);
        }
        let c = conn!(self, index);
        // Linux's tcp_sndbuf_expand: a writer held back by its buffer gets room for two congestion windows.
        if c.want_writable && self.config.tcp_moderate_rcvbuf {
            let max = self.config.tcp_wmem[2] as usize;
            if let Some(grown) = super::autotune::send_buffer_target(c.cc.cwnd(), c.smss, c.sendbuf.capacity(), max) {
                c.sendbuf.set_capacity(grown);
            }
        }
        if c.want_writable && c.app_owned && c.sendbuf.free() >= c.sendbuf.capacity() / 3 && !c.fin_queued {
            c.want_writable = false;
            let id = self.id_of(index);
            self.events.push_back(Event::Writable(id));
        }
    }

    /// Returns true if output should run (a retransmission or inflated window).
    fn on_dup_ack(&mut self, now: Instant, index: u32) -> bool {
        let sack_recovery = self.sack_recovery(index);
        let c = conn!(self, index);
        c.dupacks = c.dupacks.saturating_add(1);
        if sack_recovery && (c.in_recovery || c.dupacks >= 3) {
            // RFC 6675: recovery_on_ack starts and runs recovery from the scoreboard (and DupAcks).
            return false;
        }
        if c.in_recovery {
            // RFC 6582 §3.2 step 4: each further duplicate inflates the window by one segment; with SACK it also
            // releases the retransmission of the next hole.
            c.cc.on_dup_ack_in_recovery();
            return true;
        }
        if c.dupacks < 3 {
            // RFC 3042: each of the first two duplicates lets one new segment out, keeping the ACK clock going.
            c.limited_transmit = c.dupacks;
            return true;
        }
        // RFC 6582 §3.2 step 2: the third duplicate starts recovery unless it belongs to an earlier episode.
        if c.dupacks == 3 && (c.snd_una - 1u32).ge(c.recover) {
            let flight = c.snd_max - c.snd_una;
            c.in_recovery = true;
            c.limited_transmit = 0;
            c.recover = c.snd_max;
            c.cc.on_enter_recovery(now, flight);
            c.retransmit_head = true;
            c.rtt_seq = None;
            let counter = if c.sack_ok { Counter::TCPSackRecovery } else { Counter::TCPRenoRecovery };
            self.counters.inc(counter);
            return true;
        }
        false
    }

    /// Step 7: in-order data into the receive buffer, out-of-order data into the buffer and the assembler. Returns
    /// false when the segment must not be processed further (connection reset).
    fn process_text(&mut self, now: Instant, index: u32, seg: &TcpRepr<'_>) -> bool {
        let c = conn!(self, index);
        match c.state {
            State::Established | State::FinWait1 | State::FinWait2 => {}
            // The peer already sent its FIN: more data is a protocol violation; ignore it (§3.10.7.4 step 7).
            _ => return true,
        }
        if !c.app_owned && c.fin_queued && !c.in_accept_queue {
            // Linux: new data for a socket the application has closed is answered with a reset.
            self.counters.inc(Counter::TCPAbortOnData);
            self.reset_and_release(now, index, Counter::TCPAbortOnData);
            return false;
        }
        let mut seq = seg.seq;
        let mut data = seg.payload;
        if seq.lt(c.rcv_nxt) {
            let skip = (c.rcv_nxt - seq) as usize;
            if skip >= data.len() {
                c.ack_now = true;
                c.dup_acks_owed = c.dup_acks_owed.saturating_add(1).min(MAX_DUP_ACKS_OWED);
                self.mark_dirty(index);
                return true;
            }
            data = &data[skip..];
            seq = c.rcv_nxt;
        }
        let offset = (seq - c.rcv_nxt) as usize;
        // Never store past the window we advertised, even if the buffer has room (RFC 9293 §3.10.7.4 step 1 trim).
        let wnd = if c.rcv_adv.gt(c.rcv_nxt) { (c.rcv_adv - c.rcv_nxt) as usize } else { 0 };
        let room = wnd.saturating_sub(offset);
        let take = data.len().min(room);
        if take < data.len() {
            self.counters.inc(Counter::TCPZeroWindowDrop);
        }
        // Charge the engine's memory budget first (Linux's tcp_try_rmem_schedule): in-order data may prune this
        // connection's out-of-order queue to get room; what still does not fit is dropped and the peer will send it
        // again.
        let need = if take > 0 { c.recvbuf.chunks_needed(&self.pool, offset, take) } else { 0 };
        if need > 0 && !self.rmem_schedule(index, need) {
            self.counters.inc(Counter::PruneCalled);
            let pruned = offset == 0 && self.prune_out_of_order(index);
            let c = conn!(self, index);
            let need = c.recvbuf.chunks_needed(&self.pool, offset, take);
            if !pruned || !self.rmem_schedule(index, need) {
                let counter = if offset == 0 { Counter::RcvPruned } else { Counter::TCPOFODrop };
                self.counters.inc(counter);
                if offset == 0 {
                    self.counters.inc(Counter::TCPRcvQDrop);
                }
                conn!(self, index).ack_now = true;
                self.mark_dirty(index);
                return true;
            }
        }
        let c = conn!(self, index);
        // Out-of-order bytes are written only once the assembler has taken their range, so a range it refuses
        // (tcp_max_ooo_ranges) holds no chunk either.
        let take = take.min(c.recvbuf.free().saturating_sub(offset));
        let mut ooo_refused = false;
        if offset > 0 && take > 0 {
            let max = self.config.tcp_max_ooo_ranges as usize;
            match c.assembler.insert(c.rcv_nxt, seq, seq + take as u32, max) {
                Ok(()) => self.counters.inc(Counter::TCPOFOQueue),
                Err(_) => {
                    self.counters.inc(Counter::TCPOFODrop);
                    ooo_refused = true;
                }
            }
        }
        let written =
            if take > 0 && !ooo_refused { c.recvbuf.write_at(&mut self.pool, offset, &data[..take]) } else { 0 };
        // RFC 9293 §3.10.7.4 step 8: nothing comes after a FIN; data beyond an out-of-order one means that FIN was
        // not real, so forget it rather than let it cut the stream short later (review L10).
        if c.ooo_fin.is_some_and(|f| (seq + written as u32).gt(f)) {
            c.ooo_fin = None;
        }
        if offset == 0 {
            if written == 0 {
                c.ack_now = true;
                self.mark_dirty(index);
                return true;
            }
            c.recvbuf.commit(written);
            c.rcv_nxt += written as u32;
            let mut filled_hole = false;
            if !c.assembler.is_empty() {
                let edge = c.assembler.advance(c.rcv_nxt);
                if edge.gt(c.rcv_nxt) {
                    c.recvbuf.commit((edge - c.rcv_nxt) as usize);
                    c.rcv_nxt = edge;
                }
                filled_hole = true;
            }
            // RFC 5681 §4.2 / RFC 9293 §3.8.6.3: ACK at least every second full segment, at once when a hole
            // was filled or in quick-ack mode after the handshake; otherwise delay up to tcp_delack_ms.
            c.unacked_bytes += written as u32;
            // The receiver's RTT for buffer autotuning: from the echo in a full-sized segment with timestamps,
            // else by timing one window.
            let open = if c.rcv_adv.gt(c.rcv_nxt) { c.rcv_adv - c.rcv_nxt } else { 0 };
            if !c.ts_enabled {
                c.autotune.on_data(now, c.rcv_nxt, open, None);
            } else if seg.payload.len() >= MIN_FULL_SEGMENT {
                let ts_now = ts_clock(now).wrapping_add(c.ts_offset);
                let echo = seg.options.timestamps.map(|(_, tsecr)| (tsecr, ts_now));
                c.autotune.on_data(now, c.rcv_nxt, open, echo);
            }
            if filled_hole || c.quickack > 0 || c.unacked_bytes >= 2 * c.smss as u32 {
                c.quickack = c.quickack.saturating_sub(1);
                c.ack_now = true;
            } else if c.timers[TimerKind::DelayedAck as usize].is_none() {
                let at = now + Duration::from_millis(self.config.tcp_delack_ms as u64);
                self.set_timer(index, TimerKind::DelayedAck, at);
            }
            self.signal_readable(index);
            // A FIN that was waiting for this data.
            let c = conn!(self, index);
            if c.ooo_fin == Some(c.rcv_nxt) {
                c.ooo_fin = None;
                self.accept_fin(now, index);
                return false;
            }
        } else {
            // Out of order: kept above (assembler, then buffer); tell the sender at once with SACK (RFC 5681 §4.2,
            // RFC 2018 §4).
            let c = conn!(self, index);
            c.ack_now = true;
            c.dup_acks_owed = c.dup_acks_owed.saturating_add(1).min(MAX_DUP_ACKS_OWED);
        }
        self.mark_dirty(index);
        true
    }

    /// Step 8: the peer's FIN, in order.
    fn accept_fin(&mut self, now: Instant, index: u32) {
        let c = conn!(self, index);
        if c.peer_fin {
            c.ack_now = true;
            self.mark_dirty(index);
            return;
        }
        c.rcv_nxt += 1;
        c.peer_fin = true;
        c.ack_now = true;
        let fin_acked = c.fin_acked();
        match c.state {
            State::SynReceived | State::Established => self.set_state(now, index, State::CloseWait),
            State::FinWait1 if fin_acked => {
                self.enter_time_wait(now, index);
                return;
            }
            State::FinWait1 => self.set_state(now, index, State::Closing),
            State::FinWait2 => {
                self.signal_readable(index);
                self.enter_time_wait(now, index);
                return;
            }
            _ => {}
        }
        self.signal_readable(index);
        self.mark_dirty(index);
    }

    /// TIME_WAIT: ACK the FIN now (the record will not have the connection's output path), then shrink.
    pub(crate) fn enter_time_wait(&mut self, now: Instant, index: u32) {
        let seg = self.ack_control_segment(now, index, self.conn_ref(index).snd_max);
        self.queue_control(seg);
        self.finish(now, index, CloseReason::Normal, true);
    }

    /// A bare ACK for connection `index` with sequence number `seq` (keepalive and window probes use SND.UNA-1).
    pub(crate) fn ack_control_segment(&self, now: Instant, index: u32, seq: SeqNum) -> ControlSegment {
        let c = self.conn_ref(index);
        let wnd = if c.rcv_adv.gt(c.rcv_nxt) { c.rcv_adv - c.rcv_nxt } else { 0 };
        ControlSegment::bare(
            c.tuple,
            seq,
            c.rcv_nxt,
            TcpFlags::ACK,
            (wnd >> c.rcv_wscale).min(65535) as u16,
            c.ts_enabled.then(|| (ts_clock(now).wrapping_add(c.ts_offset), c.ts_recent)),
        )
    }

    fn signal_readable(&mut self, index: u32) {
        let c = conn!(self, index);
        if c.app_owned && !c.readable_signalled {
            c.readable_signalled = true;
            let id = self.id_of(index);
            self.events.push_back(Event::Readable(id));
        }
    }

    /// An acceptable RST (RFC 9293 §3.10.7.4 step 2).
    fn on_reset(&mut self, now: Instant, index: u32) {
        let c = self.conn_ref(index);
        match c.state {
            State::SynReceived if c.listener.is_some() => {
                // A passive half-open connection just goes away (back to LISTEN for that peer).
                self.finish(now, index, CloseReason::Reset, false);
            }
            State::SynReceived => {
                self.counters.inc(Counter::AttemptFails);
                self.finish(now, index, CloseReason::Refused, false);
            }
            State::Established | State::CloseWait => {
                self.counters.inc(Counter::EstabResets);
                self.finish(now, index, CloseReason::Reset, false);
            }
            _ => self.finish(now, index, CloseReason::Reset, false),
        }
        self.release_slot(index);
    }

    /// A duplicate ACK in answer to an unacceptable segment (RFC 9293 §3.10.7.4 step 1, RFC 7323 §5.3), at most one
    /// per `tcp_invalid_ratelimit` unless the segment carries data (Linux's `tcp_oow_rate_limited`: data is not an
    /// ACK loop), so a forger gets no 1:1 reflection (review L15).
    fn oow_ack(&mut self, now: Instant, index: u32, seg: &TcpRepr<'_>, counter: Counter) {
        if seg.segment_len() == 0 || seg.flags.syn() {
            let mut last = self.conn_ref(index).last_oow_ack;
            let limited = self.oow_rate_limited(now, &mut last, counter);
            self.conn_mut(index).last_oow_ack = last;
            if limited {
                return;
            }
        }
        self.conn_mut(index).ack_now = true;
        self.mark_dirty(index);
    }

    /// RFC 5961 §7: an ACK with our current numbers, rate limited per connection (`tcp_invalid_ratelimit`), then
    /// engine-wide with a randomized budget, as Linux (review H2: a global, deterministic budget alone is the
    /// CVE-2016-5696 side channel).
    fn send_challenge_ack(&mut self, now: Instant, index: u32) {
        let mut last = self.conn_ref(index).last_oow_ack;
        let limited = self.oow_rate_limited(now, &mut last, Counter::TCPACKSkippedChallenge);
        self.conn_mut(index).last_oow_ack = last;
        if limited {
            return;
        }
        if self.challenge_ack_allowed(now) {
            self.counters.inc(Counter::TCPChallengeACK);
            self.conn_mut(index).ack_now = true;
            self.mark_dirty(index);
        }
    }

    /// A segment for a four-tuple in TIME_WAIT (RFC 9293 §3.10.7.4, RFC 1337, RFC 6191-style reuse on SYN).
    fn timewait_input(&mut self, now: Instant, tuple: FourTuple, seg: &TcpRepr<'_>) {
        let Some(rec) = self.timewait.get(&tuple).cloned() else { return };
        let flags = seg.flags;
        let tsval = seg.options.timestamps.map(|(v, _)| v);
        if rec.ts_enabled && !flags.rst() {
            if let Some(v) = tsval {
                if (v.wrapping_sub(rec.ts_recent) as i32) < 0 {
                    self.counters.inc(Counter::PAWSEstab);
                    self.timewait_oow_ack(now, &rec, seg);
                    return;
                }
            }
        }
        if flags.rst() {
            // RFC 1337: TIME-WAIT assassination hazards; a RST does not end TIME_WAIT unless configured like Linux,
            // and then, as Linux's tcp_timewait_state_process, only one at exactly RCV.NXT (review L1).
            if !self.config.tcp_rfc1337 && seg.seq == rec.rcv_nxt {
                self.timewait.remove(&mut self.timers, &tuple);
                self.counters.inc(Counter::TWKilled);
                self.log_transition(now, tuple, State::TimeWait, State::Closed);
            }
            return;
        }
        if flags.syn() && !flags.ack() {
            // A new incarnation may reuse the pair if it cannot be confused with the old one: its sequence number
            // is beyond what we received, or its timestamp is newer (RFC 6191).
            let newer = seg.seq.gt(rec.rcv_nxt)
                || (rec.ts_enabled && tsval.is_some_and(|v| (v.wrapping_sub(rec.ts_recent) as i32) > 0));
            if newer {
                if let Some(lid) = self.find_listener(&tuple) {
                    self.timewait.remove(&mut self.timers, &tuple);
                    self.counters.inc(Counter::TWRecycled);
                    self.log_transition(now, tuple, State::TimeWait, State::Closed);
                    // Start the new ISS well clear of the old connection's sequence space, as Linux does.
                    let iss = rec.snd_nxt + 65535 + 2;
                    self.listen_input_with_iss(now, lid, tuple, seg, Some(iss));
                    return;
                }
            }
            self.timewait_oow_ack(now, &rec, seg);
            return;
        }
        // Only an in-window bare ACK moves TS.Recent (Linux), so a forged segment cannot block a later SYN's reuse of
        // the pair (review L1).
        if let Some(v) = tsval {
            if rec.ts_enabled && seg.seq == rec.rcv_nxt && seg.segment_len() == 0 {
                self.timewait.update_ts_recent(&tuple, v);
            }
        }
        let fin_end = seg.seq + seg.payload.len() as u32 + 1;
        if flags.fin() && fin_end == rec.rcv_nxt {
            // The peer did not get our last ACK: re-ACK and restart the 2*MSL timer.
            let len = self.config.time_wait_len();
            self.timewait.restart(&mut self.timers, now, len, &tuple);
            self.timewait_ack(now, &rec);
        } else if !seg.payload.is_empty() || flags.fin() || seg.seq != rec.rcv_nxt {
            self.timewait_oow_ack(now, &rec, seg);
        }
    }

    /// A TIME_WAIT ACK in answer to a segment, rate limited per record as Linux's
    /// `tcp_timewait_check_oow_rate_limit` (segments with data are answered anyway).
    fn timewait_oow_ack(&mut self, now: Instant, rec: &super::timewait::TimeWaitRecord, seg: &TcpRepr<'_>) {
        if seg.segment_len() == 0 || seg.flags.syn() {
            let mut last = rec.last_oow_ack;
            let limited = self.oow_rate_limited(now, &mut last, Counter::TCPACKSkippedTimeWait);
            self.timewait.set_last_oow_ack(&rec.tuple, last);
            if limited {
                return;
            }
        }
        self.timewait_ack(now, rec);
    }

    fn timewait_ack(&mut self, now: Instant, rec: &super::timewait::TimeWaitRecord) {
        self.queue_control(ControlSegment::bare(
            rec.tuple,
            rec.snd_nxt,
            rec.rcv_nxt,
            TcpFlags::ACK,
            0,
            rec.ts_enabled.then(|| (ts_clock(now).wrapping_add(rec.ts_offset), rec.ts_recent)),
        ));
    }
}

/// The RFC 7323 timestamp clock: milliseconds (Linux's TCP_TS_HZ is 1000).
pub(crate) fn ts_clock(now: Instant) -> u32 {
    now.as_millis() as u32
}

/// Echoes older than this are not RTT samples (a stale or forged TSecr; Linux bounds them likewise).
const MAX_TS_ECHO_RTT_MS: u32 = 120_000;

/// The RTT an RFC 7323 echo measures (our clock now less the TSecr): `None` for no echo, a zero TSecr (Linux ignores
/// it: the peer may not have had a value to echo), one from the future or one older than [`MAX_TS_ECHO_RTT_MS`].
/// A same-tick echo counts as one tick (1 ms), as Linux's `tcp_rtt_tsopt_us` counts it.
pub(crate) fn ts_echo_rtt(now: Instant, ts_offset: u32, timestamps: Option<(u32, u32)>) -> Option<Duration> {
    let (_, tsecr) = timestamps?;
    if tsecr == 0 {
        return None;
    }
    let ms = ts_clock(now).wrapping_add(ts_offset).wrapping_sub(tsecr);
    (ms <= MAX_TS_ECHO_RTT_MS).then(|| Duration::from_millis(ms.max(1) as u64))
}
