//! [`AnyRings`]: either [`XskRings`] backend, chosen at run time by [`RingsKind`] (`--rings raw|xsk-rs`), so the
//! datapath's type stays the same whichever is chosen.

use std::os::fd::RawFd;

use super::config::RingConfig;
use super::raw::RawRings;
use super::ring::{Desc, XskRings};
use super::socket;
use super::umem::FrameLayout;
use super::xskrs::XskRsRings;

/// Which [`XskRings`] implementation to create.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RingsKind {
    /// Our own rings on libc, UMEM in a `memmap2` mapping ([`RawRings`]).
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
    Raw(RawRings),
    XskRs(XskRsRings),
}

impl AnyRings {
    pub fn create(kind: RingsKind, ifname: &str, queue: u32, cfg: &RingConfig) -> anyhow::Result<AnyRings> {
        Ok(match kind {
            RingsKind::Raw => AnyRings::Raw(RawRings::create(ifname, queue, cfg)?),
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
        let mode = match socket::zero_copy(self.fd()) {
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

/// The ring operations of the hot path dispatch here; the socket-level ones (kicks, wait, statistics, geometry)
/// come from the trait's defaults over [`fd`](XskRings::fd) and [`layout`](XskRings::layout).
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
    #[inline]
    fn comp_consume(&mut self, out: &mut [u64]) -> usize {
        each!(self, r => r.comp_consume(out))
    }
    fn fd(&self) -> RawFd {
        each!(self, r => r.fd())
    }
    fn layout(&self) -> FrameLayout {
        each!(self, r => r.layout())
    }
    #[inline]
    fn frame(&self, addr: u64, len: usize) -> &[u8] {
        each!(self, r => r.frame(addr, len))
    }
    #[inline]
    fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        each!(self, r => r.frame_mut(addr, len))
    }
}
