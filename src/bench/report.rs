//! The run report: a wrk-style text summary and a JSON document with every figure. Pure functions of the merged
//! [`super::stats::WorkerStats`] and a few facts about the run.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::json::Json;
use super::stats::{sample_stats, within_stdev, WorkerStats};
use super::Mode;

/// Percentiles of the "Latency Distribution" block and of the JSON summary.
pub const PERCENTILES: [f64; 7] = [50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999];

/// Facts about the run that the stats do not carry.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub mode: Mode,
    pub target: String,
    /// "xdptcp (AF_XDP)" or "kernel (epoll)".
    pub stack: String,
    pub workers: usize,
    pub connections: usize,
    pub request_size: usize,
    pub response_size: usize,
    pub http: bool,
    /// Open-loop total rate, if any.
    pub rate: Option<f64>,
}

/// Memory of idle connections (hold mode).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Memory {
    /// Connections established when memory was sampled.
    pub connections: u64,
    /// This process's resident set growth from before the first connect to the sample.
    pub rss_delta_bytes: i64,
    /// xdptcp: `Engine::buffer_bytes_in_use` summed over workers, and the engines' connection count.
    pub engine_buffer_bytes: Option<u64>,
    pub engine_connections: Option<u64>,
    /// Growth of the kernel's slab memory (whole machine; includes kernel sockets of both ends when both are
    /// kernel sockets).
    pub kernel_slab_delta_bytes: Option<i64>,
}

/// Resource use of the server under test (`--server-pid`), over the measurement window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerUsage {
    pub pids: Vec<u32>,
    /// utime + stime growth, seconds.
    pub cpu_seconds: f64,
    /// Resident set growth (hold mode: from before the connections to the sample).
    pub rss_delta_bytes: Option<i64>,
}

/// Everything besides the stats.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extras {
    /// Total completed requests per second, one entry per elapsed second.
    pub per_second: Vec<f64>,
    /// Each worker's requests per second, one sample per worker and second (wrk's per-thread Req/Sec).
    pub per_worker_second: Vec<f64>,
    /// TIME_WAIT connections on the client side at the end, when known.
    pub client_time_wait: Option<u64>,
    pub memory: Option<Memory>,
    pub server: Option<ServerUsage>,
    /// Busy CPU seconds of the whole machine (all cores, /proc/stat) over the window.
    pub system_cpu_seconds: Option<f64>,
    /// The xdptcp client's engine and datapath counters that say something went wrong or was slow (SYN
    /// retransmissions, ring overflows, ...), by MIB name, non-zero only.
    pub client_counters: Vec<(String, u64)>,
}

/// The report: inputs plus derived figures.
#[derive(Clone, Debug)]
pub struct Report {
    pub info: RunInfo,
    pub stats: WorkerStats,
    pub extras: Extras,
}

/// Formats nanoseconds the way wrk formats microseconds: two decimals and the largest fitting unit.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        return "-".into();
    }
    if ns < 1e3 {
        format!("{ns:.2}ns")
    } else if ns < 1e6 {
        format!("{:.2}us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

/// wrk's `format_metric`: k, M, G with two decimals.
pub fn fmt_metric(x: f64) -> String {
    if x < 1e3 {
        format!("{x:.2}")
    } else if x < 1e6 {
        format!("{:.2}k", x / 1e3)
    } else if x < 1e9 {
        format!("{:.2}M", x / 1e6)
    } else {
        format!("{:.2}G", x / 1e9)
    }
}

/// wrk's `format_binary`: powers of 1024 with two decimals.
pub fn fmt_bytes(x: f64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = x;
    let mut i = 0;
    while v.abs() >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.2}{}", units[i])
}

fn latency_json(h: &Histogram<u64>) -> Json {
    if h.is_empty() {
        return Json::object().field("count", 0u64);
    }
    let mut pct = Json::object();
    for p in PERCENTILES {
        pct.push(&format!("p{p}"), h.value_at_percentile(p) as f64 / 1e3);
    }
    Json::object()
        .field("count", h.len())
        .field("unit", "us")
        .field("min", h.min() as f64 / 1e3)
        .field("mean", h.mean() / 1e3)
        .field("stdev", h.stdev() / 1e3)
        .field("max", h.max() as f64 / 1e3)
        .field("within_stdev_percent", within_stdev(h))
        .field("percentiles", pct)
}

impl Report {
    pub fn seconds(&self) -> f64 {
        self.stats.seconds()
    }

    /// Completed requests (cps: connections) per second.
    pub fn rate(&self) -> f64 {
        per_second(self.stats.requests as f64, self.seconds())
    }

    pub fn tx_bytes_per_second(&self) -> f64 {
        per_second(self.stats.bytes_sent as f64, self.seconds())
    }

    pub fn rx_bytes_per_second(&self) -> f64 {
        per_second(self.stats.bytes_received as f64, self.seconds())
    }

    /// Server CPU microseconds per completed request.
    pub fn server_cpu_us_per_request(&self) -> Option<f64> {
        let s = self.extras.server.as_ref()?;
        (self.stats.requests > 0).then(|| s.cpu_seconds * 1e6 / self.stats.requests as f64)
    }

    /// Whole-machine CPU microseconds per completed request.
    pub fn system_cpu_us_per_request(&self) -> Option<f64> {
        let s = self.extras.system_cpu_seconds?;
        (self.stats.requests > 0).then(|| s * 1e6 / self.stats.requests as f64)
    }

    fn describe(&self) -> String {
        let i = &self.info;
        let what = match i.mode {
            Mode::Rps | Mode::Cps if i.http => "http GET".to_string(),
            Mode::Rps | Mode::Cps => format!("echo {} B / {} B", i.request_size, i.response_size),
            Mode::Stream => format!("{} B writes", i.request_size),
            Mode::Hold | Mode::Synflood | Mode::Ceiling => "idle".to_string(),
        };
        let lp = match i.rate {
            Some(r) => format!("open loop at {}/s", fmt_metric(r)),
            None => "closed loop".to_string(),
        };
        format!(
            "{} ({what}), {} client, {} worker(s), {} connections, {lp}",
            i.mode.name(),
            i.stack,
            i.workers,
            i.connections
        )
    }

    /// The wrk-style summary.
    pub fn text(&self) -> String {
        let s = &self.stats;
        let mut o = String::new();
        let _ = writeln!(o, "Running {:.2}s test @ {}", self.seconds(), self.info.target);
        let _ = writeln!(o, "  {}", self.describe());
        let has_latency = !s.latency.is_empty();
        let (rmean, rstdev, rmax, rwithin) = sample_stats(&self.extras.per_worker_second);
        let _ = writeln!(o, "  Thread Stats   Avg      Stdev     Max   +/- Stdev");
        if has_latency {
            let h = &s.latency;
            let _ = writeln!(
                o,
                "    Latency {:>9} {:>9} {:>9} {:>8.2}%",
                fmt_ns(h.mean()),
                fmt_ns(h.stdev()),
                fmt_ns(h.max() as f64),
                within_stdev(h)
            );
        }
        let _ = writeln!(
            o,
            "    Req/Sec {:>9} {:>9} {:>9} {:>8.2}%",
            fmt_metric(rmean),
            fmt_metric(rstdev),
            fmt_metric(rmax),
            rwithin
        );
        if has_latency {
            let _ = writeln!(o, "  Latency Distribution");
            for p in PERCENTILES {
                let _ = writeln!(o, "  {:>7}% {:>9}", p, fmt_ns(s.latency.value_at_percentile(p) as f64));
            }
        }
        let unit = if self.info.mode == Mode::Cps { "connections" } else { "requests" };
        match self.info.mode {
            Mode::Rps | Mode::Cps => {
                let _ = writeln!(
                    o,
                    "  {} {unit} in {:.2}s, {} read, {} written",
                    s.requests,
                    self.seconds(),
                    fmt_bytes(s.bytes_received as f64),
                    fmt_bytes(s.bytes_sent as f64)
                );
            }
            Mode::Stream => {
                let _ = writeln!(
                    o,
                    "  {} written, {} read in {:.2}s",
                    fmt_bytes(s.bytes_sent as f64),
                    fmt_bytes(s.bytes_received as f64),
                    self.seconds()
                );
            }
            Mode::Hold | Mode::Synflood | Mode::Ceiling => {}
        }
        if !s.connect.is_empty() {
            let c = &s.connect;
            let _ = writeln!(
                o,
                "  Connect: {} opened, avg {}, p50 {}, p99 {}, max {}",
                s.connections_opened,
                fmt_ns(c.mean()),
                fmt_ns(c.value_at_percentile(50.0) as f64),
                fmt_ns(c.value_at_percentile(99.0) as f64),
                fmt_ns(c.max() as f64)
            );
        }
        if self.info.mode == Mode::Cps || s.server_closed_first > 0 {
            let tw = self.extras.client_time_wait.map_or("unknown".to_string(), |n| n.to_string());
            let _ = writeln!(
                o,
                "  Closes: client first {}, server first {}; client TIME-WAIT at end: {tw}",
                s.client_closed_first, s.server_closed_first
            );
        }
        if self.info.mode == Mode::Stream {
            let gbps: Vec<f64> = s
                .stream
                .iter()
                .filter(|c| c.seconds > 0.0)
                .map(|c| c.bytes_sent as f64 * 8.0 / c.seconds / 1e9)
                .collect();
            let (mean, _, max, _) = sample_stats(&gbps);
            let min = gbps.iter().copied().fold(f64::INFINITY, f64::min);
            let _ = writeln!(
                o,
                "  Stream: {:.3} Gbit/s sent, {:.3} Gbit/s received in total; per connection ({}) min {:.3} avg {:.3} \
                 max {:.3} Gbit/s",
                self.tx_bytes_per_second() * 8.0 / 1e9,
                self.rx_bytes_per_second() * 8.0 / 1e9,
                gbps.len(),
                if gbps.is_empty() { 0.0 } else { min },
                mean,
                max
            );
        }
        if let Some(m) = &self.extras.memory {
            let per = |b: i64| fmt_bytes(b as f64 / m.connections.max(1) as f64);
            let mut line = format!(
                "  Memory: {} connections held; client RSS {:+} bytes ({} per connection)",
                m.connections,
                m.rss_delta_bytes,
                per(m.rss_delta_bytes)
            );
            if let Some(b) = m.engine_buffer_bytes {
                let _ = write!(line, "; engine buffers {}", fmt_bytes(b as f64));
            }
            if let Some(c) = m.engine_connections {
                let _ = write!(line, "; engine connections {c}");
            }
            if let Some(k) = m.kernel_slab_delta_bytes {
                let _ = write!(line, "; kernel slab {:+} bytes ({} per connection)", k, per(k));
            }
            let _ = writeln!(o, "{line}");
        }
        if let Some(sv) = &self.extras.server {
            let mut line = format!("  Server {:?}: CPU {:.2}s", sv.pids, sv.cpu_seconds);
            if let Some(us) = self.server_cpu_us_per_request() {
                let _ = write!(line, " ({us:.2} us per {})", unit.trim_end_matches('s'));
            }
            if let Some(r) = sv.rss_delta_bytes {
                let _ = write!(line, ", RSS {r:+} bytes");
                if let Some(m) = &self.extras.memory {
                    let _ = write!(line, " ({} per connection)", fmt_bytes(r as f64 / m.connections.max(1) as f64));
                }
            }
            let _ = writeln!(o, "{line}");
        }
        if let Some(cpu) = self.extras.system_cpu_seconds {
            let per = self.system_cpu_us_per_request().map_or(String::new(), |u| format!(" ({u:.2} us per request)"));
            let _ = writeln!(o, "  System CPU (all cores): {cpu:.2}s busy{per}");
        }
        let errs: Vec<String> =
            s.errors.entries().iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k} {n}")).collect();
        if errs.is_empty() {
            let _ = writeln!(o, "  Errors: none");
        } else {
            let _ = writeln!(o, "  Errors: {} ({})", s.errors.total(), errs.join(", "));
        }
        if !self.extras.client_counters.is_empty() {
            let c: Vec<String> = self.extras.client_counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(o, "  Client stack: {}", c.join(", "));
        }
        if s.in_flight_at_end > 0 {
            let _ = writeln!(o, "  In flight at the end (not counted): {}", s.in_flight_at_end);
        }
        match self.info.mode {
            Mode::Rps | Mode::Cps => {
                let label = if self.info.mode == Mode::Cps { "Connections/sec:" } else { "Requests/sec:" };
                let _ = writeln!(o, "{label} {:>10.2}", self.rate());
                let total = self.rx_bytes_per_second() + self.tx_bytes_per_second();
                let _ = writeln!(o, "Transfer/sec: {:>10}", fmt_bytes(total));
            }
            Mode::Stream => {
                let _ = writeln!(o, "Gbit/sec sent: {:>9.3}", self.tx_bytes_per_second() * 8.0 / 1e9);
            }
            Mode::Hold | Mode::Synflood | Mode::Ceiling => {
                let held = self.extras.memory.as_ref().map_or(s.connections_opened, |m| m.connections);
                let _ = writeln!(o, "Connections held: {held}");
            }
        }
        o
    }

    /// Every figure, for scripts.
    pub fn json(&self) -> Json {
        let i = &self.info;
        let s = &self.stats;
        let mut errors = Json::object();
        for (k, n) in s.errors.entries() {
            errors.push(k, n);
        }
        errors.push("total", s.errors.total());
        let stream: Vec<Json> = s
            .stream
            .iter()
            .map(|c| {
                Json::object()
                    .field("bytes_sent", c.bytes_sent)
                    .field("bytes_received", c.bytes_received)
                    .field("seconds", c.seconds)
                    .field("gbps_sent", per_second(c.bytes_sent as f64 * 8.0, c.seconds) / 1e9)
            })
            .collect();
        let memory = self.extras.memory.as_ref().map(|m| {
            Json::object()
                .field("connections", m.connections)
                .field("rss_delta_bytes", m.rss_delta_bytes)
                .field("rss_bytes_per_connection", m.rss_delta_bytes as f64 / m.connections.max(1) as f64)
                .field("engine_buffer_bytes", m.engine_buffer_bytes)
                .field("engine_connections", m.engine_connections)
                .field("kernel_slab_delta_bytes", m.kernel_slab_delta_bytes)
        });
        let server = self.extras.server.as_ref().map(|sv| {
            Json::object()
                .field("pids", sv.pids.iter().map(|&p| Json::from(p)).collect::<Vec<_>>())
                .field("cpu_seconds", sv.cpu_seconds)
                .field("cpu_us_per_request", self.server_cpu_us_per_request())
                .field("rss_delta_bytes", sv.rss_delta_bytes)
        });
        Json::object()
            .field(
                "run",
                Json::object()
                    .field("mode", i.mode.name())
                    .field("target", i.target.as_str())
                    .field("stack", i.stack.as_str())
                    .field("workers", i.workers)
                    .field("connections", i.connections)
                    .field("request_size", i.request_size)
                    .field("response_size", i.response_size)
                    .field("http", i.http)
                    .field("rate", i.rate)
                    .field("seconds", self.seconds()),
            )
            .field("requests", s.requests)
            .field("requests_per_second", self.rate())
            .field("connections_opened", s.connections_opened)
            .field("bytes_sent", s.bytes_sent)
            .field("bytes_received", s.bytes_received)
            .field("tx_gbps", self.tx_bytes_per_second() * 8.0 / 1e9)
            .field("rx_gbps", self.rx_bytes_per_second() * 8.0 / 1e9)
            .field("latency", latency_json(&s.latency))
            .field("connect_latency", latency_json(&s.connect))
            .field("client_closed_first", s.client_closed_first)
            .field("server_closed_first", s.server_closed_first)
            .field("client_time_wait", self.extras.client_time_wait)
            .field("in_flight_at_end", s.in_flight_at_end)
            .field("errors", errors)
            .field("per_second", self.extras.per_second.clone())
            .field("stream_connections", Json::Arr(stream))
            .field("memory", memory)
            .field("server", server)
            .field("system_cpu_seconds", self.extras.system_cpu_seconds)
            .field("system_cpu_us_per_request", self.system_cpu_us_per_request())
            .field("client_counters", {
                let mut c = Json::object();
                for (k, v) in &self.extras.client_counters {
                    c.push(k, *v);
                }
                c
            })
    }
}

fn per_second(x: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        x / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::StreamConn;

    fn info(mode: Mode) -> RunInfo {
        RunInfo {
            mode,
            target: "198.18.0.1:7".into(),
            stack: "kernel (epoll)".into(),
            workers: 1,
            connections: 4,
            request_size: 64,
            response_size: 64,
            http: false,
            rate: None,
        }
    }

    fn stats() -> WorkerStats {
        let mut s = WorkerStats::default();
        for us in 1..=100u64 {
            s.latency.record(us * 1000).unwrap();
        }
        s.connect.record(50_000).unwrap();
        s.requests = 100;
        s.connections_opened = 4;
        s.bytes_sent = 6400;
        s.bytes_received = 6400;
        s.started_ns = 1_000_000_000;
        s.ended_ns = 3_000_000_000;
        s
    }

    #[test]
    fn units_format_like_wrk() {
        assert_eq!(fmt_ns(512.0), "512.00ns");
        assert_eq!(fmt_ns(45_120.0), "45.12us");
        assert_eq!(fmt_ns(1_200_000.0), "1.20ms");
        assert_eq!(fmt_ns(2.5e9), "2.50s");
        assert_eq!(fmt_metric(999.0), "999.00");
        assert_eq!(fmt_metric(140_123.0), "140.12k");
        assert_eq!(fmt_metric(2.5e6), "2.50M");
        assert_eq!(fmt_bytes(1536.0), "1.50KB");
        assert_eq!(fmt_bytes(89_678_234.0), "85.52MB");
        assert_eq!(fmt_bytes(-2048.0), "-2.00KB");
    }

    #[test]
    fn text_has_wrk_sections_and_reports_errors() {
        let mut s = stats();
        let mut extras = Extras { per_worker_second: vec![50.0, 50.0], ..Default::default() };
        let r = Report { info: info(Mode::Rps), stats: s.clone(), extras: extras.clone() };
        let t = r.text();
        assert!(t.starts_with("Running 2.00s test @ 198.18.0.1:7\n"), "{t}");
        assert!(t.contains("rps (echo 64 B / 64 B), kernel (epoll) client, 1 worker(s), 4 connections, closed loop"));
        assert!(t.contains("    Latency "), "{t}");
        assert!(t.contains("    Req/Sec     50.00      0.00     50.00   100.00%"), "{t}");
        assert!(t.contains("      50%   50.02us"), "{t}");
        assert!(t.contains("     99.9%  100.03us"), "{t}");
        assert!(t.contains("  100 requests in 2.00s, 6.25KB read, 6.25KB written"), "{t}");
        assert!(t.contains("  Errors: none"), "{t}");
        assert!(t.contains("Requests/sec:      50.00"), "{t}");
        assert!(t.contains("Transfer/sec:     6.25KB"), "{t}");
        s.errors.resets = 3;
        s.errors.timeouts = 1;
        s.in_flight_at_end = 2;
        extras.server = Some(ServerUsage { pids: vec![42], cpu_seconds: 0.5, rss_delta_bytes: None });
        extras.system_cpu_seconds = Some(1.0);
        extras.client_counters = vec![("TCPSynRetrans".into(), 4)];
        let r = Report { info: info(Mode::Rps), stats: s, extras };
        let t = r.text();
        assert!(t.contains("  Errors: 4 (resets 3, timeouts 1)"), "{t}");
        assert!(t.contains("In flight at the end (not counted): 2"), "{t}");
        assert!(t.contains("Server [42]: CPU 0.50s (5000.00 us per request)"), "{t}");
        assert!(t.contains("System CPU (all cores): 1.00s busy (10000.00 us per request)"), "{t}");
        assert!(t.contains("  Client stack: TCPSynRetrans 4\n"), "{t}");
    }

    #[test]
    fn cps_stream_and_hold_sections() {
        let mut s = stats();
        s.client_closed_first = 99;
        s.server_closed_first = 1;
        let extras = Extras { client_time_wait: Some(99), ..Default::default() };
        let t = Report { info: info(Mode::Cps), stats: s, extras }.text();
        assert!(t.contains("Closes: client first 99, server first 1; client TIME-WAIT at end: 99"), "{t}");
        assert!(t.contains("Connections/sec:      50.00"), "{t}");

        let mut s =
            WorkerStats { started_ns: 0, ended_ns: 1_000_000_000, bytes_sent: 250_000_000, ..Default::default() };
        s.stream.push(StreamConn { bytes_sent: 125_000_000, bytes_received: 0, seconds: 1.0 });
        s.stream.push(StreamConn { bytes_sent: 125_000_000, bytes_received: 0, seconds: 0.5 });
        let t = Report { info: info(Mode::Stream), stats: s, extras: Extras::default() }.text();
        assert!(t.contains("Stream: 2.000 Gbit/s sent, 0.000 Gbit/s received in total; per connection (2) min 1.000 avg 1.500 max 2.000 Gbit/s"), "{t}");
        assert!(!t.contains("Latency Distribution"));
        assert!(t.contains("  238.42MB written, 0.00B read in 1.00s"), "{t}");
        assert!(t.contains("Gbit/sec sent:     2.000"), "{t}");

        let extras = Extras {
            memory: Some(Memory {
                connections: 1000,
                rss_delta_bytes: 2_048_000,
                engine_buffer_bytes: Some(0),
                engine_connections: Some(1000),
                kernel_slab_delta_bytes: None,
            }),
            ..Default::default()
        };
        let t = Report { info: info(Mode::Hold), stats: WorkerStats::default(), extras }.text();
        assert!(t.contains("Memory: 1000 connections held; client RSS +2048000 bytes (2.00KB per connection); engine buffers 0.00B; engine connections 1000"), "{t}");
        assert!(t.contains("Connections held: 1000"), "{t}");
    }

    #[test]
    fn json_carries_every_figure() {
        let mut s = stats();
        s.errors.short_reads = 2;
        let extras = Extras {
            per_second: vec![40.0, 60.0],
            server: Some(ServerUsage { pids: vec![7], cpu_seconds: 0.001, rss_delta_bytes: Some(10) }),
            ..Default::default()
        };
        let j = Report { info: info(Mode::Rps), stats: s, extras }.json().to_pretty();
        for key in [
            "\"mode\": \"rps\"",
            "\"requests\": 100",
            "\"requests_per_second\": 50",
            "\"p99\": 99.007",
            "\"p50\": 50.015",
            "\"short_reads\": 2",
            "\"total\": 2",
            "\"per_second\": [40, 60]",
            "\"cpu_us_per_request\": 10",
            "\"memory\": null",
            "\"unit\": \"us\"",
        ] {
            assert!(j.contains(key), "{key} missing in {j}");
        }
    }
}
