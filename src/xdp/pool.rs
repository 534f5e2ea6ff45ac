//! The worker's free UMEM frames. A frame is in exactly one place at a time: this pool, the fill ring, the rx ring,
//! the tx batch or ring, the completion ring, or an ARP wait queue. The pool checks returns so a double free (a bug
//! that would let the kernel and the worker write the same frame) is caught and counted rather than propagated.

/// A LIFO of free frame addresses (LIFO keeps recently used frames warm in cache).
#[derive(Debug)]
pub struct FramePool {
    free: Vec<u64>,
    /// Per frame: whether it is in the pool, by frame index.
    in_pool: Vec<bool>,
    frame_size: u64,
    total: usize,
    /// Returns of a frame that was already free, or not a frame of this UMEM (a bug elsewhere; never re-pooled).
    pub bad_returns: u64,
}

impl FramePool {
    /// A pool holding every frame in `addrs` (addresses of the UMEM's frames, any offset within the frame).
    pub fn new(addrs: Vec<u64>, frame_size: u64) -> FramePool {
        let frames = addrs.iter().map(|a| (a / frame_size) as usize + 1).max().unwrap_or(0);
        let mut in_pool = vec![false; frames];
        for a in &addrs {
            in_pool[(a / frame_size) as usize] = true;
        }
        FramePool { total: addrs.len(), free: addrs, in_pool, frame_size, bad_returns: 0 }
    }

    pub fn take(&mut self) -> Option<u64> {
        let a = self.free.pop()?;
        self.in_pool[(a / self.frame_size) as usize] = false;
        Some(a)
    }

    /// Returns a frame (any address inside it: the kernel may hand back an offset address).
    pub fn put(&mut self, addr: u64) {
        let i = (addr / self.frame_size) as usize;
        match self.in_pool.get_mut(i) {
            Some(slot) if !*slot => {
                *slot = true;
                self.free.push(addr);
            }
            _ => self.bad_returns += 1,
        }
    }

    pub fn free(&self) -> usize {
        self.free.len()
    }
    pub fn total(&self) -> usize {
        self.total
    }
    pub fn in_use(&self) -> usize {
        self.total - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_put_and_double_free_is_caught() {
        let mut p = FramePool::new(vec![256, 2048 + 256, 4096 + 256], 2048);
        assert_eq!(p.free(), 3);
        let a = p.take().unwrap();
        assert_eq!(p.in_use(), 1);
        p.put(a);
        p.put(a);
        assert_eq!(p.bad_returns, 1);
        assert_eq!(p.free(), 3);
        p.put(1 << 40);
        assert_eq!(p.bad_returns, 2);
        while p.take().is_some() {}
        assert_eq!(p.in_use(), 3);
    }
}
