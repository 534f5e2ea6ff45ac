//! The per-queue worker: one thread per (interface, queue), pinned to a core, running a run-to-completion loop over
//! the AF_XDP rings, the link layer (ARP, ping), the TCP engine and the application.
//!
//! Owns: the loop, the frame pool's use, the neighbour table, the datapath glue between frames and the engine.
//! Must not touch: TCP state or options (the engine's), ring index protocols or system calls (`xdp`'s and `sys`'s);
//! frame memory only through [`XskRings`](crate::xdp::XskRings) while the worker owns the frame.

pub mod datapath;
pub mod neigh;

pub use datapath::{Datapath, NeighbourShare, NetConfig, BATCH};
pub use neigh::{NeighConfig, NeighborCache};
pub mod run;

pub use run::Worker;
