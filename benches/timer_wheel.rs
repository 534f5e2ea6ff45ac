//! Timer wheel costs at one million live timers: insert, cancel, reschedule, fire, an idle poll and a 60 s jump.
//!
//! Run with `cargo bench --bench timer_wheel`. A plain `std::time` harness: each figure is one timed pass, so
//! expect some noise on a shared machine.

use std::hint::black_box;
use std::time::{Duration, Instant as WallClock};

use xdptcp::time::Instant;
use xdptcp::timer::{TimerHandle, TimerWheel};

const N: usize = 1_000_000;
const TICK: Duration = Duration::from_millis(1);

/// xorshift64*: deterministic deadlines without pulling an RNG into the measurement.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn report(what: &str, elapsed: Duration, ops: usize) {
    println!(
        "{what:<52} {:>9.1} ns/op  ({ops} ops, {:.1} ms)",
        elapsed.as_nanos() as f64 / ops as f64,
        elapsed.as_secs_f64() * 1e3
    );
}

/// A wheel at time zero holding `N` timers due uniformly within `spread_us` after `base_us`.
fn filled(rng: &mut Rng, base_us: u64, spread_us: u64) -> (TimerWheel<(u32, u8)>, Vec<TimerHandle>, Duration) {
    let mut wheel = TimerWheel::with_capacity(TICK, Instant::ZERO, N);
    let deadlines: Vec<Instant> = (0..N).map(|_| Instant::from_micros(base_us + rng.next() % spread_us)).collect();
    let start = WallClock::now();
    let handles: Vec<TimerHandle> =
        deadlines.iter().enumerate().map(|(i, &d)| wheel.insert(d, (i as u32, 0))).collect();
    (wheel, handles, start.elapsed())
}

fn main() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    // Deadlines like a busy engine's: RTOs, delayed ACKs and keepalives from milliseconds to two hours out.
    let (mut wheel, mut handles, took) = filled(&mut rng, 1000, 7_200_000_000);
    report("insert (1M live, deadlines 1 ms..2 h)", took, N);

    // Re-arming an RTO: move each timer to a new deadline in 200..1200 ms.
    let moves: Vec<(TimerHandle, Instant)> =
        handles.iter().map(|&h| (h, Instant::from_micros(200_000 + rng.next() % 1_000_000))).collect();
    let start = WallClock::now();
    for &(h, d) in &moves {
        black_box(wheel.reschedule(h, d));
    }
    report("reschedule (1M live)", start.elapsed(), N);

    // Cancel in shuffled order, so list unlinks hit cold memory as they would in an engine.
    for i in (1..handles.len()).rev() {
        handles.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let start = WallClock::now();
    for &h in &handles {
        black_box(wheel.cancel(h));
    }
    report("cancel (1M live, random order)", start.elapsed(), N);
    assert!(wheel.is_empty());

    // Firing: 1M timers within 10 s, polled every tick like a run-to-completion loop would.
    let (mut wheel, _, _) = filled(&mut rng, 1000, 10_000_000);
    let mut fired = 0usize;
    let start = WallClock::now();
    for ms in 0..=10_001u64 {
        while let Some(t) = wheel.poll(Instant::from_millis(ms)) {
            black_box(t);
            fired += 1;
        }
    }
    report("fire (1M due within 10 s, polled each 1 ms tick)", start.elapsed(), fired);
    assert_eq!(fired, N);

    // An idle poll: 1M live timers, none due.
    let (mut wheel, _, _) = filled(&mut rng, 3_600_000_000, 3_600_000_000);
    let polls = 10_000_000;
    let start = WallClock::now();
    for i in 0..polls {
        black_box(wheel.poll(Instant::from_micros(i as u64 / 16)));
    }
    report("poll with nothing due (1M live)", start.elapsed(), polls);

    // A 60 s jump over 1M timers all later than that: O(levels), no per-tick work.
    let start = WallClock::now();
    black_box(wheel.poll(Instant::from_secs(61)));
    report("60 s jump, nothing due (1M live)", start.elapsed(), 1);
    assert_eq!(wheel.len(), N);

    // A 60 s jump that fires 1000 timers spread over the minute among 1M later ones.
    for i in 0..1000u64 {
        wheel.insert(Instant::from_secs(62) + Duration::from_millis(i * 60), (0, 1));
    }
    let start = WallClock::now();
    let mut fired = 0;
    while let Some(t) = wheel.poll(Instant::from_secs(122)) {
        black_box(t);
        fired += 1;
    }
    report("60 s jump firing 1000 (1M live), per fired timer", start.elapsed(), fired);
    assert_eq!(fired, 1000);
}
