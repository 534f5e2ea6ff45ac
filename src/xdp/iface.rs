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
        let sys = format!("/sys/class/net/{name}");
        let mac_text = std::fs::read_to_string(format!("{sys}/address")).with_context(|| format!("MAC of {name}"))?;
        let mac = parse_mac(mac_text.trim()).with_context(|| format!("MAC of {name}: {:?}", mac_text.trim()))?;
        let mtu = std::fs::read_to_string(format!("{sys}/mtu"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1500);
        let rx_queues = std::fs::read_dir(format!("{sys}/queues"))
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count())
            .unwrap_or(1)
            .max(1) as u32;
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
