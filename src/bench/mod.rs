//! `xdptcp bench`: a load generator for TCP servers, and the pieces of the xdptcp-versus-Linux comparison.
//!
//! One generator ([`gen::Generator`]) holds the workload logic (modes, pacing, response checking, error
//! accounting, latency recording) and talks to the network through a small [`gen::Transport`] trait with two
//! implementations: the xdptcp engine on an AF_XDP worker ([`engine_app`], [`xdp`]) and kernel sockets driven by
//! epoll ([`kernel`]). Both therefore measure exactly the same thing.
//!
//! Latency of open-loop runs (`--rate`) is taken from each request's *intended* send time, not from when the
//! generator managed to send it, so a stalled server cannot hide its stall by slowing the generator down
//! (coordinated omission, as in wrk2 and HdrHistogram).
//!
//! Reporting ([`report`], [`hgrm`], [`svg`], [`json`]) is pure: figures in, text out, unit-tested without a
//! network.

use std::net::SocketAddrV4;
use std::time::Duration;

pub mod ceiling;
pub mod controller;
pub mod engine_app;
pub mod gen;
pub mod hgrm;
pub mod json;
pub mod kernel;
pub mod proto;
pub mod report;
pub mod server;
pub mod stats;
pub mod svg;
pub mod synflood;
pub mod sys;
pub mod xdp;

/// The generator's clock: monotonic nanoseconds since it was created. Workers of one run share one origin so
/// their measurement windows line up.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        Clock { origin: std::time::Instant::now() }
    }
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// What the generator does with each connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Mode {
    /// Persistent connections, one request/response at a time on each.
    Rps,
    /// Connect, one request/response, close; repeat.
    Cps,
    /// Bulk send on every connection; throughput per connection and in total.
    Stream,
    /// Open the connections and keep them idle; report memory per connection.
    Hold,
    /// Spoofed SYNs at a fixed rate (only against a lab this tool created, or with --i-own-this-target).
    Synflood,
    /// Raw TCP data frames of --frame-size bytes as fast as AF_XDP sends them, to `xdptcp bench sink` (same gate
    /// as synflood): the packet-rate ceiling of the path.
    Ceiling,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Rps => "rps",
            Mode::Cps => "cps",
            Mode::Stream => "stream",
            Mode::Hold => "hold",
            Mode::Synflood => "synflood",
            Mode::Ceiling => "ceiling",
        }
    }
}

/// One worker's share of the workload.
#[derive(Clone, Debug)]
pub struct Workload {
    pub mode: Mode,
    pub target: SocketAddrV4,
    /// Connections this worker keeps open (rps, stream, hold) or at most in flight (cps).
    pub connections: usize,
    /// Request bytes (rps, cps) or bytes per write (stream).
    pub request_size: usize,
    /// Response bytes to wait for (echo semantics; ignored with `http`).
    pub response_size: usize,
    /// `GET / HTTP/1.1` keep-alive requests, responses parsed by Content-Length.
    pub http: bool,
    /// Open loop: this worker's requests (cps: connections) per second, evenly spaced. `None`: closed loop.
    pub rate: Option<f64>,
    /// Stop after this many requests (cps: connections) from this worker.
    pub requests: Option<u64>,
    /// Connect and response timeout.
    pub timeout: Duration,
    /// Verify echoed bytes against what was sent (only when request and response sizes are equal).
    pub verify: bool,
}

impl Workload {
    /// A workload with the defaults of the command line.
    pub fn new(mode: Mode, target: SocketAddrV4) -> Workload {
        Workload {
            mode,
            target,
            connections: 1,
            request_size: 64,
            response_size: 64,
            http: false,
            rate: None,
            requests: None,
            timeout: Duration::from_secs(5),
            verify: true,
        }
    }

    /// Splits a whole-run workload across `workers`: connections, rate and request limit are divided, the
    /// remainder going to the first workers.
    pub fn split(&self, workers: usize) -> Vec<Workload> {
        let workers = workers.max(1);
        (0..workers)
            .map(|i| {
                let share = |total: u64| total / workers as u64 + u64::from((i as u64) < total % workers as u64);
                let mut w = self.clone();
                w.connections = share(self.connections as u64) as usize;
                w.rate = self.rate.map(|r| r / workers as f64);
                w.requests = self.requests.map(share);
                w
            })
            .filter(|w| w.connections > 0 || matches!(w.mode, Mode::Synflood | Mode::Ceiling))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn split_divides_connections_rate_and_requests() {
        let mut w = Workload::new(Mode::Rps, SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 7));
        w.connections = 5;
        w.rate = Some(1000.0);
        w.requests = Some(11);
        let parts = w.split(2);
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].connections, parts[1].connections), (3, 2));
        assert_eq!((parts[0].requests, parts[1].requests), (Some(6), Some(5)));
        assert_eq!(parts[0].rate, Some(500.0));
        // Fewer connections than workers: idle workers are dropped rather than run empty.
        w.connections = 1;
        assert_eq!(w.split(2).len(), 1);
    }
}
