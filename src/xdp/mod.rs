//! The AF_XDP datapath: the XDP steering program's loader, interface facts, the UMEM frame pool, and the four rings
//! behind a small trait of our own ([`XskRings`]).
//!
//! Two implementations of the rings, chosen at run time (`--rings raw|xsk-rs`, [`AnyRings`]):
//! - [`RawRings`] (default, [`raw`]): our own, on libc. The UMEM is an anonymous `memmap2` mapping on 2 MiB huge
//!   pages when `vm.nr_hugepages` has them, else on normal pages; the rings are mapped from the socket and driven with
//!   libxdp's index protocol, with no foreign call per descriptor.
//! - [`XskRsRings`]: the `xsk-rs` crate (libxdp underneath), which maps the UMEM itself; kept for comparison.

pub mod iface;
pub mod loader;
pub mod pool;
pub mod raw;
pub mod ring;

pub use iface::Interface;
pub use loader::{SteerStats, XdpMode, XdpProgram};
pub use pool::FramePool;
pub use raw::RawRings;
pub use ring::{
    set_busy_poll, AnyRings, BusyPoll, Desc, KernelStats, RingConfig, RingsKind, XskBind, XskRings, XskRsRings,
};
