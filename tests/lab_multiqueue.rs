//! Two queues, two workers: flows land on either queue (the router's transmit hash picks it), each worker runs its
//! own engine, and ARP learned on one queue serves the other. Needs root; skipped with a message otherwise.

mod lab;

use lab::{echo_client, is_root, serve, unique_name, xdptcp_bin};
use xdptcp::cli::lab::LabGuard;
use xdptcp::tcp::Counter;

#[test]
fn two_queues_two_workers() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let lab = LabGuard::up_with(&unique_name("mq"), None, xdptcp_bin(), 2).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7"]);
    assert!(server.banner.contains("queues [0, 1]"), "{}", server.banner);
    let (ok, out) = echo_client(&lab, &["--port", "7", "--conns", "64", "--bytes", "262144", "--timeout", "120"]);
    let text = server.stop_output().expect("orderly stop");
    let counters = xdptcp::cli::demo::parse_counters(&text);
    assert!(ok, "echo client: {out}");
    assert_eq!(counters.get(Counter::PassiveOpens), 64, "{counters:?}");
    // Both workers served connections (64 flows hashed over two queues).
    for q in 0..2 {
        let line = text.lines().find(|l| l.starts_with(&format!("Queue{q}:"))).expect("per-queue line");
        let opens: u64 = line.split("PassiveOpens ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
        assert!(opens > 0, "queue {q} served nothing: {text}");
    }
}
