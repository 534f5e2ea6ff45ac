//! Timer expiries (Linux's `tcp_timer.c`): retransmission (RFC 6298), SYN and SYN-ACK retries, zero-window probes
//! (persist), delayed ACK, keepalive, the orphan FIN_WAIT_2 timeout and the end of TIME_WAIT.

use std::time::Duration;

use super::congestion::CongestionControl;
use super::conn::{RetransmitMode, TimerKind};
use super::engine::conn;
use super::engine::{CloseReason, Engine, State, TimerEntry};
use super::Counter;
use crate::time::Instant;

impl Engine {
    pub(crate) fn set_timer(&mut self, index: u32, kind: TimerKind, at: Instant) {
        let c = conn!(self, index);
        let generation = c.generation;
        if let Some(h) = c.timers[kind as usize] {
            if let Some(moved) = self.timers.reschedule(h, at) {
                self.conn_mut(index).timers[kind as usize] = Some(moved);
                return;
            }
        }
        let h = self.timers.insert(at, TimerEntry { index, generation, kind });
        self.conn_mut(index).timers[kind as usize] = Some(h);
    }

    pub(crate) fn cancel_timer(&mut self, index: u32, kind: TimerKind) {
        if let Some(h) = self.conn_mut(index).timers[kind as usize].take() {
            self.timers.cancel(h);
        }
    }

    pub(crate) fn arm_fin_wait2_timer(&mut self, now: Instant, index: u32) {
        let at = now + Duration::from_secs(self.config.tcp_fin_timeout as u64);
        self.set_timer(index, TimerKind::Keepalive, at);
    }

    pub(crate) fn arm_keepalive(&mut self, now: Instant, index: u32) {
        let at = now + Duration::from_secs(self.config.tcp_keepalive_time as u64);
        self.set_timer(index, TimerKind::Keepalive, at);
    }

    pub(crate) fn on_timer(&mut self, now: Instant, entry: TimerEntry) {
        if entry.kind == TimerKind::SynAck {
            return self.on_syn_ack_timer(now, entry.index, entry.generation);
        }
        if entry.kind == TimerKind::TimeWait {
            if let Some(tuple) = self.timewait.expire(entry.index, entry.generation) {
                self.log_transition(now, tuple, State::TimeWait, State::Closed);
            }
            return;
        }
        let Some(c) = self.conn_opt(entry.index, entry.generation) else { return };
        if c.finished {
            return;
        }
        c.timers[entry.kind as usize] = None;
        match entry.kind {
            TimerKind::Retransmit => self.on_retransmit_timer(now, entry.index),
            TimerKind::DelayedAck => {
                c.ack_now = true;
                self.counters.inc(Counter::DelayedACKs);
                self.mark_dirty(entry.index);
            }
            TimerKind::Keepalive => self.on_keepalive_timer(now, entry.index),
            TimerKind::TimeWait | TimerKind::SynAck => {}
        }
    }

    fn on_retransmit_timer(&mut self, now: Instant, index: u32) {
        let c = conn!(self, index);
        if c.retransmit_mode == RetransmitMode::Persist {
            return self.on_persist_timer(now, index);
        }
        if c.retransmit_mode == RetransmitMode::Probe {
            return self.on_tlp_timer(now, index);
        }
        match c.state {
            State::SynSent | State::SynReceived => {
                let passive = c.listener.is_some();
                let limit = if c.state == State::SynSent {
                    self.config.tcp_syn_retries
                } else {
                    self.config.tcp_synack_retries
                };
                if c.retransmits >= limit {
                    if passive {
                        // The half-open entry is freed; the application never knew about it.
                        self.finish(now, index, CloseReason::TimedOut, false);
                    } else {
                        self.counters.inc(Counter::AttemptFails);
                        self.counters.inc(Counter::TCPAbortOnTimeout);
                        self.finish(now, index, CloseReason::TimedOut, false);
                    }
                    self.release_slot(index);
                    return;
                }
                // 1, 2, 4, 8, 16 s ... (RFC 6298 §5.5 from the 1 s initial RTO).
                c.retransmits += 1;
                c.rtt.backoff();
                c.rtt_seq = None;
                c.snd_nxt = c.iss;
                self.mark_dirty(index);
            }
            State::Established
            | State::FinWait1
            | State::FinWait2
            | State::CloseWait
            | State::Closing
            | State::LastAck => {
                if c.snd_una == c.snd_max {
                    return;
                }
                let limit = if c.app_owned { self.config.tcp_retries2 } else { self.config.orphan_retries() };
                if c.retransmits >= limit {
                    self.counters.inc(Counter::TCPAbortOnTimeout);
                    self.finish(now, index, CloseReason::TimedOut, false);
                    self.release_slot(index);
                    return;
                }
                // RFC 6298 §5.4-5.6 and RFC 5681 §3.1: back off, collapse to the loss window, resend from SND.UNA.
                self.counters.inc(Counter::TCPTimeouts);
                let flight = c.snd_max - c.snd_una;
                c.cc.on_rto(flight);
                c.rtt.backoff();
                c.retransmits += 1;
                c.in_recovery = false;
                c.dupacks = 0;
                c.recovery.tlp_end = None;
                c.recovery.probe = None;
                self.recovery_reset(index);
                let c = conn!(self, index);
                // RFC 6582 §3.2 step 1 after a timeout: duplicates of data sent before it must not trigger recovery.
                c.recover = c.snd_max;
                c.retransmit_head = false;
                c.rtt_seq = None;
                c.snd_nxt = c.snd_una;
                self.mark_dirty(index);
            }
            _ => {}
        }
    }

    /// RFC 9293 §3.8.6.1: the peer's window is zero; probe it with backoff. Like Linux, the probe is a bare ACK
    /// with SND.UNA-1, which any TCP answers with an ACK carrying its current window.
    fn on_persist_timer(&mut self, now: Instant, index: u32) {
        let c = conn!(self, index);
        let waiting = c.data_end().gt(c.snd_nxt) || c.fin_queued && c.snd_nxt.le(c.data_end());
        if c.snd_wnd > 0 || !waiting {
            // The window is open (perhaps only a little): send what fits, overriding SWS avoidance once.
            c.retransmit_mode = RetransmitMode::Rto;
            c.sws_override = waiting;
            self.mark_dirty(index);
            return;
        }
        // A deliberate deviation (review L17): probes count towards tcp_retries2 even when the peer answers them
        // with a zero window, so a peer that never reads cannot hold a connection and its send buffer forever
        // (sockstress). RFC 1122 §4.2.2.17 says the connection MUST stay open while probes are answered, and Linux
        // keeps it (only TCP_USER_TIMEOUT bounds it there); with the default backoff this aborts after ~15-30 min.
        let limit = if c.app_owned { self.config.tcp_retries2 } else { self.config.orphan_retries() };
        if c.retransmits >= limit {
            self.counters.inc(Counter::TCPAbortOnTimeout);
            self.finish(now, index, CloseReason::TimedOut, false);
            self.release_slot(index);
            return;
        }
        c.retransmits += 1;
        c.rtt.backoff();
        let at = now + c.rtt.rto();
        let probe_seq = c.snd_una - 1u32;
        let probe = self.ack_control_segment(now, index, probe_seq);
        self.queue_control(probe);
        self.counters.inc(Counter::TCPWinProbe);
        self.set_timer(index, TimerKind::Retransmit, at);
    }

    /// Keepalive (RFC 1122 §4.2.3.6, Linux's tcp_keepalive_*), and the orphan FIN_WAIT_2 timeout.
    fn on_keepalive_timer(&mut self, now: Instant, index: u32) {
        let c = conn!(self, index);
        if c.state == State::FinWait2 && !c.app_owned {
            // tcp_fin_timeout: an orphan waiting for the peer's FIN gives up.
            self.counters.inc(Counter::TCPAbortOnTimeout);
            self.finish(now, index, CloseReason::TimedOut, false);
            self.release_slot(index);
            return;
        }
        if !c.keepalive || !matches!(c.state, State::Established | State::CloseWait | State::FinWait2) {
            return;
        }
        let time = Duration::from_secs(self.config.tcp_keepalive_time as u64);
        let intvl = Duration::from_secs(self.config.tcp_keepalive_intvl as u64);
        let idle = now.saturating_since(c.last_rx);
        if c.keepalive_probes == 0 && idle < time {
            let at = c.last_rx + time;
            self.set_timer(index, TimerKind::Keepalive, at);
            return;
        }
        if c.keepalive_probes > 0 && idle < intvl {
            // The peer answered since the last probe.
            c.keepalive_probes = 0;
            let at = c.last_rx + time;
            self.set_timer(index, TimerKind::Keepalive, at);
            return;
        }
        if c.keepalive_probes as u32 >= self.config.tcp_keepalive_probes {
            // Linux resets the connection when probes run out (TCPKeepAlive counts probes sent, not this).
            self.counters.inc(Counter::TCPAbortOnTimeout);
            let c = conn!(self, index);
            c.error = Some(super::engine::Error::TimedOut);
            let (tuple, seq, ack) = (c.tuple, c.snd_max, c.rcv_nxt);
            let flags = crate::wire::TcpFlags::RST | crate::wire::TcpFlags::ACK;
            self.queue_control(super::engine::ControlSegment::bare(tuple, seq, ack, flags, 0, None));
            self.finish(now, index, CloseReason::TimedOut, false);
            self.release_slot(index);
            return;
        }
        c.keepalive_probes = c.keepalive_probes.saturating_add(1);
        let probe_seq = c.snd_una - 1u32;
        let probe = self.ack_control_segment(now, index, probe_seq);
        self.queue_control(probe);
        self.counters.inc(Counter::TCPKeepAlive);
        self.set_timer(index, TimerKind::Keepalive, now + intvl);
    }
}
