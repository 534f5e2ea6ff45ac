//! The AF_XDP datapath: the XDP steering program's loader, interface facts, the UMEM frame pool, and the four rings
//! behind a small trait of our own ([`XskRings`]). Owns every system call and every `unsafe` block of the packet
//! path; must not know TCP, connections or workers (it moves frames, the worker decides what they mean).
//!
//! One job per file:
//! - [`abi`]: the kernel's AF_XDP constants and structs.
//! - [`cursor`]: the rings' producer/consumer index protocol ([`ProdRing`], [`ConsRing`]).
//! - [`umem`]: the frame memory ([`Umem`]) and the frame geometry both backends share ([`FrameLayout`]).
//! - [`socket`]: opening the socket, the kicks, busy polling, statistics ([`KernelStats`]).
//! - `fake` (tests only): an in-memory [`XskRings`] for the worker's unit tests.
//! - [`config`]: ring and UMEM sizes, bind mode, busy polling.
//! - [`ring`]: the [`XskRings`] trait and [`Desc`]; [`any`]: [`AnyRings`], either backend, chosen at run time by
//!   `--rings raw|xsk-rs`.
//! - [`raw`]: [`RawRings`], the default backend: our own UMEM (2 MiB huge pages when `vm.nr_hugepages` has them) and
//!   rings with no foreign call per descriptor.
//! - [`xskrs`]: [`XskRsRings`], the `xsk-rs` crate (libxdp underneath); kept for comparison.
//! - [`loader`], [`iface`], [`pool`]: the BPF program, interface facts, the worker's free frames.

pub mod abi;
pub mod any;
pub mod config;
pub mod cursor;
/// In-memory rings for tests and the fuzz bodies (`crate::fuzz`).
pub mod fake;
pub mod iface;
pub mod loader;
pub mod pool;
pub mod raw;
pub mod ring;
pub mod socket;
pub mod umem;
pub mod xskrs;

pub use any::{AnyRings, RingsKind};
pub use config::{BusyPoll, RingConfig, XskBind};
pub use cursor::{ConsRing, ProdRing};
pub use iface::Interface;
pub use loader::{SteerStats, XdpMode, XdpProgram};
pub use pool::FramePool;
pub use raw::RawRings;
pub use ring::{Desc, XskRings};
pub use socket::{kick_rx, kick_tx, set_busy_poll, xdp_statistics, zero_copy, KernelStats};
pub use umem::{FrameLayout, Umem};
pub use xskrs::XskRsRings;
