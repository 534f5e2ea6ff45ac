//! The per-queue worker: one thread per (interface, queue), pinned to a core, running a run-to-completion loop over
//! the AF_XDP rings, the link layer (ARP, ping), the TCP engine and the application.

pub mod datapath;
pub mod neigh;

pub use datapath::{Datapath, NeighbourShare, NetConfig, BATCH};
pub use neigh::{NeighConfig, NeighborCache};
pub mod run;

pub use run::Worker;
