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
//! - [`slots`]: the packet hand-off ring between workers (fixed-size slots on the cursor protocol).
//! - [`bytes`]: the app threads' byte rings (a stream on the cursor protocol), split into a writer and a reader end
//!   so that the single-producer/single-consumer contract is the type system's.
//!
//! `slots` and `bytes` are the only modules of this crate with `unsafe` (the memory the two ends share); their
//! APIs are safe. Owns the protocols and these two rings; not the AF_XDP rings' memory (the kernel's, in
//! `xdptcp::xdp`).

pub mod bell;
pub mod bytes;
pub mod cursor;
pub mod slots;

/// A value on a cache line of its own, so the two indices of a ring never share one.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// Interior mutability checked by loom under `cfg(loom)`; a thin wrapper of std's otherwise, with loom's API.
pub(crate) mod cell {
    #[cfg(loom)]
    pub use loom::cell::UnsafeCell;

    #[cfg(not(loom))]
    #[derive(Debug)]
    pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        pub fn new(v: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(v))
        }
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// `Arc`, real or loom's.
pub(crate) mod sync {
    #[cfg(loom)]
    pub use loom::sync::Arc;
    #[cfg(not(loom))]
    pub use std::sync::Arc;
}

/// The atomics, real or loom's.
pub(crate) mod atomic {
    #[cfg(loom)]
    pub use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, Ordering};
    #[cfg(not(loom))]
    pub use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, Ordering};
}

/// Thread parking, real or loom's.
pub(crate) mod thread {
    #[cfg(loom)]
    pub use loom::thread::{current, park, Thread};
    #[cfg(not(loom))]
    pub use std::thread::{current, park, Thread};
}
