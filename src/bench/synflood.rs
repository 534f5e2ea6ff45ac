//! `--mode synflood`: SYNs with spoofed source addresses and ports at a constant rate, written as raw frames into
//! the AF_XDP tx ring (through the datapath's ARP and next-hop logic), to exercise a server's SYN queue, SYN cookies
//! (RFC 4987) and accept path. Spoofed sources are hosts of our own subnet other than the ones in use, so the
//! server's SYN-ACKs go nowhere outside the lab.
//!
//! Flooding is refused unless the target is inside a lab this tool created (the caller's network namespace is the
//! client or server namespace of an `xdptcp lab`, and the target is on the lab's server subnet) or the operator
//! says `--i-own-this-target`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use rand::{Rng, SeedableRng};

use super::xdp::XdpOptions;
use crate::host::Host;
use crate::lab::{PREFIX_LEN, SERVER_ADDR};
use crate::tcp::PacketSink;
use crate::wire::{IpProtocol, Ipv4Repr, SeqNum, TcpFlags, TcpOptions, TcpRepr};

/// The namespace mount directory of `ip netns`.
const NETNS_DIR: &str = "/run/netns";

/// The lab whose client or server namespace the calling thread is in: (lab name, namespace name).
pub fn current_lab() -> Option<(String, String)> {
    let ours = std::fs::metadata("/proc/thread-self/ns/net").ok()?.ino();
    let names: Vec<String> =
        std::fs::read_dir(NETNS_DIR).ok()?.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    for ns in &names {
        let Some(lab) = ns.strip_suffix("-cli").or_else(|| ns.strip_suffix("-srv")) else { continue };
        let complete = ["-srv", "-rtr", "-cli"].iter().all(|s| names.contains(&format!("{lab}{s}")));
        let same = std::fs::metadata(format!("{NETNS_DIR}/{ns}")).is_ok_and(|m| m.ino() == ours);
        if complete && same {
            return Some((lab.to_string(), ns.clone()));
        }
    }
    None
}

/// Whether `target` is on the lab's server subnet (198.18.0.0/24).
pub fn on_lab_server_subnet(target: Ipv4Addr) -> bool {
    let mask = u32::MAX << (32 - PREFIX_LEN as u32);
    u32::from(target) & mask == u32::from(SERVER_ADDR) & mask
}

/// The safety gate. Ok with a sentence saying why flooding is allowed.
pub fn check_allowed(target: Ipv4Addr, i_own_it: bool) -> anyhow::Result<String> {
    if i_own_it {
        return Ok(format!("--i-own-this-target given for {target}"));
    }
    match current_lab() {
        Some((lab, ns)) if on_lab_server_subnet(target) => Ok(format!("{target} is in lab {lab} (we run in {ns})")),
        Some((lab, _)) => bail!("refusing to flood {target}: it is not on the server subnet of lab {lab}"),
        None => bail!(
            "refusing to flood {target}: run inside a lab made by `xdptcp lab up` (ip netns exec NAME-cli ...), \
             or pass --i-own-this-target if you own it"
        ),
    }
}

/// Spoofed source addresses: hosts of `addr/prefix` other than the network, broadcast, `avoid` (our address,
/// the gateway, the kernel's addresses).
pub fn spoof_pool(addr: Ipv4Addr, prefix: u8, avoid: &[Ipv4Addr]) -> Vec<Ipv4Addr> {
    let prefix = prefix.clamp(16, 30);
    let mask = u32::MAX << (32 - prefix as u32);
    let net = u32::from(addr) & mask;
    (1..(!mask)).map(|h| Ipv4Addr::from(net | h)).filter(|a| !avoid.contains(a)).collect()
}

/// Writes one SYN from `src:sport` to `dst` (Linux's option set: MSS, SACK-permitted, timestamps, window scale)
/// into `buf`; returns the IPv4 packet length.
pub fn write_syn(buf: &mut [u8], src: SocketAddrV4, dst: SocketAddrV4, seq: u32, ident: u16, ts: u32) -> Option<usize> {
    let options = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((ts, 0)),
        ..Default::default()
    };
    let tcp = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        seq: SeqNum(seq),
        ack: SeqNum(0),
        flags: TcpFlags(TcpFlags::SYN),
        window: 64240,
        urgent: 0,
        options,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src: *src.ip(),
        dst: *dst.ip(),
        protocol: IpProtocol::Tcp,
        payload_len: tcp.header_len(),
        ttl: 64,
        tos: 0,
        ident,
        dont_fragment: true,
    };
    let total = ip.total_len();
    if buf.len() < total {
        return None;
    }
    ip.emit(buf).ok()?;
    tcp.emit(&mut buf[Ipv4Repr::HEADER_LEN..], 0, *src.ip(), *dst.ip()).ok()?;
    Some(total)
}

/// What a flood did.
#[derive(Clone, Debug, Default)]
pub struct FloodReport {
    pub sent: u64,
    pub seconds: f64,
    /// Frames the tx path refused (ring full, no frame): the generator's own ceiling showing.
    pub refused: u64,
}

/// Floods `target` at `rate` SYNs per second (0: as fast as the tx ring takes them) for `duration` or until
/// `stop`. One worker on queue 0; `sent` is updated live for the progress line.
pub fn run(
    o: &XdpOptions,
    target: SocketAddrV4,
    rate: f64,
    duration: Duration,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> anyhow::Result<FloodReport> {
    let pool = std::cell::OnceCell::new();
    let mut prepare = |host: &Host, avoid: &[Ipv4Addr]| {
        let p = spoof_pool(host.addr(), host.prefix_len, avoid);
        if p.is_empty() {
            bail!("no spare addresses on {}/{} to spoof", host.addr(), host.prefix_len);
        }
        let _ = pool.set(p);
        Ok(())
    };
    let mut write = |buf: &mut [u8], rng: &mut rand_xoshiro::Xoshiro256PlusPlus, ident| {
        let pool: &Vec<Ipv4Addr> = pool.get()?;
        let src = SocketAddrV4::new(pool[rng.gen_range(0..pool.len())], rng.gen_range(1024..=65535));
        write_syn(buf, src, target, rng.gen(), ident, rng.gen())
    };
    blast(o, rate, duration, stop, sent, &mut prepare, &mut write)
}

/// Writes an IPv4 packet into the frame it is given (`None`: drop it), with a fresh IP ident.
pub type FrameWriter<'a> = dyn FnMut(&mut [u8], &mut rand_xoshiro::Xoshiro256PlusPlus, u16) -> Option<usize> + 'a;
/// Called once the client is set up, with the addresses in use (ours, the gateway, the kernel's).
pub type BlastSetup<'a> = dyn FnMut(&Host, &[Ipv4Addr]) -> anyhow::Result<()> + 'a;

/// Raw frames from `write` at `rate` per second (0: as fast as the tx ring takes them) for `duration` or until
/// `stop`, through the datapath's ARP and next-hop logic. One worker on queue 0; `sent` is updated live.
pub fn blast(
    o: &XdpOptions,
    rate: f64,
    duration: Duration,
    stop: &AtomicBool,
    sent: &AtomicU64,
    prepare: &mut BlastSetup,
    write: &mut FrameWriter,
) -> anyhow::Result<FloodReport> {
    let (host, mut dp) = o.single()?;
    let mut avoid = host.iface.kernel_ipv4_addrs()?;
    avoid.extend_from_slice(&host.addrs);
    avoid.extend(o.gateway);
    // On error, dropping the host detaches the program.
    prepare(&host, &avoid)?;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::from_entropy();
    let clock = std::time::Instant::now();
    let mut report = FloodReport::default();
    let mut ident = 0u16;
    dp.announce();
    // Bounded by the duration and the stop flag.
    loop {
        let elapsed = clock.elapsed();
        if elapsed >= duration || stop.load(Ordering::Relaxed) {
            break;
        }
        let now = crate::time::Instant::from_micros(elapsed.as_micros() as u64 + 1_000_000);
        dp.set_now(now);
        dp.reclaim();
        // ARP replies (for the gateway) and anything else for us (SYN-ACKs go to the spoofed hosts, not here).
        dp.receive(now, &mut |_, _| {});
        dp.refill();
        dp.absorb_neighbours(now);
        if dp.next_deadline().is_some_and(|t| t <= now) {
            dp.poll_neighbours(now);
        }
        let due = if rate > 0.0 { (elapsed.as_secs_f64() * rate) as u64 } else { u64::MAX };
        let mut batch = 0;
        while report.sent < due && batch < crate::worker::BATCH {
            ident = ident.wrapping_add(1);
            let Some(buf) = dp.buffer() else {
                report.refused += 1;
                break;
            };
            match write(buf, &mut rng, ident) {
                Some(len) => dp.commit(len),
                None => dp.commit(0),
            }
            report.sent += 1;
            batch += 1;
        }
        dp.flush();
        sent.store(report.sent, Ordering::Relaxed);
        if batch == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    for _ in 0..100 {
        if dp.tx_outstanding() == 0 {
            break;
        }
        dp.flush();
        dp.reclaim();
        std::thread::sleep(Duration::from_micros(200));
    }
    report.seconds = clock.elapsed().as_secs_f64();
    host.finish();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syns_parse_back_with_linux_options() {
        let mut buf = [0u8; 100];
        let src = SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 77), 40000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
        let n = write_syn(&mut buf, src, dst, 12345, 9, 777).unwrap();
        assert_eq!(n, 20 + 40);
        let (ip, seg) = Ipv4Repr::parse(&buf[..n], true).unwrap();
        assert_eq!((ip.src, ip.dst, ip.protocol), (*src.ip(), *dst.ip(), IpProtocol::Tcp));
        let tcp = TcpRepr::parse(seg, ip.src, ip.dst, true).unwrap();
        assert_eq!((tcp.src_port, tcp.dst_port, tcp.seq), (40000, 80, SeqNum(12345)));
        assert!(tcp.flags.syn() && !tcp.flags.ack());
        assert_eq!(tcp.options.mss, Some(1460));
        assert_eq!(tcp.options.timestamps, Some((777, 0)));
        assert!(write_syn(&mut buf[..40], src, dst, 1, 1, 1).is_none());
    }

    #[test]
    fn spoofed_sources_avoid_hosts_in_use() {
        let me = Ipv4Addr::new(198, 18, 1, 3);
        let avoid = [me, Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 18, 1, 254)];
        let pool = spoof_pool(me, 24, &avoid);
        assert_eq!(pool.len(), 254 - 3);
        assert!(!pool.contains(&Ipv4Addr::new(198, 18, 1, 0)));
        assert!(!pool.contains(&Ipv4Addr::new(198, 18, 1, 255)));
        assert!(pool.iter().all(|a| !avoid.contains(a) && a.octets()[..3] == [198, 18, 1]));
    }

    #[test]
    fn the_gate_refuses_outside_a_lab() {
        assert!(on_lab_server_subnet(Ipv4Addr::new(198, 18, 0, 1)));
        assert!(!on_lab_server_subnet(Ipv4Addr::new(198, 18, 1, 1)));
        assert!(!on_lab_server_subnet(Ipv4Addr::new(10, 0, 0, 1)));
        // The test process runs in whatever namespace it was started in, which is no lab's.
        if current_lab().is_none() {
            let e = check_allowed(Ipv4Addr::new(198, 18, 0, 1), false).unwrap_err().to_string();
            assert!(e.contains("refusing"), "{e}");
        }
        assert!(check_allowed(Ipv4Addr::new(198, 18, 0, 1), true).is_ok());
    }
}
