//! Prometheus metrics over a tiny HTTP/1.1 server (`--metrics ADDR`): `GET /metrics` answers the text exposition
//! format (version 0.0.4) built from the workers' published snapshots, so a scrape never waits on a worker.
//! Names are described in the [module documentation](super).
//!
//! One thread, one request per connection (`Connection: close`), request heads capped at 8 KiB and a two-second
//! deadline for the whole request (not per read: a client trickling a byte now and then would otherwise hold the
//! thread for hours, review L7), so a slow or hostile scraper delays other scrapes by at most that long and never
//! grows memory.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::protocol::{is_gauge, WorkerGauges};
use super::wait_readable;
use super::worker::ControlHub;
use crate::tcp::{Counter, Counters};

const MAX_HEAD: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(200);
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The running metrics endpoint; dropping it stops the thread.
pub struct Metrics {
    addr: SocketAddr,
    shutdown: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Metrics {
    /// Listens on `addr` (e.g. `127.0.0.1:9100`; port 0 picks one, see [`Metrics::local_addr`]).
    pub fn bind(addr: impl ToSocketAddrs, hub: ControlHub) -> io::Result<Metrics> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shutdown = Arc::new(AtomicBool::new(false));
        let thread = {
            let shutdown = shutdown.clone();
            std::thread::Builder::new().name("xdptcp-metrics".into()).spawn(move || {
                while !shutdown.load(Ordering::Relaxed) {
                    if !wait_readable(&listener, POLL_INTERVAL).unwrap_or(false) {
                        continue;
                    }
                    if let Ok((stream, _)) = listener.accept() {
                        if let Err(e) = serve(stream, &hub) {
                            tracing::debug!("metrics client: {e}");
                        }
                    }
                }
            })?
        };
        Ok(Metrics { addr, shutdown, thread: Some(thread) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, hub: &ControlHub) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let left = || {
        let d = deadline.saturating_duration_since(std::time::Instant::now());
        // A zero timeout means "none" to set_read_timeout: treat the end of the budget as a timeout here.
        if d.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "request deadline passed"))
        } else {
            Ok(d)
        }
    };
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_HEAD {
            return respond(&mut stream, "431 Request Header Fields Too Large", "text/plain", b"", false);
        }
        stream.set_read_timeout(Some(left()?))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or("").split_whitespace();
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version)) = (method, target, version) else {
        return respond(&mut stream, "400 Bad Request", "text/plain", b"bad request line\n", false);
    };
    if !version.starts_with("HTTP/1.") {
        return respond(&mut stream, "505 HTTP Version Not Supported", "text/plain", b"", false);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return respond(&mut stream, "405 Method Not Allowed", "text/plain", b"GET or HEAD\n", false),
    };
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => {
            let (counters, gauges) = hub.published();
            let body = render(&counters, &gauges);
            respond(&mut stream, "200 OK", CONTENT_TYPE, body.as_bytes(), head_only)
        }
        "/" => respond(
            &mut stream,
            "200 OK",
            "text/plain",
            b"xdptcp metrics: see /metrics (Prometheus text format)\n",
            head_only,
        ),
        _ => respond(&mut stream, "404 Not Found", "text/plain", b"not found; try /metrics\n", head_only),
    }
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8], head_only: bool) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

/// The metric name of a counter: `xdptcp_netstat_Tcp_ActiveOpens`.
pub fn counter_metric_name(c: Counter) -> String {
    format!("xdptcp_netstat_{}_{}", c.group(), c.name())
}

/// The exposition text for summed counters and per-worker gauges.
pub fn render(counters: &Counters, gauges: &[WorkerGauges]) -> String {
    let mut s = String::with_capacity(16 * 1024);
    for (c, v) in counters.iter() {
        let name = counter_metric_name(c);
        let kind = if is_gauge(c) { "gauge" } else { "counter" };
        let _ = writeln!(s, "# HELP {name} {}:{} summed over workers (Linux SNMP MIB name).", c.group(), c.name());
        let _ = writeln!(s, "# TYPE {name} {kind}\n{name} {v}");
    }
    let _ = writeln!(s, "# HELP xdptcp_workers Registered workers.\n# TYPE xdptcp_workers gauge");
    let _ = writeln!(s, "xdptcp_workers {}", gauges.len());
    type Get = fn(&WorkerGauges) -> f64;
    let per_worker: [(&str, &str, Get); 7] = [
        ("connections", "Connections in the table (every state but TIME_WAIT).", |g| g.connections as f64),
        ("timewait", "TIME_WAIT records.", |g| g.timewait as f64),
        ("listeners", "Listening sockets.", |g| g.listeners as f64),
        ("frames_in_use", "UMEM frames held by the worker.", |g| g.frames_in_use as f64),
        ("buffer_bytes", "Bytes of send and receive buffer memory held.", |g| g.buffer_bytes as f64),
        ("up", "1 while the worker runs; 0 once it is gone (its last numbers stay).", |g| g.live as u8 as f64),
        ("snapshot_age_seconds", "Age of the published snapshot these numbers come from.", |g| {
            g.age_ms as f64 / 1000.0
        }),
    ];
    for (name, help, get) in per_worker {
        let _ = writeln!(s, "# HELP xdptcp_worker_{name} {help}\n# TYPE xdptcp_worker_{name} gauge");
        for g in gauges {
            let _ = writeln!(s, "xdptcp_worker_{name}{{worker=\"{}\"}} {}", g.worker, get(g));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review L7: a client trickling its request a byte at a time loses the endpoint after the deadline, and a
    /// scrape behind it is answered.
    #[test]
    fn slowloris_client_is_cut_off_at_the_request_deadline() {
        let m = Metrics::bind("127.0.0.1:0", ControlHub::new()).unwrap();
        let addr = m.local_addr();
        let slow = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            // Up to 8 s of one byte per 250 ms, well under the old per-read timeout; stops once cut off.
            for _ in 0..32 {
                if s.write_all(b"G").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        let started = std::time::Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let waited = started.elapsed();
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply:.80}");
        assert!(waited < Duration::from_secs(5), "the scrape waited {waited:?} behind the slow client");
        slow.join().unwrap();
    }

    #[test]
    fn exposition_lines_are_well_formed() {
        let mut c = Counters::default();
        c.add(Counter::ActiveOpens, 4);
        let g = [WorkerGauges { worker: 0, connections: 3, age_ms: 1500, live: true, ..Default::default() }];
        let text = render(&c, &g);
        assert!(text.contains("\nxdptcp_netstat_Tcp_ActiveOpens 4\n"));
        assert!(text.contains("# TYPE xdptcp_netstat_Xdptcp_FramesInUse gauge\n"));
        assert!(text.contains("xdptcp_worker_connections{worker=\"0\"} 3\n"));
        assert!(text.contains("xdptcp_worker_snapshot_age_seconds{worker=\"0\"} 1.5\n"));
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let bare = name.split('{').next().unwrap();
            assert!(bare.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'), "{line}");
        }
    }
}
