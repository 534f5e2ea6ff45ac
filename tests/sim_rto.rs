#![allow(clippy::field_reassign_with_default)]
//! RFC 6298 on paths slower than the initial RTO: a transfer over a lossless path of any RTT from 50 ms to 3 s, with
//! and without timestamps, with and without a lost SYN, must not see a single data retransmission timeout once a
//! valid RTT sample exists (RFC 7323 §4 echoes, Karn's rule, the 3 s fallback of RFC 6298 §5.7).

use std::time::Duration;

use xdptcp::sim::scenario::network_for;
use xdptcp::sim::{LinkConfig, Network, ScenarioConfig};
use xdptcp::tcp::{Config, Counter};

const CLIENT: usize = 0;
const SERVER: usize = 1;
const BYTES: u64 = 150_000;

struct Outcome {
    /// Data retransmission timeouts at the sender (TCPTimeouts excludes SYN retries).
    timeouts: u64,
    /// Retransmitted segments that were not SYNs.
    data_retransmits: u64,
    syn_retransmits: u64,
    srtt: Duration,
    elapsed: Duration,
}

fn transfer(rtt_ms: u64, timestamps: bool, lose_syn: bool) -> Outcome {
    let mut config = Config::default();
    config.tcp_timestamps = timestamps as u8;
    let cfg = ScenarioConfig {
        link: LinkConfig { delay: Duration::from_millis(rtt_ms) / 2, ..Default::default() },
        config,
        ..Default::default()
    };
    let mut net: Network = network_for(&cfg);
    net.hosts[CLIENT].app.send_total = BYTES;
    let start = net.now;
    if lose_syn {
        // The path is down for the first SYN only.
        net.set_loss(1.0);
    }
    net.start();
    if lose_syn {
        net.run_for(Duration::from_millis(1));
        net.set_loss(0.0);
    }
    net.run_until(Duration::from_secs(600), |n| n.hosts[SERVER].app.received >= BYTES)
        .unwrap_or_else(|e| panic!("rtt {rtt_ms} ms ts {timestamps} lost SYN {lose_syn}: {e}"));
    let elapsed = net.now.saturating_since(start);
    let client = &net.hosts[CLIENT].engine;
    let c = client.counters();
    let id = net.hosts[CLIENT].app.conn.expect("client connected");
    let srtt = client.info(id).expect("connection alive").srtt;
    let syn_retransmits = c.get(Counter::TCPSynRetrans);
    Outcome {
        timeouts: c.get(Counter::TCPTimeouts),
        data_retransmits: c.get(Counter::RetransSegs) - syn_retransmits,
        syn_retransmits,
        srtt,
        elapsed,
    }
}

#[test]
fn no_spurious_rto_at_any_rtt_with_or_without_timestamps_or_a_lost_syn() {
    for rtt_ms in [50, 200, 900, 1040, 1400, 2000, 3000] {
        for timestamps in [true, false] {
            for lose_syn in [false, true] {
                let o = transfer(rtt_ms, timestamps, lose_syn);
                let what = format!("rtt {rtt_ms} ms, timestamps {timestamps}, lost SYN {lose_syn}");
                assert_eq!(o.timeouts, 0, "{what}: data RTOs");
                assert_eq!(o.data_retransmits, 0, "{what}: data retransmissions");
                if lose_syn {
                    assert!(o.syn_retransmits >= 1, "{what}: the SYN was lost");
                }
                // The estimate converged on the path.
                let rtt = Duration::from_millis(rtt_ms);
                assert!(
                    o.srtt >= rtt && o.srtt <= rtt + rtt / 10 + Duration::from_millis(2),
                    "{what}: srtt {:?}",
                    o.srtt
                );
                // About a dozen round trips of slow start (plus the SYN's backoff), never dozens of RTOs.
                let bound = rtt * 14 + Duration::from_secs(8);
                assert!(o.elapsed < bound, "{what}: took {:?} (bound {bound:?})", o.elapsed);
            }
        }
    }
}

#[test]
fn handshake_without_sample_starts_data_with_the_3s_fallback() {
    // RFC 6298 §5.7: without timestamps a retransmitted SYN leaves no valid sample, so the first data segment's RTO
    // is 3 s; with timestamps the SYN-ACK's echo is a sample.
    for (timestamps, expect_fallback) in [(false, true), (true, false)] {
        let mut config = Config::default();
        config.tcp_timestamps = timestamps as u8;
        let cfg = ScenarioConfig {
            link: LinkConfig { delay: Duration::from_millis(5), ..Default::default() },
            config,
            ..Default::default()
        };
        let mut net = network_for(&cfg);
        net.set_loss(1.0);
        net.start();
        net.run_for(Duration::from_millis(1));
        net.set_loss(0.0);
        net.run_until(Duration::from_secs(10), |n| n.hosts[CLIENT].app.connected_at.is_some()).expect("connects");
        let id = net.hosts[CLIENT].app.conn.expect("client connected");
        let info = net.hosts[CLIENT].engine.info(id).expect("alive");
        if expect_fallback {
            assert_eq!(info.rto, Duration::from_secs(3), "no timestamps: fallback");
            assert_eq!(info.srtt, Duration::ZERO);
        } else {
            assert!(info.rto < Duration::from_secs(1), "timestamps: sampled, rto {:?}", info.rto);
            assert!(info.srtt >= Duration::from_millis(10), "srtt {:?}", info.srtt);
        }
    }
}
