//! Congestion control (RFC 5681, RFC 6582, RFC 9438 CUBIC, RFC 9406 HyStart++), one file per algorithm like Linux's `tcp_<name>.c`.
//!
//! The engine owns loss detection and the recovery state machine (when a third duplicate ACK starts fast recovery,
//! what a partial ACK is, when an RTO fires); the algorithm only owns the window arithmetic it is told about
//! through [`CongestionControl`]. All values are bytes. Every connection embeds a [`Congestion`] value, an enum over
//! the algorithms, so dispatch is a `match` and no connection pays for a `Box`.

use std::time::Duration;

use crate::time::Instant;

pub mod cubic;
pub mod hystart;
pub mod newreno;

pub use cubic::Cubic;
pub use newreno::NewReno;

/// Upper bound of any congestion window: the largest window TCP can advertise (2^30, RFC 7323 §2.3). Keeps every
/// `cwnd + x` far from `u32` overflow.
pub const MAX_CWND: u32 = 1 << 30;

/// The "arbitrarily high" initial slow-start threshold of RFC 5681 §3.1 (Linux's `TCP_INFINITE_SSTHRESH`).
pub const INFINITE_SSTHRESH: u32 = 0x7fff_ffff;

/// Names accepted by [`Congestion::new`] (Linux's `tcp_available_congestion_control`).
pub const AVAILABLE: &[&str] = &["cubic", "reno", "newreno"];

/// RFC 6928 §2 initial window, generalized to `segments` segments: `min(segments·SMSS, max(2·SMSS, segments·1460))`.
/// With 10 segments this is the RFC's `min(10·MSS, max(2·MSS, 14600))`; the byte cap keeps jumbo-MSS paths from
/// starting with a huge burst.
pub fn initial_window(segments: u32, mss: u32) -> u32 {
    let segments = segments.max(1) as u64;
    let mss = mss.max(1) as u64;
    let iw = (segments * mss).min((2 * mss).max(segments * 1460));
    iw.min(MAX_CWND as u64) as u32
}

/// What the engine tells an algorithm, and what it asks of it. See each method for the RFC step it implements.
pub trait CongestionControl {
    /// The algorithm's name, as in `tcp_congestion_control`.
    fn name(&self) -> &'static str;
    /// Where the algorithm stands, as `ss -i` would name it (`slow_start`, `cong_avoid`, ...).
    fn state_name(&self) -> &'static str {
        if self.cwnd() < self.ssthresh() {
            "slow_start"
        } else {
            "cong_avoid"
        }
    }
    /// A new round trip began: an ACK passed the highest sequence number sent when the previous round began
    /// (RFC 9406 §4.2's rounds, for delay-aware slow start).
    fn on_round_start(&mut self) {}
    /// Congestion window, bytes.
    fn cwnd(&self) -> u32;
    /// Slow-start threshold, bytes ([`INFINITE_SSTHRESH`] until the first loss).
    fn ssthresh(&self) -> u32;
    /// The sender's MSS (SMSS) changed (negotiated in the handshake, or a path MTU change).
    fn set_mss(&mut self, mss: u32);
    /// New data was cumulatively acknowledged outside fast recovery: grow the window. `rtt` is the ACK's RTT sample,
    /// if any (for delay-aware algorithms). The engine may skip the call while the sender is application-limited
    /// (RFC 7661), as Linux does with `tcp_is_cwnd_limited`.
    fn on_ack(&mut self, now: Instant, bytes_acked: u32, rtt: Option<Duration>);
    /// RFC 6582 §3.2 step 2 (third duplicate ACK): reduce and inflate for fast recovery.
    fn on_enter_recovery(&mut self, now: Instant, flight_size: u32);
    /// RFC 6582 §3.2 step 3: a further duplicate ACK during fast recovery.
    fn on_dup_ack_in_recovery(&mut self);
    /// RFC 6582 §3.2 step 5: a partial ACK of `bytes_acked` new bytes during fast recovery.
    fn on_partial_ack(&mut self, bytes_acked: u32);
    /// RFC 6582 §3.2 step 6: the full ACK ending fast recovery; `flight_size` is what is still outstanding after it.
    fn on_exit_recovery(&mut self, flight_size: u32);
    /// RFC 5681 §3.1 eq. 4 and §3.2: the retransmission timer expired.
    fn on_rto(&mut self, flight_size: u32);
    /// RFC 5681 §4.1: the connection was idle longer than an RTO.
    fn on_idle_restart(&mut self);
    /// The last reduction was spurious (Eifel-style detection, RFC 3522 / RFC 4015, or D-SACK): restore the values
    /// saved before it.
    fn undo(&mut self, prior_cwnd: u32, prior_ssthresh: u32);
}

/// The congestion state of one connection: one variant per algorithm.
#[derive(Clone, Debug, PartialEq)]
pub enum Congestion {
    NewReno(NewReno),
    Cubic(Cubic),
}

impl Congestion {
    /// The algorithm named `algorithm` (one of [`AVAILABLE`]), starting with the initial window for
    /// `initial_cwnd_segments` segments of `mss` bytes; `None` for an unknown name.
    pub fn new(algorithm: &str, mss: u32, initial_cwnd_segments: u32) -> Option<Congestion> {
        match algorithm {
            "reno" | "newreno" => Some(Congestion::NewReno(NewReno::new(mss, initial_cwnd_segments))),
            "cubic" => Some(Congestion::Cubic(Cubic::new(mss, initial_cwnd_segments))),
            _ => None,
        }
    }
}

/// Forwards every trait method to the variant.
macro_rules! dispatch {
    ($self:ident, $cc:ident => $call:expr) => {
        match $self {
            Congestion::NewReno($cc) => $call,
            Congestion::Cubic($cc) => $call,
        }
    };
}

impl CongestionControl for Congestion {
    fn name(&self) -> &'static str {
        dispatch!(self, cc => cc.name())
    }
    fn cwnd(&self) -> u32 {
        dispatch!(self, cc => cc.cwnd())
    }
    fn state_name(&self) -> &'static str {
        dispatch!(self, cc => cc.state_name())
    }
    fn on_round_start(&mut self) {
        dispatch!(self, cc => cc.on_round_start())
    }
    fn ssthresh(&self) -> u32 {
        dispatch!(self, cc => cc.ssthresh())
    }
    fn set_mss(&mut self, mss: u32) {
        dispatch!(self, cc => cc.set_mss(mss))
    }
    fn on_ack(&mut self, now: Instant, bytes_acked: u32, rtt: Option<Duration>) {
        dispatch!(self, cc => cc.on_ack(now, bytes_acked, rtt))
    }
    fn on_enter_recovery(&mut self, now: Instant, flight_size: u32) {
        dispatch!(self, cc => cc.on_enter_recovery(now, flight_size))
    }
    fn on_dup_ack_in_recovery(&mut self) {
        dispatch!(self, cc => cc.on_dup_ack_in_recovery())
    }
    fn on_partial_ack(&mut self, bytes_acked: u32) {
        dispatch!(self, cc => cc.on_partial_ack(bytes_acked))
    }
    fn on_exit_recovery(&mut self, flight_size: u32) {
        dispatch!(self, cc => cc.on_exit_recovery(flight_size))
    }
    fn on_rto(&mut self, flight_size: u32) {
        dispatch!(self, cc => cc.on_rto(flight_size))
    }
    fn on_idle_restart(&mut self) {
        dispatch!(self, cc => cc.on_idle_restart())
    }
    fn undo(&mut self, prior_cwnd: u32, prior_ssthresh: u32) {
        dispatch!(self, cc => cc.undo(prior_cwnd, prior_ssthresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructs_by_name() {
        for name in AVAILABLE {
            let cc = Congestion::new(name, 1460, 10).unwrap();
            assert_eq!(cc.name(), if *name == "cubic" { "cubic" } else { "reno" });
            assert_eq!(cc.cwnd(), 14600);
            assert_eq!(cc.ssthresh(), INFINITE_SSTHRESH);
        }
        assert!(Congestion::new("bbr", 1460, 10).is_none());
        assert!(Congestion::new("", 1460, 10).is_none());
        assert!(Congestion::new("Reno", 1460, 10).is_none());
    }

    #[test]
    fn size_is_small() {
        // Inline in every connection (no box): CUBIC's epoch and HyStart++ samples make it the largest variant.
        assert!(core::mem::size_of::<Congestion>() <= 192, "{}", core::mem::size_of::<Congestion>());
    }

    #[test]
    fn initial_window_follows_rfc6928() {
        assert_eq!(initial_window(10, 1460), 14600);
        assert_eq!(initial_window(10, 536), 5360);
        // Jumbo MSS: capped at max(2*MSS, 14600).
        assert_eq!(initial_window(10, 8960), 17920);
        assert_eq!(initial_window(10, 4000), 14600);
        assert_eq!(initial_window(4, 1460), 5840);
        assert_eq!(initial_window(1, 1460), 1460);
        // Degenerate inputs never produce a zero or overflowing window.
        assert_eq!(initial_window(0, 1460), 1460);
        assert_eq!(initial_window(10, 0), 10);
        assert_eq!(initial_window(u32::MAX, u32::MAX), MAX_CWND);
    }

    #[test]
    fn dispatch_reaches_the_algorithm() {
        let mut cc = Congestion::new("reno", 1000, 10).unwrap();
        cc.on_enter_recovery(Instant::ZERO, 20_000);
        assert_eq!(cc.ssthresh(), 10_000);
        assert_eq!(cc.cwnd(), 13_000);
        cc.on_dup_ack_in_recovery();
        assert_eq!(cc.cwnd(), 14_000);
        cc.on_exit_recovery(5_000);
        assert_eq!(cc.cwnd(), 6_000);
        cc.on_rto(8_000);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (1_000, 4_000));
        cc.undo(6_000, 10_000);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (6_000, 10_000));
        cc.set_mss(500);
        cc.on_idle_restart();
        cc.on_partial_ack(0);
        cc.on_ack(Instant::ZERO, 1, None);
    }
}
