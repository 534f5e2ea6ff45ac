//! [`XskRings`] over the `xsk-rs` crate (libxdp underneath), which maps the UMEM itself; kept selectable
//! (`--rings xsk-rs`) to compare against our own [`RawRings`](super::RawRings). Owns only the adaptation to
//! `xsk-rs`'s types; the kicks, wait and statistics are the trait's defaults on the same socket.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use super::config::{RingConfig, XskBind};
use super::ring::{Desc, XskRings};
use super::umem::FrameLayout;

/// [`XskRings`] over `xsk-rs`.
pub struct XskRsRings {
    umem: xsk_rs::Umem,
    fill: xsk_rs::FillQueue,
    comp: xsk_rs::CompQueue,
    tx: xsk_rs::TxQueue,
    rx: xsk_rs::RxQueue,
    /// One descriptor per frame, by frame index: xsk-rs only produces descriptors it created itself.
    descs: Vec<xsk_rs::FrameDesc>,
    scratch: Vec<xsk_rs::FrameDesc>,
    base: *mut u8,
    frame_size: u64,
    /// Offset of the packet data within a frame (XDP headroom).
    data_offset: u64,
    /// Bytes of frames in the UMEM.
    pub umem_len: u64,
    fill_size: u32,
    tx_size: u32,
    fd: RawFd,
    /// True when the UMEM is on huge pages.
    pub huge_pages: bool,
    /// Which frames are ours (not in a ring): `frame` shows only those.
    owners: super::umem::FrameOwners,
}

// SAFETY: the raw `base` pointer points into the UMEM mapping owned by `umem`, which moves with this struct; the
// rings are single-producer/single-consumer and this struct is used by one thread at a time.
unsafe impl Send for XskRsRings {}

impl XskRsRings {
    /// Creates the UMEM and an AF_XDP socket bound to `ifname` queue `queue`, with need_wakeup, without loading
    /// libxdp's default program (ours steers). Retries EBUSY for a while: a queue just released by a previous
    /// process can stay busy for a moment.
    pub fn create(ifname: &str, queue: u32, cfg: &RingConfig) -> anyhow::Result<XskRsRings> {
        use anyhow::Context;
        use xsk_rs::config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};

        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(cfg.frame_size).context("frame size")?)
            .fill_queue_size(QueueSize::new(cfg.fill_size).context("fill ring size")?)
            .comp_queue_size(QueueSize::new(cfg.comp_size).context("completion ring size")?)
            .build()
            .context("UMEM config")?;
        let count = std::num::NonZeroU32::new(cfg.frame_count).context("frame count must be > 0")?;
        let (umem, descs, huge) = match cfg.huge_pages.then(|| xsk_rs::Umem::new(umem_cfg, count, true)) {
            Some(Ok((u, d))) => (u, d, true),
            _ => {
                let (u, d) = xsk_rs::Umem::new(umem_cfg, count, false).context("creating the UMEM")?;
                (u, d, false)
            }
        };
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(QueueSize::new(cfg.rx_size).context("rx ring size")?)
            .tx_queue_size(QueueSize::new(cfg.tx_size).context("tx ring size")?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(
                BindFlags::XDP_USE_NEED_WAKEUP
                    | match cfg.bind {
                        XskBind::Auto => BindFlags::empty(),
                        XskBind::Copy => BindFlags::XDP_COPY,
                        XskBind::ZeroCopy => BindFlags::XDP_ZEROCOPY,
                    },
            )
            .build();
        let iface: Interface = ifname.parse().context("interface name")?;
        let mut delay = std::time::Duration::from_millis(10);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let (tx, rx, fq_cq) = loop {
            // SAFETY: the UMEM is not shared with another socket on this (interface, queue).
            match unsafe { xsk_rs::Socket::new(sock_cfg, &umem, &iface, queue) } {
                Ok(s) => break s,
                Err(e) => {
                    let busy = std::error::Error::source(&e)
                        .and_then(|s| s.downcast_ref::<io::Error>())
                        .and_then(io::Error::raw_os_error)
                        == Some(libc::EBUSY);
                    if busy && std::time::Instant::now() < deadline {
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(std::time::Duration::from_millis(200));
                        continue;
                    }
                    let src = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default();
                    anyhow::bail!("creating the AF_XDP socket on {ifname} queue {queue}: {e}: {src}");
                }
            }
        };
        let (fill, comp) = fq_cq.context("the UMEM's fill and completion rings were not handed back")?;
        let fd = tx.fd().as_raw_fd();
        let first = *descs.first().context("UMEM without frames")?;
        // SAFETY: reads no bytes (the descriptor's length is 0); only the address of frame 0's data is taken.
        let data0 = unsafe { umem.data(&first) }.contents().as_ptr() as *mut u8;
        let data_offset = first.addr() as u64;
        // SAFETY: xsk-rs places frame data at `base + desc.addr`; frame 0's data is at `base + data_offset`.
        let base = unsafe { data0.sub(first.addr()) };
        Ok(XskRsRings {
            umem,
            fill,
            comp,
            tx,
            rx,
            scratch: vec![xsk_rs::FrameDesc::default(); 256],
            frame_size: cfg.frame_size as u64,
            data_offset,
            umem_len: cfg.frame_size as u64 * cfg.frame_count as u64,
            descs,
            base,
            fill_size: cfg.fill_size,
            tx_size: cfg.tx_size,
            fd,
            huge_pages: huge,
            owners: super::umem::FrameOwners::new(super::umem::FrameLayout {
                frame_size: cfg.frame_size as u64,
                data_offset,
                count: cfg.frame_count as u64,
            }),
        })
    }

    fn index(&self, addr: u64) -> Option<usize> {
        self.layout().index(addr)
    }
}

impl XskRings for XskRsRings {
    fn rx_consume(&mut self, out: &mut [Desc]) -> usize {
        let n = out.len().min(self.scratch.len());
        // SAFETY: the descriptors are only read back here; frames are accessed through `frame`.
        let got = unsafe { self.rx.consume(&mut self.scratch[..n]) };
        for (o, d) in out.iter_mut().zip(&self.scratch[..got]) {
            *o = Desc { addr: d.addr() as u64, len: d.lengths().data() as u32 };
        }
        self.owners.take(out[..got].iter().map(|d| d.addr));
        got
    }

    fn fill_free(&mut self) -> usize {
        self.fill.nb_free(self.fill_size) as usize
    }

    fn fill_produce(&mut self, addrs: &[u64]) -> usize {
        let mut done = 0;
        // In chunks of the scratch size; the caller sized the whole batch by fill_free, so no chunk fails.
        for chunk in addrs.chunks(self.scratch.len()) {
            let mut n = 0;
            for &a in chunk {
                if let Some(i) = self.index(a) {
                    self.scratch[n] = self.descs[i];
                    n += 1;
                }
            }
            // SAFETY: the frames are owned by the worker and handed to the kernel here.
            let got = unsafe { self.fill.produce(&self.scratch[..n]) };
            self.owners.give(self.scratch[..got].iter().map(|d| d.addr() as u64));
            done += got;
            if got < n {
                break;
            }
        }
        done
    }

    fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    fn tx_free(&mut self) -> usize {
        self.tx.nb_free(self.tx_size) as usize
    }

    fn tx_pending(&mut self) -> usize {
        self.tx_size as usize - self.tx.nb_free_exact() as usize
    }

    fn tx_produce(&mut self, descs: &[Desc]) -> usize {
        let mut done = 0;
        for chunk in descs.chunks(self.scratch.len()) {
            let mut n = 0;
            for d in chunk {
                let Some(i) = self.index(d.addr) else { continue };
                let mut fd = self.descs[i];
                // SAFETY: the frame is owned by the worker; setting the cursor position only records the length.
                unsafe { self.umem.data_mut(&mut fd).cursor().set_pos(d.len as usize) };
                self.scratch[n] = fd;
                n += 1;
            }
            // SAFETY: the frames are owned by the worker and handed to the kernel here.
            let got = unsafe { self.tx.produce(&self.scratch[..n]) };
            self.owners.give(self.scratch[..got].iter().map(|d| d.addr() as u64));
            done += got;
            if got < n {
                break;
            }
        }
        done
    }

    fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    fn comp_consume(&mut self, out: &mut [u64]) -> usize {
        let n = out.len().min(self.scratch.len());
        // SAFETY: completed descriptors only report addresses.
        let got = unsafe { self.comp.consume(&mut self.scratch[..n]) };
        for (o, d) in out.iter_mut().zip(&self.scratch[..got]) {
            *o = d.addr() as u64;
        }
        self.owners.take(out[..got].iter().copied());
        got
    }

    fn fd(&self) -> RawFd {
        self.fd
    }

    fn layout(&self) -> FrameLayout {
        FrameLayout { frame_size: self.frame_size, data_offset: self.data_offset, count: self.descs.len() as u64 }
    }

    /// The addresses xsk-rs made (its descriptors are the only ones it produces).
    fn frame_addrs(&self) -> Vec<u64> {
        self.descs.iter().map(|d| d.addr() as u64).collect()
    }

    fn frame(&self, addr: u64, len: usize) -> &[u8] {
        let (off, len) = self.owners.span(addr, len);
        // SAFETY: `span` keeps `off..off + len` inside the UMEM mapping and inside one frame, and gives offset 0
        // (not `addr`) outside it, so no pointer past the mapping is formed (review L6); it is empty for a frame in a
        // ring (`owners`, kept by the ring methods, which need `&mut self` while the slice borrows `self`).
        unsafe { std::slice::from_raw_parts(self.base.add(off), len) }
    }

    fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        let (off, len) = self.owners.span(addr, len);
        // SAFETY: as `frame`, and `&mut self` keeps other borrows of the UMEM out.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(off), len) }
    }
}
