//! The AF_XDP rings' producer and consumer ends: the index protocol of libxdp's `xsk.h` (cached producer and
//! consumer, `nb_free` and `nb_avail`, Acquire loads of the other side's index, Release stores of ours; written once
//! in `xdptcp_sync::cursor` and loom-checked there) over raw pointers into the kernel's ring mappings, so it is
//! unit-tested on plain memory without a socket. [`ProdRing`] is our side of the fill and tx rings, [`ConsRing`] our
//! side of the rx and completion rings. Owns only the index protocol: it does not map or
//! size the rings (see `socket`) and does not know what a descriptor means (see `raw`).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use xdptcp_sync::cursor::{ConsCursor, ProdCursor};

use super::abi;

/// The producer side of a ring (fill, tx): we write entries and publish them by advancing `producer`; the kernel
/// advances `consumer` as it takes them.
pub struct ProdRing<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
    cursor: ProdCursor,
}

impl<T: Copy> ProdRing<T> {
    /// # Safety
    /// The pointers must stay valid for the ring's life, `descs` must hold `size` entries, `size` must be a power of
    /// two, and nobody else may produce into this ring.
    pub unsafe fn new(
        producer: NonNull<AtomicU32>,
        consumer: NonNull<AtomicU32>,
        flags: NonNull<AtomicU32>,
        descs: NonNull<T>,
        size: u32,
    ) -> ProdRing<T> {
        // SAFETY: valid per the contract.
        let cursor = unsafe { ProdCursor::new(producer.as_ref(), consumer.as_ref(), size) };
        ProdRing { producer, consumer, flags, descs, mask: size - 1, size, cursor }
    }

    /// `xsk_prod_nb_free`: free slots, at least `nb` if that many are free, never more than the ring holds.
    pub fn nb_free(&mut self, nb: u32) -> u32 {
        let consumer = self.consumer;
        // SAFETY: valid for the ring's life (constructor contract).
        self.cursor.free(unsafe { consumer.as_ref() }, nb)
    }

    /// Exactly how many slots are free.
    pub fn free_exact(&mut self) -> u32 {
        self.nb_free(self.size)
    }

    /// Entries produced that the kernel has not consumed yet.
    pub fn pending(&mut self) -> u32 {
        self.size - self.free_exact()
    }

    /// Writes `f(s)` for every `s` of `src` and publishes them, all or nothing (`xsk_ring_prod__reserve` then
    /// `__submit`). Returns `src.len()` or 0.
    pub fn produce<S>(&mut self, src: &[S], mut f: impl FnMut(&S) -> T) -> usize {
        let Ok(n) = u32::try_from(src.len()) else { return 0 };
        if n == 0 || n > self.size || self.nb_free(n) < n {
            return 0;
        }
        let mut idx = self.cursor.next();
        for s in src {
            // SAFETY: `idx & mask` < size; the slot is free (counted above), so the kernel does not read it now.
            unsafe { self.descs.as_ptr().add((idx & self.mask) as usize).write(f(s)) };
            idx = idx.wrapping_add(1);
        }
        self.cursor.advance(n);
        // SAFETY: valid for the ring's life.
        self.cursor.publish(unsafe { self.producer.as_ref() });
        src.len()
    }

    /// Whether the kernel set XDP_RING_NEED_WAKEUP on this ring (`xsk_ring_prod__needs_wakeup`, a plain read).
    pub fn needs_wakeup(&self) -> bool {
        // SAFETY: valid for the ring's life.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed) & abi::XDP_RING_NEED_WAKEUP != 0
    }
}

/// The consumer side of a ring (rx, completion): the kernel writes entries and advances `producer`; we read them and
/// give the slots back by advancing `consumer`.
pub struct ConsRing<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    cursor: ConsCursor,
}

impl<T: Copy> ConsRing<T> {
    /// # Safety
    /// As [`ProdRing::new`], with "consume" for "produce".
    pub unsafe fn new(
        producer: NonNull<AtomicU32>,
        consumer: NonNull<AtomicU32>,
        descs: NonNull<T>,
        size: u32,
    ) -> ConsRing<T> {
        // SAFETY: valid per the contract.
        let cursor = unsafe { ConsCursor::new(producer.as_ref(), consumer.as_ref(), size) };
        ConsRing { producer, consumer, descs, mask: size - 1, cursor }
    }

    /// `xsk_cons_nb_avail`: entries ready, at most `nb` (and at least `nb` if that many are ready), never more than
    /// the ring holds (a corrupt producer index must not make us read stale slots as new).
    pub fn nb_avail(&mut self, nb: u32) -> u32 {
        // SAFETY: valid for the ring's life.
        self.cursor.avail(unsafe { self.producer.as_ref() }, nb)
    }

    /// Reads up to `out.len()` entries as `f(entry)` into `out` and releases their slots (`xsk_ring_cons__peek` then
    /// `__release`). Returns how many.
    pub fn consume<S>(&mut self, out: &mut [S], mut f: impl FnMut(T) -> S) -> usize {
        let want = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let n = self.nb_avail(want);
        let mut idx = self.cursor.next();
        for o in &mut out[..n as usize] {
            // SAFETY: `idx & mask` < size; the entry was published by the producer (Acquire in `avail`) and is ours
            // until released below.
            *o = f(unsafe { self.descs.as_ptr().add((idx & self.mask) as usize).read() });
            idx = idx.wrapping_add(1);
        }
        // SAFETY: valid for the ring's life.
        self.cursor.release(unsafe { self.consumer.as_ref() }, n);
        n as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// A ring on plain memory, both indices starting at `start`, with the kernel's side played by the test.
    struct PlainRing<T> {
        idx: Box<[AtomicU32; 3]>,
        descs: Vec<T>,
        size: u32,
    }

    impl<T: Copy> PlainRing<T> {
        /// `blank` fills the slots before anything is produced.
        fn new(size: u32, start: u32, blank: T) -> PlainRing<T> {
            PlainRing {
                idx: Box::new([AtomicU32::new(start), AtomicU32::new(start), AtomicU32::new(0)]),
                descs: vec![blank; size as usize],
                size,
            }
        }
        fn ptrs(&mut self) -> (NonNull<AtomicU32>, NonNull<AtomicU32>, NonNull<AtomicU32>, NonNull<T>) {
            (
                NonNull::from(&self.idx[0]),
                NonNull::from(&self.idx[1]),
                NonNull::from(&self.idx[2]),
                NonNull::new(self.descs.as_mut_ptr()).unwrap(),
            )
        }
        fn prod(&mut self) -> ProdRing<T> {
            let (p, c, f, d) = self.ptrs();
            // SAFETY: the test keeps `self` alive and unmoved (boxed/vec storage) while the ring is used.
            unsafe { ProdRing::new(p, c, f, d, self.size) }
        }
        fn cons(&mut self) -> ConsRing<T> {
            let (p, c, _, d) = self.ptrs();
            // SAFETY: as `prod`.
            unsafe { ConsRing::new(p, c, d, self.size) }
        }
        fn slot(&self, i: u32) -> *mut T {
            // The test's "kernel" touches slots through the same raw pointer the ring uses.
            // SAFETY: masked into the `size` slots of `descs`.
            unsafe { (self.descs.as_ptr() as *mut T).add((i & (self.size - 1)) as usize) }
        }
        /// The kernel consumes up to `max` entries from a ring we produce into.
        fn kernel_consume(&self, max: u32) -> Vec<T> {
            let p = self.idx[0].load(Ordering::Acquire);
            let c = self.idx[1].load(Ordering::Relaxed);
            let n = p.wrapping_sub(c).min(max);
            // SAFETY: published entries (the producer index was read with Acquire); this thread plays the kernel.
            let out = (0..n).map(|i| unsafe { self.slot(c.wrapping_add(i)).read() }).collect();
            self.idx[1].store(c.wrapping_add(n), Ordering::Release);
            out
        }
        /// The kernel produces as many of `items` as fit into a ring we consume from.
        fn kernel_produce(&self, items: &[T]) -> usize {
            let p = self.idx[0].load(Ordering::Relaxed);
            let c = self.idx[1].load(Ordering::Acquire);
            let free = self.size - p.wrapping_sub(c);
            let n = (items.len() as u32).min(free);
            for (i, it) in items[..n as usize].iter().enumerate() {
                // SAFETY: a free slot (counted from the consumer index read with Acquire).
                unsafe { self.slot(p.wrapping_add(i as u32)).write(*it) };
            }
            self.idx[0].store(p.wrapping_add(n), Ordering::Release);
            n as usize
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// We produce (fill/tx) or the kernel produces (rx/comp) this many entries.
        Produce(u32),
        /// The kernel consumes (fill/tx) or we consume (rx/comp) up to this many.
        Consume(u32),
        /// Query with this `nb`.
        Query(u32),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                (0u32..40).prop_map(Op::Produce),
                (0u32..40).prop_map(Op::Consume),
                (0u32..40).prop_map(Op::Query)
            ],
            0..200,
        )
    }

    /// Starting indices: around 0 and just below the u32 wrap.
    fn start() -> impl Strategy<Value = u32> {
        prop_oneof![0u32..64, (u32::MAX - 64)..=u32::MAX, any::<u32>()]
    }

    proptest! {
        #[test]
        fn prod_ring_matches_a_fifo_model(size_log in 0u32..6, start in start(), ops in ops()) {
            let size = 1u32 << size_log;
            let mut mem = PlainRing::<u64>::new(size, start, 0);
            let mut ring = mem.prod();
            let mut model = VecDeque::new();
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Produce(n) => {
                        let items: Vec<u64> = (next..next + n as u64).collect();
                        let done = ring.produce(&items, |&a| a);
                        let fits = n > 0 && (n as usize) <= size as usize - model.len();
                        prop_assert_eq!(done, if fits { n as usize } else { 0 }, "all or nothing");
                        if fits {
                            model.extend(items);
                            next += n as u64;
                        }
                    }
                    Op::Consume(n) => {
                        let got = mem.kernel_consume(n);
                        let want: Vec<u64> = model.drain(..(n as usize).min(model.len())).collect();
                        prop_assert_eq!(got, want);
                    }
                    Op::Query(nb) => {
                        let actual = size - model.len() as u32;
                        let f = ring.nb_free(nb);
                        prop_assert!(f <= actual, "nb_free {} over the actual {}", f, actual);
                        prop_assert!(f >= nb || f == actual, "nb_free {} short of {} while {} are free", f, nb, actual);
                        prop_assert_eq!(ring.pending(), model.len() as u32);
                        prop_assert_eq!(ring.free_exact(), actual);
                    }
                }
                prop_assert_eq!(mem.idx[0].load(Ordering::Relaxed), start.wrapping_add(next as u32), "producer index");
            }
        }

        #[test]
        fn cons_ring_matches_a_fifo_model(size_log in 0u32..6, start in start(), ops in ops()) {
            let size = 1u32 << size_log;
            let mut mem = PlainRing::new(size, start, libc::xdp_desc { addr: 0, len: 0, options: 0 });
            let mut ring = mem.cons();
            let mut model = VecDeque::new();
            let mut next = 0u64;
            let desc = |i: u64| libc::xdp_desc { addr: i * 2048, len: (i % 1500) as u32, options: 0 };
            for op in ops {
                match op {
                    Op::Produce(n) => {
                        let items: Vec<_> = (next..next + n as u64).map(desc).collect();
                        let done = mem.kernel_produce(&items);
                        model.extend((next..next + done as u64).map(desc).map(|d| (d.addr, d.len)));
                        next += done as u64;
                    }
                    Op::Consume(n) => {
                        let mut out = vec![(0u64, 0u32); n as usize];
                        let got = ring.consume(&mut out, |d| (d.addr, d.len));
                        prop_assert!(got <= model.len());
                        // Cached entries may hide newer ones, but never all of them.
                        prop_assert!(got > 0 || n == 0 || model.is_empty(), "nothing consumed of {}", model.len());
                        let want: Vec<(u64, u32)> = model.drain(..got).collect();
                        let got: Vec<(u64, u32)> = out[..got].to_vec();
                        prop_assert_eq!(got, want);
                    }
                    Op::Query(nb) => {
                        let a = ring.nb_avail(nb);
                        prop_assert!(a <= nb.min(model.len() as u32));
                        prop_assert!(a > 0 || nb == 0 || model.is_empty());
                    }
                }
                // Our consumer index is always the start plus what was taken out of the model.
                let taken = next - model.len() as u64;
                prop_assert_eq!(mem.idx[1].load(Ordering::Relaxed), start.wrapping_add(taken as u32));
            }
        }
    }

    #[test]
    fn indices_wrap_past_u32_max() {
        let mut mem = PlainRing::<u64>::new(8, u32::MAX - 2, 0);
        let mut ring = mem.prod();
        assert_eq!(ring.produce(&[1, 2, 3, 4, 5], |&a| a), 5);
        assert_eq!(mem.idx[0].load(Ordering::Relaxed), 2, "the producer index wrapped");
        assert_eq!(ring.free_exact(), 3);
        assert_eq!(ring.produce(&[6, 7, 8, 9], |&a| a), 0, "4 do not fit in 3: nothing is written");
        assert_eq!(mem.kernel_consume(4), vec![1, 2, 3, 4]);
        assert_eq!(ring.produce(&[6, 7, 8, 9], |&a| a), 4);
        assert_eq!(ring.pending(), 5);
        assert_eq!(mem.kernel_consume(8), vec![5, 6, 7, 8, 9]);
        assert_eq!(ring.pending(), 0);
        assert_eq!(ring.free_exact(), 8);
    }

    #[test]
    fn need_wakeup_reads_the_flag() {
        let mut mem = PlainRing::<u64>::new(4, 0, 0);
        let ring = mem.prod();
        assert!(!ring.needs_wakeup());
        mem.idx[2].store(abi::XDP_RING_NEED_WAKEUP, Ordering::Relaxed);
        assert!(ring.needs_wakeup());
    }

    #[test]
    fn a_runaway_producer_index_is_not_read_past_one_ring() {
        let mut mem = PlainRing::<u64>::new(4, 0, 0);
        let mut ring = mem.cons();
        mem.idx[0].store(1000, Ordering::Release);
        let mut out = [0u64; 16];
        assert_eq!(ring.consume(&mut out, |a| a), 4);
    }

    #[test]
    fn a_runaway_consumer_index_frees_no_more_than_one_ring() {
        let mut mem = PlainRing::<u64>::new(4, 0, 0);
        let mut ring = mem.prod();
        assert_eq!(ring.produce(&[1, 2, 3, 4], |&a| a), 4);
        // The "kernel" claims to have consumed far past what was produced.
        mem.idx[1].store(1000, Ordering::Release);
        assert_eq!(ring.nb_free(8), 4, "capped at the ring size");
        assert_eq!(ring.nb_free(1), 4, "and the cached count too");
        assert_eq!(ring.free_exact(), 4);
    }
}
