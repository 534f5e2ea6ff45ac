//! The per-queue datapath below TCP: frames in and out of the AF_XDP rings, Ethernet, ARP, ping, and next-hop
//! resolution. The TCP engine sits on top: received IPv4 packets are handed to it in place (a slice of the UMEM
//! frame past the Ethernet header), and it writes outgoing packets straight into UMEM frames through the
//! [`PacketSink`] this type implements.

use std::net::Ipv4Addr;

use super::neigh::{Due, Mac, NeighConfig, NeighborCache, Resolve};
use crate::tcp::{Counter, Counters, PacketSink};
use crate::time::Instant;
use crate::wire::ethernet::{HEADER_LEN as ETH_HEADER_LEN, MIN_FRAME_LEN, VLAN_TAG_LEN};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::{
    ArpOperation, ArpRepr, EtherType, EthernetAddress, EthernetRepr, Icmpv4Repr, IpProtocol, Ipv4Repr, WireError,
};
use crate::xdp::pool::FramePool;
use crate::xdp::{Desc, XskRings};

/// Frames moved per ring operation.
pub const BATCH: usize = 64;
/// Most `sendto` kicks per flush.
const MAX_TX_KICKS: usize = 64;

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
    /// The directed broadcast of our subnet (none for /31 and /32, RFC 3021).
    fn subnet_broadcast(&self) -> Option<Ipv4Addr> {
        (self.prefix_len < 31).then(|| Ipv4Addr::from(u32::from(self.addr) | !self.netmask()))
    }
    /// A source no real peer can have, as Linux's `ip_route_input_slow` judges it (a "martian"): 0/8, 127/8
    /// (`route_localnet=0`), multicast, the limited or our subnet's broadcast (RFC 1122 §3.2.1.3), or an address of
    /// ours (a LAND attack). Answering one would send a SYN-ACK, RST or echo reply to ourselves or to a whole subnet.
    pub fn is_martian_source(&self, src: Ipv4Addr) -> bool {
        src.octets()[0] == 0
            || src.is_loopback()
            || src.is_multicast()
            || src.is_broadcast()
            || src == self.addr
            || Some(src) == self.subnet_broadcast()
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

/// Shares what one worker's ARP learns with the other workers of the interface: an ARP reply lands on whichever
/// queue the neighbour's hash picks, not necessarily on the queue of the worker that asked.
pub struct NeighbourShare {
    peers: Vec<crossbeam::channel::Sender<(Ipv4Addr, Mac)>>,
    inbox: crossbeam::channel::Receiver<(Ipv4Addr, Mac)>,
}

impl NeighbourShare {
    /// One share per worker, all connected. Bounded channels: a slow worker loses updates, never blocks a fast one
    /// (it will ask ARP itself).
    pub fn mesh(workers: usize) -> Vec<NeighbourShare> {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..workers).map(|_| crossbeam::channel::bounded(1024)).unzip();
        rxs.into_iter()
            .enumerate()
            .map(|(me, inbox)| NeighbourShare {
                peers: txs.iter().enumerate().filter(|(i, _)| *i != me).map(|(_, t)| t.clone()).collect(),
                inbox,
            })
            .collect()
    }

    fn publish(&self, ip: Ipv4Addr, mac: Mac) {
        for p in &self.peers {
            let _ = p.try_send((ip, mac));
        }
    }
}

/// The datapath of one AF_XDP socket.
pub struct Datapath<R: XskRings> {
    share: Option<NeighbourShare>,
    rings: R,
    pool: FramePool,
    net: NetConfig,
    /// Further addresses of ours on the link (a load generator's extra source addresses): ARP is answered and
    /// IPv4 accepted for them as for `net.addr`.
    aliases: Vec<Ipv4Addr>,
    neigh: NeighborCache<Desc>,
    /// Frames written and addressed, not yet in the tx ring.
    tx_batch: Vec<Desc>,
    /// Frames in the tx ring or being sent (not yet completed).
    tx_outstanding: usize,
    /// The frame lent to the engine by `buffer()`, awaiting `commit`.
    lent: Option<u64>,
    now: Instant,
    rx_descs: Vec<Desc>,
    comp_addrs: Vec<u64>,
    fill_addrs: Vec<u64>,
    released: Vec<Desc>,
    due: Due<Desc>,
    /// A copy of a received ping (its reply is built in another frame while the request's frame is borrowed).
    scratch: Vec<u8>,
    ip_ident: u16,
    fill_size: usize,
    /// The fill ring has been filled once (an empty ring before that is not a starvation).
    primed: bool,
    /// Datapath counters since the last `take_counters` (folded into the engine's by the worker).
    counters: Counters,
    /// The 802.1Q VLAN the stack lives on (`serve --vlan`): only frames tagged with it are taken, and every frame
    /// sent carries it. `None`: untagged frames only.
    vlan: Option<u16>,
    /// When the last address-conflict warning was logged (they are rate-limited: one per `CONFLICT_LOG_EVERY`).
    conflict_logged: Option<Instant>,
}

/// At most one "address conflict" log line per this long; the rest are only counted (ArpAddrConflicts).
const CONFLICT_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl<R: XskRings> Datapath<R> {
    /// `fill_size` is the fill ring's size: the datapath keeps that many frames posted for reception.
    pub fn new(rings: R, net: NetConfig, fill_size: usize, neigh: NeighConfig) -> anyhow::Result<Datapath<R>> {
        let cap = rings.frame_capacity();
        if net.mtu + ETH_HEADER_LEN > cap {
            anyhow::bail!("MTU {} does not fit a UMEM frame ({} bytes of data)", net.mtu, cap);
        }
        let pool = FramePool::new(rings.frame_addrs(), rings.frame_size());
        let mut neigh = NeighborCache::new(neigh);
        if let Some(gw) = net.gateway {
            // Every off-link reply needs it: spoofed on-link sources must not push it out (review M3).
            neigh.pin(gw);
        }
        Ok(Datapath {
            share: None,
            rings,
            pool,
            net,
            aliases: Vec::new(),
            neigh,
            tx_batch: Vec::with_capacity(4 * BATCH),
            tx_outstanding: 0,
            lent: None,
            now: Instant::ZERO,
            rx_descs: vec![Desc::default(); BATCH],
            comp_addrs: vec![0; 4 * BATCH],
            fill_addrs: Vec::with_capacity(fill_size),
            released: Vec::new(),
            due: Due::default(),
            scratch: Vec::with_capacity(2048),
            ip_ident: 0,
            fill_size,
            primed: false,
            counters: Counters::default(),
            vlan: None,
            conflict_logged: None,
        })
    }

    /// Puts the stack on 802.1Q VLAN `vid` (1..=4094): frames with another tag, or none, are dropped (counted as
    /// RxVlanMismatch), and replies carry the same tag. The tag takes 4 bytes of each frame, so the MTU must
    /// still fit.
    pub fn set_vlan(&mut self, vid: Option<u16>) -> anyhow::Result<()> {
        if let Some(v) = vid {
            if !(1..=4094).contains(&v) {
                anyhow::bail!("VLAN id {v} is not in 1..=4094 (IEEE 802.1Q reserves 0 and 4095)");
            }
            if self.net.mtu + ETH_HEADER_LEN + VLAN_TAG_LEN > self.rings.frame_capacity() {
                anyhow::bail!("MTU {} plus a VLAN tag does not fit a UMEM frame", self.net.mtu);
            }
        }
        self.vlan = vid;
        Ok(())
    }

    /// The configured VLAN id.
    pub fn vlan(&self) -> Option<u16> {
        self.vlan
    }

    /// The Ethernet header length of every frame we send (14, or 18 with our VLAN tag).
    fn l2_len(&self) -> usize {
        if self.vlan.is_some() {
            ETH_HEADER_LEN + VLAN_TAG_LEN
        } else {
            ETH_HEADER_LEN
        }
    }

    fn eth_header(&self, to: Mac, ethertype: EtherType) -> EthernetRepr {
        EthernetRepr { src: EthernetAddress(self.net.mac), dst: EthernetAddress(to), ethertype, vlan: self.vlan }
    }

    /// Connects this datapath to the other workers' neighbour caches.
    pub fn share_neighbours(&mut self, share: NeighbourShare) {
        self.share = Some(share);
    }

    /// Takes in what other workers learned: updates existing entries (and releases packets waiting for them).
    pub fn absorb_neighbours(&mut self, now: Instant) {
        let Some(share) = &self.share else { return };
        let mut learned = Vec::new();
        // Bounded by the channel capacity.
        while let Ok(x) = share.inbox.try_recv() {
            learned.push(x);
        }
        for (ip, mac) in learned {
            let mut released = std::mem::take(&mut self.released);
            self.neigh.learn(now, ip, mac, false, &mut released);
            for d in released.drain(..) {
                self.address_and_queue(d, mac);
            }
            self.released = released;
        }
    }

    /// Makes `ip` ours too (see `aliases`).
    pub fn add_alias(&mut self, ip: Ipv4Addr) {
        if ip != self.net.addr && !self.aliases.contains(&ip) {
            self.aliases.push(ip);
        }
    }

    fn is_ours(&self, ip: Ipv4Addr) -> bool {
        ip == self.net.addr || self.aliases.contains(&ip)
    }

    pub fn net(&self) -> &NetConfig {
        &self.net
    }
    pub fn rings(&self) -> &R {
        &self.rings
    }
    /// The IPv4 packet of `len` bytes written into the frame lent by `buffer()`, before `commit` takes it.
    pub fn lent_packet(&self, len: usize) -> Option<&[u8]> {
        let l2 = self.l2_len();
        self.rings.frame(self.lent?, l2 + len).get(l2..)
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
        if free == self.fill_size && self.primed {
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
        self.primed |= done > 0;
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
        let frame = self.rings.frame(d.addr, d.len as usize);
        let Ok((eth, offset)) = EthernetRepr::parse(frame) else {
            self.counters.inc(Counter::RxMalformed);
            return;
        };
        if eth.dst.0 != self.net.mac && !eth.dst.is_broadcast() {
            self.counters.inc(Counter::RxNotOurs);
            return;
        }
        // VLAN isolation (review M4): another VLAN's frames are not ours even if the BPF program let one through.
        if eth.vlan_id() != self.vlan {
            self.counters.inc(Counter::RxVlanMismatch);
            return;
        }
        let payload = &frame[offset..];
        match eth.ethertype {
            EtherType::Arp => match ArpRepr::parse(payload) {
                Ok(arp) => self.handle_arp(now, arp),
                Err(_) => self.counters.inc(Counter::RxMalformed),
            },
            EtherType::Ipv4 => {
                // The XDP program only steers our address here; check anyway (promiscuous or shared setups).
                if payload.len() < Ipv4Repr::HEADER_LEN {
                    self.counters.inc(Counter::RxMalformed);
                    return;
                }
                let dst = Ipv4Addr::new(payload[16], payload[17], payload[18], payload[19]);
                if dst != self.net.addr && !self.aliases.contains(&dst) {
                    self.counters.inc(Counter::RxNotOurs);
                    return;
                }
                // Malformed headers are left to the engine and ping code, which count them; only a well-formed
                // header is judged here.
                if let Ok(ip) = Ipv4Packet::new_checked(payload) {
                    let src = ip.src_addr();
                    if self.net.is_martian_source(src) || self.aliases.contains(&src) {
                        self.counters.inc(Counter::InMartianSrc);
                        return;
                    }
                    // Linux's accept_source_route=0 default: source-routed packets are dropped, not answered
                    // along a path the sender chose (RFC 1122 §3.3.5 leaves it to the host; Linux refuses).
                    if ip.has_source_route() {
                        self.counters.inc(Counter::InSrcRouteDrops);
                        return;
                    }
                }
                if payload[9] == u8::from(IpProtocol::Icmp) {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(payload);
                    self.handle_icmp(now);
                } else {
                    // In place: the engine reads the packet straight out of the UMEM frame.
                    self.counters.inc(Counter::RxToEngine);
                    deliver(now, payload);
                }
            }
            _ => self.counters.inc(Counter::RxNotOurs),
        }
    }

    /// RFC 826 reception: merge the sender into the cache (create it if the packet is for us), answer requests for
    /// our address.
    fn handle_arp(&mut self, now: Instant, arp: ArpRepr) {
        let for_us = self.is_ours(arp.target_ip);
        match arp.operation {
            ArpOperation::Request => self.counters.inc(Counter::ArpRequestsIn),
            ArpOperation::Reply => self.counters.inc(Counter::ArpRepliesIn),
        }
        let sender_mac = arp.source_hw.0;
        if arp.source_ip == self.net.addr && sender_mac != self.net.mac {
            // Any on-link host can send these as fast as it likes: count each, log one per CONFLICT_LOG_EVERY.
            self.counters.inc(Counter::ArpAddrConflicts);
            if self.conflict_logged.is_none_or(|t| now.saturating_since(t) >= CONFLICT_LOG_EVERY) {
                self.conflict_logged = Some(now);
                tracing::warn!(
                    "address conflict: {} claims {} (RFC 5227; further ones counted as ArpAddrConflicts)",
                    arp.source_hw,
                    arp.source_ip
                );
            }
            return;
        }
        // Senders 0.0.0.0 (RFC 5227 probes) and off-link ones are never cached; multicast MACs neither.
        if !arp.source_ip.is_unspecified() && self.net.on_link(arp.source_ip) && arp.source_hw.is_unicast() {
            let mut released = std::mem::take(&mut self.released);
            self.neigh.learn(now, arp.source_ip, sender_mac, for_us, &mut released);
            if let Some(share) = &self.share {
                share.publish(arp.source_ip, sender_mac);
            }
            for d in released.drain(..) {
                self.address_and_queue(d, sender_mac);
            }
            self.released = released;
        }
        if arp.operation == ArpOperation::Request && for_us {
            let reply = arp.reply(EthernetAddress(self.net.mac));
            if self.send_arp(sender_mac, &reply) {
                self.counters.inc(Counter::ArpRepliesOut);
            }
        }
    }

    /// Answers an echo request (in `scratch`) with an echo reply carrying the same identifier, sequence number and
    /// data (RFC 792; RFC 1122 §3.2.2.6).
    fn handle_icmp(&mut self, now: Instant) {
        self.counters.inc(Counter::InReceives);
        let packet = std::mem::take(&mut self.scratch);
        self.answer_ping(now, &packet);
        self.scratch = packet;
    }

    fn answer_ping(&mut self, now: Instant, packet: &[u8]) {
        let (ip, icmp) = match Ipv4Repr::parse(packet, true) {
            Ok(v) => v,
            Err(_) => {
                self.counters.inc(Counter::InHdrErrors);
                return;
            }
        };
        self.counters.inc(Counter::InDelivers);
        self.counters.inc(Counter::InMsgs);
        let (ident, seq_no, data) = match Icmpv4Repr::parse(icmp, true) {
            Ok(Icmpv4Repr::EchoRequest { ident, seq_no, data }) => (ident, seq_no, data),
            Ok(Icmpv4Repr::DstUnreachable { .. }) => {
                self.counters.inc(Counter::InDestUnreachs);
                return;
            }
            Ok(_) => return,
            Err(_) => {
                self.counters.inc(Counter::InErrs);
                return;
            }
        };
        self.counters.inc(Counter::InEchos);
        let reply = Icmpv4Repr::EchoReply { ident, seq_no, data };
        let total = Ipv4Repr::HEADER_LEN + reply.buffer_len();
        let Some(next_hop) = self.net.next_hop(ip.src) else { return };
        if total > self.net.mtu {
            return;
        }
        let Some(addr) = self.pool.take() else {
            self.counters.inc(Counter::TxNoBuffer);
            return;
        };
        self.ip_ident = self.ip_ident.wrapping_add(1);
        let header = Ipv4Repr {
            src: self.net.addr,
            dst: ip.src,
            protocol: IpProtocol::Icmp,
            payload_len: reply.buffer_len(),
            ttl: 64,
            tos: 0,
            ident: self.ip_ident,
            dont_fragment: true,
        };
        let l2 = self.l2_len();
        let buf = self.rings.frame_mut(addr, l2 + total);
        let emitted = header.emit(&mut buf[l2..]).and_then(|_| reply.emit(&mut buf[l2 + Ipv4Repr::HEADER_LEN..]));
        if emitted.is_err() {
            self.pool.put(addr);
            return;
        }
        self.counters.inc(Counter::OutMsgs);
        self.counters.inc(Counter::OutEchoReps);
        self.route(now, next_hop, Desc { addr, len: (l2 + total) as u32 });
    }

    /// Broadcasts a gratuitous ARP announcing our address (RFC 5227 §3), so neighbours update stale entries.
    pub fn announce(&mut self) {
        let a = ArpRepr::request(EthernetAddress(self.net.mac), self.net.addr, self.net.addr);
        if self.send_arp(EthernetAddress::BROADCAST.0, &a) {
            self.counters.inc(Counter::ArpRequestsOut);
        }
    }

    fn send_arp_request(&mut self, target: Ipv4Addr, to: Mac) {
        let a = ArpRepr::request(EthernetAddress(self.net.mac), self.net.addr, target);
        if self.send_arp(to, &a) {
            self.counters.inc(Counter::ArpRequestsOut);
        }
    }

    fn send_arp(&mut self, to: Mac, arp: &ArpRepr) -> bool {
        let Some(addr) = self.pool.take() else {
            self.counters.inc(Counter::TxNoBuffer);
            return false;
        };
        // The minimum Ethernet frame (without FCS); the tail is zero padding.
        let len = MIN_FRAME_LEN;
        let eth = self.eth_header(to, EtherType::Arp);
        let buf = self.rings.frame_mut(addr, len);
        buf.fill(0);
        let ok: Result<usize, WireError> = eth.emit(buf).and_then(|n| arp.emit(&mut buf[n..]));
        if ok.is_err() {
            self.pool.put(addr);
            return false;
        }
        self.tx_batch.push(Desc { addr, len: len as u32 });
        true
    }

    /// Sends an IPv4 frame (Ethernet header still to write) to `next_hop`, resolving it if needed.
    fn route(&mut self, now: Instant, next_hop: Ipv4Addr, d: Desc) {
        match self.neigh.resolve(now, next_hop, d) {
            Resolve::Send(mac, d) => self.address_and_queue(d, mac),
            Resolve::Queued { request } => {
                if request {
                    self.send_arp_request(next_hop, EthernetAddress::BROADCAST.0);
                }
            }
            Resolve::Dropped(d) => {
                self.counters.inc(Counter::ArpQueueDrops);
                self.pool.put(d.addr);
            }
            Resolve::Refused(d) => {
                self.counters.inc(Counter::ArpIncompleteDrops);
                self.pool.put(d.addr);
            }
        }
    }

    fn address_and_queue(&mut self, d: Desc, mac: Mac) {
        let eth = self.eth_header(mac, EtherType::Ipv4);
        let buf = self.rings.frame_mut(d.addr, eth.header_len());
        if eth.emit(buf).is_err() {
            self.pool.put(d.addr);
            return;
        }
        self.tx_batch.push(d);
    }

    /// ARP retransmissions, probes and failures due by `now`.
    pub fn poll_neighbours(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        self.neigh.poll(now, &mut due);
        for &ip in &due.broadcast {
            self.send_arp_request(ip, EthernetAddress::BROADCAST.0);
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

    /// Moves the tx batch into the tx ring (as much as fits) and kicks the kernel if it asked to be.
    pub fn flush(&mut self) -> usize {
        let mut done = 0;
        if !self.tx_batch.is_empty() {
            let n = self.rings.tx_free().min(self.tx_batch.len());
            if n > 0 {
                done = self.rings.tx_produce(&self.tx_batch[..n]);
                self.tx_batch.drain(..done);
                self.tx_outstanding += done;
                self.counters.add(Counter::TxFrames, done as u64);
            }
        }
        // Copy mode transmits from inside sendto, a small budget (32 frames) per call: kick until the ring is
        // drained or a kick makes no progress (the driver is busy; the next pass retries). Bounded.
        for _ in 0..MAX_TX_KICKS {
            if !self.rings.tx_needs_wakeup() {
                break;
            }
            let pending = self.rings.tx_pending();
            if pending == 0 {
                break;
            }
            let _ = self.rings.tx_wakeup();
            if self.rings.tx_pending() >= pending {
                break;
            }
        }
        done
    }
}

impl<R: XskRings> PacketSink for Datapath<R> {
    /// Lends the next free frame past its Ethernet header. Refuses (the engine keeps the work, and counts
    /// TxNoBuffer) when the tx ring has no room left for it or every frame is in use.
    fn buffer(&mut self) -> Option<&mut [u8]> {
        let addr = match self.lent {
            Some(a) => a,
            None => {
                if self.tx_batch.len() >= BATCH {
                    self.flush();
                }
                if self.tx_batch.len() >= self.rings.tx_free() {
                    // The ring is full even after the batch went in: wait for the kernel.
                    self.flush();
                    if self.tx_batch.len() >= self.rings.tx_free() {
                        self.counters.inc(Counter::TxRingFull);
                        return None;
                    }
                }
                let a = match self.pool.take() {
                    Some(a) => a,
                    None => {
                        // Completed transmissions may have come back since the pass started.
                        self.reclaim();
                        self.pool.take()?
                    }
                };
                self.lent = Some(a);
                a
            }
        };
        let l2 = self.l2_len();
        let frame = self.rings.frame_mut(addr, self.net.mtu + l2);
        Some(&mut frame[l2..])
    }

    fn commit(&mut self, len: usize) {
        let Some(addr) = self.lent.take() else { return };
        if len == 0 || len > self.net.mtu {
            self.pool.put(addr);
            return;
        }
        let l2 = self.l2_len();
        let frame = self.rings.frame(addr, l2 + len);
        // Only the destination is needed (the engine wrote a valid header); a short write routes nowhere.
        if len < Ipv4Repr::HEADER_LEN {
            self.pool.put(addr);
            return;
        }
        let dst = Ipv4Packet::new_unchecked(&frame[l2..]).dst_addr();
        let d = Desc { addr, len: (l2 + len) as u32 };
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
    use crate::xdp::fake::FakeRings;

    const OUR_MAC: Mac = [2, 0, 0, 0, 0, 1];
    const GW_MAC: Mac = [2, 0, 0, 0, 0, 0xfe];
    const BCAST: Mac = [0xff; 6];
    const OUR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);

    fn dp() -> Datapath<FakeRings> {
        let rings = FakeRings::new(64, 2048, 16);
        let net = NetConfig { addr: OUR, prefix_len: 24, gateway: Some(GW), mac: OUR_MAC, mtu: 1500 };
        let mut d = Datapath::new(rings, net, 16, NeighConfig::default()).unwrap();
        d.refill();
        d
    }

    fn eth(dst: Mac, src: Mac, ethertype: EtherType) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        EthernetRepr { src: EthernetAddress(src), dst: EthernetAddress(dst), ethertype, vlan: None }
            .emit(&mut f)
            .unwrap();
        f
    }

    fn arp_frame(arp: ArpRepr, dst: Mac) -> Vec<u8> {
        let mut f = eth(dst, arp.source_hw.0, EtherType::Arp);
        f.resize(60, 0);
        arp.emit(&mut f[14..]).unwrap();
        f
    }

    fn request(from_mac: Mac, from: Ipv4Addr, target: Ipv4Addr) -> ArpRepr {
        ArpRepr::request(EthernetAddress(from_mac), from, target)
    }

    fn parse(f: &[u8]) -> (EthernetRepr, &[u8]) {
        let (e, off) = EthernetRepr::parse(f).unwrap();
        (e, &f[off..])
    }

    #[test]
    fn answers_arp_for_our_address_only() {
        let mut d = dp();
        d.rings_mut().deliver(&arp_frame(request(GW_MAC, GW, OUR), BCAST));
        d.rings_mut().deliver(&arp_frame(request(GW_MAC, GW, Ipv4Addr::new(198, 18, 0, 7)), BCAST));
        let mut delivered = 0;
        assert_eq!(d.receive(Instant::from_secs(1), &mut |_, _| delivered += 1), 2);
        d.flush();
        let out = d.rings_mut().transmit();
        assert_eq!(out.len(), 1, "one reply");
        let (e, payload) = parse(&out[0]);
        assert_eq!((e.dst.0, e.src.0, e.ethertype), (GW_MAC, OUR_MAC, EtherType::Arp));
        let a = ArpRepr::parse(payload).unwrap();
        assert_eq!((a.operation, a.source_ip, a.source_hw.0, a.target_ip), (ArpOperation::Reply, OUR, OUR_MAC, GW));
        assert_eq!(d.neighbour(GW), Some(GW_MAC), "RFC 826: the requester is cached");
        assert_eq!(delivered, 0);
        d.reclaim();
        let mut c = Counters::default();
        d.take_counters(&mut c);
        assert_eq!(c.get(Counter::ArpRequestsIn), 2);
        assert_eq!(c.get(Counter::ArpRepliesOut), 1);
        assert_eq!(c.get(Counter::TxFrames), 1);
    }

    #[test]
    fn aliases_are_answered_and_delivered_like_our_address() {
        let alias = Ipv4Addr::new(198, 18, 0, 40);
        let mut d = dp();
        d.add_alias(alias);
        d.rings_mut().deliver(&arp_frame(request(GW_MAC, GW, alias), BCAST));
        for dst in [alias, Ipv4Addr::new(198, 18, 0, 41)] {
            let mut f = eth(OUR_MAC, GW_MAC, EtherType::Ipv4);
            f.extend_from_slice(&ip_packet(GW, dst, IpProtocol::Tcp, &[0; 20]));
            d.rings_mut().deliver(&f);
        }
        let mut delivered = 0;
        assert_eq!(d.receive(Instant::from_secs(1), &mut |_, _| delivered += 1), 3);
        assert_eq!(delivered, 1, "the alias's packet only");
        d.flush();
        let out = d.rings_mut().transmit();
        assert_eq!(out.len(), 1);
        let a = ArpRepr::parse(parse(&out[0]).1).unwrap();
        assert_eq!((a.operation, a.source_ip, a.source_hw.0), (ArpOperation::Reply, alias, OUR_MAC));
    }

    fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20 + payload.len()];
        Ipv4Repr { src, dst, protocol, payload_len: payload.len(), ttl: 64, tos: 0, ident: 1, dont_fragment: true }
            .emit(&mut p)
            .unwrap();
        p[20..].copy_from_slice(payload);
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
        let pkt = ip_packet(OUR, CLIENT, IpProtocol::Tcp, &[0; 20]);
        engine_send(&mut d, &pkt);
        engine_send(&mut d, &pkt);
        d.flush();
        let out = d.rings_mut().transmit();
        assert_eq!(out.len(), 1, "only the ARP request goes out while resolving");
        let a = ArpRepr::parse(parse(&out[0]).1).unwrap();
        assert_eq!((a.operation, a.target_ip), (ArpOperation::Request, GW));
        // The reply releases both packets, addressed to the gateway.
        d.reclaim();
        d.refill();
        d.rings_mut().deliver(&arp_frame(a.reply(EthernetAddress(GW_MAC)), OUR_MAC));
        d.receive(Instant::from_secs(1), &mut |_, _| {});
        d.flush();
        let out = d.rings_mut().transmit();
        assert_eq!(out.len(), 2);
        for f in &out {
            let (e, payload) = parse(f);
            assert_eq!((e.dst.0, e.src.0, e.ethertype), (GW_MAC, OUR_MAC, EtherType::Ipv4));
            assert_eq!(payload, &pkt[..]);
        }
        // Known now: sent at once.
        d.reclaim();
        engine_send(&mut d, &pkt);
        d.flush();
        assert_eq!(d.rings_mut().transmit().len(), 1);
        d.reclaim();
        d.refill();
        assert_eq!(d.frames_in_use(), 16, "only the fill ring holds frames");
    }

    #[test]
    fn unresolved_next_hop_fails_and_frees_frames() {
        let mut d = dp();
        d.set_now(Instant::from_secs(1));
        engine_send(&mut d, &ip_packet(OUR, Ipv4Addr::new(198, 18, 0, 9), IpProtocol::Tcp, &[0; 20]));
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
    fn answers_ping_via_the_gateway() {
        let mut d = dp();
        let mut f = arp_frame(request(GW_MAC, GW, OUR), BCAST);
        d.rings_mut().deliver(&f);
        let echo = Icmpv4Repr::EchoRequest { ident: 7, seq_no: 3, data: b"abcdefgh" };
        let mut icmp = vec![0u8; echo.buffer_len()];
        echo.emit(&mut icmp).unwrap();
        f = eth(OUR_MAC, GW_MAC, EtherType::Ipv4);
        f.extend(ip_packet(CLIENT, OUR, IpProtocol::Icmp, &icmp));
        d.rings_mut().deliver(&f);
        d.receive(Instant::from_secs(1), &mut |_, _| panic!("ICMP is not for the engine"));
        d.flush();
        let out = d.rings_mut().transmit();
        assert_eq!(out.len(), 2, "ARP reply and echo reply");
        let (e, payload) = parse(&out[1]);
        assert_eq!(e.dst.0, GW_MAC);
        let (ip, body) = Ipv4Repr::parse(payload, true).unwrap();
        assert_eq!((ip.src, ip.dst, ip.protocol), (OUR, CLIENT, IpProtocol::Icmp));
        assert_eq!(
            Icmpv4Repr::parse(body, true).unwrap(),
            Icmpv4Repr::EchoReply { ident: 7, seq_no: 3, data: b"abcdefgh" }
        );
        let mut c = Counters::default();
        d.take_counters(&mut c);
        assert_eq!((c.get(Counter::InEchos), c.get(Counter::OutEchoReps)), (1, 1));
    }

    #[test]
    fn tcp_is_handed_over_in_place_and_foreign_frames_are_dropped() {
        let mut d = dp();
        let p = ip_packet(CLIENT, OUR, IpProtocol::Tcp, &[0; 20]);
        let mut f = eth(OUR_MAC, GW_MAC, EtherType::Ipv4);
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
        assert_eq!(c.get(Counter::RxToEngine), 1);
    }

    #[test]
    fn a_reply_on_another_queue_resolves_for_every_worker() {
        let mut shares = NeighbourShare::mesh(2);
        let mut a = dp();
        let mut b = dp();
        b.share_neighbours(shares.pop().unwrap());
        a.share_neighbours(shares.pop().unwrap());
        // Worker a wants the gateway; the reply arrives on worker b's queue.
        a.set_now(Instant::from_secs(1));
        let pkt = ip_packet(OUR, CLIENT, IpProtocol::Tcp, &[0; 20]);
        engine_send(&mut a, &pkt);
        a.flush();
        assert_eq!(a.rings_mut().transmit().len(), 1, "the request");
        let reply = request(OUR_MAC, OUR, GW).reply(EthernetAddress(GW_MAC));
        b.rings_mut().deliver(&arp_frame(reply, OUR_MAC));
        b.receive(Instant::from_secs(1), &mut |_, _| {});
        a.absorb_neighbours(Instant::from_secs(1));
        a.flush();
        let out = a.rings_mut().transmit();
        assert_eq!(out.len(), 1, "the waiting packet went out from worker a");
        assert_eq!(parse(&out[0]).0.dst.0, GW_MAC);
    }

    #[test]
    fn buffer_refuses_when_frames_run_out() {
        let rings = FakeRings::new(4, 2048, 64);
        let net = NetConfig { addr: OUR, prefix_len: 24, gateway: None, mac: OUR_MAC, mtu: 1500 };
        let mut d = Datapath::new(rings, net, 64, NeighConfig::default()).unwrap();
        d.refill();
        assert!(d.buffer().is_none(), "every frame is in the fill ring");
    }

    #[test]
    fn buffer_refuses_when_the_tx_ring_is_full_and_resumes_after_completions() {
        let rings = FakeRings::new(64, 2048, 4);
        let net = NetConfig { addr: OUR, prefix_len: 24, gateway: None, mac: OUR_MAC, mtu: 1500 };
        let mut d = Datapath::new(rings, net, 4, NeighConfig::default()).unwrap();
        d.refill();
        let mut rel = Vec::new();
        d.neigh.learn(Instant::ZERO, Ipv4Addr::new(198, 18, 0, 9), GW_MAC, true, &mut rel);
        let pkt = ip_packet(OUR, Ipv4Addr::new(198, 18, 0, 9), IpProtocol::Tcp, &[0; 20]);
        for _ in 0..4 {
            engine_send(&mut d, &pkt);
        }
        assert!(d.buffer().is_none(), "four in the ring of four");
        let mut c = Counters::default();
        d.take_counters(&mut c);
        assert_eq!(c.get(Counter::TxRingFull), 1);
        assert_eq!(d.rings_mut().transmit().len(), 4);
        assert!(d.buffer().is_some(), "room again once the kernel took them");
    }

    /// The review's F4 through the datapath: replies to more spoofed on-link sources than the neighbour table holds
    /// leave the gateway resolved, so the next off-link reply goes straight out.
    #[test]
    fn spoofed_on_link_sources_do_not_evict_the_gateway() {
        let rings = FakeRings::new(1024, 2048, 64);
        let net = NetConfig { addr: OUR, prefix_len: 20, gateway: Some(GW), mac: OUR_MAC, mtu: 1500 };
        let mut d = Datapath::new(rings, net, 16, NeighConfig::default()).unwrap();
        d.refill();
        d.rings_mut().deliver(&arp_frame(request(GW_MAC, GW, OUR), BCAST));
        d.receive(Instant::from_secs(1), &mut |_, _| {});
        for i in 0..1100u32 {
            d.set_now(Instant::from_millis(1000 + u64::from(i)));
            let spoofed = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 1, 0)) + i);
            engine_send(&mut d, &ip_packet(OUR, spoofed, IpProtocol::Tcp, &[0; 20]));
            d.flush();
            d.rings_mut().transmit();
            d.reclaim();
        }
        engine_send(&mut d, &ip_packet(OUR, Ipv4Addr::new(198, 19, 0, 9), IpProtocol::Tcp, &[0; 20]));
        d.flush();
        let out = d.rings_mut().transmit();
        assert_eq!(out.len(), 1);
        assert_eq!(parse(&out[0]).0.dst.0, GW_MAC, "sent to the gateway at once, no ARP needed");
        let mut c = Counters::default();
        d.take_counters(&mut c);
        assert!(c.get(Counter::ArpIncompleteDrops) > 0);
        assert!(c.get(Counter::ArpRequestsOut) <= 256, "no request for refused next hops");
    }

    fn tagged(frame: &[u8], tpid: u16, vid: u16) -> Vec<u8> {
        let mut f = frame[..12].to_vec();
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
        f.extend_from_slice(&frame[12..]);
        f
    }

    fn counters(d: &mut Datapath<FakeRings>) -> Counters {
        let mut c = Counters::default();
        d.take_counters(&mut c);
        c
    }

    /// Review M4: on `--vlan 7` only VLAN 7 is ours, and replies carry its tag; without `--vlan` no tagged frame is.
    #[test]
    fn only_the_configured_vlan_is_served_and_replies_keep_its_tag() {
        let tcp = {
            let mut f = eth(OUR_MAC, GW_MAC, EtherType::Ipv4);
            f.extend(ip_packet(CLIENT, OUR, IpProtocol::Tcp, &[0; 20]));
            f
        };
        let arp = arp_frame(request(GW_MAC, GW, OUR), BCAST);
        let mut d = dp();
        d.set_vlan(Some(7)).unwrap();
        for f in [tagged(&tcp, 0x8100, 7), tagged(&tcp, 0x8100, 8), tcp.clone(), tagged(&tcp, 0x88a8, 7)] {
            d.rings_mut().deliver(&f);
        }
        d.rings_mut().deliver(&tagged(&arp, 0x8100, 0x2007)); // PCP 1, VID 7
        let mut got = 0;
        d.receive(Instant::from_secs(1), &mut |_, _| got += 1);
        assert_eq!(got, 1, "VLAN 7's segment only");
        d.flush();
        let out = d.rings_mut().transmit();
        assert_eq!(out.len(), 1, "the ARP reply");
        let (e, payload) = parse(&out[0]);
        assert_eq!((e.vlan_id(), e.dst.0, e.ethertype), (Some(7), GW_MAC, EtherType::Arp));
        assert_eq!(ArpRepr::parse(payload).unwrap().operation, ArpOperation::Reply);
        // What the engine sends goes out tagged too.
        d.reclaim();
        engine_send(&mut d, &ip_packet(OUR, CLIENT, IpProtocol::Tcp, &[0; 20]));
        d.flush();
        let out = d.rings_mut().transmit();
        let (e, payload) = parse(&out[0]);
        assert_eq!((e.vlan_id(), e.ethertype), (Some(7), EtherType::Ipv4));
        assert_eq!(Ipv4Repr::parse(payload, true).unwrap().0.dst, CLIENT);
        let c = counters(&mut d);
        assert_eq!(c.get(Counter::RxVlanMismatch), 2, "VLAN 8 and untagged");
        assert_eq!(c.get(Counter::RxMalformed), 1, "802.1ad");

        let mut d = dp();
        d.rings_mut().deliver(&tagged(&tcp, 0x8100, 7));
        d.rings_mut().deliver(&tcp);
        let mut got = 0;
        d.receive(Instant::from_secs(1), &mut |_, _| got += 1);
        assert_eq!(got, 1, "untagged only");
        assert_eq!(counters(&mut d).get(Counter::RxVlanMismatch), 1);
        assert!(d.set_vlan(Some(4095)).is_err());
    }

    /// Review L8: martian sources never reach the engine or the ping code; nor do source-routed packets.
    #[test]
    fn martian_and_source_routed_packets_are_dropped_counted() {
        let echo = Icmpv4Repr::EchoRequest { ident: 7, seq_no: 3, data: b"abcdefgh" };
        let mut icmp = vec![0u8; echo.buffer_len()];
        echo.emit(&mut icmp).unwrap();
        let mut d = dp();
        d.add_alias(Ipv4Addr::new(198, 18, 0, 40));
        let martians = [
            OUR,
            Ipv4Addr::new(198, 18, 0, 40),
            Ipv4Addr::new(0, 0, 0, 0),
            Ipv4Addr::new(0, 1, 2, 3),
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(198, 18, 0, 255),
            Ipv4Addr::new(224, 0, 0, 1),
            Ipv4Addr::new(255, 255, 255, 255),
        ];
        for src in martians {
            for (proto, body) in [(IpProtocol::Tcp, &[0u8; 20][..]), (IpProtocol::Icmp, &icmp[..])] {
                let mut f = eth(OUR_MAC, GW_MAC, EtherType::Ipv4);
                f.extend(ip_packet(src, OUR, proto, body));
                assert!(d.rings_mut().deliver(&f));
            }
            d.receive(Instant::from_secs(1), &mut |_, p| panic!("martian {p:?} reached the engine"));
            d.refill();
        }
        // LSRR (type 131) behind a NOP, in a 24-byte header.
        let mut p = ip_packet(CLIENT, OUR, IpProtocol::Tcp, &[0; 24]);
        p[0] = 0x46;
        p[20..24].copy_from_slice(&[1, 131, 3, 0]);
        let mut f = eth(OUR_MAC, GW_MAC, EtherType::Ipv4);
        f.extend(&p);
        d.rings_mut().deliver(&f);
        d.receive(Instant::from_secs(1), &mut |_, p| panic!("source-routed {p:?} reached the engine"));
        d.flush();
        assert!(d.rings_mut().transmit().is_empty(), "nothing answered");
        let c = counters(&mut d);
        assert_eq!(c.get(Counter::InMartianSrc), 2 * martians.len() as u64);
        assert_eq!(c.get(Counter::InSrcRouteDrops), 1);
        assert_eq!(c.get(Counter::InEchos), 0);
        // An ordinary source with a harmless option (NOP, EOL) still gets through.
        let mut p = ip_packet(CLIENT, OUR, IpProtocol::Tcp, &[0; 24]);
        p[0] = 0x46;
        p[20..24].copy_from_slice(&[1, 0, 0, 0]);
        let mut f = eth(OUR_MAC, GW_MAC, EtherType::Ipv4);
        f.extend(&p);
        d.rings_mut().deliver(&f);
        let mut got = 0;
        d.receive(Instant::from_secs(1), &mut |_, _| got += 1);
        assert_eq!(got, 1);
    }

    /// Review L2: a flood of ARP claims on our address is counted, and logged once per interval only.
    #[test]
    fn address_conflicts_are_counted_and_their_log_rate_limited() {
        let mut d = dp();
        let intruder = [2, 6, 6, 6, 6, 6];
        for i in 0..50 {
            d.rings_mut().deliver(&arp_frame(request(intruder, OUR, GW), BCAST));
            d.receive(Instant::from_millis(1000 + i * 100), &mut |_, _| {});
            d.refill();
        }
        assert_eq!(counters(&mut d).get(Counter::ArpAddrConflicts), 50);
        assert_eq!(d.conflict_logged, Some(Instant::from_millis(1000)), "logged once in the 5 s of the flood");
        d.rings_mut().deliver(&arp_frame(request(intruder, OUR, GW), BCAST));
        d.receive(Instant::from_millis(11_000), &mut |_, _| {});
        assert_eq!(d.conflict_logged, Some(Instant::from_millis(11_000)));
    }
}
