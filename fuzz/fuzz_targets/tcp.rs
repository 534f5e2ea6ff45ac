//! TCP parsing, options included. Input: 8 bytes of source and destination address, then the segment.
//! Never panics; a parsed segment re-emits (options in canonical order) to one that parses the same, except that
//! SACK blocks which no longer fit beside the other options are dropped from the end.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use xdptcp::wire::{TcpOptions, TcpPacket, TcpRepr};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let src = Ipv4Addr::new(data[0], data[1], data[2], data[3]);
    let dst = Ipv4Addr::new(data[4], data[5], data[6], data[7]);
    let segment = &data[8..];
    let _ = TcpOptions::parse(segment);
    if let Ok(p) = TcpPacket::new_checked(segment) {
        let _ = (p.options(), p.payload(), p.flags(), p.verify_checksum(src, dst));
    }
    let checked = TcpRepr::parse(segment, src, dst, true);
    let Ok(repr) = TcpRepr::parse(segment, src, dst, false) else {
        assert!(checked.is_err());
        return;
    };
    if let Ok(c) = &checked {
        assert_eq!(c, &repr);
    }
    let wire_len = repr.options.wire_len();
    assert!(wire_len <= 40 && wire_len % 4 == 0);
    let header_len = repr.header_len();
    let mut buf = vec![0u8; header_len + repr.payload.len()];
    buf[header_len..].copy_from_slice(repr.payload);
    assert_eq!(repr.emit(&mut buf, repr.payload.len(), src, dst), Ok(buf.len()));
    let again = TcpRepr::parse(&buf, src, dst, true).expect("re-emitted segment must parse");
    let (a, b) = (&again.options, &repr.options);
    assert!(b.sack_blocks().starts_with(a.sack_blocks()), "SACK blocks changed");
    let mut normalized = repr.clone();
    normalized.options.set_sack_blocks(a.sack_blocks());
    normalized.options.sack[a.sack_blocks().len()..].fill(Default::default());
    assert_eq!(again, normalized);
});
