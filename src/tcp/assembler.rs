//! Out-of-order segment bookkeeping in sequence space (RFC 9293 §3.10.7.4 "segment text" processing, RFC 2018 SACK).
//!
//! The bytes themselves are written straight into the [`RecvBuffer`](super::buffer::RecvBuffer) at their final
//! position; the assembler only remembers which ranges beyond RCV.NXT are filled. It holds a sorted list of
//! disjoint, non-adjacent `[start, end)` ranges, each with a recency stamp so SACK blocks can be reported most
//! recent first (RFC 2018 §4). The list allocates only when the first out-of-order range appears and is freed when
//! it empties again, so an in-order connection pays nothing but the 32 bytes of the struct.
//!
//! All ranges lie within the receive window, i.e. less than 2^30 bytes beyond RCV.NXT, so sequence-space
//! comparisons (modulo 2^32) are unambiguous.

use crate::wire::{SackBlock, SeqNum};

/// `insert` refused a new range: the per-connection limit on out-of-order ranges was reached.
#[derive(Copy, Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("out-of-order range limit reached")]
pub struct AssemblerFull;

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
struct Range {
    start: SeqNum,
    end: SeqNum,
    /// Value of the assembler's clock when a segment last landed in this range; higher is more recent.
    stamp: u32,
}

/// Filled ranges of sequence space beyond RCV.NXT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assembler {
    /// Sorted by start (in sequence space from RCV.NXT), disjoint and non-adjacent.
    ranges: Vec<Range>,
    /// Recency clock: bumped on every insert.
    clock: u32,
}

impl Assembler {
    /// An empty assembler; allocates nothing.
    pub const fn new() -> Self {
        Assembler { ranges: Vec::new(), clock: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// Forgets every range and frees the list (e.g. on reset, or when the receive buffer drops its out-of-order
    /// data).
    pub fn clear(&mut self) {
        self.ranges = Vec::new();
    }

    /// True if `seq` lies in a received out-of-order range.
    pub fn contains(&self, seq: SeqNum) -> bool {
        self.ranges.iter().any(|r| r.start.le(seq) && seq.lt(r.end))
    }

    /// The first range that ends after `seq` (the one holding `seq`, or the next one above it), as `(start, end)`.
    /// `base` is the left edge every range lies beyond (RCV.NXT, or SND.UNA for a sender's SACK scoreboard).
    pub fn range_from(&self, base: SeqNum, seq: SeqNum) -> Option<(SeqNum, SeqNum)> {
        let at = seq - base;
        self.ranges.iter().find(|r| r.end.gt(base) && r.end - base > at).map(|r| (r.start, r.end))
    }

    /// The first gap `[start, end)` at or after `from` that lies below the highest range: for a sender scoreboard,
    /// the next presumably lost segment range (RFC 6675's holes).
    pub fn next_hole(&self, base: SeqNum, from: SeqNum) -> Option<(SeqNum, SeqNum)> {
        let mut cursor = from.max(base);
        for r in &self.ranges {
            if r.end.le(cursor) {
                continue;
            }
            if r.start.gt(cursor) {
                return Some((cursor, r.start));
            }
            cursor = r.end;
        }
        None
    }

    /// The ranges in sequence order, as `(start, end)`.
    pub fn ranges(&self) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        self.ranges.iter().map(|r| (r.start, r.end))
    }

    /// Out-of-order bytes held.
    pub fn bytes_buffered(&self) -> u32 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// The end of the highest out-of-order range (the right edge of all received data), if any.
    pub fn highest_end(&self) -> Option<SeqNum> {
        self.ranges.last().map(|r| r.end)
    }

    /// Records that `[start, end)` has been received and written to the receive buffer. The caller guarantees
    /// `rcv_nxt < start < end`, within the receive window; a range reaching back to or before `rcv_nxt` is clipped
    /// (and left for [`advance`](Self::advance) to collapse), an empty one ignored.
    ///
    /// Overlapping and adjacent ranges merge with it, which never adds a range. If it would be a new range and
    /// `max_ranges` are already held, nothing changes and `AssemblerFull` is returned: the caller drops the segment
    /// (the limit bounds memory and per-segment work against adversarial reordering).
    pub fn insert(
        &mut self,
        rcv_nxt: SeqNum,
        start: SeqNum,
        end: SeqNum,
        max_ranges: usize,
    ) -> Result<(), AssemblerFull> {
        let start = start.max(rcv_nxt);
        if end.le(start) {
            return Ok(());
        }
        // Work in offsets from rcv_nxt, where the list's order is plain integer order.
        let off = |s: SeqNum| s - rcv_nxt;
        let (s, e) = (off(start), off(end));
        // First range that ends at or after s (touches or follows the new one), and first that starts after e.
        let first = self.ranges.partition_point(|r| off(r.end) < s);
        let last = first + self.ranges[first..].partition_point(|r| off(r.start) <= e);
        if first == last {
            if self.ranges.len() >= max_ranges {
                return Err(AssemblerFull);
            }
            let stamp = self.tick();
            self.ranges.insert(first, Range { start, end, stamp });
        } else {
            let stamp = self.tick();
            let merged = Range {
                start: if off(self.ranges[first].start) < s { self.ranges[first].start } else { start },
                end: if off(self.ranges[last - 1].end) > e { self.ranges[last - 1].end } else { end },
                stamp,
            };
            self.ranges[first] = merged;
            self.ranges.drain(first + 1..last);
        }
        Ok(())
    }

    /// After in-order data moved RCV.NXT to `rcv_nxt`: drops ranges at or before it and, while a range starts at or
    /// before the contiguous edge, extends the edge to that range's end. Returns the new edge: the caller commits
    /// `edge - rcv_nxt` more bytes of the receive buffer and sets RCV.NXT to it.
    pub fn advance(&mut self, rcv_nxt: SeqNum) -> SeqNum {
        let mut edge = rcv_nxt;
        let mut gone = 0;
        for r in &self.ranges {
            if r.start.gt(edge) {
                break;
            }
            edge = edge.max(r.end);
            gone += 1;
        }
        if gone == self.ranges.len() {
            self.clear();
        } else {
            self.ranges.drain(..gone);
        }
        edge
    }

    /// Fills `out` with SACK blocks per RFC 2018 §4: the range holding the most recently received segment first,
    /// then the others most recently updated first (the RFC's "most recently reported", which these are: every ACK
    /// reports the newest ranges). Returns how many were written (at most `out.len()`).
    pub fn sack_blocks(&self, out: &mut [SackBlock]) -> usize {
        let mut written = 0;
        // Selection by descending stamp, out.len() (<= 4) passes over <= max_ranges entries; stamps are unique.
        let mut below = u32::MAX;
        let mut below_inclusive = true;
        while written < out.len() {
            let best = self
                .ranges
                .iter()
                .filter(|r| r.stamp < below || (below_inclusive && r.stamp == below))
                .max_by_key(|r| r.stamp);
            let Some(best) = best else { break };
            out[written] = SackBlock { left: best.start, right: best.end };
            written += 1;
            below = best.stamp;
            below_inclusive = false;
        }
        written
    }

    /// D-SACK (RFC 2883 §4): for an arriving segment `[start, end)`, the part already received — below `rcv_nxt`
    /// (§4.1.1), or inside an out-of-order range (§4.1.2) — to report as the first SACK block, or `None` if the
    /// segment brings only new data. Call it before `insert`; then [`sack_blocks`](Self::sack_blocks) puts the range
    /// containing the duplicate right after it, as §4 asks.
    pub fn dsack_block(&self, rcv_nxt: SeqNum, start: SeqNum, end: SeqNum) -> Option<SackBlock> {
        if end.le(start) {
            return None;
        }
        if start.lt(rcv_nxt) {
            return Some(SackBlock { left: start, right: end.min(rcv_nxt) });
        }
        self.ranges
            .iter()
            .find(|r| r.start.lt(end) && start.lt(r.end))
            .map(|r| SackBlock { left: start.max(r.start), right: end.min(r.end) })
    }

    /// Next recency stamp. On wrap-around (after 4 billion inserts) the live stamps are renumbered 1..=n in order,
    /// so "higher is more recent" keeps holding.
    fn tick(&mut self) -> u32 {
        if self.clock == u32::MAX {
            let mut order: Vec<usize> = (0..self.ranges.len()).collect();
            order.sort_unstable_by_key(|&i| self.ranges[i].stamp);
            for (rank, i) in order.into_iter().enumerate() {
                self.ranges[i].stamp = rank as u32 + 1;
            }
            self.clock = self.ranges.len() as u32;
        }
        self.clock += 1;
        self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(n: u32) -> SeqNum {
        SeqNum(n)
    }

    fn ranges(a: &Assembler) -> Vec<(u32, u32)> {
        a.ranges.iter().map(|r| (r.start.0, r.end.0)).collect()
    }

    fn sacks(a: &Assembler, n: usize) -> Vec<(u32, u32)> {
        let mut out = [SackBlock::default(); 8];
        let k = a.sack_blocks(&mut out[..n]);
        out[..k].iter().map(|b| (b.left.0, b.right.0)).collect()
    }

    #[test]
    fn size_is_small_and_empty_allocates_nothing() {
        assert_eq!(core::mem::size_of::<Assembler>(), 32);
        let a = Assembler::new();
        assert_eq!(a.ranges.capacity(), 0);
    }

    #[test]
    fn insert_merges_overlapping_and_adjacent() {
        let mut a = Assembler::new();
        let nxt = s(100);
        a.insert(nxt, s(200), s(300), 8).unwrap();
        a.insert(nxt, s(400), s(500), 8).unwrap();
        a.insert(nxt, s(600), s(700), 8).unwrap();
        assert_eq!(ranges(&a), [(200, 300), (400, 500), (600, 700)]);
        // Adjacent on the left of the middle range.
        a.insert(nxt, s(300), s(350), 8).unwrap();
        assert_eq!(ranges(&a), [(200, 350), (400, 500), (600, 700)]);
        // Bridges two ranges by touching both ends exactly.
        a.insert(nxt, s(350), s(400), 8).unwrap();
        assert_eq!(ranges(&a), [(200, 500), (600, 700)]);
        // Covers everything and more.
        a.insert(nxt, s(150), s(800), 8).unwrap();
        assert_eq!(ranges(&a), [(150, 800)]);
        // Inside: no change.
        a.insert(nxt, s(300), s(310), 8).unwrap();
        assert_eq!(ranges(&a), [(150, 800)]);
        assert_eq!(a.bytes_buffered(), 650);
        assert!(a.contains(s(150)) && a.contains(s(799)));
        assert!(!a.contains(s(149)) && !a.contains(s(800)));
    }

    #[test]
    fn full_assembler_refuses_new_ranges_but_merges() {
        let mut a = Assembler::new();
        let nxt = s(0);
        a.insert(nxt, s(10), s(20), 2).unwrap();
        a.insert(nxt, s(30), s(40), 2).unwrap();
        let before = a.clone();
        assert_eq!(a.insert(nxt, s(50), s(60), 2), Err(AssemblerFull));
        assert_eq!(a, before, "a refused insert changes nothing, not even recency");
        a.insert(nxt, s(20), s(30), 2).unwrap();
        assert_eq!(ranges(&a), [(10, 40)]);
        assert_eq!(Assembler::new().insert(nxt, s(1), s(2), 0), Err(AssemblerFull));
    }

    #[test]
    fn advance_collapses_ranges_into_the_edge() {
        let mut a = Assembler::new();
        a.insert(s(0), s(10), s(20), 8).unwrap();
        a.insert(s(0), s(30), s(40), 8).unwrap();
        // In-order data 0..5: no range reached.
        assert_eq!(a.advance(s(5)), s(5));
        assert_eq!(a.range_count(), 2);
        // In-order data up to 10: first range joins.
        assert_eq!(a.advance(s(10)), s(20));
        assert_eq!(ranges(&a), [(30, 40)]);
        // A segment 20..35 overlapping the next range.
        assert_eq!(a.advance(s(35)), s(40));
        assert!(a.is_empty());
        assert_eq!(a.ranges.capacity(), 0, "memory released when empty");
    }

    #[test]
    fn works_across_sequence_wraparound() {
        let mut a = Assembler::new();
        let nxt = s(u32::MAX - 100);
        a.insert(nxt, s(u32::MAX - 50), s(10), 8).unwrap();
        a.insert(nxt, s(20), s(30), 8).unwrap();
        a.insert(nxt, s(u32::MAX - 80), s(u32::MAX - 60), 8).unwrap();
        assert_eq!(ranges(&a), [(u32::MAX - 80, u32::MAX - 60), (u32::MAX - 50, 10), (20, 30)]);
        a.insert(nxt, s(5), s(25), 8).unwrap();
        assert_eq!(ranges(&a), [(u32::MAX - 80, u32::MAX - 60), (u32::MAX - 50, 30)]);
        assert!(a.contains(s(0)) && a.contains(s(u32::MAX)));
        assert_eq!(a.bytes_buffered(), 20 + 81);
        assert_eq!(a.advance(s(u32::MAX - 80)), s(u32::MAX - 60));
        assert_eq!(a.advance(s(u32::MAX - 50)), s(30));
        assert!(a.is_empty());
    }

    #[test]
    fn insert_at_or_before_rcv_nxt_is_clipped() {
        let mut a = Assembler::new();
        a.insert(s(100), s(50), s(120), 8).unwrap();
        assert_eq!(ranges(&a), [(100, 120)]);
        assert_eq!(a.advance(s(100)), s(120));
        a.insert(s(100), s(50), s(100), 8).unwrap();
        a.insert(s(100), s(300), s(200), 8).unwrap();
        assert!(a.is_empty());
    }

    #[test]
    fn sack_blocks_most_recent_first() {
        let mut a = Assembler::new();
        let nxt = s(0);
        a.insert(nxt, s(10), s(20), 8).unwrap();
        a.insert(nxt, s(30), s(40), 8).unwrap();
        a.insert(nxt, s(50), s(60), 8).unwrap();
        a.insert(nxt, s(70), s(80), 8).unwrap();
        a.insert(nxt, s(90), s(100), 8).unwrap();
        assert_eq!(sacks(&a, 4), [(90, 100), (70, 80), (50, 60), (30, 40)]);
        assert_eq!(sacks(&a, 3), [(90, 100), (70, 80), (50, 60)]);
        // A segment landing in the oldest range makes it first.
        a.insert(nxt, s(20), s(25), 8).unwrap();
        assert_eq!(sacks(&a, 4), [(10, 25), (90, 100), (70, 80), (50, 60)]);
        // Merging two ranges: the merged one is the most recent.
        a.insert(nxt, s(60), s(70), 8).unwrap();
        assert_eq!(sacks(&a, 4), [(50, 80), (10, 25), (90, 100), (30, 40)]);
        assert_eq!(sacks(&a, 8).len(), 4);
        assert_eq!(sacks(&a, 0).len(), 0);
        assert_eq!(sacks(&Assembler::new(), 4).len(), 0);
    }

    #[test]
    fn dsack_reports_duplicates() {
        let mut a = Assembler::new();
        let nxt = s(1000);
        a.insert(nxt, s(2000), s(3000), 8).unwrap();
        let b = |l, r| Some(SackBlock { left: s(l), right: s(r) });
        // Below the cumulative ACK (RFC 2883 §4.1.1).
        assert_eq!(a.dsack_block(nxt, s(500), s(900)), b(500, 900));
        assert_eq!(a.dsack_block(nxt, s(900), s(1100)), b(900, 1000));
        // Inside an out-of-order range (§4.1.2).
        assert_eq!(a.dsack_block(nxt, s(2500), s(3500)), b(2500, 3000));
        assert_eq!(a.dsack_block(nxt, s(1500), s(2100)), b(2000, 2100));
        // New data only.
        assert_eq!(a.dsack_block(nxt, s(1000), s(2000)), None);
        assert_eq!(a.dsack_block(nxt, s(3000), s(4000)), None);
        assert_eq!(a.dsack_block(nxt, s(3000), s(3000)), None);
    }

    #[test]
    fn stamp_wraparound_keeps_order() {
        let mut a = Assembler::new();
        a.insert(s(0), s(10), s(20), 8).unwrap();
        a.insert(s(0), s(30), s(40), 8).unwrap();
        a.insert(s(0), s(50), s(60), 8).unwrap();
        a.clock = u32::MAX - 1;
        a.insert(s(0), s(30), s(35), 8).unwrap(); // stamp u32::MAX
        a.insert(s(0), s(10), s(15), 8).unwrap(); // wraps: renumbered
        assert_eq!(sacks(&a, 4), [(10, 20), (30, 40), (50, 60)]);
        assert!(a.clock <= 4);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Against a bitmap model: random inserts (offsets from a random, possibly wrapping, rcv_nxt) and advances.
        #[test]
        fn matches_bitmap_model(
            base in any::<u32>(),
            ops in proptest::collection::vec((0u32..200, 1u32..30, 0u8..10), 1..80),
            max_ranges in 1usize..8,
        ) {
            let mut a = Assembler::new();
            let mut nxt = SeqNum(base);
            let mut have = [false; 256]; // model: have[i] <=> byte nxt+i received out of order
            let mut last_segment = None;
            for (off, len, kind) in ops {
                if kind == 0 {
                    // In-order data of `len` bytes arrives.
                    let new_nxt = nxt + len;
                    let edge = a.advance(new_nxt);
                    let mut model_edge = len as usize;
                    while model_edge < have.len() && have[model_edge] { model_edge += 1; }
                    prop_assert_eq!(edge - nxt, model_edge as u32);
                    have.copy_within(model_edge.., 0);
                    let n = have.len();
                    have[n - model_edge..].fill(false);
                    nxt = edge;
                    last_segment = None;
                } else {
                    let (start, end) = (nxt + off + 1, nxt + off + 1 + len);
                    let before = a.clone();
                    let model_ranges = runs(&have).len();
                    let dup = a.dsack_block(nxt, start, end);
                    let covered: Vec<usize> = (off as usize + 1..(off + 1 + len) as usize).filter(|&i| have[i]).collect();
                    prop_assert_eq!(dup.is_some(), !covered.is_empty());
                    let mut trial = have;
                    trial[off as usize + 1..(off + 1 + len) as usize].fill(true);
                    let refusable = runs(&trial).len() > model_ranges && model_ranges >= max_ranges;
                    match a.insert(nxt, start, end, max_ranges) {
                        Ok(()) => {
                            prop_assert!(!refusable);
                            have = trial;
                            last_segment = Some(off + 1);
                        }
                        Err(AssemblerFull) => {
                            prop_assert!(refusable);
                            prop_assert_eq!(&a, &before);
                        }
                    }
                }
                // Same ranges as the model's runs of received bytes.
                let expect: Vec<(u32, u32)> =
                    runs(&have).iter().map(|&(s, e)| ((nxt + s as u32).0, (nxt + e as u32).0)).collect();
                prop_assert_eq!(ranges(&a), expect.clone());
                prop_assert!(a.range_count() <= max_ranges);
                prop_assert_eq!(a.bytes_buffered() as usize, have.iter().filter(|&&b| b).count());
                for (i, &received) in have.iter().enumerate() {
                    prop_assert_eq!(a.contains(nxt + i as u32), received);
                }
                // SACK: distinct ranges, the first holds the last accepted segment.
                let blocks = sacks(&a, 4);
                prop_assert_eq!(blocks.len(), expect.len().min(4));
                if let Some(off) = last_segment {
                    let seq = nxt + off;
                    let first = blocks[0];
                    prop_assert!(SeqNum(first.0).le(seq) && seq.lt(SeqNum(first.1)));
                }
                let mut sorted = blocks.clone();
                sorted.sort_unstable();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), blocks.len());
            }
        }
    }

    /// Maximal runs of `true` as [start, end) offsets.
    fn runs(bits: &[bool]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bits.len() {
            if bits[i] {
                let s = i;
                while i < bits.len() && bits[i] {
                    i += 1;
                }
                out.push((s, i));
            } else {
                i += 1;
            }
        }
        out
    }
}
