//! Initial sequence numbers (RFC 6528), per-connection timestamp offsets and keyed four-tuple hashing.
//!
//! RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M is a clock ticking every
//! 4 µs and F a keyed pseudorandom function; we use SipHash-2-4, as Linux does (`secure_tcp_seq`). An off-path
//! attacker cannot predict another connection's ISN, while a new incarnation of the same four-tuple still starts
//! ahead of the old one's sequence space (the clock moves at 250,000 per second).
//!
//! The timestamp offset (Linux `secure_tcp_ts_off`) is added to our TSval (RFC 7323 §7.1 recommends a random
//! per-connection offset) so TSval does not reveal the host's uptime. It is a function of the four-tuple only, so a
//! reincarnated connection (TIME_WAIT reuse) keeps monotonic timestamps and PAWS still protects it.
//!
//! Every use hashes a distinct domain byte with the tuple, so the outputs are independent functions of one key.

use std::net::SocketAddrV4;

use siphasher::sip::SipHasher24;

use crate::time::Instant;
use crate::wire::SeqNum;

/// Domain separation of the keyed hashes (first byte of the hashed message).
#[repr(u8)]
#[derive(Copy, Clone)]
enum Domain {
    Isn = 1,
    TsOffset = 2,
    Tuple = 3,
}

/// Keyed generator of ISNs, timestamp offsets and four-tuple hashes. One per engine.
#[derive(Clone)]
pub struct IsnGenerator {
    hasher: SipHasher24,
}

impl core::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the key.
        f.write_str("IsnGenerator { .. }")
    }
}

impl IsnGenerator {
    /// `key` is the secret: random at startup in production, fixed in the simulator for replayable runs.
    pub fn new(key: [u8; 16]) -> Self {
        IsnGenerator { hasher: SipHasher24::new_with_key(&key) }
    }

    /// SipHash-2-4 over `domain || local ip || local port || remote ip || remote port || extra` (big-endian).
    fn hash(&self, domain: Domain, local: SocketAddrV4, remote: SocketAddrV4, extra: u64) -> u64 {
        let mut msg = [0u8; 21];
        msg[0] = domain as u8;
        msg[1..5].copy_from_slice(&local.ip().octets());
        msg[5..7].copy_from_slice(&local.port().to_be_bytes());
        msg[7..11].copy_from_slice(&remote.ip().octets());
        msg[11..13].copy_from_slice(&remote.port().to_be_bytes());
        msg[13..21].copy_from_slice(&extra.to_be_bytes());
        self.hasher.hash(&msg)
    }

    /// RFC 6528 §3 ISN for the connection `local` <-> `remote` at `now`: keyed hash of the four-tuple plus the
    /// 4 µs clock (wrapping every 4.77 hours, as RFC 9293 §3.4.1's ISN clock).
    pub fn isn(&self, local: SocketAddrV4, remote: SocketAddrV4, now: Instant) -> SeqNum {
        let f = self.hash(Domain::Isn, local, remote, 0) as u32;
        let m = (now.as_micros() / 4) as u32;
        SeqNum(f.wrapping_add(m))
    }

    /// Per-connection offset added to TSval (RFC 7323 §7.1), stable for a given four-tuple.
    pub fn ts_offset(&self, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        self.hash(Domain::TsOffset, local, remote, 0) as u32
    }

    /// A keyed 64-bit hash of the four-tuple, for anything an attacker must not be able to steer (table buckets,
    /// port selection).
    pub fn hash_tuple(&self, local: SocketAddrV4, remote: SocketAddrV4) -> u64 {
        self.hash(Domain::Tuple, local, remote, 0)
    }

    /// Like [`hash_tuple`](Self::hash_tuple) with an extra 64-bit input (e.g. a counter for RFC 6056 port
    /// selection, or a time slot for SYN cookies); `hash_tuple_with(l, r, 0) == hash_tuple(l, r)`.
    pub fn hash_tuple_with(&self, local: SocketAddrV4, remote: SocketAddrV4, extra: u64) -> u64 {
        self.hash(Domain::Tuple, local, remote, extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    fn addr(a: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, a), port)
    }

    const KEY: [u8; 16] = *b"0123456789abcdef";

    #[test]
    fn different_tuples_give_different_values() {
        let g = IsnGenerator::new(KEY);
        let now = Instant::from_secs(5);
        let base = (addr(1, 80), addr(2, 40000));
        let variants = [
            base,
            (addr(1, 80), addr(2, 40001)),
            (addr(1, 81), addr(2, 40000)),
            (addr(3, 80), addr(2, 40000)),
            (addr(1, 80), addr(4, 40000)),
            // Swapped ends are a different connection.
            (addr(2, 40000), addr(1, 80)),
        ];
        let isns: HashSet<u32> = variants.iter().map(|&(l, r)| g.isn(l, r, now).0).collect();
        let offsets: HashSet<u32> = variants.iter().map(|&(l, r)| g.ts_offset(l, r)).collect();
        let hashes: HashSet<u64> = variants.iter().map(|&(l, r)| g.hash_tuple(l, r)).collect();
        assert_eq!(isns.len(), variants.len());
        assert_eq!(offsets.len(), variants.len());
        assert_eq!(hashes.len(), variants.len());
        // Spread over many ports: no collisions expected among 10k 32-bit values beyond chance (p ~ 1%).
        let many: HashSet<u32> = (0..10_000u16).map(|p| g.isn(addr(1, 80), addr(2, p), now).0).collect();
        assert!(many.len() >= 9_998);
    }

    #[test]
    fn isn_advances_at_250k_per_second() {
        let g = IsnGenerator::new(KEY);
        let (l, r) = (addr(1, 80), addr(2, 40000));
        let t0 = Instant::from_secs(1000);
        let i0 = g.isn(l, r, t0);
        assert_eq!(g.isn(l, r, t0 + std::time::Duration::from_secs(1)) - i0, 250_000);
        assert_eq!(g.isn(l, r, t0 + std::time::Duration::from_micros(4)) - i0, 1);
        assert_eq!(g.isn(l, r, t0 + std::time::Duration::from_micros(3)) - i0, 0);
        // The ISN wraps with the clock, it does not saturate.
        let wrap = Instant::from_micros(4 * (1u64 << 32));
        assert_eq!(g.isn(l, r, wrap), g.isn(l, r, Instant::ZERO));
    }

    #[test]
    fn deterministic_per_key_and_key_dependent() {
        let (l, r) = (addr(1, 80), addr(2, 40000));
        let now = Instant::from_millis(1234);
        let a = IsnGenerator::new(KEY);
        let b = IsnGenerator::new(KEY);
        assert_eq!(a.isn(l, r, now), b.isn(l, r, now));
        assert_eq!(a.ts_offset(l, r), b.ts_offset(l, r));
        assert_eq!(a.hash_tuple(l, r), b.hash_tuple(l, r));
        let mut other = KEY;
        other[0] ^= 1;
        let c = IsnGenerator::new(other);
        assert_ne!(a.isn(l, r, now), c.isn(l, r, now));
        assert_ne!(a.ts_offset(l, r), c.ts_offset(l, r));
        assert_ne!(a.hash_tuple(l, r), c.hash_tuple(l, r));
    }

    #[test]
    fn domains_are_independent() {
        let g = IsnGenerator::new(KEY);
        let (l, r) = (addr(1, 80), addr(2, 40000));
        let isn_f = g.isn(l, r, Instant::ZERO).0;
        assert_ne!(isn_f, g.ts_offset(l, r));
        assert_ne!(isn_f, g.hash_tuple(l, r) as u32);
        assert_ne!(g.ts_offset(l, r), g.hash_tuple(l, r) as u32);
        assert_eq!(g.hash_tuple_with(l, r, 0), g.hash_tuple(l, r));
        assert_ne!(g.hash_tuple_with(l, r, 1), g.hash_tuple(l, r));
    }

    #[test]
    fn matches_siphash_reference() {
        // Ties the construction to SipHash-2-4 itself: the hash of the documented message layout.
        let g = IsnGenerator::new(KEY);
        let (l, r) = (addr(1, 80), addr(2, 40000));
        let mut msg = vec![1u8, 198, 18, 0, 1, 0, 80, 198, 18, 0, 2];
        msg.extend_from_slice(&40000u16.to_be_bytes());
        msg.extend_from_slice(&[0; 8]);
        let f = SipHasher24::new_with_key(&KEY).hash(&msg) as u32;
        assert_eq!(g.isn(l, r, Instant::from_micros(400)).0, f.wrapping_add(100));
        assert_eq!(format!("{g:?}"), "IsnGenerator { .. }");
    }
}
