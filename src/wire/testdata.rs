//! Real frames for the wire tests, captured with an AF_PACKET socket on a veth between network namespaces
//! (Linux 6.18, checksum offload off so every checksum on the wire is final; addresses in 198.18.0.0/15).
//! Host A is 198.18.0.1 (02:00:00:00:00:0a), its router R is 198.18.0.2 (02:00:00:00:00:0b), and host B is
//! 198.18.1.2 behind R on a 1280-byte-MTU link. Frames are complete Ethernet frames, as hex.

/// Decodes a hex string (test vectors only).
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit")).collect()
}

/// A frame's bytes after the 14-byte untagged Ethernet header.
pub fn l3(frame: &str) -> Vec<u8> {
    hex(frame)[14..].to_vec()
}

/// ARP who-has 198.18.0.2 tell 198.18.0.1 (broadcast, no padding: captured at the sender).
pub const ARP_REQUEST: &str = "ffffffffffff02000000000a0806000108000604000102000000000ac6120001000000000000c6120002";
/// ARP 198.18.0.2 is-at 02:00:00:00:00:0b.
pub const ARP_REPLY: &str = "02000000000a02000000000b0806000108000604000202000000000bc612000202000000000ac6120001";
/// ICMP echo request 198.18.0.1 -> 198.18.1.2, id 0x1234 seq 1, 40 data bytes 0x10..0x38.
pub const PING_REQUEST: &str = concat!(
    "02000000000b02000000000a080045000044cd8240004001e00ec6120001c6120102080026f812340001101112131415",
    "161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
);
/// the echo reply Linux sent back (via the router: TTL 63).
pub const PING_REPLY: &str = concat!(
    "02000000000a02000000000b0800450000445b7f00003f019312c6120102c612000100002ef812340001101112131415",
    "161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
);
/// SYN 198.18.0.1:55302 -> 198.18.1.2:5999 (MSS 1460, SACK-perm, TS, WS 10).
pub const SYN_TO_CLOSED_PORT: &str = concat!(
    "02000000000b02000000000a08004500003c6ade4000400642b6c6120001c6120102d806176f8016661900000000a002",
    "faf0be310000020405b40402080ac8996373000000000103030a",
);
/// the RST|ACK Linux answered it with.
pub const RST_ACK: &str = concat!(
    "02000000000a02000000000b080045000028000040003f06aea8c6120102c6120001176fd806000000008016661a5014",
    "00004d020000",
);
/// UDP 198.18.0.1 -> 198.18.1.2:5998, 6 bytes "xdptcp".
pub const UDP_TO_CLOSED_PORT: &str =
    "02000000000b02000000000a080045000022cc0a40004011e198c6120001c61201029d41176e000e71b1786470746370";
/// ICMP destination unreachable, code 3 (port), quoting all of the UDP datagram.
pub const ICMP_PORT_UNREACHABLE: &str = concat!(
    "02000000000a02000000000b080045c0003e5b8200003f019255c6120102c612000103038a440000000045000022cc0a",
    "40003f11e298c6120001c61201029d41176e000e71b1786470746370",
);
/// ICMP destination unreachable, code 4 (fragmentation needed, next-hop MTU 1280) from the router, quoting 548 bytes of a 1428-byte DF datagram (Linux quotes up to 576 bytes in all).
pub const ICMP_FRAG_NEEDED: &str = concat!(
    "02000000000a02000000000b080045c002406d79000040017e5cc6120002c61200010304e00a00000500450005940000",
    "40004011a831c6120001c61201029508176d058010a6aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
);
/// SYN 198.18.0.1:55368 -> 198.18.1.2:5201: MSS 1240 (route MTU), SACK-perm, TS, WS 10.
pub const SYN: &str = concat!(
    "02000000000b02000000000a08004500003cd6ac40004006d6e7c6120001c6120102d84814515439ebee00000000a002",
    "fbe0cf680000020404d80402080a20cda2d8000000000103030a",
);
/// SYN|ACK back: MSS 1240, SACK-perm, TS, WS 10.
pub const SYN_ACK: &str = concat!(
    "02000000000a02000000000b08004500003c000040003f06ae94c6120102c61200011451d848736414905439ebefa012",
    "fe3cd5e20000020404d80402080a52841ca020cda2d80103030a",
);
/// the handshake-completing ACK (NOP NOP TS).
pub const ACK: &str = concat!(
    "02000000000b02000000000a080045000034d6ad40004006d6eec6120001c6120102d84814515439ebef736414918010",
    "003f01d400000101080a20cda2d852841ca0",
);
/// PSH|ACK with 6 bytes "hello\n".
pub const DATA: &str = concat!(
    "02000000000b02000000000a08004500003ad6ae40004006d6e7c6120001c6120102d84814515439ebef736414918018",
    "003fbde900000101080a20cda2d852841ca068656c6c6f0a",
);
/// ACK with TS and 1 SACK block (after tail drops at the router).
pub const SACK_1: &str = concat!(
    "02000000000a02000000000b080045000040800640003f062e8ac6120102c61200011451d84873641491543a3d81b010",
    "004b16b400000101080a52841d6e20cda3a10101050a543a5a49543a5f15",
);
/// ACK with TS and 2 SACK blocks.
pub const SACK_2: &str = concat!(
    "02000000000a02000000000b080045000048800840003f062e80c6120102c61200011451d84873641491543a3d81d010",
    "004b434300000101080a52841d6f20cda3a101010512543a80a9543a8575543a5a49543a63e1",
);
/// ACK with TS and 3 SACK blocks (40 option bytes: the most that fit).
pub const SACK_3: &str = concat!(
    "02000000000a02000000000b080045000050800a40003f062e76c6120102c61200011451d84873641491543a3d81f010",
    "004b497200000101080a52841d7020cda3a10101051a543a93d9543a98a5543a80a9543a8a41543a5a49543a63e1",
);
/// FIN|ACK from the client.
pub const FIN_ACK: &str = concat!(
    "02000000000b02000000000a080045000034d7f840004006d5a3c6120001c6120102d8481451543e7fd5736414918011",
    "003f63db00000101080a20cdaba252841de3",
);
