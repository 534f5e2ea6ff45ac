//! Steering across workers: which worker owns a connection (the NIC's RSS, computed in software), and the source
//! ports that keep an active open's replies on the opening worker's queue.
//!
//! Owns: hashing and queue arithmetic. Must not touch: rings or TCP state.

pub mod rss;
