//! Buffer autotuning (`tcp_moderate_rcvbuf`): over a long fat link a fixed 128 KiB receive buffer caps a transfer
//! at buffer / RTT; with autotuning the receiver's buffer (and the sender's) grow until the link is the limit.

use std::time::Duration;

use xdptcp::sim::{run_scenario, LinkConfig, Report, Scenario, ScenarioConfig};
use xdptcp::tcp::Config;

const BYTES: u64 = 32 * 1024 * 1024;

/// 1 Gbit/s, 10 ms one way: a bandwidth-delay product of 2.5 MB, far above the default 128 KiB receive buffer.
fn long_fat_link() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(10),
        bandwidth: Some(1_000_000_000),
        queue_limit: 4096,
        ..Default::default()
    }
}

fn transfer(moderate: bool) -> Report {
    let mut config = Config { tcp_moderate_rcvbuf: moderate, ..Default::default() };
    if !moderate {
        // A send buffer that is large from the start, so only the receive buffer limits the fixed case.
        config.tcp_wmem = [4096, 4 << 20, 4 << 20];
    }
    let cfg = ScenarioConfig {
        scenario: Scenario::Transfer,
        link: long_fat_link(),
        bytes: BYTES,
        seed: 7,
        config,
        time_limit: Duration::from_secs(600),
        ..Default::default()
    };
    let r = run_scenario(&cfg).expect("transfer completes");
    assert!(r.sha_match && r.server_received == BYTES, "every byte arrives intact");
    r
}

fn mbit_per_s(r: &Report) -> f64 {
    BYTES as f64 * 8.0 / r.virtual_duration.as_secs_f64() / 1e6
}

#[test]
fn autotuning_fills_a_long_fat_link_that_a_fixed_buffer_cannot() {
    let fixed = transfer(false);
    let tuned = transfer(true);
    let (fixed_rate, tuned_rate) = (mbit_per_s(&fixed), mbit_per_s(&tuned));
    eprintln!(
        "fixed buffers: {fixed_rate:.0} Mbit/s in {:?}; autotuned: {tuned_rate:.0} Mbit/s in {:?}",
        fixed.virtual_duration, tuned.virtual_duration
    );
    // A fixed 128 KiB window over a 20 ms RTT moves at most 128 KiB / 20 ms = 52 Mbit/s.
    assert!(fixed_rate < 60.0, "fixed buffers: {fixed_rate:.0} Mbit/s");
    // Autotuned, slow start and growth take a few dozen RTTs, then the 6 MiB maximum covers the 2.5 MB BDP.
    assert!(tuned_rate > 8.0 * fixed_rate, "autotuned: {tuned_rate:.0} Mbit/s vs {fixed_rate:.0} Mbit/s fixed");
}

#[test]
fn autotuning_stays_within_tcp_rmem_max() {
    let config = Config { tcp_rmem: [4096, 65536, 262144], tcp_wmem: [4096, 16384, 262144], ..Default::default() };
    let cfg = ScenarioConfig {
        scenario: Scenario::Transfer,
        link: long_fat_link(),
        bytes: 8 * 1024 * 1024,
        seed: 3,
        config,
        time_limit: Duration::from_secs(600),
        ..Default::default()
    };
    let r = run_scenario(&cfg).expect("transfer completes");
    assert!(r.sha_match);
    // Capped at 256 KiB per 20 ms RTT: about 105 Mbit/s at best.
    let rate = 8.0 * 8.0 * 1024.0 * 1024.0 / r.virtual_duration.as_secs_f64() / 1e6;
    assert!(rate < 110.0, "{rate:.0} Mbit/s exceeds what a 256 KiB window allows");
    assert!(rate > 50.0, "{rate:.0} Mbit/s: the buffer did not grow past its 64 KiB start");
}
