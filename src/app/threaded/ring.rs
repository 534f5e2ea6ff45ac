//! A bounded single-producer single-consumer byte ring with atomics, its buffer allocated on the first write.
//!
//! Positions are free-running `u32` counters (wrapping arithmetic), the buffer a power of two, driven by the shared
//! cursor protocol (`xdptcp_sync::cursor`, loom-checked): the producer publishes bytes with a Release store of
//! `tail`, the consumer frees space with a Release store of `head`; each side reads the other's counter with Acquire. The two counters live on separate cache lines, so a busy pair moves
//! one line per batch in each direction and never writes the same line.
//!
//! Lazy buffer: an idle connection costs the ring header only. The producer allocates and publishes the pointer
//! (Release) before its first `tail` store; the consumer reads the pointer only after seeing `tail` move (Acquire).

use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use crossbeam::utils::CachePadded;
use xdptcp_sync::cursor::{self, ConsCursor, ProdCursor};

pub struct ByteRing {
    /// Consumer position: bytes read so far.
    head: CachePadded<AtomicU32>,
    /// Producer position: bytes written so far.
    tail: CachePadded<AtomicU32>,
    buf: AtomicPtr<u8>,
    cap: usize,
}

// SAFETY: the buffer is only written by the single producer in the region the consumer does not read (between
// `tail` and `head + cap`), and read by the single consumer in the region published by `tail`; the unsafe methods'
// contracts keep each role on one thread at a time.
unsafe impl Send for ByteRing {}
// SAFETY: as for Send: shared use is the SPSC contract above.
unsafe impl Sync for ByteRing {}

impl ByteRing {
    /// A ring of `cap` bytes (rounded up to a power of two, at least 64). Allocates nothing yet.
    pub fn new(cap: usize) -> ByteRing {
        let cap = cap.clamp(64, 1 << 30).next_power_of_two();
        ByteRing {
            head: CachePadded::new(AtomicU32::new(0)),
            tail: CachePadded::new(AtomicU32::new(0)),
            buf: AtomicPtr::new(std::ptr::null_mut()),
            cap,
        }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes readable now (exact for the consumer, a lower bound of the free space's complement for others).
    pub fn len(&self) -> usize {
        cursor::queued(&self.tail, &self.head) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free space now (exact for the producer).
    pub fn free(&self) -> usize {
        self.cap - self.len()
    }

    /// Whether the buffer has been allocated (for memory accounting).
    pub fn allocated(&self) -> bool {
        !self.buf.load(Ordering::Relaxed).is_null()
    }

    fn buffer(&self) -> *mut u8 {
        let p = self.buf.load(Ordering::Acquire);
        if !p.is_null() {
            return p;
        }
        let b: Box<[u8]> = vec![0u8; self.cap].into_boxed_slice();
        let p = Box::into_raw(b) as *mut u8;
        self.buf.store(p, Ordering::Release);
        p
    }

    /// Copies as much of `data` as fits; returns the count.
    ///
    /// # Safety
    /// Only one thread at a time may act as the producer (`write`, `write_with`).
    pub unsafe fn write(&self, data: &[u8]) -> usize {
        let mut c = ProdCursor::new(&self.tail, &self.head, self.cap as u32);
        let n = (c.free(&self.head, 0) as usize).min(data.len());
        if n == 0 {
            return 0;
        }
        let buf = self.buffer();
        let at = c.next() as usize & (self.cap - 1);
        let first = n.min(self.cap - at);
        // SAFETY: [at, at+first) and [0, n-first) lie in the buffer and in the free region, which the consumer does
        // not read until the cursor publishes `tail` below.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), buf.add(at), first);
            std::ptr::copy_nonoverlapping(data.as_ptr().add(first), buf, n - first);
        }
        c.advance(n as u32);
        c.publish(&self.tail);
        n
    }

    /// Copies up to `buf.len()` bytes out; returns the count.
    ///
    /// # Safety
    /// Only one thread at a time may act as the consumer (`read`, `peek`, `consume`).
    pub unsafe fn read(&self, out: &mut [u8]) -> usize {
        let mut done = 0;
        // At most two contiguous pieces.
        for _ in 0..2 {
            // SAFETY: forwarded contract.
            let chunk = unsafe { self.peek() };
            let n = chunk.len().min(out.len() - done);
            if n == 0 {
                break;
            }
            out[done..done + n].copy_from_slice(&chunk[..n]);
            done += n;
            // SAFETY: forwarded contract; n bytes of the peeked chunk were copied.
            unsafe { self.consume(n) };
        }
        done
    }

    /// The readable bytes up to the end of the buffer (call again after `consume` for the wrapped rest).
    ///
    /// # Safety
    /// Consumer only; the slice is valid until the next `consume`.
    pub unsafe fn peek(&self) -> &[u8] {
        let c = ConsCursor::new(&self.tail, &self.head, self.cap as u32);
        let len = c.ready() as usize;
        if len == 0 {
            return &[];
        }
        let buf = self.buf.load(Ordering::Acquire);
        let at = c.next() as usize & (self.cap - 1);
        let n = len.min(self.cap - at);
        // SAFETY: tail moved, so the producer published the buffer before; the region is ours until `consume`.
        unsafe { std::slice::from_raw_parts(buf.add(at), n) }
    }

    /// Frees `n` bytes read through `peek`.
    ///
    /// # Safety
    /// Consumer only; `n` at most what is readable.
    pub unsafe fn consume(&self, n: usize) {
        let mut c = ConsCursor::new(&self.tail, &self.head, self.cap as u32);
        c.release(&self.head, n as u32);
    }

    /// Empties the ring for reuse (keeps the buffer).
    ///
    /// # Safety
    /// No other thread may use the ring concurrently.
    pub unsafe fn reset(&self) {
        self.head.store(0, Ordering::Relaxed);
        self.tail.store(0, Ordering::Relaxed);
    }
}

impl Drop for ByteRing {
    fn drop(&mut self) {
        let p = *self.buf.get_mut();
        if !p.is_null() {
            // SAFETY: allocated in `buffer` as a boxed slice of `cap` bytes and never freed elsewhere.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, self.cap)) });
        }
    }
}

/// The producer end of a standalone ring (for code that does not embed the ring in its own shared state).
pub struct Producer(std::sync::Arc<ByteRing>);
/// The consumer end.
pub struct Consumer(std::sync::Arc<ByteRing>);

/// A ring split into its two ends; each end is `Send` but not `Clone`, so the SPSC contract holds by construction.
pub fn channel(cap: usize) -> (Producer, Consumer) {
    let r = std::sync::Arc::new(ByteRing::new(cap));
    (Producer(r.clone()), Consumer(r))
}

impl Producer {
    pub fn write(&mut self, data: &[u8]) -> usize {
        // SAFETY: the only producer end, borrowed mutably.
        unsafe { self.0.write(data) }
    }
    pub fn free(&self) -> usize {
        self.0.free()
    }
}

impl Consumer {
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        // SAFETY: the only consumer end, borrowed mutably.
        unsafe { self.0.read(out) }
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lazy_allocation_and_wrap() {
        let r = ByteRing::new(100);
        assert_eq!(r.capacity(), 128);
        assert!(!r.allocated());
        // SAFETY: one thread plays both roles, one call at a time.
        unsafe {
            assert_eq!(r.read(&mut [0; 8]), 0);
            assert!(!r.allocated(), "reading an empty ring allocates nothing");
            assert_eq!(r.write(&[1; 100]), 100);
            assert!(r.allocated());
            assert_eq!(r.write(&[2; 100]), 28);
            assert_eq!(r.write(&[3]), 0);
            let mut out = [0u8; 90];
            assert_eq!(r.read(&mut out), 90);
            assert_eq!(r.write(&[4; 60]), 60); // wraps
            let mut all = vec![0u8; 200];
            let n = r.read(&mut all);
            assert_eq!(n, 98);
            let want: Vec<u8> = [vec![1u8; 10], vec![2; 28], vec![4; 60]].concat();
            assert_eq!(&all[..n], &want[..]);
        }
    }

    proptest! {
        /// Against a VecDeque model: any interleaving of writes and reads of any sizes.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec((any::<bool>(), 0usize..300), 1..200)) {
            let r = ByteRing::new(256);
            let mut model = std::collections::VecDeque::new();
            let mut next = 0u8;
            for (write, size) in ops {
                if write {
                    let data: Vec<u8> = (0..size).map(|_| { next = next.wrapping_add(1); next }).collect();
                    // SAFETY: one thread plays both roles, one call at a time.
                    let n = unsafe { r.write(&data) };
                    prop_assert_eq!(n, size.min(256 - model.len()));
                    model.extend(&data[..n]);
                    // What did not fit is regenerated next time: rewind the counter.
                    next = next.wrapping_sub((size - n) as u8);
                } else {
                    let mut out = vec![0u8; size];
                    // SAFETY: as above.
                    let n = unsafe { r.read(&mut out) };
                    prop_assert_eq!(n, size.min(model.len()));
                    let want: Vec<u8> = model.drain(..n).collect();
                    prop_assert_eq!(&out[..n], &want[..]);
                }
                prop_assert_eq!(r.len(), model.len());
            }
        }
    }

    /// Two threads, random chunk sizes, 8 MiB through a small ring: every byte in order.
    #[test]
    fn two_threads_move_every_byte_in_order() {
        use rand::{Rng, SeedableRng};
        const TOTAL: usize = 8 << 20;
        let (mut p, mut c) = channel(1024);
        let producer = std::thread::spawn(move || {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
            let mut sent = 0usize;
            let mut spins = 0u64;
            while sent < TOTAL {
                let len = rng.gen_range(1..3000).min(TOTAL - sent);
                let chunk: Vec<u8> = (sent..sent + len).map(|i| (i % 251) as u8).collect();
                let mut off = 0;
                while off < len {
                    let n = p.write(&chunk[off..]);
                    if n == 0 {
                        spins += 1;
                        std::thread::yield_now();
                    }
                    off += n;
                }
                sent += len;
            }
            spins
        });
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(2);
        let mut got = 0usize;
        let mut buf = vec![0u8; 4096];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while got < TOTAL {
            assert!(std::time::Instant::now() < deadline, "stalled at {got}");
            let want = rng.gen_range(1..buf.len());
            let n = c.read(&mut buf[..want]);
            for (k, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, ((got + k) % 251) as u8, "byte {}", got + k);
            }
            got += n;
            if n == 0 {
                std::thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert!(c.is_empty());
    }

    /// Not a check, a measurement (`cargo test --release --lib ring_vs_arrayqueue -- --ignored --nocapture`): MB/s
    /// through this ring against crossbeam's ArrayQueue, per byte and per recycled 1460-byte chunk.
    #[test]
    #[ignore]
    fn ring_vs_arrayqueue() {
        use crossbeam::queue::ArrayQueue;
        use std::sync::Arc;
        const TOTAL: usize = 256 << 20;
        const CHUNK: usize = 1460;
        let mbps = |t: std::time::Duration, bytes: usize| bytes as f64 / t.as_secs_f64() / 1e6;

        let (mut p, mut c) = channel(32 * 1024);
        let t0 = std::time::Instant::now();
        let h = std::thread::spawn(move || {
            let data = [7u8; CHUNK];
            let mut sent = 0;
            while sent < TOTAL {
                let n = p.write(&data[..CHUNK.min(TOTAL - sent)]);
                if n == 0 {
                    std::thread::yield_now(); // fair on a loaded machine: give the core to the reader
                }
                sent += n;
            }
        });
        let mut buf = vec![0u8; 16 * 1024];
        let mut got = 0;
        while got < TOTAL {
            let n = c.read(&mut buf);
            if n == 0 {
                std::thread::yield_now();
            }
            got += n;
        }
        h.join().unwrap();
        println!("ByteRing 32 KiB, {CHUNK} B writes: {:.0} MB/s", mbps(t0.elapsed(), TOTAL));

        let small = TOTAL / 16; // per-byte is slow: a sixteenth of the bytes
        let q = Arc::new(ArrayQueue::<u8>::new(32 * 1024));
        let q2 = q.clone();
        let t0 = std::time::Instant::now();
        let h = std::thread::spawn(move || {
            for _ in 0..small {
                while q2.push(7).is_err() {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = 0;
        while got < small {
            if q.pop().is_some() {
                got += 1;
            } else {
                std::thread::yield_now();
            }
        }
        h.join().unwrap();
        println!("ArrayQueue<u8> 32 Ki entries: {:.0} MB/s", mbps(t0.elapsed(), small));

        let full = Arc::new(ArrayQueue::<Vec<u8>>::new(22));
        let empty = Arc::new(ArrayQueue::<Vec<u8>>::new(22));
        for _ in 0..22 {
            empty.push(vec![0u8; CHUNK]).unwrap();
        }
        let (f2, e2) = (full.clone(), empty.clone());
        let t0 = std::time::Instant::now();
        let h = std::thread::spawn(move || {
            let mut sent = 0;
            while sent < TOTAL {
                if let Some(mut v) = e2.pop() {
                    v.iter_mut().for_each(|b| *b = 7);
                    sent += v.len();
                    f2.push(v).unwrap();
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = 0;
        while got < TOTAL {
            if let Some(v) = full.pop() {
                buf[..v.len()].copy_from_slice(&v);
                got += v.len();
                empty.push(v).unwrap();
            } else {
                std::thread::yield_now();
            }
        }
        h.join().unwrap();
        println!("ArrayQueue<Vec> of {CHUNK} B chunks (recycled): {:.0} MB/s", mbps(t0.elapsed(), TOTAL));
    }
}
