//! Loads the steering program (`bpf/xdptcp.bpf.c`, compiled by `build.rs`) and attaches it to an interface through
//! a bpf_link, so the kernel detaches it when the last reference (our process) goes away, even on SIGKILL.
//!
//! The maps it steers by are filled from here: the XSKMAP (queue -> AF_XDP socket), the stack's addresses, listened
//! ports and the local ports of active opens.

use std::fmt;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject};

#[allow(clippy::all, clippy::pedantic, unsafe_op_in_unsafe_fn)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/xdptcp.skel.rs"));
}
use skel::{XdptcpSkel, XdptcpSkelBuilder};

/// `local_addrs` value bits (see the BPF source).
const ADDR_ARP_ICMP: u32 = 1;
const ADDR_OWN_TCP: u32 = 2;

/// Kernel `XDP_FLAGS_*` (uapi `if_link.h`).
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// How the program is attached.
#[derive(Copy, Clone, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum XdpMode {
    /// In the driver (fast; veth, most NICs).
    Native,
    /// In the generic (skb) path: works everywhere, slower.
    Generic,
    /// Native where the driver supports it, else generic.
    Auto,
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
            XdpMode::Auto => "auto",
        })
    }
}

/// Counters the program keeps (a per-CPU array summed here), in the order of `enum stat` in the BPF source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteerStats {
    pub seen: u64,
    pub redirect_arp: u64,
    pub redirect_icmp: u64,
    pub redirect_tcp: u64,
    pub pass: u64,
    pub malformed: u64,
    pub no_socket: u64,
}

/// Key of `listen_ports` and `active_ports`: address and port in network byte order, padded to 8 bytes.
fn endpoint_key(addr: Ipv4Addr, port: u16) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&addr.octets());
    k[4..6].copy_from_slice(&port.to_be_bytes());
    k
}

/// The loaded program, attached to one interface. Dropping it detaches the program (closes the link) and frees
/// the maps: the interface is left as it was found.
pub struct XdpProgram {
    // The skeleton borrows the object storage below; it is dropped first (see Drop) and the storage freed after.
    skel: ManuallyDrop<XdptcpSkel<'static>>,
    storage: *mut MaybeUninit<OpenObject>,
    link: Option<OwnedFd>,
    ifindex: u32,
    mode: XdpMode,
}

// SAFETY: the skeleton holds libbpf pointers that are only used through `&self`/`&mut self` of this struct; libbpf
// objects are not tied to the thread that created them. The control plane owns this value and hands it across
// threads only as a whole.
unsafe impl Send for XdpProgram {}

impl XdpProgram {
    /// Loads the program into the kernel (not yet attached). Needs CAP_BPF (root).
    pub fn load() -> anyhow::Result<XdpProgram> {
        let storage: *mut MaybeUninit<OpenObject> = Box::into_raw(Box::new(MaybeUninit::uninit()));
        // SAFETY: `storage` is a fresh, exclusively owned allocation that outlives the skeleton: Drop frees it only
        // after the skeleton is gone, and on the error paths below nothing borrows it any more.
        let storage_ref: &'static mut MaybeUninit<OpenObject> = unsafe { &mut *storage };
        let loaded = XdptcpSkelBuilder::default()
            .open(storage_ref)
            .context("opening the XDP object")
            .and_then(|open| open.load().context("loading the XDP program (needs root / CAP_BPF)"));
        match loaded {
            Ok(skel) => {
                Ok(XdpProgram { skel: ManuallyDrop::new(skel), storage, link: None, ifindex: 0, mode: XdpMode::Auto })
            }
            Err(e) => {
                // SAFETY: the failed open/load dropped whatever it wrote into the storage; nothing refers to it.
                drop(unsafe { Box::from_raw(storage) });
                Err(e)
            }
        }
    }

    /// Attaches the program to `ifindex` through a bpf_link. `Auto` tries native first, then generic. Returns the
    /// mode actually used.
    pub fn attach(&mut self, ifindex: u32, mode: XdpMode) -> anyhow::Result<XdpMode> {
        if self.link.is_some() {
            bail!("XDP program already attached");
        }
        let modes: &[XdpMode] = match mode {
            XdpMode::Native => &[XdpMode::Native],
            XdpMode::Generic => &[XdpMode::Generic],
            XdpMode::Auto => &[XdpMode::Native, XdpMode::Generic],
        };
        let prog_fd = self.skel.progs.xdptcp_steer.as_fd().as_raw_fd();
        let mut last_err = None;
        for &m in modes {
            match link_create_xdp(prog_fd, ifindex, m) {
                Ok(fd) => {
                    self.link = Some(fd);
                    self.ifindex = ifindex;
                    self.mode = m;
                    return Ok(m);
                }
                Err(e) => {
                    tracing::debug!("XDP attach in {m} mode failed: {e}");
                    last_err = Some((m, e));
                }
            }
        }
        let (m, e) = last_err.expect("at least one mode tried");
        Err(anyhow::Error::new(e).context(format!(
            "attaching the XDP program to ifindex {ifindex} in {m} mode (is another XDP program attached?)"
        )))
    }

    /// The interface and mode the program is attached with, if attached.
    pub fn attached(&self) -> Option<(u32, XdpMode)> {
        self.link.as_ref().map(|_| (self.ifindex, self.mode))
    }

    /// Detaches the program now (Drop does the same).
    pub fn detach(&mut self) {
        self.link = None;
    }

    /// Steers frames arriving on `queue` to the AF_XDP socket `fd`.
    pub fn register_socket(&mut self, queue: u32, fd: RawFd) -> anyhow::Result<()> {
        let fd = u32::try_from(fd).context("negative socket fd")?;
        self.skel
            .maps
            .xsks_map
            .update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .with_context(|| format!("registering the AF_XDP socket of queue {queue} in the XSKMAP"))
    }

    /// Stops steering frames of `queue` (they pass to the kernel until a socket is registered again).
    pub fn unregister_socket(&mut self, queue: u32) -> anyhow::Result<()> {
        delete_ignoring_absent(&self.skel.maps.xsks_map, &queue.to_ne_bytes())
    }

    /// Declares `addr` the stack's: ARP and ping for it, and, with `own_all_tcp`, every TCP segment to it (so
    /// unknown ports are answered with RST by the engine instead of vanishing).
    pub fn add_local_addr(&mut self, addr: Ipv4Addr, own_all_tcp: bool) -> anyhow::Result<()> {
        let flags = ADDR_ARP_ICMP | if own_all_tcp { ADDR_OWN_TCP } else { 0 };
        self.skel
            .maps
            .local_addrs
            .update(&addr.octets(), &flags.to_ne_bytes(), MapFlags::ANY)
            .with_context(|| format!("adding {addr} to the XDP address map"))
    }

    /// Takes 802.1Q frames tagged `vid` (and no untagged ones), or with `None` untagged frames only; every other
    /// tag, 802.1ad included, goes to the kernel untouched (review M4).
    pub fn set_vlan(&mut self, vid: Option<u16>) -> anyhow::Result<()> {
        let v = u32::from(vid.unwrap_or(0));
        self.skel
            .maps
            .steer_config
            .update(&0u32.to_ne_bytes(), &v.to_ne_bytes(), MapFlags::ANY)
            .context("setting the VLAN in the XDP config map")
    }

    pub fn remove_local_addr(&mut self, addr: Ipv4Addr) -> anyhow::Result<()> {
        delete_ignoring_absent(&self.skel.maps.local_addrs, &addr.octets())
    }

    /// Steers TCP to `(addr, port)`; `addr` 0.0.0.0 is a wildcard listener.
    pub fn add_listen(&mut self, addr: Ipv4Addr, port: u16) -> anyhow::Result<()> {
        self.skel
            .maps
            .listen_ports
            .update(&endpoint_key(addr, port), &1u32.to_ne_bytes(), MapFlags::ANY)
            .with_context(|| format!("adding listener {addr}:{port} to the XDP map"))
    }

    pub fn remove_listen(&mut self, addr: Ipv4Addr, port: u16) -> anyhow::Result<()> {
        delete_ignoring_absent(&self.skel.maps.listen_ports, &endpoint_key(addr, port))
    }

    /// Steers TCP to the local end of an active open.
    pub fn add_active(&mut self, addr: Ipv4Addr, port: u16) -> anyhow::Result<()> {
        self.skel
            .maps
            .active_ports
            .update(&endpoint_key(addr, port), &1u32.to_ne_bytes(), MapFlags::ANY)
            .with_context(|| format!("adding active port {addr}:{port} to the XDP map"))
    }

    pub fn remove_active(&mut self, addr: Ipv4Addr, port: u16) -> anyhow::Result<()> {
        delete_ignoring_absent(&self.skel.maps.active_ports, &endpoint_key(addr, port))
    }

    /// The program's counters, summed over CPUs.
    pub fn stats(&self) -> anyhow::Result<SteerStats> {
        let mut v = [0u64; 7];
        for (i, slot) in v.iter_mut().enumerate() {
            let per_cpu = self
                .skel
                .maps
                .stats
                .lookup_percpu(&(i as u32).to_ne_bytes(), MapFlags::ANY)
                .context("reading XDP stats")?
                .unwrap_or_default();
            *slot = per_cpu
                .iter()
                .filter_map(|b| b.get(..8).map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes"))))
                .sum();
        }
        Ok(SteerStats {
            seen: v[0],
            redirect_arp: v[1],
            redirect_icmp: v[2],
            redirect_tcp: v[3],
            pass: v[4],
            malformed: v[5],
            no_socket: v[6],
        })
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // Closing the link detaches the program.
        self.link = None;
        // SAFETY: the skeleton is dropped exactly once, here, before the storage it borrows is freed.
        unsafe {
            ManuallyDrop::drop(&mut self.skel);
            drop(Box::from_raw(self.storage));
        }
    }
}

fn delete_ignoring_absent(map: &dyn MapCore, key: &[u8]) -> anyhow::Result<()> {
    match map.delete(key) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context("deleting an XDP map entry"),
    }
}

/// `bpf_link_create(BPF_XDP)` with the mode flag: a link, unlike a netlink attachment, goes away with the process.
fn link_create_xdp(prog_fd: RawFd, ifindex: u32, mode: XdpMode) -> std::io::Result<OwnedFd> {
    let flags = match mode {
        XdpMode::Native => XDP_FLAGS_DRV_MODE,
        XdpMode::Generic => XDP_FLAGS_SKB_MODE,
        XdpMode::Auto => 0,
    };
    let opts = libbpf_rs::libbpf_sys::bpf_link_create_opts {
        sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_link_create_opts>() as _,
        flags,
        ..Default::default()
    };
    // SAFETY: plain syscall wrapper; `opts` is a valid, sized options struct living across the call.
    let fd = unsafe {
        libbpf_rs::libbpf_sys::bpf_link_create(prog_fd, ifindex as i32, libbpf_rs::libbpf_sys::BPF_XDP, &opts)
    };
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a fresh fd returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_key_is_network_order_and_padded() {
        let k = endpoint_key(Ipv4Addr::new(198, 18, 0, 1), 8080);
        assert_eq!(k, [198, 18, 0, 1, 0x1f, 0x90, 0, 0]);
    }

    #[test]
    fn loads_when_privileged() {
        // Loading needs CAP_BPF; without it this is an environment limit, not a defect.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: not root");
            return;
        }
        let mut p = XdpProgram::load().expect("load");
        p.add_local_addr(Ipv4Addr::new(198, 18, 0, 1), true).unwrap();
        p.add_listen(Ipv4Addr::new(198, 18, 0, 1), 80).unwrap();
        p.remove_listen(Ipv4Addr::new(198, 18, 0, 1), 80).unwrap();
        p.remove_listen(Ipv4Addr::new(198, 18, 0, 1), 80).unwrap(); // absent: fine
        assert_eq!(p.stats().unwrap(), SteerStats::default());
        assert!(p.attached().is_none());
    }

    /// A frame for `dst`:80 (TCP), optionally behind one tag (TPID, TCI).
    fn tcp_frame(dst: Ipv4Addr, tag: Option<(u16, u16)>) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        if let Some((tpid, tci)) = tag {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 1, 2]);
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        f
    }

    /// Review M4 at the BPF level (BPF_PROG_TEST_RUN, no interface needed): with `--vlan 7` only frames tagged 7
    /// are taken for the stack (no socket is registered in a test run, so "taken" shows as `no_socket`); other
    /// VIDs, untagged frames and 802.1ad tags are passed to the kernel. Without a VLAN, tagged frames are passed.
    #[test]
    fn steers_only_the_configured_vlan() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: not root");
            return;
        }
        let our = Ipv4Addr::new(198, 18, 0, 1);
        let mut p = XdpProgram::load().expect("load");
        p.add_local_addr(our, true).unwrap();
        let taken = |p: &XdpProgram, frame: &[u8]| {
            let before = p.stats().unwrap().no_socket;
            let input = libbpf_rs::ProgramInput { data_in: Some(frame), ..Default::default() };
            let out = p.skel.progs.xdptcp_steer.test_run(input).expect("test run");
            assert_eq!(out.return_value, 2, "XDP_PASS either way without a socket");
            p.stats().unwrap().no_socket > before
        };
        p.set_vlan(Some(7)).unwrap();
        assert!(taken(&p, &tcp_frame(our, Some((0x8100, 7)))), "VLAN 7");
        assert!(taken(&p, &tcp_frame(our, Some((0x8100, 0x6007)))), "VLAN 7 with a priority");
        assert!(!taken(&p, &tcp_frame(our, Some((0x8100, 8)))), "VLAN 8 stays with the kernel");
        assert!(!taken(&p, &tcp_frame(our, None)), "untagged stays with the kernel");
        assert!(!taken(&p, &tcp_frame(our, Some((0x88a8, 7)))), "802.1ad stays with the kernel");
        p.set_vlan(None).unwrap();
        assert!(taken(&p, &tcp_frame(our, None)), "untagged");
        assert!(!taken(&p, &tcp_frame(our, Some((0x8100, 7)))), "no VLAN configured: tagged frames are not ours");
        assert!(!taken(&p, &tcp_frame(our, Some((0x88a8, 7)))));
    }
}
