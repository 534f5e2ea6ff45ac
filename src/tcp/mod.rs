//! The sans-IO TCP engine (RFC 9293 and friends). No clock, no socket, no thread in here.
//!
//! Driven as:
//! - [`Engine::handle_ipv4`]`(now, packet)`: one received IPv4 packet (header + TCP segment);
//! - [`Engine::handle_timeout`]`(now)` and [`Engine::poll_timeout`]: timer work on the engine's hashed wheel;
//! - [`Engine::poll_transmit`]`(now, sink)`: every segment that is due, written straight into buffers the caller
//!   lends (a UMEM frame past its Ethernet header, or a simulator's packet buffer);
//! - [`Engine::poll_event`]: application events (readable, writable, connected, incoming, closed);
//! - the socket-like API: `listen`, `accept`, `connect`, `send`, `recv`, `shutdown_write`, `close`, `abort`.
//!
//! Owns: connection state, the four-tuple table, listeners, TIME_WAIT records, buffers, timers, counters.
//! Must not touch: rings, ARP, Ethernet, threads. The AF_XDP worker, the simulator and the benchmarks all drive this
//! same code.
//!
//! Split like Linux's `net/ipv4/tcp_*.c`: `input` (receive path), `output` (segment building), `timers`,
//! `listener` (SYN/accept queues), `timewait` (compact records), `congestion/` (one file per algorithm), `recovery/` (SACK recovery, PRR, TLP).

pub mod assembler;
mod autotune;
pub mod buffer;
pub mod config;
pub mod congestion;
mod conn;
pub mod counters;
mod engine;
#[doc(hidden)]
pub mod hostile;
mod input;
pub mod isn;
mod listener;
mod output;
mod recovery;
pub mod rtt;
pub mod syncookies;
mod timers;
mod timewait;

pub use config::Config;
pub use counters::{Counter, Counters};
pub use engine::*;

#[cfg(test)]
mod tests;
