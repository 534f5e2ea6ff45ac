//! `xdptcp serve --app echo` in the veth lab against the Python kernel-socket client, in both application models
//! ([`Model`]: callbacks on the workers, and `--app-threads` behind the lock-free bridge): 500 concurrent
//! connections with 1 MiB each, every byte checked; half-close; abortive close seen as ECONNRESET. Then, in one
//! model each: the bulk test through an impaired router (loss, reordering, delay, both ways), a bulk run on the
//! xsk-rs rings (the alternative to the default raw rings), and two queues feeding one app thread. Needs root;
//! skipped with a message otherwise.

mod lab;

use lab::{echo_client, is_root, serial, serve, unique_name, xdptcp_bin, Model};
use xdptcp::lab::LabGuard;
use xdptcp::tcp::Counter;

/// The `AppThreads:` line of serve's final report: (accepted, parks, unparks, worker wakes).
fn app_stats(text: &str) -> (u64, u64, u64, u64) {
    let line =
        text.lines().find(|l| l.starts_with("AppThreads:")).unwrap_or_else(|| panic!("no AppThreads line: {text}"));
    let field = |name: &str| -> u64 {
        line.split(&format!("{name} ")).nth(1).and_then(|r| r.split(' ').next()).and_then(|v| v.parse().ok()).unwrap()
    };
    (field("accepted"), field("app_parks"), field("app_unparks"), field("worker_wakes"))
}

/// One `#[test]` per application model for a test body `fn(Model)`.
macro_rules! in_both_models {
    ($body:ident: $callbacks:ident, $threads:ident) => {
        #[test]
        fn $callbacks() {
            $body(Model::Callbacks);
        }
        #[test]
        fn $threads() {
            $body(Model::AppThreads(2));
        }
    };
}

in_both_models!(bulk_500_connections_of_1_mib: echo_500_connections_of_1_mib, echo_on_app_threads_500_connections_of_1_mib);
in_both_models!(half_close: echo_half_close_returns_everything, half_close_on_app_threads);
in_both_models!(abort: echo_abort_is_seen_as_econnreset, reset_on_app_threads);

fn bulk_500_connections_of_1_mib(model: Model) {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("echo"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &model.args(&["--app", "echo", "--listen", "7"]));
    assert!(server.banner.contains("raw rings"), "raw rings are the default: {}", server.banner);
    if let Model::AppThreads(n) = model {
        assert!(server.banner.contains(&format!("on {n} app thread(s)")), "{}", server.banner);
    }
    let (ok, out) = echo_client(&lab, &["--port", "7", "--conns", "500", "--bytes", "1048576", "--timeout", "240"]);
    let text = server.stop_output().expect("orderly stop");
    assert!(ok, "echo client: {out}");
    let counters = xdptcp::lab::parse_counters(&text);
    assert!(counters.get(Counter::PassiveOpens) >= 500, "{counters:?}");
    if model != Model::Callbacks {
        let (accepted, ..) = app_stats(&text);
        assert!(accepted >= 500, "{text}");
    }
}

fn half_close(model: Model) {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("half"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &model.args(&["--app", "echo", "--listen", "7"]));
    let (ok, out) =
        echo_client(&lab, &["--port", "7", "--conns", "20", "--bytes", "1048576", "--half-close", "--timeout", "120"]);
    server.stop().expect("orderly stop");
    assert!(ok, "half-closed clients must still get the whole echo, then EOF: {out}");
}

fn abort(model: Model) {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("rst"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &model.args(&["--app", "echo", "--listen", "7", "--abort-after", "100000"]));
    let (ok, out) =
        echo_client(&lab, &["--port", "7", "--conns", "10", "--bytes", "1048576", "--expect-reset", "--timeout", "60"]);
    let counters = server.stop().expect("orderly stop");
    assert!(ok, "every connection must see ECONNRESET: {out}");
    assert!(counters.get(Counter::OutRsts) >= 10, "{counters:?}");
}

#[test]
fn echo_on_xsk_rs_rings() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("xskrs"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7", "--rings", "xsk-rs"]);
    assert!(server.banner.contains("xsk-rs rings"), "{}", server.banner);
    let (ok, out) = echo_client(&lab, &["--port", "7", "--conns", "100", "--bytes", "1048576", "--timeout", "120"]);
    let counters = server.stop().expect("orderly stop");
    assert!(ok, "echo client: {out}");
    assert!(counters.get(Counter::PassiveOpens) >= 100, "{counters:?}");
}

#[test]
fn echo_through_an_impaired_router() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let impair = "loss 2% delay 1ms reorder 1%";
    let lab = LabGuard::up(&unique_name("imp"), Some(impair), xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7"]);
    let (ok, out) = echo_client(&lab, &["--port", "7", "--conns", "500", "--bytes", "1048576", "--timeout", "400"]);
    let counters = server.stop().expect("orderly stop");
    assert!(ok, "every byte must arrive through {impair}: {out}");
    assert!(counters.get(Counter::RetransSegs) > 0, "losses must have caused retransmissions: {counters:?}");
}

#[test]
fn two_queues_feed_one_app_thread() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up_with(&unique_name("appmq"), None, xdptcp_bin(), 2).expect("lab up");
    let mut server = serve(&lab, &Model::AppThreads(1).args(&["--app", "echo", "--listen", "7"]));
    assert!(server.banner.contains("queues [0, 1]"), "{}", server.banner);
    let (ok, out) = echo_client(&lab, &["--port", "7", "--conns", "64", "--bytes", "262144", "--timeout", "60"]);
    let text = server.stop_output().expect("orderly stop");
    assert!(ok, "echo client: {out}");
    for q in 0..2 {
        let line = text.lines().find(|l| l.starts_with(&format!("Queue{q}:"))).expect("per-queue line");
        let opens: u64 = line.split("PassiveOpens ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
        assert!(opens > 0, "queue {q} served nothing: {text}");
    }
    assert_eq!(app_stats(&text).0, 64, "{text}");
}
