//! IPv4 parsing: never panics; the payload lies inside the buffer; a parsed header re-emits to one that parses the
//! same; the quoted-header parser (ICMP errors) accepts everything the full parser accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdptcp::wire::{Ipv4Packet, Ipv4Repr};

fuzz_target!(|data: &[u8]| {
    let _ = Ipv4Repr::parse_quoted(data);
    if let Ok(p) = Ipv4Packet::new_checked(data) {
        let _ = (p.options(), p.payload(), p.verify_checksum(), p.frag_offset(), p.dscp(), p.ecn());
    }
    let checked = Ipv4Repr::parse(data, true);
    let Ok((repr, payload)) = Ipv4Repr::parse(data, false) else {
        assert!(checked.is_err());
        return;
    };
    assert_eq!(payload.len(), repr.payload_len);
    assert!(Ipv4Repr::parse_quoted(data).is_ok());
    if let Ok((checked_repr, _)) = checked {
        assert_eq!(checked_repr, repr);
    }
    let mut buf = vec![0u8; repr.total_len()];
    assert_eq!(repr.emit(&mut buf), Ok(20));
    buf[20..].copy_from_slice(payload);
    let (again, again_payload) = Ipv4Repr::parse(&buf, true).expect("re-emitted header must parse");
    assert_eq!(again, repr);
    assert_eq!(again_payload, payload);
});
