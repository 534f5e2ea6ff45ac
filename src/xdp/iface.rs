//! What we need to know about a network interface: index, MAC, MTU, queue count, and the IPv4 addresses the kernel
//! has on it (xdptcp refuses to share its address with the kernel: both would answer ARP and TCP).

use std::ffi::{CStr, CString};
use std::net::Ipv4Addr;

use anyhow::{bail, Context};

#[derive(Clone, Debug)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// Number of rx queues (from sysfs; 1 if unknown).
    pub rx_queues: u32,
}

impl Interface {
    pub fn lookup(name: &str) -> anyhow::Result<Interface> {
        let c = CString::new(name).context("interface name")?;
        // SAFETY: a valid NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if index == 0 {
            bail!("no interface named {name} (in this network namespace)");
        }
        // ioctls, not sysfs: /sys shows the namespace it was mounted in, which need not be the caller's (a thread
        // that entered a namespace with setns still sees the old /sys).
        let sock = Ioctl::new()?;
        let mut req = IfReq::new(name)?;
        sock.call(libc::SIOCGIFHWADDR, &mut req).with_context(|| format!("MAC of {name}"))?;
        // SAFETY: SIOCGIFHWADDR filled the sockaddr member of the union.
        let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(hw.sa_data.iter()) {
            *m = *b as u8;
        }
        let mut req = IfReq::new(name)?;
        sock.call(libc::SIOCGIFMTU, &mut req).with_context(|| format!("MTU of {name}"))?;
        // SAFETY: SIOCGIFMTU filled the int member of the union.
        let mtu = unsafe { req.ifr_ifru.ifru_mtu } as u32;
        let rx_queues = sock.rx_queues(name).unwrap_or(1).max(1);
        Ok(Interface { name: name.to_string(), index, mac, mtu, rx_queues })
    }

    /// IPv4 addresses the kernel has configured on this interface.
    pub fn kernel_ipv4_addrs(&self) -> anyhow::Result<Vec<Ipv4Addr>> {
        let mut out = Vec::new();
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs allocates a list we walk read-only and free below.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return Err(std::io::Error::last_os_error()).context("getifaddrs");
        }
        let mut cur = head;
        while !cur.is_null() {
            // SAFETY: `cur` is a node of the list getifaddrs returned.
            let ifa = unsafe { &*cur };
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            // SAFETY: non-null name from the kernel, NUL-terminated.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
            // SAFETY: non-null sockaddr; the family says how to read it.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if name.to_bytes() != self.name.as_bytes() || family != libc::AF_INET {
                continue;
            }
            // SAFETY: AF_INET addresses are sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
        }
        // SAFETY: frees the list from getifaddrs exactly once.
        unsafe { libc::freeifaddrs(head) };
        Ok(out)
    }
}

type IfReq = libc::ifreq;

trait IfReqExt: Sized {
    fn new(name: &str) -> anyhow::Result<Self>;
}

impl IfReqExt for libc::ifreq {
    fn new(name: &str) -> anyhow::Result<libc::ifreq> {
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
        if name.len() >= r.ifr_name.len() {
            bail!("interface name {name:?} too long");
        }
        for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        Ok(r)
    }
}

/// A datagram socket to issue interface ioctls on (in the caller's network namespace).
struct Ioctl(std::os::fd::OwnedFd);

/// `struct ethtool_channels` (uapi ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}
const ETHTOOL_GCHANNELS: u32 = 0x3c;
const SIOCETHTOOL: libc::c_ulong = 0x8946;

impl Ioctl {
    fn new() -> anyhow::Result<Ioctl> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket(2); the fd is owned at once.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("socket for interface ioctls");
        }
        // SAFETY: fresh fd owned by nobody else.
        Ok(Ioctl(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    fn call(&self, req: libc::c_ulong, ifr: &mut libc::ifreq) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: `ifr` is a valid ifreq for the interface ioctls used here.
        if unsafe { libc::ioctl(self.0.as_raw_fd(), req as _, ifr as *mut libc::ifreq) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receive queues from ETHTOOL_GCHANNELS: NICs report combined channels, veth reports rx.
    fn rx_queues(&self, name: &str) -> Option<u32> {
        let mut ch = EthtoolChannels { cmd: ETHTOOL_GCHANNELS, ..Default::default() };
        let mut ifr = libc::ifreq::new(name).ok()?;
        ifr.ifr_ifru.ifru_data = &mut ch as *mut EthtoolChannels as *mut libc::c_char;
        self.call(SIOCETHTOOL, &mut ifr).ok()?;
        Some(ch.rx_count.max(ch.combined_count))
    }
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

pub fn format_mac(m: &[u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m = parse_mac("02:1a:00:ff:0b:c3").unwrap();
        assert_eq!(format_mac(&m), "02:1a:00:ff:0b:c3");
        assert!(parse_mac("02:1a:00:ff:0b").is_none());
        assert!(parse_mac("02:1a:00:ff:0b:c3:00").is_none());
        assert!(parse_mac("02:1a:00:ff:0b:zz").is_none());
        assert!(parse_mac("002:1a:00:ff:0b:01").is_none());
    }

    #[test]
    fn loopback_is_found() {
        let lo = Interface::lookup("lo").unwrap();
        assert!(lo.index > 0);
        assert!(lo.kernel_ipv4_addrs().unwrap().contains(&Ipv4Addr::LOCALHOST));
        assert!(Interface::lookup("no-such-if0").is_err());
    }
}
