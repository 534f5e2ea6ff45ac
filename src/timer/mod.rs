//! Placeholder timer queue (BTreeMap, O(log n)) until the hierarchical wheel from branch `timer` lands.
use crate::time::Instant;
use std::collections::BTreeMap;
use std::time::Duration;
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct TimerHandle {
    id: u64,
}
pub struct TimerWheel<T> {
    map: BTreeMap<(Instant, u64), T>,
    by_id: std::collections::HashMap<u64, Instant>,
    next: u64,
    tick: u64,
}
impl<T> TimerWheel<T> {
    pub fn new(tick: Duration, _now: Instant) -> Self {
        TimerWheel { map: BTreeMap::new(), by_id: Default::default(), next: 0, tick: tick.as_micros().max(1) as u64 }
    }
    fn round(&self, d: Instant) -> Instant {
        Instant::from_micros(d.as_micros().div_ceil(self.tick) * self.tick)
    }
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerHandle {
        let d = self.round(deadline);
        self.next += 1;
        self.map.insert((d, self.next), value);
        self.by_id.insert(self.next, d);
        TimerHandle { id: self.next }
    }
    pub fn cancel(&mut self, h: TimerHandle) -> Option<T> {
        let d = self.by_id.remove(&h.id)?;
        self.map.remove(&(d, h.id))
    }
    pub fn reschedule(&mut self, h: TimerHandle, deadline: Instant) -> Option<TimerHandle> {
        let v = self.cancel(h)?;
        Some(self.insert(deadline, v))
    }
    pub fn deadline(&self, h: TimerHandle) -> Option<Instant> {
        self.by_id.get(&h.id).copied()
    }
    pub fn poll(&mut self, now: Instant) -> Option<(TimerHandle, T)> {
        let (&(d, id), _) = self.map.iter().next()?;
        if d > now {
            return None;
        }
        self.by_id.remove(&id);
        let v = self.map.remove(&(d, id))?;
        Some((TimerHandle { id }, v))
    }
    pub fn next_deadline(&self) -> Option<Instant> {
        self.map.keys().next().map(|k| k.0)
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
