//! Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
//! NSDI 2016, §3.4): a lookup table of M slots (M prime) that every backend fills in turn following its own
//! permutation of the slots. Any node that knows the same backend list builds the same table, so several proxies
//! behind ECMP send a client to the same backend without talking to each other, and a backend joining or leaving
//! moves little more than its own share of the slots.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// The paper's rule (§3.4): M prime and larger than 100 × N keeps the difference between backends' shares under 1%.
pub fn table_size_for(backends: usize) -> usize {
    next_prime((backends.max(1) * 100).max(101))
}

fn next_prime(mut n: usize) -> usize {
    fn is_prime(n: usize) -> bool {
        if n < 2 {
            return false;
        }
        let mut d = 2;
        while d * d <= n {
            if n % d == 0 {
                return false;
            }
            d += 1;
        }
        true
    }
    while !is_prime(n) {
        n += 1;
    }
    n
}

/// Hashes a key with one of the two fixed seeds. Fixed (not random per process): the table must come out the same
/// on every proxy node.
fn hash(seed: u64, key: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(seed, 0x6d61_676c_6576_2121);
    h.write(key);
    h.finish()
}

/// The hash of a client address used to index the table.
pub fn client_hash(ip: std::net::Ipv4Addr) -> u64 {
    hash(0x636c_6965_6e74, &ip.octets())
}

/// A populated Maglev table: slot → backend index (in the order the names were given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaglevTable {
    slots: Vec<u32>,
}

impl MaglevTable {
    /// Builds the table for `backends`: (stable name, weight). Names identify backends across nodes (we use
    /// "ip:port"); weights give a backend that many turns per round (after dividing by their greatest common
    /// divisor), so its share of slots is proportional to its weight. Backends of weight 0 get no slot. `size` must
    /// be prime (see [`table_size_for`]); an empty or all-zero list gives an empty table.
    pub fn build(backends: &[(&[u8], u32)], size: usize) -> MaglevTable {
        let size = size.max(1);
        // Turns go in name order, not list order, so that every node builds the same table however its
        // configuration lists the backends.
        let mut live: Vec<usize> = (0..backends.len()).filter(|&i| backends[i].1 > 0).collect();
        live.sort_by(|&a, &b| backends[a].0.cmp(backends[b].0));
        if live.is_empty() {
            return MaglevTable { slots: Vec::new() };
        }
        let g = live.iter().fold(0u32, |g, &i| gcd(g, backends[i].1));
        // Permutation of backend i: offset + j × skip (mod M), a full cycle because M is prime and 0 < skip < M.
        let perm: Vec<(u64, u64)> = backends
            .iter()
            .map(|(name, _)| {
                let offset = hash(0x6f66_6673_6574, name) % size as u64;
                let skip = if size > 1 { hash(0x736b_6970, name) % (size as u64 - 1) + 1 } else { 1 };
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; backends.len()];
        let mut slots = vec![u32::MAX; size];
        let mut filled = 0;
        // Bounded: every turn fills one empty slot (a permutation visits them all), so at most `size` turns.
        'outer: loop {
            for &i in &live {
                for _ in 0..backends[i].1 / g {
                    let (offset, skip) = perm[i];
                    let mut c = (offset + next[i] * skip) % size as u64;
                    while slots[c as usize] != u32::MAX {
                        next[i] += 1;
                        c = (offset + next[i] * skip) % size as u64;
                    }
                    slots[c as usize] = i as u32;
                    next[i] += 1;
                    filled += 1;
                    if filled == size {
                        break 'outer;
                    }
                }
            }
        }
        MaglevTable { slots }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The backend for a key hash, or the first one after it (in table order) that `eligible` accepts: a backend
    /// that is down, draining or full is skipped without rebuilding, so the other clients stay where they are.
    pub fn lookup(&self, key: u64, mut eligible: impl FnMut(usize) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let start = (key % self.slots.len() as u64) as usize;
        (0..self.slots.len()).map(|k| self.slots[(start + k) % self.slots.len()] as usize).find(|&b| eligible(b))
    }

    /// Slot → backend index, for tests and `backend list`.
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("198.18.{}.{}:80", i / 250, i % 250 + 1).into_bytes()).collect()
    }

    fn table(names: &[Vec<u8>], size: usize) -> MaglevTable {
        let list: Vec<(&[u8], u32)> = names.iter().map(|n| (n.as_slice(), 1)).collect();
        MaglevTable::build(&list, size)
    }

    /// Fraction of slots whose backend (by name) differs between two tables of the same size.
    fn changed(a: &MaglevTable, an: &[Vec<u8>], b: &MaglevTable, bn: &[Vec<u8>]) -> f64 {
        let moved = a.slots().iter().zip(b.slots()).filter(|(x, y)| an[**x as usize] != bn[**y as usize]).count();
        moved as f64 / a.len() as f64
    }

    #[test]
    fn table_size_is_a_prime_over_100_n() {
        assert_eq!(table_size_for(1), 101);
        assert_eq!(table_size_for(3), 307);
        assert_eq!(table_size_for(10), 1009);
        assert_eq!(table_size_for(1000), 100_003);
    }

    #[test]
    fn equal_weights_share_the_table_within_one_slot() {
        // §3.4: backends take turns, so shares differ by at most one slot: under 1% of a share when M > 100 N.
        for n in [1, 2, 3, 7, 50] {
            let names = names(n);
            let t = table(&names, table_size_for(n));
            let mut counts = vec![0usize; n];
            for &s in t.slots() {
                counts[s as usize] += 1;
            }
            let (lo, hi) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "n={n}: {counts:?}");
            assert!((hi - lo) as f64 / (t.len() as f64 / n as f64) < 0.01);
        }
    }

    #[test]
    fn weights_give_proportional_shares() {
        let names = names(3);
        let list: Vec<(&[u8], u32)> = vec![(&names[0], 1), (&names[1], 2), (&names[2], 0)];
        let t = MaglevTable::build(&list, 3001);
        let c0 = t.slots().iter().filter(|&&s| s == 0).count();
        let c1 = t.slots().iter().filter(|&&s| s == 1).count();
        assert_eq!(c0 + c1, 3001, "weight 0 gets nothing");
        assert!((c1 as i64 - 2 * c0 as i64).abs() <= 2, "{c0} {c1}");
    }

    #[test]
    fn same_backends_same_table_on_every_node() {
        let n = names(5);
        assert_eq!(table(&n, 503), table(&n, 503));
        // The order the operator lists them in does not matter for which backend a slot names.
        let mut rev = n.clone();
        rev.reverse();
        assert_eq!(changed(&table(&n, 503), &n, &table(&rev, 503), &rev), 0.0);
    }

    #[test]
    fn disruption_matches_the_paper() {
        // The paper's setup (§5.3, Figure 12): 1000 backends, M = 65537 and M = 655373, k% of the backends removed at
        // once, fraction of table entries that change. Every slot of a removed backend must move (k%); the figure
        // shows the entries moved on top of those staying a few percent with M = 65537 (below the 100 × N rule)
        // and shrinking to about one percent with M = 655373 (above it). Measured here: 65537 moves 2.3-3.6% extra,
        // 655373 moves 0.6-1.0% extra, for k = 1, 5, 10.
        let all = names(1000);
        for (m, extra_bound) in [(65537, 0.04), (655373, 0.015)] {
            let before = table(&all, m);
            for k in [1usize, 5, 10] {
                let removed = k * 10; // k% of 1000
                let after_names: Vec<Vec<u8>> = all[removed..].to_vec();
                let after = table(&after_names, m);
                let total = changed(&before, &all, &after, &after_names);
                let must = before.slots().iter().filter(|&&s| (s as usize) < removed).count() as f64 / m as f64;
                let extra = total - must;
                assert!(must > 0.0 && extra >= 0.0);
                assert!(extra <= extra_bound, "M={m} k={k}%: must {must:.4}, extra {extra:.4}");
            }
        }
    }

    #[test]
    fn one_backend_joining_moves_about_one_nth() {
        // Adding the (N+1)th backend must give it ~1/(N+1) of the slots and move few others.
        let n = 20;
        let all = names(n + 1);
        let m = table_size_for(n + 1);
        let before = table(&all[..n], m);
        let after = table(&all, m);
        let total = changed(&before, &all[..n], &after, &all);
        let ideal = 1.0 / (n + 1) as f64;
        assert!(total >= ideal * 0.99 && total < ideal * 2.0, "moved {total:.4}, ideal {ideal:.4}");
    }

    #[test]
    fn lookup_skips_ineligible_backends() {
        let n = names(4);
        let t = table(&n, 401);
        for key in 0..1000u64 {
            let first = t.lookup(key, |_| true).unwrap();
            let other = t.lookup(key, |b| b != 2).unwrap();
            assert_ne!(other, 2);
            if first != 2 {
                assert_eq!(first, other, "clients of healthy backends stay put");
            }
        }
        assert_eq!(t.lookup(7, |_| false), None);
        assert_eq!(MaglevTable::build(&[], 101).lookup(1, |_| true), None);
    }
}
