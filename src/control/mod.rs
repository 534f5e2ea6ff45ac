//! The control plane: see inside a running stack (`xdptcp stat`, `ss`, `sysctl`, `capture`, Prometheus metrics)
//! without ever slowing a worker.
//!
//! A kernel-bypass stack hides from `netstat -s`, `ss`, `sysctl` and `tcpdump`; this module brings their
//! equivalents. Owns: the control protocol, its server and clients, captures and metrics. Must not touch: a
//! worker's state except through [`WorkerControl`] on the worker's own thread, and system calls (`sys`). Pieces:
//!
//! - [`WorkerControl`]: one per worker, owned by the worker thread. [`WorkerControl::service`] runs once per loop
//!   iteration and costs a time comparison and a channel emptiness check when nobody asks anything; it answers
//!   requests (counter snapshots, socket listings in bounded batches, sysctl get/set, capture start) and publishes a
//!   counters snapshot every ~100 ms into a slot that readers copy without ever waiting on the worker.
//!   [`WorkerControl::tap`] hands every received and transmitted frame to a running capture; with capture off it is
//!   a single branch on a worker-local field.
//! - [`ControlHub`]: the registry of workers. Every reader (socket server, metrics, tests) goes through it: it sums
//!   counters ([`Counters::merge`](crate::tcp::Counters::merge)), fans listings out worker by worker, batch by
//!   batch, and starts captures.
//! - [`ControlServer`]: a Unix domain socket (default `/run/xdptcp/<name>.sock`, mode 0600 in a 0700 directory,
//!   peers checked with `SO_PEERCRED`: root or the server's own user) served by its own thread, one thread per
//!   client (at most [`server::MAX_CLIENTS`]). A stale socket file is replaced; a live one (another server answers)
//!   is an error; the file is removed on drop.
//! - [`Capture`]: pcapng capture through per-worker lock-free rings of fixed-size records; a full ring is a counted
//!   drop, never a stall.
//! - [`PcapFile`]: `--pcap FILE` on `serve` and `bench`: the whole run into one pcapng file through the same
//!   rings, independent of on-demand captures.
//! - [`connlog`]: `xdptcp log`: every segment of the connections an ss filter selects, logged through `tracing`
//!   (debug, target `xdptcp::conn`) only while asked.
//! - [`Metrics`]: `--metrics ADDR`, a tiny HTTP/1.1 server on its own thread serving Prometheus text.
//! - [`Client`]: what the CLI verbs (and tests) use to talk to the socket.
//!
//! # Wiring it into a runtime
//!
//! ```no_run
//! use std::time::Duration;
//! use xdptcp::control::{ControlServer, Direction, LinkType, Metrics, ServerConfig};
//! use xdptcp::tcp::{Config, Engine};
//! use xdptcp::time::MonotonicClock;
//!
//! let server = ControlServer::bind(ServerConfig::for_name("eth0").unwrap()).unwrap();
//! let _metrics = Metrics::bind("127.0.0.1:9100", server.hub().clone()).unwrap();
//! // On each worker thread (one per queue):
//! let mut control = server.register_worker(LinkType::Ethernet);
//! let clock = MonotonicClock::new();
//! let mut engine = Engine::new(Config::default(), clock.now(), 42);
//! loop {
//!     let now = clock.now();
//!     // for each frame taken from the RX ring:   control.tap(now, frame, Direction::Rx);
//!     // for each frame put on the TX ring:       control.tap(now, frame, Direction::Tx);
//!     control.service(&mut engine, now);
//!     # break;
//! }
//! ```
//!
//! A worker that sleeps (in `poll(2)` on its XDP socket) should register with
//! [`ControlHub::register_worker_with_waker`] and a waker that interrupts the sleep (an eventfd write), or bound its
//! sleep: requests wait for the next `service` call and time out after two seconds.
//!
//! # Protocol
//!
//! Line-delimited JSON over the Unix socket. The client writes one [`Request`] per line; the server answers with
//! one or more [`Response`] lines, then reads the next request:
//!
//! ```text
//! -> {"cmd":"counters","fresh":true}
//! <- {"counters":{"counters":[["Ip:InReceives",12],...],"workers":[{"worker":0,"connections":3,...}]}}
//! -> {"cmd":"list","states":2047,"filter":"dport = :80","info":true}
//! <- {"sock":{"worker":0,"state":"LISTEN","local":"198.18.0.1:80","remote":"0.0.0.0:0","recv_q":2,...}}
//! <- {"warning":{"message":"worker 1 did not answer in time"}}
//! <- {"end":{"count":1}}
//! -> {"cmd":"log","filter":"dport = :80"}
//! <- {"log":{"filter":"dport = :80","workers":2}}
//! -> {"cmd":"sysctl_set","name":"tcp_syn_retries","value":"3"}
//! <- {"settings":[{"name":"net.ipv4.tcp_syn_retries","value":"3","runtime_settable":true}]}
//! <- {"error":{"message":"mtu cannot be changed while running; restart with the new value"}}
//! ```
//!
//! `capture` switches the connection to binary: after `{"capture_started":{...}}` the server sends the pcapng file
//! as frames of a 4-byte little-endian length and that many bytes, ends with a zero-length frame, then one
//! `{"capture_done":{"written":..,"matched":..,"dropped":..}}` line, and closes. Any byte the client sends during a
//! capture (or closing its end) stops it cleanly. Listings are streamed: the server asks a worker for one batch
//! (at most 512 sockets, 8192 connection or TIME_WAIT slots looked at), writes it to the client, then asks for the
//! next from a slot cursor, so neither the worker nor the server ever holds a whole table, a full listing costs O(n)
//! in total, and a slow client only slows its own listing.
//!
//! # Metrics
//!
//! Counter names follow node_exporter's netstat collector (`node_netstat_Tcp_ActiveOpens`), so dashboards carry
//! over by prefix: `xdptcp_netstat_<Group>_<Name>` summed over workers, typed `counter` (`gauge` for the few levels
//! in the counter set). Per-worker gauges carry a `worker` label: `xdptcp_worker_connections`,
//! `xdptcp_worker_timewait`, `xdptcp_worker_listeners`, `xdptcp_worker_frames_in_use`,
//! `xdptcp_worker_buffer_bytes`, `xdptcp_worker_up`, `xdptcp_worker_snapshot_age_seconds`.

pub mod capture;
pub mod client;
pub mod connlog;
pub mod filter;
pub mod metrics;
pub mod pcapfile;
pub mod protocol;
pub mod server;
pub mod ssfilter;
pub mod worker;

pub use capture::{Capture, CaptureInterface, CaptureLimits, CaptureTap, Direction, DEFAULT_SNAPLEN};
pub use client::{Client, ClientError};
pub use filter::{CaptureFilter, LinkType};
pub use metrics::Metrics;
pub use pcapfile::PcapFile;
pub use protocol::{CaptureSummary, Request, Response, Setting, SockRecord, TcpDetails, WorkerGauges};
pub use server::{ControlServer, ServerConfig};
pub use ssfilter::{SsFilter, StateSet};
pub use worker::{ControlHub, HubError, WorkerControl, WorkerSnapshot};

use std::os::fd::AsFd;
use std::time::Duration;

/// Waits until `fd` is readable (or hung up) or `timeout` passes; true if readable. Used by the accept loops so
/// they notice shutdown without a busy loop.
pub(crate) fn wait_readable(fd: &impl AsFd, timeout: Duration) -> std::io::Result<bool> {
    crate::sys::wait_readable(fd, timeout)
}
