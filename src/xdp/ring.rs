//! The worker's view of an AF_XDP socket: the [`XskRings`] trait (four rings and a UMEM) and [`Desc`]. The two
//! backends ([`RawRings`](super::RawRings), [`XskRsRings`](super::XskRsRings)) implement it; `any` picks one at run
//! time.
//!
//! Frames are named by their UMEM address (`u64`, the offset of the packet data from the start of the UMEM), exactly
//! as the kernel names them in ring descriptors. Ownership of a frame moves with the address: the worker owns it when
//! it came out of the rx or completion ring (or was never handed out), the kernel owns it while it sits in the fill
//! or tx ring. Frame memory may only be touched while the worker owns the frame; that is why the accessors are
//! `unsafe`.

use std::io;
use std::os::fd::RawFd;

use super::socket::{self, KernelStats};
use super::umem::FrameLayout;

// The paths `xdp::ring::{set_busy_poll, XskRings}` are still used by `cli/serve.rs` and `bench/xdp.rs`; the root
// re-exports (`xdp::set_busy_poll`, ...) are the ones to use.
pub use super::socket::set_busy_poll;

/// A descriptor: where a packet is in the UMEM and how long it is.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
}

/// What the worker needs from an AF_XDP socket and its UMEM. The kicks, the wait and the statistics are the same
/// system calls on the socket whichever backend mapped it, so they are provided from [`fd`](Self::fd); the frame
/// geometry from [`layout`](Self::layout).
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
    fn tx_wakeup(&mut self) -> io::Result<()> {
        socket::kick_tx(self.fd())
    }
    /// Kicks reception (a non-blocking `recvfrom`), for need_wakeup and busy polling.
    fn rx_wakeup(&mut self) -> io::Result<()> {
        socket::kick_rx(self.fd())
    }
    /// Takes up to `out.len()` completed transmissions (frames back to the worker).
    fn comp_consume(&mut self, out: &mut [u64]) -> usize;
    /// Blocks up to `timeout_ms` for received frames.
    fn poll_rx(&mut self, timeout_ms: i32) -> io::Result<bool> {
        socket::poll_rx(self.fd(), timeout_ms)
    }
    /// The socket's file descriptor (for the XSKMAP and socket options).
    fn fd(&self) -> RawFd;
    /// Where the frames are in the UMEM.
    fn layout(&self) -> FrameLayout;
    /// Addresses of every frame of the UMEM, in order (the initial free pool).
    fn frame_addrs(&self) -> Vec<u64> {
        self.layout().frame_addrs()
    }
    /// Bytes available from a frame address to the end of its frame.
    fn frame_capacity(&self) -> usize {
        self.layout().frame_capacity()
    }
    /// Bytes per UMEM frame (a power of two; a frame's index is `addr / frame_size`).
    fn frame_size(&self) -> u64 {
        self.layout().frame_size
    }
    /// The kernel's drop counters for this socket (XDP_STATISTICS), if it reports them.
    fn kernel_stats(&self) -> Option<KernelStats> {
        socket::xdp_statistics(self.fd())
    }

    /// The `len` bytes at `addr`, clamped to the frame `addr` lies in. Empty for an address outside the UMEM and
    /// for a frame the kernel holds (given to the fill or tx ring and not yet back through rx or completion): the
    /// backends track frame ownership, so this is safe to call with any address. The borrow of `self` keeps the
    /// rings (which move frames to the kernel) out while the slice lives.
    fn frame(&self, addr: u64, len: usize) -> &[u8];
    /// The `len` bytes at `addr`, writable; as [`frame`](Self::frame).
    fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8];
}
