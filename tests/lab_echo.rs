//! `xdptcp serve --app echo` in the veth lab against the Python kernel-socket client: 500 concurrent connections
//! with 1 MiB each, every byte checked; half-close; abortive close seen as ECONNRESET; and the same bulk test
//! through an impaired router (loss, reordering, delay, both ways); and a bulk run on the xsk-rs rings (the
//! alternative to the default raw rings). Needs root; skipped with a message otherwise.

mod lab;

use lab::{echo_client, is_root, serial, serve, unique_name, xdptcp_bin};
use xdptcp::cli::lab::LabGuard;
use xdptcp::tcp::Counter;

#[test]
fn echo_500_connections_of_1_mib() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("echo"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7"]);
    assert!(server.banner.contains("raw rings"), "raw rings are the default: {}", server.banner);
    let (ok, out) = echo_client(&lab, &["--port", "7", "--conns", "500", "--bytes", "1048576", "--timeout", "240"]);
    let counters = server.stop().expect("orderly stop");
    assert!(ok, "echo client: {out}");
    assert!(counters.get(Counter::PassiveOpens) >= 500, "{counters:?}");
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
fn echo_half_close_returns_everything() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("half"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7"]);
    let (ok, out) =
        echo_client(&lab, &["--port", "7", "--conns", "20", "--bytes", "1048576", "--half-close", "--timeout", "120"]);
    server.stop().expect("orderly stop");
    assert!(ok, "half-closed clients must still get the whole echo, then EOF: {out}");
}

#[test]
fn echo_abort_is_seen_as_econnreset() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("rst"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7", "--abort-after", "100000"]);
    let (ok, out) =
        echo_client(&lab, &["--port", "7", "--conns", "10", "--bytes", "1048576", "--expect-reset", "--timeout", "60"]);
    let counters = server.stop().expect("orderly stop");
    assert!(ok, "every connection must see ECONNRESET: {out}");
    assert!(counters.get(Counter::OutRsts) >= 10, "{counters:?}");
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
