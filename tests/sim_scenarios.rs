#![allow(clippy::field_reassign_with_default)]
//! Every named scenario in the deterministic simulator, and the state-machine coverage they add up to: every
//! transition of RFC 9293's state diagram (figure 5) must be exercised and asserted here.

use std::collections::HashSet;
use std::time::Duration;

use xdptcp::sim::{run_scenario, LinkConfig, Report, Scenario, ScenarioConfig};
use xdptcp::tcp::{CloseReason, Config, Counter, State};

fn run(scenario: Scenario) -> Report {
    run_with(ScenarioConfig { scenario, bytes: 200_000, ..Default::default() })
}

fn run_with(cfg: ScenarioConfig) -> Report {
    match run_scenario(&cfg) {
        Ok(r) => r,
        Err(e) => panic!("{:?} seed {}: {e}", cfg.scenario, cfg.seed),
    }
}

const CLIENT: usize = 0;
const SERVER: usize = 1;

#[test]
fn every_state_transition_of_the_rfc_9293_diagram_is_exercised() {
    let mut seen: HashSet<(State, State)> = HashSet::new();
    let mut keepalive_cfg = Config::default();
    keepalive_cfg.tcp_keepalive_time = 30;
    keepalive_cfg.tcp_keepalive_intvl = 5;
    keepalive_cfg.tcp_keepalive_probes = 3;
    for &s in Scenario::ALL {
        let cfg = ScenarioConfig {
            scenario: s,
            // The zero-window scenario needs more than the receive buffer holds.
            bytes: if s == Scenario::ZeroWindow { 1_000_000 } else { 100_000 },
            config: if s == Scenario::Keepalive { keepalive_cfg.clone() } else { Config::default() },
            ..Default::default()
        };
        let r = run_with(cfg);
        seen.extend(r.transitions.iter().map(|&(_, f, t, _)| (f, t)));
    }
    use State::*;
    // Figure 5 of RFC 9293, arrow by arrow (passive open starts from LISTEN; CLOSED -> SYN-SENT is connect()).
    let diagram = [
        (Closed, SynSent),
        (Listen, SynReceived),
        (SynSent, SynReceived),
        (SynSent, Established),
        (SynReceived, Established),
        (Established, FinWait1),
        (Established, CloseWait),
        (FinWait1, FinWait2),
        (FinWait1, Closing),
        (FinWait2, TimeWait),
        (Closing, TimeWait),
        (CloseWait, LastAck),
        (LastAck, Closed),
        (TimeWait, Closed),
        // Resets and aborts: a synchronized state straight to CLOSED.
        (Established, Closed),
        // SYN-SENT to CLOSED: the refused connection.
        (SynSent, Closed),
    ];
    let missing: Vec<_> = diagram.iter().filter(|t| !seen.contains(t)).collect();
    assert!(missing.is_empty(), "transitions never exercised: {missing:?}\nseen: {seen:?}");
}

#[test]
fn handshake() {
    let r = run(Scenario::Handshake);
    assert!(r.saw(CLIENT, State::SynSent, State::Established));
    assert!(r.saw(SERVER, State::SynReceived, State::Established));
    assert_eq!(r.counters[CLIENT].get(Counter::ActiveOpens), 1);
    assert_eq!(r.counters[SERVER].get(Counter::PassiveOpens), 1);
}

#[test]
fn orderly_close_walks_both_sides_through_their_states() {
    let r = run(Scenario::Close);
    for (from, to) in
        [(State::Established, State::FinWait1), (State::FinWait1, State::FinWait2), (State::FinWait2, State::TimeWait)]
    {
        assert!(r.saw(CLIENT, from, to), "client {from:?} -> {to:?}");
    }
    for (from, to) in
        [(State::Established, State::CloseWait), (State::CloseWait, State::LastAck), (State::LastAck, State::Closed)]
    {
        assert!(r.saw(SERVER, from, to), "server {from:?} -> {to:?}");
    }
    assert!(r.sha_match);
}

#[test]
fn simultaneous_open_goes_through_syn_received() {
    let r = run(Scenario::SimultaneousOpen);
    assert!(r.saw(CLIENT, State::SynSent, State::SynReceived));
    assert!(r.saw(SERVER, State::SynSent, State::SynReceived));
    assert!(r.sha_match);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let r = run(Scenario::SimultaneousClose);
    assert!(r.saw(CLIENT, State::FinWait1, State::Closing) || r.saw(SERVER, State::FinWait1, State::Closing));
    assert!(r.saw(CLIENT, State::Closing, State::TimeWait) || r.saw(SERVER, State::Closing, State::TimeWait));
}

#[test]
fn half_close_keeps_reading_after_our_fin() {
    let r = run(Scenario::HalfClose);
    assert_eq!(r.client_received, 200_000, "the client read everything after shutting down its write side");
    assert!(r.sha_match);
}

#[test]
fn abort_resets_the_peer() {
    let r = run(Scenario::Rst);
    assert_eq!(r.server_closed, Some(CloseReason::Reset));
    assert!(r.counters[CLIENT].get(Counter::OutRsts) >= 1);
    assert_eq!(r.counters[CLIENT].get(Counter::TCPAbortOnLinger), 1);
}

#[test]
fn closed_port_refuses() {
    let r = run(Scenario::Refused);
    assert_eq!(r.client_closed, Some(CloseReason::Refused));
    assert_eq!(r.counters[CLIENT].get(Counter::AttemptFails), 1);
}

#[test]
fn time_wait_lasts_exactly_two_msl_of_virtual_time() {
    for msl_ms in [30_000u32, 1_000] {
        let mut config = Config::default();
        config.tcp_msl_ms = msl_ms;
        let r = run_with(ScenarioConfig { scenario: Scenario::Timewait, config, ..Default::default() });
        let enter = r.transitions.iter().find(|t| t.0 == CLIENT && t.2 == State::TimeWait).expect("entered").3;
        let leave = r.transitions.iter().find(|t| t.0 == CLIENT && t.1 == State::TimeWait).expect("left").3;
        let lasted = leave - enter;
        let expected = Duration::from_millis(2 * msl_ms as u64);
        // The wheel never fires early and at most one 1 ms tick late.
        assert!(lasted >= expected && lasted <= expected + Duration::from_millis(1), "{lasted:?} vs {expected:?}");
    }
}

#[test]
fn blind_in_window_rst_draws_a_challenge_ack() {
    let r = run(Scenario::BlindRst);
    assert_eq!(r.counters[SERVER].get(Counter::TCPChallengeACK), 1);
    assert_eq!(r.server_closed, Some(CloseReason::Reset), "then the exact RST resets");
}

#[test]
fn zero_window_is_probed_and_every_byte_arrives() {
    let r = run_with(ScenarioConfig { scenario: Scenario::ZeroWindow, bytes: 1_000_000, ..Default::default() });
    assert!(r.counters[CLIENT].get(Counter::TCPWinProbe) > 0);
    assert!(r.counters[SERVER].get(Counter::TCPToZeroWindowAdv) > 0);
    assert!(r.sha_match);
}

#[test]
fn keepalive_probes_then_times_out_a_dead_peer() {
    let mut config = Config::default();
    config.tcp_keepalive_time = 30;
    config.tcp_keepalive_intvl = 5;
    config.tcp_keepalive_probes = 3;
    let r = run_with(ScenarioConfig { scenario: Scenario::Keepalive, config, ..Default::default() });
    assert_eq!(r.client_closed, Some(CloseReason::TimedOut));
    assert!(r.counters[CLIENT].get(Counter::TCPKeepAlive) >= 4);
}

#[test]
fn rto_backs_off_per_rfc_6298_when_the_path_dies() {
    // A transfer whose path goes dark after the handshake: retransmissions at RTO, 2*RTO, 4*RTO ... capped.
    let mut config = Config::default();
    config.tcp_retries2 = 8;
    // The RTO alone: no tail loss probe ahead of the first timeout (RFC 8985 §7 sends one).
    config.tcp_early_retrans = 0;
    let link = LinkConfig { delay: Duration::from_millis(5), ..Default::default() };
    let cfg = ScenarioConfig { scenario: Scenario::Handshake, link, config, trace: true, ..Default::default() };
    let mut net = xdptcp::sim::scenario::network_for(&cfg);
    net.start();
    net.run_until(Duration::from_secs(5), |n| n.hosts[0].app.connected_at.is_some()).unwrap();
    net.run_for(Duration::from_millis(100));
    net.set_loss(1.0);
    let c = net.hosts[0].app.conn.unwrap();
    let now = net.now;
    net.hosts[0].engine.send(now, c, b"lost forever").unwrap();
    net.settle();
    net.run_for(Duration::from_secs(600));
    let sends: Vec<f64> = net
        .trace
        .as_ref()
        .unwrap()
        .entries
        .iter()
        .filter_map(|e| match e {
            xdptcp::sim::TraceEntry::Packet { at, from: 0, summary, .. } if summary.contains("(12)") => {
                Some(at.as_micros() as f64 / 1e6)
            }
            _ => None,
        })
        .collect();
    let gaps: Vec<f64> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps.len(), 8, "{sends:?}");
    for w in gaps.windows(2) {
        let ratio = w[1] / w[0];
        assert!((1.99..=2.01).contains(&ratio), "each RTO doubles: {gaps:?}");
    }
    assert!(gaps[0] >= 0.2 - 1e-9, "RTO never below tcp_rto_min: {gaps:?}");
}

#[test]
fn same_seed_replays_bit_for_bit() {
    let cfg = ScenarioConfig {
        scenario: Scenario::Bidirectional,
        bytes: 300_000,
        seed: 7,
        trace: true,
        link: LinkConfig { loss: 0.05, reorder: 0.05, duplicate: 0.02, corrupt: 0.01, ..Default::default() },
        ..Default::default()
    };
    let a = run_with(cfg.clone());
    let b = run_with(cfg);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.virtual_duration, b.virtual_duration);
    assert_eq!(format!("{:?}", a.counters), format!("{:?}", b.counters));
}
