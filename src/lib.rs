//! xdptcp: a kernel-bypass TCP/IPv4 stack.
//!
//! Layers, from the wire up:
//! - [`wire`]: zero-copy packet views and reprs (Ethernet, ARP, IPv4, ICMPv4, TCP + options, checksums).
//! - [`timer`]: the hashed timer wheel every engine uses for RTO, delayed ACK, keepalive, TIME_WAIT, ...
//! - [`tcp`]: the sans-IO protocol engine, driven as `(now, packet) -> packets out + events`.
//! - [`sim`]: a deterministic in-memory network to run engines against each other with seeded faults.
//! - [`xdp`]: the XDP steering program's loader, UMEM and AF_XDP rings.
//! - [`stack`]: steering across workers (RSS, connection owners, hand-off rings).
//! - [`worker`]: the per-queue run-to-completion loop that ties rings, ARP and the engine together.
//! - [`control`]: the control plane (`xdptcp stat/ss/sysctl/capture/log`, metrics, pcap files).
//! - [`app`]: applications, as callbacks on the workers ([`app::App`]) or on threads of their own
//!   ([`app::threaded`]: `Listener`, `Connection`, `Poller`).
//! - [`proxy`]: `xdptcp proxy`, the L4 load balancer: backend pools, balancing, health, the relay app.
//! - [`host`]: the composition root: [`host::HostBuilder`] assembles a running stack on an interface.
//! - [`bench`](mod@bench), [`lab`], [`cli`]: the load generator, the veth lab, and the `xdptcp` command.
//!
//! # Using xdptcp as a library
//!
//! [`host::HostBuilder::build`] returns the [`host::Host`] and one [`host::QueueWorker`] per queue; each becomes a
//! [`worker::Worker`] running an [`app::App`] (callbacks that drive the [`tcp::Engine`]), or the bridge to app
//! threads that use [`app::threaded::Listener`] and [`app::threaded::Connection`] like blocking sockets. See
//! `examples/echo_server.rs` and `examples/client.rs`.
#![warn(missing_docs)]

pub mod app;
pub mod host;
pub mod lab;
// Rustdoc on every public item is enforced module by module; these still have undocumented items.
#[allow(missing_docs)]
pub mod bench;
#[allow(missing_docs)]
pub mod cli;
#[allow(missing_docs)]
pub mod control;
#[allow(missing_docs)]
pub mod proxy;
#[allow(missing_docs)]
pub mod sim;
#[allow(missing_docs)]
pub mod stack;
#[allow(missing_docs)]
pub mod tcp;
#[allow(missing_docs)]
pub mod time;
#[allow(missing_docs)]
pub mod timer;
#[allow(missing_docs)]
pub mod wire;
#[allow(missing_docs)]
pub mod worker;
#[allow(missing_docs)]
pub mod xdp;
