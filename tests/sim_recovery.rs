//! Loss recovery and congestion control in the simulator (issue 14): the same seeded paths run with the old
//! recovery (NewReno, recovery by duplicate ACKs and partial ACKs, no tail loss probes) and with the defaults (CUBIC +
//! HyStart++, RFC 6675 SACK recovery with PRR, RFC 8985 tail loss probes). Deterministic; `bench/sim-recovery/run.sh`
//! prints the full table.

use std::time::Duration;

use xdptcp::sim::{run_scenario, LinkConfig, Report, Scenario, ScenarioConfig};
use xdptcp::tcp::{Config, Counter};

fn old_recovery() -> Config {
    Config {
        tcp_congestion_control: "reno".to_string(),
        tcp_sack_recovery: false,
        tcp_early_retrans: 0,
        ..Default::default()
    }
}

fn run(link: LinkConfig, bytes: u64, config: Config) -> Report {
    let cfg = ScenarioConfig {
        scenario: Scenario::Transfer,
        link,
        bytes,
        seed: 42,
        config,
        time_limit: Duration::from_secs(3600),
        ..Default::default()
    };
    let r = run_scenario(&cfg).expect("run completes");
    assert!(r.sha_match && r.server_received == bytes, "{} of {bytes} bytes, sha {}", r.server_received, r.sha_match);
    r
}

fn timeouts(r: &Report) -> u64 {
    r.counters.iter().map(|c| c.get(Counter::TCPTimeouts)).sum()
}

fn lossy_100m(loss: f64, reorder: f64) -> LinkConfig {
    LinkConfig { loss, reorder, delay: Duration::from_millis(10), bandwidth: Some(100_000_000), ..Default::default() }
}

#[test]
fn defaults_are_cubic_with_sack_recovery_and_tlp() {
    let c = Config::default();
    assert_eq!(c.tcp_congestion_control, "cubic");
    assert!(c.tcp_sack_recovery);
    assert_eq!(c.tcp_early_retrans, 3);
}

#[test]
fn five_percent_loss_finishes_sooner_with_fewer_timeouts() {
    let link = lossy_100m(0.05, 0.0);
    let before = run(link.clone(), 10_000_000, old_recovery());
    let after = run(link, 10_000_000, Config::default());
    assert!(
        after.virtual_duration.as_secs_f64() < 0.75 * before.virtual_duration.as_secs_f64(),
        "{:?} vs {:?}",
        after.virtual_duration,
        before.virtual_duration
    );
    assert!(timeouts(&after) < timeouts(&before), "{} vs {}", timeouts(&after), timeouts(&before));
    let sack: u64 = after.counters.iter().map(|c| c.get(Counter::TCPSackRecovery)).sum();
    assert!(sack > 0);
}

#[test]
fn heavy_loss_with_reordering_halves_the_timeouts() {
    let link = lossy_100m(0.15, 0.03);
    let before = run(link.clone(), 10_000_000, old_recovery());
    let after = run(link, 10_000_000, Config::default());
    assert!(2 * timeouts(&after) < timeouts(&before), "{} vs {}", timeouts(&after), timeouts(&before));
    assert!(after.virtual_duration < before.virtual_duration);
    let probes: u64 = after.counters.iter().map(|c| c.get(Counter::TCPLossProbes)).sum();
    assert!(probes > 0, "tail loss probes were sent");
}

#[test]
fn the_issue_headline_case_needs_far_fewer_timeouts() {
    // `xdptcp sim --scenario transfer --bytes 10000000 --loss 0.15 --reorder 0.15 --dup 0.03 --corrupt 0.02
    // --seed 42 --counters`: 882 RTOs with the old recovery.
    let link = LinkConfig { loss: 0.15, reorder: 0.15, duplicate: 0.03, corrupt: 0.02, ..Default::default() };
    let before = run(link.clone(), 10_000_000, old_recovery());
    assert!(timeouts(&before) > 800, "{}", timeouts(&before));
    let after = run(link, 10_000_000, Config::default());
    assert!(timeouts(&after) * 3 < timeouts(&before) * 2, "{} vs {}", timeouts(&after), timeouts(&before));
}

#[test]
fn duplication_no_longer_causes_spurious_retransmissions() {
    let link = LinkConfig { duplicate: 0.3, ..Default::default() };
    let before = run(link.clone(), 10_000_000, old_recovery());
    let after = run(link, 10_000_000, Config::default());
    // 30 % duplicated ACKs look like duplicate ACKs to the old recovery; the scoreboard knows nothing is missing.
    assert!(
        after.retransmissions * 5 < before.retransmissions,
        "{} vs {}",
        after.retransmissions,
        before.retransmissions
    );
}

#[test]
fn drop_tail_bottleneck_is_used_far_better() {
    let link = LinkConfig { delay: Duration::from_millis(10), bandwidth: Some(10_000_000), ..Default::default() };
    let before = run(link.clone(), 5_000_000, old_recovery());
    let after = run(link, 5_000_000, Config::default());
    let used = |r: &Report| 5_000_000.0 * 8.0 / r.virtual_duration.as_secs_f64() / 10_000_000.0;
    assert!(used(&before) < 0.2, "{}", used(&before));
    // Not yet the issue's 70 %: CUBIC's slow start still overflows the 1000-packet queue once.
    assert!(used(&after) > 0.45, "{}", used(&after));
}
