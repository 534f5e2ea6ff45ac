//! xdptcp: a kernel-bypass TCP/IPv4 stack.
//!
//! Layers, from the wire up:
//! - [`wire`]: zero-copy packet views and reprs (Ethernet, ARP, IPv4, ICMPv4, TCP + options, checksums).
//! - [`timer`]: the hashed timer wheel every engine uses for RTO, delayed ACK, keepalive, TIME_WAIT, ...
//! - [`tcp`]: the sans-IO protocol engine, driven as `(now, packet) -> packets out + events`.
//! - [`sim`]: a deterministic in-memory network to run engines against each other with seeded faults.
//! - [`xdp`]: the XDP steering program's loader, UMEM and AF_XDP rings.
//! - [`worker`]: the per-queue run-to-completion loop that ties rings, ARP and the engine together.
//! - [`app`]: applications (echo, discard, http) and [`cli`]: the `xdptcp` command.

pub mod app;
pub mod bench;
pub mod cli;
pub mod control;
pub mod fuzz;
pub mod sim;
pub mod stack;
pub mod tcp;
pub mod time;
pub mod timer;
pub mod wire;
pub mod worker;
pub mod xdp;
