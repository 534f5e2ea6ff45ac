//! A ring of fixed-size byte slots between one producer and one consumer: the producer copies a packet into the
//! next free slot, the consumer reads it in place, so a hand-off is one copy and, once every slot has been used, no
//! allocation. The indices follow [`cursor`](crate::cursor); the slots are cells that loom checks for
//! unsynchronised access (`tests/loom.rs`).
//!
//! A slot's buffer is allocated the first time the producer reaches it, so an idle or lightly used ring costs
//! only its header.
// The slot cells are reached through raw pointers; with the byte ring's buffer this is the crate's `unsafe`.
#![allow(unsafe_code)]

use crate::atomic::AtomicU32;
use crate::cell::UnsafeCell;
use crate::cursor::{self, ConsCursor, ProdCursor};
use crate::sync::Arc;
use crate::Padded;

/// Why a push failed.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// Every slot holds a packet the consumer has not taken.
    Full,
    /// The packet is longer than a slot (or than 65535 bytes).
    TooLarge,
}

struct Slot {
    len: u16,
    /// Empty until the producer first writes this slot.
    data: Box<[u8]>,
}

/// The state both ends share.
struct Ring {
    /// Next slot the consumer reads (only the consumer writes it).
    head: Padded<AtomicU32>,
    /// Next slot the producer writes (only the producer writes it).
    tail: Padded<AtomicU32>,
    slot_size: usize,
    slots: Box<[UnsafeCell<Slot>]>,
}

// SAFETY: a slot is written only by the one producer while its cursor counts it free, and read only by the one
// consumer while its cursor counts it ready; the cursor's Release/Acquire pairs order the two (checked by loom).
// The ends are not Clone, so there is exactly one of each.
unsafe impl Sync for Ring {}
// SAFETY: the slots own their buffers; nothing in the ring is tied to a thread.
unsafe impl Send for Ring {}

/// The sending end.
pub struct Producer {
    ring: Arc<Ring>,
    /// Re-reads the consumer's index only when the ring looks full, and publishes once per batch
    /// ([`publish`](Self::publish)), so the shared lines move once per batch rather than once per packet.
    cursor: ProdCursor,
}

/// The receiving end.
pub struct Consumer {
    ring: Arc<Ring>,
    cursor: ConsCursor,
}

/// Counts what is queued, from anywhere (e.g. leftovers after both ends stopped).
#[derive(Clone)]
pub struct Probe {
    ring: Arc<Ring>,
}

/// A ring of `slots` slots (rounded up to a power of two, at least 2) of `slot_size` bytes.
pub fn channel(slots: usize, slot_size: usize) -> (Producer, Consumer, Probe) {
    let n = slots.clamp(2, 1 << 20).next_power_of_two();
    let ring = Arc::new(Ring {
        head: Padded(AtomicU32::new(0)),
        tail: Padded(AtomicU32::new(0)),
        slot_size,
        slots: (0..n).map(|_| UnsafeCell::new(Slot { len: 0, data: Box::default() })).collect(),
    });
    let size = n as u32;
    let producer = Producer { cursor: ProdCursor::new(&ring.tail.0, &ring.head.0, size), ring: ring.clone() };
    let consumer = Consumer { cursor: ConsCursor::new(&ring.tail.0, &ring.head.0, size), ring: ring.clone() };
    (producer, consumer, Probe { ring })
}

impl Ring {
    fn slot(&self, index: u32) -> &UnsafeCell<Slot> {
        &self.slots[index as usize & (self.slots.len() - 1)]
    }

    fn len(&self) -> usize {
        cursor::queued(&self.tail.0, &self.head.0) as usize
    }
}

impl Producer {
    /// Copies `packet` into the next slot (seen by the consumer after [`publish`](Self::publish)).
    pub fn push(&mut self, packet: &[u8]) -> Result<(), PushError> {
        let r = &*self.ring;
        if packet.len() > r.slot_size || packet.len() > u16::MAX as usize {
            return Err(PushError::TooLarge);
        }
        if self.cursor.free(&r.head.0, 1) == 0 {
            return Err(PushError::Full);
        }
        let slot_size = r.slot_size;
        r.slot(self.cursor.next()).with_mut(|s| {
            // SAFETY: the slot is free (the cursor counted it: the consumer released it, Acquire) and only this
            // producer writes it; the consumer reads it only after `publish` (Release).
            let s = unsafe { &mut *s };
            if s.data.is_empty() {
                s.data = vec![0u8; slot_size].into_boxed_slice();
            }
            s.data[..packet.len()].copy_from_slice(packet);
            s.len = packet.len() as u16;
        });
        self.cursor.advance(1);
        Ok(())
    }

    /// Makes the packets pushed so far visible to the consumer. Returns whether there were new ones.
    pub fn publish(&mut self) -> bool {
        self.cursor.publish(&self.ring.tail.0)
    }
}

impl Consumer {
    /// Hands up to `max` queued packets to `f` in order, each as a slice of its slot; returns how many.
    pub fn drain(&mut self, max: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        let r = &*self.ring;
        let n = self.cursor.avail(&r.tail.0, u32::try_from(max).unwrap_or(u32::MAX));
        let head = self.cursor.next();
        for i in 0..n {
            r.slot(head.wrapping_add(i)).with(|s| {
                // SAFETY: the producer published this slot (the cursor's Acquire) and does not write it until we
                // release it below.
                let s = unsafe { &*s };
                f(&s.data[..(s.len as usize).min(s.data.len())]);
            });
        }
        self.cursor.release(&r.head.0, n);
        n as usize
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Probe {
    /// Packets published and not yet taken.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_full_too_large_and_lazy_slots() {
        let (mut p, mut c, probe) = channel(4, 64);
        // SAFETY: no other thread uses the ring yet.
        assert!(p.ring.slots.iter().all(|s| s.with(|s| unsafe { &*s }.data.is_empty())), "nothing allocated");
        for i in 0..4u8 {
            p.push(&[i; 10]).unwrap();
        }
        assert_eq!(p.push(&[9; 10]), Err(PushError::Full));
        assert_eq!(p.push(&[0; 65]), Err(PushError::TooLarge));
        assert_eq!(probe.len(), 0, "not published yet");
        assert_eq!(c.drain(16, &mut |_| panic!("unpublished")), 0);
        assert!(p.publish());
        assert!(!p.publish());
        assert_eq!(probe.len(), 4);
        let mut got = Vec::new();
        assert_eq!(c.drain(3, &mut |b| got.push(b.to_vec())), 3);
        assert_eq!(got, vec![vec![0; 10], vec![1; 10], vec![2; 10]]);
        p.push(&[7; 3]).unwrap();
        p.publish();
        got.clear();
        assert_eq!(c.drain(16, &mut |b| got.push(b.to_vec())), 2);
        assert_eq!(got, vec![vec![3; 10], vec![7; 3]]);
        assert!(c.is_empty() && probe.is_empty());
    }
}
