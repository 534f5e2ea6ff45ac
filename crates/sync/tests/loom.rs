//! Every interleaving (and every value the memory model lets a load return) of the ring cursors, the sleep
//! announcement and the app-thread parker, under loom:
//! `RUSTFLAGS="--cfg loom" cargo test --release -p xdptcp-sync --test loom` (`tests/run-all.sh` runs it).
#![cfg(loom)]
// The slots are loom cells, which loom checks for unsynchronised access; reaching them needs raw pointers.
#![allow(unsafe_code)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;

use xdptcp_sync::bell::{Announce, Parker};
use xdptcp_sync::cursor::{ConsCursor, ProdCursor};

/// A ring of `N` slots as the in-process users lay it out: two indices and the slots they guard.
struct Ring<const N: usize> {
    prod: AtomicU32,
    cons: AtomicU32,
    slots: [UnsafeCell<u32>; N],
}

// SAFETY: a slot is written only by the producer while the cursor counts it free and read only by the consumer
// while the cursor counts it ready: exactly what the model checks (loom reports any access the cursor's orderings do
// not order).
unsafe impl<const N: usize> Sync for Ring<N> {}

impl<const N: usize> Ring<N> {
    fn new() -> Ring<N> {
        Ring { prod: AtomicU32::new(0), cons: AtomicU32::new(0), slots: std::array::from_fn(|_| UnsafeCell::new(0)) }
    }
}

/// The producer hands `items` values through a ring of `N` slots, spinning when it is full; the consumer reads them
/// in order. A missing Release (publish or release) or Acquire shows as a data race on a slot or a wrong value.
fn hand_over<const N: usize>(items: u32) {
    loom::model(move || {
        let ring = Arc::new(Ring::<N>::new());
        let r = ring.clone();
        let producer = thread::spawn(move || {
            let mut c = ProdCursor::new(&r.prod, &r.cons, N as u32);
            for v in 1..=items {
                while c.free(&r.cons, 1) == 0 {
                    thread::yield_now();
                }
                let slot = &r.slots[c.next() as usize % N];
                // SAFETY: free per the cursor: the consumer has released it and does not read it.
                slot.with_mut(|p| unsafe { *p = v });
                c.advance(1);
                c.publish(&r.prod);
            }
        });
        let mut c = ConsCursor::new(&ring.prod, &ring.cons, N as u32);
        let mut want = 1;
        while want <= items {
            if c.avail(&ring.prod, 1) == 0 {
                thread::yield_now();
                continue;
            }
            let slot = &ring.slots[c.next() as usize % N];
            // SAFETY: ready per the cursor: published by the producer, which does not write it until released.
            let v = slot.with(|p| unsafe { *p });
            assert_eq!(v, want, "entries arrive in order and whole");
            c.release(&ring.cons, 1);
            want += 1;
        }
        producer.join().unwrap();
    });
}

#[test]
fn cursor_one_slot_ring_hands_over_two_entries() {
    hand_over::<1>(2);
}

#[test]
fn cursor_two_slot_ring_hands_over_three_entries() {
    hand_over::<2>(3);
}

/// The lost wake-up: the sleeper announces and re-checks for work; the waker publishes work and checks the
/// announcement. In no execution may the sleeper miss the work *and* the waker miss the announcement.
#[test]
fn announce_never_loses_a_wake_up() {
    loom::model(|| {
        let work = Arc::new(AtomicBool::new(false));
        let bell = Arc::new(Announce::new());
        let (w, b) = (work.clone(), bell.clone());
        let waker = thread::spawn(move || {
            w.store(true, Ordering::Release);
            b.should_wake()
        });
        bell.announce();
        let saw_work = work.load(Ordering::Acquire);
        let woken = waker.join().unwrap();
        assert!(saw_work || woken, "lost wake-up: the sleeper would sleep with work queued and nobody ringing");
    });
}

/// The app thread's park/unpark: the app thread parks until there is work; the worker publishes work and unparks it.
/// A lost wake-up parks the app thread forever, which loom reports as a deadlock.
#[test]
fn parker_never_sleeps_through_work() {
    loom::model(|| {
        let work = Arc::new(AtomicBool::new(false));
        let (tx, rx) = loom::sync::mpsc::channel();
        let w = work.clone();
        let app = thread::spawn(move || {
            let p = Arc::new(Parker::current());
            tx.send(p.clone()).unwrap();
            while !w.load(Ordering::Acquire) {
                p.park(None, || w.load(Ordering::Acquire));
            }
        });
        let parker = rx.recv().unwrap();
        work.store(true, Ordering::Release);
        parker.unpark();
        app.join().unwrap();
    });
}

/// The hand-off slot ring itself: two slots, three packets of different lengths, every byte checked.
#[test]
fn slots_hand_over_whole_packets() {
    use xdptcp_sync::slots;
    loom::model(|| {
        let (mut p, mut c, _) = slots::channel(2, 4);
        let producer = thread::spawn(move || {
            for i in 1..=3u8 {
                while p.push(&vec![i; i as usize]).is_err() {
                    thread::yield_now();
                }
                p.publish();
            }
        });
        let mut want = 1u8;
        while want <= 3 {
            let n = c.drain(1, &mut |b| {
                assert_eq!(b, &vec![want; want as usize][..], "a whole packet");
            });
            if n == 0 {
                thread::yield_now();
            } else {
                want += 1;
            }
        }
        producer.join().unwrap();
    });
}

/// The byte ring: 80 bytes in two writes of 40 through a 64-byte ring, so the second write waits for room and wraps
/// and the reads split at the end of the buffer; the reader gets every byte in order. Also covers the lazily
/// published buffer pointer.
#[test]
fn bytes_hand_over_a_wrapping_stream() {
    use xdptcp_sync::bytes;
    loom::model(|| {
        let (mut w, mut r) = bytes::channel(64);
        const TOTAL: usize = 80;
        let writer = thread::spawn(move || {
            let data: Vec<u8> = (0..TOTAL as u8).collect();
            let mut off = 0;
            while off < TOTAL {
                let n = w.write(&data[off..(off + 40).min(TOTAL)]);
                if n == 0 {
                    thread::yield_now();
                }
                off += n;
            }
        });
        let mut got = 0usize;
        let mut buf = [0u8; 64];
        while got < TOTAL {
            let n = r.read(&mut buf);
            for (k, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b as usize, got + k, "bytes arrive in order");
            }
            got += n;
            if n == 0 {
                thread::yield_now();
            }
        }
        writer.join().unwrap();
    });
}
