//! Placeholder until the implementation from branch `tcpds` lands.
use std::hash::Hasher;
use std::net::SocketAddrV4;
use siphasher::sip::SipHasher24;
use crate::time::Instant;
use crate::wire::SeqNum;
pub struct IsnGenerator { key: [u8; 16] }
impl IsnGenerator {
    pub fn new(key: [u8; 16]) -> Self { IsnGenerator { key } }
    pub fn hash_tuple(&self, l: SocketAddrV4, r: SocketAddrV4) -> u64 { let mut h = SipHasher24::new_with_key(&self.key); h.write(&l.ip().octets()); h.write_u16(l.port()); h.write(&r.ip().octets()); h.write_u16(r.port()); h.finish() }
    pub fn isn(&self, l: SocketAddrV4, r: SocketAddrV4, now: Instant) -> SeqNum { SeqNum((self.hash_tuple(l, r) as u32).wrapping_add((now.as_micros() / 4) as u32)) }
    pub fn ts_offset(&self, l: SocketAddrV4, r: SocketAddrV4) -> u32 { (self.hash_tuple(l, r) >> 32) as u32 }
}
