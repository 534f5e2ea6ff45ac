//! Buffer autotuning, as Linux does it (`tcp_rcv_space_adjust`, "dynamic right-sizing", and `tcp_sndbuf_expand`).
//!
//! A connection starts with `tcp_rmem[1]` of receive space. A fixed buffer caps a flow at buffer / RTT, so once per
//! receiver-side RTT we look at how much the application consumed: when that grew, the buffer becomes twice it
//! (plus room for the sender's growth during slow start), up to `tcp_rmem[2]`. It only ever grows, and only for a
//! flow whose application keeps up, so an idle or slow reader costs no more memory than before. The window scale
//! is already chosen for `tcp_rmem[2]`, so the larger window can always be advertised.
//!
//! The receiver's RTT is measured like Linux's `tcp_rcv_rtt_measure`: with timestamps, from the echo of our TSval
//! in full-sized data segments (smoothed 7/8); without, as the time it takes to receive one advertised window,
//! an upper bound of the RTT, so the smallest sample wins.
//!
//! Times are kept as wrapping 32-bit microseconds to keep the control block small: a measurement window spans at
//! most one RTT, far below the 71-minute wrap.

use crate::time::Instant;
use crate::wire::SeqNum;

/// Largest RTT sample taken from a timestamp echo; an echo of a TSval older than this is an idle period, not a
/// round trip.
const MAX_TS_SAMPLE_MS: u32 = 10_000;

/// Per-connection receive-space measurement (32 bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecvAutotune {
    /// Receiver-side RTT estimate in µs; 0 until the first sample.
    rtt_us: u32,
    /// Window-based measurement: the sequence number that ends the window being timed, and when it started.
    rtt_seq: SeqNum,
    rtt_start: u32,
    /// Whether a window-based measurement is running.
    rtt_timing: bool,
    /// The TSecr of the last timestamp sample, so one echo is used once.
    last_tsecr: u32,
    /// Bytes the application has consumed since the connection began (wrapping).
    copied: u32,
    /// Bytes consumed during the last measured RTT (Linux's `rcvq_space.space`).
    space: u32,
    /// `copied` and the time at the start of the current measurement.
    space_copied: u32,
    space_start: u32,
}

fn micros32(now: Instant) -> u32 {
    now.as_micros() as u32
}

impl RecvAutotune {
    pub fn new(now: Instant) -> Self {
        RecvAutotune { space_start: micros32(now), ..Default::default() }
    }

    /// The receiver-side RTT estimate, if measured.
    pub fn rtt_us(&self) -> Option<u32> {
        (self.rtt_us > 0).then_some(self.rtt_us)
    }

    /// Bytes consumed in the last measured RTT (`ss -i`'s `rcv_space`).
    pub fn space(&self) -> u32 {
        self.space
    }

    fn update_rtt(&mut self, sample_us: u32, window_based: bool) {
        let sample_us = sample_us.max(1);
        self.rtt_us = if self.rtt_us == 0 {
            sample_us
        } else if window_based {
            self.rtt_us.min(sample_us)
        } else {
            self.rtt_us - self.rtt_us / 8 + sample_us / 8
        };
    }

    /// In-order data arrived and RCV.NXT moved to `rcv_nxt`; `rcv_wnd` is the window now open beyond it.
    /// `ts_rtt_ms` is `Some((tsecr, our_ts_now))` for a full-sized segment of a connection using timestamps.
    pub fn on_data(&mut self, now: Instant, rcv_nxt: SeqNum, rcv_wnd: u32, ts_echo: Option<(u32, u32)>) {
        let now_us = micros32(now);
        if let Some((tsecr, ts_now)) = ts_echo {
            if tsecr != 0 && tsecr != self.last_tsecr {
                self.last_tsecr = tsecr;
                let delta_ms = ts_now.wrapping_sub(tsecr);
                // A negative or huge delta is a clock step or an echo from before an idle period.
                if (delta_ms as i32) >= 0 && delta_ms <= MAX_TS_SAMPLE_MS {
                    self.update_rtt(delta_ms.max(1).saturating_mul(1000), false);
                }
            }
            return;
        }
        if self.rtt_timing {
            if rcv_nxt.lt(self.rtt_seq) {
                return;
            }
            self.update_rtt(now_us.wrapping_sub(self.rtt_start), true);
        }
        self.rtt_timing = true;
        self.rtt_seq = rcv_nxt + rcv_wnd;
        self.rtt_start = now_us;
    }

    /// The application consumed `bytes`. Returns the receive-buffer capacity to grow to, if the flow needs more
    /// than `capacity` (never above `max`). `advmss` is the segment size we advertise.
    pub fn on_read(&mut self, now: Instant, bytes: usize, advmss: u32, capacity: usize, max: usize) -> Option<usize> {
        self.copied = self.copied.wrapping_add(bytes as u32);
        let now_us = micros32(now);
        let elapsed = now_us.wrapping_sub(self.space_start);
        if self.rtt_us == 0 || elapsed < self.rtt_us {
            return None;
        }
        let copied = self.copied.wrapping_sub(self.space_copied);
        self.space_copied = self.copied;
        self.space_start = now_us;
        // Linux starts from an initial window's worth (10 segments) so the first RTT's reads must beat that.
        let previous = if self.space == 0 { 10 * advmss } else { self.space };
        if copied <= previous {
            return None;
        }
        self.space = copied;
        // Twice what one RTT consumed (the sender may double in slow start while the ACK is on its way), plus what
        // the sender's rate grew by since the last RTT, twice again: Linux's formula.
        let copied = copied as u64;
        let previous = previous as u64;
        let mut window = 2 * copied + 16 * advmss as u64;
        // Saturating: `copied` near 2^32 makes the product overflow u64 (review L9); the result is capped at `max`.
        window = window.saturating_add(window.saturating_mul(2).saturating_mul(copied - previous) / previous);
        let target = window.min(max as u64) as usize;
        (target > capacity).then_some(target)
    }
}

/// Linux's `tcp_sndbuf_expand`: a sender limited by its buffer gets room for two congestion windows (one in
/// flight, one queued behind it), up to `max`. Returns the new capacity when it grows.
pub(crate) fn send_buffer_target(cwnd: u32, smss: u16, capacity: usize, max: usize) -> Option<usize> {
    let target = (2 * cwnd as u64 + 4 * smss as u64).min(max as u64) as usize;
    (target > capacity).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(us: u64) -> Instant {
        Instant::from_micros(us)
    }

    #[test]
    fn size_is_small() {
        assert!(std::mem::size_of::<RecvAutotune>() <= 36, "{}", std::mem::size_of::<RecvAutotune>());
    }

    #[test]
    fn no_growth_before_an_rtt_is_known() {
        let mut a = RecvAutotune::new(at(0));
        assert_eq!(a.on_read(at(1_000_000), 10_000_000, 1460, 131072, 6 << 20), None);
    }

    #[test]
    fn huge_reads_in_one_rtt_do_not_overflow() {
        // Review L9: ~4 GiB consumed in one measured RTT overflowed `2 * window * (copied - previous)` (a panic with
        // overflow checks, as in debug builds and the fuzz targets).
        let mut a = RecvAutotune::new(at(0));
        a.on_data(at(0), SeqNum(0), 10_000, None);
        a.on_data(at(1_000), SeqNum(20_000), 10_000, None);
        assert_eq!(a.rtt_us(), Some(1_000));
        assert_eq!(a.on_read(at(2_000), u32::MAX as usize, 1460, 131072, 6 << 20), Some(6 << 20));
    }

    #[test]
    fn window_based_rtt_takes_the_smallest_sample() {
        let mut a = RecvAutotune::new(at(0));
        a.on_data(at(0), SeqNum(1000), 10_000, None);
        // RCV.NXT has not reached the end of the timed window yet.
        a.on_data(at(500), SeqNum(5000), 10_000, None);
        assert_eq!(a.rtt_us(), None);
        a.on_data(at(2_000), SeqNum(11_000), 10_000, None);
        assert_eq!(a.rtt_us(), Some(2_000));
        a.on_data(at(3_000), SeqNum(21_000), 10_000, None);
        assert_eq!(a.rtt_us(), Some(1_000));
        a.on_data(at(9_000), SeqNum(31_000), 10_000, None);
        assert_eq!(a.rtt_us(), Some(1_000), "a slower window does not raise the estimate");
    }

    #[test]
    fn timestamp_rtt_is_smoothed_and_ignores_stale_echoes() {
        let mut a = RecvAutotune::new(at(0));
        a.on_data(at(0), SeqNum(0), 0, Some((100, 104)));
        assert_eq!(a.rtt_us(), Some(4_000));
        // The same echo again is not a new sample.
        a.on_data(at(0), SeqNum(0), 0, Some((100, 140)));
        assert_eq!(a.rtt_us(), Some(4_000));
        a.on_data(at(0), SeqNum(0), 0, Some((200, 212)));
        assert_eq!(a.rtt_us(), Some(4_000 - 500 + 1_500));
        // An echo from long ago (idle period) or from the future is ignored.
        a.on_data(at(0), SeqNum(0), 0, Some((300, 300 + 60_000)));
        a.on_data(at(0), SeqNum(0), 0, Some((400, 399)));
        assert_eq!(a.rtt_us(), Some(5_000));
        // Zero (no echo) is not a sample; a sub-millisecond echo counts as 1 ms.
        let mut b = RecvAutotune::new(at(0));
        b.on_data(at(0), SeqNum(0), 0, Some((0, 10)));
        assert_eq!(b.rtt_us(), None);
        b.on_data(at(0), SeqNum(0), 0, Some((7, 7)));
        assert_eq!(b.rtt_us(), Some(1_000));
    }

    #[test]
    fn a_fast_reader_doubles_its_buffer_up_to_the_maximum() {
        let max = 6 << 20;
        let mut a = RecvAutotune::new(at(0));
        a.on_data(at(0), SeqNum(0), 0, Some((1, 2)));
        let mut capacity = 131072;
        let mut now = 0u64;
        let mut per_rtt = 131072usize;
        for _ in 0..20 {
            // One RTT in which the application drains a full buffer, in four reads.
            for _ in 0..4 {
                now += 250;
                if let Some(c) = a.on_read(at(now), per_rtt / 4, 1460, capacity, max) {
                    assert!(c > capacity && c <= max);
                    capacity = c;
                }
            }
            per_rtt = capacity;
        }
        assert_eq!(capacity, max);
    }

    #[test]
    fn a_steady_or_slow_reader_does_not_grow() {
        let mut a = RecvAutotune::new(at(0));
        a.on_data(at(0), SeqNum(0), 0, Some((1, 2)));
        let capacity = 131072;
        let mut now = 0;
        // 10 KB per 1 ms RTT: below the initial window's worth, so never a reason to grow.
        for _ in 0..100 {
            now += 1_000;
            assert_eq!(a.on_read(at(now), 10_000, 1460, capacity, 6 << 20), None);
        }
        assert_eq!(a.space(), 0);
    }

    #[test]
    fn send_buffer_grows_with_cwnd_only() {
        assert_eq!(send_buffer_target(10 * 1448, 1448, 16384, 4 << 20), Some(2 * 10 * 1448 + 4 * 1448));
        assert_eq!(send_buffer_target(2 * 1448, 1448, 16384, 4 << 20), None);
        assert_eq!(send_buffer_target(u32::MAX, 1448, 16384, 4 << 20), Some(4 << 20));
    }
}
