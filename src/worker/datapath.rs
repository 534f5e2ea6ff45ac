//! The per-queue datapath below TCP: frames in and out of the AF_XDP rings, Ethernet, ARP, ping, and next-hop
//! resolution. The TCP engine sits on top: received IPv4 packets are handed to it in place (a slice of the UMEM
//! frame past the Ethernet header), and it writes outgoing packets straight into UMEM frames through the
//! [`PacketSink`] this type implements.

use std::net::Ipv4Addr;

use super::neigh::{Due, Mac, NeighConfig, NeighborCache, Resolve};
use super::proto::{self, Arp, EthHeader, ARP_REPLY, ARP_REQUEST, BROADCAST, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH_HEADER_LEN};
use crate::tcp::{Counter, Counters, PacketSink};
use crate::time::Instant;
use crate::xdp::pool::FramePool;
use crate::xdp::ring::{Desc, XskRings};

/// Frames moved per ring operation.
pub const BATCH: usize = 64;

/// The stack's own place on the link.
#[derive(Clone, Debug)]
pub struct NetConfig {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: Mac,
    /// IP MTU: the largest IPv4 packet the engine may write.
    pub mtu: usize,
}

impl NetConfig {
    fn netmask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len.min(32) as u32)
        }
    }
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.netmask() == u32::from(self.addr) & self.netmask()
    }
    /// The next hop for `dst`: itself if on-link, else the gateway.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.on_link(dst) {
            Some(dst)
        } else {
            self.gateway
        }
    }
}

/// The datapath of one AF_XDP socket.
pub struct Datapath<R: XskRings> {
    rings: R,
    pool: FramePool,
    net: NetConfig,
    neigh: NeighborCache<Desc>,
    /// Frames written and addressed, not yet in the tx ring.
    tx_batch: Vec<Desc>,
    /// Frames in the tx ring or being sent (not yet completed).
    tx_outstanding: usize,
    /// The frame lent to the engine by `buffer()`, awaiting `commit`.
    lent: Option<u64>,
    /// Set when `buffer()` had to refuse (ring or frames exhausted) during this round.
    tx_blocked: bool,
    now: Instant,
    rx_descs: Vec<Desc>,
    comp_addrs: Vec<u64>,
    fill_addrs: Vec<u64>,
    released: Vec<Desc>,
    due: Due<Desc>,
    scratch: Vec<u8>,
    ip_ident: u16,
    fill_size: usize,
    /// Datapath counters since the last `take_counters` (folded into the engine's by the worker).
    counters: Counters,
}

impl<R: XskRings> Datapath<R> {
    /// `fill_size` is the fill ring's size: the datapath keeps that many frames posted for reception.
    pub fn new(rings: R, net: NetConfig, fill_size: usize, neigh: NeighConfig) -> anyhow::Result<Datapath<R>> {
        let cap = rings.frame_capacity();
        if net.mtu + ETH_HEADER_LEN > cap {
            anyhow::bail!("MTU {} does not fit a UMEM frame ({} bytes of data)", net.mtu, cap);
        }
        let pool = FramePool::new(rings.frame_addrs(), rings.frame_size());
        Ok(Datapath {
            rings,
            pool,
            net,
            neigh: NeighborCache::new(neigh),
            tx_batch: Vec::with_capacity(4 * BATCH),
            tx_outstanding: 0,
            lent: None,
            tx_blocked: false,
            now: Instant::ZERO,
            rx_descs: vec![Desc::default(); BATCH],
            comp_addrs: vec![0; 4 * BATCH],
            fill_addrs: Vec::with_capacity(fill_size),
            released: Vec::new(),
            due: Due::default(),
            scratch: Vec::with_capacity(2048),
            ip_ident: 0,
            fill_size,
            counters: Counters::default(),
        })
    }

    pub fn net(&self) -> &NetConfig {
        &self.net
    }
    pub fn rings(&self) -> &R {
        &self.rings
    }
    pub fn rings_mut(&mut self) -> &mut R {
        &mut self.rings
    }
    pub fn frames_in_use(&self) -> usize {
        self.pool.in_use()
    }
    pub fn tx_outstanding(&self) -> usize {
        self.tx_outstanding + self.tx_batch.len()
    }
    /// The MAC the neighbour cache has for `ip`.
    pub fn neighbour(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.neigh.get(ip)
    }

    /// Sets the time used by `commit` (the sink API carries none).
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// Moves the datapath counters into `into` and resets them.
    pub fn take_counters(&mut self, into: &mut Counters) {
        into.merge(&self.counters);
        self.counters = Counters::default();
        into.set(Counter::FramesInUse, self.pool.in_use() as u64);
    }

    /// Takes back frames the kernel finished sending.
    pub fn reclaim(&mut self) -> usize {
        let mut total = 0;
        loop {
            let n = self.rings.comp_consume(&mut self.comp_addrs);
            for &a in &self.comp_addrs[..n] {
                self.pool.put(a);
            }
            total += n;
            if n < self.comp_addrs.len() {
                break;
            }
        }
        self.tx_outstanding = self.tx_outstanding.saturating_sub(total);
        total
    }

    /// Keeps the fill ring near full so the kernel always has frames to receive into.
    pub fn refill(&mut self) -> usize {
        let free = self.rings.fill_free();
        if free == self.fill_size {
            // The kernel consumed every posted frame: receptions may have been dropped meanwhile.
            self.counters.inc(Counter::FillRingEmpty);
        }
        let n = free.min(self.pool.free());
        if n == 0 {
            return 0;
        }
        self.fill_addrs.clear();
        for _ in 0..n {
            self.fill_addrs.push(self.pool.take().expect("counted"));
        }
        let done = self.rings.fill_produce(&self.fill_addrs);
        for &a in &self.fill_addrs[done..] {
            self.pool.put(a);
        }
        if done > 0 && self.rings.fill_needs_wakeup() {
            let _ = self.rings.rx_wakeup();
        }
        done
    }

    /// Receives one batch: ARP and ping are answered here, other IPv4 packets for our address go to `deliver` (the
    /// engine) as a slice of the frame. Returns the number of frames taken from the rx ring.
    pub fn receive(&mut self, now: Instant, deliver: &mut dyn FnMut(Instant, &[u8])) -> usize {
        self.now = now;
        let n = self.rings.rx_consume(&mut self.rx_descs);
        self.counters.add(Counter::RxFrames, n as u64);
        for i in 0..n {
            let d = self.rx_descs[i];
            self.receive_one(now, d, deliver);
            self.pool.put(d.addr);
        }
        n
    }

    fn receive_one(&mut self, now: Instant, d: Desc, deliver: &mut dyn FnMut(Instant, &[u8])) {
        // SAFETY: the frame came out of the rx ring; the worker owns it until it is returned to the pool below.
        let frame = unsafe { self.rings.frame(d.addr, d.len as usize) };
        let Some(eth) = proto::parse_eth(frame) else {
            self.counters.inc(Counter::RxMalformed);
            return;
        };
        if eth.dst != self.net.mac && eth.dst != BROADCAST {
            self.counters.inc(Counter::RxNotOurs);
            return;
        }
        let payload = &frame[eth.header_len..];
        match eth.ethertype {
            ETHERTYPE_ARP => match proto::parse_arp(payload) {
                Some(arp) => self.handle_arp(now, &eth, arp),
                None => self.counters.inc(Counter::RxMalformed),
            },
            ETHERTYPE_IPV4 => {
                // The XDP program only steers our address here; check anyway (promiscuous or shared setups).
                match proto::ipv4_dst(payload) {
                    Some(dst) if dst == self.net.addr => {}
                    Some(_) => {
                        self.counters.inc(Counter::RxNotOurs);
                        return;
                    }
                    None => {
                        self.counters.inc(Counter::RxMalformed);
                        return;
                    }
                }
                if payload.len() > 9 && payload[9] == proto::IPPROTO_ICMP {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(payload);
                    self.handle_icmp(now);
                } else {
                    self.counters.inc(Counter::HandOffs);
                    deliver(now, payload);
                }
            }
            _ => self.counters.inc(Counter::RxNotOurs),
        }
    }

    /// RFC 826 reception: merge the sender into the cache (create it if the packet is for us), answer requests for
    /// our address.
    fn handle_arp(&mut self, now: Instant, _eth: &EthHeader, arp: Arp) {
        let for_us = arp.target_ip == self.net.addr;
        match arp.op {
            ARP_REQUEST => self.counters.inc(Counter::ArpRequestsIn),
            ARP_REPLY => self.counters.inc(Counter::ArpRepliesIn),
            _ => {
                self.counters.inc(Counter::RxMalformed);
                return;
            }
        }
        if arp.sender_ip == self.net.addr && arp.sender_mac != self.net.mac {
            tracing::warn!(
                "address conflict: {} claims {} (RFC 5227)",
                crate::xdp::iface::format_mac(&arp.sender_mac),
                arp.sender_ip
            );
            return;
        }
        // Senders 0.0.0.0 (RFC 5227 probes) and off-link ones are never cached; multicast MACs neither.
        if !arp.sender_ip.is_unspecified() && self.net.on_link(arp.sender_ip) && arp.sender_mac[0] & 1 == 0 {
            let mut released = std::mem::take(&mut self.released);
            self.neigh.learn(now, arp.sender_ip, arp.sender_mac, for_us, &mut released);
            for d in released.drain(..) {
                self.address_and_queue(d, arp.sender_mac);
            }
            self.released = released;
        }
        if arp.op == ARP_REQUEST && for_us {
            let reply = Arp {
                op: ARP_REPLY,
                sender_mac: self.net.mac,
                sender_ip: self.net.addr,
                target_mac: arp.sender_mac,
                target_ip: arp.sender_ip,
            };
            if self.send_arp(arp.sender_mac, &reply) {
                self.counters.inc(Counter::ArpRepliesOut);
            }
        }
    }

    fn handle_icmp(&mut self, now: Instant) {
        self.counters.inc(Counter::InReceives);
        self.counters.inc(Counter::InMsgs);
        let packet = std::mem::take(&mut self.scratch);
        let head = match proto::parse_ipv4(&packet) {
            Some(h) if !h.fragmented => h,
            _ => {
                self.counters.inc(Counter::InHdrErrors);
                self.scratch = packet;
                return;
            }
        };
        let Some(next_hop) = self.net.next_hop(head.src) else {
            self.scratch = packet;
            return;
        };
        let Some(addr) = self.pool.take() else {
            self.counters.inc(Counter::TxNoBuffer);
            self.scratch = packet;
            return;
        };
        self.ip_ident = self.ip_ident.wrapping_add(1);
        let cap = self.net.mtu + ETH_HEADER_LEN;
        // SAFETY: the frame was just taken from the pool; the worker owns it.
        let buf = unsafe { self.rings.frame_mut(addr, cap) };
        match proto::icmp_echo_reply(&packet, &head, self.ip_ident, &mut buf[ETH_HEADER_LEN..]) {
            Ok(len) => {
                self.counters.inc(Counter::InEchos);
                self.counters.inc(Counter::InDelivers);
                self.counters.inc(Counter::OutMsgs);
                self.counters.inc(Counter::OutEchoReps);
                self.route(now, next_hop, Desc { addr, len: (ETH_HEADER_LEN + len) as u32 });
            }
            Err(proto::IcmpError::NotEcho) => {
                self.counters.inc(Counter::InDelivers);
                self.pool.put(addr);
            }
            Err(_) => {
                self.counters.inc(Counter::InErrs);
                self.pool.put(addr);
            }
        }
        self.scratch = packet;
    }

    /// Broadcasts a gratuitous ARP announcing our address (RFC 5227 §3), so neighbours update stale entries.
    pub fn announce(&mut self) {
        let a = Arp {
            op: ARP_REQUEST,
            sender_mac: self.net.mac,
            sender_ip: self.net.addr,
            target_mac: [0; 6],
            target_ip: self.net.addr,
        };
        if self.send_arp(BROADCAST, &a) {
            self.counters.inc(Counter::ArpRequestsOut);
        }
    }

    fn send_arp_request(&mut self, target: Ipv4Addr, to: Mac) {
        let a = Arp { op: ARP_REQUEST, sender_mac: self.net.mac, sender_ip: self.net.addr, target_mac: [0; 6], target_ip: target };
        if self.send_arp(to, &a) {
            self.counters.inc(Counter::ArpRequestsOut);
        }
    }

    fn send_arp(&mut self, to: Mac, arp: &Arp) -> bool {
        let Some(addr) = self.pool.take() else {
            self.counters.inc(Counter::TxNoBuffer);
            return false;
        };
        // 60 bytes: the minimum Ethernet frame without FCS; the tail is zero padding.
        let len = 60;
        // SAFETY: the frame was just taken from the pool; the worker owns it.
        let buf = unsafe { self.rings.frame_mut(addr, len) };
        buf.fill(0);
        proto::write_eth(buf, to, self.net.mac, ETHERTYPE_ARP);
        proto::write_arp(&mut buf[ETH_HEADER_LEN..], arp);
        self.tx_batch.push(Desc { addr, len: len as u32 });
        true
    }

    /// Sends an IPv4 frame (Ethernet header still to write) to `next_hop`, resolving it if needed.
    fn route(&mut self, now: Instant, next_hop: Ipv4Addr, d: Desc) {
        match self.neigh.resolve(now, next_hop, d) {
            Resolve::Send(mac, d) => self.address_and_queue(d, mac),
            Resolve::Queued { request } => {
                if request {
                    self.send_arp_request(next_hop, BROADCAST);
                }
            }
            Resolve::Dropped(d) => {
                self.counters.inc(Counter::ArpQueueDrops);
                self.pool.put(d.addr);
            }
        }
    }

    fn address_and_queue(&mut self, d: Desc, mac: Mac) {
        // SAFETY: the frame is owned by the worker (lent, queued for ARP, or just written).
        let buf = unsafe { self.rings.frame_mut(d.addr, ETH_HEADER_LEN) };
        proto::write_eth(buf, mac, self.net.mac, ETHERTYPE_IPV4);
        self.tx_batch.push(d);
    }

    /// ARP retransmissions, probes and failures due by `now`.
    pub fn poll_neighbours(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        self.neigh.poll(now, &mut due);
        for &ip in &due.broadcast {
            self.send_arp_request(ip, BROADCAST);
        }
        for &(ip, mac) in &due.unicast {
            self.send_arp_request(ip, mac);
        }
        for d in due.failed.drain(..) {
            self.pool.put(d.addr);
        }
        self.counters.add(Counter::ArpResolveFails, due.failed_entries);
        self.due = due;
    }

    /// When ARP next needs attention.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.neigh.next_deadline()
    }

    /// Starts a transmit round: `buffer()` refuses once a batch is pending so the caller flushes between rounds.
    pub fn begin_transmit(&mut self) {
        self.tx_blocked = false;
    }
    /// Whether `buffer()` refused during this round (ring or frames exhausted, or a full batch).
    pub fn transmit_blocked(&self) -> bool {
        self.tx_blocked
    }

    /// Moves the tx batch into the tx ring (as much as fits) and kicks the kernel if it asked to be.
    pub fn flush(&mut self) -> usize {
        let mut done = 0;
        if !self.tx_batch.is_empty() {
            let n = self.rings.tx_free().min(self.tx_batch.len());
            if n < self.tx_batch.len() {
                self.counters.inc(Counter::TxRingFull);
            }
            if n > 0 {
                done = self.rings.tx_produce(&self.tx_batch[..n]);
                self.tx_batch.drain(..done);
                self.tx_outstanding += done;
                self.counters.add(Counter::TxFrames, done as u64);
            }
        }
        // Copy mode transmits from inside sendto, a budget at a time: kick while anything is outstanding.
        if self.tx_outstanding > 0 && self.rings.tx_needs_wakeup() {
            let _ = self.rings.tx_wakeup();
        }
        done
    }
}

impl<R: XskRings> PacketSink for Datapath<R> {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        let addr = match self.lent {
            Some(a) => a,
            None => {
                if self.tx_batch.len() >= BATCH {
                    self.tx_blocked = true;
                    return None;
                }
                let Some(a) = self.pool.take() else {
                    self.counters.inc(Counter::TxNoBuffer);
                    self.tx_blocked = true;
                    return None;
                };
                self.lent = Some(a);
                a
            }
        };
        let len = self.net.mtu + ETH_HEADER_LEN;
        // SAFETY: the frame was taken from the pool and is lent to the engine until commit.
        let frame = unsafe { self.rings.frame_mut(addr, len) };
        Some(&mut frame[ETH_HEADER_LEN..])
    }

    fn commit(&mut self, len: usize) {
        let Some(addr) = self.lent.take() else { return };
        if len == 0 || len > self.net.mtu {
            self.pool.put(addr);
            return;
        }
        // SAFETY: the lent frame is still owned by the worker.
        let frame = unsafe { self.rings.frame(addr, ETH_HEADER_LEN + 20) };
        let Some(dst) = proto::ipv4_dst(&frame[ETH_HEADER_LEN..]) else {
            self.pool.put(addr);
            return;
        };
        let d = Desc { addr, len: (ETH_HEADER_LEN + len) as u32 };
        match self.net.next_hop(dst) {
            Some(hop) => self.route(self.now, hop, d),
            None => {
                // Off-link and no gateway: no next hop can be resolved.
                self.counters.inc(Counter::ArpResolveFails);
                self.pool.put(addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdp::ring::fake::FakeRings;

    const OUR_MAC: Mac = [2, 0, 0, 0, 0, 1];
    const GW_MAC: Mac = [2, 0, 0, 0, 0, 0xfe];
    const OUR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);

    fn dp() -> Datapath<FakeRings> {
        let rings = FakeRings::new(64, 2048, 16);
        let net = NetConfig { addr: OUR, prefix_len: 24, gateway: Some(GW), mac: OUR_MAC, mtu: 1500 };
        let mut d = Datapath::new(rings, net, 16, NeighConfig::default()).unwrap();
        d.refill();
        d
    }

    fn arp_frame(op: u16, smac: Mac, sip: Ipv4Addr, tip: Ipv4Addr, dst: Mac) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        proto::write_eth(&mut f, dst, smac, ETHERTYPE_ARP);
        let a = Arp { op, sender_mac: smac, sender_ip: sip, target_mac: [0; 6], target_ip: tip };
        proto::write_arp(&mut f[14..], &a);
        f
    }

    #[test]
    fn answers_arp_for_our_address_only() {
        let mut d = dp();
        d.rings_mut().deliver(&arp_frame(ARP_REQUEST, GW_MAC, GW, OUR, BROADCAST));
        d.rings_mut().deliver(&arp_frame(ARP_REQUEST, GW_MAC, GW, Ipv4Addr::new(198, 18, 0, 7), BROADCAST));
        let mut delivered = 0;
        assert_eq!(d.receive(Instant::from_secs(1), &mut |_, _| delivered += 1), 2);
        d.flush();
        let out = d.rings_mut().transmit();
        assert_eq!(out.len(), 1, "one reply");
        let eth = proto::parse_eth(&out[0]).unwrap();
        assert_eq!((eth.dst, eth.src, eth.ethertype), (GW_MAC, OUR_MAC, ETHERTYPE_ARP));
        let a = proto::parse_arp(&out[0][14..]).unwrap();
        assert_eq!((a.op, a.sender_ip, a.sender_mac, a.target_ip), (ARP_REPLY, OUR, OUR_MAC, GW));
        assert_eq!(d.neighbour(GW), Some(GW_MAC), "RFC 826: the requester is cached");
        assert_eq!(delivered, 0);
        d.reclaim();
        let mut c = Counters::default();
        d.take_counters(&mut c);
        assert_eq!(c.get(Counter::ArpRequestsIn), 2);
        assert_eq!(c.get(Counter::ArpRepliesOut), 1);
        assert_eq!(c.get(Counter::TxFrames), 1);
    }

    fn ip_packet(dst: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1];
        p.extend(dst.octets());
        let c = proto::internet_checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.resize(40, 0);
        p
    }

    fn engine_send(d: &mut Datapath<FakeRings>, pkt: &[u8]) {
        let buf = d.buffer().expect("buffer");
        assert!(buf.len() >= 1500);
        buf[..pkt.len()].copy_from_slice(pkt);
        d.commit(pkt.len());
    }

    #[test]
    fn off_link_goes_via_gateway_after_arp() {
        let mut d = dp();
        d.set_now(Instant::from_secs(1));
        d.begin_transmit();
        let client = Ipv4Addr::new(198, 18, 1, 2);
        engine_send(&mut d, &ip_packet(client));
        engine_send(&mut d, &ip_packet(client));
        d.flush();
        let out = d.rings_mut().transmit();
        assert_eq!(out.len(), 1, "only the ARP request goes out while resolving");
        let a = proto::parse_arp(&out[0][14..]).unwrap();
        assert_eq!((a.op, a.target_ip), (ARP_REQUEST, GW));
        // The reply releases both packets, addressed to the gateway.
        d.reclaim();
        d.refill();
        let mut reply = arp_frame(ARP_REPLY, GW_MAC, GW, OUR, OUR_MAC);
        proto::write_arp(
            &mut reply[14..],
            &Arp { op: ARP_REPLY, sender_mac: GW_MAC, sender_ip: GW, target_mac: OUR_MAC, target_ip: OUR },
        );
        d.rings_mut().deliver(&reply);
        d.receive(Instant::from_secs(1), &mut |_, _| {});
        d.flush();
        let out = d.rings_mut().transmit();
        assert_eq!(out.len(), 2);
        for f in &out {
            let eth = proto::parse_eth(f).unwrap();
            assert_eq!((eth.dst, eth.src, eth.ethertype), (GW_MAC, OUR_MAC, ETHERTYPE_IPV4));
            assert_eq!(f.len(), 14 + 40);
        }
        // Known now: sent at once.
        d.reclaim();
        engine_send(&mut d, &ip_packet(client));
        d.flush();
        assert_eq!(d.rings_mut().transmit().len(), 1);
        d.reclaim();
        assert_eq!(d.frames_in_use(), 16, "only the fill ring holds frames");
    }

    #[test]
    fn unresolved_next_hop_fails_and_frees_frames() {
        let mut d = dp();
        d.set_now(Instant::from_secs(1));
        engine_send(&mut d, &ip_packet(Ipv4Addr::new(198, 18, 0, 9)));
        for s in 2..6 {
            d.poll_neighbours(Instant::from_secs(s));
            d.flush();
            d.rings_mut().transmit();
            d.reclaim();
        }
        let mut c = Counters::default();
        d.take_counters(&mut c);
        assert_eq!(c.get(Counter::ArpRequestsOut), 3);
        assert_eq!(c.get(Counter::ArpResolveFails), 1);
        assert_eq!(d.frames_in_use(), 16);
    }

    #[test]
    fn tcp_is_handed_over_in_place_and_foreign_frames_are_dropped() {
        let mut d = dp();
        let mut f = vec![0u8; 14];
        proto::write_eth(&mut f, OUR_MAC, GW_MAC, ETHERTYPE_IPV4);
        let mut p = ip_packet(OUR);
        p[12..16].copy_from_slice(&[198, 18, 1, 2]);
        f.extend(&p);
        d.rings_mut().deliver(&f);
        let mut other = f.clone();
        other[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
        d.rings_mut().deliver(&other);
        d.rings_mut().deliver(&f[..10]);
        let mut got = Vec::new();
        d.receive(Instant::from_secs(1), &mut |_, pkt| got.push(pkt.to_vec()));
        assert_eq!(got, vec![p]);
        let mut c = Counters::default();
        d.take_counters(&mut c);
        assert_eq!(c.get(Counter::RxNotOurs), 1);
        assert_eq!(c.get(Counter::RxMalformed), 1);
        assert_eq!(c.get(Counter::HandOffs), 1);
    }

    #[test]
    fn buffer_refuses_when_frames_run_out() {
        let rings = FakeRings::new(4, 2048, 64);
        let net = NetConfig { addr: OUR, prefix_len: 24, gateway: None, mac: OUR_MAC, mtu: 1500 };
        let mut d = Datapath::new(rings, net, 64, NeighConfig::default()).unwrap();
        d.refill();
        d.begin_transmit();
        assert!(d.buffer().is_none(), "every frame is in the fill ring");
        assert!(d.transmit_blocked());
        let mut c = Counters::default();
        d.take_counters(&mut c);
        assert_eq!(c.get(Counter::TxNoBuffer), 1);
    }
}
