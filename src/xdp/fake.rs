//! An in-memory [`XskRings`] for unit tests of the worker: the "kernel" side is driven by the test.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

use super::ring::{Desc, XskRings};
use super::umem::FrameLayout;

pub struct FakeRings {
    pub mem: Vec<u8>,
    pub frame_size: u64,
    pub frames: u64,
    pub fill: VecDeque<u64>,
    pub fill_cap: usize,
    pub rx: VecDeque<Desc>,
    pub tx: VecDeque<Desc>,
    pub tx_cap: usize,
    pub comp: VecDeque<u64>,
}

impl FakeRings {
    pub fn new(frames: u64, frame_size: u64, ring: usize) -> FakeRings {
        FakeRings {
            mem: vec![0; (frames * frame_size) as usize],
            frame_size,
            frames,
            fill: VecDeque::new(),
            fill_cap: ring,
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            tx_cap: ring,
            comp: VecDeque::new(),
        }
    }
    /// The "NIC" receives `bytes` into a frame from the fill ring. False if the fill ring is empty.
    pub fn deliver(&mut self, bytes: &[u8]) -> bool {
        let Some(addr) = self.fill.pop_front() else { return false };
        self.mem[addr as usize..addr as usize + bytes.len()].copy_from_slice(bytes);
        self.rx.push_back(Desc { addr, len: bytes.len() as u32 });
        true
    }
    /// The "NIC" sends everything in the tx ring; returns the frames' bytes and completes them.
    pub fn transmit(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(d) = self.tx.pop_front() {
            out.push(self.mem[d.addr as usize..(d.addr + d.len as u64) as usize].to_vec());
            self.comp.push_back(d.addr);
        }
        out
    }
}

impl XskRings for FakeRings {
    fn rx_consume(&mut self, out: &mut [Desc]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(d) = self.rx.pop_front() else { break };
            out[n] = d;
            n += 1;
        }
        n
    }
    fn fill_free(&mut self) -> usize {
        self.fill_cap - self.fill.len()
    }
    fn fill_produce(&mut self, addrs: &[u64]) -> usize {
        if addrs.len() > self.fill_free() {
            return 0;
        }
        self.fill.extend(addrs);
        addrs.len()
    }
    fn fill_needs_wakeup(&self) -> bool {
        false
    }
    fn tx_free(&mut self) -> usize {
        self.tx_cap - self.tx.len()
    }
    fn tx_pending(&mut self) -> usize {
        self.tx.len()
    }
    fn tx_produce(&mut self, descs: &[Desc]) -> usize {
        if descs.len() > self.tx_free() {
            return 0;
        }
        self.tx.extend(descs);
        descs.len()
    }
    fn tx_needs_wakeup(&self) -> bool {
        false
    }
    fn tx_wakeup(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn rx_wakeup(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn comp_consume(&mut self, out: &mut [u64]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(a) = self.comp.pop_front() else { break };
            out[n] = a;
            n += 1;
        }
        n
    }
    fn poll_rx(&mut self, _timeout_ms: i32) -> io::Result<bool> {
        Ok(!self.rx.is_empty())
    }
    fn fd(&self) -> RawFd {
        -1
    }
    fn layout(&self) -> FrameLayout {
        FrameLayout { frame_size: self.frame_size, data_offset: 0, count: self.frames }
    }
    fn frame(&self, addr: u64, len: usize) -> &[u8] {
        let end = ((addr / self.frame_size + 1) * self.frame_size).min(self.mem.len() as u64);
        let a = addr.min(end) as usize;
        &self.mem[a..(a + len).min(end as usize)]
    }
    fn frame_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        let end = ((addr / self.frame_size + 1) * self.frame_size).min(self.mem.len() as u64);
        let a = addr.min(end) as usize;
        &mut self.mem[a..(a + len).min(end as usize)]
    }
}
