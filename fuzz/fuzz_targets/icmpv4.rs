//! ICMPv4 parsing: never panics; a parsed message re-emits to one that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdptcp::wire::{Icmpv4Packet, Icmpv4Repr};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Icmpv4Packet::new_checked(data) {
        let _ = (p.msg_type(), p.msg_code(), p.rest_of_header(), p.data(), p.verify_checksum());
    }
    let checked = Icmpv4Repr::parse(data, true);
    let Ok(repr) = Icmpv4Repr::parse(data, false) else {
        assert!(checked.is_err());
        return;
    };
    if let Ok(c) = checked {
        assert_eq!(c, repr);
    }
    let mut buf = vec![0u8; repr.buffer_len()];
    assert_eq!(repr.emit(&mut buf), Ok(buf.len()));
    assert_eq!(Icmpv4Repr::parse(&buf, true), Ok(repr), "re-emitted message parses differently");
});
