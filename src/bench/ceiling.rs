//! `--mode ceiling` and `xdptcp bench sink`: the raw AF_XDP frame rate of a path, without TCP. The sender writes
//! one prebuilt TCP data segment (ACK, payload of zeros) of a chosen frame size into the AF_XDP tx ring as fast as
//! it takes them (through the datapath's ARP and next-hop logic, like the SYN flood); the sink is an AF_XDP socket
//! behind the same XDP program `xdptcp serve` uses, owning the target address, that only counts the frames and
//! hands them straight back to the fill ring. What the sink counts per second is the most any stack on top of
//! these rings could receive over that path: the ceiling row of `bench/compare`.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::synflood::{blast, FloodReport};
use super::xdp::XdpOptions;
use crate::host::Host;
use crate::wire::ethernet::{HEADER_LEN as ETH_HEADER_LEN, MIN_FRAME_LEN};
use crate::wire::{IpProtocol, Ipv4Repr, SeqNum, TcpFlags, TcpOptions, TcpRepr};

/// Smallest IPv4 packet the ceiling sends: IPv4 and TCP headers, no options, no payload.
const MIN_PACKET: usize = Ipv4Repr::HEADER_LEN + 20;

/// The IPv4 packet carried in an Ethernet frame of `frame_size` bytes (without FCS; padded frames below 60 bytes
/// count as 60 on the wire, so 60 is the smallest that makes sense).
pub fn packet_len(frame_size: usize) -> usize {
    frame_size.max(MIN_FRAME_LEN).saturating_sub(ETH_HEADER_LEN).max(MIN_PACKET)
}

/// One TCP data segment (ACK, zeros) from `src` to `dst` whose IPv4 packet is `len` bytes long.
pub fn data_packet(src: SocketAddrV4, dst: SocketAddrV4, len: usize) -> anyhow::Result<Vec<u8>> {
    if len < MIN_PACKET {
        bail!("a packet of {len} bytes cannot hold IPv4 and TCP headers");
    }
    let payload_len = len - MIN_PACKET;
    let tcp = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        seq: SeqNum(1),
        ack: SeqNum(1),
        flags: TcpFlags(TcpFlags::ACK),
        window: 64240,
        urgent: 0,
        options: TcpOptions::default(),
        // `emit` takes the payload as already in place: the buffer's zeros.
        payload: &[],
    };
    let ip = Ipv4Repr {
        src: *src.ip(),
        dst: *dst.ip(),
        protocol: IpProtocol::Tcp,
        payload_len: tcp.header_len() + payload_len,
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_fragment: true,
    };
    let mut buf = vec![0u8; ip.total_len()];
    ip.emit(&mut buf).map_err(|e| anyhow::anyhow!("IPv4 header: {e:?}"))?;
    tcp.emit(&mut buf[Ipv4Repr::HEADER_LEN..], payload_len, *src.ip(), *dst.ip())
        .map_err(|e| anyhow::anyhow!("TCP header: {e:?}"))?;
    Ok(buf)
}

/// Sends `frame_size`-byte frames to `target` at `rate` per second (0: as fast as the tx ring takes them).
pub fn send(
    o: &XdpOptions,
    target: SocketAddrV4,
    frame_size: usize,
    rate: f64,
    duration: Duration,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> anyhow::Result<FloodReport> {
    let packet = std::cell::OnceCell::new();
    let mut prepare = |host: &Host, _: &[std::net::Ipv4Addr]| {
        let mtu = host.mtu as usize;
        let len = packet_len(frame_size);
        if len > mtu {
            bail!("a {frame_size}-byte frame carries a {len}-byte packet, more than the MTU ({mtu})");
        }
        let _ = packet.set(data_packet(SocketAddrV4::new(host.addr(), 40000), target, len)?);
        Ok(())
    };
    let mut write = |buf: &mut [u8], _: &mut rand_xoshiro::Xoshiro256PlusPlus, _| {
        let p: &Vec<u8> = packet.get()?;
        buf.get_mut(..p.len())?.copy_from_slice(p);
        Some(p.len())
    };
    blast(o, rate, duration, stop, sent, &mut prepare, &mut write)
}

/// What a sink counted.
#[derive(Clone, Debug, Default)]
pub struct SinkReport {
    /// IPv4 frames for our address (ARP and the like not included).
    pub frames: u64,
    /// Their Ethernet bytes (without FCS).
    pub bytes: u64,
    /// From the first counted frame to the last.
    pub seconds: f64,
}

impl SinkReport {
    pub fn packets_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.frames as f64 / self.seconds
        } else {
            0.0
        }
    }
    pub fn gbps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 * 8.0 / self.seconds / 1e9
        } else {
            0.0
        }
    }
}

/// Receives on queue 0 of `o.iface` as `o.addr` (ARP answered, every TCP segment to it steered here) and counts,
/// until `stop` or `duration`. Busy-polls: it is meant to have a core of its own. `counted` is updated live.
pub fn sink(o: &XdpOptions, duration: Duration, stop: &AtomicBool, counted: &AtomicU64) -> anyhow::Result<SinkReport> {
    let (host, mut dp) = o.single()?;
    let clock = Instant::now();
    let mut report = SinkReport::default();
    let (mut first, mut last) = (None::<Instant>, clock);
    dp.announce();
    // Bounded by the duration and the stop flag.
    while clock.elapsed() < duration && !stop.load(Ordering::Relaxed) {
        let now = crate::time::Instant::from_micros(clock.elapsed().as_micros() as u64 + 1_000_000);
        dp.set_now(now);
        let (mut frames, mut bytes) = (0u64, 0u64);
        let n = dp.receive(now, &mut |_, packet| {
            frames += 1;
            bytes += (packet.len() + ETH_HEADER_LEN).max(MIN_FRAME_LEN) as u64;
        });
        dp.refill();
        if frames > 0 {
            let t = Instant::now();
            first.get_or_insert(t);
            last = t;
            report.frames += frames;
            report.bytes += bytes;
            counted.store(report.frames, Ordering::Relaxed);
        }
        // ARP replies and the announcement go out; nothing else is ever sent.
        dp.reclaim();
        dp.flush();
        if n == 0 {
            std::hint::spin_loop();
        }
    }
    report.seconds = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    host.finish();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn data_packets_fill_the_frame_size_and_parse_back() {
        let src = SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 3), 40000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 9);
        assert_eq!(packet_len(60), 46);
        assert_eq!(packet_len(1514), 1500);
        // Below the Ethernet minimum the frame is padded anyway; the packet is the smallest there is.
        assert_eq!(packet_len(10), 46);
        for len in [40, 46, 1500] {
            let p = data_packet(src, dst, len).unwrap();
            assert_eq!(p.len(), len);
            let (ip, seg) = Ipv4Repr::parse(&p, true).unwrap();
            assert_eq!((ip.src, ip.dst), (*src.ip(), *dst.ip()));
            let tcp = TcpRepr::parse(seg, ip.src, ip.dst, true).unwrap();
            assert_eq!((tcp.dst_port, tcp.payload.len()), (9, len - 40));
            assert!(tcp.flags.ack() && !tcp.flags.syn());
        }
        assert!(data_packet(src, dst, 39).is_err());
    }

    #[test]
    fn sink_rates() {
        let r = SinkReport { frames: 1000, bytes: 1_514_000, seconds: 0.5 };
        assert_eq!(r.packets_per_second(), 2000.0);
        assert!((r.gbps() - 0.024224).abs() < 1e-9);
        assert_eq!(SinkReport::default().gbps(), 0.0);
    }
}
