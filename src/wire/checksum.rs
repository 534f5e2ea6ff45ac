//! The Internet checksum (RFC 1071) with a wide accumulator, the IPv4 pseudo-header (RFC 9293 §3.1), and
//! incremental update (RFC 1624).
//!
//! Vocabulary: a *partial sum* is the one's-complement sum of 16-bit big-endian words, folded to 16 bits but NOT
//! complemented. Partial sums of adjacent regions combine with [`combine`] as long as every region but the last has
//! an even length (an odd region would shift the byte lanes of the next one). The value written into a header is
//! the complement of the partial sum over everything it covers: [`finish`]. A received packet is intact when the
//! partial sum over everything, checksum field included, is `0xffff` ([`is_valid`]).

use std::net::Ipv4Addr;

use super::ipv4::IpProtocol;

/// One's-complement addition of two 16-bit partial sums (end-around carry).
#[inline]
fn add16(a: u16, b: u16) -> u16 {
    let (s, carry) = a.overflowing_add(b);
    s + carry as u16
}

/// Folds a wide accumulator of native-endian words down to a 16-bit one's-complement sum (still native-endian).
#[inline]
fn fold(mut acc: u128) -> u16 {
    // Each step adds the high half into the low half; two rounds per width absorb the carry of the first round.
    let mut s64 = (acc as u64 as u128) + (acc >> 64);
    s64 = (s64 as u64 as u128) + (s64 >> 64);
    acc = s64;
    let mut s = acc as u64;
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Partial sum of `data` (RFC 1071). An odd trailing byte is padded with a zero byte on the right, per RFC 9293.
///
/// The one's-complement sum is byte-order independent (RFC 1071 §2.B): we add 8-byte native-endian words into a
/// 128-bit accumulator (which cannot overflow for any buffer that fits in memory), fold once at the end and swap the
/// result to network order. Four independent loads per iteration keep the adds pipelined.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    let mut acc: u128 = 0;
    let mut chunks = data.chunks_exact(32);
    for c in &mut chunks {
        // The slice patterns let the compiler elide the bounds checks: each conversion is from a fixed 8-byte range.
        let w0 = u64::from_ne_bytes(c[0..8].try_into().unwrap());
        let w1 = u64::from_ne_bytes(c[8..16].try_into().unwrap());
        let w2 = u64::from_ne_bytes(c[16..24].try_into().unwrap());
        let w3 = u64::from_ne_bytes(c[24..32].try_into().unwrap());
        acc += (w0 as u128 + w1 as u128) + (w2 as u128 + w3 as u128);
    }
    let mut rest = chunks.remainder().chunks_exact(8);
    for c in &mut rest {
        acc += u64::from_ne_bytes(c.try_into().unwrap()) as u128;
    }
    let tail = rest.remainder();
    if !tail.is_empty() {
        // Zero-padding on the right keeps every byte in its lane: chunk boundaries are at even offsets.
        let mut last = [0u8; 8];
        last[..tail.len()].copy_from_slice(tail);
        acc += u64::from_ne_bytes(last) as u128;
    }
    u16::from_be(fold(acc))
}

/// Combines partial sums of adjacent regions (all but the last of even length).
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    sums.iter().fold(0u16, |a, &b| add16(a, b))
}

/// Partial sum of the IPv4 pseudo-header that TCP and UDP checksums cover (RFC 9293 §3.1): source, destination,
/// zero + protocol, and the transport length (header + payload) in bytes.
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: u32) -> u16 {
    let s = u32::from(src);
    let d = u32::from(dst);
    // Every term is below 2^17 and there are few of them: a u64 cannot overflow here.
    let sum = (s >> 16) as u64
        + (s & 0xffff) as u64
        + (d >> 16) as u64
        + (d & 0xffff) as u64
        + u8::from(protocol) as u64
        + (length >> 16) as u64
        + (length & 0xffff) as u64;
    fold(sum as u128)
}

/// The value to store in a checksum field, given the partial sum over everything it covers (field zeroed).
#[inline]
pub fn finish(partial: u16) -> u16 {
    !partial
}

/// The checksum of `bytes` alone, ready to be stored (field zeroed in `bytes`).
#[inline]
pub fn checksum(bytes: &[u8]) -> u16 {
    finish(data(bytes))
}

/// Whether the partial sum over a received region (checksum field included) proves it intact.
#[inline]
pub fn is_valid(partial: u16) -> bool {
    partial == 0xffff
}

/// RFC 1624 eqn. 3: the new checksum `HC' = ~(~HC + ~m + m')` after one 16-bit word of the covered data changes
/// from `old` to `new`. Unlike eqn. 2 this never yields the -0 (0x0000) representation that RFC 1624 §3 warns about
/// unless the true sum is +0, which cannot happen for an IPv4 header.
#[inline]
pub fn update(checksum: u16, old: u16, new: u16) -> u16 {
    !add16(add16(!checksum, !old), new)
}

/// [`update`] for a 32-bit field (an address, a sequence number): applies both 16-bit halves.
#[inline]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let c = update(checksum, (old >> 16) as u16, (new >> 16) as u16);
    update(c, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook RFC 1071 loop, one big-endian word at a time, as the oracle for the fast version.
    fn naive(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i + 1 < bytes.len() {
            sum += u16::from_be_bytes([bytes[i], bytes[i + 1]]) as u32;
            sum = (sum & 0xffff) + (sum >> 16);
            i += 2;
        }
        if i < bytes.len() {
            sum += (bytes[i] as u32) << 8;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2.
        assert_eq!(data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
    }

    #[test]
    fn empty_and_odd() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn carries_fold_to_ffff() {
        // Many 0xffff words: one's-complement sum stays 0xffff (negative zero), never 0.
        assert_eq!(data(&[0xff; 1000]), 0xffff);
        assert_eq!(data(&[0xff; 1001]), naive(&[0xff; 1001]));
        // Sums that carry out of every accumulator width.
        let v: Vec<u8> = (0..4099u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 0xf0).collect();
        assert_eq!(data(&v), naive(&v));
    }

    #[test]
    fn known_ipv4_header() {
        // A real IPv4 header (Wikipedia's worked example); its stored checksum is 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert!(is_valid(data(&h)));
        h[10] = 0;
        h[11] = 0;
        assert_eq!(checksum(&h), 0xb861);
    }

    #[test]
    fn pseudo_header_matches_bytes() {
        let src = Ipv4Addr::new(198, 18, 0, 1);
        let dst = Ipv4Addr::new(198, 19, 255, 254);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&[0, 6, 0x05, 0xdc]);
        assert_eq!(pseudo_header(src, dst, IpProtocol::Tcp, 1500), naive(&bytes));
        // A length with bits above 16 (not a valid IPv4 length, but the arithmetic must still be right).
        bytes.truncate(8);
        bytes.extend_from_slice(&[0, 6, 0x00, 0x01, 0x00, 0x10]);
        assert_eq!(pseudo_header(src, dst, IpProtocol::Tcp, 0x1_0010), naive(&bytes));
    }

    proptest! {
        #[test]
        fn fast_equals_naive(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(data(&bytes), naive(&bytes));
        }

        #[test]
        fn combine_even_splits(bytes in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..300) {
            let cut = (cut * 2).min(bytes.len() & !1);
            prop_assert_eq!(combine(&[data(&bytes[..cut]), data(&bytes[cut..])]), naive(&bytes));
        }

        #[test]
        fn incremental_update_matches_recompute(
            mut bytes in proptest::collection::vec(any::<u8>(), 2..200),
            word in 0usize..100,
            new in any::<u16>(),
        ) {
            // Even length, so that appending the checksum below keeps it in its own 16-bit lane.
            bytes.truncate(bytes.len() & !1);
            let i = (word * 2) % bytes.len();
            let before = checksum(&bytes);
            let old = u16::from_be_bytes([bytes[i], bytes[i + 1]]);
            bytes[i..i + 2].copy_from_slice(&new.to_be_bytes());
            let after = checksum(&bytes);
            let inc = update(before, old, new);
            // One's complement has two zeros; eqn. 3 may yield the other representation only when the sum is zero.
            prop_assert!(inc == after || (inc == 0xffff && after == 0) || (inc == 0 && after == 0xffff));
            // And the field still verifies: that is what a receiver checks.
            let mut with = bytes.clone();
            with.extend_from_slice(&inc.to_be_bytes());
            prop_assert!(is_valid(data(&with)));
        }

        #[test]
        fn update_u32_matches_recompute(mut bytes in proptest::collection::vec(any::<u8>(), 20..40), new in any::<u32>()) {
            bytes.truncate(bytes.len() & !1);
            let before = checksum(&bytes);
            let old = u32::from_be_bytes(bytes[4..8].try_into().unwrap());
            bytes[4..8].copy_from_slice(&new.to_be_bytes());
            let inc = update_u32(before, old, new);
            let mut with = bytes.clone();
            with.extend_from_slice(&inc.to_be_bytes());
            prop_assert!(is_valid(data(&with)));
        }
    }
}
