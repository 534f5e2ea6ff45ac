//! `xdptcp serve --app echo --app-threads N` in the veth lab against the Python kernel-socket client: the app logic
//! runs on its own threads behind the lock-free bridge. Many connections with 1 MiB each, every byte checked; the
//! same with half-close; abortive close seen as ECONNRESET; two queues feeding one app thread. Needs root; skipped
//! with a message otherwise.

mod lab;

use lab::{echo_client, is_root, serial, serve, unique_name, xdptcp_bin};
use xdptcp::cli::lab::LabGuard;
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

#[test]
fn echo_on_app_threads_500_connections_of_1_mib() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("appth"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7", "--app-threads", "2"]);
    assert!(server.banner.contains("on 2 app thread(s)"), "{}", server.banner);
    let (ok, out) = echo_client(&lab, &["--port", "7", "--conns", "500", "--bytes", "1048576", "--timeout", "120"]);
    let text = server.stop_output().expect("orderly stop");
    eprintln!("{out}\n{}", text.lines().filter(|l| l.starts_with("AppThreads")).collect::<String>());
    assert!(ok, "echo client: {out}");
    let counters = xdptcp::cli::demo::parse_counters(&text);
    assert!(counters.get(Counter::PassiveOpens) >= 500, "{counters:?}");
    let (accepted, ..) = app_stats(&text);
    assert!(accepted >= 500, "{text}");
}

#[test]
fn half_close_and_reset_on_app_threads() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("apphc"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7", "--app-threads", "1"]);
    let (ok, out) =
        echo_client(&lab, &["--port", "7", "--conns", "20", "--bytes", "1048576", "--half-close", "--timeout", "60"]);
    server.stop().expect("orderly stop");
    assert!(ok, "half-closed clients must still get the whole echo, then EOF: {out}");

    let mut server = serve(&lab, &["--app", "echo", "--listen", "7", "--app-threads", "1", "--abort-after", "100000"]);
    let (ok, out) =
        echo_client(&lab, &["--port", "7", "--conns", "10", "--bytes", "1048576", "--expect-reset", "--timeout", "60"]);
    let counters = server.stop().expect("orderly stop");
    assert!(ok, "every connection must see ECONNRESET: {out}");
    assert!(counters.get(Counter::OutRsts) >= 10, "{counters:?}");
}

#[test]
fn two_queues_feed_one_app_thread() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up_with(&unique_name("appmq"), None, xdptcp_bin(), 2).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7", "--app-threads", "1"]);
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
