//! ARP parsing: never panics; a parsed packet re-emits to the same 28 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdptcp::wire::{ArpPacket, ArpRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ArpPacket::new_checked(data) {
        let _ = (p.hardware_type(), p.protocol_type(), p.operation());
        let _ = (p.source_hardware_addr(), p.source_protocol_addr());
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
    }
    let Ok(repr) = ArpRepr::parse(data) else { return };
    let mut buf = [0u8; 28];
    assert_eq!(repr.emit(&mut buf), Ok(28));
    assert_eq!(&buf[..], &data[..28], "re-emitted packet differs");
    assert_eq!(ArpRepr::parse(&buf), Ok(repr));
});
