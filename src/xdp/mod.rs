//! The AF_XDP datapath: the XDP steering program's loader, interface facts, the UMEM frame pool, and the four rings
//! behind a small trait of our own.

pub mod iface;
pub mod loader;
pub mod pool;
pub mod ring;

pub use iface::Interface;
pub use loader::{SteerStats, XdpMode, XdpProgram};
pub use pool::FramePool;
pub use ring::{BusyPoll, Desc, KernelStats, RingConfig, XskRings, XskRsRings};
