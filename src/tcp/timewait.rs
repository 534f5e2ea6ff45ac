//! TIME_WAIT as compact records (Linux's `inet_timewait_sock`, `tcp_minisocks.c`): once a connection reaches
//! TIME_WAIT, all that is needed is enough to re-ACK a retransmitted FIN, apply PAWS and RFC 1337, and let a new SYN
//! reopen the four-tuple. The full connection is freed; the record is capped by `tcp_max_tw_buckets`.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::time::Duration;

use super::conn::{FourTuple, TimerKind};
use super::engine::TimerEntry;
use crate::time::Instant;
use crate::timer::{TimerHandle, TimerWheel};
use crate::wire::SeqNum;

/// One TIME_WAIT four-tuple. Kept at or under 64 bytes (a unit test checks).
#[derive(Clone, Debug)]
pub(crate) struct TimeWaitRecord {
    pub tuple: FourTuple,
    pub snd_nxt: SeqNum,
    pub rcv_nxt: SeqNum,
    pub ts_recent: u32,
    pub ts_offset: u32,
    pub entered: Instant,
    pub timer: TimerHandle,
    pub generation: u32,
    pub ts_enabled: bool,
    /// When (4 ms units, wrapping, 0 = never) this record last answered an invalid segment (`tcp_invalid_ratelimit`).
    pub last_oow_ack: u16,
}

#[derive(Default)]
pub(crate) struct TimeWaitTable {
    index: HashMap<FourTuple, u32, super::engine::Hasher>,
    records: Vec<Option<TimeWaitRecord>>,
    free: Vec<u32>,
    generation: u32,
}

impl TimeWaitTable {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn get(&self, t: &FourTuple) -> Option<&TimeWaitRecord> {
        self.records[*self.index.get(t)? as usize].as_ref()
    }

    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        timers: &mut TimerWheel<TimerEntry>,
        now: Instant,
        len: Duration,
        tuple: FourTuple,
        snd_nxt: SeqNum,
        rcv_nxt: SeqNum,
        ts_enabled: bool,
        ts_recent: u32,
        ts_offset: u32,
    ) {
        if self.index.contains_key(&tuple) {
            self.remove(timers, &tuple);
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.records.push(None);
            (self.records.len() - 1) as u32
        });
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let timer = timers.insert(now + len, TimerEntry { index: slot, generation, kind: TimerKind::TimeWait });
        self.records[slot as usize] = Some(TimeWaitRecord {
            tuple,
            snd_nxt,
            rcv_nxt,
            ts_recent,
            ts_offset,
            entered: now,
            timer,
            generation,
            ts_enabled,
            last_oow_ack: 0,
        });
        self.index.insert(tuple, slot);
    }

    pub fn remove(&mut self, timers: &mut TimerWheel<TimerEntry>, t: &FourTuple) -> Option<TimeWaitRecord> {
        let slot = self.index.remove(t)?;
        let rec = self.records[slot as usize].take()?;
        timers.cancel(rec.timer);
        self.free.push(slot);
        Some(rec)
    }

    /// The 2*MSL timer of record `slot` fired: drop it if it is still the same incarnation.
    pub fn expire(&mut self, slot: u32, generation: u32) -> Option<FourTuple> {
        let rec = self.records.get(slot as usize)?.as_ref()?;
        if rec.generation != generation {
            return None;
        }
        let tuple = rec.tuple;
        self.records[slot as usize] = None;
        self.index.remove(&tuple);
        self.free.push(slot);
        Some(tuple)
    }

    /// RFC 9293 §3.10.7.4 (TIME-WAIT): a retransmitted FIN restarts the 2*MSL timeout.
    pub fn restart(&mut self, timers: &mut TimerWheel<TimerEntry>, now: Instant, len: Duration, t: &FourTuple) {
        let Some(&slot) = self.index.get(t) else { return };
        let Some(rec) = self.records[slot as usize].as_mut() else { return };
        timers.cancel(rec.timer);
        rec.timer =
            timers.insert(now + len, TimerEntry { index: slot, generation: rec.generation, kind: TimerKind::TimeWait });
    }

    pub fn set_last_oow_ack(&mut self, t: &FourTuple, ms: u16) {
        if let Some(&slot) = self.index.get(t) {
            if let Some(rec) = self.records[slot as usize].as_mut() {
                rec.last_oow_ack = ms;
            }
        }
    }

    pub fn update_ts_recent(&mut self, t: &FourTuple, ts: u32) {
        if let Some(&slot) = self.index.get(t) {
            if let Some(rec) = self.records[slot as usize].as_mut() {
                rec.ts_recent = ts;
            }
        }
    }

    /// Resumable walk for streamed listings: visits the records in slots `start..` until `max_records` were
    /// visited or `max_slots` slots were looked at, and returns the slot to resume at (`None`: done). Slot order is
    /// stable, so a listing made of successive calls visits every record that lives throughout exactly once, in
    /// O(n) total; records added or removed meanwhile may or may not appear, as with Linux's `ss`.
    pub fn for_each_from(
        &self,
        start: usize,
        max_records: usize,
        max_slots: usize,
        now: Instant,
        timers: &TimerWheel<TimerEntry>,
        f: &mut dyn FnMut(SocketAddrV4, SocketAddrV4, Duration),
    ) -> Option<usize> {
        let end = self.records.len().min(start.saturating_add(max_slots));
        let mut visited = 0;
        let mut i = start;
        while i < end && visited < max_records {
            if let Some(rec) = &self.records[i] {
                let left = timers.deadline(rec.timer).map_or(Duration::ZERO, |d| d.saturating_since(now));
                f(rec.tuple.local(), rec.tuple.remote(), left);
                visited += 1;
            }
            i += 1;
        }
        (i < self.records.len()).then_some(i)
    }

    pub fn for_each(
        &self,
        now: Instant,
        timers: &TimerWheel<TimerEntry>,
        f: &mut dyn FnMut(SocketAddrV4, SocketAddrV4, Duration),
    ) {
        for rec in self.records.iter().flatten() {
            let left = timers.deadline(rec.timer).map_or(Duration::ZERO, |d| d.saturating_since(now));
            f(rec.tuple.local(), rec.tuple.remote(), left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_compact() {
        assert!(std::mem::size_of::<TimeWaitRecord>() <= 64, "{}", std::mem::size_of::<TimeWaitRecord>());
        // The slab entry (Option) must not grow past it either.
        assert!(std::mem::size_of::<Option<TimeWaitRecord>>() <= 64);
    }
}
