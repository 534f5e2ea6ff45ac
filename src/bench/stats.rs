//! What one worker measured, how workers' results merge, and the live counters the progress line reads.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

/// Latencies are recorded in nanoseconds, three significant digits, up to this value (larger ones saturate).
pub const MAX_LATENCY_NS: u64 = 3_600 * 1_000_000_000;
/// Significant decimal digits kept by every histogram.
pub const SIGFIG: u8 = 3;

/// A fresh latency histogram (nanoseconds).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, SIGFIG).expect("static histogram bounds are valid")
}

/// Errors by kind. Every failure the generator sees lands in exactly one of these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Errors {
    /// The server answered our SYN with RST (ECONNREFUSED).
    pub connect_refused: u64,
    /// No SYN-ACK within the timeout (or SYN retries ran out).
    pub connect_timeouts: u64,
    /// Other connect failures (no route, fd limit, ...).
    pub connect_other: u64,
    /// No free local port for an active open (EADDRNOTAVAIL): TIME_WAIT or the port range is the limit.
    pub no_ports: u64,
    /// The peer reset an established connection.
    pub resets: u64,
    /// A response did not complete within the timeout.
    pub timeouts: u64,
    /// The peer closed in the middle of a response.
    pub short_reads: u64,
    /// Wrong bytes: an echo that differs from what was sent, an unparsable HTTP response, data nobody asked for.
    pub data_errors: u64,
    /// HTTP responses with a status outside 2xx (counted as completed requests too, like wrk).
    pub http_non_2xx: u64,
    /// Open loop: intended sends dropped because the generator's backlog was full (it could not keep up).
    pub schedule_overflow: u64,
    /// Send or receive failures not covered above.
    pub other: u64,
}

impl Errors {
    /// (name, count) for every kind, in report order.
    pub fn entries(&self) -> [(&'static str, u64); 11] {
        [
            ("connect_refused", self.connect_refused),
            ("connect_timeouts", self.connect_timeouts),
            ("connect_other", self.connect_other),
            ("no_ports", self.no_ports),
            ("resets", self.resets),
            ("timeouts", self.timeouts),
            ("short_reads", self.short_reads),
            ("data_errors", self.data_errors),
            ("http_non_2xx", self.http_non_2xx),
            ("schedule_overflow", self.schedule_overflow),
            ("other", self.other),
        ]
    }

    pub fn total(&self) -> u64 {
        self.entries().iter().map(|(_, n)| n).sum()
    }

    pub fn merge(&mut self, o: &Errors) {
        self.connect_refused += o.connect_refused;
        self.connect_timeouts += o.connect_timeouts;
        self.connect_other += o.connect_other;
        self.no_ports += o.no_ports;
        self.resets += o.resets;
        self.timeouts += o.timeouts;
        self.short_reads += o.short_reads;
        self.data_errors += o.data_errors;
        self.http_non_2xx += o.http_non_2xx;
        self.schedule_overflow += o.schedule_overflow;
        self.other += o.other;
    }
}

/// One stream connection's outcome.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamConn {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Seconds from established to the end of the run (or the connection's end).
    pub seconds: f64,
}

/// Everything one worker measured.
#[derive(Clone, Debug)]
pub struct WorkerStats {
    /// Per request (rps) or per connection from connect to response (cps), in ns.
    pub latency: Histogram<u64>,
    /// SYN to established, in ns.
    pub connect: Histogram<u64>,
    /// Completed requests (cps: completed connections).
    pub requests: u64,
    pub connections_opened: u64,
    /// Connections we closed first (our FIN before the peer's).
    pub client_closed_first: u64,
    /// Connections the peer closed first.
    pub server_closed_first: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Requests sent whose response had not arrived when the run ended (neither completed nor errors).
    pub in_flight_at_end: u64,
    pub errors: Errors,
    pub stream: Vec<StreamConn>,
    /// Measurement window in ns on the generator's clock.
    pub started_ns: u64,
    pub ended_ns: u64,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            latency: new_histogram(),
            connect: new_histogram(),
            requests: 0,
            connections_opened: 0,
            client_closed_first: 0,
            server_closed_first: 0,
            bytes_sent: 0,
            bytes_received: 0,
            in_flight_at_end: 0,
            errors: Errors::default(),
            stream: Vec::new(),
            started_ns: 0,
            ended_ns: 0,
        }
    }
}

impl WorkerStats {
    /// Folds another worker's results in. The window becomes the union of both windows.
    pub fn merge(&mut self, o: &WorkerStats) {
        // Same bounds on both sides, so adding cannot fail; saturate rather than panic if it ever did.
        if self.latency.add(&o.latency).is_err() {
            self.errors.other += 1;
        }
        if self.connect.add(&o.connect).is_err() {
            self.errors.other += 1;
        }
        self.requests += o.requests;
        self.connections_opened += o.connections_opened;
        self.client_closed_first += o.client_closed_first;
        self.server_closed_first += o.server_closed_first;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.in_flight_at_end += o.in_flight_at_end;
        self.errors.merge(&o.errors);
        self.stream.extend_from_slice(&o.stream);
        self.started_ns = if self.ended_ns == 0 { o.started_ns } else { self.started_ns.min(o.started_ns) };
        self.ended_ns = self.ended_ns.max(o.ended_ns);
    }

    /// Seconds of the measurement window.
    pub fn seconds(&self) -> f64 {
        self.ended_ns.saturating_sub(self.started_ns) as f64 / 1e9
    }
}

/// Merges workers' results (empty input: empty stats).
pub fn merge_all(workers: &[WorkerStats]) -> WorkerStats {
    let mut total = WorkerStats::default();
    for w in workers {
        total.merge(w);
    }
    total
}

/// Live figures of one worker, written by it (single writer, relaxed stores) and read once a second by the
/// progress line. Counters are cumulative.
#[derive(Debug, Default)]
pub struct Progress {
    pub requests: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub errors: AtomicU64,
    /// Connections open now (any state).
    pub open: AtomicU64,
    /// Connections established now.
    pub established: AtomicU64,
    /// xdptcp only: `Engine::buffer_bytes_in_use` and connection / TIME_WAIT counts.
    pub engine_buffer_bytes: AtomicU64,
    pub engine_connections: AtomicU64,
    pub engine_time_wait: AtomicU64,
    /// Set by the worker when its workload is complete (request limit reached).
    pub done: AtomicU64,
}

/// A point-in-time copy of [`Progress`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    pub requests: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub errors: u64,
    pub open: u64,
    pub established: u64,
    pub engine_buffer_bytes: u64,
    pub engine_connections: u64,
    pub engine_time_wait: u64,
}

impl Progress {
    pub fn snapshot(&self) -> ProgressSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProgressSnapshot {
            requests: l(&self.requests),
            bytes_sent: l(&self.bytes_sent),
            bytes_received: l(&self.bytes_received),
            errors: l(&self.errors),
            open: l(&self.open),
            established: l(&self.established),
            engine_buffer_bytes: l(&self.engine_buffer_bytes),
            engine_connections: l(&self.engine_connections),
            engine_time_wait: l(&self.engine_time_wait),
        }
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Relaxed) != 0
    }
}

impl ProgressSnapshot {
    pub fn add(&mut self, o: &ProgressSnapshot) {
        self.requests += o.requests;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.errors += o.errors;
        self.open += o.open;
        self.established += o.established;
        self.engine_buffer_bytes += o.engine_buffer_bytes;
        self.engine_connections += o.engine_connections;
        self.engine_time_wait += o.engine_time_wait;
    }
}

/// Sum of several workers' snapshots.
pub fn sum_progress(ps: &[std::sync::Arc<Progress>]) -> ProgressSnapshot {
    let mut s = ProgressSnapshot::default();
    for p in ps {
        s.add(&p.snapshot());
    }
    s
}

/// Mean, standard deviation, max and the share of samples within one standard deviation of the mean (wrk's
/// "+/- Stdev") of plain samples, e.g. per-second request rates.
pub fn sample_stats(samples: &[f64]) -> (f64, f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = if samples.len() > 1 { samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    let stdev = var.sqrt();
    let max = samples.iter().copied().fold(f64::MIN, f64::max);
    let within = samples.iter().filter(|&&x| (x - mean).abs() <= stdev).count() as f64 / n * 100.0;
    (mean, stdev, max, within)
}

/// The share (percent) of a histogram's samples within one standard deviation of its mean.
pub fn within_stdev(h: &Histogram<u64>) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    let (mean, stdev) = (h.mean(), h.stdev());
    let lo = (mean - stdev).max(0.0) as u64;
    let hi = (mean + stdev).ceil() as u64;
    h.count_between(lo, hi) as f64 / h.len() as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_histograms_and_widens_the_window() {
        let mut a = WorkerStats::default();
        a.latency.record(1_000).unwrap();
        a.requests = 1;
        a.errors.resets = 2;
        a.started_ns = 100;
        a.ended_ns = 1_000;
        let mut b = WorkerStats::default();
        b.latency.record(3_000).unwrap();
        b.requests = 1;
        b.errors.timeouts = 1;
        b.started_ns = 50;
        b.ended_ns = 900;
        b.stream.push(StreamConn { bytes_sent: 10, bytes_received: 0, seconds: 1.0 });
        let m = merge_all(&[a, b]);
        assert_eq!(m.requests, 2);
        assert_eq!(m.latency.len(), 2);
        assert_eq!((m.errors.resets, m.errors.timeouts, m.errors.total()), (2, 1, 3));
        assert_eq!((m.started_ns, m.ended_ns), (50, 1_000));
        assert_eq!(m.stream.len(), 1);
        assert!((m.seconds() - 950e-9).abs() < 1e-15);
    }

    #[test]
    fn sample_stats_match_hand_computed_values() {
        let (mean, stdev, max, within) = sample_stats(&[10.0, 12.0, 14.0]);
        assert_eq!((mean, stdev, max), (12.0, 2.0, 14.0));
        assert!((within - 100.0).abs() < 1e-9);
        let (_, _, _, within) = sample_stats(&[0.0, 0.0, 0.0, 100.0]);
        assert_eq!(within, 75.0);
        assert_eq!(sample_stats(&[]), (0.0, 0.0, 0.0, 0.0));
    }

    #[test]
    fn within_stdev_of_a_histogram() {
        let mut h = new_histogram();
        for v in [100, 100, 100, 100, 100, 100, 100, 100, 100, 10_000] {
            h.record(v).unwrap();
        }
        // Mean 1090, stdev ~2970: everything but the outlier is within [0, 4060].
        assert!((within_stdev(&h) - 90.0).abs() < 1e-9);
        assert_eq!(within_stdev(&new_histogram()), 0.0);
    }

    #[test]
    fn progress_snapshots_sum() {
        let a = std::sync::Arc::new(Progress::default());
        let b = std::sync::Arc::new(Progress::default());
        a.requests.store(3, Ordering::Relaxed);
        b.requests.store(4, Ordering::Relaxed);
        b.open.store(2, Ordering::Relaxed);
        let s = sum_progress(&[a, b]);
        assert_eq!((s.requests, s.open), (7, 2));
    }
}
