//! A short run of every fuzz target whose body lives in `xdptcp::fuzz` (the same function cargo-fuzz runs, see
//! `fuzz/README.md`): each over its seed corpus in `fuzz/seeds/<target>/`, then a few thousand inputs from a fixed
//! seed, so `make test` exercises every target on stable Rust, deterministically.

use rand::{Rng, SeedableRng};

const RANDOM_INPUTS: usize = 3000;

fn smoke(target: &str, body: fn(&[u8])) {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
    let mut n = 0;
    if let Ok(dir) = std::fs::read_dir(&seeds) {
        for e in dir.flatten() {
            body(&std::fs::read(e.path()).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "no seeds in {}", seeds.display());
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0x5eed ^ target.len() as u64);
    let mut buf = Vec::new();
    for i in 0..RANDOM_INPUTS {
        buf.clear();
        let len = rng.gen_range(0..if i % 10 == 0 { 4096 } else { 256 });
        buf.extend((0..len).map(|_| rng.gen::<u8>()));
        body(&buf);
    }
}

#[test]
fn neighbour_cache() {
    smoke("neighbour_cache", xdptcp::fuzz::neighbour_cache);
}

#[test]
fn http_parser() {
    smoke("http_parser", xdptcp::fuzz::http_parser);
}

#[test]
fn control_parsers() {
    smoke("control_parsers", xdptcp::fuzz::control_parsers);
}

#[test]
fn steering() {
    smoke("steering", xdptcp::fuzz::steering);
}

#[test]
fn datapath_receive() {
    smoke("datapath_receive", xdptcp::fuzz::datapath_receive);
}
