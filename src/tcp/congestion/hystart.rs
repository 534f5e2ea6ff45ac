//! HyStart++ (RFC 9406): leave slow start before it overshoots, by watching the round's minimum RTT.
//!
//! The algorithm that embeds it (CUBIC) asks [`HyStart::growth_divisor`] how to scale slow-start growth and calls
//! [`HyStart::on_round_start`] / [`HyStart::on_rtt_sample`]; the engine says when a round begins (an ACK passed the
//! highest sequence sent when the previous round began). No clock and no window of its own.

use std::time::Duration;

/// RFC 9406 §4.3 constants.
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u16 = 8;
/// Conservative slow start grows by 1/CSS_GROWTH_DIVISOR of what slow start would.
pub const CSS_GROWTH_DIVISOR: u32 = 4;
const CSS_ROUNDS: u8 = 5;

/// Where HyStart++ stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Standard slow start, watching for an RTT increase.
    SlowStart,
    /// Conservative slow start (RFC 9406 §4.2): reduced growth, `rounds` rounds so far.
    Conservative { baseline: Duration, rounds: u8 },
    /// Slow start ended (by HyStart++ or by a loss); nothing more to do until a timeout restarts slow start.
    Done,
}

/// What a round boundary or sample decided.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// CSS_ROUNDS of conservative slow start passed without the RTT falling back: set ssthresh = cwnd and enter
    /// congestion avoidance (RFC 9406 §4.2).
    ExitSlowStart,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HyStart {
    phase: Phase,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u16,
}

impl Default for HyStart {
    fn default() -> Self {
        HyStart { phase: Phase::SlowStart, last_round_min: None, current_round_min: None, samples: 0 }
    }
}

impl HyStart {
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Slow-start growth is divided by this (1, or CSS_GROWTH_DIVISOR in conservative slow start).
    pub fn growth_divisor(&self) -> u32 {
        match self.phase {
            Phase::Conservative { .. } => CSS_GROWTH_DIVISOR,
            _ => 1,
        }
    }

    /// RFC 9406 §4.2: at the start of each round, the current round's minimum becomes the last round's.
    pub fn on_round_start(&mut self) -> Verdict {
        self.last_round_min = self.current_round_min.take();
        self.samples = 0;
        if let Phase::Conservative { baseline, rounds } = self.phase {
            let rounds = rounds + 1;
            if rounds >= CSS_ROUNDS {
                self.phase = Phase::Done;
                return Verdict::ExitSlowStart;
            }
            self.phase = Phase::Conservative { baseline, rounds };
        }
        Verdict::Continue
    }

    /// One RTT sample taken while in slow start.
    pub fn on_rtt_sample(&mut self, rtt: Duration) {
        if self.phase == Phase::Done {
            return;
        }
        self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
        self.samples = self.samples.saturating_add(1);
        if self.samples < N_RTT_SAMPLE {
            return;
        }
        let (Some(current), Some(last)) = (self.current_round_min, self.last_round_min) else { return };
        match self.phase {
            Phase::SlowStart => {
                // RttThresh = clamp(lastRoundMinRTT / 8, 4 ms, 16 ms).
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if current >= last + thresh {
                    self.phase = Phase::Conservative { baseline: current, rounds: 0 };
                }
            }
            Phase::Conservative { baseline, .. } => {
                // The RTT increase was spurious: back to standard slow start.
                if current < baseline {
                    self.phase = Phase::SlowStart;
                }
            }
            Phase::Done => {}
        }
    }

    /// Slow start ended by a loss or ECN (RFC 9406 §4.2: leave slow start and conservative slow start).
    pub fn on_congestion(&mut self) {
        self.phase = Phase::Done;
    }

    /// A retransmission timeout restarts slow start: HyStart++ runs again with fresh samples (RFC 9406 §4.3
    /// recommends using it in every slow start).
    pub fn restart(&mut self) {
        *self = HyStart::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn round(h: &mut HyStart, rtt: Duration) -> Verdict {
        let v = h.on_round_start();
        for _ in 0..N_RTT_SAMPLE {
            h.on_rtt_sample(rtt);
        }
        v
    }

    #[test]
    fn flat_rtt_stays_in_slow_start() {
        let mut h = HyStart::default();
        for _ in 0..20 {
            assert_eq!(round(&mut h, ms(50)), Verdict::Continue);
        }
        assert_eq!(h.phase(), Phase::SlowStart);
        assert_eq!(h.growth_divisor(), 1);
    }

    #[test]
    fn rtt_increase_above_threshold_enters_css_then_exits_after_five_rounds() {
        let mut h = HyStart::default();
        round(&mut h, ms(80));
        // Threshold: 80/8 = 10 ms; 89 ms is not enough, 90 ms is.
        round(&mut h, ms(89));
        assert_eq!(h.phase(), Phase::SlowStart);
        round(&mut h, ms(80));
        round(&mut h, ms(90));
        assert_eq!(h.phase(), Phase::Conservative { baseline: ms(90), rounds: 0 });
        assert_eq!(h.growth_divisor(), CSS_GROWTH_DIVISOR);
        for r in 1..CSS_ROUNDS {
            assert_eq!(round(&mut h, ms(95)), Verdict::Continue, "round {r}");
        }
        assert_eq!(h.on_round_start(), Verdict::ExitSlowStart);
        assert_eq!(h.phase(), Phase::Done);
    }

    #[test]
    fn threshold_is_clamped_between_4_and_16_ms() {
        // Tiny RTT: 8/8 = 1 ms is raised to 4 ms.
        let mut h = HyStart::default();
        round(&mut h, ms(8));
        round(&mut h, ms(11));
        assert_eq!(h.phase(), Phase::SlowStart);
        round(&mut h, ms(8));
        round(&mut h, ms(12));
        assert!(matches!(h.phase(), Phase::Conservative { .. }));
        // Huge RTT: 400/8 = 50 ms is capped at 16 ms.
        let mut h = HyStart::default();
        round(&mut h, ms(400));
        round(&mut h, ms(416));
        assert!(matches!(h.phase(), Phase::Conservative { .. }));
    }

    #[test]
    fn rtt_falling_below_baseline_resumes_slow_start() {
        let mut h = HyStart::default();
        round(&mut h, ms(50));
        round(&mut h, ms(70));
        assert!(matches!(h.phase(), Phase::Conservative { .. }));
        round(&mut h, ms(60));
        assert_eq!(h.phase(), Phase::SlowStart);
    }

    #[test]
    fn too_few_samples_decide_nothing() {
        let mut h = HyStart::default();
        round(&mut h, ms(50));
        h.on_round_start();
        for _ in 0..N_RTT_SAMPLE - 1 {
            h.on_rtt_sample(ms(200));
        }
        assert_eq!(h.phase(), Phase::SlowStart);
        h.on_rtt_sample(ms(200));
        assert!(matches!(h.phase(), Phase::Conservative { .. }));
    }

    #[test]
    fn congestion_ends_it_and_restart_resets() {
        let mut h = HyStart::default();
        h.on_congestion();
        assert_eq!(h.phase(), Phase::Done);
        round(&mut h, ms(10));
        round(&mut h, ms(100));
        assert_eq!(h.phase(), Phase::Done);
        h.restart();
        assert_eq!(h, HyStart::default());
    }
}
