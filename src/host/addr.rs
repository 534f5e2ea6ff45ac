//! Address arguments: `IP[/PREFIX]` and `IP[-LAST][/PREFIX]`.

use std::net::Ipv4Addr;

use anyhow::{bail, Context};

/// Most addresses one stack may own (the XDP program's address map holds 256).
pub const MAX_SOURCE_ADDRS: usize = 250;

/// Parses `IP[/PREFIX]` (default prefix /32) into a host address and its prefix length.
pub fn parse_addr(s: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, p.parse::<u8>().with_context(|| format!("prefix length in {s:?}"))?),
        None => (s, 32),
    };
    if prefix > 32 {
        bail!("prefix length {prefix} > 32");
    }
    let ip: Ipv4Addr = ip.parse().with_context(|| format!("IPv4 address {ip:?}"))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        bail!("{ip} cannot be a host address");
    }
    Ok((ip, prefix))
}

/// Parses `IP[-LAST][/PREFIX]`: one address or an inclusive range, all on the same subnet, at most
/// [`MAX_SOURCE_ADDRS`] of them, neither the network nor the broadcast address.
pub fn parse_addr_range(s: &str) -> anyhow::Result<(Vec<Ipv4Addr>, u8)> {
    let (ips, prefix) = match s.split_once('/') {
        Some((ips, p)) => (ips, Some(p)),
        None => (s, None),
    };
    let with_prefix = |ip: &str| match prefix {
        Some(p) => format!("{ip}/{p}"),
        None => ip.to_string(),
    };
    let Some((first, last)) = ips.split_once('-') else {
        let (a, p) = parse_addr(s)?;
        return Ok((vec![a], p));
    };
    let (first, p) = parse_addr(&with_prefix(first))?;
    let (last, _) = parse_addr(&with_prefix(last))?;
    let (lo, hi) = (u32::from(first), u32::from(last));
    if hi < lo {
        bail!("address range {s:?} ends before it starts");
    }
    if (hi - lo) as usize >= MAX_SOURCE_ADDRS {
        bail!("address range {s:?} has {} addresses; at most {MAX_SOURCE_ADDRS}", hi - lo + 1);
    }
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p as u32) };
    if lo & mask != hi & mask {
        bail!("address range {s:?} crosses its /{p} subnet");
    }
    let addrs: Vec<Ipv4Addr> = (lo..=hi).map(Ipv4Addr::from).collect();
    if p < 31 && addrs.iter().any(|a| u32::from(*a) & !mask == 0 || u32::from(*a) & !mask == !mask) {
        bail!("address range {s:?} includes the network or broadcast address of its /{p} subnet");
    }
    Ok((addrs, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(parse_addr("198.18.0.1/24").unwrap(), (Ipv4Addr::new(198, 18, 0, 1), 24));
        assert_eq!(parse_addr("198.18.0.1").unwrap(), (Ipv4Addr::new(198, 18, 0, 1), 32));
        assert!(parse_addr("198.18.0.1/33").is_err());
        assert!(parse_addr("0.0.0.0/0").is_err());
        assert!(parse_addr("224.0.0.1").is_err());
        assert!(parse_addr("x/24").is_err());
    }

    #[test]
    fn address_ranges() {
        let (a, p) = parse_addr_range("198.18.1.3/24").unwrap();
        assert_eq!((a, p), (vec![Ipv4Addr::new(198, 18, 1, 3)], 24));
        let (a, p) = parse_addr_range("198.18.1.10-198.18.1.40/24").unwrap();
        assert_eq!((a.len(), p), (31, 24));
        assert_eq!((a[0], a[30]), (Ipv4Addr::new(198, 18, 1, 10), Ipv4Addr::new(198, 18, 1, 40)));
        assert!(parse_addr_range("198.18.1.40-198.18.1.10/24").is_err(), "backwards");
        assert!(parse_addr_range("198.18.1.10-198.18.2.10/24").is_err(), "crosses the subnet");
        assert!(parse_addr_range("198.18.1.10-198.18.1.255/24").is_err(), "broadcast");
        assert!(parse_addr_range("198.18.0.1-198.18.3.1/16").is_err(), "too many");
        assert!(parse_addr_range("198.18.1.10-x/24").is_err());
    }
}
