//! A whole received frame, as the worker dispatches it: Ethernet, then ARP or IPv4, then TCP or ICMPv4.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdptcp::wire::{ArpRepr, EtherType, EthernetRepr, Icmpv4Repr, IpProtocol, Ipv4Repr, TcpRepr};

fn dispatch(frame: &[u8], verify: bool) {
    let Ok((eth, offset)) = EthernetRepr::parse(frame) else { return };
    let l3 = &frame[offset..];
    match eth.ethertype {
        EtherType::Arp => {
            let _ = ArpRepr::parse(l3);
        }
        EtherType::Ipv4 => {
            let Ok((ip, payload)) = Ipv4Repr::parse(l3, verify) else { return };
            match ip.protocol {
                IpProtocol::Tcp => {
                    if let Ok(seg) = TcpRepr::parse(payload, ip.src, ip.dst, verify) {
                        assert!(seg.payload.len() <= payload.len());
                        let _ = seg.segment_len();
                    }
                }
                IpProtocol::Icmp => {
                    if let Ok(Icmpv4Repr::DstUnreachable { header, data, .. }) = Icmpv4Repr::parse(payload, verify) {
                        // What the engine does next with a quoted TCP header: read ports and sequence number.
                        if header.protocol == IpProtocol::Tcp && data.len() >= 8 {
                            let _ = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                        }
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    dispatch(data, true);
    dispatch(data, false);
});
