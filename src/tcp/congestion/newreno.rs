//! NewReno: RFC 5681 slow start and congestion avoidance with RFC 3465 byte counting, and RFC 6582 fast recovery
//! (Linux's `tcp_cong.c` "reno"). The engine runs the recovery state machine; this file is the window arithmetic.

use std::time::Duration;

use super::{initial_window, CongestionControl, INFINITE_SSTHRESH, MAX_CWND};
use crate::time::Instant;

/// RFC 3465 §2.2 slow-start limit L: at most 2·SMSS of growth per ACK (Linux `tcp_slow_start` uses no limit, but
/// the RFC's L=2 bounds the bursts a stretch ACK can trigger).
const ABC_LIMIT_SEGMENTS: u32 = 2;

/// Largest SMSS accepted: the MSS option is 16 bits (RFC 9293 §3.7.1).
const MAX_MSS: u32 = 65_535;

/// NewReno window state: 24 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReno {
    /// SMSS, bytes.
    mss: u32,
    cwnd: u32,
    ssthresh: u32,
    /// Initial window in segments (Linux `initcwnd`, RFC 6928).
    initial_segments: u32,
    /// Bytes acknowledged in congestion avoidance not yet turned into window growth (RFC 3465 §2.1 `bytes_acked`).
    ca_bytes_acked: u32,
    /// An RTO reduced ssthresh and no new data has been acknowledged since: RFC 5681 §3.1 holds ssthresh constant
    /// when the timer expires again for the same segment.
    rto_held: bool,
}

impl NewReno {
    /// `mss` is clamped to 1..=65535, `initial_segments` raised to at least 1.
    pub fn new(mss: u32, initial_segments: u32) -> Self {
        let mss = mss.clamp(1, MAX_MSS);
        let initial_segments = initial_segments.max(1);
        NewReno {
            mss,
            cwnd: initial_window(initial_segments, mss),
            ssthresh: INFINITE_SSTHRESH,
            initial_segments,
            ca_bytes_acked: 0,
            rto_held: false,
        }
    }

    pub fn mss(&self) -> u32 {
        self.mss
    }

    /// The window a connection starts (and restarts after idle) with.
    pub fn initial_window(&self) -> u32 {
        initial_window(self.initial_segments, self.mss)
    }

    /// True in slow start (RFC 5681 §3.1: cwnd < ssthresh).
    pub fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// RFC 5681 eq. 4 / RFC 6582 step 2: half the flight, at least two segments.
    fn reduced_ssthresh(&self, flight_size: u32) -> u32 {
        (flight_size / 2).max(2 * self.mss)
    }

    fn set_cwnd(&mut self, cwnd: u64) {
        self.cwnd = cwnd.clamp(self.mss as u64, MAX_CWND as u64) as u32;
    }
}

impl CongestionControl for NewReno {
    fn name(&self) -> &'static str {
        "reno"
    }

    fn cwnd(&self) -> u32 {
        self.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    /// Keeps the window's size in segments, as Linux (which counts cwnd in packets) does: a connection created with
    /// the configured MSS and told the negotiated one before any data was acknowledged starts with the initial
    /// window for the new MSS.
    fn set_mss(&mut self, mss: u32) {
        let mss = mss.clamp(1, MAX_MSS);
        if mss == self.mss {
            return;
        }
        let untouched = self.cwnd == self.initial_window() && self.ssthresh == INFINITE_SSTHRESH;
        let old = self.mss as u64;
        self.mss = mss;
        self.ca_bytes_acked = 0;
        if untouched {
            self.cwnd = self.initial_window();
            return;
        }
        let scale = |v: u32| v as u64 * mss as u64 / old;
        self.set_cwnd(scale(self.cwnd));
        if self.ssthresh != INFINITE_SSTHRESH {
            self.ssthresh = scale(self.ssthresh).clamp(2 * mss as u64, INFINITE_SSTHRESH as u64) as u32;
        }
    }

    /// Slow start grows cwnd by the bytes acknowledged, at most L = 2·SMSS per ACK (RFC 3465 §2.2), and not beyond
    /// ssthresh; the rest of such an ACK counts toward congestion avoidance. Congestion avoidance adds one SMSS each
    /// time a full cwnd of bytes has been acknowledged (RFC 3465 §2.1, the exact form of RFC 5681 §3.1's
    /// SMSS·SMSS/cwnd per ACK), at most one SMSS per ACK.
    fn on_ack(&mut self, _now: Instant, bytes_acked: u32, _rtt: Option<Duration>) {
        // New data acknowledged: a later RTO concerns a new segment and may reduce ssthresh again.
        self.rto_held = false;
        let mut acked = bytes_acked;
        if acked == 0 {
            return;
        }
        if self.cwnd < self.ssthresh {
            let growth = acked.min(ABC_LIMIT_SEGMENTS * self.mss);
            let room = self.ssthresh - self.cwnd;
            if growth < room {
                self.set_cwnd(self.cwnd as u64 + growth as u64);
                return;
            }
            // Slow start ends inside this ACK; the bytes beyond the threshold feed congestion avoidance.
            acked -= room;
            self.set_cwnd(self.ssthresh as u64);
            if self.cwnd < self.ssthresh {
                return; // ssthresh above MAX_CWND: window pinned at the cap
            }
        }
        let counted = self.ca_bytes_acked as u64 + acked as u64;
        if counted >= self.cwnd as u64 {
            let rest = counted - self.cwnd as u64;
            self.set_cwnd(self.cwnd as u64 + self.mss as u64);
            // At most one SMSS per ACK: a stretch ACK's excess may carry over, but not more than a window's worth.
            self.ca_bytes_acked = rest.min(self.cwnd as u64 - 1) as u32;
        } else {
            self.ca_bytes_acked = counted as u32;
        }
    }

    /// RFC 6582 §3.2 step 2: ssthresh = max(FlightSize/2, 2·SMSS); cwnd = ssthresh + 3·SMSS.
    fn on_enter_recovery(&mut self, _now: Instant, flight_size: u32) {
        self.ssthresh = self.reduced_ssthresh(flight_size);
        self.set_cwnd(self.ssthresh as u64 + 3 * self.mss as u64);
        self.ca_bytes_acked = 0;
        self.rto_held = false;
    }

    /// RFC 6582 §3.2 step 3: inflate by one SMSS per additional duplicate ACK.
    fn on_dup_ack_in_recovery(&mut self) {
        self.set_cwnd(self.cwnd as u64 + self.mss as u64);
    }

    /// RFC 6582 §3.2 step 5: deflate by the bytes newly acknowledged, add back one SMSS if at least one SMSS was
    /// acknowledged. Never below one SMSS, so the retransmission the partial ACK calls for can go out.
    fn on_partial_ack(&mut self, bytes_acked: u32) {
        let mut cwnd = (self.cwnd as u64).saturating_sub(bytes_acked as u64);
        if bytes_acked >= self.mss {
            cwnd += self.mss as u64;
        }
        self.set_cwnd(cwnd);
        self.ca_bytes_acked = 0;
    }

    /// RFC 6582 §3.2 step 6, option (1): cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS), which avoids the burst
    /// a plain "cwnd = ssthresh" could release.
    fn on_exit_recovery(&mut self, flight_size: u32) {
        let deflated = flight_size.max(self.mss) as u64 + self.mss as u64;
        self.set_cwnd(deflated.min(self.ssthresh as u64));
        self.ca_bytes_acked = 0;
    }

    /// RFC 5681 §3.1 eq. 4: ssthresh = max(FlightSize/2, 2·SMSS), cwnd = the loss window of one SMSS. When the timer
    /// expires again before any new data is acknowledged (the same segment timed out twice), ssthresh is held
    /// constant, as RFC 5681 §3.1 requires (Linux `tcp_enter_loss` does the same).
    fn on_rto(&mut self, flight_size: u32) {
        if !self.rto_held {
            self.ssthresh = self.reduced_ssthresh(flight_size);
        }
        self.cwnd = self.mss;
        self.ca_bytes_acked = 0;
        self.rto_held = true;
    }

    /// RFC 5681 §4.1: restart window = min(IW, cwnd).
    fn on_idle_restart(&mut self) {
        self.set_cwnd(self.cwnd.min(self.initial_window()) as u64);
        self.ca_bytes_acked = 0;
    }

    /// Undo of a spurious reduction, as Linux's `tcp_undo_cwnd_reduction`: the window and threshold go back to at
    /// least their prior values (growth since the reduction is kept).
    fn undo(&mut self, prior_cwnd: u32, prior_ssthresh: u32) {
        self.set_cwnd(self.cwnd.max(prior_cwnd) as u64);
        self.ssthresh = self.ssthresh.max(prior_ssthresh.min(INFINITE_SSTHRESH));
        self.ca_bytes_acked = 0;
        self.rto_held = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSS: u32 = 1000;
    const T: Instant = Instant::ZERO;

    fn reno() -> NewReno {
        NewReno::new(MSS, 10)
    }

    #[test]
    fn size_is_small() {
        assert_eq!(core::mem::size_of::<NewReno>(), 24);
    }

    #[test]
    fn starts_with_initial_window_and_infinite_ssthresh() {
        let cc = reno();
        assert_eq!(cc.cwnd(), 10 * MSS);
        assert_eq!(cc.ssthresh(), INFINITE_SSTHRESH);
        assert!(cc.in_slow_start());
        assert_eq!(NewReno::new(0, 0).cwnd(), 1);
        assert_eq!(NewReno::new(u32::MAX, 10).mss(), 65_535);
    }

    #[test]
    fn slow_start_doubles_per_rtt_with_per_segment_acks() {
        let mut cc = reno();
        for _ in 0..10 {
            cc.on_ack(T, MSS, None);
        }
        assert_eq!(cc.cwnd(), 20 * MSS);
    }

    #[test]
    fn slow_start_abc_limit_is_two_segments_per_ack() {
        let mut cc = reno();
        cc.on_ack(T, 2 * MSS, None);
        assert_eq!(cc.cwnd(), 12 * MSS);
        cc.on_ack(T, 5 * MSS, None); // stretch ACK: still only 2 SMSS
        assert_eq!(cc.cwnd(), 14 * MSS);
        cc.on_ack(T, 300, None);
        assert_eq!(cc.cwnd(), 14 * MSS + 300);
        cc.on_ack(T, 0, None);
        assert_eq!(cc.cwnd(), 14 * MSS + 300);
    }

    #[test]
    fn slow_start_stops_at_ssthresh_and_carries_into_avoidance() {
        let mut cc = reno();
        cc.on_rto(24 * MSS); // ssthresh 12 SMSS, cwnd 1 SMSS
        assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 12 * MSS));
        for _ in 0..5 {
            cc.on_ack(T, 2 * MSS, None);
        }
        assert_eq!(cc.cwnd(), 11 * MSS);
        // 2 SMSS acked: 1 SMSS reaches ssthresh, 1 SMSS goes to the avoidance counter.
        cc.on_ack(T, 2 * MSS, None);
        assert_eq!(cc.cwnd(), 12 * MSS);
        assert!(!cc.in_slow_start());
        assert_eq!(cc.ca_bytes_acked, MSS);
    }

    #[test]
    fn congestion_avoidance_adds_one_smss_per_window_exactly() {
        let mut cc = reno();
        cc.on_enter_recovery(T, 20 * MSS);
        cc.on_exit_recovery(20 * MSS); // cwnd = ssthresh = 10 SMSS
        assert_eq!((cc.cwnd(), cc.ssthresh()), (10 * MSS, 10 * MSS));
        for i in 1..=10 {
            cc.on_ack(T, MSS, None);
            assert_eq!(cc.cwnd(), if i < 10 { 10 * MSS } else { 11 * MSS }, "ack {i}");
        }
        // Next window is 11 SMSS: 11 ACKs of one SMSS, or 22 of half an SMSS.
        for i in 1..=22 {
            cc.on_ack(T, MSS / 2, None);
            assert_eq!(cc.cwnd(), if i < 22 { 11 * MSS } else { 12 * MSS }, "ack {i}");
        }
        // A stretch ACK of three windows grows by one SMSS only.
        cc.on_ack(T, 36 * MSS, None);
        assert_eq!(cc.cwnd(), 13 * MSS);
        assert!(cc.ca_bytes_acked < cc.cwnd());
    }

    #[test]
    fn fast_recovery_follows_rfc6582() {
        let mut cc = reno();
        cc.on_enter_recovery(T, 10 * MSS);
        assert_eq!(cc.ssthresh(), 5 * MSS);
        assert_eq!(cc.cwnd(), 8 * MSS);
        cc.on_dup_ack_in_recovery();
        cc.on_dup_ack_in_recovery();
        assert_eq!(cc.cwnd(), 10 * MSS);
        // Partial ACK of 3 SMSS: deflate by 3, add back 1.
        cc.on_partial_ack(3 * MSS);
        assert_eq!(cc.cwnd(), 8 * MSS);
        // Partial ACK below one SMSS: no add-back.
        cc.on_partial_ack(MSS / 2);
        assert_eq!(cc.cwnd(), 8 * MSS - MSS / 2);
        // Never below one SMSS.
        cc.on_partial_ack(100 * MSS);
        assert_eq!(cc.cwnd(), MSS);
        // Full ACK: min(ssthresh, max(flight, SMSS) + SMSS).
        cc.on_exit_recovery(2 * MSS);
        assert_eq!(cc.cwnd(), 3 * MSS);
        cc.on_exit_recovery(0);
        assert_eq!(cc.cwnd(), 2 * MSS);
        cc.on_exit_recovery(50 * MSS);
        assert_eq!(cc.cwnd(), 5 * MSS);
    }

    #[test]
    fn small_flight_gives_two_segment_ssthresh() {
        let mut cc = reno();
        cc.on_enter_recovery(T, MSS);
        assert_eq!(cc.ssthresh(), 2 * MSS);
        cc.on_rto(0);
        assert_eq!(cc.ssthresh(), 2 * MSS);
    }

    #[test]
    fn repeated_rto_holds_ssthresh() {
        let mut cc = reno();
        cc.on_rto(40 * MSS);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 20 * MSS));
        // Same segment times out again; the flight looks tiny now but ssthresh stays.
        cc.on_rto(MSS);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 20 * MSS));
        // After progress, a new timeout reduces again.
        cc.on_ack(T, MSS, None);
        cc.on_rto(6 * MSS);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 3 * MSS));
    }

    #[test]
    fn idle_restart_caps_at_initial_window() {
        let mut cc = reno();
        for _ in 0..20 {
            cc.on_ack(T, MSS, None);
        }
        assert_eq!(cc.cwnd(), 30 * MSS);
        cc.on_idle_restart();
        assert_eq!(cc.cwnd(), 10 * MSS);
        cc.on_rto(10 * MSS);
        cc.on_idle_restart();
        assert_eq!(cc.cwnd(), MSS, "a smaller window is kept");
    }

    #[test]
    fn undo_restores_prior_values() {
        let mut cc = reno();
        for _ in 0..10 {
            cc.on_ack(T, MSS, None);
        }
        let (prior_cwnd, prior_ssthresh) = (cc.cwnd(), cc.ssthresh());
        cc.on_rto(prior_cwnd);
        assert_ne!(cc.cwnd(), prior_cwnd);
        cc.undo(prior_cwnd, prior_ssthresh);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (prior_cwnd, prior_ssthresh));
        // Undo never shrinks a window that grew past the prior one.
        cc.on_ack(T, MSS, None);
        cc.undo(MSS, 2 * MSS);
        assert_eq!(cc.cwnd(), prior_cwnd + MSS);
        // And clears the RTO hold: the next timeout reduces.
        cc.on_rto(8 * MSS);
        cc.undo(prior_cwnd, 20 * MSS);
        cc.on_rto(8 * MSS);
        assert_eq!(cc.ssthresh(), 4 * MSS);
    }

    #[test]
    fn set_mss_before_data_restarts_initial_window() {
        let mut cc = NewReno::new(1460, 10);
        assert_eq!(cc.cwnd(), 14600);
        cc.set_mss(536);
        assert_eq!(cc.cwnd(), 5360);
        cc.set_mss(8960);
        assert_eq!(cc.cwnd(), 17920);
        // Later changes keep the window in segments.
        cc.on_rto(20 * 8960);
        cc.on_ack(T, 8960, None);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (2 * 8960, 10 * 8960));
        cc.set_mss(1000);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (2000, 10_000));
        cc.set_mss(0);
        assert_eq!(cc.mss(), 1);
        assert!(cc.cwnd() >= 1);
    }

    #[test]
    fn window_is_capped() {
        let mut cc = NewReno::new(65_535, 10);
        for _ in 0..100_000 {
            cc.on_ack(T, u32::MAX, None);
        }
        assert_eq!(cc.cwnd(), MAX_CWND);
        for _ in 0..100 {
            cc.on_dup_ack_in_recovery();
        }
        assert_eq!(cc.cwnd(), MAX_CWND);
        cc.on_enter_recovery(T, u32::MAX);
        assert_eq!(cc.cwnd(), MAX_CWND);
        cc.undo(u32::MAX, u32::MAX);
        assert_eq!(cc.cwnd(), MAX_CWND);
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Ack(u32),
        Enter(u32),
        Dup,
        Partial(u32),
        Exit(u32),
        Rto(u32),
        Idle,
        Undo(u32, u32),
        Mss(u32),
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            6 => (0u32..100_000).prop_map(Ev::Ack),
            1 => any::<u32>().prop_map(Ev::Enter),
            2 => Just(Ev::Dup),
            1 => any::<u32>().prop_map(Ev::Partial),
            1 => any::<u32>().prop_map(Ev::Exit),
            1 => any::<u32>().prop_map(Ev::Rto),
            1 => Just(Ev::Idle),
            1 => (any::<u32>(), any::<u32>()).prop_map(|(a, b)| Ev::Undo(a, b)),
            1 => (0u32..70_000).prop_map(Ev::Mss),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold_for_any_event_sequence(
            mss in 1u32..10_000, iw in 0u32..100, events in proptest::collection::vec(ev(), 1..200),
        ) {
            let mut cc = NewReno::new(mss, iw);
            for e in events {
                match e {
                    Ev::Ack(n) => cc.on_ack(T, n, None),
                    Ev::Enter(f) => cc.on_enter_recovery(T, f),
                    Ev::Dup => cc.on_dup_ack_in_recovery(),
                    Ev::Partial(n) => cc.on_partial_ack(n),
                    Ev::Exit(f) => cc.on_exit_recovery(f),
                    Ev::Rto(f) => cc.on_rto(f),
                    Ev::Idle => cc.on_idle_restart(),
                    Ev::Undo(c, s) => cc.undo(c, s),
                    Ev::Mss(m) => cc.set_mss(m),
                }
                prop_assert!(cc.cwnd() >= cc.mss() && cc.cwnd() <= MAX_CWND, "{:?}", cc);
                prop_assert!(cc.ssthresh() >= 2 * cc.mss() && cc.ssthresh() <= INFINITE_SSTHRESH, "{:?}", cc);
                prop_assert!(cc.ca_bytes_acked < cc.cwnd().max(1) || cc.ca_bytes_acked == 0, "{:?}", cc);
            }
        }
    }
}
