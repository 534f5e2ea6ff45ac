//! The fast Internet checksum against the RFC 1071 word-at-a-time loop, and split/combine consistency.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdptcp::wire::checksum;

fn naive(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += word as u32;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fuzz_target!(|data: &[u8]| {
    let fast = checksum::data(data);
    assert_eq!(fast, naive(data));
    if data.len() >= 2 {
        let cut = (data[0] as usize * 2).min(data.len() & !1);
        assert_eq!(checksum::combine(&[checksum::data(&data[..cut]), checksum::data(&data[cut..])]), fast);
    }
});
