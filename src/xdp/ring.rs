//! The four AF_XDP rings and the UMEM behind one small trait of our own, [`XskRings`], so the worker does not depend
//! on what maps them: [`RawRings`](super::raw::RawRings) (our own, the default) or [`XskRsRings`] (the `xsk-rs`
//! crate, kept selectable for comparison); [`AnyRings`] is either, chosen at run time by [`RingsKind`].
//!
//! Frames are named by their UMEM address (`u64`, the offset of the packet data from the start of the UMEM), exactly
//! as the kernel names them in ring descriptors. Ownership of a frame moves with the address: the worker owns it when
//! it came out of the rx or completion ring (or was never handed out), the kernel owns it while it sits in the fill
//! or tx ring. Frame memory may only be touched while the worker owns the frame; that is why the accessors are
//! `unsafe`.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// A descriptor: where a packet is in the UMEM and how long it is.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
}

/// What the worker needs from an AF_XDP socket and its UMEM.
pub trait XskRings {
    /// Takes up to `out.len()` received descriptors; returns how many were written.
    fn rx_consume(&mut self, out: &mut [Desc]) -> usize;
    /// Free slots in the fill ring (exact).
    fn fill_free(&mut self) -> usize;
    /// Gives frames to the kernel for receiving. All or nothing: size the batch by [`fill_free`](Self::fill_free).
    /// Returns how many were queued (0 or `addrs.len()`).
    fn fill_produce(&mut self, addrs: &[u64]) -> usize;
    /// Whether the kernel asked to be woken up to consume the fill ring (need_wakeup).
    fn fill_needs_wakeup(&self) -> bool;
    /// Free slots in the tx ring (exact).
    fn tx_free(&mut self) -> usize;
    /// Descriptors in the tx ring the kernel has not taken yet.
    fn tx_pending(&mut self) -> usize;
    /// Queues frames for transmission. All or nothing: size the batch by [`tx_free`](Self::tx_free).
    fn tx_produce(&mut self, descs: &[Desc]) -> usize;
    /// Whether the kernel asked to be kicked to transmit (need_wakeup).
    fn tx_needs_wakeup(&self) -> bool;
    /// Kicks transmission (a non-blocking `sendto`).
    fn tx_wakeup(&mut self) -> io::Result<()>;
    /// Kicks reception (a non-blocking `recvfrom`), for need_wakeup and busy polling.
    fn rx_wakeup(&mut self) -> io::Result<()>;
    /// Takes up to `out.len()` completed transmissions (frames back to the worker).
    fn comp_consume(&mut self, out: &mut [u64]) -> usize;
    /// Blocks up to `timeout_ms` for received frames.
    fn poll_rx(&mut self, timeout_ms: i32) -> io::Result<bool>;
    /// The socket's file descriptor (for the XSKMAP and socket options).
    fn fd(&self) -> RawFd;
    /// Addresses of every frame of the UMEM, in order (the initial free pool).
    fn frame_addrs(&self) -> Vec<u64>;
    /// Bytes available from a frame address to the end of its frame.
    fn frame_capacity(&self) -> usize;
    /// Bytes per UMEM frame (a power of two; a frame's index is `addr / frame_size`).
    fn frame_size(&self) -> u64;
    /// The kernel's drop counters for this socket (XDP_STATISTICS), if it reports them.
    fn kernel_stats(&self) -> Option<KernelStats> {
        None
    }

    /// The `len` bytes at `addr`.
    ///
    /// # Safety
    /// The worker must own the frame (it is in no ring); `addr` must be a frame address this UMEM handed out.
    /// Out-of-range requests are clamped to the frame, never beyond.
    unsafe fn frame(&self, addr: u64, len: usize) -> &[u8];
    /// The `len` bytes at `addr`, writable.
    ///
    /// # Safety
    /// As [`frame`](Self::frame): the worker must own the frame.
    unsafe fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8];
}

/// The kernel's view of an AF_XDP socket (`struct xdp_statistics`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Dropped for other reasons (e.g. no fill-ring frame in copy mode).
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    /// Dropped because the rx ring was full (the worker fell behind).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty: u64,
    pub tx_ring_empty: u64,
}

/// Socket-level options applied after binding.
#[derive(Copy, Clone, Debug, Default)]
pub struct BusyPoll {
    /// SO_BUSY_POLL microseconds (0: off).
    pub usecs: u32,
    /// SO_BUSY_POLL_BUDGET packets per busy-poll round.
    pub budget: u32,
}

/// Sizes of the UMEM and rings for one socket.
#[derive(Copy, Clone, Debug)]
pub struct RingConfig {
    /// Frames in the UMEM (power of two not required).
    pub frame_count: u32,
    /// Bytes per frame, a power of two >= 2048.
    pub frame_size: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    pub rx_size: u32,
    pub tx_size: u32,
    /// Try to back the UMEM with huge pages first.
    pub huge_pages: bool,
    /// Copy or zero-copy mode for the socket.
    pub bind: XskBind,
}

/// How the AF_XDP socket moves packets (the bind flags).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum XskBind {
    /// Zero-copy where the driver supports it, else copy (no flag: the kernel picks).
    #[default]
    Auto,
    /// XDP_COPY: always copy (works on every driver, e.g. veth).
    Copy,
    /// XDP_ZEROCOPY: fail unless the driver can do zero-copy.
    ZeroCopy,
}

impl Default for RingConfig {
    fn default() -> Self {
        // Frames for every ring at once plus slack for packets waiting on ARP: fill + rx + tx = 12288 of 16384
        // (32 MiB), so transmission never starves because reception holds everything.
        RingConfig {
            frame_count: 16384,
            frame_size: 2048,
            fill_size: 4096,
            comp_size: 4096,
            rx_size: 4096,
            tx_size: 4096,
            huge_pages: true,
            bind: XskBind::Auto,
        }
    }
}

// Values from the x86/generic uapi <asm-generic/socket.h>; libc does not export all of them for every target.
const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// Sets SO_PREFER_BUSY_POLL, SO_BUSY_POLL and SO_BUSY_POLL_BUDGET on an AF_XDP socket, so the application drives
/// the driver's NAPI from its own `sendto`/`recvfrom` (the kernel's preferred-busy-poll mode for AF_XDP).
/// Errors of the zero-length `sendto`/`recvfrom` kicks that only mean "try again later" (as libxdp's samples).
fn benign_kick_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::ENETDOWN) | Some(libc::EINTR)
    )
}

fn kick_result(rc: isize) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        if !benign_kick_error(&e) {
            return Err(e);
        }
    }
    Ok(())
}

/// The AF_XDP transmit kick: a zero-length, non-blocking `sendto`.
pub fn kick_tx(fd: RawFd) -> io::Result<()> {
    // SAFETY: no buffer is passed; the kernel only starts transmission on the socket.
    kick_result(unsafe { libc::sendto(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) })
}

/// The AF_XDP receive kick (need_wakeup on the fill ring, busy polling): a zero-length, non-blocking `recvfrom`.
pub fn kick_rx(fd: RawFd) -> io::Result<()> {
    // SAFETY: no buffer is passed; the kernel only runs the socket's receive processing.
    kick_result(unsafe {
        libc::recvfrom(fd, std::ptr::null_mut(), 0, libc::MSG_DONTWAIT, std::ptr::null_mut(), std::ptr::null_mut())
    })
}

pub fn set_busy_poll(fd: RawFd, bp: BusyPoll) -> io::Result<()> {
    let set = |opt: libc::c_int, v: libc::c_int| -> io::Result<()> {
        // SAFETY: setsockopt with a valid int option value.
        let rc = unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, opt, &v as *const _ as *const libc::c_void, 4) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    set(SO_PREFER_BUSY_POLL, 1)?;
    set(SO_BUSY_POLL, bp.usecs as libc::c_int)?;
    set(SO_BUSY_POLL_BUDGET, bp.budget.max(1) as libc::c_int)
}

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
        })
    }

    fn index(&self, addr: u64) -> Option<usize> {
        (addr < self.umem_len).then(|| (addr / self.frame_size) as usize)
    }

    /// Clamps `(addr, len)` to the frame `addr` lies in.
    fn clamp(&self, addr: u64, len: usize) -> usize {
        if addr >= self.umem_len {
            return 0;
        }
        let end_of_frame = (addr / self.frame_size + 1) * self.frame_size;
        len.min((end_of_frame - addr) as usize)
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

    fn tx_wakeup(&mut self) -> io::Result<()> {
        self.tx.wakeup()
    }

    fn rx_wakeup(&mut self) -> io::Result<()> {
        kick_rx(self.fd)
    }

    fn comp_consume(&mut self, out: &mut [u64]) -> usize {
        let n = out.len().min(self.scratch.len());
        // SAFETY: completed descriptors only report addresses.
        let got = unsafe { self.comp.consume(&mut self.scratch[..n]) };
        for (o, d) in out.iter_mut().zip(&self.scratch[..got]) {
            *o = d.addr() as u64;
        }
        got
    }

    fn poll_rx(&mut self, timeout_ms: i32) -> io::Result<bool> {
        self.rx.poll(timeout_ms)
    }

    fn fd(&self) -> RawFd {
        self.fd
    }

    fn frame_addrs(&self) -> Vec<u64> {
        self.descs.iter().map(|d| d.addr() as u64).collect()
    }

    fn frame_capacity(&self) -> usize {
        (self.frame_size - self.data_offset) as usize
    }

    fn frame_size(&self) -> u64 {
        self.frame_size
    }

    fn kernel_stats(&self) -> Option<KernelStats> {
        let s = self.rx.fd().xdp_statistics().ok()?;
        Some(KernelStats {
            rx_dropped: s.rx_dropped(),
            rx_invalid_descs: s.rx_invalid_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs(),
            tx_ring_empty: s.tx_ring_empty_descs(),
        })
    }

    unsafe fn frame(&self, addr: u64, len: usize) -> &[u8] {
        let len = self.clamp(addr, len);
        // SAFETY: clamped inside the UMEM mapping and inside one frame; the caller owns the frame.
        unsafe { std::slice::from_raw_parts(self.base.add(addr as usize), len) }
    }

    unsafe fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        let len = self.clamp(addr, len);
        // SAFETY: as `frame`, and `&mut self` keeps other borrows of the UMEM out.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(addr as usize), len) }
    }
}

/// Which [`XskRings`] implementation to create.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RingsKind {
    /// Our own rings on libc, UMEM in a `memmap2` mapping ([`RawRings`](super::raw::RawRings)).
    #[default]
    Raw,
    /// The `xsk-rs` crate ([`XskRsRings`]).
    XskRs,
}

impl std::fmt::Display for RingsKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RingsKind::Raw => "raw",
            RingsKind::XskRs => "xsk-rs",
        })
    }
}

/// Either implementation, so the datapath type stays the same whichever is chosen (one predictable branch per
/// call, not a virtual call).
pub enum AnyRings {
    Raw(super::raw::RawRings),
    XskRs(XskRsRings),
}

impl AnyRings {
    pub fn create(kind: RingsKind, ifname: &str, queue: u32, cfg: &RingConfig) -> anyhow::Result<AnyRings> {
        Ok(match kind {
            RingsKind::Raw => AnyRings::Raw(super::raw::RawRings::create(ifname, queue, cfg)?),
            RingsKind::XskRs => AnyRings::XskRs(XskRsRings::create(ifname, queue, cfg)?),
        })
    }

    pub fn kind(&self) -> RingsKind {
        match self {
            AnyRings::Raw(_) => RingsKind::Raw,
            AnyRings::XskRs(_) => RingsKind::XskRs,
        }
    }

    /// E.g. "raw rings, copy mode, UMEM 32 MiB on 4 KiB pages", for the startup banner.
    pub fn describe(&self) -> String {
        let (huge, bytes) = match self {
            AnyRings::Raw(r) => (r.umem().huge_pages(), r.umem().len()),
            AnyRings::XskRs(r) => (r.huge_pages, r.umem_len),
        };
        let mode = match super::raw::zero_copy(self.fd()) {
            Some(true) => "zero-copy",
            Some(false) => "copy",
            None => "unknown",
        };
        let pages = if huge { "2 MiB huge pages" } else { "4 KiB pages" };
        format!("{} rings, {mode} mode, UMEM {} MiB on {pages}", self.kind(), bytes >> 20)
    }
}

macro_rules! each {
    ($self:ident, $r:ident => $e:expr) => {
        match $self {
            AnyRings::Raw($r) => $e,
            AnyRings::XskRs($r) => $e,
        }
    };
}

impl XskRings for AnyRings {
    #[inline]
    fn rx_consume(&mut self, out: &mut [Desc]) -> usize {
        each!(self, r => r.rx_consume(out))
    }
    #[inline]
    fn fill_free(&mut self) -> usize {
        each!(self, r => r.fill_free())
    }
    #[inline]
    fn fill_produce(&mut self, addrs: &[u64]) -> usize {
        each!(self, r => r.fill_produce(addrs))
    }
    #[inline]
    fn fill_needs_wakeup(&self) -> bool {
        each!(self, r => r.fill_needs_wakeup())
    }
    #[inline]
    fn tx_free(&mut self) -> usize {
        each!(self, r => r.tx_free())
    }
    #[inline]
    fn tx_pending(&mut self) -> usize {
        each!(self, r => r.tx_pending())
    }
    #[inline]
    fn tx_produce(&mut self, descs: &[Desc]) -> usize {
        each!(self, r => r.tx_produce(descs))
    }
    #[inline]
    fn tx_needs_wakeup(&self) -> bool {
        each!(self, r => r.tx_needs_wakeup())
    }
    fn tx_wakeup(&mut self) -> io::Result<()> {
        each!(self, r => r.tx_wakeup())
    }
    fn rx_wakeup(&mut self) -> io::Result<()> {
        each!(self, r => r.rx_wakeup())
    }
    #[inline]
    fn comp_consume(&mut self, out: &mut [u64]) -> usize {
        each!(self, r => r.comp_consume(out))
    }
    fn poll_rx(&mut self, timeout_ms: i32) -> io::Result<bool> {
        each!(self, r => r.poll_rx(timeout_ms))
    }
    fn fd(&self) -> RawFd {
        each!(self, r => r.fd())
    }
    fn frame_addrs(&self) -> Vec<u64> {
        each!(self, r => r.frame_addrs())
    }
    fn frame_capacity(&self) -> usize {
        each!(self, r => r.frame_capacity())
    }
    fn frame_size(&self) -> u64 {
        each!(self, r => r.frame_size())
    }
    fn kernel_stats(&self) -> Option<KernelStats> {
        each!(self, r => r.kernel_stats())
    }
    #[inline]
    unsafe fn frame(&self, addr: u64, len: usize) -> &[u8] {
        // SAFETY: forwarded contract.
        each!(self, r => unsafe { r.frame(addr, len) })
    }
    #[inline]
    unsafe fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        // SAFETY: forwarded contract.
        each!(self, r => unsafe { r.frame_mut(addr, len) })
    }
}

/// An in-memory [`XskRings`] for unit tests of the worker and the datapath fuzz target (`crate::fuzz`): the
/// "kernel" side is driven by the caller.
pub mod fake {
    use super::*;
    use std::collections::VecDeque;

    pub struct FakeRings {
        pub mem: Vec<u8>,
        pub frame_size: u64,
        pub frames: u64,
        pub fill: VecDeque<u64>,
        pub fill_cap: usize,
        pub rx: VecDeque<Desc>,
        pub tx: VecDeque<Desc>,
        pub tx_cap: usize,
        pub comp: VecDeque<u64>,
    }

    impl FakeRings {
        pub fn new(frames: u64, frame_size: u64, ring: usize) -> FakeRings {
            FakeRings {
                mem: vec![0; (frames * frame_size) as usize],
                frame_size,
                frames,
                fill: VecDeque::new(),
                fill_cap: ring,
                rx: VecDeque::new(),
                tx: VecDeque::new(),
                tx_cap: ring,
                comp: VecDeque::new(),
            }
        }
        /// The "NIC" receives `bytes` into a frame from the fill ring. False if the fill ring is empty.
        pub fn deliver(&mut self, bytes: &[u8]) -> bool {
            let Some(addr) = self.fill.pop_front() else { return false };
            self.mem[addr as usize..addr as usize + bytes.len()].copy_from_slice(bytes);
            self.rx.push_back(Desc { addr, len: bytes.len() as u32 });
            true
        }
        /// The "NIC" sends everything in the tx ring; returns the frames' bytes and completes them.
        pub fn transmit(&mut self) -> Vec<Vec<u8>> {
            let mut out = Vec::new();
            while let Some(d) = self.tx.pop_front() {
                out.push(self.mem[d.addr as usize..(d.addr + d.len as u64) as usize].to_vec());
                self.comp.push_back(d.addr);
            }
            out
        }
    }

    impl XskRings for FakeRings {
        fn rx_consume(&mut self, out: &mut [Desc]) -> usize {
            let mut n = 0;
            while n < out.len() {
                let Some(d) = self.rx.pop_front() else { break };
                out[n] = d;
                n += 1;
            }
            n
        }
        fn fill_free(&mut self) -> usize {
            self.fill_cap - self.fill.len()
        }
        fn fill_produce(&mut self, addrs: &[u64]) -> usize {
            if addrs.len() > self.fill_free() {
                return 0;
            }
            self.fill.extend(addrs);
            addrs.len()
        }
        fn fill_needs_wakeup(&self) -> bool {
            false
        }
        fn tx_free(&mut self) -> usize {
            self.tx_cap - self.tx.len()
        }
        fn tx_pending(&mut self) -> usize {
            self.tx.len()
        }
        fn tx_produce(&mut self, descs: &[Desc]) -> usize {
            if descs.len() > self.tx_free() {
                return 0;
            }
            self.tx.extend(descs);
            descs.len()
        }
        fn tx_needs_wakeup(&self) -> bool {
            false
        }
        fn tx_wakeup(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn rx_wakeup(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn comp_consume(&mut self, out: &mut [u64]) -> usize {
            let mut n = 0;
            while n < out.len() {
                let Some(a) = self.comp.pop_front() else { break };
                out[n] = a;
                n += 1;
            }
            n
        }
        fn poll_rx(&mut self, _timeout_ms: i32) -> io::Result<bool> {
            Ok(!self.rx.is_empty())
        }
        fn fd(&self) -> RawFd {
            -1
        }
        fn frame_addrs(&self) -> Vec<u64> {
            (0..self.frames).map(|i| i * self.frame_size).collect()
        }
        fn frame_capacity(&self) -> usize {
            self.frame_size as usize
        }
        fn frame_size(&self) -> u64 {
            self.frame_size
        }
        unsafe fn frame(&self, addr: u64, len: usize) -> &[u8] {
            let end = ((addr / self.frame_size + 1) * self.frame_size).min(self.mem.len() as u64);
            let a = addr.min(end) as usize;
            &self.mem[a..(a + len).min(end as usize)]
        }
        unsafe fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
            let end = ((addr / self.frame_size + 1) * self.frame_size).min(self.mem.len() as u64);
            let a = addr.min(end) as usize;
            &mut self.mem[a..(a + len).min(end as usize)]
        }
    }
}
