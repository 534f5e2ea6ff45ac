//! Zero-copy views over packet bytes, and the plain structs (`Repr`s) the rest of the stack reasons with.
//!
//! Owns: byte layouts, length validation, checksums, emitting headers in place into a frame.
//! Must not touch: connection state, rings, clocks. Every parser validates lengths once in `new_checked`; after
//! that, field getters are infallible. Malformed input is an `Err(WireError)`, never a panic.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod ipv4;
pub mod proxy_v2;
pub mod tcp;
#[cfg(test)]
mod testdata;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use icmpv4::{Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use proxy_v2::{ProxyV2Packet, ProxyV2Repr};
pub use tcp::{SackBlock, SeqNum, TcpControl, TcpFlags, TcpOptions, TcpPacket, TcpRepr, TfoCookie};

/// Why a packet could not be parsed. Each variant maps to a drop counter at the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("buffer shorter than the header or the length fields claim")]
    Truncated,
    #[error("a header field holds a value the protocol does not allow")]
    Malformed,
    #[error("checksum mismatch")]
    Checksum,
    #[error("not supported here (e.g. IP options we refuse, fragments, unknown version)")]
    Unsupported,
    #[error("buffer too small to emit into")]
    BufferTooSmall,
}

pub type Result<T> = core::result::Result<T, WireError>;
