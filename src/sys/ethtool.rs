//! The SIOCETHTOOL requests xdptcp makes (as `ethtool -x` does), with the buffers sized here from what the kernel
//! reported, so no caller can hand the kernel a buffer shorter than the command writes.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GRSSH: u32 = 0x46;
const ETHTOOL_GRXFH: u32 = 0x29;
/// `struct ethtool_rxfh` up to its flexible array: cmd, rss_context, indir_size, key_size, hfunc, input_xfrm,
/// rsvd8[2], rsvd32.
const RXFH_HEADER: usize = 24;
/// `struct ethtool_rxnfc` is smaller; the kernel copies at most this much for GRXFH.
const RXNFC_LEN: usize = 256;
/// Sizes a driver may plausibly report; anything bigger is refused rather than allocated.
const MAX_INDIR: usize = 1 << 16;
const MAX_KEY: usize = 1024;

/// `struct ifreq` for SIOCETHTOOL: the interface name and a pointer to the command buffer.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: *mut u8,
    _pad: [u8; 16],
}

/// A datagram socket used only as the handle of SIOCETHTOOL requests about one interface.
pub struct Ethtool {
    fd: OwnedFd,
    name: [u8; 16],
}

/// An interface's RSS configuration as `ETHTOOL_GRSSH` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rxfh {
    pub indirection: Vec<u32>,
    pub key: Vec<u8>,
    /// The hash function (`ETH_RSS_HASH_*` bit).
    pub hfunc: u8,
}

impl Ethtool {
    pub fn new(iface: &str) -> io::Result<Ethtool> {
        if iface.is_empty() || iface.len() >= 16 || iface.contains('\0') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"));
        }
        let mut name = [0u8; 16];
        name[..iface.len()].copy_from_slice(iface.as_bytes());
        let fd = rustix::net::socket(rustix::net::AddressFamily::INET, rustix::net::SocketType::DGRAM, None)?;
        Ok(Ethtool { fd, name })
    }

    /// One request. `buf` must be at least as long as what the command `buf` starts with reads and writes: only
    /// this module's callers build such buffers, from sizes the kernel reported.
    fn call(&self, buf: &mut [u8]) -> io::Result<()> {
        let mut req = IfReq { name: self.name, data: buf.as_mut_ptr(), _pad: [0; 16] };
        // SAFETY: `req` is a live ifreq whose name is NUL-terminated and whose `data` points at `buf`, which every
        // caller below sizes for the command it carries (the header, the header plus the reported table and key,
        // or a whole ethtool_rxnfc).
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), SIOCETHTOOL as _, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// ETHTOOL_GRSSH: the RSS indirection table, key and hash function. Drivers without RSS (veth) answer
    /// EOPNOTSUPP.
    pub fn rxfh(&self) -> io::Result<Rxfh> {
        let mut head = [0u8; RXFH_HEADER];
        head[..4].copy_from_slice(&ETHTOOL_GRSSH.to_ne_bytes());
        self.call(&mut head)?;
        let indir_size = u32::from_ne_bytes([head[8], head[9], head[10], head[11]]) as usize;
        let key_size = u32::from_ne_bytes([head[12], head[13], head[14], head[15]]) as usize;
        if indir_size > MAX_INDIR || key_size > MAX_KEY {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "implausible RSS sizes"));
        }
        let mut full = vec![0u8; RXFH_HEADER + indir_size * 4 + key_size];
        full[..16].copy_from_slice(&head[..16]);
        self.call(&mut full)?;
        // The kernel answers with the sizes it filled; never trust them past the buffer we made.
        let indirection = full[RXFH_HEADER..RXFH_HEADER + indir_size * 4]
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Rxfh { indirection, key: full[RXFH_HEADER + indir_size * 4..].to_vec(), hfunc: full[16] })
    }

    /// ETHTOOL_GRXFH: the fields (`RXH_*` bits) hashed for a flow type (`TCP_V4_FLOW` = 1, ...).
    pub fn rx_flow_hash(&self, flow_type: u32) -> io::Result<u64> {
        let mut rxnfc = [0u8; RXNFC_LEN];
        rxnfc[..4].copy_from_slice(&ETHTOOL_GRXFH.to_ne_bytes());
        rxnfc[4..8].copy_from_slice(&flow_type.to_ne_bytes());
        self.call(&mut rxnfc)?;
        let mut data = [0u8; 8];
        data.copy_from_slice(&rxnfc[8..16]);
        Ok(u64::from_ne_bytes(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_loopback_has_no_rss() {
        assert!(Ethtool::new("").is_err());
        assert!(Ethtool::new("a-very-long-ifname0").is_err());
        assert!(Ethtool::new("lo\0x").is_err());
        // Loopback has no RSS: an error from the kernel, not a crash or a garbage table.
        assert!(Ethtool::new("lo").unwrap().rxfh().is_err());
        assert!(Ethtool::new("no-such-if0").unwrap().rxfh().is_err());
    }
}
