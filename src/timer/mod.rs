//! A hierarchical hashed timer wheel: O(1) insert and cancel, expiry work proportional to what expires.
//!
//! Owns: deadlines and the values attached to them. Must not touch: connections or the clock (time is passed in).
//!
//! # Design
//!
//! Time is counted in ticks of a configurable length since the [`Instant`] epoch. A deadline is rounded **up** to a
//! tick boundary, so a timer never fires early; it fires at the first [`TimerWheel::poll`] whose `now` has reached
//! that boundary.
//!
//! The wheel keeps `elapsed`, the tick it has processed up to, and six levels of 64 slots. A pending timer with
//! deadline tick `d > elapsed` lives at the level given by the highest bit in which `d` and `elapsed` differ (bits
//! 0-5: level 0, 6-11: level 1, ...) and in the slot given by `d`'s 6-bit digit at that level, as in Varghese and
//! Lauck's scheme 7 and tokio's wheel. So a level-0 slot holds timers of exactly one tick, and every timer at level
//! `L` is later than every timer at any level below `L`. When `elapsed` reaches the start of a slot at level `L > 0`
//! the slot's timers are *cascaded*: re-filed against the new `elapsed`, which moves each to a lower level (each
//! timer cascades at most five times). Deadlines further than 2^36 ticks away (about 2.2 years at 1 ms) wait in an
//! overflow list that is re-filed each time `elapsed` crosses a 2^36-tick boundary.
//!
//! Each level has a `u64` occupancy bitmap, so the next non-empty slot is one `trailing_zeros` away: jumping a
//! minute of virtual time over a sparse wheel costs a handful of bit operations, not 60,000 tick steps.
//!
//! Timers that are due (deadline tick `<= elapsed`) sit in the *expired* list, popped one by one by `poll`. A whole
//! level-0 slot is spliced into it in O(1) when its tick comes; a timer inserted with a deadline already behind
//! `elapsed` joins it directly and fires on the next poll.
//!
//! Entries are nodes in one slab (`Vec` plus a free list) linked into intrusive doubly-linked lists by `u32`
//! index: no allocation per timer, O(1) unlink. A node's list is not stored: it follows from its deadline and
//! `elapsed` (see `TimerWheel::list_of`), an invariant cascading preserves. Handles carry a generation, bumped
//! whenever a node is freed, so a stale handle (fired, cancelled) is a harmless `None`.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::time::Instant;

/// Bits of tick number resolved by one level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Levels in the wheel; together they span 2^36 ticks.
const LEVELS: usize = 6;
/// Ticks spanned by all levels; deadlines at least this far from `elapsed` (in the sense of differing bits) go to
/// the overflow list.
const WHEEL_BITS: u32 = SLOT_BITS * LEVELS as u32;
/// The "no node" link.
const NIL: u32 = u32::MAX;

/// Identifies one pending timer: slab index plus generation. 8 bytes, and `Option<TimerHandle>` is 8 bytes too.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct TimerHandle {
    index: u32,
    generation: NonZeroU32,
}

/// One slab entry. Free nodes have `value == None` and chain through `next`.
#[derive(Clone, Debug)]
struct Node<T> {
    /// Deadline, in ticks, rounded up.
    deadline: u64,
    prev: u32,
    next: u32,
    /// Bumped when the node is freed; never 0.
    generation: u32,
    value: Option<T>,
}

/// Which list a pending node is on.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum List {
    Expired,
    Slot { level: usize, slot: usize },
    Overflow,
}

/// A hierarchical hashed timer wheel holding values of type `T`. See the [module documentation](self).
#[derive(Clone)]
pub struct TimerWheel<T> {
    /// Tick length in microseconds, at least 1.
    tick_us: u64,
    /// Every timer with deadline tick `<= elapsed` is on the expired list; all others are in the levels or the
    /// overflow list, filed against `elapsed`.
    elapsed: u64,
    nodes: Vec<Node<T>>,
    free_head: u32,
    len: usize,
    heads: [[u32; SLOTS]; LEVELS],
    occupied: [u64; LEVELS],
    expired_head: u32,
    overflow_head: u32,
    /// A lower bound of the tick at which `poll` may have work (pop an expired timer or process a slot). Cancels
    /// leave it early, never late, so `poll(now)` with `now` below it returns `None` in O(1).
    next_check: u64,
    /// A lower bound of the deadlines on the expired list (reset when the list empties), for `next_deadline`.
    expired_floor: u64,
}

impl<T> core::fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TimerWheel")
            .field("tick_us", &self.tick_us)
            .field("elapsed", &self.elapsed)
            .field("len", &self.len)
            .field("capacity", &self.nodes.len())
            .field("occupied", &self.occupied)
            .finish_non_exhaustive()
    }
}

impl<T> TimerWheel<T> {
    /// A wheel with the given tick (rounded down to whole microseconds, at least 1 µs) whose time starts at `now`.
    pub fn new(tick: Duration, now: Instant) -> Self {
        Self::with_capacity(tick, now, 0)
    }

    /// Like [`new`](Self::new), with room for `capacity` timers before the slab reallocates.
    pub fn with_capacity(tick: Duration, now: Instant, capacity: usize) -> Self {
        let tick_us = u64::try_from(tick.as_micros()).unwrap_or(u64::MAX).max(1);
        TimerWheel {
            tick_us,
            elapsed: now.as_micros() / tick_us,
            nodes: Vec::with_capacity(capacity),
            free_head: NIL,
            len: 0,
            heads: [[NIL; SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            expired_head: NIL,
            overflow_head: NIL,
            next_check: u64::MAX,
            expired_floor: u64::MAX,
        }
    }

    /// The tick length.
    pub fn tick(&self) -> Duration {
        Duration::from_micros(self.tick_us)
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `value` for `deadline` (rounded up to the next tick boundary). A deadline at or before the wheel's
    /// current time fires on the next `poll`. O(1).
    ///
    /// # Panics
    /// With more than `u32::MAX - 1` timers pending (over 100 GiB of nodes).
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerHandle {
        let deadline = self.ticks_ceil(deadline);
        let index = match self.free_head {
            NIL => {
                let index = u32::try_from(self.nodes.len()).ok().filter(|&i| i != NIL).expect("timer wheel full");
                self.nodes.push(Node { deadline, prev: NIL, next: NIL, generation: 1, value: Some(value) });
                index
            }
            index => {
                let node = &mut self.nodes[index as usize];
                self.free_head = node.next;
                node.deadline = deadline;
                node.value = Some(value);
                index
            }
        };
        self.len += 1;
        self.link(index);
        self.handle_of(index)
    }

    /// Removes a pending timer and returns its value; `None` if the handle has fired or been cancelled. O(1).
    pub fn cancel(&mut self, handle: TimerHandle) -> Option<T> {
        let index = self.validate(handle)?;
        self.unlink(index);
        Some(self.free(index))
    }

    /// Moves a pending timer to a new deadline, keeping its node and value. Returns the handle, which stays valid
    /// (it is returned for convenience), or `None` if the timer has fired or been cancelled. O(1).
    pub fn reschedule(&mut self, handle: TimerHandle, deadline: Instant) -> Option<TimerHandle> {
        let index = self.validate(handle)?;
        let deadline = self.ticks_ceil(deadline);
        if self.nodes[index as usize].deadline != deadline {
            self.unlink(index);
            self.nodes[index as usize].deadline = deadline;
            self.link(index);
        }
        Some(handle)
    }

    /// The deadline of a pending timer, rounded up to its tick boundary; `None` if it has fired or been cancelled.
    pub fn deadline(&self, handle: TimerHandle) -> Option<Instant> {
        let index = self.validate(handle)?;
        Some(self.instant_of(self.nodes[index as usize].deadline))
    }

    /// The value of a pending timer.
    pub fn get(&self, handle: TimerHandle) -> Option<&T> {
        let index = self.validate(handle)?;
        self.nodes[index as usize].value.as_ref()
    }

    /// The value of a pending timer, mutably.
    pub fn get_mut(&mut self, handle: TimerHandle) -> Option<&mut T> {
        let index = self.validate(handle)?;
        self.nodes[index as usize].value.as_mut()
    }

    /// The earliest pending deadline (tick-rounded), or `None` when the wheel is empty. Exact when the earliest
    /// timer is less than one level-0 rotation (64 ticks) ahead; otherwise it may be earlier than the truth (the
    /// start of the slot holding it), never later, so a caller sleeping until it at worst polls once for nothing.
    /// O(levels).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.expired_head != NIL {
            return Some(self.instant_of(self.expired_floor));
        }
        self.next_expiration().map(|(_, start)| self.instant_of(start))
    }

    /// Pops one timer whose deadline is `<= now`, or returns `None` when none is left. Timers come out in deadline
    /// order: every timer pops before any with a later tick-rounded deadline, except that one inserted with a
    /// deadline already behind the wheel's time counts as due at that time. Call until `None`.
    ///
    /// O(1) when nothing is due. Otherwise the work is one step per fired timer, plus one per cascaded timer, plus
    /// O(levels) per visited slot. A `now` earlier than a previous one fires nothing new.
    pub fn poll(&mut self, now: Instant) -> Option<(TimerHandle, T)> {
        let now_tick = now.as_micros() / self.tick_us;
        if now_tick < self.next_check {
            // Nothing is filed at or before `now_tick`, so time may move there without skipping a slot.
            self.elapsed = self.elapsed.max(now_tick);
            return None;
        }
        loop {
            if self.expired_head != NIL {
                if now_tick < self.elapsed {
                    self.next_check = self.elapsed;
                    return None;
                }
                let index = self.expired_head;
                let handle = self.handle_of(index);
                self.unlink(index);
                if self.expired_head == NIL {
                    self.expired_floor = u64::MAX;
                }
                return Some((handle, self.free(index)));
            }
            match self.next_expiration() {
                Some((list, start)) if start <= now_tick => self.process(list, start, now_tick),
                next => {
                    self.elapsed = self.elapsed.max(now_tick);
                    self.next_check = next.map_or(u64::MAX, |(_, start)| start);
                    return None;
                }
            }
        }
    }

    /// Advances `elapsed` to `start` (`<= now_tick`) and empties the list due there: a level-0 slot becomes the
    /// expired list, any other list is re-filed against the new time.
    fn process(&mut self, list: List, start: u64, now_tick: u64) {
        debug_assert!(start > self.elapsed && start <= now_tick && self.expired_head == NIL);
        self.elapsed = start;
        let mut index = core::mem::replace(self.head_mut(list), NIL);
        if list == List::Overflow {
            // The overflow list is only processed when the levels are empty, so time may jump straight to the
            // rotation of its earliest timer (or to `now_tick`, if sooner) instead of visiting every 2^36-tick
            // boundary on the way.
            let mut earliest = u64::MAX;
            let mut cursor = index;
            while cursor != NIL {
                earliest = earliest.min(self.nodes[cursor as usize].deadline);
                cursor = self.nodes[cursor as usize].next;
            }
            let rotation = earliest & !((1u64 << WHEEL_BITS) - 1);
            self.elapsed = rotation.min(now_tick).max(start);
        }
        if let List::Slot { level, slot } = list {
            self.occupied[level] &= !(1 << slot);
            if level == 0 {
                // Every timer in a level-0 slot has deadline `start`: splice the list whole.
                self.expired_head = index;
                self.expired_floor = start;
                return;
            }
        }
        while index != NIL {
            let next = self.nodes[index as usize].next;
            self.link(index);
            index = next;
        }
    }

    /// The next list to process and the tick at which it is due. The lowest non-empty level holds the earliest
    /// timers, and its lowest occupied slot (all above `elapsed`'s digit) the earliest of those.
    fn next_expiration(&self) -> Option<(List, u64)> {
        for level in 0..LEVELS {
            if self.occupied[level] != 0 {
                let slot = self.occupied[level].trailing_zeros() as usize;
                let list = List::Slot { level, slot };
                return Some((list, self.list_start(list)));
            }
        }
        (self.overflow_head != NIL).then(|| (List::Overflow, self.list_start(List::Overflow)))
    }

    /// The list a pending timer with deadline tick `deadline` is on, given the current `elapsed`.
    fn list_of(&self, deadline: u64) -> List {
        if deadline <= self.elapsed {
            return List::Expired;
        }
        // The highest differing bit picks the level; `| 63` makes anything within bits 0-5 level 0.
        let highest_differing_bit = 63 - ((deadline ^ self.elapsed) | (SLOTS as u64 - 1)).leading_zeros();
        let level = (highest_differing_bit / SLOT_BITS) as usize;
        if level >= LEVELS {
            List::Overflow
        } else {
            List::Slot { level, slot: ((deadline >> (level as u32 * SLOT_BITS)) as usize) & (SLOTS - 1) }
        }
    }

    /// The tick at which a list must be processed.
    fn list_start(&self, list: List) -> u64 {
        match list {
            List::Expired => self.elapsed,
            List::Slot { level, slot } => {
                let shift = level as u32 * SLOT_BITS;
                let rotation = self.elapsed & !((1u64 << (shift + SLOT_BITS)) - 1);
                rotation + ((slot as u64) << shift)
            }
            // Overflow timers differ from `elapsed` above bit 35, so this boundary exists whenever the list is used.
            List::Overflow => ((self.elapsed >> WHEEL_BITS) + 1).checked_shl(WHEEL_BITS).unwrap_or(u64::MAX),
        }
    }

    fn head_mut(&mut self, list: List) -> &mut u32 {
        match list {
            List::Expired => &mut self.expired_head,
            List::Slot { level, slot } => &mut self.heads[level][slot],
            List::Overflow => &mut self.overflow_head,
        }
    }

    /// Files a pending node on the list its deadline selects (at the front: order within a list is irrelevant,
    /// as every timer on a level-0 slot or the expired list is due at the same tick).
    fn link(&mut self, index: u32) {
        let deadline = self.nodes[index as usize].deadline;
        let list = self.list_of(deadline);
        let head = *self.head_mut(list);
        let node = &mut self.nodes[index as usize];
        node.prev = NIL;
        node.next = head;
        if head != NIL {
            self.nodes[head as usize].prev = index;
        }
        *self.head_mut(list) = index;
        match list {
            List::Slot { level, slot } => self.occupied[level] |= 1 << slot,
            List::Expired => self.expired_floor = self.expired_floor.min(deadline),
            List::Overflow => {}
        }
        self.next_check = self.next_check.min(self.list_start(list));
    }

    /// Takes a pending node off its list.
    fn unlink(&mut self, index: u32) {
        let Node { prev, next, deadline, .. } = self.nodes[index as usize];
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            let list = self.list_of(deadline);
            debug_assert_eq!(*self.head_mut(list), index);
            *self.head_mut(list) = next;
            if let (List::Slot { level, slot }, NIL) = (list, next) {
                self.occupied[level] &= !(1 << slot);
            }
        }
    }

    /// Returns an unlinked node to the free list and its value to the caller.
    fn free(&mut self, index: u32) -> T {
        let node = &mut self.nodes[index as usize];
        node.generation = node.generation.wrapping_add(1).max(1);
        node.next = self.free_head;
        self.free_head = index;
        self.len -= 1;
        node.value.take().expect("freeing a pending node")
    }

    fn validate(&self, handle: TimerHandle) -> Option<u32> {
        let node = self.nodes.get(handle.index as usize)?;
        (node.generation == handle.generation.get() && node.value.is_some()).then_some(handle.index)
    }

    fn handle_of(&self, index: u32) -> TimerHandle {
        let generation = NonZeroU32::new(self.nodes[index as usize].generation).expect("generations skip zero");
        TimerHandle { index, generation }
    }

    /// `instant` in ticks, rounded up so that a timer never fires early.
    fn ticks_ceil(&self, instant: Instant) -> u64 {
        instant.as_micros().div_ceil(self.tick_us)
    }

    fn instant_of(&self, tick: u64) -> Instant {
        Instant::from_micros(tick.saturating_mul(self.tick_us))
    }
}

#[cfg(test)]
mod tests;
