//! The AF_XDP socket: opening one on a UMEM (`socket(AF_XDP)`, XDP_UMEM_REG and ring-size options,
//! XDP_MMAP_OFFSETS, the four ring mappings, `bind` with need_wakeup and the configured copy/zero-copy mode), the
//! transmit and receive kicks, busy polling, and the kernel's statistics. Every system call of the AF_XDP layer is
//! here. Does not own the UMEM (see `umem`) and does not drive the rings (see `cursor`, `raw`).

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

use super::abi;
use super::config::{BusyPoll, RingConfig, XskBind};
use super::cursor::{ConsRing, ProdRing};
use super::umem::Umem;

/// The socket part of [`RawRings`], made again on EBUSY (the UMEM is kept).
pub(super) struct Socket {
    pub(super) fd: OwnedFd,
    pub(super) maps: [memmap2::MmapRaw; 4],
    pub(super) fill: ProdRing<u64>,
    pub(super) comp: ConsRing<u64>,
    pub(super) rx: ConsRing<abi::xdp_desc>,
    pub(super) tx: ProdRing<abi::xdp_desc>,
}

/// A failed step of socket setup: which call, and the error.
pub(super) type StepError = (&'static str, io::Error);

fn check(step: &'static str, rc: libc::c_int) -> Result<(), StepError> {
    if rc < 0 {
        Err((step, io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, v: &T, step: &'static str) -> Result<(), StepError> {
    // SAFETY: `v` is a live value of the type the option expects, with its exact size.
    let rc =
        unsafe { libc::setsockopt(fd, abi::SOL_XDP, opt, v as *const T as *const libc::c_void, size_of::<T>() as u32) };
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
    pub(super) fn open(umem: &Umem, ifindex: u32, queue: u32, cfg: &RingConfig) -> Result<Socket, StepError> {
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(abi::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        check("socket(AF_XDP)", raw)?;
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        let reg = abi::xdp_umem_reg {
            addr: umem.as_ptr() as u64,
            len: umem.len(),
            chunk_size: umem.frame_size() as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(s, abi::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        setsockopt(s, abi::XDP_UMEM_FILL_RING, &cfg.fill_size, "XDP_UMEM_FILL_RING")?;
        setsockopt(s, abi::XDP_UMEM_COMPLETION_RING, &cfg.comp_size, "XDP_UMEM_COMPLETION_RING")?;
        setsockopt(s, abi::XDP_RX_RING, &cfg.rx_size, "XDP_RX_RING")?;
        setsockopt(s, abi::XDP_TX_RING, &cfg.tx_size, "XDP_TX_RING")?;

        // SAFETY: all-zero is a valid xdp_mmap_offsets.
        let mut off: abi::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut optlen = size_of::<abi::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: `off` has room for `optlen` bytes.
        let rc = unsafe {
            libc::getsockopt(
                s,
                abi::SOL_XDP,
                abi::XDP_MMAP_OFFSETS,
                &mut off as *mut _ as *mut libc::c_void,
                &mut optlen,
            )
        };
        check("XDP_MMAP_OFFSETS", rc)?;
        if optlen as usize != size_of::<abi::xdp_mmap_offsets>() {
            // Kernels before 5.4 have no ring flags, hence no need_wakeup, which the worker relies on.
            return Err(("XDP_MMAP_OFFSETS", io::Error::other("kernel without AF_XDP ring flags (need 5.4 or later)")));
        }

        let (d8, d16) = (size_of::<u64>() as u64, size_of::<abi::xdp_desc>() as u64);
        let fill_map =
            map_ring(s, abi::XDP_UMEM_PGOFF_FILL_RING, off.fr.desc + cfg.fill_size as u64 * d8, "mmap fill")?;
        let comp_map =
            map_ring(s, abi::XDP_UMEM_PGOFF_COMPLETION_RING, off.cr.desc + cfg.comp_size as u64 * d8, "mmap comp")?;
        let rx_map = map_ring(s, abi::XDP_PGOFF_RX_RING as u64, off.rx.desc + cfg.rx_size as u64 * d16, "mmap rx")?;
        let tx_map = map_ring(s, abi::XDP_PGOFF_TX_RING as u64, off.tx.desc + cfg.tx_size as u64 * d16, "mmap tx")?;
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
            XskBind::Copy => abi::XDP_COPY,
            XskBind::ZeroCopy => abi::XDP_ZEROCOPY,
        };
        let sxdp = abi::sockaddr_xdp {
            sxdp_family: abi::AF_XDP as u16,
            sxdp_flags: abi::XDP_USE_NEED_WAKEUP | mode,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: a complete sockaddr_xdp of its own size.
        let rc = unsafe {
            libc::bind(s, &sxdp as *const _ as *const libc::sockaddr, size_of::<abi::sockaddr_xdp>() as libc::socklen_t)
        };
        check("bind", rc)?;
        Ok(Socket { fd, maps: [fill_map, comp_map, rx_map, tx_map], fill, comp, rx, tx })
    }
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

/// Whether the socket `fd` runs in zero-copy mode (XDP_OPTIONS), if the kernel says.
pub fn zero_copy(fd: RawFd) -> Option<bool> {
    let mut o = abi::xdp_options { flags: 0 };
    let mut optlen = size_of::<abi::xdp_options>() as libc::socklen_t;
    // SAFETY: `o` has room for `optlen` bytes.
    let rc = unsafe {
        libc::getsockopt(fd, abi::SOL_XDP, abi::XDP_OPTIONS, &mut o as *mut _ as *mut libc::c_void, &mut optlen)
    };
    (rc == 0).then_some(o.flags & abi::XDP_OPTIONS_ZEROCOPY != 0)
}

/// The socket's XDP_STATISTICS. Kernels before 5.9 report only the first three counters (the rest stay 0).
pub fn xdp_statistics(fd: RawFd) -> Option<KernelStats> {
    // SAFETY: all-zero is a valid xdp_statistics.
    let mut s: abi::xdp_statistics = unsafe { std::mem::zeroed() };
    let mut optlen = size_of::<abi::xdp_statistics>() as libc::socklen_t;
    // SAFETY: `s` has room for `optlen` bytes.
    let rc = unsafe {
        libc::getsockopt(fd, abi::SOL_XDP, abi::XDP_STATISTICS, &mut s as *mut _ as *mut libc::c_void, &mut optlen)
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

/// Blocks up to `timeout_ms` for the socket to have received frames (an interrupted wait reports none).
pub fn poll_rx(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    Ok(crate::sys::poll_readable(&[fd], timeout_ms)? > 0)
}

/// Sets SO_PREFER_BUSY_POLL, SO_BUSY_POLL and SO_BUSY_POLL_BUDGET on an AF_XDP socket, so the application drives
/// the driver's NAPI from its own `sendto`/`recvfrom` (the kernel's preferred-busy-poll mode for AF_XDP).
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
    set(abi::SO_PREFER_BUSY_POLL, 1)?;
    set(abi::SO_BUSY_POLL, bp.usecs as libc::c_int)?;
    set(abi::SO_BUSY_POLL_BUDGET, bp.budget.max(1) as libc::c_int)
}
