//! The AF_XDP datapath: the XDP steering program's loader, the UMEM and its frame pool, and the four rings.

pub mod loader;

pub use loader::{SteerStats, XdpMode, XdpProgram};
