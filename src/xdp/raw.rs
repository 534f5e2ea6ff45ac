//! [`XskRings`] straight on the kernel's AF_XDP interface, with no foreign call per descriptor: a [`Umem`], the
//! socket opened on it (`socket`), and the four rings driven by our own cursors (`cursor`). Owns the assembly and
//! the descriptor conversion; the system calls are in `socket`, the index protocol in `cursor`.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::abi;
use super::config::RingConfig;
use super::cursor::{ConsRing, ProdRing};
use super::ring::{Desc, XskRings};
use super::socket::{self, Socket};
use super::umem::{FrameLayout, FrameOwners, Umem};

/// How long `bind` may keep failing with EBUSY: a queue released by a socket that was just closed stays busy until
/// the kernel's deferred teardown ran.
const BIND_BUSY_FOR: Duration = Duration::from_secs(3);

/// [`XskRings`] on a raw AF_XDP socket and a [`Umem`].
pub struct RawRings {
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    rx: ConsRing<abi::xdp_desc>,
    tx: ProdRing<abi::xdp_desc>,
    // Drop order matters: the ring mappings, then the socket, then the UMEM it was registered with.
    _maps: [memmap2::MmapRaw; 4],
    fd: OwnedFd,
    umem: Umem,
    /// Which frames are ours (not in a ring): `frame` shows only those.
    owners: FrameOwners,
    zero_copy: bool,
}

// SAFETY: the ring pointers point into `_maps` and the UMEM pointer into `umem`, which move with this struct; the
// rings are single-producer/single-consumer and the struct is used by one thread at a time.
unsafe impl Send for RawRings {}

impl RawRings {
    /// Maps the UMEM and binds an AF_XDP socket to `ifname` queue `queue` with need_wakeup and `cfg.bind`'s mode.
    /// Retries EBUSY on bind for a while (see [`BIND_BUSY_FOR`]).
    pub fn create(ifname: &str, queue: u32, cfg: &RingConfig) -> anyhow::Result<RawRings> {
        for (name, size) in
            [("fill", cfg.fill_size), ("completion", cfg.comp_size), ("rx", cfg.rx_size), ("tx", cfg.tx_size)]
        {
            if !size.is_power_of_two() {
                bail!("{name} ring size {size} is not a power of two");
            }
        }
        let Some(ifindex) = crate::sys::if_index(ifname) else {
            bail!("no interface named {ifname} (in this network namespace)");
        };
        let umem = Umem::new(cfg.frame_count, cfg.frame_size, cfg.huge_pages).context("mapping the UMEM")?;
        let deadline = Instant::now() + BIND_BUSY_FOR;
        let mut delay = Duration::from_millis(10);
        let sock = loop {
            match Socket::open(&umem, ifindex, queue, cfg) {
                Ok(s) => break s,
                Err((step, e)) => {
                    if step == "bind" && e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline {
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(Duration::from_millis(200));
                        continue;
                    }
                    bail!("creating the AF_XDP socket on {ifname} queue {queue}: {step}: {e}");
                }
            }
        };
        let zero_copy = socket::zero_copy(sock.fd.as_raw_fd()).unwrap_or(false);
        Ok(RawRings {
            fill: sock.fill,
            comp: sock.comp,
            rx: sock.rx,
            tx: sock.tx,
            _maps: sock.maps,
            fd: sock.fd,
            owners: FrameOwners::new(umem.layout()),
            umem,
            zero_copy,
        })
    }

    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// Whether the kernel bound the socket in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }
}

impl XskRings for RawRings {
    fn rx_consume(&mut self, out: &mut [Desc]) -> usize {
        let n = self.rx.consume(out, |d| Desc { addr: d.addr, len: d.len });
        self.owners.take(out[..n].iter().map(|d| d.addr));
        n
    }

    fn fill_free(&mut self) -> usize {
        self.fill.free_exact() as usize
    }

    fn fill_produce(&mut self, addrs: &[u64]) -> usize {
        let n = self.fill.produce(addrs, |&a| a);
        self.owners.give(addrs[..n].iter().copied());
        n
    }

    fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    fn tx_free(&mut self) -> usize {
        self.tx.free_exact() as usize
    }

    fn tx_pending(&mut self) -> usize {
        self.tx.pending() as usize
    }

    fn tx_produce(&mut self, descs: &[Desc]) -> usize {
        let n = self.tx.produce(descs, |d| abi::xdp_desc { addr: d.addr, len: d.len, options: 0 });
        self.owners.give(descs[..n].iter().map(|d| d.addr));
        n
    }

    fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    fn comp_consume(&mut self, out: &mut [u64]) -> usize {
        let n = self.comp.consume(out, |a| a);
        self.owners.take(out[..n].iter().copied());
        n
    }

    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn layout(&self) -> FrameLayout {
        self.umem.layout()
    }

    fn frame(&self, addr: u64, len: usize) -> &[u8] {
        if !self.owners.holds(addr) {
            return &[];
        }
        // SAFETY: the frame is in no ring (`owners`, kept by the ring methods), so the kernel neither reads nor
        // writes it, and the ring methods need `&mut self` while the slice borrows `self`.
        unsafe { self.umem.frame(addr, len) }
    }

    fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        if !self.owners.holds(addr) {
            return &mut [];
        }
        // SAFETY: as `frame`.
        unsafe { self.umem.frame_mut(addr, len) }
    }
}
