//! The sleep/wake protocol: a side that runs out of work announces that it is going to sleep, then re-checks for
//! work, and sleeps only if there is none; a side that hands it work publishes the work, then checks the
//! announcement, and wakes the sleeper only if it announced. Busy pairs therefore never make a system call.
//!
//! The announcement and the work are two different locations, so this is the store-buffering pattern: each side
//! stores one and loads the other. Release/Acquire alone allow both loads to read the old values (the sleeper misses
//! the work, the waker misses the announcement: a lost wake-up), on AArch64 with RCpc loads in practice. A
//! `fence(SeqCst)` between the store and the load on *both* sides forbids it (review L5); [`Announce`] is the one
//! place that does this, and `tests/loom.rs` checks it under every interleaving.

use crate::atomic::{fence, AtomicBool, Ordering};

/// A sleeper's announcement, on a cache line of its own (wakers read it once per batch).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Announce {
    sleeping: AtomicBool,
}

impl Announce {
    pub fn new() -> Announce {
        Announce { sleeping: AtomicBool::new(false) }
    }

    /// Sleeper: says it is about to sleep. Re-check for work after this call and sleep only if there is none.
    pub fn announce(&self) {
        self.sleeping.store(true, Ordering::Relaxed);
        // Pairs with the fence in `should_wake`: either our re-check sees the waker's work, or the waker sees this
        // store.
        fence(Ordering::SeqCst);
    }

    /// Sleeper: done sleeping (or decided not to).
    pub fn withdraw(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Waker, after publishing work: whether the sleeper must be woken. True for one waker per announcement (the
    /// flag is taken), so a crowd of wakers makes one system call.
    pub fn should_wake(&self) -> bool {
        // Pairs with the fence in `announce`: our work is published before we read the announcement.
        fence(Ordering::SeqCst);
        self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::Relaxed)
    }

    /// Whether a sleep is announced now (for tests and statistics).
    pub fn is_announced(&self) -> bool {
        self.sleeping.load(Ordering::Relaxed)
    }
}

/// An [`Announce`] with the eventfd the sleeper polls: a worker's doorbell, rung by the other workers (hand-off)
/// and by app threads.
#[cfg(not(loom))]
#[derive(Debug)]
pub struct Doorbell {
    announce: Announce,
    fd: std::os::fd::OwnedFd,
}

#[cfg(not(loom))]
impl Doorbell {
    /// A non-blocking, close-on-exec eventfd.
    pub fn new() -> std::io::Result<Doorbell> {
        use rustix::event::{eventfd, EventfdFlags};
        let fd = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?;
        Ok(Doorbell { announce: Announce::new(), fd })
    }

    /// Sleeper: see [`Announce::announce`]; then re-check, then poll [`fd`](Self::fd) if there is no work.
    pub fn announce(&self) {
        self.announce.announce();
    }

    /// Sleeper that found work on its re-check and does not poll: withdraws the announcement. (A waker that took
    /// it meanwhile leaves the eventfd readable; the next sleep then returns at once, which is harmless.)
    pub fn withdraw(&self) {
        self.announce.withdraw();
    }

    /// Sleeper, after the poll: withdraws the announcement and empties the eventfd.
    pub fn woke(&self) {
        self.announce.withdraw();
        let mut v = [0u8; 8];
        // Nothing to read (EAGAIN) when nobody rang; either way the counter is zero afterwards.
        let _ = rustix::io::read(&self.fd, &mut v);
    }

    /// Waker, after publishing work: writes the eventfd if the sleeper announced. Returns whether it did.
    pub fn ring(&self) -> bool {
        if !self.announce.should_wake() {
            return false;
        }
        // A full counter (EAGAIN) is still readable, so the sleeper wakes either way.
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        true
    }

    /// The eventfd to poll for readability.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// Whether the sleeper announced a sleep.
    pub fn is_announced(&self) -> bool {
        self.announce.is_announced()
    }
}

/// An [`Announce`] with a thread to unpark: an app thread's parking spot.
#[derive(Debug)]
pub struct Parker {
    announce: Announce,
    thread: crate::thread::Thread,
}

impl Parker {
    /// The calling thread's parker.
    pub fn current() -> Parker {
        Parker { announce: Announce::new(), thread: crate::thread::current() }
    }

    /// Parks the calling thread (the parker's own) until woken or `deadline`, unless `ready()` holds after the
    /// announcement; `ready` re-checks for work. Returns whether the thread parked.
    pub fn park(&self, deadline: Option<std::time::Instant>, ready: impl Fn() -> bool) -> bool {
        self.announce.announce();
        if ready() {
            self.announce.withdraw();
            return false;
        }
        // An unpark between the announcement and here leaves the thread's token set, so park returns at once.
        match deadline {
            #[cfg(not(loom))]
            Some(d) => std::thread::park_timeout(d.saturating_duration_since(std::time::Instant::now())),
            // loom has no clock: a deadline only bounds the real sleep, the model checks the wake-up.
            #[cfg(loom)]
            Some(_) => crate::thread::park(),
            None => crate::thread::park(),
        }
        self.announce.withdraw();
        true
    }

    /// The parked thread, to unpark it whatever it announced (shutdown).
    pub fn thread(&self) -> &crate::thread::Thread {
        &self.thread
    }

    /// Unparks the thread if it announced it parks; true if it did.
    pub fn unpark(&self) -> bool {
        if self.announce.should_wake() {
            self.thread.unpark();
            return true;
        }
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn the_doorbell_rings_only_for_an_announced_sleeper() {
        let bell = Doorbell::new().unwrap();
        assert!(!bell.ring(), "nobody sleeps");
        bell.announce();
        assert!(bell.is_announced());
        assert!(bell.ring());
        assert!(!bell.ring(), "one ring per announcement");
        let mut v = [0u8; 8];
        assert_eq!(rustix::io::read(bell.fd(), &mut v).unwrap(), 8, "the eventfd is readable");
        bell.announce();
        assert!(bell.ring());
        bell.woke();
        assert!(rustix::io::read(bell.fd(), &mut v).is_err(), "woke() emptied it");
        assert!(!bell.is_announced());
    }

    #[test]
    fn a_parked_thread_is_unparked() {
        let work = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let w = work.clone();
        let t = std::thread::spawn(move || {
            let p = Arc::new(Parker::current());
            tx.send(p.clone()).unwrap();
            let start = Instant::now();
            // Bounded: a lost wake-up shows as the full 5 s.
            while !w.load(std::sync::atomic::Ordering::Acquire) && start.elapsed() < Duration::from_secs(5) {
                p.park(Some(start + Duration::from_secs(5)), || w.load(std::sync::atomic::Ordering::Acquire));
            }
            start.elapsed()
        });
        let p = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        work.store(true, std::sync::atomic::Ordering::Release);
        p.unpark();
        assert!(t.join().unwrap() < Duration::from_secs(4));
        assert!(!p.unpark(), "not parked any more");
    }
}
