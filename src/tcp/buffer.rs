//! Per-connection send and receive byte buffers, built from fixed-size chunks lent by a per-engine [`ChunkPool`].
//!
//! Why chunks: a connection's buffer capacity (128 KiB receive by default, up to megabytes) is only a limit; most
//! connections hold little or nothing most of the time. A buffer owns chunks only while it holds bytes, so an idle
//! connection costs zero bytes of buffer memory, and taking a chunk is a pop from the pool's free list rather than
//! a large `malloc` (which glibc serves with an `mmap` syscall above 128 KiB).
//!
//! Both buffers are a `VecDeque` of chunks plus the offset of the first live byte within the first chunk. All
//! chunks of a buffer come from the same pool and so have the same size; a buffer must always be used with the pool
//! it took its chunks from, and should be `clear`ed before being dropped (dropping returns the chunks to the system
//! allocator instead, and the pool's `allocated_chunks` then over-counts).

use std::collections::VecDeque;

/// Default chunk size: one page.
pub const DEFAULT_CHUNK: usize = 4096;
/// Default number of free chunks a pool keeps for reuse (4 MiB with the default chunk).
pub const DEFAULT_MAX_FREE_CHUNKS: usize = 1024;
/// Largest chunk size accepted: buffer offsets are kept in `u32`.
const MAX_CHUNK: usize = 1 << 30;

/// A per-engine free list of equally sized chunks.
#[derive(Debug)]
pub struct ChunkPool {
    chunk_size: usize,
    max_free_chunks: usize,
    free: Vec<Box<[u8]>>,
    /// Chunks currently lent to buffers.
    lent: usize,
}

impl Default for ChunkPool {
    fn default() -> Self {
        ChunkPool::new(DEFAULT_CHUNK, DEFAULT_MAX_FREE_CHUNKS)
    }
}

impl ChunkPool {
    /// A pool of `chunk_size`-byte chunks (clamped to 1 B..=1 GiB) that keeps at most `max_free_chunks` returned
    /// chunks for reuse and gives the rest back to the allocator. Allocates nothing up front.
    pub fn new(chunk_size: usize, max_free_chunks: usize) -> Self {
        ChunkPool { chunk_size: chunk_size.clamp(1, MAX_CHUNK), max_free_chunks, free: Vec::new(), lent: 0 }
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Chunks currently lent to buffers.
    pub fn allocated_chunks(&self) -> usize {
        self.lent
    }

    /// Chunks kept on the free list.
    pub fn free_chunks(&self) -> usize {
        self.free.len()
    }

    /// Bytes of chunks lent to buffers.
    pub fn bytes_in_use(&self) -> usize {
        self.lent * self.chunk_size
    }

    /// Bytes held by the free list.
    pub fn bytes_free(&self) -> usize {
        self.free.len() * self.chunk_size
    }

    /// Takes a chunk: O(1) from the free list, or a fresh zeroed allocation. Its contents are unspecified (a reused
    /// chunk holds old bytes); the buffers never expose bytes they did not write.
    pub fn alloc(&mut self) -> Box<[u8]> {
        self.lent += 1;
        self.free.pop().unwrap_or_else(|| vec![0u8; self.chunk_size].into_boxed_slice())
    }

    /// Returns a chunk. Kept for reuse while the free list is below its limit; a chunk of the wrong size (not from
    /// this pool) is simply freed.
    pub fn release(&mut self, chunk: Box<[u8]>) {
        self.lent = self.lent.saturating_sub(1);
        if chunk.len() == self.chunk_size && self.free.len() < self.max_free_chunks {
            self.free.push(chunk);
        }
    }

    /// Frees all but `keep` chunks of the free list (e.g. after a load peak).
    pub fn trim(&mut self, keep: usize) {
        self.free.truncate(keep);
        self.free.shrink_to_fit();
    }
}

/// A buffer's chunks. A slot is `None` where nothing was ever written: the receive buffer leaves the gap before an
/// out-of-order segment unallocated, so one byte at the right edge of the window costs one chunk, not the whole
/// window (review H1). Readable and queued bytes always lie in allocated (`Some`) chunks.
type Chunks = VecDeque<Option<Box<[u8]>>>;

/// Returns every chunk to the pool and drops the deque's own ring allocation too, so an empty buffer owns no heap
/// memory at all.
fn release_all(chunks: &mut Chunks, pool: &mut ChunkPool) {
    for chunk in chunks.drain(..).flatten() {
        pool.release(chunk);
    }
    *chunks = VecDeque::new();
}

/// Chunk size of a buffer: always the pool's (a buffer must be used with the pool it took its chunks from).
fn chunk_size_of(chunks: &Chunks, pool: &ChunkPool) -> usize {
    debug_assert!(
        chunks.iter().flatten().next().is_none_or(|c| c.len() == pool.chunk_size),
        "buffer used with a different pool"
    );
    pool.chunk_size
}

/// Chunks not yet allocated among those covering positions `[start, end)` (counted from the start of the first
/// chunk): what a write there would take from the pool.
fn chunks_missing(chunks: &Chunks, cs: usize, start: usize, end: usize) -> usize {
    if end <= start {
        return 0;
    }
    (start / cs..end.div_ceil(cs)).filter(|&i| chunks.get(i).is_none_or(|c| c.is_none())).count()
}

/// Makes sure chunks cover positions `[start, end)`: slots up to `end`, allocated only where `[start, end)` touches
/// them (a gap before `start` stays unallocated).
fn reserve_range(chunks: &mut Chunks, pool: &mut ChunkPool, cs: usize, start: usize, end: usize) {
    let needed = end.div_ceil(cs);
    while chunks.len() < needed {
        chunks.push_back(None);
    }
    for slot in chunks.range_mut(start / cs..needed) {
        if slot.is_none() {
            *slot = Some(pool.alloc());
        }
    }
}

/// Copies `data` to position `pos`; the chunks must already cover it.
fn copy_into(chunks: &mut Chunks, cs: usize, mut pos: usize, mut data: &[u8]) {
    while !data.is_empty() {
        let (index, within) = (pos / cs, pos % cs);
        let n = data.len().min(cs - within);
        if let Some(chunk) = chunks[index].as_mut() {
            chunk[within..within + n].copy_from_slice(&data[..n]);
        }
        data = &data[n..];
        pos += n;
    }
}

/// Copies position `pos..pos + out.len()` into `out`; the chunks must cover it (an unallocated one would read as
/// zeros, but readable bytes always lie in allocated chunks).
fn copy_from(chunks: &Chunks, cs: usize, mut pos: usize, out: &mut [u8]) {
    let mut done = 0;
    while done < out.len() {
        let (index, within) = (pos / cs, pos % cs);
        let n = (out.len() - done).min(cs - within);
        match chunks.get(index).and_then(|c| c.as_ref()) {
            Some(chunk) => out[done..done + n].copy_from_slice(&chunk[within..within + n]),
            None => out[done..done + n].fill(0),
        }
        done += n;
        pos += n;
    }
}

/// Drops `n` bytes from the front: returns chunks that are entirely consumed.
fn advance_head(chunks: &mut Chunks, pool: &mut ChunkPool, head: &mut u32, n: usize) {
    let cs = pool.chunk_size;
    let mut h = *head as usize + n;
    while h >= cs {
        match chunks.pop_front() {
            Some(chunk) => {
                if let Some(chunk) = chunk {
                    pool.release(chunk);
                }
            }
            None => break,
        }
        h -= cs;
    }
    *head = h as u32;
}

/// The allocated chunk at `index`, if any.
fn chunk_at(chunks: &Chunks, index: usize) -> &[u8] {
    chunks.get(index).and_then(|c| c.as_deref()).unwrap_or(&[])
}

fn clamp_capacity(capacity: usize) -> u32 {
    capacity.min(u32::MAX as usize) as u32
}

/// The receive buffer: in-order readable bytes, followed by room where out-of-order segments are written at their
/// final position (the [`Assembler`](super::assembler::Assembler) keeps track of which ranges are filled), so that
/// when a hole fills, [`RecvBuffer::commit`] makes them readable without copying.
#[derive(Debug, Default)]
pub struct RecvBuffer {
    chunks: Chunks,
    capacity: u32,
    /// Offset of the first unread byte within the first chunk.
    head: u32,
    /// Readable (in-order) bytes.
    len: u32,
    /// How far past the readable bytes `write_at` has written: chunks up to there hold out-of-order data.
    ooo_end: u32,
}

impl RecvBuffer {
    /// An empty buffer of `capacity` bytes; allocates nothing.
    pub fn new(capacity: usize) -> Self {
        RecvBuffer { capacity: clamp_capacity(capacity), ..Default::default() }
    }

    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Changes the capacity. Shrinking below the bytes held loses nothing: `free()` is then zero until the
    /// application reads (the engine must not shrink its advertised window, RFC 9293 §3.8.6).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = clamp_capacity(capacity);
    }

    /// Readable, in-order bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `capacity - len`: the basis of the advertised receive window. Out-of-order bytes occupy part of this space
    /// but are not subtracted: they lie inside the window already advertised.
    pub fn free(&self) -> usize {
        self.capacity.saturating_sub(self.len) as usize
    }

    /// How many bytes past the readable ones have been written by `write_at` (0 when no out-of-order data).
    pub fn out_of_order_extent(&self) -> usize {
        self.ooo_end as usize
    }

    /// Chunks held (for memory accounting, like `ss -m`): only allocated ones, a gap costs none.
    pub fn chunk_count(&self) -> usize {
        self.chunks.iter().filter(|c| c.is_some()).count()
    }

    /// Bytes of heap this buffer holds: its chunks plus the ring of chunk slots.
    pub fn bytes_held(&self, pool: &ChunkPool) -> usize {
        self.chunk_count() * pool.chunk_size + self.chunks.capacity() * core::mem::size_of::<Option<Box<[u8]>>>()
    }

    /// Chunks `write_at(offset, data[..n])` would take from the pool (0 when it lands in chunks already held), so
    /// the engine can charge its memory budget before writing.
    pub fn chunks_needed(&self, pool: &ChunkPool, offset: usize, n: usize) -> usize {
        let room = self.free();
        if offset >= room || n == 0 {
            return 0;
        }
        let n = n.min(room - offset);
        let head = if self.chunks.is_empty() { 0 } else { self.head as usize };
        let start = head + self.len as usize + offset;
        chunks_missing(&self.chunks, pool.chunk_size, start, start + n)
    }

    /// Writes `data` at `offset` bytes past the last readable byte (offset 0 is the in-order position), clipped so
    /// nothing lands beyond `capacity` bytes of the buffer. Only the chunks the bytes land in are taken; a gap before
    /// `offset` stays unallocated. Returns the bytes written (a prefix of `data`). The bytes become readable only
    /// through `commit`.
    pub fn write_at(&mut self, pool: &mut ChunkPool, offset: usize, data: &[u8]) -> usize {
        let room = self.free();
        if offset >= room || data.is_empty() {
            return 0;
        }
        let n = data.len().min(room - offset);
        if self.chunks.is_empty() {
            self.head = 0;
        }
        let cs = chunk_size_of(&self.chunks, pool);
        let start = self.head as usize + self.len as usize + offset;
        reserve_range(&mut self.chunks, pool, cs, start, start + n);
        copy_into(&mut self.chunks, cs, start, &data[..n]);
        // offset + n <= room <= u32::MAX.
        self.ooo_end = self.ooo_end.max((offset + n) as u32);
        n
    }

    /// The next `n` bytes after the readable ones are now in order (the caller wrote them with `write_at`; clamped to
    /// what was written so far, never exposing bytes this buffer did not write there).
    pub fn commit(&mut self, n: usize) {
        debug_assert!(n <= self.ooo_end as usize, "commit of bytes never written");
        let n = n.min(self.ooo_end as usize) as u32;
        self.len += n;
        self.ooo_end -= n;
    }

    /// Copies readable bytes into `out` and consumes them; returns how many.
    pub fn read(&mut self, pool: &mut ChunkPool, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len as usize);
        if n == 0 {
            return 0;
        }
        let cs = chunk_size_of(&self.chunks, pool);
        copy_from(&self.chunks, cs, self.head as usize, &mut out[..n]);
        self.consume(pool, n);
        n
    }

    /// The readable bytes that are contiguous in the first chunk (empty only when nothing is readable).
    pub fn peek(&self) -> &[u8] {
        match self.chunks.front() {
            Some(Some(chunk)) if self.len > 0 => {
                let start = self.head as usize;
                let end = chunk.len().min(start + self.len as usize);
                &chunk[start..end]
            }
            _ => &[],
        }
    }

    /// Copies readable bytes starting `offset` bytes past the first unread one, without consuming; returns how many.
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) -> usize {
        let len = self.len as usize;
        if offset >= len || out.is_empty() {
            return 0;
        }
        let n = out.len().min(len - offset);
        let cs = chunk_at(&self.chunks, 0).len();
        copy_from(&self.chunks, cs, self.head as usize + offset, &mut out[..n]);
        n
    }

    /// Drops up to `n` readable bytes, returning fully consumed chunks to the pool. Once nothing is readable and no
    /// out-of-order data is held, the buffer keeps no chunk at all.
    pub fn consume(&mut self, pool: &mut ChunkPool, n: usize) {
        let n = n.min(self.len as usize);
        self.len -= n as u32;
        if self.len == 0 && self.ooo_end == 0 {
            self.head = 0;
            release_all(&mut self.chunks, pool);
        } else {
            advance_head(&mut self.chunks, pool, &mut self.head, n);
        }
    }

    /// Forgets the out-of-order bytes (e.g. the engine pruned its out-of-order queue under memory pressure) and
    /// returns the chunks that held only them.
    pub fn discard_out_of_order(&mut self, pool: &mut ChunkPool) {
        self.ooo_end = 0;
        if self.len == 0 {
            self.head = 0;
            release_all(&mut self.chunks, pool);
            return;
        }
        let cs = chunk_size_of(&self.chunks, pool);
        let keep = (self.head as usize + self.len as usize).div_ceil(cs);
        while self.chunks.len() > keep {
            if let Some(Some(chunk)) = self.chunks.pop_back() {
                pool.release(chunk);
            }
        }
    }

    /// Drops everything, readable or not, and returns all chunks.
    pub fn clear(&mut self, pool: &mut ChunkPool) {
        self.head = 0;
        self.len = 0;
        self.ooo_end = 0;
        release_all(&mut self.chunks, pool);
    }
}

/// The send buffer: bytes queued by the application, from the oldest unacknowledged one (SND.UNA) on. Segments and
/// retransmissions are built by copying straight out of it into the outgoing frame.
#[derive(Debug, Default)]
pub struct SendBuffer {
    chunks: Chunks,
    capacity: u32,
    /// Offset of the oldest unacknowledged byte within the first chunk.
    head: u32,
    /// Bytes queued, sent or not, not yet acknowledged.
    len: u32,
}

impl SendBuffer {
    /// An empty buffer of `capacity` bytes; allocates nothing.
    pub fn new(capacity: usize) -> Self {
        SendBuffer { capacity: clamp_capacity(capacity), ..Default::default() }
    }

    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Changes the capacity; shrinking below `len` drops nothing, `free()` is zero until enough is acknowledged.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = clamp_capacity(capacity);
    }

    /// Bytes queued, including those sent and not yet acknowledged.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room for `append`.
    pub fn free(&self) -> usize {
        self.capacity.saturating_sub(self.len) as usize
    }

    /// Chunks held (for memory accounting); all allocated, a send buffer has no gaps.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Queues as much of `data` as fits in `free()`; returns how many bytes were taken.
    pub fn append(&mut self, pool: &mut ChunkPool, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        if self.chunks.is_empty() {
            self.head = 0;
        }
        let cs = chunk_size_of(&self.chunks, pool);
        let start = self.head as usize + self.len as usize;
        reserve_range(&mut self.chunks, pool, cs, start, start + n);
        copy_into(&mut self.chunks, cs, start, &data[..n]);
        self.len += n as u32;
        n
    }

    /// Copies the bytes at `[offset, offset + out.len())`, counted from the oldest unacknowledged byte and clipped to
    /// `len()`, into `out`; returns how many.
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) -> usize {
        let len = self.len as usize;
        if offset >= len || out.is_empty() {
            return 0;
        }
        let n = out.len().min(len - offset);
        let cs = chunk_at(&self.chunks, 0).len();
        copy_from(&self.chunks, cs, self.head as usize + offset, &mut out[..n]);
        n
    }

    /// The queued bytes from `offset` to the end of the chunk holding it (empty if `offset >= len()`), for callers
    /// that gather a segment from slices.
    pub fn slice_at(&self, offset: usize) -> &[u8] {
        let len = self.len as usize;
        if offset >= len {
            return &[];
        }
        let cs = chunk_at(&self.chunks, 0).len();
        let pos = self.head as usize + offset;
        let (index, within) = (pos / cs, pos % cs);
        let n = (cs - within).min(len - offset);
        &chunk_at(&self.chunks, index)[within..within + n]
    }

    /// Drops up to `n` acknowledged bytes from the front, returning emptied chunks (all of them once empty).
    pub fn consume(&mut self, pool: &mut ChunkPool, n: usize) {
        let n = n.min(self.len as usize);
        self.len -= n as u32;
        if self.len == 0 {
            self.head = 0;
            release_all(&mut self.chunks, pool);
        } else {
            advance_head(&mut self.chunks, pool, &mut self.head, n);
        }
    }

    /// Drops everything and returns all chunks.
    pub fn clear(&mut self, pool: &mut ChunkPool) {
        self.head = 0;
        self.len = 0;
        release_all(&mut self.chunks, pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_are_small() {
        assert!(core::mem::size_of::<RecvBuffer>() <= 48, "{}", core::mem::size_of::<RecvBuffer>());
        assert!(core::mem::size_of::<SendBuffer>() <= 48, "{}", core::mem::size_of::<SendBuffer>());
        assert_eq!(core::mem::size_of::<RecvBuffer>(), 48);
        assert_eq!(core::mem::size_of::<SendBuffer>(), 48);
    }

    #[test]
    fn pool_reuses_and_limits_free_list() {
        let mut pool = ChunkPool::new(16, 2);
        let a = pool.alloc();
        let b = pool.alloc();
        let c = pool.alloc();
        assert_eq!(a.len(), 16);
        assert_eq!(pool.allocated_chunks(), 3);
        assert_eq!(pool.bytes_in_use(), 48);
        let a_ptr = a.as_ptr();
        pool.release(a);
        pool.release(b);
        pool.release(c); // free list full: freed
        assert_eq!(pool.allocated_chunks(), 0);
        assert_eq!(pool.free_chunks(), 2);
        let _b = pool.alloc();
        let a2 = pool.alloc();
        assert_eq!(a2.as_ptr(), a_ptr, "LIFO reuse");
        assert_eq!(pool.free_chunks(), 0);
        pool.release(vec![0u8; 5].into_boxed_slice()); // foreign chunk: not kept
        assert_eq!(pool.free_chunks(), 0);
        pool.release(a2);
        pool.trim(0);
        assert_eq!(pool.free_chunks(), 0);
        assert_eq!(ChunkPool::new(0, 1).chunk_size(), 1);
    }

    #[test]
    fn idle_buffers_hold_no_memory() {
        let mut pool = ChunkPool::new(8, 16);
        let mut s = SendBuffer::new(100);
        assert_eq!(s.append(&mut pool, b"hello world, this is long"), 25);
        assert_eq!(s.chunk_count(), 4);
        s.consume(&mut pool, 10); // bytes 10..25 live in chunks 1..=3
        assert_eq!(s.chunk_count(), 3);
        s.consume(&mut pool, 15);
        assert_eq!(s.chunk_count(), 0);
        assert_eq!(s.chunks.capacity(), 0, "ring allocation released too");
        let mut r = RecvBuffer::new(100);
        assert_eq!(r.write_at(&mut pool, 0, b"abcdefghij"), 10);
        r.commit(10);
        let mut out = [0u8; 10];
        assert_eq!(r.read(&mut pool, &mut out), 10);
        assert_eq!(&out, b"abcdefghij");
        assert_eq!(r.chunk_count(), 0);
        assert_eq!(r.chunks.capacity(), 0);
        assert_eq!(pool.allocated_chunks(), 0);
    }

    #[test]
    fn out_of_order_write_then_fill_hole() {
        let mut pool = ChunkPool::new(4, 16);
        let mut r = RecvBuffer::new(20);
        // Bytes 6..10 arrive first, in a chunk beyond a gap.
        assert_eq!(r.write_at(&mut pool, 6, b"ghij"), 4);
        assert_eq!(r.len(), 0);
        assert_eq!(r.free(), 20);
        assert_eq!(r.chunk_count(), 2, "the gap before byte 6 stays unallocated");
        assert_eq!(r.out_of_order_extent(), 10);
        assert!(r.peek().is_empty());
        // Consuming nothing must not drop the out-of-order chunks.
        r.consume(&mut pool, 0);
        assert_eq!(r.chunk_count(), 2);
        assert_eq!(r.write_at(&mut pool, 0, b"abcdef"), 6);
        r.commit(10);
        assert_eq!(r.len(), 10);
        assert_eq!(r.free(), 10);
        assert_eq!(r.out_of_order_extent(), 0);
        assert_eq!(r.peek(), b"abcd");
        let mut out = [0u8; 3];
        assert_eq!(r.copy_out(5, &mut out), 3);
        assert_eq!(&out, b"fgh");
        let mut all = [0u8; 32];
        assert_eq!(r.read(&mut pool, &mut all), 10);
        assert_eq!(&all[..10], b"abcdefghij");
        assert_eq!(pool.allocated_chunks(), 0);
    }

    #[test]
    fn one_byte_at_the_window_edge_takes_one_chunk() {
        // Review H1: the gap before an out-of-order byte must not be allocated.
        let mut pool = ChunkPool::new(4096, 16);
        let mut r = RecvBuffer::new(131072);
        assert_eq!(r.chunks_needed(&pool, 131071, 1), 1);
        assert_eq!(r.write_at(&mut pool, 131071, b"z"), 1);
        assert_eq!(r.chunk_count(), 1);
        assert_eq!(pool.allocated_chunks(), 1);
        assert_eq!(r.chunks_needed(&pool, 131070, 2), 0, "same chunk");
        assert!(r.bytes_held(&pool) <= 4096 + 32 * 16 * 2, "{}", r.bytes_held(&pool));
        // Filling the hole allocates the chunks in between, and the stream reads back whole.
        let data: Vec<u8> = (0..131071u32).map(|i| i as u8).collect();
        assert_eq!(r.write_at(&mut pool, 0, &data), 131071);
        r.commit(131072);
        let mut out = vec![0u8; 131072];
        assert_eq!(r.read(&mut pool, &mut out), 131072);
        assert_eq!(&out[..131071], &data[..]);
        assert_eq!(out[131071], b'z');
        assert_eq!(pool.allocated_chunks(), 0);
    }

    #[test]
    fn write_at_clips_at_capacity() {
        let mut pool = ChunkPool::new(4, 16);
        let mut r = RecvBuffer::new(10);
        assert_eq!(r.write_at(&mut pool, 8, b"xyzw"), 2);
        assert_eq!(r.write_at(&mut pool, 10, b"x"), 0);
        assert_eq!(r.write_at(&mut pool, usize::MAX, b"x"), 0);
        assert_eq!(r.chunk_count(), 1);
        r.clear(&mut pool);
        assert_eq!(r.chunk_count(), 0);
        assert_eq!(pool.allocated_chunks(), 0);
        assert_eq!(r.write_at(&mut pool, 0, &[7u8; 30]), 10);
        r.commit(10);
        assert_eq!(r.free(), 0);
        // Shrinking the capacity keeps the data.
        r.set_capacity(4);
        assert_eq!(r.len(), 10);
        assert_eq!(r.free(), 0);
        assert_eq!(r.write_at(&mut pool, 0, b"a"), 0);
    }

    #[test]
    fn discard_out_of_order_returns_chunks() {
        let mut pool = ChunkPool::new(4, 16);
        let mut r = RecvBuffer::new(40);
        r.write_at(&mut pool, 0, b"abc");
        r.commit(3);
        r.write_at(&mut pool, 10, b"zzzzzzzz"); // up to position 3 + 10 + 8 = 21
        assert_eq!(r.chunk_count(), 4);
        r.discard_out_of_order(&mut pool);
        assert_eq!(r.chunk_count(), 1);
        assert_eq!(r.out_of_order_extent(), 0);
        assert_eq!(r.peek(), b"abc");
        r.consume(&mut pool, 3);
        assert_eq!(pool.allocated_chunks(), 0);
    }

    #[test]
    fn send_buffer_copy_out_and_slices() {
        let mut pool = ChunkPool::new(4, 16);
        let mut s = SendBuffer::new(10);
        assert_eq!(s.append(&mut pool, b"0123456789abc"), 10);
        assert_eq!(s.free(), 0);
        assert_eq!(s.append(&mut pool, b"x"), 0);
        let mut out = [0u8; 6];
        assert_eq!(s.copy_out(3, &mut out), 6);
        assert_eq!(&out, b"345678");
        assert_eq!(s.copy_out(8, &mut out), 2);
        assert_eq!(&out[..2], b"89");
        assert_eq!(s.copy_out(10, &mut out), 0);
        assert_eq!(s.slice_at(1), b"123");
        assert_eq!(s.slice_at(8), b"89");
        assert_eq!(s.slice_at(10), b"");
        s.consume(&mut pool, 5);
        assert_eq!(s.slice_at(0), b"567");
        assert_eq!(s.append(&mut pool, b"ABCDE"), 5);
        assert_eq!(s.copy_out(0, &mut [0u8; 10]), 10);
        s.consume(&mut pool, usize::MAX);
        assert!(s.is_empty());
        assert_eq!(pool.allocated_chunks(), 0);
    }

    #[derive(Debug, Clone)]
    enum RecvOp {
        WriteAt {
            offset: usize,
            data: Vec<u8>,
        },
        /// Commit a fraction (0..=255 of 255) of the contiguously written bytes beyond `len`.
        Commit(u8),
        Read(usize),
        Consume(usize),
        CopyOut {
            offset: usize,
            len: usize,
        },
        SetCapacity(usize),
        DiscardOoo,
        Clear,
    }

    fn recv_op() -> impl Strategy<Value = RecvOp> {
        prop_oneof![
            // In-order writes (offset 0) and near holes must be frequent, or commits would rarely have work.
            4 => (prop_oneof![Just(0usize), 0usize..8, 0usize..80], proptest::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(offset, data)| RecvOp::WriteAt { offset, data }),
            3 => any::<u8>().prop_map(RecvOp::Commit),
            2 => (0usize..50).prop_map(RecvOp::Read),
            2 => (0usize..50).prop_map(RecvOp::Consume),
            1 => (0usize..60, 0usize..60).prop_map(|(offset, len)| RecvOp::CopyOut { offset, len }),
            1 => (0usize..100).prop_map(RecvOp::SetCapacity),
            1 => Just(RecvOp::DiscardOoo),
            1 => Just(RecvOp::Clear),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn recv_buffer_matches_model(
            chunk in prop_oneof![Just(1usize), Just(3), Just(8), Just(64)],
            capacity in 0usize..100,
            ops in proptest::collection::vec(recv_op(), 1..60),
        ) {
            let mut pool = ChunkPool::new(chunk, 8);
            let mut buf = RecvBuffer::new(capacity);
            let mut cap = capacity;
            // Model: readable bytes, then written-or-not positions past them (len = out-of-order extent).
            let mut readable: VecDeque<u8> = VecDeque::new();
            let mut ooo: Vec<Option<u8>> = Vec::new();
            let mut max_cap = capacity;
            for op in ops {
                match op {
                    RecvOp::WriteAt { offset, data } => {
                        let room = cap.saturating_sub(readable.len());
                        let expect = if offset >= room { 0 } else { data.len().min(room - offset) };
                        prop_assert_eq!(buf.write_at(&mut pool, offset, &data), expect);
                        if expect > 0 {
                            if ooo.len() < offset + expect {
                                ooo.resize(offset + expect, None);
                            }
                            for (i, b) in data[..expect].iter().enumerate() {
                                ooo[offset + i] = Some(*b);
                            }
                        }
                    }
                    RecvOp::Commit(fraction) => {
                        let contiguous = ooo.iter().take_while(|b| b.is_some()).count();
                        let n = contiguous * fraction as usize / 255;
                        buf.commit(n);
                        readable.extend(ooo.drain(..n).map(|b| b.unwrap()));
                    }
                    RecvOp::Read(n) => {
                        let mut out = vec![0u8; n];
                        let got = buf.read(&mut pool, &mut out);
                        prop_assert_eq!(got, n.min(readable.len()));
                        let expect: Vec<u8> = readable.drain(..got).collect();
                        prop_assert_eq!(&out[..got], &expect[..]);
                    }
                    RecvOp::Consume(n) => {
                        buf.consume(&mut pool, n);
                        readable.drain(..n.min(readable.len()));
                    }
                    RecvOp::CopyOut { offset, len } => {
                        let mut out = vec![0u8; len];
                        let got = buf.copy_out(offset, &mut out);
                        let expect: Vec<u8> = readable.iter().skip(offset).take(len).copied().collect();
                        prop_assert_eq!(&out[..got], &expect[..]);
                    }
                    RecvOp::SetCapacity(c) => {
                        buf.set_capacity(c);
                        cap = c;
                        max_cap = max_cap.max(c);
                    }
                    RecvOp::DiscardOoo => {
                        buf.discard_out_of_order(&mut pool);
                        ooo.clear();
                    }
                    RecvOp::Clear => {
                        buf.clear(&mut pool);
                        readable.clear();
                        ooo.clear();
                    }
                }
                prop_assert_eq!(buf.len(), readable.len());
                prop_assert_eq!(buf.is_empty(), readable.is_empty());
                prop_assert_eq!(buf.free(), cap.saturating_sub(readable.len()));
                prop_assert_eq!(buf.out_of_order_extent(), ooo.len());
                let peek = buf.peek();
                prop_assert!(!peek.is_empty() || readable.is_empty());
                prop_assert!(peek.iter().eq(readable.iter().take(peek.len())));
                prop_assert_eq!(pool.allocated_chunks(), buf.chunk_count());
                // Memory bound: the chunks span at most head (< chunk) + the largest capacity seen.
                prop_assert!(buf.chunk_count() <= (chunk - 1 + max_cap).div_ceil(chunk));
                if readable.is_empty() && ooo.is_empty() {
                    prop_assert_eq!(buf.chunk_count(), 0);
                }
                // Sparse: only chunks that hold bytes (H1): the readable span (plus one for the head offset) and
                // at most one per written out-of-order byte, never the gap.
                let written = ooo.iter().filter(|b| b.is_some()).count();
                prop_assert!(buf.chunk_count() <= 1 + readable.len().div_ceil(chunk) + written);
            }
            let mut rest = vec![0u8; readable.len() + 1];
            let got = buf.read(&mut pool, &mut rest);
            prop_assert_eq!(got, readable.len());
            prop_assert!(rest[..got].iter().eq(readable.iter()));
            buf.clear(&mut pool);
            prop_assert_eq!(pool.allocated_chunks(), 0);
        }
    }

    #[derive(Debug, Clone)]
    enum SendOp {
        Append(Vec<u8>),
        CopyOut { offset: usize, len: usize },
        SliceAt(usize),
        Consume(usize),
        SetCapacity(usize),
        Clear,
    }

    fn send_op() -> impl Strategy<Value = SendOp> {
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..50).prop_map(SendOp::Append),
            3 => (0usize..80, 0usize..60).prop_map(|(offset, len)| SendOp::CopyOut { offset, len }),
            1 => (0usize..80).prop_map(SendOp::SliceAt),
            3 => (0usize..60).prop_map(SendOp::Consume),
            1 => (0usize..120).prop_map(SendOp::SetCapacity),
            1 => Just(SendOp::Clear),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn send_buffer_matches_model(
            chunk in prop_oneof![Just(1usize), Just(3), Just(8), Just(64)],
            capacity in 0usize..120,
            ops in proptest::collection::vec(send_op(), 1..60),
        ) {
            let mut pool = ChunkPool::new(chunk, 8);
            let mut buf = SendBuffer::new(capacity);
            let mut cap = capacity;
            let mut model: VecDeque<u8> = VecDeque::new();
            for op in ops {
                match op {
                    SendOp::Append(data) => {
                        let n = data.len().min(cap.saturating_sub(model.len()));
                        prop_assert_eq!(buf.append(&mut pool, &data), n);
                        model.extend(&data[..n]);
                    }
                    SendOp::CopyOut { offset, len } => {
                        let mut out = vec![0u8; len];
                        let got = buf.copy_out(offset, &mut out);
                        let expect: Vec<u8> = model.iter().skip(offset).take(len).copied().collect();
                        prop_assert_eq!(&out[..got], &expect[..]);
                    }
                    SendOp::SliceAt(offset) => {
                        let s = buf.slice_at(offset);
                        prop_assert_eq!(s.is_empty(), offset >= model.len());
                        prop_assert!(s.iter().eq(model.iter().skip(offset).take(s.len())));
                    }
                    SendOp::Consume(n) => {
                        buf.consume(&mut pool, n);
                        model.drain(..n.min(model.len()));
                    }
                    SendOp::SetCapacity(c) => {
                        buf.set_capacity(c);
                        cap = c;
                    }
                    SendOp::Clear => {
                        buf.clear(&mut pool);
                        model.clear();
                    }
                }
                prop_assert_eq!(buf.len(), model.len());
                prop_assert_eq!(buf.free(), cap.saturating_sub(model.len()));
                prop_assert_eq!(pool.allocated_chunks(), buf.chunk_count());
                // Exactly the chunks spanning [head, head + len): never a spare one.
                let span = (buf.head as usize + model.len()).div_ceil(chunk);
                prop_assert_eq!(buf.chunk_count(), if model.is_empty() { 0 } else { span });
            }
            buf.clear(&mut pool);
            prop_assert_eq!(pool.allocated_chunks(), 0);
        }
    }
}
