//! Steering across workers: which worker owns a connection (the NIC's RSS, computed in software), and the source
//! ports that keep an active open's replies on the opening worker's queue.
//!
//! Owns: hashing and queue arithmetic, the ownership function (`steer`) and the hand-off rings between workers
//! (`handoff`). Must not touch: AF_XDP rings or TCP state; the ring index protocol and the doorbell are
//! `xdptcp_sync`'s, the ethtool requests `sys`'s.

pub mod handoff;
pub mod rss;
pub mod steer;
