//! The single-producer/single-consumer ring index protocol: each side owns one free-running `u32` index (the
//! producer's counts entries written, the consumer's entries read; slot = index & (size - 1)), reads the other's with
//! Acquire and publishes its own with Release. This is the protocol of libxdp's `xsk.h` (the kernel is one side of
//! the AF_XDP rings) and the one the in-process rings use, so it is written once here.
//!
//! The cursors keep a cached copy of the other side's index and re-read it only when the cache cannot answer (fewer
//! slots or entries than asked for), so a busy side touches the other's cache line once per batch. Indices wrap;
//! `size` must be a power of two of at most 2^31. Counts are capped at `size`, so a corrupt index on the other side
//! (the kernel's) can never make a side overwrite unread entries or read stale ones as new.
//!
//! The cursors do not hold the indices: every call takes them by reference, so the same code runs on an index in
//! kernel-mapped memory, in an `Arc`'s header, or in loom's model.

use crate::atomic::{AtomicU32, Ordering};

/// The producer's side: where the next entry goes and how many slots are free.
#[derive(Debug, Clone)]
pub struct ProdCursor {
    /// Next index to write; published by [`publish`](Self::publish).
    next: u32,
    /// The index last published.
    published: u32,
    /// The consumer's index plus `size`, as last read (`xsk.h`'s cached_cons): free slots are `cons_end - next`.
    cons_end: u32,
    size: u32,
}

impl ProdCursor {
    /// Attaches to a ring whose producer index is `prod` (ours) and consumer index `cons`.
    pub fn new(prod: &AtomicU32, cons: &AtomicU32, size: u32) -> ProdCursor {
        assert!(size.is_power_of_two() && size <= 1 << 31, "ring size {size} is not a power of two up to 2^31");
        let next = prod.load(Ordering::Relaxed);
        let mut c = ProdCursor { next, published: next, cons_end: next, size };
        c.refresh(cons);
        c
    }

    fn refresh(&mut self, cons: &AtomicU32) -> u32 {
        // Acquire pairs with the consumer's Release in `ConsCursor::release`: its reads of the slots it gave back are
        // done before we overwrite them.
        let c = cons.load(Ordering::Acquire);
        let free = c.wrapping_add(self.size).wrapping_sub(self.next).min(self.size);
        self.cons_end = self.next.wrapping_add(free);
        free
    }

    /// Free slots, at least `nb` if that many are free (`xsk_prod_nb_free`): the cached count when it covers `nb`
    /// (it can only under-count: the consumer never goes back), else the consumer's index is read and it is exact.
    pub fn free(&mut self, cons: &AtomicU32, nb: u32) -> u32 {
        let free = self.cons_end.wrapping_sub(self.next);
        if free >= nb {
            return free;
        }
        self.refresh(cons)
    }

    /// The index of the next slot to write (mask it with `size - 1`).
    pub fn next(&self) -> u32 {
        self.next
    }

    /// Counts `n` slots as written. The caller wrote them after [`free`](Self::free) said they were free.
    pub fn advance(&mut self, n: u32) {
        debug_assert!(n <= self.cons_end.wrapping_sub(self.next), "advance past the free slots");
        self.next = self.next.wrapping_add(n);
    }

    /// Makes the entries written so far visible to the consumer; returns whether there were new ones.
    pub fn publish(&mut self, prod: &AtomicU32) -> bool {
        if self.next == self.published {
            return false;
        }
        // Release: the slot writes above happen before the consumer sees the new index (its Acquire in `avail`).
        prod.store(self.next, Ordering::Release);
        self.published = self.next;
        true
    }

    /// Entries produced (published or not) that the consumer has not taken, as far as the cache knows.
    pub fn pending(&mut self, cons: &AtomicU32) -> u32 {
        self.size - self.free(cons, self.size)
    }
}

/// The consumer's side: where the next entry is and how many are ready.
#[derive(Debug, Clone)]
pub struct ConsCursor {
    /// Next index to read; given back by [`release`](Self::release).
    next: u32,
    /// The producer's index as last read (`xsk.h`'s cached_prod).
    prod: u32,
    size: u32,
}

impl ConsCursor {
    /// Attaches to a ring whose producer index is `prod` and consumer index `cons` (ours).
    pub fn new(prod: &AtomicU32, cons: &AtomicU32, size: u32) -> ConsCursor {
        assert!(size.is_power_of_two() && size <= 1 << 31, "ring size {size} is not a power of two up to 2^31");
        let next = cons.load(Ordering::Relaxed);
        // Acquire pairs with the producer's Release in `publish`: the entries it wrote are visible.
        ConsCursor { next, prod: prod.load(Ordering::Acquire), size }
    }

    /// Entries ready, at most `nb`, and at least `nb` if that many are ready: the producer's index is read only when
    /// the cached entries do not cover `nb`.
    pub fn avail(&mut self, prod: &AtomicU32, nb: u32) -> u32 {
        let mut entries = self.ready();
        if entries < nb {
            // Acquire pairs with the producer's Release in `publish`: the entries it wrote are visible.
            self.prod = prod.load(Ordering::Acquire);
            entries = self.ready();
        }
        entries.min(nb)
    }

    /// Entries ready as far as the cache knows (no load), capped at one ring: a runaway producer index must not
    /// make us read stale slots as new.
    pub fn ready(&self) -> u32 {
        self.prod.wrapping_sub(self.next).min(self.size)
    }

    /// The index of the next entry to read (mask it with `size - 1`).
    pub fn next(&self) -> u32 {
        self.next
    }

    /// Gives the `n` entries read since the last call back to the producer.
    pub fn release(&mut self, cons: &AtomicU32, n: u32) {
        if n == 0 {
            return;
        }
        debug_assert!(n <= self.ready(), "release of entries never made available");
        self.next = self.next.wrapping_add(n);
        // Release: our reads of the entries happen before the producer may overwrite their slots.
        cons.store(self.next, Ordering::Release);
    }
}

/// Entries published and not yet released, as an observer sees them (Acquire loads of both indices).
pub fn queued(prod: &AtomicU32, cons: &AtomicU32) -> u32 {
    let c = cons.load(Ordering::Acquire);
    prod.load(Ordering::Acquire).wrapping_sub(c)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_counts_across_the_wrap() {
        let (p, c) = (AtomicU32::new(u32::MAX - 1), AtomicU32::new(u32::MAX - 1));
        let mut prod = ProdCursor::new(&p, &c, 4);
        let mut cons = ConsCursor::new(&p, &c, 4);
        assert_eq!(prod.free(&c, 4), 4);
        prod.advance(3);
        assert_eq!(cons.avail(&p, 8), 0, "nothing published yet");
        assert!(prod.publish(&p));
        assert!(!prod.publish(&p), "nothing new");
        assert_eq!(p.load(Ordering::Relaxed), 1, "the index wrapped");
        assert_eq!(queued(&p, &c), 3);
        assert_eq!(cons.avail(&p, 8), 3);
        assert_eq!(cons.avail(&p, 2), 2);
        assert_eq!(prod.free(&c, 2), 1, "the cache is refreshed, the consumer has not released yet");
        cons.release(&c, 2);
        assert_eq!(prod.free(&c, 2), 3);
        assert_eq!(prod.pending(&c), 1);
    }

    #[test]
    fn corrupt_indices_count_at_most_one_ring() {
        let (p, c) = (AtomicU32::new(0), AtomicU32::new(0));
        let mut prod = ProdCursor::new(&p, &c, 4);
        let mut cons = ConsCursor::new(&p, &c, 4);
        c.store(1000, Ordering::Relaxed);
        assert_eq!(prod.free(&c, 8), 4);
        assert_eq!(prod.free(&c, 1), 4, "the cached count is capped too");
        p.store(1000, Ordering::Relaxed);
        assert_eq!(cons.avail(&p, 16), 4);
    }
}
