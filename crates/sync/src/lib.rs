//! The two lock-free protocols xdptcp's threads share, in one small crate so that `loom` can check every
//! interleaving of them without compiling the stack (`RUSTFLAGS="--cfg loom" cargo test -p xdptcp-sync --test loom`,
//! run by `tests/run-all.sh`):
//!
//! - [`cursor`]: the single-producer/single-consumer ring index protocol (free-running `u32` indices, Acquire loads
//!   of the other side's index, Release stores of one's own), used by the AF_XDP rings (the kernel is the other
//!   side), the workers' packet hand-off rings and the app threads' byte rings.
//! - [`bell`]: the sleep announcement (announce, fence, re-check, sleep / publish, fence, check, wake) that lets a
//!   busy pair run without system calls and never loses a wake-up; [`bell::Doorbell`] adds the eventfd a worker
//!   polls, [`bell::Parker`] the thread park of an app thread.
//!
//! Owns only the index and flag protocols: no buffers, no slots, no packets (the users own those and their
//! `unsafe`). This crate has no `unsafe` code at all.

pub mod bell;
pub mod cursor;

/// The atomics, real or loom's.
pub(crate) mod atomic {
    #[cfg(loom)]
    pub use loom::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
    #[cfg(not(loom))]
    pub use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
}

/// Thread parking, real or loom's.
pub(crate) mod thread {
    #[cfg(loom)]
    pub use loom::thread::{current, park, Thread};
    #[cfg(not(loom))]
    pub use std::thread::{current, park, Thread};
}
