//! 10 MiB each way, both directions at once, with a SHA-256 check, over 300 seeds of a hostile link: 10 % loss,
//! 10 % reordering, 2 % duplication and 1 % corruption in each direction. Any seed that fails prints its number;
//! `xdptcp sim --scenario bidirectional --seed N --loss 0.1 --reorder 0.1 --dup 0.02 --corrupt 0.01
//! --bytes 10485760 --trace` replays it exactly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use xdptcp::sim::{run_scenario, LinkConfig, Scenario, ScenarioConfig};
use xdptcp::tcp::Counter;

const SEEDS: u64 = 300;
const BYTES: u64 = 10 * 1024 * 1024;

fn hostile() -> LinkConfig {
    LinkConfig { loss: 0.10, reorder: 0.10, duplicate: 0.02, corrupt: 0.01, ..Default::default() }
}

#[test]
fn ten_mib_each_way_survives_300_seeds_of_loss_reordering_duplication_and_corruption() {
    let next = AtomicU64::new(1);
    let retransmitted = AtomicU64::new(0);
    let corrupted_dropped = AtomicU64::new(0);
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut failed = Vec::new();
                    loop {
                        let seed = next.fetch_add(1, Ordering::Relaxed);
                        if seed > SEEDS {
                            return failed;
                        }
                        let cfg = ScenarioConfig {
                            scenario: Scenario::Bidirectional,
                            link: hostile(),
                            bytes: BYTES,
                            seed,
                            time_limit: Duration::from_secs(3600),
                            ..Default::default()
                        };
                        match run_scenario(&cfg) {
                            // 20 MiB take about 15,000 data segments and as many ACKs; a retransmission or ACK storm
                            // shows up as many times that.
                            Ok(r) if r.segments > 100_000 => {
                                failed.push(format!("seed {seed}: {} segments: a storm", r.segments))
                            }
                            Ok(r) if r.sha_match && r.server_received == BYTES && r.client_received == BYTES => {
                                retransmitted.fetch_add(r.retransmissions, Ordering::Relaxed);
                                let csum: u64 = r
                                    .counters
                                    .iter()
                                    .map(|c| c.get(Counter::InCsumErrors) + c.get(Counter::InHdrErrors))
                                    .sum();
                                corrupted_dropped.fetch_add(csum, Ordering::Relaxed);
                            }
                            Ok(r) => failed.push(format!(
                                "seed {seed}: {} / {} bytes, sha {}",
                                r.server_received, r.client_received, r.sha_match
                            )),
                            Err(e) => failed.push(format!("seed {seed}: {e}")),
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker")).collect()
    });
    assert!(failures.is_empty(), "{} of {SEEDS} seeds failed:\n{}", failures.len(), failures.join("\n"));
    // The impairments really happened: retransmissions and checksum drops on every run on average.
    assert!(retransmitted.load(Ordering::Relaxed) > SEEDS * 1000);
    assert!(corrupted_dropped.load(Ordering::Relaxed) > SEEDS * 50);
}

#[test]
fn the_readme_transfer_command_matches() {
    // `xdptcp sim --scenario transfer --bytes 10000000 --loss 0.1 --reorder 0.1 --dup 0.02 --corrupt 0.01 --seed 1`
    let cfg = ScenarioConfig {
        scenario: Scenario::Transfer,
        link: LinkConfig { loss: 0.1, reorder: 0.1, duplicate: 0.02, corrupt: 0.01, ..Default::default() },
        bytes: 10_000_000,
        seed: 1,
        ..Default::default()
    };
    let r = run_scenario(&cfg).expect("completes");
    assert!(r.sha_match);
    assert_eq!(r.server_received, 10_000_000);
}
