//! Receive-side scaling in software: the Toeplitz hash NICs use to spread flows over queues, the indirection table,
//! and the choice of source ports for active opens so that the reply lands on the queue (and so the worker) that
//! opened the connection — what mTCP and F-Stack do, so no packet ever crosses cores.
//!
//! The NIC's real key and indirection table are read with `ETHTOOL_GRSSH`; `deploy/rss.sh` sets a
//! symmetric key (0x6d5a repeated) so that both directions of a flow hash alike.

use std::net::Ipv4Addr;

/// Microsoft's default RSS key, the one their verification vectors use (and many NICs ship).
pub const MICROSOFT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// A key with a 16-bit period: swapping source and destination (address and port) leaves the hash unchanged
/// (Woo and Park, "Scalable TCP Session Monitoring with Symmetric Receive-side Scaling").
pub const SYMMETRIC_KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// The IPv4+TCP input is 12 bytes: source address, destination address, source port, destination port.
const INPUT_LEN: usize = 12;

/// Toeplitz hash with per-byte lookup tables: 12 table reads and XORs per packet instead of 96 shift-and-XOR steps.
#[derive(Clone)]
pub struct Toeplitz {
    key: [u8; 40],
    tables: Box<[[u32; 256]; INPUT_LEN]>,
}

impl std::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toeplitz").field("key", &self.key).finish()
    }
}

impl Toeplitz {
    pub fn new(key: [u8; 40]) -> Self {
        let mut tables = Box::new([[0u32; 256]; INPUT_LEN]);
        for (byte_index, table) in tables.iter_mut().enumerate() {
            for (value, slot) in table.iter_mut().enumerate() {
                let mut h = 0u32;
                for bit in 0..8 {
                    if value & (0x80 >> bit) != 0 {
                        h ^= key_window(&key, byte_index * 8 + bit);
                    }
                }
                *slot = h;
            }
        }
        Toeplitz { key, tables }
    }

    pub fn key(&self) -> &[u8; 40] {
        &self.key
    }

    /// The reference definition, bit by bit (for tests and for keys of other lengths).
    pub fn hash_slow(key: &[u8], input: &[u8]) -> u32 {
        let mut h = 0u32;
        for (i, byte) in input.iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    h ^= key_window(key, i * 8 + bit);
                }
            }
        }
        h
    }

    /// Hash of a TCP/IPv4 packet as the NIC sees it arrive: `src`/`sport` are the sender's.
    #[inline]
    pub fn hash_tcp(&self, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u32 {
        let mut input = [0u8; INPUT_LEN];
        input[..4].copy_from_slice(&src.octets());
        input[4..8].copy_from_slice(&dst.octets());
        input[8..10].copy_from_slice(&sport.to_be_bytes());
        input[10..12].copy_from_slice(&dport.to_be_bytes());
        let mut h = 0;
        for (table, &b) in self.tables.iter().zip(input.iter()) {
            h ^= table[b as usize];
        }
        h
    }

    /// Hash over the addresses only (the "IPv4 only" hash type).
    pub fn hash_ip(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        let mut h = 0;
        for (i, b) in src.octets().into_iter().chain(dst.octets()).enumerate() {
            h ^= self.tables[i][b as usize];
        }
        h
    }
}

/// The 32 key bits starting at bit `bit` (bits past the key's end read as zero).
fn key_window(key: &[u8], bit: usize) -> u32 {
    let mut w = 0u32;
    for i in 0..32 {
        let b = bit + i;
        let set = key.get(b / 8).is_some_and(|byte| byte & (0x80 >> (b % 8)) != 0);
        w = (w << 1) | set as u32;
    }
    w
}

/// The NIC's hash plus its indirection table: which receive queue a flow lands on.
#[derive(Clone, Debug)]
pub struct RssSteering {
    pub toeplitz: Toeplitz,
    /// Queue per hash bucket; NICs index it with the low bits of the hash.
    pub indirection: Vec<u16>,
    /// Hash the endpoints in a canonical order (lower address:port first), so both directions of a flow agree
    /// whatever the key: the software model uses this with a secret random key, where a NIC's symmetric key
    /// would have to be the public 16-bit-periodic one (review L14).
    pub canonical: bool,
}

impl RssSteering {
    /// The default a driver sets for `queues` queues: buckets round-robin over the queues.
    pub fn new(key: [u8; 40], queues: u16, table_size: usize) -> Self {
        let indirection = (0..table_size.max(1)).map(|i| (i % queues.max(1) as usize) as u16).collect();
        RssSteering { toeplitz: Toeplitz::new(key), indirection, canonical: false }
    }

    /// The software model: a random secret key, endpoints hashed in canonical order (see `canonical`). An attacker
    /// who cannot read the key cannot aim flows at one worker or force hand-offs.
    pub fn random_symmetric(queues: u16, table_size: usize) -> Self {
        let mut key = [0u8; 40];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut key[..]);
        RssSteering { canonical: true, ..RssSteering::new(key, queues, table_size) }
    }

    /// The queue a packet from `src:sport` to `dst:dport` arrives on.
    #[inline]
    pub fn queue_of(&self, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u16 {
        let h = if self.canonical && (u32::from(src), sport) > (u32::from(dst), dport) {
            self.toeplitz.hash_tcp(dst, src, dport, sport)
        } else {
            self.toeplitz.hash_tcp(src, dst, sport, dport)
        };
        self.indirection[h as usize % self.indirection.len()]
    }

    #[allow(clippy::too_many_arguments)]
    /// A source port for an active open from `local` to `remote:rport` whose replies (remote -> local) arrive on
    /// `queue`. Walks `range` from `start`, skipping ports `in_use` rejects; None if no port in the range fits.
    pub fn pick_source_port(
        &self,
        local: Ipv4Addr,
        remote: Ipv4Addr,
        rport: u16,
        queue: u16,
        range: (u16, u16),
        start: u32,
        in_use: &mut dyn FnMut(u16) -> bool,
    ) -> Option<u16> {
        let (lo, hi) = (range.0.min(range.1) as u32, range.0.max(range.1) as u32);
        let span = hi - lo + 1;
        (0..span)
            .map(|i| (lo + (start.wrapping_add(i) % span)) as u16)
            .find(|&port| self.queue_of(remote, local, rport, port) == queue && !in_use(port))
    }
}

/// `hfunc` bit of the Toeplitz function (`ETH_RSS_HASH_TOP`).
pub const ETH_RSS_HASH_TOP: u8 = 1;
/// `rx-flow-hash tcp4 sdfn`: source and destination address, source and destination port (`RXH_IP_SRC | RXH_IP_DST |
/// RXH_L4_B_0_1 | RXH_L4_B_2_3`).
pub const RXH_TCP4_SDFN: u64 = (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7);

/// What `ethtool -x` and `ethtool -n IF rx-flow-hash tcp4` say.
#[derive(Clone, Debug)]
pub struct NicRss {
    pub key: Vec<u8>,
    pub indirection: Vec<u32>,
    /// The active hash function bits (`ETH_RSS_HASH_*`); 0 if the driver does not say.
    pub hfunc: u8,
    /// The fields hashed for TCP/IPv4 (`RXH_*`), if the driver answers `ETHTOOL_GRXFH`.
    pub tcp4_fields: Option<u64>,
}

/// Reads an interface's RSS key and indirection table (`ETHTOOL_GRSSH`, as `ethtool -x` does). Drivers without RSS
/// (veth, some virtual NICs) answer EOPNOTSUPP: then the steering is unknown and hand-offs take over.
pub fn read_nic_rss(iface: &str) -> std::io::Result<(Vec<u8>, Vec<u32>)> {
    read_nic_rss_info(iface).map(|i| (i.key, i.indirection))
}

/// As [`read_nic_rss`], plus the hash function and the TCP/IPv4 hash fields.
pub fn read_nic_rss_info(iface: &str) -> std::io::Result<NicRss> {
    const TCP_V4_FLOW: u32 = 0x01;
    let ethtool = crate::sys::ethtool::Ethtool::new(iface)?;
    let rxfh = ethtool.rxfh()?;
    let tcp4_fields = ethtool.rx_flow_hash(TCP_V4_FLOW).ok();
    Ok(NicRss { key: rxfh.key, indirection: rxfh.indirection, hfunc: rxfh.hfunc, tcp4_fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microsoft's "Verifying the RSS Hash Calculation" vectors: (destination, dport, source, sport, IPv4 only,
    /// IPv4 with TCP).
    type Vector = ([u8; 4], u16, [u8; 4], u16, u32, u32);
    const VECTORS: [Vector; 5] = [
        ([161, 142, 100, 80], 1766, [66, 9, 149, 187], 2794, 0x323e8fc2, 0x51ccc178),
        ([65, 69, 140, 83], 4739, [199, 92, 111, 2], 14230, 0xd718262a, 0xc626b0ea),
        ([12, 22, 207, 184], 38024, [24, 19, 198, 95], 12898, 0xd2d0a5de, 0x5c2b394a),
        ([209, 142, 163, 6], 2217, [38, 27, 205, 30], 48228, 0x82989176, 0xafc7327f),
        ([202, 188, 127, 2], 1303, [153, 39, 163, 191], 44251, 0x5d1809c5, 0x10e828a2),
    ];

    #[test]
    fn microsoft_verification_vectors() {
        let t = Toeplitz::new(MICROSOFT_KEY);
        for (dst, dport, src, sport, ip_only, with_tcp) in VECTORS {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            assert_eq!(t.hash_ip(src, dst), ip_only, "{src} -> {dst}");
            assert_eq!(t.hash_tcp(src, dst, sport, dport), with_tcp, "{src}:{sport} -> {dst}:{dport}");
        }
    }

    #[test]
    fn table_hash_matches_bitwise_reference() {
        let t = Toeplitz::new(MICROSOFT_KEY);
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_be_bytes();
            let (src, dst) = (Ipv4Addr::new(b[0], b[1], b[2], b[3]), Ipv4Addr::new(b[4], b[5], b[6], b[7]));
            let (sp, dp) = (u16::from_be_bytes([b[0], b[7]]), u16::from_be_bytes([b[3], b[4]]));
            let mut input = Vec::new();
            input.extend_from_slice(&src.octets());
            input.extend_from_slice(&dst.octets());
            input.extend_from_slice(&sp.to_be_bytes());
            input.extend_from_slice(&dp.to_be_bytes());
            assert_eq!(t.hash_tcp(src, dst, sp, dp), Toeplitz::hash_slow(&MICROSOFT_KEY, &input));
        }
    }

    #[test]
    fn symmetric_key_hashes_both_directions_alike() {
        let t = Toeplitz::new(SYMMETRIC_KEY);
        let (a, b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 1, 2));
        for port in [1u16, 80, 443, 40000, 65535] {
            assert_eq!(t.hash_tcp(a, b, port, 8080), t.hash_tcp(b, a, 8080, port));
        }
    }

    #[test]
    fn chosen_source_ports_steer_replies_to_the_opening_queue() {
        let s = RssSteering::new(MICROSOFT_KEY, 4, 128);
        let (local, remote) = (Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 18, 0, 1));
        for queue in 0..4u16 {
            let mut used = std::collections::HashSet::new();
            for _ in 0..200 {
                let port = s
                    .pick_source_port(local, remote, 80, queue, (32768, 60999), 7, &mut |p| used.contains(&p))
                    .expect("a port");
                assert_eq!(s.queue_of(remote, local, 80, port), queue);
                assert!(used.insert(port));
            }
        }
    }

    #[test]
    fn veth_has_no_rss_or_answers_sizes() {
        // Loopback never has RSS: the call must fail cleanly, not crash.
        assert!(read_nic_rss("lo").is_err());
    }
}
