//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! One [`RttEstimator`] lives in every connection, so it is 24 bytes: microsecond values in `u32`s (4295 s of
//! range, far beyond any sane RTO) and the backoff count in a `u8`.
//!
//! Karn's rule (RFC 6298 §3) is the caller's job: feed [`RttEstimator::sample`] only with measurements that are
//! unambiguous, i.e. from segments that were never retransmitted, or from RFC 7323 timestamp echoes (which name the
//! transmission they answer). The backed-off RTO is kept until such a sample arrives (Karn's algorithm, RFC 6298
//! §5.7's note; Linux: "only reset backoff on valid RTT measurement"): an ACK of retransmitted data proves nothing
//! about the path, and collapsing the RTO on it is what made a path slower than the initial RTO time out forever.

use std::time::Duration;

/// RFC 6298 §2.1: the RTO before any sample, and §5.7's fallback after a lost SYN.
const INITIAL_RTO_US: u32 = 1_000_000;
/// RFC 6298 §5.7: if the SYN or SYN-ACK was retransmitted (and no sample taken), data starts with an RTO of 3 s.
const FALLBACK_RTO_US: u32 = 3_000_000;
/// Clock granularity G of RFC 6298 §2: our clock ticks in microseconds, but timers fire on a coarser wheel; 1 ms
/// keeps RTO above SRTT by a meaningful margin on an RTT-stable path.
const GRANULARITY_US: u32 = 1_000;
/// Beyond this many doublings the RTO is at its maximum anyway (1 µs << 32 > u32::MAX µs).
const MAX_BACKOFF: u8 = 32;

/// RFC 6298 SRTT/RTTVAR estimator and RTO with exponential backoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RttEstimator {
    /// Smoothed RTT in µs; 0 means "no sample yet" (samples are raised to at least 1 µs so SRTT never reaches 0).
    srtt_us: u32,
    /// RTT variation in µs.
    rttvar_us: u32,
    /// The RTO before backoff, already clamped to [min, max].
    base_rto_us: u32,
    min_rto_us: u32,
    max_rto_us: u32,
    /// Number of times the timer has been backed off (RFC 6298 §5.5) since the last reset.
    backoff: u8,
}

fn duration_to_us(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

impl RttEstimator {
    /// An estimator with no samples: RTO is 1 s (RFC 6298 §2.1) clamped to `[min_rto, max_rto]`.
    /// `max_rto` below `min_rto` is raised to `min_rto` rather than rejected.
    pub fn new(min_rto: Duration, max_rto: Duration) -> Self {
        let min_rto_us = duration_to_us(min_rto);
        let max_rto_us = duration_to_us(max_rto).max(min_rto_us);
        RttEstimator {
            srtt_us: 0,
            rttvar_us: 0,
            base_rto_us: INITIAL_RTO_US.clamp(min_rto_us, max_rto_us),
            min_rto_us,
            max_rto_us,
            backoff: 0,
        }
    }

    /// Takes one RTT measurement `rtt` (RFC 6298 §2.2 for the first, §2.3 for the rest) and recomputes the RTO as
    /// SRTT + max(G, 4·RTTVAR), clamped to `[min_rto, max_rto]` (§2.4, §2.5; the minimum is Linux's 200 ms by
    /// default rather than the RFC's 1 s). A valid sample also ends the backoff (RFC 6298 §5.7 note: the new RTO
    /// may "collapse" the backed-off one).
    pub fn sample(&mut self, rtt: Duration) {
        self.backoff = 0;
        // A zero measurement (same-tick echo) counts as 1 µs, as Linux counts it as 1 jiffy.
        let r = duration_to_us(rtt).max(1) as u64;
        if self.srtt_us == 0 {
            // §2.2: SRTT <- R, RTTVAR <- R/2.
            self.srtt_us = r as u32;
            self.rttvar_us = (r / 2) as u32;
        } else {
            // §2.3, in this order (RTTVAR uses the old SRTT): beta = 1/4, alpha = 1/8.
            let srtt = self.srtt_us as u64;
            let delta = srtt.abs_diff(r);
            self.rttvar_us = ((3 * self.rttvar_us as u64 + delta) / 4) as u32;
            // (7·SRTT + R)/8 stays >= 1 when both are >= 1, so "no sample" (0) is never reached again.
            self.srtt_us = ((7 * srtt + r) / 8) as u32;
        }
        let rto = self.srtt_us as u64 + (4 * self.rttvar_us as u64).max(GRANULARITY_US as u64);
        self.base_rto_us = rto.clamp(self.min_rto_us as u64, self.max_rto_us as u64) as u32;
    }

    /// The timeout to arm now: the base RTO doubled per backoff (RFC 6298 §5.5), at most `max_rto`.
    pub fn rto(&self) -> Duration {
        let us = if self.backoff >= MAX_BACKOFF {
            self.max_rto_us as u64
        } else {
            // base < 2^32 and shift < 32: no overflow in u64.
            ((self.base_rto_us as u64) << self.backoff).min(self.max_rto_us as u64)
        };
        Duration::from_micros(us)
    }

    /// The RTO without backoff.
    pub fn base_rto(&self) -> Duration {
        Duration::from_micros(self.base_rto_us as u64)
    }

    /// RFC 6298 §5.5: the retransmission timer expired; the next RTO is twice the last (up to `max_rto`).
    pub fn backoff(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Back to the un-doubled RTO without a sample (the handshake completed, or a zero window opened).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// How many times the timer was backed off since the last reset (saturates at 255); callers compare it with
    /// `tcp_retries2` and friends.
    pub fn backoff_count(&self) -> u32 {
        self.backoff as u32
    }

    /// The smoothed RTT, `None` before the first sample.
    pub fn srtt(&self) -> Option<Duration> {
        (self.srtt_us != 0).then(|| Duration::from_micros(self.srtt_us as u64))
    }

    /// The RTT variation (zero before the first sample).
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar_us as u64)
    }

    /// True once a sample has been taken.
    pub fn has_sample(&self) -> bool {
        self.srtt_us != 0
    }

    /// RFC 6298 §5.7: the SYN (or SYN-ACK) had to be retransmitted and no RTT sample came of the handshake, so the
    /// base RTO becomes 3 s (clamped) once data transfer starts. No effect if a sample was taken.
    pub fn fallback_after_syn_timeout(&mut self) {
        if self.srtt_us == 0 {
            self.base_rto_us = FALLBACK_RTO_US.clamp(self.min_rto_us, self.max_rto_us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn linux_default() -> RttEstimator {
        RttEstimator::new(ms(200), ms(120_000))
    }

    #[test]
    fn size_is_small() {
        assert_eq!(core::mem::size_of::<RttEstimator>(), 24);
    }

    #[test]
    fn initial_rto_is_one_second_clamped() {
        let e = linux_default();
        assert_eq!(e.rto(), ms(1000));
        assert_eq!(e.srtt(), None);
        assert_eq!(e.rttvar(), Duration::ZERO);
        assert!(!e.has_sample());
        assert_eq!(RttEstimator::new(ms(1500), ms(60_000)).rto(), ms(1500));
        assert_eq!(RttEstimator::new(ms(10), ms(500)).rto(), ms(500));
        // max below min: min wins, no panic.
        assert_eq!(RttEstimator::new(ms(300), ms(100)).rto(), ms(300));
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar() {
        let mut e = RttEstimator::new(Duration::ZERO, ms(60_000));
        e.sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), ms(50));
        // RTO = 100 + 4*50 = 300 ms.
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn subsequent_samples_follow_rfc6298_2_3() {
        let mut e = RttEstimator::new(Duration::ZERO, ms(60_000));
        e.sample(ms(100));
        e.sample(ms(200));
        // RTTVAR = 3/4*50 + 1/4*|100-200| = 37.5 + 25 = 62.5 ms; SRTT = 7/8*100 + 1/8*200 = 112.5 ms.
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(112_500 + 4 * 62_500));
    }

    #[test]
    fn steady_rtt_converges_and_granularity_floor_applies() {
        let mut e = RttEstimator::new(Duration::ZERO, ms(60_000));
        for _ in 0..200 {
            e.sample(Duration::from_micros(50));
        }
        assert_eq!(e.srtt(), Some(Duration::from_micros(50)));
        assert_eq!(e.rttvar(), Duration::ZERO);
        // RTTVAR decayed to zero: RTO = SRTT + G.
        assert_eq!(e.rto(), Duration::from_micros(50 + 1000));
    }

    #[test]
    fn min_rto_clamps_small_paths() {
        let mut e = linux_default();
        e.sample(ms(1));
        assert_eq!(e.rto(), ms(200));
        assert_eq!(e.srtt(), Some(ms(1)));
    }

    #[test]
    fn max_rto_clamps_huge_samples() {
        let mut e = linux_default();
        e.sample(Duration::from_secs(100_000)); // beyond u32 µs: saturates, no overflow
        assert_eq!(e.rto(), ms(120_000));
        e.sample(Duration::from_secs(100_000));
        assert_eq!(e.rto(), ms(120_000));
    }

    #[test]
    fn zero_sample_counts_as_one_microsecond() {
        let mut e = RttEstimator::new(Duration::ZERO, ms(60_000));
        e.sample(Duration::ZERO);
        assert!(e.has_sample());
        assert_eq!(e.srtt(), Some(Duration::from_micros(1)));
        for _ in 0..10 {
            e.sample(Duration::ZERO);
        }
        assert!(e.has_sample());
    }

    #[test]
    fn backoff_doubles_up_to_max_and_resets() {
        let mut e = linux_default();
        e.sample(ms(100)); // RTO 300 ms
        assert_eq!(e.rto(), ms(300));
        e.backoff();
        assert_eq!(e.rto(), ms(600));
        assert_eq!(e.base_rto(), ms(300));
        e.backoff();
        assert_eq!(e.rto(), ms(1200));
        assert_eq!(e.backoff_count(), 2);
        for _ in 0..300 {
            e.backoff();
        }
        assert_eq!(e.backoff_count(), 255);
        assert_eq!(e.rto(), ms(120_000));
        e.reset_backoff();
        assert_eq!(e.backoff_count(), 0);
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn valid_sample_ends_backoff() {
        let mut e = linux_default();
        e.backoff();
        assert_eq!(e.rto(), ms(2000));
        e.sample(ms(100));
        assert_eq!(e.backoff_count(), 0);
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn syn_timeout_fallback() {
        let mut e = linux_default();
        e.fallback_after_syn_timeout();
        assert_eq!(e.rto(), ms(3000));
        let mut e = linux_default();
        e.sample(ms(10));
        e.fallback_after_syn_timeout();
        assert_eq!(e.rto(), ms(200));
    }

    #[test]
    fn rto_stays_within_bounds_for_any_sample_sequence() {
        use proptest::prelude::*;
        proptest!(|(samples in proptest::collection::vec(0u64..200_000_000, 1..50), backoffs in 0u8..40)| {
            let mut e = linux_default();
            for s in &samples {
                e.sample(Duration::from_micros(*s));
                prop_assert!(e.rto() >= ms(200) && e.rto() <= ms(120_000));
                prop_assert!(e.srtt().unwrap() >= Duration::from_micros(1));
            }
            for _ in 0..backoffs {
                let before = e.rto();
                e.backoff();
                prop_assert!(e.rto() >= before && e.rto() <= ms(120_000));
            }
        });
    }
}
