//! The kernel's AF_XDP ABI in one place: the constants of `<linux/if_xdp.h>`, `<linux/bpf.h>` and
//! `<asm-generic/socket.h>` this layer uses. Taken from `libc` where it has them (re-exported, so every file names
//! them as `abi::X`), defined here where `libc` lacks them for some targets or releases.

pub use libc::{
    sockaddr_xdp, xdp_desc, xdp_mmap_offsets, xdp_options, xdp_statistics, xdp_umem_reg, SOL_XDP, XDP_COPY,
    XDP_MMAP_OFFSETS, XDP_OPTIONS, XDP_OPTIONS_ZEROCOPY, XDP_PGOFF_RX_RING, XDP_PGOFF_TX_RING, XDP_RING_NEED_WAKEUP,
    XDP_RX_RING, XDP_STATISTICS, XDP_TX_RING, XDP_UMEM_COMPLETION_RING, XDP_UMEM_FILL_RING,
    XDP_UMEM_PGOFF_COMPLETION_RING, XDP_UMEM_PGOFF_FILL_RING, XDP_UMEM_REG, XDP_USE_NEED_WAKEUP, XDP_ZEROCOPY,
};

/// `<linux/socket.h>`; libc exports AF_XDP for glibc targets only.
pub const AF_XDP: libc::c_int = 44;
/// `<linux/bpf.h>`: bytes the kernel keeps free in front of received packet data.
pub const XDP_PACKET_HEADROOM: u64 = 256;
/// `<linux/if_xdp.h>` (libc has XDP_UMEM_MIN_CHUNK_SIZE only in newer releases).
pub const XDP_UMEM_MIN_CHUNK_SIZE: u32 = 2048;
/// 2 MiB huge pages: `MAP_HUGE_2MB` is `21 << MAP_HUGE_SHIFT`.
pub const HUGE_PAGE_BITS: u8 = 21;
pub const HUGE_PAGE: usize = 1 << HUGE_PAGE_BITS;
// Values from the x86/generic uapi <asm-generic/socket.h>; libc does not export all of them for every target.
pub const SO_BUSY_POLL: libc::c_int = 46;
pub const SO_PREFER_BUSY_POLL: libc::c_int = 69;
pub const SO_BUSY_POLL_BUDGET: libc::c_int = 70;
