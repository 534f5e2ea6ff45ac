//! SYN cookies (Linux's `syncookies.c`, RFC 4987 §3.6): when the SYN queue is full (`tcp_syncookies` = 1) or
//! always (= 2), the listener keeps no state for a SYN. The SYN-ACK's sequence number carries a keyed MAC of the
//! four-tuple, the client's ISN, a coarse clock and the MSS table index; the returning ACK proves the round trip.
//!
//! Layout of the 32-bit cookie (our ISS):
//! ```text
//!  31      27 26 25 24                        0
//! +----------+-----+---------------------------+
//! | count%32 | mss |   MAC (25 bits)           |
//! +----------+-----+---------------------------+
//! ```
//! `count` advances every 64 s; a cookie is valid for the current and the two previous counts (Linux's
//! MAX_SYNCOOKIE_AGE). The MAC key rotates every four counts and both the current and the previous key are tried.
//! The per-period keys derive from a master key held in the same memory, so rotation limits how long one observed
//! period key is useful, not what a memory leak of the master gives away (review L4).
//!
//! With timestamps, the options a cookie connection would otherwise forget (window scale, SACK-permitted, ECN) are
//! encoded in the low 6 bits of our TSval, which the client echoes in TSecr, as Linux does.

use std::net::SocketAddrV4;

use siphasher::sip::SipHasher24;
use std::hash::Hasher;

use crate::time::Instant;
use crate::wire::SeqNum;

/// MSS values a cookie can encode (Linux's msstab for IPv4).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
const COUNT_PERIOD_SECS: u64 = 64;
/// Cookies older than this many periods are refused.
const MAX_AGE: u32 = 2;
const KEY_ROTATION: u32 = 4;
const MAC_BITS: u32 = 25;
const MAC_MASK: u32 = (1 << MAC_BITS) - 1;

/// What a validated cookie tells us about the client's SYN.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CookieOptions {
    pub mss: u16,
    /// Window scale the client offered (None if it did not, or if timestamps were off so it could not be kept).
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub ecn: bool,
}

#[derive(Clone)]
pub struct SynCookies {
    master: [u8; 16],
}

impl SynCookies {
    pub fn new(master: [u8; 16]) -> Self {
        SynCookies { master }
    }

    fn count(now: Instant) -> u32 {
        (now.as_micros() / 1_000_000 / COUNT_PERIOD_SECS) as u32
    }

    fn mac(&self, local: SocketAddrV4, remote: SocketAddrV4, client_isn: SeqNum, count: u32, mss_idx: u32) -> u32 {
        let epoch = count / KEY_ROTATION;
        let mut key = SipHasher24::new_with_key(&self.master);
        key.write_u32(epoch);
        let k = key.finish();
        let mut h = SipHasher24::new_with_keys(k, k.rotate_left(32) ^ 0x5bd1_e995);
        h.write(&local.ip().octets());
        h.write(&remote.ip().octets());
        h.write_u16(local.port());
        h.write_u16(remote.port());
        h.write_u32(client_isn.0);
        h.write_u32(count);
        h.write_u32(mss_idx);
        (h.finish() as u32) & MAC_MASK
    }

    /// The ISS for a SYN answered with a cookie, and the MSS the cookie encodes (the largest table entry not above
    /// the client's MSS).
    pub fn generate(
        &self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        client_isn: SeqNum,
        client_mss: u16,
    ) -> (SeqNum, u16) {
        let idx = MSS_TABLE.iter().rposition(|&m| m <= client_mss).unwrap_or(0) as u32;
        let count = Self::count(now);
        let mac = self.mac(local, remote, client_isn, count, idx);
        let cookie = ((count & 0x1f) << 27) | (idx << MAC_BITS) | mac;
        (SeqNum(cookie), MSS_TABLE[idx as usize])
    }

    /// Checks the ACK of a cookie SYN-ACK: `ack` is the segment's acknowledgment number, `seq` its sequence number.
    /// Returns the MSS the cookie carried, or None for a forged or stale cookie.
    pub fn validate(
        &self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seq: SeqNum,
        ack: SeqNum,
    ) -> Option<u16> {
        let cookie = (ack - 1u32).0;
        let client_isn = seq - 1u32;
        let low = cookie >> 27;
        let idx = (cookie >> MAC_BITS) & 0x3;
        let now_count = Self::count(now);
        (0..=MAX_AGE).find_map(|age| {
            let count = now_count.checked_sub(age)?;
            (count & 0x1f == low && self.mac(local, remote, client_isn, count, idx) == cookie & MAC_MASK)
                .then_some(MSS_TABLE[idx as usize])
        })
    }
}

/// Encodes options into a TSval (low 6 bits: wscale 0..=14 or 0xf for none, SACK, ECN), never running ahead of the
/// real timestamp clock.
pub fn encode_timestamp(tsval: u32, opts: &CookieOptions) -> u32 {
    let bits = opts.window_scale.map_or(0xf, |w| w.min(14) as u32)
        | (opts.sack_permitted as u32) << 4
        | (opts.ecn as u32) << 5;
    let encoded = (tsval & !0x3f) | bits;
    if encoded > tsval {
        encoded.wrapping_sub(64)
    } else {
        encoded
    }
}

/// Decodes the options from the TSecr of the returning ACK.
pub fn decode_timestamp(tsecr: u32, mss: u16) -> CookieOptions {
    let ws = tsecr & 0xf;
    CookieOptions {
        mss,
        window_scale: (ws != 0xf).then_some(ws as u8),
        sack_permitted: tsecr & 0x10 != 0,
        ecn: tsecr & 0x20 != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addrs() -> (SocketAddrV4, SocketAddrV4) {
        (SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80), SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2), 40000))
    }

    #[test]
    fn round_trip_within_age_and_refused_after() {
        let c = SynCookies::new([7; 16]);
        let (l, r) = addrs();
        let t0 = Instant::from_secs(10_000);
        let (iss, mss) = c.generate(t0, l, r, SeqNum(1234), 1460);
        assert_eq!(mss, 1460);
        for dt in [0, 60, 64 * 2] {
            assert_eq!(c.validate(Instant::from_secs(10_000 + dt), l, r, SeqNum(1235), iss + 1), Some(1460), "{dt}");
        }
        assert_eq!(c.validate(Instant::from_secs(10_000 + 64 * 4), l, r, SeqNum(1235), iss + 1), None);
    }

    #[test]
    fn forged_or_mismatched_cookies_fail() {
        let c = SynCookies::new([7; 16]);
        let (l, r) = addrs();
        let t0 = Instant::from_secs(777);
        let (iss, _) = c.generate(t0, l, r, SeqNum(99), 1300);
        let other = SocketAddrV4::new(*r.ip(), r.port() + 1);
        assert_eq!(c.validate(t0, l, other, SeqNum(100), iss + 1), None, "other port");
        assert_eq!(c.validate(t0, l, r, SeqNum(101), iss + 1), None, "other client ISN");
        assert_eq!(c.validate(t0, l, r, SeqNum(100), iss + 2), None, "flipped cookie");
        let other_key = SynCookies::new([8; 16]);
        assert_eq!(other_key.validate(t0, l, r, SeqNum(100), iss + 1), None, "other secret");
        // Random guesses essentially never pass (25-bit MAC).
        let passes = (0..100_000u32)
            .filter(|i| c.validate(t0, l, r, SeqNum(100), SeqNum(i.wrapping_mul(2654435761))).is_some())
            .count();
        assert!(passes <= 2, "{passes}");
    }

    #[test]
    fn mss_rounds_down_to_the_table() {
        let c = SynCookies::new([1; 16]);
        let (l, r) = addrs();
        assert_eq!(c.generate(Instant::ZERO, l, r, SeqNum(0), 1400).1, 1300);
        assert_eq!(c.generate(Instant::ZERO, l, r, SeqNum(0), 100).1, 536);
    }

    #[test]
    fn options_survive_the_timestamp() {
        let o = CookieOptions { mss: 1460, window_scale: Some(7), sack_permitted: true, ecn: false };
        let ts = encode_timestamp(1_000_000, &o);
        assert!(ts <= 1_000_000);
        assert_eq!(decode_timestamp(ts, 1460), o);
        let none = CookieOptions { mss: 536, window_scale: None, sack_permitted: false, ecn: true };
        assert_eq!(decode_timestamp(encode_timestamp(12345, &none), 536), none);
    }
}
