//! The UMEM: the frame memory of one AF_XDP socket, and [`FrameLayout`], the frame geometry both ring backends
//! share (frame addresses, capacity, and the bounds check every frame access goes through).
//!
//! [`Umem`] is an anonymous `memmap2` mapping on 2 MiB huge pages when the system has them reserved, else on normal
//! pages, registered with the socket by XDP_UMEM_REG (see `socket`). Frames are aligned chunks of `frame_size`
//! bytes; a frame's address is its chunk offset plus [`XDP_PACKET_HEADROOM`], where the
//! kernel puts received data, so free, received and sent frames all use the same layout (the one `xsk-rs` uses
//! too). Owns the memory only: it does not open sockets or touch the rings.

use std::io;
use std::ptr::NonNull;

use super::abi::{HUGE_PAGE, HUGE_PAGE_BITS, XDP_PACKET_HEADROOM, XDP_UMEM_MIN_CHUNK_SIZE};

/// Where the frames of a UMEM are: `count` chunks of `frame_size` bytes, packet data `data_offset` bytes into each.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameLayout {
    /// Bytes per frame (a power of two; a frame's index is `addr / frame_size`).
    pub frame_size: u64,
    /// Offset of the packet data within a frame (the XDP headroom).
    pub data_offset: u64,
    /// Frames in the UMEM.
    pub count: u64,
}

impl FrameLayout {
    /// Bytes of frames (`count × frame_size`).
    pub fn len(&self) -> u64 {
        self.count * self.frame_size
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Addresses of every frame, in order (the initial free pool).
    pub fn frame_addrs(&self) -> Vec<u64> {
        (0..self.count).map(|i| i * self.frame_size + self.data_offset).collect()
    }

    /// Bytes from a frame address to the end of its frame.
    pub fn frame_capacity(&self) -> usize {
        (self.frame_size - self.data_offset) as usize
    }

    /// The frame index of `addr`, if it lies in the UMEM.
    pub fn index(&self, addr: u64) -> Option<usize> {
        (addr < self.len()).then(|| (addr / self.frame_size) as usize)
    }

    /// `(offset, len)` of the bytes a frame access may touch: `len` clamped to the frame `addr` lies in, and
    /// `(0, 0)` outside the UMEM, so a caller never forms a pointer past the mapping (not even an empty slice's).
    pub fn span(&self, addr: u64, len: usize) -> (usize, usize) {
        if addr >= self.len() {
            return (0, 0);
        }
        let end_of_frame = (addr / self.frame_size + 1) * self.frame_size;
        let len = len.min((end_of_frame - addr) as usize);
        (if len == 0 { 0 } else { addr as usize }, len)
    }
}

/// Which frames the worker holds (in no ring), so that frame access is safe to offer: a frame handed to the kernel
/// (fill or tx ring) reads as empty until the kernel gives it back (rx or completion ring). Every frame starts with
/// the worker (the initial free pool). One byte per frame; marked once per descriptor, next to the ring copy.
#[derive(Debug)]
pub struct FrameOwners {
    layout: FrameLayout,
    held: Vec<bool>,
}

impl FrameOwners {
    pub fn new(layout: FrameLayout) -> FrameOwners {
        FrameOwners { layout, held: vec![true; layout.count as usize] }
    }

    /// The frames at `addrs` went to the kernel.
    pub fn give(&mut self, addrs: impl IntoIterator<Item = u64>) {
        for a in addrs {
            if let Some(h) = self.layout.index(a).and_then(|i| self.held.get_mut(i)) {
                *h = false;
            }
        }
    }

    /// The frames at `addrs` came back from the kernel.
    pub fn take(&mut self, addrs: impl IntoIterator<Item = u64>) {
        for a in addrs {
            if let Some(h) = self.layout.index(a).and_then(|i| self.held.get_mut(i)) {
                *h = true;
            }
        }
    }

    /// Whether the worker holds the frame `addr` lies in.
    pub fn holds(&self, addr: u64) -> bool {
        self.layout.index(addr).and_then(|i| self.held.get(i)).copied().unwrap_or(false)
    }

    /// `(offset, len)` of a frame access as [`FrameLayout::span`], or `(0, 0)` for a frame the kernel holds.
    pub fn span(&self, addr: u64, len: usize) -> (usize, usize) {
        if self.holds(addr) {
            self.layout.span(addr, len)
        } else {
            (0, 0)
        }
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

    /// The frame geometry: `frame_count` chunks of `frame_size`, data after the kernel's receive headroom.
    pub fn layout(&self) -> FrameLayout {
        FrameLayout { frame_size: self.frame_size, data_offset: XDP_PACKET_HEADROOM, count: self.frame_count as u64 }
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

    /// # Safety
    /// The caller must own the frame at `addr` (the kernel must not be writing it).
    pub unsafe fn frame(&self, addr: u64, len: usize) -> &[u8] {
        let (off, len) = self.layout().span(addr, len);
        // SAFETY: `span` keeps `off..off + len` inside the mapping and inside one frame; the caller owns the frame.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(off), len) }
    }

    /// # Safety
    /// As [`frame`](Self::frame).
    pub unsafe fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        let (off, len) = self.layout().span(addr, len);
        // SAFETY: as `frame`, and `&mut self` keeps other borrows out.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(off), len) }
    }
}

fn page_size() -> usize {
    crate::sys::page_size()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames in a ring read as empty until the kernel gives them back; addresses outside the UMEM never count.
    #[test]
    fn frame_owners_follow_the_rings() {
        let layout = FrameLayout { frame_size: 2048, data_offset: 256, count: 4 };
        let mut o = FrameOwners::new(layout);
        let addrs = layout.frame_addrs();
        assert!(addrs.iter().all(|&a| o.holds(a)), "the initial pool is ours");
        o.give([addrs[1], addrs[2] + 100, 1 << 40]);
        assert!(o.holds(addrs[0]) && !o.holds(addrs[1]) && !o.holds(addrs[2]) && o.holds(addrs[3]));
        assert_eq!(o.span(addrs[1], 64), (0, 0));
        assert_eq!(o.span(addrs[0], 64), layout.span(addrs[0], 64));
        o.take([addrs[1] + 7]);
        assert!(o.holds(addrs[1]), "any address inside the frame");
        assert!(!o.holds(1 << 40));
        assert_eq!(o.span(1 << 40, 64), (0, 0));
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
            let addrs = umem.layout().frame_addrs();
            assert_eq!(addrs.len(), 1000);
            for (i, a) in addrs.iter().enumerate() {
                assert_eq!(*a, i as u64 * 2048 + XDP_PACKET_HEADROOM);
            }
            assert_eq!(umem.layout().frame_capacity(), 2048 - 256);
        }
    }

    #[test]
    fn umem_frames_are_clamped_and_separate() {
        let mut umem = Umem::new(4, 2048, false).unwrap();
        let addrs = umem.layout().frame_addrs();
        let cap = umem.layout().frame_capacity();
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

    #[test]
    fn a_span_never_points_outside_the_umem() {
        let l = FrameLayout { frame_size: 2048, data_offset: 256, count: 4 };
        assert_eq!(l.len(), 4 * 2048);
        assert_eq!(l.span(4 * 2048, 10), (0, 0), "past the UMEM: no offset either (review L6)");
        assert_eq!(l.span(u64::MAX, 10), (0, 0));
        assert_eq!(l.span(2048 + 256, 0), (0, 0), "an empty access needs no offset");
        assert_eq!(l.span(2048 - 10, 100), (2038, 10), "clamped to the frame");
        assert_eq!(l.span(3 * 2048 + 256, 4096), (3 * 2048 + 256, 2048 - 256));
        assert_eq!(l.index(3 * 2048 + 5), Some(3));
        assert_eq!(l.index(4 * 2048), None);
        assert_eq!(l.frame_addrs(), vec![256, 2048 + 256, 4096 + 256, 6144 + 256]);
        assert_eq!(l.frame_capacity(), 2048 - 256);
    }
}
