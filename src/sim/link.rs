//! One direction of a simulated link: seeded loss, reordering, duplication, single-bit corruption, delay with
//! jitter, and a bandwidth-limited queue with tail drop.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::time::Instant;

/// Impairments of one direction. Probabilities are in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    pub loss: f64,
    /// A reordered packet is held back by an extra 1-3 base delays, so later packets overtake it.
    pub reorder: f64,
    pub duplicate: f64,
    /// A corrupted packet has one bit flipped (the Internet checksum always catches a single flip, so what the
    /// engine accepts is what was sent; multi-bit flips can cancel out in a 16-bit ones'-complement sum).
    pub corrupt: f64,
    pub delay: Duration,
    pub jitter: Duration,
    /// Bits per second; `None` is infinitely fast.
    pub bandwidth: Option<u64>,
    /// Packets that may wait for the wire before tail drop (with a bandwidth limit).
    pub queue_limit: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            loss: 0.0,
            reorder: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            delay: Duration::from_millis(5),
            jitter: Duration::ZERO,
            bandwidth: None,
            queue_limit: 1000,
        }
    }
}

/// What happened to a packet on the link.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    Lost,
    /// Dropped at the tail of a full bandwidth queue.
    QueueDrop,
    Duplicated,
    Corrupted,
    Reordered,
    /// Forged and handed straight to a host by a scenario.
    Injected,
}

impl Fate {
    pub fn mark(self) -> &'static str {
        match self {
            Fate::Delivered => "",
            Fate::Lost => "LOST",
            Fate::QueueDrop => "QDROP",
            Fate::Duplicated => "DUP",
            Fate::Corrupted => "CORRUPT",
            Fate::Reordered => "REORDER",
            Fate::Injected => "FORGED",
        }
    }
}

pub struct Link {
    pub config: LinkConfig,
    rng: Xoshiro256PlusPlus,
    /// When the wire is free again (bandwidth model).
    busy_until: Instant,
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub reordered: u64,
}

/// A seed per (seed, from, to) so each direction has its own stream and adding hosts does not perturb others.
pub fn stream_seed(seed: u64, from: usize, to: usize) -> u64 {
    let mut x =
        seed ^ (from as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (to as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Link {
    pub fn new(config: LinkConfig, seed: u64) -> Link {
        Link {
            config,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            busy_until: Instant::ZERO,
            sent: 0,
            lost: 0,
            duplicated: 0,
            corrupted: 0,
            reordered: 0,
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.gen::<f64>() < p
    }

    /// Puts one packet on the link at `now`: returns every copy's fate, arrival time (None if dropped) and bytes.
    pub fn transmit(&mut self, now: Instant, mut packet: Vec<u8>) -> Vec<(Fate, Option<Instant>, Vec<u8>)> {
        self.sent += 1;
        let mut out = Vec::with_capacity(2);
        // Serialisation and queueing (bandwidth), decided before loss so a lost packet still used the wire.
        let mut depart = now;
        if let Some(bps) = self.config.bandwidth.filter(|b| *b > 0) {
            let wire = Duration::from_nanos(packet.len() as u64 * 8 * 1_000_000_000 / bps);
            let start = self.busy_until.max(now);
            let backlog = start.saturating_since(now).as_nanos() / wire.as_nanos().max(1);
            if backlog as usize >= self.config.queue_limit {
                self.lost += 1;
                out.push((Fate::QueueDrop, None, packet));
                return out;
            }
            self.busy_until = start + wire;
            depart = self.busy_until;
        }
        if self.chance(self.config.loss) {
            self.lost += 1;
            out.push((Fate::Lost, None, packet));
            return out;
        }
        let mut fate = Fate::Delivered;
        if self.chance(self.config.corrupt) && !packet.is_empty() {
            let bit = self.rng.gen_range(0..packet.len() * 8);
            packet[bit / 8] ^= 0x80 >> (bit % 8);
            self.corrupted += 1;
            fate = Fate::Corrupted;
        }
        let mut delay = self.config.delay;
        if !self.config.jitter.is_zero() {
            delay += Duration::from_nanos(self.rng.gen_range(0..=self.config.jitter.as_nanos() as u64));
        }
        if self.chance(self.config.reorder) {
            let extra = self.config.delay.max(Duration::from_millis(1)) * self.rng.gen_range(1..=3u32);
            delay += extra;
            self.reordered += 1;
            if fate == Fate::Delivered {
                fate = Fate::Reordered;
            }
        }
        if self.chance(self.config.duplicate) {
            self.duplicated += 1;
            let extra = Duration::from_micros(self.rng.gen_range(0..=1000));
            out.push((Fate::Duplicated, Some(depart + delay + extra), packet.clone()));
        }
        out.insert(0, (fate, Some(depart + delay), packet));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(cfg: LinkConfig, n: usize) -> (f64, f64, f64, f64) {
        let mut l = Link::new(cfg, 42);
        let (mut lost, mut dup, mut corrupt, mut reorder) = (0, 0, 0, 0);
        for _ in 0..n {
            for (fate, _, _) in l.transmit(Instant::from_secs(1), vec![0u8; 100]) {
                match fate {
                    Fate::Lost => lost += 1,
                    Fate::Duplicated => dup += 1,
                    Fate::Corrupted => corrupt += 1,
                    Fate::Reordered => reorder += 1,
                    _ => {}
                }
            }
        }
        let n = n as f64;
        (lost as f64 / n, dup as f64 / n, corrupt as f64 / n, reorder as f64 / n)
    }

    #[test]
    fn impairment_rates_match_configuration() {
        let cfg = LinkConfig { loss: 0.1, duplicate: 0.02, corrupt: 0.01, reorder: 0.1, ..Default::default() };
        let (lost, dup, corrupt, reorder) = rates(cfg, 200_000);
        // 200k trials: the standard error is below 0.07 percentage points for these rates.
        assert!((lost - 0.1).abs() < 0.005, "{lost}");
        assert!((dup - 0.02 * 0.9).abs() < 0.003, "{dup}");
        assert!((corrupt - 0.01 * 0.9).abs() < 0.002, "{corrupt}");
        assert!((reorder - 0.1 * 0.9 * 0.99).abs() < 0.006, "{reorder}");
    }

    #[test]
    fn same_seed_same_decisions() {
        let cfg = LinkConfig { loss: 0.3, reorder: 0.3, duplicate: 0.3, corrupt: 0.3, ..Default::default() };
        let run = || {
            let mut l = Link::new(cfg.clone(), 9);
            (0..1000).map(|i| l.transmit(Instant::from_millis(i), vec![i as u8; 64])).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn corruption_flips_exactly_one_bit() {
        let mut l = Link::new(LinkConfig { corrupt: 1.0, ..Default::default() }, 1);
        for _ in 0..100 {
            let (_, _, p) = l.transmit(Instant::ZERO, vec![0u8; 60]).remove(0);
            assert_eq!(p.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
        }
    }

    #[test]
    fn bandwidth_spaces_packets_and_tail_drops() {
        // 1 Mbit/s: a 1250-byte packet takes 10 ms on the wire.
        let cfg =
            LinkConfig { bandwidth: Some(1_000_000), queue_limit: 3, delay: Duration::ZERO, ..Default::default() };
        let mut l = Link::new(cfg, 1);
        let arrivals: Vec<_> = (0..5).map(|_| l.transmit(Instant::ZERO, vec![0u8; 1250]).remove(0)).collect();
        assert_eq!(arrivals[0].1, Some(Instant::from_millis(10)));
        assert_eq!(arrivals[2].1, Some(Instant::from_millis(30)));
        assert_eq!(arrivals[3].0, Fate::QueueDrop);
    }
}
