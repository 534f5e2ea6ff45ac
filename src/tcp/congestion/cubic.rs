//! CUBIC (RFC 9438) with HyStart++ (RFC 9406) slow start (Linux's `tcp_cubic.c`, its default).
//!
//! Window arithmetic only, in bytes at the interface and in segments inside the cubic function (the RFC's units:
//! C = 0.4 segments/s³). The engine runs loss detection and recovery; during recovery it paces sending itself (PRR)
//! and uses [`CongestionControl::ssthresh`] as the target.

use std::time::Duration;

use super::hystart::{HyStart, Phase, Verdict};
use super::{initial_window, CongestionControl, INFINITE_SSTHRESH, MAX_CWND};
use crate::time::Instant;

/// RFC 9438 §4.1 constants.
pub const C: f64 = 0.4;
pub const BETA: f64 = 0.7;
/// RFC 9438 §4.3: α_cubic = 3·(1-β)/(1+β), the Reno-friendly additive increase while W_est < W_max.
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);
/// RFC 3465 §2.2 slow-start limit, as in NewReno.
const ABC_LIMIT_SEGMENTS: u32 = 2;
const MAX_MSS: u32 = 65_535;

/// The state of one congestion-avoidance epoch (RFC 9438 §4.2), started at the first ACK after a reduction.
#[derive(Clone, Debug, PartialEq)]
struct Epoch {
    start: Instant,
    /// cwnd at the start of the epoch, segments.
    cwnd: f64,
    /// Seconds the window takes to climb back to W_max.
    k: f64,
    /// RFC 9438 §4.3 Reno-friendly estimate, segments.
    w_est: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cubic {
    mss: u32,
    cwnd: u32,
    ssthresh: u32,
    initial_segments: u32,
    /// W_max in segments: the window before the last reduction (after fast convergence).
    w_max: f64,
    /// W_max before the last reduction, restored by an undo (RFC 9438 §4.9).
    prior_w_max: f64,
    epoch: Option<Epoch>,
    /// Fractional bytes of growth not yet applied.
    growth: f64,
    /// Smoothed RTT the algorithm tracks for its t + RTT target, microseconds (0 before a sample).
    srtt_us: u64,
    rto_held: bool,
    hystart: HyStart,
}

impl Cubic {
    pub fn new(mss: u32, initial_segments: u32) -> Self {
        let mss = mss.clamp(1, MAX_MSS);
        let initial_segments = initial_segments.max(1);
        Cubic {
            mss,
            cwnd: initial_window(initial_segments, mss),
            ssthresh: INFINITE_SSTHRESH,
            initial_segments,
            w_max: 0.0,
            prior_w_max: 0.0,
            epoch: None,
            growth: 0.0,
            srtt_us: 0,
            rto_held: false,
            hystart: HyStart::default(),
        }
    }

    pub fn mss(&self) -> u32 {
        self.mss
    }

    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// K of the current epoch, seconds (none before the first congestion-avoidance ACK after a reduction).
    pub fn k(&self) -> Option<f64> {
        self.epoch.as_ref().map(|e| e.k)
    }

    pub fn hystart_phase(&self) -> Phase {
        self.hystart.phase()
    }

    fn initial_window(&self) -> u32 {
        initial_window(self.initial_segments, self.mss)
    }

    fn segments(&self, bytes: u32) -> f64 {
        bytes as f64 / self.mss as f64
    }

    fn set_cwnd(&mut self, cwnd: u64) {
        self.cwnd = cwnd.clamp(self.mss as u64, MAX_CWND as u64) as u32;
    }

    /// RFC 9438 eq. 1: W_cubic(t) = C·(t - K)³ + W_max, segments.
    pub fn w_cubic(&self, t: f64) -> Option<f64> {
        let e = self.epoch.as_ref()?;
        Some(C * (t - e.k).powi(3) + self.w_max)
    }

    /// RFC 9438 §4.6 (and §4.7 fast convergence): a congestion event with `flight_size` bytes outstanding.
    fn reduce(&mut self, flight_size: u32) {
        self.prior_w_max = self.w_max;
        let cwnd = self.segments(self.cwnd);
        // Fast convergence: a flow whose window stopped short of the previous W_max releases bandwidth sooner.
        self.w_max = if cwnd < self.w_max { cwnd * (1.0 + BETA) / 2.0 } else { cwnd };
        let ss = (flight_size as f64 * BETA) as u64;
        self.ssthresh = ss.clamp(2 * self.mss as u64, INFINITE_SSTHRESH as u64) as u32;
        self.epoch = None;
        self.growth = 0.0;
        self.hystart.on_congestion();
    }

    /// Starts a congestion-avoidance epoch (RFC 9438 §4.2): K = ∛((W_max - cwnd_epoch)/C), or 0 above W_max.
    fn start_epoch(&mut self, now: Instant) {
        let cwnd = self.segments(self.cwnd);
        if self.w_max < cwnd {
            // Congestion avoidance entered from slow start (HyStart++ exit or ssthresh reached above W_max): the
            // plateau is here (RFC 9438 §4.10).
            self.w_max = cwnd;
        }
        let k = ((self.w_max - cwnd) / C).cbrt();
        self.epoch = Some(Epoch { start: now, cwnd, k, w_est: cwnd });
    }

    fn congestion_avoidance(&mut self, now: Instant, acked: u32) {
        if self.epoch.is_none() {
            self.start_epoch(now);
        }
        let cwnd = self.segments(self.cwnd);
        let acked_segs = self.segments(acked);
        let e = self.epoch.as_mut().expect("started above");
        let t = now.saturating_since(e.start).as_secs_f64();
        // RFC 9438 §4.3: W_est grows by α per window of ACKs, by 1 once it passed W_max.
        let alpha = if e.w_est >= self.w_max { 1.0 } else { ALPHA };
        e.w_est += alpha * acked_segs / cwnd;
        let w_est = e.w_est;
        let rtt = Duration::from_micros(self.srtt_us).as_secs_f64();
        let now_cubic = C * (t - e.k).powi(3) + self.w_max;
        let delta = if now_cubic < w_est {
            // Reno-friendly region: follow W_est.
            (w_est - cwnd).max(0.0)
        } else {
            // RFC 9438 §4.4/§4.5: target = W_cubic(t + RTT), clamped to [cwnd, 1.5·cwnd]; grow by
            // (target - cwnd)/cwnd per segment acknowledged.
            let target = (C * (t + rtt - e.k).powi(3) + self.w_max).clamp(cwnd, 1.5 * cwnd);
            (target - cwnd) / cwnd * acked_segs
        };
        self.growth += delta * self.mss as f64;
        let whole = self.growth.floor();
        if whole >= 1.0 {
            self.growth -= whole;
            self.set_cwnd(self.cwnd as u64 + whole as u64);
        }
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }

    fn cwnd(&self) -> u32 {
        self.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn state_name(&self) -> &'static str {
        if self.cwnd < self.ssthresh {
            match self.hystart.phase() {
                Phase::Conservative { .. } => "hystart_css",
                _ => "slow_start",
            }
        } else {
            "cong_avoid"
        }
    }

    /// As NewReno: the window keeps its size in segments.
    fn set_mss(&mut self, mss: u32) {
        let mss = mss.clamp(1, MAX_MSS);
        if mss == self.mss {
            return;
        }
        let untouched = self.cwnd == self.initial_window() && self.ssthresh == INFINITE_SSTHRESH;
        let old = self.mss as u64;
        self.mss = mss;
        self.growth = 0.0;
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

    fn on_round_start(&mut self) {
        if self.cwnd < self.ssthresh && self.hystart.on_round_start() == Verdict::ExitSlowStart {
            // RFC 9406 §4.2: CSS_ROUNDS without the RTT falling back: ssthresh = cwnd, congestion avoidance.
            self.ssthresh = self.cwnd.max(2 * self.mss);
        }
    }

    fn on_ack(&mut self, now: Instant, bytes_acked: u32, rtt: Option<Duration>) {
        self.rto_held = false;
        if let Some(rtt) = rtt {
            let us = rtt.as_micros().min(u64::MAX as u128) as u64;
            self.srtt_us = if self.srtt_us == 0 { us } else { (self.srtt_us * 7 + us) / 8 };
            if self.cwnd < self.ssthresh {
                self.hystart.on_rtt_sample(rtt);
            }
        }
        let mut acked = bytes_acked;
        if acked == 0 {
            return;
        }
        if self.cwnd < self.ssthresh {
            // RFC 5681 slow start with RFC 3465 L = 2, divided by CSS_GROWTH_DIVISOR in HyStart++'s conservative
            // slow start.
            let divisor = self.hystart.growth_divisor();
            let growth = acked.min(ABC_LIMIT_SEGMENTS * self.mss) / divisor;
            let room = self.ssthresh - self.cwnd;
            if growth < room {
                self.set_cwnd(self.cwnd as u64 + growth.max(1) as u64);
                return;
            }
            acked = (acked as u64).saturating_sub(room as u64 * divisor as u64) as u32;
            self.set_cwnd(self.ssthresh as u64);
            if self.cwnd < self.ssthresh {
                return;
            }
            self.epoch = None;
            if acked == 0 {
                return;
            }
        }
        self.congestion_avoidance(now, acked);
    }

    /// RFC 9438 §4.6: ssthresh = β·FlightSize, W_max from cwnd (fast convergence). The window is inflated like
    /// NewReno's (ssthresh + 3 SMSS) for engines that count duplicate ACKs; with PRR the engine ignores it.
    fn on_enter_recovery(&mut self, _now: Instant, flight_size: u32) {
        self.reduce(flight_size);
        self.set_cwnd(self.ssthresh as u64 + 3 * self.mss as u64);
        self.rto_held = false;
    }

    fn on_dup_ack_in_recovery(&mut self) {
        self.set_cwnd(self.cwnd as u64 + self.mss as u64);
    }

    fn on_partial_ack(&mut self, bytes_acked: u32) {
        let mut cwnd = (self.cwnd as u64).saturating_sub(bytes_acked as u64);
        if bytes_acked >= self.mss {
            cwnd += self.mss as u64;
        }
        self.set_cwnd(cwnd);
    }

    /// Recovery ends with cwnd = ssthresh (RFC 9438 §4.6; PRR has already brought the flight there), bounded by
    /// flight + 1 SMSS against a burst, as NewReno.
    fn on_exit_recovery(&mut self, flight_size: u32) {
        let deflated = flight_size.max(self.mss) as u64 + self.mss as u64;
        self.set_cwnd(deflated.min(self.ssthresh as u64));
        self.epoch = None;
        self.growth = 0.0;
    }

    /// RFC 9438 §4.8: a timeout reduces like a congestion event (once per timed-out segment) and restarts slow
    /// start from one segment.
    fn on_rto(&mut self, flight_size: u32) {
        if !self.rto_held {
            self.reduce(flight_size);
        }
        self.cwnd = self.mss;
        self.epoch = None;
        self.growth = 0.0;
        self.rto_held = true;
        self.hystart.restart();
    }

    /// RFC 5681 §4.1 restart window; the epoch restarts so the idle time does not count as growth time (Linux
    /// shifts the epoch on CA_EVENT_TX_START for the same reason).
    fn on_idle_restart(&mut self) {
        self.set_cwnd(self.cwnd.min(self.initial_window()) as u64);
        self.epoch = None;
        self.growth = 0.0;
    }

    /// RFC 9438 §4.9: a spurious reduction is undone, W_max included.
    fn undo(&mut self, prior_cwnd: u32, prior_ssthresh: u32) {
        self.set_cwnd(self.cwnd.max(prior_cwnd) as u64);
        self.ssthresh = self.ssthresh.max(prior_ssthresh.min(INFINITE_SSTHRESH));
        if self.prior_w_max > self.w_max {
            self.w_max = self.prior_w_max;
        }
        self.epoch = None;
        self.growth = 0.0;
        self.rto_held = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSS: u32 = 1000;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A CUBIC that has reached `cwnd_segments` and just reduced: ssthresh = 0.7·cwnd, cwnd = ssthresh, in
    /// congestion avoidance.
    fn after_loss(cwnd_segments: u32) -> Cubic {
        let mut cc = Cubic::new(MSS, cwnd_segments);
        // initial_window caps at max(2·MSS, 14600 bytes): build the window by slow-start ACKs instead.
        while cc.cwnd() < cwnd_segments * MSS {
            cc.on_ack(at(0), MSS, None);
        }
        assert_eq!(cc.cwnd(), cwnd_segments * MSS);
        cc.on_enter_recovery(at(0), cwnd_segments * MSS);
        cc.on_exit_recovery(cwnd_segments * MSS);
        cc
    }

    #[test]
    fn constants_follow_rfc9438() {
        assert_eq!(C, 0.4);
        assert_eq!(BETA, 0.7);
        assert!((ALPHA - 0.9 / 1.7).abs() < 1e-12);
    }

    #[test]
    fn reduction_uses_beta_and_sets_w_max() {
        let cc = after_loss(100);
        assert_eq!(cc.ssthresh(), 70 * MSS);
        assert_eq!(cc.cwnd(), 70 * MSS);
        assert_eq!(cc.w_max(), 100.0);
    }

    #[test]
    fn k_matches_rfc_formula() {
        let mut cc = after_loss(100);
        cc.on_ack(at(1000), MSS, Some(Duration::from_millis(20)));
        // K = ∛((W_max - cwnd_epoch)/C) = ∛(30/0.4) = ∛75.
        let k = cc.k().unwrap();
        assert!((k - 75f64.cbrt()).abs() < 1e-9, "{k}");
        assert!((k - 4.2172).abs() < 1e-3);
    }

    #[test]
    fn window_follows_the_cubic_curve_and_plateaus_at_w_max() {
        // A large window (W_max 1000 segments, 100 ms RTT) stays out of the Reno-friendly region: K = ∛(300/0.4).
        let mut cc = after_loss(1000);
        let rtt = Duration::from_millis(100);
        let start = 1000;
        let mut now = start;
        cc.on_ack(at(now), MSS, Some(rtt));
        let k = cc.k().unwrap();
        assert!((k - 750f64.cbrt()).abs() < 1e-9);
        let mut checked = 0;
        for _ in 0..130 {
            // One ACK per segment, spread evenly over the RTT.
            let per_rtt = cc.cwnd() / MSS;
            for i in 0..per_rtt {
                cc.on_ack(at(now + 100 * i as u64 / per_rtt as u64), MSS, Some(rtt));
            }
            now += 100;
            let t = (now - start) as f64 / 1000.0;
            let expect = C * (t - k).powi(3) + 1000.0;
            let got = cc.cwnd() as f64 / MSS as f64;
            // Per-ACK growth toward W_cubic(t + RTT) runs at most about one RTT ahead of the curve.
            let ahead = C * (t + 0.1 - k).powi(3) + 1000.0;
            assert!(got >= expect - 2.0 && got <= ahead.max(expect) + 2.0, "t={t:.1} got {got:.2} curve {expect:.2}");
            checked += 1;
            if (t - k).abs() < 0.5 {
                assert!((got - 1000.0).abs() < 3.0, "plateau near W_max at t={t:.1}: {got:.2}");
            }
        }
        assert_eq!(checked, 130);
        // Past K the window probes above W_max (convex region).
        assert!(cc.cwnd() > 1010 * MSS, "{}", cc.cwnd());
    }

    #[test]
    fn reno_friendly_region_on_small_windows_with_long_rtt() {
        // W_max 10 segments, cwnd_epoch 7: K = ∛7.5 ≈ 1.96 s; with a 1 s RTT, Reno (α per RTT) grows faster at
        // first and CUBIC must follow W_est (RFC 9438 §4.3).
        let mut cc = after_loss(10);
        let rtt = Duration::from_secs(1);
        let mut now = 10_000;
        cc.on_ack(at(now), MSS, Some(rtt));
        let e0 = cc.epoch.clone().unwrap();
        let mut w_est = e0.w_est;
        for _ in 0..3 {
            let n = cc.cwnd() / MSS;
            for _ in 0..n {
                let cwnd = cc.cwnd() as f64 / MSS as f64;
                let alpha = if w_est >= cc.w_max() { 1.0 } else { ALPHA };
                w_est += alpha / cwnd;
                cc.on_ack(at(now), MSS, Some(rtt));
                let t = (now - 10_000) as f64 / 1000.0;
                let cubic_now = C * (t - e0.k).powi(3) + cc.w_max();
                if cubic_now < w_est {
                    // In the Reno-friendly region cwnd tracks W_est within one byte of rounding.
                    let got = cc.cwnd() as f64 / MSS as f64;
                    assert!((got - w_est).abs() < 0.01, "t={t} got {got} w_est {w_est}");
                }
            }
            now += 1000;
        }
        assert!(cc.cwnd() > 8 * MSS);
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let mut cc = after_loss(100);
        // Second loss at cwnd 70 < W_max 100: W_max = 70·(1+β)/2 = 59.5.
        cc.on_enter_recovery(at(0), 70 * MSS);
        assert!((cc.w_max() - 59.5).abs() < 1e-9, "{}", cc.w_max());
        assert_eq!(cc.ssthresh(), 49 * MSS);
        // Undo restores the previous W_max.
        cc.undo(70 * MSS, 70 * MSS);
        assert_eq!(cc.w_max(), 100.0);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (70 * MSS, 70 * MSS));
    }

    #[test]
    fn timeout_collapses_to_one_segment_and_holds_ssthresh() {
        let mut cc = after_loss(100);
        cc.on_rto(60 * MSS);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 42 * MSS));
        cc.on_rto(MSS);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 42 * MSS));
        assert_eq!(cc.state_name(), "slow_start");
    }

    #[test]
    fn hystart_exit_sets_ssthresh_and_starts_avoidance() {
        let mut cc = Cubic::new(MSS, 10);
        let mut now = 0;
        let mut rtt = 50;
        for round in 0..30 {
            cc.on_round_start();
            if cc.state_name() == "cong_avoid" {
                assert!(round > 6);
                break;
            }
            // RTT rises from the third round: the queue builds.
            if round >= 2 {
                rtt = 80;
            }
            for _ in 0..8 {
                cc.on_ack(at(now), MSS, Some(Duration::from_millis(rtt)));
            }
            now += rtt;
        }
        assert_eq!(cc.state_name(), "cong_avoid");
        assert_eq!(cc.ssthresh(), cc.cwnd());
        // Slow start, then conservative slow start at a quarter of the growth: far below 2^30.
        assert!(cc.cwnd() < 100 * MSS, "{}", cc.cwnd());
    }

    #[test]
    fn css_grows_a_quarter_as_fast() {
        let mut cc = Cubic::new(MSS, 10);
        cc.hystart = HyStart::default();
        cc.on_round_start();
        for _ in 0..8 {
            cc.on_ack(at(0), MSS, Some(Duration::from_millis(40)));
        }
        cc.on_round_start();
        for _ in 0..8 {
            cc.on_ack(at(0), MSS, Some(Duration::from_millis(60)));
        }
        assert_eq!(cc.state_name(), "hystart_css");
        let before = cc.cwnd();
        cc.on_ack(at(0), MSS, Some(Duration::from_millis(60)));
        assert_eq!(cc.cwnd() - before, MSS / 4);
    }

    proptest! {
        #[test]
        fn invariants_hold(mss in 1u32..9000, events in proptest::collection::vec((0u8..8, any::<u32>(), 0u64..100_000), 1..200)) {
            let mut cc = Cubic::new(mss, 10);
            let mut now = 0u64;
            for (kind, v, dt) in events {
                now += dt;
                let t = Instant::from_micros(now * 100);
                match kind {
                    0..=2 => cc.on_ack(t, v % 200_000, Some(Duration::from_micros(dt))),
                    3 => cc.on_enter_recovery(t, v),
                    4 => cc.on_exit_recovery(v),
                    5 => cc.on_rto(v),
                    6 => cc.undo(v, v),
                    _ => cc.on_round_start(),
                }
                prop_assert!(cc.cwnd() >= cc.mss() && cc.cwnd() <= MAX_CWND);
                prop_assert!(cc.ssthresh() >= 2 * cc.mss().min(MAX_CWND / 2) || cc.ssthresh() == INFINITE_SSTHRESH);
                prop_assert!(cc.w_max().is_finite() && cc.growth.is_finite());
            }
        }
    }
}
