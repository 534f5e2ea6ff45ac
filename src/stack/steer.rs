//! Who owns a connection: a function of the four-tuple every worker can compute, so that a packet landing on the
//! wrong worker can be handed to the right one, and an active open can pick a source port whose replies its own
//! worker owns.
//!
//! Two models:
//! - `nic`: the NIC's RSS is known (key and indirection table read with `ETHTOOL_GRSSH`, Toeplitz over the TCP
//!   four-tuple, every queue it spreads over served by a worker). The owner is the worker of the queue the NIC puts
//!   the flow on, so every packet already lands on its owner: zero hand-offs.
//! - `hash`: the NIC's steering is unknown (veth, virtual NICs, partial RSS). The owner is our own symmetric hash of
//!   the four-tuple (Toeplitz with the 0x6d5a key, the same a NIC set up by `deploy/rss.sh` computes) over the
//!   workers; packets landing elsewhere, SYNs included, are handed off, so a flow always meets one engine. The key
//!   is random per run (endpoints hashed in canonical order keep it symmetric): with the public key an attacker
//!   could aim all its flows at one worker or force every packet through a hand-off (review L14).

use std::net::Ipv4Addr;

use super::rss::{read_nic_rss_info, RssSteering, Toeplitz};

/// Buckets of the software model's indirection table (as many NICs have).
const HASH_TABLE_SIZE: usize = 128;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SteeringMode {
    /// The NIC's RSS (fails if it cannot be read or does not hash the TCP four-tuple over the served queues).
    Nic,
    /// Our own symmetric hash over the workers; packets landing elsewhere are handed off.
    Hash,
    /// The NIC's RSS if it can be read and matches, else the hash.
    #[default]
    Auto,
}

/// The model in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Nic,
    Hash,
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Model::Nic => "nic",
            Model::Hash => "hash",
        })
    }
}

/// The ownership function of a set of workers.
#[derive(Clone, Debug)]
pub struct Owners {
    pub model: Model,
    /// The hash and table; `queue_of` yields a "lane": the NIC queue (nic) or the worker index (hash).
    rss: RssSteering,
    /// Worker of each lane.
    worker_of_lane: Vec<u16>,
    /// Lane of each worker (what the engine's port picker aims at).
    lane_of_worker: Vec<u16>,
}

impl Owners {
    /// The software model over `workers` workers.
    pub fn hash(workers: usize) -> Owners {
        let n = workers.clamp(1, u16::MAX as usize) as u16;
        Owners {
            model: Model::Hash,
            rss: RssSteering::random_symmetric(n, HASH_TABLE_SIZE),
            worker_of_lane: (0..n).collect(),
            lane_of_worker: (0..n).collect(),
        }
    }

    /// The NIC model: `key` and `indirection` as the NIC reported them, `queues[i]` served by worker `i`. Fails if
    /// the table sends flows to a queue no worker serves, or the key is not a 40-byte Toeplitz key.
    pub fn nic(key: &[u8], indirection: &[u32], queues: &[u32]) -> Result<Owners, String> {
        let key: [u8; 40] = key.try_into().map_err(|_| format!("RSS key of {} bytes (40 expected)", key.len()))?;
        if indirection.is_empty() {
            return Err("empty RSS indirection table".into());
        }
        let lanes = indirection.iter().copied().max().unwrap_or(0) as usize + 1;
        let mut worker_of_lane = vec![u16::MAX; lanes];
        for &q in indirection {
            match queues.iter().position(|&s| s == q) {
                Some(w) => worker_of_lane[q as usize] = w as u16,
                None => return Err(format!("the RSS table spreads flows over queue {q}, which no worker serves")),
            }
        }
        let lane_of_worker = queues.iter().map(|&q| q.min(u16::MAX as u32) as u16).collect();
        let indirection = indirection.iter().map(|&q| q as u16).collect();
        Ok(Owners {
            model: Model::Nic,
            rss: RssSteering { toeplitz: Toeplitz::new(key), indirection, canonical: false },
            worker_of_lane,
            lane_of_worker,
        })
    }

    /// The NIC model from a key given by hand (a NIC whose RSS cannot be read but was set up with a known key, e.g.
    /// by `deploy/rss.sh`), with the table `ethtool -X IF equal N` sets: bucket `i` to the `i % N`-th served queue.
    /// 128 buckets; for N a power of two the mapping is the same whatever the NIC's table size.
    pub fn configured(key: &[u8], queues: &[u32]) -> Result<Owners, String> {
        if queues.is_empty() {
            return Err("no queues".into());
        }
        let table: Vec<u32> = (0..HASH_TABLE_SIZE).map(|i| queues[i % queues.len()]).collect();
        Owners::nic(key, &table, queues)
    }

    /// Chooses the model for `queues` on `iface` (one worker per queue, in order); `key` is a configured RSS key
    /// (hex bytes, `:` optional) that replaces reading the NIC's. Returns the owners and, when `auto` fell back
    /// to the hash, why.
    pub fn for_interface(
        iface: &str,
        queues: &[u32],
        mode: SteeringMode,
        key: Option<&str>,
    ) -> Result<(Owners, Option<String>), String> {
        let nic = || -> Result<Owners, String> {
            if let Some(k) = key {
                return Owners::configured(&parse_key(k)?, queues);
            }
            let info = read_nic_rss_info(iface).map_err(|e| format!("{iface} does not report its RSS hash: {e}"))?;
            if info.hfunc != 0 && info.hfunc & super::rss::ETH_RSS_HASH_TOP == 0 {
                return Err(format!("{iface} hashes with function {:#x}, not Toeplitz", info.hfunc));
            }
            if let Some(fields) = info.tcp4_fields {
                if fields & super::rss::RXH_TCP4_SDFN != super::rss::RXH_TCP4_SDFN {
                    return Err(format!(
                        "{iface} does not hash TCP/IPv4 on addresses and ports (rx-flow-hash tcp4 {fields:#x}; \
                         deploy/rss.sh sets sdfn)"
                    ));
                }
            }
            Owners::nic(&info.key, &info.indirection, queues)
        };
        match mode {
            SteeringMode::Hash if key.is_some() => {
                Err("--rss-key describes the NIC: use --steering nic or auto".into())
            }
            SteeringMode::Hash => Ok((Owners::hash(queues.len()), None)),
            SteeringMode::Nic => nic().map(|o| (o, None)),
            // A configured key that does not parse is an error, not a reason to fall back.
            SteeringMode::Auto if key.is_some() => nic().map(|o| (o, None)),
            SteeringMode::Auto => match nic() {
                Ok(o) => Ok((o, None)),
                Err(why) => Ok((Owners::hash(queues.len()), Some(why))),
            },
        }
    }

    pub fn workers(&self) -> usize {
        self.lane_of_worker.len()
    }

    /// The worker owning the flow of a packet from `src:sport` to `dst:dport` (as it arrives).
    #[inline]
    pub fn owner(&self, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> usize {
        let lane = self.rss.queue_of(src, dst, sport, dport) as usize;
        // A lane without a worker cannot happen (checked at construction); stay local-safe anyway.
        self.worker_of_lane.get(lane).copied().filter(|&w| w != u16::MAX).unwrap_or(0) as usize
    }

    /// The owner of a received IPv4 packet, if it is TCP with ports (other packets stay where they landed).
    #[inline]
    pub fn owner_of_packet(&self, ip: &[u8]) -> Option<usize> {
        if ip.len() < 20 || ip[9] != 6 {
            return None;
        }
        // Non-first fragments carry no ports.
        if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
            return None;
        }
        let ihl = (ip[0] & 0x0f) as usize * 4;
        let ports = ip.get(ihl..ihl + 4)?;
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        Some(self.owner(src, dst, u16::from_be_bytes([ports[0], ports[1]]), u16::from_be_bytes([ports[2], ports[3]])))
    }

    /// What worker `worker`'s engine gets so that its active opens pick source ports it owns
    /// (`Engine::set_rss_steering`).
    pub fn engine_steering(&self, worker: usize) -> (RssSteering, u16) {
        (self.rss.clone(), self.lane_of_worker.get(worker).copied().unwrap_or(0))
    }

    /// One line for the banner.
    pub fn describe(&self) -> String {
        match self.model {
            Model::Nic => format!("steering nic (NIC RSS, {} buckets)", self.rss.indirection.len()),
            Model::Hash => format!("steering hash (symmetric Toeplitz over {} workers)", self.workers()),
        }
    }
}

/// An RSS key as `ethtool -x` prints it (`6d:5a:...`) or as plain hex.
pub fn parse_key(s: &str) -> Result<Vec<u8>, String> {
    let hex: String = s.chars().filter(|&c| c != ':').collect();
    if hex.is_empty() || hex.len() % 2 != 0 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("RSS key {s:?}: expected hex bytes like 6d:5a:6d:5a:..."));
    }
    Ok((0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("checked hex")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::rss::{MICROSOFT_KEY, SYMMETRIC_KEY};

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    #[test]
    fn hash_model_is_symmetric_and_spreads() {
        let o = Owners::hash(2);
        let mut per = [0usize; 2];
        for port in 32768..33768u16 {
            let w = o.owner(A, B, port, 80);
            assert_eq!(w, o.owner(B, A, 80, port), "both directions alike");
            per[w] += 1;
        }
        // Linux's connect() prefers even ports: the spread must not hinge on parity.
        let even: Vec<usize> = (32768..33768u16).step_by(2).map(|p| o.owner(A, B, p, 80)).collect();
        assert!(even.contains(&0) && even.contains(&1));
        assert!(per[0] > 300 && per[1] > 300, "{per:?}");
    }

    /// Review L14: the software model's key is secret and random, not the public symmetric one, so an attacker
    /// cannot compute which worker its flows land on.
    #[test]
    fn hash_model_key_is_random_per_run() {
        let (a, b) = (Owners::hash(8), Owners::hash(8));
        let public = RssSteering::new(SYMMETRIC_KEY, 8, 128);
        let flows = 1024..2048u16;
        let differ =
            |o: &Owners, f: &dyn Fn(u16) -> usize| flows.clone().filter(|&p| o.owner(A, B, p, 80) != f(p)).count();
        assert!(differ(&a, &|p| public.queue_of(A, B, p, 80) as usize) > 500, "not the public key's mapping");
        assert!(differ(&a, &|p| b.owner(A, B, p, 80)) > 500, "two runs pick different keys");
    }

    #[test]
    fn nic_model_maps_queues_to_workers() {
        // Queues 4 and 6 served by workers 0 and 1.
        let table: Vec<u32> = (0..128).map(|i| if i % 2 == 0 { 4 } else { 6 }).collect();
        let o = Owners::nic(&MICROSOFT_KEY, &table, &[4, 6]).unwrap();
        let rss = RssSteering {
            toeplitz: Toeplitz::new(MICROSOFT_KEY),
            indirection: table.iter().map(|&q| q as u16).collect(),
            canonical: false,
        };
        for port in 1000..1200u16 {
            let q = rss.queue_of(A, B, port, 80);
            assert_eq!(o.owner(A, B, port, 80), if q == 4 { 0 } else { 1 });
        }
        assert_eq!(o.engine_steering(1).1, 6);
        assert!(Owners::nic(&MICROSOFT_KEY, &table, &[4]).is_err(), "queue 6 unserved");
        assert!(Owners::nic(&MICROSOFT_KEY[..20], &table, &[4, 6]).is_err());
        assert!(Owners::nic(&MICROSOFT_KEY, &[], &[4, 6]).is_err());
    }

    #[test]
    fn configured_key_is_the_equal_table_over_the_served_queues() {
        let text = "6d:5a:".repeat(20);
        let key = parse_key(&text[..text.len() - 1]).unwrap();
        assert_eq!(key[..], SYMMETRIC_KEY[..]);
        assert_eq!(parse_key(&"6d5a".repeat(20)).unwrap(), key);
        for bad in ["", "6d:5", "zz", "6d:5a:g0"] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
        // The configured key is mirrored exactly: what a NIC set up by deploy/rss.sh computes (checked against
        // the plain Toeplitz hash and the equal table).
        let nic = Owners::configured(&key, &[0, 1]).unwrap();
        let plain = RssSteering::new(SYMMETRIC_KEY, 2, 128);
        for port in 1024..3024u16 {
            assert_eq!(nic.owner(A, B, port, 80), plain.queue_of(A, B, port, 80) as usize);
        }
        assert_eq!(nic.model, Model::Nic);
        assert!(Owners::configured(&key[..39], &[0, 1]).is_err());
        let (o, fallback) = Owners::for_interface("lo", &[0, 1], SteeringMode::Auto, Some(&text)).unwrap();
        assert_eq!((o.model, fallback), (Model::Nic, None));
        assert!(Owners::for_interface("lo", &[0, 1], SteeringMode::Auto, Some("xx")).is_err());
        assert!(Owners::for_interface("lo", &[0, 1], SteeringMode::Hash, Some(&text)).is_err());
        let (o, fallback) = Owners::for_interface("lo", &[0, 1], SteeringMode::Auto, None).unwrap();
        assert!(o.model == Model::Hash && fallback.is_some(), "lo has no RSS");
        assert!(Owners::for_interface("lo", &[0, 1], SteeringMode::Nic, None).is_err());
    }

    #[test]
    fn engine_ports_are_owned_by_the_opener() {
        let o = Owners::hash(3);
        for w in 0..3 {
            let (rss, lane) = o.engine_steering(w);
            let port = rss.pick_source_port(A, B, 7, lane, (40000, 50000), 1, &mut |_| false).unwrap();
            // The reply B:7 -> A:port lands on w.
            assert_eq!(o.owner(B, A, 7, port), w);
        }
    }

    #[test]
    fn packet_parsing() {
        let o = Owners::hash(2);
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = 6;
        p[12..16].copy_from_slice(&A.octets());
        p[16..20].copy_from_slice(&B.octets());
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        assert_eq!(o.owner_of_packet(&p), Some(o.owner(A, B, 40000, 80)));
        assert_eq!(o.owner_of_packet(&p[..22]), None, "truncated");
        p[9] = 17;
        assert_eq!(o.owner_of_packet(&p), None, "not TCP");
        p[9] = 6;
        p[7] = 1;
        assert_eq!(o.owner_of_packet(&p), None, "non-first fragment");
        p[7] = 0;
        p[0] = 0x4f;
        assert_eq!(o.owner_of_packet(&p), None, "options past the end");
    }
}
