//! Several queues, several workers: each worker owns a shard of the connections; a packet landing on a worker that
//! does not own its flow is handed to the owner over a lock-free ring and counted (`HandoffOut`, `HandoffIn`,
//! `HandoffDrop`). Needs root; skipped with a message otherwise.
//!
//! - passive: a Python kernel-socket client runs many echo connections to `xdptcp serve` on two queues. veth has no
//!   readable RSS, so the owner is our software hash; the router's own transmit hash puts about half the flows on
//!   the other queue, and those are handed off, SYNs included. Every byte must come back.
//! - active, steering known: `xdptcp bench` opens connections from two workers to a kernel server; the lab's peer is
//!   configured to return every flow on the queue its request came in on, the port picker makes the opener the
//!   owner: zero hand-offs.
//! - active, steering unknown: the same without the peer's configuration: hand-offs, counted, every byte checked.

mod lab;

use std::process::Command;

use lab::{echo_client, is_root, serial, serve, unique_name, xdptcp_bin, NsProcess};
use xdptcp::lab::{Lab, LabGuard, ROUTER_SERVER_IF, ROUTER_SERVER_SIDE};
use xdptcp::tcp::{Counter, Counters};

fn queue_field(text: &str, q: u32, field: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with(&format!("Queue{q}:"))).expect("per-queue line");
    line.split(&format!("{field} ")).nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap()
}

fn assert_handoffs_balance(c: &Counters, text: &str) {
    assert_eq!(
        c.get(Counter::HandoffOut),
        c.get(Counter::HandoffIn) + c.get(Counter::HandoffDrop),
        "every packet handed off is delivered or counted as dropped: {text}"
    );
}

#[test]
fn two_queues_two_workers_hand_off_by_hash() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up_with(&unique_name("mq"), None, xdptcp_bin(), 2).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7", "--steering", "auto"]);
    assert!(server.banner.contains("queues [0, 1]"), "{}", server.banner);
    assert!(server.banner.contains("steering hash"), "veth has no readable RSS: {}", server.banner);
    let conns = 128;
    let (ok, out) = echo_client(&lab, &["--port", "7", "--conns", "128", "--bytes", "131072", "--timeout", "120"]);
    let text = server.stop_output().expect("orderly stop");
    let counters = xdptcp::lab::parse_counters(&text);
    assert!(ok, "echo client (every byte back, in order): {out}");
    assert_eq!(counters.get(Counter::PassiveOpens), conns, "{counters:?}");
    // Both workers served connections (128 flows hashed over two workers).
    for q in 0..2 {
        assert!(queue_field(&text, q, "PassiveOpens") > 0, "queue {q} served nothing: {text}");
    }
    // The router picks the queue by its own hash, which agrees with ours for about half the flows: the others
    // are handed off (the chance that all 128 agree is 2^-128).
    assert!(counters.get(Counter::HandoffOut) > 0, "{text}");
    assert!(counters.get(Counter::HandoffIn) > 0, "{text}");
    assert_handoffs_balance(&counters, &text);
    // Per worker: what one sent, the other received (or counted as dropped).
    let (out0, in1) = (queue_field(&text, 0, "HandoffOut"), queue_field(&text, 1, "HandoffIn"));
    let (out1, in0) = (queue_field(&text, 1, "HandoffOut"), queue_field(&text, 0, "HandoffIn"));
    let drops = counters.get(Counter::HandoffDrop);
    assert!(in1 <= out0 && in0 <= out1 && (out0 - in1) + (out1 - in0) == drops, "{text}");
}

/// `xdptcp bench server` (kernel sockets, epoll) on the router's server-side address.
fn kernel_server(lab: &Lab) -> NsProcess {
    NsProcess::start(
        &lab.router_ns(),
        &["bench", "server", "--app", "echo", "--listen", &format!("{ROUTER_SERVER_SIDE}:7")],
    )
}

/// Runs the AF_XDP bench client with two workers in the server namespace; returns its report text.
fn bench(lab: &Lab, queues: &str, extra: &[&str]) -> String {
    let target = format!("{ROUTER_SERVER_SIDE}:7");
    let out = Command::new("timeout")
        .args(["90", "ip", "netns", "exec", &lab.server_ns(), xdptcp_bin().to_str().unwrap(), "bench"])
        .args(["--target", &target, "--iface", "xs0", "--addr", "198.18.0.1/24", "--cores", "0,1", "--queues"])
        .args([queues, "--timeout", "20", "--quiet"])
        .args(extra)
        .output()
        .expect("running xdptcp bench");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "bench failed: {text}");
    text
}

/// `Name value` from the report's "Client stack:" line (absent: 0).
fn client_counter(text: &str, name: &str) -> u64 {
    let line = text.lines().find(|l| l.trim_start().starts_with("Client stack:")).unwrap_or("");
    line.split(&format!("{name} ")).nth(1).and_then(|r| r.split([',', ' ']).next()).map_or(0, |v| v.parse().unwrap())
}

fn assert_complete(text: &str, what: &str, n: u64) {
    assert!(text.contains(&format!("{n} {what} in ")), "not all {what} completed: {text}");
    assert!(text.contains("Errors: none"), "errors (echo bytes are verified): {text}");
}

#[test]
fn active_opens_with_known_steering_need_no_hand_off() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    // Three queues, xdptcp's workers on queues 1 and 2. Why: veth hands the receiver the sender's tx queue index
    // as skb->queue_mapping, which the receiving stack reads as "rx queue + 1". So a frame sent on queue q >= 1 is
    // recorded as received on rx queue q - 1, and one sent on queue 0 as not recorded at all (and a request sock
    // then answers the SYN on whatever queue its stale mapping says). With the workers on 1 and 2 every flow is
    // recorded, and XPS by receive queue (xps_rxqs: tx-1 <- rx 0, tx-2 <- rx 1) makes the kernel answer every
    // packet, SYN-ACK included, on the queue the request left from, i.e. the opener's. Socket-less packets
    // (ARP) go by XPS by CPU to tx-1, never to queue 0 where no worker listens.
    let lab = LabGuard::up_with(&unique_name("mqk"), None, xdptcp_bin(), 3).expect("lab up");
    let xps = format!(
        "echo 1 > /sys/class/net/{dev}/queues/tx-1/xps_rxqs && echo 2 > /sys/class/net/{dev}/queues/tx-2/xps_rxqs \
         && echo 3 > /sys/class/net/{dev}/queues/tx-1/xps_cpus",
        dev = ROUTER_SERVER_IF
    );
    let st = Lab::command_in(&lab.router_ns(), "sh").args(["-c", &xps]).status().expect("sh");
    assert!(st.success(), "configuring XPS on the router's side of the veth");
    let _server = kernel_server(&lab);
    let rps =
        bench(&lab, "1,2", &["--steering", "hash", "--mode", "rps", "--connections", "16", "--requests", "20000"]);
    assert_complete(&rps, "requests", 20000);
    let cps = bench(&lab, "1,2", &["--steering", "hash", "--mode", "cps", "--connections", "8", "--requests", "2000"]);
    assert_complete(&cps, "connections", 2000);
    // The NIC model with a configured key (what `deploy/rss.sh` sets), on queues 1 and 2: the port picker aims at
    // the queues through the equal table, the owners map queues back to workers.
    let key = "6d:5a:".repeat(20);
    let nic = ["--steering", "nic", "--rss-key", &key[..key.len() - 1]];
    let cps_nic =
        bench(&lab, "1,2", &[&nic[..], &["--mode", "cps", "--connections", "8", "--requests", "2000"]].concat());
    assert_complete(&cps_nic, "connections", 2000);
    for text in [&rps, &cps, &cps_nic] {
        assert!(text.contains("HandoffOut"), "hand-off counters reported: {text}");
        assert_eq!(client_counter(text, "HandoffOut"), 0, "the opener owns every reply: {text}");
        assert_eq!(client_counter(text, "HandoffDrop"), 0, "{text}");
    }
}

#[test]
fn active_opens_with_unknown_steering_are_handed_off() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    // Nothing configured: the kernel picks each reply's queue by the socket's random transmit hash, so about
    // half of the flows come back on the other worker's queue and are handed off.
    let lab = LabGuard::up_with(&unique_name("mqu"), None, xdptcp_bin(), 2).expect("lab up");
    let _server = kernel_server(&lab);
    let text =
        bench(&lab, "0,1", &["--steering", "hash", "--mode", "rps", "--connections", "32", "--requests", "20000"]);
    assert_complete(&text, "requests", 20000);
    let (out, inn, drop) =
        (client_counter(&text, "HandoffOut"), client_counter(&text, "HandoffIn"), client_counter(&text, "HandoffDrop"));
    // P(all 32 flows come back on their opener's queue) = 2^-32.
    assert!(out > 0, "{text}");
    assert_eq!(out, inn + drop, "{text}");
}
