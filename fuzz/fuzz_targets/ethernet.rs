//! Ethernet header parsing: never panics, and whatever parses re-emits to a header that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdptcp::wire::{EtherType, EthernetFrame, EthernetRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = EthernetFrame::new_checked(data) {
        let _ = (frame.src_addr(), frame.dst_addr(), frame.ethertype(), frame.payload().len());
    }
    let Ok((repr, offset)) = EthernetRepr::parse(data) else { return };
    assert!(offset <= data.len());
    assert_eq!(offset, repr.header_len());
    assert_ne!(repr.ethertype, EtherType::Vlan);
    let mut buf = [0u8; 18];
    let n = repr.emit(&mut buf).expect("an 18-byte buffer holds any header");
    assert_eq!(&buf[..n], &data[..offset], "re-emitted header differs");
    assert_eq!(EthernetRepr::parse(&buf[..n]), Ok((repr, offset)));
});
