//! A bounded single-producer/single-consumer byte ring, its buffer allocated on the first write: the app threads'
//! per-connection byte streams. The ring is split into a [`Writer`] and a [`Reader`], neither `Clone` and each
//! acting through `&mut self`, so the single-producer/single-consumer contract is held by the type system; a
//! [`Ring`] is both ends reunited (for reuse without allocating).
//!
//! Positions are free-running `u32` counters driven by [`cursor`](crate::cursor): the writer publishes bytes with a
//! Release store of `tail`, the reader frees space with a Release store of `head`; each side reads the other's
//! counter with Acquire. The two counters live on separate cache lines, so a busy pair moves one line per batch in
//! each direction and never writes the same line.
//!
//! Lazy buffer: an idle ring costs its header only. The writer allocates and publishes the pointer (Release) before
//! its first `tail` store; the reader reads the pointer only after seeing `tail` move (Acquire).
// The buffer is raw memory shared by the two ends; with the slot cells this is the crate's `unsafe`.
#![allow(unsafe_code)]

use crate::atomic::{AtomicPtr, AtomicU32, Ordering};
use crate::cursor::{self, ConsCursor, ProdCursor};
use crate::sync::Arc;
use crate::Padded;

/// The state both ends share.
struct Shared {
    /// Reader position: bytes read so far.
    head: Padded<AtomicU32>,
    /// Writer position: bytes written so far.
    tail: Padded<AtomicU32>,
    /// `cap` bytes, or null until the first write.
    buf: AtomicPtr<u8>,
    cap: usize,
}

impl Shared {
    fn len(&self) -> usize {
        cursor::queued(&self.tail.0, &self.head.0) as usize
    }

    fn allocated(&self) -> bool {
        !self.buf.load(Ordering::Relaxed).is_null()
    }

    /// The buffer, allocated on first use. Writer only (the one end that allocates).
    fn writer_buffer(&self) -> *mut u8 {
        let s = self;
        let p = s.buf.load(Ordering::Relaxed);
        if !p.is_null() {
            return p;
        }
        let p = Box::into_raw(vec![0u8; s.cap].into_boxed_slice()) as *mut u8;
        // Release: the reader loads the pointer (Acquire) only after a `tail` store that follows this one.
        s.buf.store(p, Ordering::Release);
        p
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let p = self.buf.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: allocated in `Shared::writer_buffer` as a boxed slice of `cap` bytes and freed only here, once both
            // ends are gone (the last `Arc`).
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, self.cap)) });
        }
    }
}

/// Both ends of a ring, held by one owner: empty, ready to [`split`](Self::split).
pub struct Ring(Arc<Shared>);

/// The producing end.
pub struct Writer(Arc<Shared>);

/// The consuming end.
pub struct Reader(Arc<Shared>);

/// A ring of `cap` bytes (rounded up to a power of two, at least 64), split into its ends.
pub fn channel(cap: usize) -> (Writer, Reader) {
    Ring::new(cap).split()
}

impl Ring {
    /// A ring of `cap` bytes (rounded up to a power of two, at least 64). Allocates no buffer yet.
    pub fn new(cap: usize) -> Ring {
        let cap = cap.clamp(64, 1 << 30).next_power_of_two();
        Ring(Arc::new(Shared {
            head: Padded(AtomicU32::new(0)),
            tail: Padded(AtomicU32::new(0)),
            buf: AtomicPtr::new(std::ptr::null_mut()),
            cap,
        }))
    }

    /// The two ends (no allocation: they share this ring's header and buffer).
    pub fn split(self) -> (Writer, Reader) {
        (Writer(self.0.clone()), Reader(self.0))
    }

    pub fn capacity(&self) -> usize {
        self.0.cap
    }

    /// Bytes of buffer allocated (0 or the capacity).
    pub fn buffer_bytes(&self) -> usize {
        buffer_bytes(&self.0)
    }
}

fn buffer_bytes(s: &Shared) -> usize {
    if s.allocated() {
        s.cap
    } else {
        0
    }
}

/// Takes the ring back from an end whose partner is gone, emptied for reuse (keeps the buffer).
fn rejoin(mut shared: Arc<Shared>) -> Result<Ring, Arc<Shared>> {
    if Arc::get_mut(&mut shared).is_none() {
        return Err(shared);
    }
    // Sole owner (checked above): no other end can read or write the counters.
    shared.head.0.store(0, Ordering::Relaxed);
    shared.tail.0.store(0, Ordering::Relaxed);
    Ok(Ring(shared))
}

impl Writer {
    /// Copies as much of `data` as fits; returns the count.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let s = &*self.0;
        let mut c = ProdCursor::new(&s.tail.0, &s.head.0, s.cap as u32);
        let n = (c.free(&s.head.0, 0) as usize).min(data.len());
        if n == 0 {
            return 0;
        }
        let buf = s.writer_buffer();
        let at = c.next() as usize & (s.cap - 1);
        let first = n.min(s.cap - at);
        // SAFETY: [at, at+first) and [0, n-first) lie in the `cap`-byte buffer (at < cap, n <= free <= cap) and in
        // the free region, which the reader does not touch until the cursor publishes `tail` below; this end is the
        // only writer (`&mut self`, not Clone).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), buf.add(at), first);
            std::ptr::copy_nonoverlapping(data.as_ptr().add(first), buf, n - first);
        }
        c.advance(n as u32);
        c.publish(&s.tail.0);
        n
    }

    /// Free space now (exact for this end: only the reader can change it, upwards).
    pub fn free(&self) -> usize {
        self.0.cap - self.0.len()
    }

    /// Bytes written and not yet read.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.0.cap
    }

    /// Bytes of buffer allocated (0 or the capacity).
    pub fn buffer_bytes(&self) -> usize {
        buffer_bytes(&self.0)
    }

    /// The whole ring back, emptied, if the reader has been dropped; else this end unchanged.
    pub fn rejoin(self) -> Result<Ring, Writer> {
        rejoin(self.0).map_err(Writer)
    }
}

impl Reader {
    /// Copies up to `out.len()` bytes out; returns the count.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let mut done = 0;
        // At most two contiguous pieces.
        for _ in 0..2 {
            let chunk = self.peek();
            let n = chunk.len().min(out.len() - done);
            if n == 0 {
                break;
            }
            out[done..done + n].copy_from_slice(&chunk[..n]);
            done += n;
            self.consume(n);
        }
        done
    }

    /// The readable bytes up to the end of the buffer (call again after [`consume`](Self::consume) for the wrapped
    /// rest). The borrow ends before the next `consume`, so the writer never overwrites what the slice shows.
    pub fn peek(&self) -> &[u8] {
        let s = &*self.0;
        let c = ConsCursor::new(&s.tail.0, &s.head.0, s.cap as u32);
        let len = c.ready() as usize;
        if len == 0 {
            return &[];
        }
        // Acquire: `tail` moved (read with Acquire by the cursor), so the writer stored the pointer before.
        let buf = s.buf.load(Ordering::Acquire);
        if buf.is_null() {
            return &[]; // cannot happen (bytes were written); never dereference it
        }
        let at = c.next() as usize & (s.cap - 1);
        let n = len.min(s.cap - at);
        // SAFETY: [at, at+n) lies in the buffer and in the region published by `tail`, which the writer does not
        // write until this end releases it in `consume` (which needs `&mut self`, so the slice is gone by then).
        unsafe { std::slice::from_raw_parts(buf.add(at), n) }
    }

    /// Frees `n` bytes read through [`peek`](Self::peek) (at most what is readable).
    pub fn consume(&mut self, n: usize) {
        let s = &*self.0;
        let mut c = ConsCursor::new(&s.tail.0, &s.head.0, s.cap as u32);
        // Capped: releasing bytes never published would hand the writer a region this end may still read.
        let n = n.min(c.ready() as usize);
        c.release(&s.head.0, n as u32);
    }

    /// Drops everything readable now.
    pub fn clear(&mut self) {
        let n = self.len();
        self.consume(n);
    }

    /// Bytes readable now (exact for this end: only the writer can change it, upwards).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.0.cap
    }

    /// Bytes of buffer allocated (0 or the capacity).
    pub fn buffer_bytes(&self) -> usize {
        buffer_bytes(&self.0)
    }

    /// The whole ring back, emptied, if the writer has been dropped; else this end unchanged.
    pub fn rejoin(self) -> Result<Ring, Reader> {
        rejoin(self.0).map_err(Reader)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn lazy_allocation_wrap_and_rejoin() {
        let (mut w, mut r) = channel(100);
        assert_eq!(w.capacity(), 128);
        assert_eq!(w.buffer_bytes(), 0);
        assert_eq!(r.read(&mut [0; 8]), 0);
        assert_eq!(r.buffer_bytes(), 0, "reading an empty ring allocates nothing");
        assert_eq!(w.write(&[1; 100]), 100);
        assert_eq!(r.buffer_bytes(), 128);
        assert_eq!(w.write(&[2; 100]), 28);
        assert_eq!(w.write(&[3]), 0);
        let mut out = [0u8; 90];
        assert_eq!(r.read(&mut out), 90);
        assert_eq!(w.write(&[4; 60]), 60); // wraps
        let mut all = vec![0u8; 200];
        let n = r.read(&mut all);
        assert_eq!(n, 98);
        let want: Vec<u8> = [vec![1u8; 10], vec![2; 28], vec![4; 60]].concat();
        assert_eq!(&all[..n], &want[..]);

        // Rejoin only once the partner is gone; the ring comes back empty with its buffer.
        assert_eq!(w.write(&[5; 7]), 7);
        let w = w.rejoin().err().expect("the reader is alive");
        drop(r);
        let ring = w.rejoin().ok().expect("the reader is gone");
        assert_eq!(ring.buffer_bytes(), 128);
        let (w, mut r) = ring.split();
        assert!(w.is_empty() && r.is_empty());
        assert_eq!(r.read(&mut all), 0);
    }

    #[test]
    fn consume_is_capped_at_what_was_published() {
        let (mut w, mut r) = channel(64);
        w.write(&[1; 10]);
        r.consume(1000);
        assert_eq!(w.free(), 64, "released the 10 bytes, no more");
        assert_eq!(w.write(&[2; 64]), 64);
        assert_eq!(r.peek(), &[2; 54][..], "up to the end of the buffer");
        r.clear();
        assert!(r.is_empty());
    }
}
