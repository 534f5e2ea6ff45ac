//! A user-space impairing router for the lab, for kernels built without `sch_netem` (this one is).
//!
//! It runs inside the router namespace with kernel forwarding turned off: the kernel still owns the router
//! addresses (answers ARP and ping for them), while this process reads every frame on both router interfaces through
//! AF_PACKET sockets, forwards IPv4 between the two subnets (TTL decremented, checksum patched per RFC 1624), and on
//! the way applies netem-like impairments: loss, delay with jitter, reordering and duplication, in both directions.
//! Next-hop MACs are learned from frames seen and resolved with its own ARP requests when unknown.
//!
//! It exits when either interface disappears or the router namespace's mount is removed, so a lab torn down by
//! `ip netns del` never leaves it behind.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};

use crate::sys::packet::PacketSocket;

/// netem-like impairment parameters, parsed from netem's own syntax.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Impairment {
    /// Probability of dropping a frame, 0..=1.
    pub loss: f64,
    /// Added to every frame's forwarding time.
    pub delay: Duration,
    /// Up to this much more or less than `delay`, uniformly.
    pub jitter: Duration,
    /// Probability that a frame skips the delay (netem's `reorder`), 0..=1.
    pub reorder: f64,
    /// Probability of sending a frame twice, 0..=1.
    pub duplicate: f64,
    /// Frames held at most; beyond this, new frames are dropped (netem's `limit`, default 1000).
    pub limit: usize,
}

impl Impairment {
    /// Parses e.g. `"loss 2% delay 1ms 200us reorder 1% duplicate 0.1% limit 5000"`.
    pub fn parse(spec: &str) -> anyhow::Result<Impairment> {
        let mut imp = Impairment { limit: 1000, ..Default::default() };
        let words: Vec<&str> = spec.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            let key = words[i];
            let arg = |j: usize| words.get(j).copied().with_context(|| format!("{key} needs a value"));
            match key {
                "loss" => {
                    // netem also accepts "loss random P".
                    if words.get(i + 1) == Some(&"random") {
                        i += 1;
                    }
                    imp.loss = parse_percent(arg(i + 1)?)?;
                    i += 2;
                }
                "delay" => {
                    imp.delay = parse_duration(arg(i + 1)?)?;
                    i += 2;
                    if let Some(j) = words.get(i).and_then(|w| parse_duration(w).ok()) {
                        imp.jitter = j;
                        i += 1;
                    }
                }
                "reorder" => {
                    imp.reorder = parse_percent(arg(i + 1)?)?;
                    i += 2;
                }
                "duplicate" => {
                    imp.duplicate = parse_percent(arg(i + 1)?)?;
                    i += 2;
                }
                "limit" => {
                    imp.limit = arg(i + 1)?.parse().context("limit")?;
                    i += 2;
                }
                w => bail!("unsupported impairment {w:?} (supported: loss, delay [jitter], reorder, duplicate, limit)"),
            }
        }
        if imp.reorder > 0.0 && imp.delay.is_zero() {
            bail!("reorder needs a delay (as in netem)");
        }
        Ok(imp)
    }
}

fn parse_percent(s: &str) -> anyhow::Result<f64> {
    let v: f64 = s.strip_suffix('%').unwrap_or(s).parse().with_context(|| format!("bad percentage {s:?}"))?;
    if !(0.0..=100.0).contains(&v) {
        bail!("percentage {s:?} out of range");
    }
    Ok(v / 100.0)
}

fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let (num, mult_us) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        bail!("duration {s:?} needs a unit (us, ms, s)")
    };
    let v: f64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
    if !(0.0..=10e6).contains(&(v * mult_us)) {
        bail!("duration {s:?} out of range");
    }
    Ok(Duration::from_micros((v * mult_us) as u64))
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;

/// One router interface: its AF_PACKET socket, addresses and the neighbours seen on it.
struct Port {
    name: String,
    sock: PacketSocket,
    mac: [u8; 6],
    addr: Ipv4Addr,
    prefix: u8,
    neighbours: HashMap<Ipv4Addr, [u8; 6]>,
    /// Frames waiting for a neighbour's MAC, and when we last asked for it.
    waiting: HashMap<Ipv4Addr, (Instant, Vec<Vec<u8>>)>,
}

impl Port {
    fn open(name: &str, addr: Ipv4Addr, prefix: u8) -> anyhow::Result<Port> {
        // Best effort inside: not seeing our own transmissions saves work; a big buffer rides out bursts.
        let sock = PacketSocket::open(name, 8 << 20).with_context(|| format!("AF_PACKET socket on {name}"))?;
        let mac_text = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))?;
        let mac = parse_mac(mac_text.trim()).with_context(|| format!("MAC of {name}"))?;
        Ok(Port {
            name: name.to_string(),
            sock,
            mac,
            addr,
            prefix,
            neighbours: HashMap::new(),
            waiting: HashMap::new(),
        })
    }

    fn on_link(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }

    fn raw(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.sock.as_raw_fd()
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.sock.recv(buf)
    }

    /// A full socket buffer is a drop, as a full qdisc would be.
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.sock.send(frame)
    }

    /// RFC 826 request for `target`, from this port's address.
    fn send_arp_request(&self, target: Ipv4Addr) -> io::Result<()> {
        let mut f = [0u8; 42];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&self.mac);
        f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
        f[14..16].copy_from_slice(&1u16.to_be_bytes());
        f[16..18].copy_from_slice(&ETH_P_IP.to_be_bytes());
        f[18] = 6;
        f[19] = 4;
        f[20..22].copy_from_slice(&1u16.to_be_bytes());
        f[22..28].copy_from_slice(&self.mac);
        f[28..32].copy_from_slice(&self.addr.octets());
        f[38..42].copy_from_slice(&target.octets());
        self.send(&f)
    }

    /// Sends an IPv4 frame to `next_hop`, resolving it first if needed (frames wait, 64 at most per neighbour).
    fn transmit(&mut self, next_hop: Ipv4Addr, mut frame: Vec<u8>, now: Instant) -> io::Result<()> {
        if let Some(mac) = self.neighbours.get(&next_hop) {
            frame[0..6].copy_from_slice(mac);
            frame[6..12].copy_from_slice(&self.mac);
            return self.send(&frame);
        }
        let ask = match self.waiting.get_mut(&next_hop) {
            Some((asked, q)) => {
                if q.len() < 64 {
                    q.push(frame);
                }
                if now.duration_since(*asked) > Duration::from_millis(200) {
                    *asked = now;
                    true
                } else {
                    false
                }
            }
            None => {
                self.waiting.insert(next_hop, (now, vec![frame]));
                true
            }
        };
        if ask {
            self.send_arp_request(next_hop)?;
        }
        Ok(())
    }

    /// Learns `ip -> mac` and flushes frames that were waiting for it.
    fn learn(&mut self, ip: Ipv4Addr, mac: [u8; 6]) -> io::Result<()> {
        if !self.on_link(ip) || ip == self.addr || mac[0] & 1 != 0 {
            return Ok(());
        }
        self.neighbours.insert(ip, mac);
        if let Some((_, q)) = self.waiting.remove(&ip) {
            for mut frame in q {
                frame[0..6].copy_from_slice(&mac);
                frame[6..12].copy_from_slice(&self.mac);
                self.send(&frame)?;
            }
        }
        Ok(())
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// A frame held for later, ordered by due time then arrival (so equal delays keep their order).
struct Held {
    due: Instant,
    seq: u64,
    out_port: usize,
    next_hop: Ipv4Addr,
    frame: Vec<u8>,
}
impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

/// Decrements the TTL and patches the header checksum incrementally (RFC 1624 eqn. 3). False if the TTL ran out.
fn decrement_ttl(ip: &mut [u8]) -> bool {
    if ip[8] <= 1 {
        return false;
    }
    let old = u16::from_be_bytes([ip[8], ip[9]]);
    ip[8] -= 1;
    let new = u16::from_be_bytes([ip[8], ip[9]]);
    let hc = u16::from_be_bytes([ip[10], ip[11]]);
    // HC' = ~(~HC + ~m + m')
    let mut sum = (!hc) as u32 + (!old) as u32 + new as u32;
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    true
}

/// Runs the impairing router between `ports` (interface, address, prefix) until an interface or `netns_mount`
/// disappears. Called by the hidden `xdptcp lab netem-router` command inside the router namespace.
/// `ready` is called once both sockets are open.
pub fn run_router(
    ports: [(&str, Ipv4Addr, u8); 2],
    imp: &Impairment,
    netns_mount: &str,
    ready: &dyn Fn(),
) -> anyhow::Result<()> {
    let mut ports = [Port::open(ports[0].0, ports[0].1, ports[0].2)?, Port::open(ports[1].0, ports[1].1, ports[1].2)?];
    ready();
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1),
    );
    let mut heap: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut buf = vec![0u8; 65536];
    let mut last_check = Instant::now();
    loop {
        let now = Instant::now();
        if now.duration_since(last_check) > Duration::from_millis(200) {
            last_check = now;
            if !std::path::Path::new(netns_mount).exists() {
                return Ok(());
            }
        }
        // Release what is due.
        while heap.peek().is_some_and(|h| h.0.due <= now) {
            let Reverse(h) = heap.pop().expect("peeked");
            ports[h.out_port].transmit(h.next_hop, h.frame, now).with_context(|| ports[h.out_port].name.clone())?;
        }
        let timeout_ms = match heap.peek() {
            Some(h) => h.0.due.saturating_duration_since(now).as_millis().min(100) as i32,
            None => 100,
        };
        let mut pfd = [
            libc::pollfd { fd: ports[0].raw(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: ports[1].raw(), events: libc::POLLIN, revents: 0 },
        ];
        match crate::sys::poll(&mut pfd, timeout_ms) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("poll"),
        }
        for (i, p) in pfd.iter().enumerate() {
            if p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                // The interface went away (namespace deleted): done.
                return Ok(());
            }
            if p.revents & libc::POLLIN == 0 {
                continue;
            }
            // Bounded batch per wakeup so the other side and the timers get their turn.
            for _ in 0..256 {
                let n = match ports[i].recv(&mut buf) {
                    Ok(Some(n)) => n,
                    Ok(None) => break,
                    Err(_) => return Ok(()),
                };
                let now = Instant::now();
                let frame = &buf[..n];
                if frame.len() < 14 {
                    continue;
                }
                let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
                let src_mac: [u8; 6] = frame[6..12].try_into().expect("6 bytes");
                if ethertype == ETH_P_ARP && frame.len() >= 42 {
                    let spa = Ipv4Addr::new(frame[28], frame[29], frame[30], frame[31]);
                    let sha: [u8; 6] = frame[22..28].try_into().expect("6 bytes");
                    ports[i].learn(spa, sha)?;
                    continue;
                }
                if ethertype != ETH_P_IP || frame.len() < 34 || frame[0..6] != ports[i].mac {
                    continue;
                }
                let src = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
                let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
                ports[i].learn(src, src_mac)?;
                let out = 1 - i;
                if dst == ports[0].addr || dst == ports[1].addr || !ports[out].on_link(dst) {
                    continue; // for the router itself (the kernel answers) or unroutable
                }
                let mut copy = frame.to_vec();
                if !decrement_ttl(&mut copy[14..]) {
                    continue;
                }
                if rng.gen_bool(imp.loss) {
                    continue;
                }
                let copies = if rng.gen_bool(imp.duplicate) { 2 } else { 1 };
                for c in 0..copies {
                    if heap.len() >= imp.limit {
                        break;
                    }
                    let mut delay = imp.delay;
                    if !imp.jitter.is_zero() {
                        let j = imp.jitter.as_micros() as i64;
                        let d = delay.as_micros() as i64 + rng.gen_range(-j..=j);
                        delay = Duration::from_micros(d.max(0) as u64);
                    }
                    // netem's reorder: this frame goes now, overtaking the delayed ones.
                    if rng.gen_bool(imp.reorder) {
                        delay = Duration::ZERO;
                    }
                    seq += 1;
                    let frame = if c + 1 == copies { std::mem::take(&mut copy) } else { copy.clone() };
                    heap.push(Reverse(Held { due: now + delay, seq, out_port: out, next_hop: dst, frame }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_netem_syntax() {
        let i = Impairment::parse("loss 2% delay 1ms reorder 1%").unwrap();
        assert_eq!(i.loss, 0.02);
        assert_eq!(i.delay, Duration::from_millis(1));
        assert_eq!(i.reorder, 0.01);
        assert_eq!(i.limit, 1000);
        let i = Impairment::parse("delay 10ms 2ms loss random 0.5 duplicate 1% limit 50").unwrap();
        assert_eq!(i.jitter, Duration::from_millis(2));
        assert_eq!(i.loss, 0.005);
        assert_eq!(i.duplicate, 0.01);
        assert_eq!(i.limit, 50);
        assert!(Impairment::parse("corrupt 1%").is_err());
        assert!(Impairment::parse("loss").is_err());
        assert!(Impairment::parse("loss 200%").is_err());
        assert!(Impairment::parse("reorder 5%").is_err());
        assert!(Impairment::parse("delay 5").is_err());
        assert_eq!(Impairment::parse("").unwrap(), Impairment { limit: 1000, ..Default::default() });
    }

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        // A 20-byte header with a correct checksum.
        let mut h = [0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 198, 18, 1, 2, 198, 18, 0, 1];
        let csum = checksum(&h);
        h[10..12].copy_from_slice(&csum.to_be_bytes());
        assert!(decrement_ttl(&mut h));
        assert_eq!(h[8], 63);
        assert_eq!(checksum(&h), 0, "header must still sum to zero");
        h[8] = 1;
        assert!(!decrement_ttl(&mut h));
    }

    fn checksum(b: &[u8]) -> u16 {
        let mut s: u32 = b.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:00:00:aa:bb:0c"), Some([2, 0, 0, 0xaa, 0xbb, 0x0c]));
        assert_eq!(parse_mac("02:00"), None);
        assert_eq!(parse_mac("02:00:00:aa:bb:0c:11"), None);
    }
}
