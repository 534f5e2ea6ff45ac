//! [`XskRings`] straight on the kernel's AF_XDP interface, with libc only and no foreign call per descriptor.
//!
//! - [`Umem`]: the frame memory, an anonymous `memmap2` mapping on 2 MiB huge pages when the system has them
//!   reserved, else on normal pages, registered with the socket by XDP_UMEM_REG. Frames are aligned chunks of
//!   `frame_size` bytes; a frame's address is its chunk offset plus [`XDP_PACKET_HEADROOM`], where the kernel puts
//!   received data, so free, received and sent frames all use the same layout (the one `xsk-rs` uses too).
//! - [`ProdRing`] / [`ConsRing`]: the index protocol of libxdp's `xsk.h` (cached producer and consumer, `nb_free`
//!   and `nb_avail`, Acquire loads of the other side's index, Release stores of ours) over raw pointers, so it is
//!   unit-tested on plain memory without a socket.
//! - [`RawRings`]: the socket: `socket(AF_XDP)`, UMEM and ring-size socket options, `XDP_MMAP_OFFSETS`, the four ring
//!   mappings (also `memmap2`), `bind` with need_wakeup and the configured copy/zero-copy mode.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::ring::{Desc, KernelStats, RingConfig, XskBind, XskRings};

// Constants of <linux/if_xdp.h> come from libc (SOL_XDP, XDP_*). Defined here what libc lacks:
/// <linux/socket.h>; libc exports AF_XDP for glibc targets only.
const AF_XDP: libc::c_int = 44;
/// <linux/bpf.h>: bytes the kernel keeps free in front of received packet data.
pub const XDP_PACKET_HEADROOM: u64 = 256;
/// <linux/if_xdp.h> (libc has XDP_UMEM_MIN_CHUNK_SIZE only in newer releases).
const XDP_UMEM_MIN_CHUNK_SIZE: u32 = 2048;
/// 2 MiB huge pages: `MAP_HUGE_2MB` is `21 << MAP_HUGE_SHIFT`.
const HUGE_PAGE_BITS: u8 = 21;
const HUGE_PAGE: usize = 1 << HUGE_PAGE_BITS;
/// How long `bind` may keep failing with EBUSY: a queue released by a socket that was just closed stays busy until
/// the kernel's deferred teardown ran.
const BIND_BUSY_FOR: Duration = Duration::from_secs(3);

/// The producer side of a ring (fill, tx): we write entries and publish them by advancing `producer`; the kernel
/// advances `consumer` as it takes them.
pub struct ProdRing<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
    cached_prod: u32,
    /// The kernel's consumer index plus `size`, as in `xsk.h`: free slots are then `cached_cons - cached_prod`
    /// without an addition on the hot path.
    cached_cons: u32,
}

impl<T: Copy> ProdRing<T> {
    /// # Safety
    /// The pointers must stay valid for the ring's life, `descs` must hold `size` entries, `size` must be a power of
    /// two, and nobody else may produce into this ring.
    pub unsafe fn new(
        producer: NonNull<AtomicU32>,
        consumer: NonNull<AtomicU32>,
        flags: NonNull<AtomicU32>,
        descs: NonNull<T>,
        size: u32,
    ) -> ProdRing<T> {
        assert!(size.is_power_of_two(), "ring size {size} is not a power of two");
        // SAFETY: valid per the contract.
        let (p, c) = unsafe { (producer.as_ref().load(Ordering::Relaxed), consumer.as_ref().load(Ordering::Acquire)) };
        ProdRing {
            producer,
            consumer,
            flags,
            descs,
            mask: size - 1,
            size,
            cached_prod: p,
            cached_cons: c.wrapping_add(size),
        }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: valid for the ring's life (constructor contract).
        unsafe { self.consumer.as_ref() }
    }

    /// `xsk_prod_nb_free`: free slots, at least `nb` if that many are free. The cached count is returned when it
    /// already covers `nb` (it can only under-count: the kernel's consumer never goes back); otherwise the kernel's
    /// consumer index is read and the count is exact.
    pub fn nb_free(&mut self, nb: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= nb {
            return free;
        }
        // Acquire pairs with the kernel's release of `consumer`: the slots it freed are no longer read by it.
        self.cached_cons = self.consumer().load(Ordering::Acquire).wrapping_add(self.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Exactly how many slots are free.
    pub fn free_exact(&mut self) -> u32 {
        self.nb_free(self.size)
    }

    /// Entries produced that the kernel has not consumed yet.
    pub fn pending(&mut self) -> u32 {
        self.size - self.free_exact()
    }

    /// Writes `f(s)` for every `s` of `src` and publishes them, all or nothing (`xsk_ring_prod__reserve` then
    /// `__submit`). Returns `src.len()` or 0.
    pub fn produce<S>(&mut self, src: &[S], mut f: impl FnMut(&S) -> T) -> usize {
        let Ok(n) = u32::try_from(src.len()) else { return 0 };
        if n == 0 || n > self.size || self.nb_free(n) < n {
            return 0;
        }
        let mut idx = self.cached_prod;
        for s in src {
            // SAFETY: `idx & mask` < size; the slot is free (counted above), so the kernel does not read it now.
            unsafe { self.descs.as_ptr().add((idx & self.mask) as usize).write(f(s)) };
            idx = idx.wrapping_add(1);
        }
        self.cached_prod = idx;
        // Release: the entries written above are visible before the kernel sees the new producer index.
        // SAFETY: valid for the ring's life.
        unsafe { self.producer.as_ref() }.store(idx, Ordering::Release);
        src.len()
    }

    /// Whether the kernel set XDP_RING_NEED_WAKEUP on this ring (`xsk_ring_prod__needs_wakeup`, a plain read).
    pub fn needs_wakeup(&self) -> bool {
        // SAFETY: valid for the ring's life.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// The consumer side of a ring (rx, completion): the kernel writes entries and advances `producer`; we read them and
/// give the slots back by advancing `consumer`.
pub struct ConsRing<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
    cached_prod: u32,
    cached_cons: u32,
}

impl<T: Copy> ConsRing<T> {
    /// # Safety
    /// As [`ProdRing::new`], with "consume" for "produce".
    pub unsafe fn new(
        producer: NonNull<AtomicU32>,
        consumer: NonNull<AtomicU32>,
        descs: NonNull<T>,
        size: u32,
    ) -> ConsRing<T> {
        assert!(size.is_power_of_two(), "ring size {size} is not a power of two");
        // SAFETY: valid per the contract.
        let (p, c) = unsafe { (producer.as_ref().load(Ordering::Acquire), consumer.as_ref().load(Ordering::Relaxed)) };
        ConsRing { producer, consumer, descs, mask: size - 1, size, cached_prod: p, cached_cons: c }
    }

    /// `xsk_cons_nb_avail`: entries ready, at most `nb`. The kernel's producer index is only read when the cached
    /// entries are used up, so a call may report fewer than are ready (never more).
    pub fn nb_avail(&mut self, nb: u32) -> u32 {
        let mut entries = self.cached_prod.wrapping_sub(self.cached_cons);
        if entries == 0 {
            // Acquire pairs with the kernel's release of `producer`: the entries it wrote are visible.
            // SAFETY: valid for the ring's life.
            self.cached_prod = unsafe { self.producer.as_ref() }.load(Ordering::Acquire);
            entries = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        // A corrupt producer index (more than a ring's worth ahead) must not make us read stale slots as new.
        entries.min(self.size).min(nb)
    }

    /// Reads up to `out.len()` entries as `f(entry)` into `out` and releases their slots (`xsk_ring_cons__peek` then
    /// `__release`). Returns how many.
    pub fn consume<S>(&mut self, out: &mut [S], mut f: impl FnMut(T) -> S) -> usize {
        let want = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let n = self.nb_avail(want);
        let mut idx = self.cached_cons;
        for o in &mut out[..n as usize] {
            // SAFETY: `idx & mask` < size; the entry was published by the producer (Acquire above) and is ours until
            // released below.
            *o = f(unsafe { self.descs.as_ptr().add((idx & self.mask) as usize).read() });
            idx = idx.wrapping_add(1);
        }
        if n > 0 {
            self.cached_cons = idx;
            // Release: our reads of the entries happen before the kernel may overwrite their slots.
            // SAFETY: valid for the ring's life.
            unsafe { self.consumer.as_ref() }.store(idx, Ordering::Release);
        }
        n as usize
    }
}

/// The UMEM: `frame_count` frames of `frame_size` bytes in one anonymous mapping.
pub struct Umem {
    map: memmap2::MmapMut,
    /// `map`'s start, kept as a raw pointer so frames can be lent out through `&self` (the trait's `frame`).
    base: NonNull<u8>,
    /// Bytes registered with the kernel (`frame_count * frame_size`; the mapping may be rounded up to a huge page).
    len: u64,
    frame_size: u64,
    frame_count: u32,
    huge_pages: bool,
}

impl Umem {
    /// Maps the frames, on 2 MiB huge pages first if `try_huge` (needs pages reserved in `vm.nr_hugepages`), falling
    /// back to normal pages. Pages are populated up front so the datapath never faults on them.
    pub fn new(frame_count: u32, frame_size: u32, try_huge: bool) -> io::Result<Umem> {
        let page = page_size();
        if !frame_size.is_power_of_two() || frame_size < XDP_UMEM_MIN_CHUNK_SIZE || frame_size as usize > page {
            // Aligned chunks: the kernel accepts powers of two from 2048 to the page size.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame size {frame_size}: must be a power of two from {XDP_UMEM_MIN_CHUNK_SIZE} to {page}"),
            ));
        }
        if frame_count == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a UMEM needs at least one frame"));
        }
        let len = frame_count as u64 * frame_size as u64;
        let len_usize = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let huge = try_huge
            .then(|| {
                memmap2::MmapOptions::new()
                    .len(len_usize.div_ceil(HUGE_PAGE) * HUGE_PAGE)
                    .huge(Some(HUGE_PAGE_BITS))
                    .populate()
                    .map_anon()
                    .ok()
            })
            .flatten();
        let (mut map, huge_pages) = match huge {
            Some(m) => (m, true),
            None => (memmap2::MmapOptions::new().len(len_usize).populate().map_anon()?, false),
        };
        let base = NonNull::new(map.as_mut_ptr()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Umem { map, base, len, frame_size: frame_size as u64, frame_count, huge_pages })
    }

    /// Addresses of all frames, in order: each frame's chunk offset plus the kernel's receive headroom.
    pub fn frame_addrs(&self) -> Vec<u64> {
        (0..self.frame_count as u64).map(|i| i * self.frame_size + XDP_PACKET_HEADROOM).collect()
    }

    /// Bytes from a frame address to the end of its frame.
    pub fn frame_capacity(&self) -> usize {
        (self.frame_size - XDP_PACKET_HEADROOM) as usize
    }

    pub fn frame_size(&self) -> u64 {
        self.frame_size
    }

    pub fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// Bytes registered with the kernel.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes mapped (`len` rounded up to the page size in use).
    pub fn mapped_len(&self) -> usize {
        self.map.len()
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.base.as_ptr()
    }

    /// Whether the mapping is on 2 MiB huge pages.
    pub fn huge_pages(&self) -> bool {
        self.huge_pages
    }

    /// `len` clamped to the frame `addr` lies in (0 outside the UMEM).
    pub fn clamp(&self, addr: u64, len: usize) -> usize {
        if addr >= self.len {
            return 0;
        }
        let end_of_frame = (addr / self.frame_size + 1) * self.frame_size;
        len.min((end_of_frame - addr) as usize)
    }

    /// # Safety
    /// The caller must own the frame at `addr` (the kernel must not be writing it).
    pub unsafe fn frame(&self, addr: u64, len: usize) -> &[u8] {
        let len = self.clamp(addr, len);
        let off = if len == 0 { 0 } else { addr as usize };
        // SAFETY: clamped inside the mapping and inside one frame; the caller owns the frame.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(off), len) }
    }

    /// # Safety
    /// As [`frame`](Self::frame).
    pub unsafe fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        let len = self.clamp(addr, len);
        let off = if len == 0 { 0 } else { addr as usize };
        // SAFETY: as `frame`, and `&mut self` keeps other borrows out.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(off), len) }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// [`XskRings`] on a raw AF_XDP socket and a [`Umem`].
pub struct RawRings {
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    rx: ConsRing<libc::xdp_desc>,
    tx: ProdRing<libc::xdp_desc>,
    // Drop order matters: the ring mappings, then the socket, then the UMEM it was registered with.
    _maps: [memmap2::MmapRaw; 4],
    fd: OwnedFd,
    umem: Umem,
    zero_copy: bool,
}

// SAFETY: the ring pointers point into `_maps` and the UMEM pointer into `umem`, which move with this struct; the
// rings are single-producer/single-consumer and the struct is used by one thread at a time.
unsafe impl Send for RawRings {}

/// The socket part of [`RawRings`], made again on EBUSY (the UMEM is kept).
struct Socket {
    fd: OwnedFd,
    maps: [memmap2::MmapRaw; 4],
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    rx: ConsRing<libc::xdp_desc>,
    tx: ProdRing<libc::xdp_desc>,
}

/// A failed step of socket setup: which call, and the error.
type StepError = (&'static str, io::Error);

fn check(step: &'static str, rc: libc::c_int) -> Result<(), StepError> {
    if rc < 0 {
        Err((step, io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, v: &T, step: &'static str) -> Result<(), StepError> {
    // SAFETY: `v` is a live value of the type the option expects, with its exact size.
    let rc = unsafe {
        libc::setsockopt(fd, libc::SOL_XDP, opt, v as *const T as *const libc::c_void, size_of::<T>() as u32)
    };
    check(step, rc)
}

/// Maps `len` bytes of the socket at page offset `pgoff` (one of the XDP_*PGOFF_* ring offsets).
fn map_ring(fd: RawFd, pgoff: u64, len: u64, step: &'static str) -> Result<memmap2::MmapRaw, StepError> {
    let len = usize::try_from(len).map_err(|_| (step, io::Error::from(io::ErrorKind::InvalidInput)))?;
    memmap2::MmapOptions::new().offset(pgoff).len(len).populate().map_raw(fd).map_err(|e| (step, e))
}

/// Pointer to a `u32` index of a ring mapping at byte offset `off` (from XDP_MMAP_OFFSETS).
fn index_at(map: &memmap2::MmapRaw, off: u64) -> Result<NonNull<AtomicU32>, StepError> {
    at(map, off, 4, 4)
}

/// Pointer to a ring's `size` descriptors at byte offset `off`.
fn descs_at<T>(map: &memmap2::MmapRaw, off: u64, size: u32) -> Result<NonNull<T>, StepError> {
    at(map, off, size as u64 * size_of::<T>() as u64, std::mem::align_of::<T>() as u64)
}

fn at<T>(map: &memmap2::MmapRaw, off: u64, len: u64, align: u64) -> Result<NonNull<T>, StepError> {
    if off.checked_add(len).is_none_or(|end| end > map.len() as u64) || off % align != 0 {
        return Err(("XDP_MMAP_OFFSETS", io::Error::other(format!("ring offset {off} outside its mapping"))));
    }
    // SAFETY: in bounds (checked above).
    let p = unsafe { map.as_mut_ptr().add(off as usize) };
    NonNull::new(p.cast()).ok_or_else(|| ("mmap", io::Error::other("null mapping")))
}

impl Socket {
    fn open(umem: &Umem, ifindex: u32, queue: u32, cfg: &RingConfig) -> Result<Socket, StepError> {
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        check("socket(AF_XDP)", raw)?;
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        let reg = libc::xdp_umem_reg {
            addr: umem.as_ptr() as u64,
            len: umem.len(),
            chunk_size: umem.frame_size() as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(s, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        setsockopt(s, libc::XDP_UMEM_FILL_RING, &cfg.fill_size, "XDP_UMEM_FILL_RING")?;
        setsockopt(s, libc::XDP_UMEM_COMPLETION_RING, &cfg.comp_size, "XDP_UMEM_COMPLETION_RING")?;
        setsockopt(s, libc::XDP_RX_RING, &cfg.rx_size, "XDP_RX_RING")?;
        setsockopt(s, libc::XDP_TX_RING, &cfg.tx_size, "XDP_TX_RING")?;

        // SAFETY: all-zero is a valid xdp_mmap_offsets.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut optlen = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` has room for `optlen` bytes.
        let rc = unsafe {
            libc::getsockopt(
                s,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                &mut off as *mut _ as *mut libc::c_void,
                &mut optlen,
            )
        };
        check("XDP_MMAP_OFFSETS", rc)?;
        if optlen as usize != size_of::<libc::xdp_mmap_offsets>() {
            // Kernels before 5.4 have no ring flags, hence no need_wakeup, which the worker relies on.
            return Err(("XDP_MMAP_OFFSETS", io::Error::other("kernel without AF_XDP ring flags (need 5.4 or later)")));
        }

        let (d8, d16) = (size_of::<u64>() as u64, size_of::<libc::xdp_desc>() as u64);
        let fill_map =
            map_ring(s, libc::XDP_UMEM_PGOFF_FILL_RING, off.fr.desc + cfg.fill_size as u64 * d8, "mmap fill")?;
        let comp_map =
            map_ring(s, libc::XDP_UMEM_PGOFF_COMPLETION_RING, off.cr.desc + cfg.comp_size as u64 * d8, "mmap comp")?;
        let rx_map = map_ring(s, libc::XDP_PGOFF_RX_RING as u64, off.rx.desc + cfg.rx_size as u64 * d16, "mmap rx")?;
        let tx_map = map_ring(s, libc::XDP_PGOFF_TX_RING as u64, off.tx.desc + cfg.tx_size as u64 * d16, "mmap tx")?;
        // SAFETY: the pointers are into the kernel's ring mappings, which live as long as the rings (same struct);
        // sizes are the ones just configured; we are the only user-space producer/consumer of this socket.
        let (fill, comp, rx, tx) = unsafe {
            (
                ProdRing::new(
                    index_at(&fill_map, off.fr.producer)?,
                    index_at(&fill_map, off.fr.consumer)?,
                    index_at(&fill_map, off.fr.flags)?,
                    descs_at(&fill_map, off.fr.desc, cfg.fill_size)?,
                    cfg.fill_size,
                ),
                ConsRing::new(
                    index_at(&comp_map, off.cr.producer)?,
                    index_at(&comp_map, off.cr.consumer)?,
                    descs_at(&comp_map, off.cr.desc, cfg.comp_size)?,
                    cfg.comp_size,
                ),
                ConsRing::new(
                    index_at(&rx_map, off.rx.producer)?,
                    index_at(&rx_map, off.rx.consumer)?,
                    descs_at(&rx_map, off.rx.desc, cfg.rx_size)?,
                    cfg.rx_size,
                ),
                ProdRing::new(
                    index_at(&tx_map, off.tx.producer)?,
                    index_at(&tx_map, off.tx.consumer)?,
                    index_at(&tx_map, off.tx.flags)?,
                    descs_at(&tx_map, off.tx.desc, cfg.tx_size)?,
                    cfg.tx_size,
                ),
            )
        };

        let mode = match cfg.bind {
            XskBind::Auto => 0,
            XskBind::Copy => libc::XDP_COPY,
            XskBind::ZeroCopy => libc::XDP_ZEROCOPY,
        };
        let sxdp = libc::sockaddr_xdp {
            sxdp_family: AF_XDP as u16,
            sxdp_flags: libc::XDP_USE_NEED_WAKEUP | mode,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: a complete sockaddr_xdp of its own size.
        let rc = unsafe {
            libc::bind(
                s,
                &sxdp as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        check("bind", rc)?;
        Ok(Socket { fd, maps: [fill_map, comp_map, rx_map, tx_map], fill, comp, rx, tx })
    }
}

/// Whether the socket `fd` runs in zero-copy mode (XDP_OPTIONS), if the kernel says.
pub fn zero_copy(fd: RawFd) -> Option<bool> {
    let mut o = libc::xdp_options { flags: 0 };
    let mut optlen = size_of::<libc::xdp_options>() as libc::socklen_t;
    // SAFETY: `o` has room for `optlen` bytes.
    let rc = unsafe {
        libc::getsockopt(fd, libc::SOL_XDP, libc::XDP_OPTIONS, &mut o as *mut _ as *mut libc::c_void, &mut optlen)
    };
    (rc == 0).then_some(o.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// The socket's XDP_STATISTICS. Kernels before 5.9 report only the first three counters (the rest stay 0).
pub fn xdp_statistics(fd: RawFd) -> Option<KernelStats> {
    // SAFETY: all-zero is a valid xdp_statistics.
    let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
    let mut optlen = size_of::<libc::xdp_statistics>() as libc::socklen_t;
    // SAFETY: `s` has room for `optlen` bytes.
    let rc = unsafe {
        libc::getsockopt(fd, libc::SOL_XDP, libc::XDP_STATISTICS, &mut s as *mut _ as *mut libc::c_void, &mut optlen)
    };
    if rc < 0 {
        return None;
    }
    Some(KernelStats {
        rx_dropped: s.rx_dropped,
        rx_invalid_descs: s.rx_invalid_descs,
        tx_invalid_descs: s.tx_invalid_descs,
        rx_ring_full: s.rx_ring_full,
        rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
        tx_ring_empty: s.tx_ring_empty_descs,
    })
}

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
        let cname = std::ffi::CString::new(ifname).context("interface name")?;
        // SAFETY: a valid NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            bail!("no interface named {ifname} (in this network namespace)");
        }
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
        let zero_copy = zero_copy(sock.fd.as_raw_fd()).unwrap_or(false);
        Ok(RawRings {
            fill: sock.fill,
            comp: sock.comp,
            rx: sock.rx,
            tx: sock.tx,
            _maps: sock.maps,
            fd: sock.fd,
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
        self.rx.consume(out, |d| Desc { addr: d.addr, len: d.len })
    }

    fn fill_free(&mut self) -> usize {
        self.fill.free_exact() as usize
    }

    fn fill_produce(&mut self, addrs: &[u64]) -> usize {
        self.fill.produce(addrs, |&a| a)
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
        self.tx.produce(descs, |d| libc::xdp_desc { addr: d.addr, len: d.len, options: 0 })
    }

    fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    fn tx_wakeup(&mut self) -> io::Result<()> {
        super::ring::kick_tx(self.fd.as_raw_fd())
    }

    fn rx_wakeup(&mut self) -> io::Result<()> {
        super::ring::kick_rx(self.fd.as_raw_fd())
    }

    fn comp_consume(&mut self, out: &mut [u64]) -> usize {
        self.comp.consume(out, |a| a)
    }

    fn poll_rx(&mut self, timeout_ms: i32) -> io::Result<bool> {
        let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) { Ok(false) } else { Err(e) };
        }
        Ok(rc > 0 && p.revents & libc::POLLIN != 0)
    }

    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn frame_addrs(&self) -> Vec<u64> {
        self.umem.frame_addrs()
    }

    fn frame_capacity(&self) -> usize {
        self.umem.frame_capacity()
    }

    fn frame_size(&self) -> u64 {
        self.umem.frame_size()
    }

    fn kernel_stats(&self) -> Option<KernelStats> {
        xdp_statistics(self.fd.as_raw_fd())
    }

    unsafe fn frame(&self, addr: u64, len: usize) -> &[u8] {
        // SAFETY: forwarded contract.
        unsafe { self.umem.frame(addr, len) }
    }

    unsafe fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        // SAFETY: forwarded contract.
        unsafe { self.umem.frame_mut(addr, len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// A ring on plain memory, both indices starting at `start`, with the kernel's side played by the test.
    struct PlainRing<T> {
        idx: Box<[AtomicU32; 3]>,
        descs: Vec<T>,
        size: u32,
    }

    impl<T: Copy> PlainRing<T> {
        /// `blank` fills the slots before anything is produced.
        fn new(size: u32, start: u32, blank: T) -> PlainRing<T> {
            PlainRing {
                idx: Box::new([AtomicU32::new(start), AtomicU32::new(start), AtomicU32::new(0)]),
                descs: vec![blank; size as usize],
                size,
            }
        }
        fn ptrs(&mut self) -> (NonNull<AtomicU32>, NonNull<AtomicU32>, NonNull<AtomicU32>, NonNull<T>) {
            (
                NonNull::from(&self.idx[0]),
                NonNull::from(&self.idx[1]),
                NonNull::from(&self.idx[2]),
                NonNull::new(self.descs.as_mut_ptr()).unwrap(),
            )
        }
        fn prod(&mut self) -> ProdRing<T> {
            let (p, c, f, d) = self.ptrs();
            // SAFETY: the test keeps `self` alive and unmoved (boxed/vec storage) while the ring is used.
            unsafe { ProdRing::new(p, c, f, d, self.size) }
        }
        fn cons(&mut self) -> ConsRing<T> {
            let (p, c, _, d) = self.ptrs();
            // SAFETY: as `prod`.
            unsafe { ConsRing::new(p, c, d, self.size) }
        }
        fn slot(&self, i: u32) -> *mut T {
            // The test's "kernel" touches slots through the same raw pointer the ring uses.
            unsafe { (self.descs.as_ptr() as *mut T).add((i & (self.size - 1)) as usize) }
        }
        /// The kernel consumes up to `max` entries from a ring we produce into.
        fn kernel_consume(&self, max: u32) -> Vec<T> {
            let p = self.idx[0].load(Ordering::Acquire);
            let c = self.idx[1].load(Ordering::Relaxed);
            let n = p.wrapping_sub(c).min(max);
            let out = (0..n).map(|i| unsafe { self.slot(c.wrapping_add(i)).read() }).collect();
            self.idx[1].store(c.wrapping_add(n), Ordering::Release);
            out
        }
        /// The kernel produces as many of `items` as fit into a ring we consume from.
        fn kernel_produce(&self, items: &[T]) -> usize {
            let p = self.idx[0].load(Ordering::Relaxed);
            let c = self.idx[1].load(Ordering::Acquire);
            let free = self.size - p.wrapping_sub(c);
            let n = (items.len() as u32).min(free);
            for (i, it) in items[..n as usize].iter().enumerate() {
                unsafe { self.slot(p.wrapping_add(i as u32)).write(*it) };
            }
            self.idx[0].store(p.wrapping_add(n), Ordering::Release);
            n as usize
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// We produce (fill/tx) or the kernel produces (rx/comp) this many entries.
        Produce(u32),
        /// The kernel consumes (fill/tx) or we consume (rx/comp) up to this many.
        Consume(u32),
        /// Query with this `nb`.
        Query(u32),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                (0u32..40).prop_map(Op::Produce),
                (0u32..40).prop_map(Op::Consume),
                (0u32..40).prop_map(Op::Query)
            ],
            0..200,
        )
    }

    /// Starting indices: around 0 and just below the u32 wrap.
    fn start() -> impl Strategy<Value = u32> {
        prop_oneof![0u32..64, (u32::MAX - 64)..=u32::MAX, any::<u32>()]
    }

    proptest! {
        #[test]
        fn prod_ring_matches_a_fifo_model(size_log in 0u32..6, start in start(), ops in ops()) {
            let size = 1u32 << size_log;
            let mut mem = PlainRing::<u64>::new(size, start, 0);
            let mut ring = mem.prod();
            let mut model = VecDeque::new();
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Produce(n) => {
                        let items: Vec<u64> = (next..next + n as u64).collect();
                        let done = ring.produce(&items, |&a| a);
                        let fits = n > 0 && (n as usize) <= size as usize - model.len();
                        prop_assert_eq!(done, if fits { n as usize } else { 0 }, "all or nothing");
                        if fits {
                            model.extend(items);
                            next += n as u64;
                        }
                    }
                    Op::Consume(n) => {
                        let got = mem.kernel_consume(n);
                        let want: Vec<u64> = model.drain(..(n as usize).min(model.len())).collect();
                        prop_assert_eq!(got, want);
                    }
                    Op::Query(nb) => {
                        let actual = size - model.len() as u32;
                        let f = ring.nb_free(nb);
                        prop_assert!(f <= actual, "nb_free {} over the actual {}", f, actual);
                        prop_assert!(f >= nb || f == actual, "nb_free {} short of {} while {} are free", f, nb, actual);
                        prop_assert_eq!(ring.pending(), model.len() as u32);
                        prop_assert_eq!(ring.free_exact(), actual);
                    }
                }
                prop_assert_eq!(mem.idx[0].load(Ordering::Relaxed), start.wrapping_add(next as u32), "producer index");
            }
        }

        #[test]
        fn cons_ring_matches_a_fifo_model(size_log in 0u32..6, start in start(), ops in ops()) {
            let size = 1u32 << size_log;
            let mut mem = PlainRing::new(size, start, libc::xdp_desc { addr: 0, len: 0, options: 0 });
            let mut ring = mem.cons();
            let mut model = VecDeque::new();
            let mut next = 0u64;
            let desc = |i: u64| libc::xdp_desc { addr: i * 2048, len: (i % 1500) as u32, options: 0 };
            for op in ops {
                match op {
                    Op::Produce(n) => {
                        let items: Vec<_> = (next..next + n as u64).map(desc).collect();
                        let done = mem.kernel_produce(&items);
                        model.extend((next..next + done as u64).map(desc).map(|d| (d.addr, d.len)));
                        next += done as u64;
                    }
                    Op::Consume(n) => {
                        let mut out = vec![Desc::default(); n as usize];
                        let got = ring.consume(&mut out, |d| Desc { addr: d.addr, len: d.len });
                        prop_assert!(got <= model.len());
                        // Cached entries may hide newer ones, but never all of them.
                        prop_assert!(got > 0 || n == 0 || model.is_empty(), "nothing consumed of {}", model.len());
                        let want: Vec<(u64, u32)> = model.drain(..got).collect();
                        let got: Vec<(u64, u32)> = out[..got].iter().map(|d| (d.addr, d.len)).collect();
                        prop_assert_eq!(got, want);
                    }
                    Op::Query(nb) => {
                        let a = ring.nb_avail(nb);
                        prop_assert!(a <= nb.min(model.len() as u32));
                        prop_assert!(a > 0 || nb == 0 || model.is_empty());
                    }
                }
                // Our consumer index is always the start plus what was taken out of the model.
                let taken = next - model.len() as u64;
                prop_assert_eq!(mem.idx[1].load(Ordering::Relaxed), start.wrapping_add(taken as u32));
            }
        }
    }

    #[test]
    fn indices_wrap_past_u32_max() {
        let mut mem = PlainRing::<u64>::new(8, u32::MAX - 2, 0);
        let mut ring = mem.prod();
        assert_eq!(ring.produce(&[1, 2, 3, 4, 5], |&a| a), 5);
        assert_eq!(mem.idx[0].load(Ordering::Relaxed), 2, "the producer index wrapped");
        assert_eq!(ring.free_exact(), 3);
        assert_eq!(ring.produce(&[6, 7, 8, 9], |&a| a), 0, "4 do not fit in 3: nothing is written");
        assert_eq!(mem.kernel_consume(4), vec![1, 2, 3, 4]);
        assert_eq!(ring.produce(&[6, 7, 8, 9], |&a| a), 4);
        assert_eq!(ring.pending(), 5);
        assert_eq!(mem.kernel_consume(8), vec![5, 6, 7, 8, 9]);
        assert_eq!(ring.pending(), 0);
        assert_eq!(ring.free_exact(), 8);
    }

    #[test]
    fn need_wakeup_reads_the_flag() {
        let mut mem = PlainRing::<u64>::new(4, 0, 0);
        let ring = mem.prod();
        assert!(!ring.needs_wakeup());
        mem.idx[2].store(libc::XDP_RING_NEED_WAKEUP, Ordering::Relaxed);
        assert!(ring.needs_wakeup());
    }

    #[test]
    fn a_runaway_producer_index_is_not_read_past_one_ring() {
        let mut mem = PlainRing::<u64>::new(4, 0, 0);
        let mut ring = mem.cons();
        mem.idx[0].store(1000, Ordering::Release);
        let mut out = [0u64; 16];
        assert_eq!(ring.consume(&mut out, |a| a), 4);
    }

    /// The mapping `base` starts in /proc/self/smaps: its length and page size.
    fn smaps_entry(base: usize) -> Option<(usize, usize)> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut lines = smaps.lines();
        while let Some(l) = lines.next() {
            let Some((range, _)) = l.split_once(' ') else { continue };
            let Some((a, b)) = range.split_once('-') else { continue };
            let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { continue };
            if a != base {
                continue;
            }
            for l in lines.by_ref() {
                if let Some(kb) = l.strip_prefix("KernelPageSize:") {
                    let kb: usize = kb.trim().trim_end_matches("kB").trim().parse().ok()?;
                    return Some((b - a, kb * 1024));
                }
            }
        }
        None
    }

    #[test]
    fn umem_is_a_memmap_with_frames_laid_out() {
        for try_huge in [false, true] {
            let umem = Umem::new(1000, 2048, try_huge).unwrap();
            assert_eq!(umem.len(), 1000 * 2048);
            assert!(umem.mapped_len() as u64 >= umem.len());
            assert_eq!(umem.as_ptr() as usize % page_size(), 0, "page aligned, as XDP_UMEM_REG requires");
            // It is its own mapping (not heap memory), on the page size it says.
            let (maplen, page) = smaps_entry(umem.as_ptr() as usize).expect("the UMEM is a mapping of its own");
            assert!(maplen >= umem.mapped_len());
            if umem.huge_pages() {
                assert_eq!(page, HUGE_PAGE);
                assert_eq!(umem.mapped_len() % HUGE_PAGE, 0);
            } else {
                assert!(!try_huge || page == page_size(), "fell back to normal pages");
                assert_eq!(page, page_size());
            }
            let addrs = umem.frame_addrs();
            assert_eq!(addrs.len(), 1000);
            for (i, a) in addrs.iter().enumerate() {
                assert_eq!(*a, i as u64 * 2048 + XDP_PACKET_HEADROOM);
            }
            assert_eq!(umem.frame_capacity(), 2048 - 256);
        }
    }

    #[test]
    fn umem_frames_are_clamped_and_separate() {
        let mut umem = Umem::new(4, 2048, false).unwrap();
        let addrs = umem.frame_addrs();
        let cap = umem.frame_capacity();
        for (i, &a) in addrs.iter().enumerate() {
            // SAFETY: no kernel involved; the test owns every frame.
            let f = unsafe { umem.frame_mut(a, 4096) };
            assert_eq!(f.len(), cap, "clamped to the end of the frame");
            f.fill(i as u8 + 1);
        }
        for (i, &a) in addrs.iter().enumerate() {
            // SAFETY: as above.
            let f = unsafe { umem.frame(a, cap) };
            assert!(f.iter().all(|&b| b == i as u8 + 1), "frame {i} was overwritten by a neighbour");
        }
        // SAFETY: as above.
        unsafe {
            assert_eq!(umem.frame(4 * 2048, 10).len(), 0, "past the UMEM");
            assert_eq!(umem.frame(u64::MAX, 10).len(), 0);
            assert_eq!(umem.frame(2048 - 10, 100).len(), 10);
            // The headroom is memory of the frame too (a frame handed back by the kernel may start anywhere in it).
            assert_eq!(umem.frame(2048, 100).len(), 100);
        }
    }

    #[test]
    fn umem_rejects_bad_geometry() {
        assert!(Umem::new(0, 2048, false).is_err());
        assert!(Umem::new(16, 3000, false).is_err());
        assert!(Umem::new(16, 1024, false).is_err());
        assert!(Umem::new(16, 1 << 20, false).is_err());
    }
}
