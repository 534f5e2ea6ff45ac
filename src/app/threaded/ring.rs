//! The per-connection byte rings: `xdptcp_sync::bytes` (loom-checked there, with the crate's raw memory), split
//! into a [`Writer`] and a [`Reader`] end so that one thread writes and one reads by construction. This file keeps
//! the stress tests that need the stack's test dependencies and the measurement against crossbeam's queue.

pub use xdptcp_sync::bytes::{channel, Reader, Ring, Writer};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a VecDeque model: any interleaving of writes and reads of any sizes.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec((any::<bool>(), 0usize..300), 1..200)) {
            let (mut w, mut r) = channel(256);
            let mut model = std::collections::VecDeque::new();
            let mut next = 0u8;
            for (write, size) in ops {
                if write {
                    let data: Vec<u8> = (0..size).map(|_| { next = next.wrapping_add(1); next }).collect();
                    let n = w.write(&data);
                    prop_assert_eq!(n, size.min(256 - model.len()));
                    model.extend(&data[..n]);
                    // What did not fit is regenerated next time: rewind the counter.
                    next = next.wrapping_sub((size - n) as u8);
                } else {
                    let mut out = vec![0u8; size];
                    let n = r.read(&mut out);
                    prop_assert_eq!(n, size.min(model.len()));
                    let want: Vec<u8> = model.drain(..n).collect();
                    prop_assert_eq!(&out[..n], &want[..]);
                }
                prop_assert_eq!(r.len(), model.len());
            }
        }
    }

    /// Two threads, random chunk sizes, 8 MiB through a small ring: every byte in order.
    #[test]
    fn two_threads_move_every_byte_in_order() {
        use rand::{Rng, SeedableRng};
        const TOTAL: usize = 8 << 20;
        let (mut p, mut c) = channel(1024);
        let producer = std::thread::spawn(move || {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
            let mut sent = 0usize;
            let mut spins = 0u64;
            while sent < TOTAL {
                let len = rng.gen_range(1..3000).min(TOTAL - sent);
                let chunk: Vec<u8> = (sent..sent + len).map(|i| (i % 251) as u8).collect();
                let mut off = 0;
                while off < len {
                    let n = p.write(&chunk[off..]);
                    if n == 0 {
                        spins += 1;
                        std::thread::yield_now();
                    }
                    off += n;
                }
                sent += len;
            }
            spins
        });
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(2);
        let mut got = 0usize;
        let mut buf = vec![0u8; 4096];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while got < TOTAL {
            assert!(std::time::Instant::now() < deadline, "stalled at {got}");
            let want = rng.gen_range(1..buf.len());
            let n = c.read(&mut buf[..want]);
            for (k, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, ((got + k) % 251) as u8, "byte {}", got + k);
            }
            got += n;
            if n == 0 {
                std::thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert!(c.is_empty());
    }

    /// Not a check, a measurement (`cargo test --release --lib ring_vs_arrayqueue -- --ignored --nocapture`): MB/s
    /// through this ring against crossbeam's ArrayQueue, per byte and per recycled 1460-byte chunk.
    #[test]
    #[ignore]
    fn ring_vs_arrayqueue() {
        use crossbeam::queue::ArrayQueue;
        use std::sync::Arc;
        const TOTAL: usize = 256 << 20;
        const CHUNK: usize = 1460;
        let mbps = |t: std::time::Duration, bytes: usize| bytes as f64 / t.as_secs_f64() / 1e6;

        let (mut p, mut c) = channel(32 * 1024);
        let t0 = std::time::Instant::now();
        let h = std::thread::spawn(move || {
            let data = [7u8; CHUNK];
            let mut sent = 0;
            while sent < TOTAL {
                let n = p.write(&data[..CHUNK.min(TOTAL - sent)]);
                if n == 0 {
                    std::thread::yield_now(); // fair on a loaded machine: give the core to the reader
                }
                sent += n;
            }
        });
        let mut buf = vec![0u8; 16 * 1024];
        let mut got = 0;
        while got < TOTAL {
            let n = c.read(&mut buf);
            if n == 0 {
                std::thread::yield_now();
            }
            got += n;
        }
        h.join().unwrap();
        println!("ByteRing 32 KiB, {CHUNK} B writes: {:.0} MB/s", mbps(t0.elapsed(), TOTAL));

        let small = TOTAL / 16; // per-byte is slow: a sixteenth of the bytes
        let q = Arc::new(ArrayQueue::<u8>::new(32 * 1024));
        let q2 = q.clone();
        let t0 = std::time::Instant::now();
        let h = std::thread::spawn(move || {
            for _ in 0..small {
                while q2.push(7).is_err() {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = 0;
        while got < small {
            if q.pop().is_some() {
                got += 1;
            } else {
                std::thread::yield_now();
            }
        }
        h.join().unwrap();
        println!("ArrayQueue<u8> 32 Ki entries: {:.0} MB/s", mbps(t0.elapsed(), small));

        let full = Arc::new(ArrayQueue::<Vec<u8>>::new(22));
        let empty = Arc::new(ArrayQueue::<Vec<u8>>::new(22));
        for _ in 0..22 {
            empty.push(vec![0u8; CHUNK]).unwrap();
        }
        let (f2, e2) = (full.clone(), empty.clone());
        let t0 = std::time::Instant::now();
        let h = std::thread::spawn(move || {
            let mut sent = 0;
            while sent < TOTAL {
                if let Some(mut v) = e2.pop() {
                    v.iter_mut().for_each(|b| *b = 7);
                    sent += v.len();
                    f2.push(v).unwrap();
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = 0;
        while got < TOTAL {
            if let Some(v) = full.pop() {
                buf[..v.len()].copy_from_slice(&v);
                got += v.len();
                empty.push(v).unwrap();
            } else {
                std::thread::yield_now();
            }
        }
        h.join().unwrap();
        println!("ArrayQueue<Vec> of {CHUNK} B chunks (recycled): {:.0} MB/s", mbps(t0.elapsed(), TOTAL));
    }
}
