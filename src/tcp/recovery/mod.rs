//! Loss recovery (Linux's `tcp_input.c` recovery half and `tcp_recovery.c`): RFC 6675 SACK-based recovery (pipe,
//! NextSeg, rescue retransmission) with RFC 6937 Proportional Rate Reduction deciding how much may be sent per ACK,
//! and RFC 8985 tail loss probes.
//!
//! Owns: the per-connection [`Recovery`] record, the scoreboard arithmetic over the sender's SACK scoreboard
//! (`Conn::scoreboard`, an [`Assembler`] bounded to a fixed number of ranges whatever MSS was negotiated), and the
//! engine hooks the receive path (`input.rs`), the send path (`output.rs`) and the retransmit timer call.
//! Must not touch: the congestion algorithms' window arithmetic (it asks them through `CongestionControl`), RTT
//! estimation (`rtt.rs`), the receive side.

use std::time::Duration;

use super::assembler::Assembler;
use super::congestion::CongestionControl;
use super::conn::{RetransmitMode, TimerKind};
use super::engine::conn;
use super::engine::{Engine, PacketSink};
use super::output::NoBuffer;
use super::Counter;
use crate::time::Instant;
use crate::wire::SeqNum;

/// RFC 6675 §2 DupThresh.
pub const DUP_THRESH: u32 = 3;

/// RFC 8985 §7.2: the probe timeout is 2·SRTT, plus the worst-case delayed ACK when one segment is in flight.
const TLP_DELACK_ALLOWANCE: Duration = Duration::from_millis(200);
/// Linux's `TCP_TIMEOUT_MIN` for the probe timeout: never shorter than this.
const TLP_MIN: Duration = Duration::from_millis(10);

/// One connection's loss-recovery record (72 bytes, inline in the connection).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// RFC 6675 recovery runs (SACK negotiated and `tcp_sack_recovery` on when recovery started).
    pub sack_mode: bool,
    /// RFC 6675 HighRxt: the highest sequence number retransmitted in this episode.
    pub high_rxt: SeqNum,
    /// RFC 6675 RescueRxt: set once the rescue retransmission of this episode went out.
    pub rescue_rxt: Option<SeqNum>,
    /// Every un-SACKed byte below this is considered lost (RFC 6675 IsLost, or a timeout).
    pub lost_end: SeqNum,
    /// RFC 6937 RecoverFS, prr_delivered, prr_out (bytes).
    pub recover_fs: u32,
    pub prr_delivered: u64,
    pub prr_out: u64,
    /// Bytes PRR allows out before the next ACK.
    pub sndcnt: u32,
    /// SACKed bytes at the last ACK (for RFC 6937 DeliveredData).
    pub sacked: u32,
    /// End of the current round trip (RFC 9406 rounds): the first ACK at or beyond it starts a new round.
    pub round_end: SeqNum,
    /// A tail loss probe is outstanding; the sequence number it ended at (RFC 8985 §7.3 TLP.end_seq).
    pub tlp_end: Option<SeqNum>,
    /// The probe the timer asked for, sent by the next output: where it starts.
    pub probe: Option<SeqNum>,
}

/// What the scoreboard says about `[una, snd_max)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Bytes the peer reported holding.
    pub sacked: u32,
    /// Highest sequence number that RFC 6675 IsLost() holds lost (un-SACKed bytes below it are lost).
    pub lost_end: SeqNum,
}

/// Scoreboard arithmetic of RFC 6675 §4 over at most the scoreboard's (bounded) ranges: the SACKed total and the
/// IsLost boundary, the highest `s` such that more than (DupThresh-1)·SMSS bytes above `s` are SACKed, or
/// DupThresh discontiguous SACKed ranges lie above it.
pub fn summarize(board: &Assembler, una: SeqNum, mss: u32) -> Summary {
    let threshold = (DUP_THRESH - 1) * mss.max(1);
    let live = || board.ranges().filter(|&(_, e)| e.gt(una)).map(|(s, e)| (s.max(una), e));
    let (total, count) = live().fold((0u32, 0u32), |(t, n), (s, e)| (t + (e - s), n + 1));
    let mut lost_end = una;
    let mut below = 0u32;
    // Ascending: the hole just below range i has `total - below` bytes and `count - i` ranges SACKed above it, both
    // shrinking with i; the highest such hole meeting IsLost() bounds the lost region.
    for (i, (s, e)) in live().enumerate() {
        let above = total - below;
        if above > threshold || count - i as u32 >= DUP_THRESH {
            lost_end = s;
        } else {
            break;
        }
        below += e - s;
    }
    Summary { sacked: total, lost_end }
}

/// RFC 6675 §4 SetPipe(): un-SACKed bytes not lost, plus lost bytes already retransmitted (below HighRxt).
pub fn pipe(board: &Assembler, una: SeqNum, snd_max: SeqNum, lost_end: SeqNum, high_rxt: SeqNum) -> u32 {
    if snd_max.le(una) {
        return 0;
    }
    let flight = snd_max - una;
    let mut sacked = 0u32;
    let mut lost = 0u32;
    let mut retransmitted = 0u32;
    let mut cursor = una;
    let lost_end = lost_end.min(snd_max).max(una);
    let high_rxt = high_rxt.min(lost_end).max(una);
    let mut hole = |from: SeqNum, to: SeqNum| {
        // The part of the hole [from, to) below lost_end is lost; of that, the part below HighRxt was resent.
        if from.lt(lost_end) {
            let lost_to = to.min(lost_end);
            lost += lost_to - from;
            if from.lt(high_rxt) {
                retransmitted += lost_to.min(high_rxt) - from;
            }
        }
    };
    for (s, e) in board.ranges() {
        if e.le(una) {
            continue;
        }
        let s = s.max(una);
        if s.gt(cursor) {
            hole(cursor, s.min(snd_max));
        }
        sacked += e.min(snd_max) - s;
        cursor = e;
        if cursor.ge(snd_max) {
            break;
        }
    }
    if cursor.lt(snd_max) {
        hole(cursor, snd_max);
    }
    (flight - sacked - lost).saturating_add(retransmitted)
}

/// RFC 6937 §3 (with the RFC's PRR-SSRB reduction bound): how many bytes may be sent on this ACK.
pub fn prr_sndcnt(
    pipe: u32,
    ssthresh: u32,
    recover_fs: u32,
    prr_delivered: u64,
    prr_out: u64,
    delivered: u32,
    mss: u32,
) -> u32 {
    let sndcnt = if pipe > ssthresh {
        // Proportional part: CEIL(prr_delivered · ssthresh / RecoverFS) - prr_out.
        let fs = recover_fs.max(1) as u64;
        let target = (prr_delivered * ssthresh as u64).div_ceil(fs);
        target.saturating_sub(prr_out)
    } else {
        // Slow-start reduction bound: catch up to ssthresh, at most one segment beyond what was delivered.
        let limit = (prr_delivered.saturating_sub(prr_out)).max(delivered as u64) + mss as u64;
        ((ssthresh - pipe) as u64).min(limit)
    };
    sndcnt.min(u32::MAX as u64) as u32
}

impl Engine {
    /// Whether connection `index` runs RFC 6675 recovery (SACK negotiated and enabled).
    pub(crate) fn sack_recovery(&self, index: u32) -> bool {
        let c = self.conn_ref(index);
        c.sack_ok && self.config.tcp_sack_recovery
    }

    /// Called by the receive path after every acceptable ACK (with `una_before`, SND.UNA before it, and
    /// `sacked_before`, the SACKed bytes before its blocks were recorded): starts RFC 6675 recovery when IsLost()
    /// says SND.UNA is lost, and runs PRR while in it. Returns true if output should run.
    pub(crate) fn recovery_on_ack(&mut self, now: Instant, index: u32, una_before: SeqNum) -> bool {
        if let Some(end) = self.conn_ref(index).recovery.tlp_end {
            // RFC 8985 §7.4: the probe was acknowledged (or recovery will say what it found).
            let c = conn!(self, index);
            if c.snd_una.ge(end) && !c.in_recovery {
                c.recovery.tlp_end = None;
            }
        }
        if !self.sack_recovery(index) {
            return false;
        }
        let c = conn!(self, index);
        let mss = c.smss as u32;
        let summary = summarize(&c.scoreboard, c.snd_una, mss);
        let newly_sacked = summary.sacked.saturating_sub(c.recovery.sacked);
        c.recovery.sacked = summary.sacked;
        let delivered = (c.snd_una - una_before).saturating_add(newly_sacked);
        if !c.in_recovery {
            // RFC 6675 §5: enter recovery when IsLost(HighACK + 1), unless the loss belongs to an episode that
            // already ended in a timeout (RFC 6582 §3.2 step 1's `recover`).
            // RFC 6675 §5: DupAcks >= DupThresh also starts it (the peer's SACK blocks may not fit the scoreboard).
            let dupthresh = c.dupacks as u32 >= DUP_THRESH;
            let lost = summary.lost_end.gt(c.snd_una) || dupthresh;
            if !lost || !(c.snd_una - 1u32).ge(c.recover) || c.snd_max == c.snd_una {
                return false;
            }
            let flight = c.snd_max - c.snd_una;
            c.in_recovery = true;
            c.recover = c.snd_max;
            c.limited_transmit = 0;
            c.retransmit_head = false;
            c.rtt_seq = None;
            c.cc.on_enter_recovery(now, flight);
            c.recovery.sack_mode = true;
            c.recovery.high_rxt = c.snd_una;
            c.recovery.rescue_rxt = None;
            c.recovery.lost_end = if dupthresh { summary.lost_end.max(c.snd_una + mss) } else { summary.lost_end };
            c.recovery.recover_fs = flight;
            c.recovery.prr_delivered = 0;
            c.recovery.prr_out = 0;
            if c.recovery.tlp_end.take().is_some() {
                self.counters.inc(Counter::TCPLossProbeRecovery);
            }
            self.counters.inc(Counter::TCPSackRecovery);
        }
        let c = conn!(self, index);
        if !c.recovery.sack_mode {
            return false;
        }
        if summary.lost_end.gt(c.recovery.lost_end) {
            c.recovery.lost_end = summary.lost_end;
        }
        if c.recovery.high_rxt.lt(c.snd_una) {
            c.recovery.high_rxt = c.snd_una;
        }
        let r = &mut c.recovery;
        r.prr_delivered += delivered as u64;
        let pipe = pipe(&c.scoreboard, c.snd_una, c.snd_max, r.lost_end, r.high_rxt);
        let mut sndcnt = prr_sndcnt(pipe, c.cc.ssthresh(), r.recover_fs, r.prr_delivered, r.prr_out, delivered, mss);
        // Linux's tcp_cwnd_reduction: the fast retransmit that starts recovery always goes out.
        if r.prr_out == 0 {
            sndcnt = sndcnt.max(1);
        }
        r.sndcnt = sndcnt;
        sndcnt > 0
    }

    /// Recovery ended (full ACK of `recover`) or was abandoned (timeout): forget the episode.
    pub(crate) fn recovery_reset(&mut self, index: u32) {
        let c = conn!(self, index);
        let r = &mut c.recovery;
        r.sack_mode = false;
        r.sndcnt = 0;
        r.rescue_rxt = None;
        r.prr_delivered = 0;
        r.prr_out = 0;
    }

    /// The send path during RFC 6675 recovery: NextSeg() (§4) and the rescue retransmission, as much as PRR allows.
    /// Returns Ok(true) when it handled output (the caller then sends no new data of its own).
    pub(crate) fn recovery_output(
        &mut self,
        now: Instant,
        index: u32,
        sink: &mut dyn PacketSink,
    ) -> Result<bool, NoBuffer> {
        {
            let c = self.conn_ref(index);
            if !(c.in_recovery && c.recovery.sack_mode) {
                return Ok(false);
            }
        }
        // Bounded: each pass sends a segment or stops; PRR's allowance shrinks with each segment.
        let mut sent_any = false;
        for _ in 0..1024 {
            let c = self.conn_ref(index);
            if c.recovery.sndcnt == 0 {
                break;
            }
            let mss = c.smss as u32;
            let una = c.snd_una;
            let r = &c.recovery;
            let from = r.high_rxt.max(una);
            // Rule 1: the first un-SACKed byte above HighRxt that IsLost().
            let mut pick: Option<(SeqNum, u32, bool)> = None;
            if let Some((start, end)) = c.scoreboard.next_hole(una, from) {
                if start.lt(r.lost_end) {
                    pick = Some((start, (end - start).min(mss), false));
                }
            } else if from.lt(r.lost_end) && c.scoreboard.is_empty() {
                // Everything below lost_end is un-SACKed (a timeout marked it lost).
                pick = Some((from, (r.lost_end - from).min(mss), false));
            }
            // Rule 2: new data, within the peer's window.
            if pick.is_none() {
                let data_end = c.data_end();
                let unsent = if c.snd_max.lt(data_end) { data_end - c.snd_max } else { 0 };
                let fin_due = c.fin_queued && c.snd_max.le(data_end);
                let wnd_end = c.snd_una + c.snd_wnd;
                let room = if wnd_end.gt(c.snd_max) { wnd_end - c.snd_max } else { 0 };
                if (unsent > 0 && room > 0) || (fin_due && unsent == 0) {
                    pick = Some((c.snd_max, unsent.min(room).min(mss), true));
                }
            }
            // Rule 4: the rescue retransmission, once per episode, of the highest un-SACKed segment; only when this
            // ACK let nothing else out (new data just sent keeps the ACK clock going by itself).
            if pick.is_none() && !sent_any && r.rescue_rxt.is_none_or(|rx| una.gt(rx)) {
                let top = match c.scoreboard.highest_end() {
                    Some(h) if h.ge(c.snd_max) => c.scoreboard.ranges().last().map(|(s, _)| s).unwrap_or(c.snd_max),
                    _ => c.snd_max,
                };
                if top.gt(una) {
                    let start = if top - una > mss { top - mss } else { una };
                    let start = if start.lt(from) && from.lt(top) { from } else { start };
                    let len = top - start;
                    let c = conn!(self, index);
                    c.recovery.rescue_rxt = Some(c.recover);
                    pick = Some((start, len, false));
                }
            }
            let Some((seq, len, new_data)) = pick else { break };
            sent_any = true;
            let limit = len.max(if new_data { 0 } else { 1 });
            let before_max = self.conn_ref(index).snd_max;
            self.send_data_at_for_recovery(now, index, seq, sink, limit)?;
            let c = conn!(self, index);
            let sent_end = if new_data { c.snd_max } else { seq + limit };
            let sent = sent_end - seq;
            if new_data {
                c.snd_nxt = c.snd_max;
                if c.snd_max == before_max {
                    break; // nothing could go (a FIN already out, or a zero window)
                }
            } else if sent_end.gt(c.recovery.high_rxt) {
                c.recovery.high_rxt = sent_end;
            }
            let r = &mut c.recovery;
            r.prr_out += sent.max(1) as u64;
            r.sndcnt = r.sndcnt.saturating_sub(sent.max(1));
        }
        Ok(true)
    }

    /// RFC 8985 §7.2: arm the probe timeout instead of the RTO when a tail loss probe may help: data outstanding,
    /// not in recovery, an RTT sample exists, SACK in use and no probe outstanding. Returns true if armed.
    pub(crate) fn arm_tlp(&mut self, now: Instant, index: u32) -> bool {
        if self.config.tcp_early_retrans < 3 || !self.sack_recovery(index) {
            return false;
        }
        let c = self.conn_ref(index);
        let Some(srtt) = c.rtt.srtt() else { return false };
        if c.in_recovery || c.recovery.tlp_end.is_some() || c.retransmits > 0 || c.snd_una == c.snd_max {
            return false;
        }
        let mut pto = 2 * srtt;
        let flight = c.snd_max - c.snd_una;
        if flight <= c.smss as u32 {
            pto += TLP_DELACK_ALLOWANCE;
        }
        let pto = pto.max(TLP_MIN).min(c.rtt.rto());
        let at = now + pto;
        self.conn_mut(index).retransmit_mode = RetransmitMode::Probe;
        self.set_timer(index, TimerKind::Retransmit, at);
        true
    }

    /// RFC 8985 §7.3: the probe timeout fired: send one new segment if the window allows, else retransmit the
    /// highest one; then the RTO takes over.
    pub(crate) fn on_tlp_timer(&mut self, now: Instant, index: u32) {
        let c = conn!(self, index);
        c.retransmit_mode = RetransmitMode::Rto;
        if c.snd_una == c.snd_max || c.in_recovery {
            let at = now + c.rtt.rto();
            if c.snd_una != c.snd_max {
                self.set_timer(index, TimerKind::Retransmit, at);
            }
            return;
        }
        self.counters.inc(Counter::TCPLossProbes);
        let mss = c.smss as u32;
        let data_end = c.data_end();
        let wnd_end = c.snd_una + c.snd_wnd;
        let new_data = c.snd_max.lt(data_end) && wnd_end.gt(c.snd_max);
        let seq = if new_data {
            c.snd_max
        } else {
            // The last segment sent (not counting a FIN that is not data).
            let top = c.snd_max;
            if top - c.snd_una > mss {
                top - mss
            } else {
                c.snd_una
            }
        };
        c.recovery.tlp_end = Some(c.snd_max);
        c.recovery.probe = Some(seq);
        let at = now + c.rtt.rto();
        self.set_timer(index, TimerKind::Retransmit, at);
        self.mark_dirty(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    fn board(una: SeqNum, ranges: &[(u32, u32)]) -> Assembler {
        let mut b = Assembler::new();
        for &(s, e) in ranges {
            b.insert(una, una + s, una + e, 64).unwrap();
        }
        b
    }

    #[test]
    fn islost_needs_more_than_two_segments_sacked_above() {
        let una = SeqNum(1000);
        // One hole at [0,1000), 2 segments SACKed above: not lost yet (RFC 6675: more than (DupThresh-1)·SMSS).
        let b = board(una, &[(1000, 3000)]);
        assert_eq!(summarize(&b, una, MSS), Summary { sacked: 2000, lost_end: una });
        // 2001 bytes above: lost.
        let b = board(una, &[(1000, 3001)]);
        assert_eq!(summarize(&b, una, MSS).lost_end, una + 1000);
        // Three discontiguous SACKed ranges above count as DupThresh SACKed sequences, even if small.
        let b = board(una, &[(1000, 1100), (2000, 2100), (3000, 3100)]);
        let s = summarize(&b, una, MSS);
        assert_eq!(s.sacked, 300);
        assert_eq!(s.lost_end, una + 1000, "the hole below the third-highest range");
    }

    #[test]
    fn lost_boundary_leaves_the_top_holes_in_flight() {
        let una = SeqNum(0);
        // Holes: [0,1000) [2000,3000) [4000,5000) [6000,7000); SACKed: 1000-2000, 3000-4000, 5000-6000, 7000-9000.
        let b = board(una, &[(1000, 2000), (3000, 4000), (5000, 6000), (7000, 9000)]);
        let s = summarize(&b, una, MSS);
        assert_eq!(s.sacked, 5000);
        // Above [6000,7000) are 2000 bytes (not > 2000) and 1 range: in flight. Above [4000,5000): 3000 bytes: lost.
        assert_eq!(s.lost_end, SeqNum(5000));
        // pipe = flight 10000 - sacked 5000 - lost (1000+1000+1000) + retransmitted 0 = 2000 ([6000,7000) + [9000,10000)).
        assert_eq!(pipe(&b, una, SeqNum(10_000), s.lost_end, una), 2000);
        // After retransmitting the first two lost holes (HighRxt = 3000): +2000.
        assert_eq!(pipe(&b, una, SeqNum(10_000), s.lost_end, SeqNum(3000)), 4000);
        // An empty scoreboard: everything in flight unless marked lost.
        let empty = Assembler::new();
        assert_eq!(pipe(&empty, una, SeqNum(10_000), una, una), 10_000);
        assert_eq!(pipe(&empty, una, SeqNum(10_000), SeqNum(10_000), SeqNum(4000)), 4000);
        assert_eq!(pipe(&empty, una, una, una, una), 0);
    }

    #[test]
    fn prr_reduces_proportionally_then_bounds_by_ssrb() {
        // RFC 6937 §6 example: RecoverFS 20 segments, ssthresh 10 (β = 0.5): one segment out per two delivered.
        let (fs, ss) = (20 * MSS, 10 * MSS);
        let mut out = 0u64;
        let mut delivered = 0u64;
        for i in 0..10 {
            delivered += MSS as u64;
            let pipe = 19 * MSS - i * MSS / 2; // above ssthresh throughout
            let n = prr_sndcnt(pipe, ss, fs, delivered, out, MSS, MSS);
            // Exactly ssthresh/RecoverFS of each delivered segment.
            assert_eq!(n, MSS / 2, "ack {i}");
            out += n as u64;
        }
        assert_eq!(out, 5 * MSS as u64);
        // The engine sends whole segments while the allowance is positive: one segment per two ACKs.
        let (mut out, mut delivered, mut pattern) = (0u64, 0u64, Vec::new());
        for _ in 0..6 {
            delivered += MSS as u64;
            let n = prr_sndcnt(15 * MSS, ss, fs, delivered, out, MSS, MSS);
            let segs = if n > 0 { 1 } else { 0 };
            out += segs * MSS as u64;
            pattern.push(segs);
        }
        assert_eq!(pattern, vec![1, 0, 1, 0, 1, 0]);
        // Pipe below ssthresh: SSRB allows catching up, at most delivered + 1 segment per ACK.
        assert_eq!(prr_sndcnt(5 * MSS, ss, fs, 10 * MSS as u64, 10 * MSS as u64, MSS, MSS), 2 * MSS);
        assert_eq!(prr_sndcnt(9 * MSS, ss, fs, 10 * MSS as u64, 5 * MSS as u64, MSS, MSS), MSS);
        // Degenerate: RecoverFS 0 never divides by zero.
        assert_eq!(prr_sndcnt(100, 10, 0, 1, 0, 1, MSS), 10);
    }

    #[test]
    fn scoreboard_stays_bounded_whatever_the_mss() {
        // A peer SACKing every other byte (MSS 1 or a hostile pattern) cannot grow the scoreboard past its bound.
        let una = SeqNum(0);
        let mut b = Assembler::new();
        let mut refused = 0;
        for i in 0..10_000u32 {
            if b.insert(una, SeqNum(2 * i + 1), SeqNum(2 * i + 2), 64).is_err() {
                refused += 1;
            }
        }
        assert_eq!(b.range_count(), 64);
        assert_eq!(refused, 10_000 - 64);
        let s = summarize(&b, una, 1);
        assert_eq!(s.sacked, 64);
        assert!(pipe(&b, una, SeqNum(20_000), s.lost_end, una) <= 20_000);
    }
}
