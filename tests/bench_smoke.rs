//! `xdptcp bench` in the veth lab: a short run of every mode (rps, cps, stream, hold) from the AF_XDP client and
//! from the kernel-socket client, against `xdptcp serve --app echo` and against the kernel server of
//! `xdptcp bench server`; every run must complete work with zero errors. The AF_XDP client also holds connections
//! from a range of source addresses, each of which the router must have resolved. Then a short SYN flood must
//! reach the server, the ceiling mode's data frames must reach `xdptcp bench sink`, a flood outside a lab must be
//! refused, and `bench/hold` must produce its table from a small run. Needs root (namespaces, XDP); skipped with a
//! message otherwise. Labs are uniquely named and always removed.

mod lab;

use std::process::Command;
use std::time::Duration;

use lab::{is_root, serial, serve, unique_name, xdptcp_bin, NsProcess};
use xdptcp::lab::{Lab, LabGuard, ROUTER_CLIENT_SIDE, SERVER_ADDR, SERVER_KERNEL_ADDR};

/// The AF_XDP client's address in the client namespace (the kernel there has .2).
const CLIENT_XDP_ADDR: &str = "198.18.1.3/24";
/// A range of source addresses for the AF_XDP client.
const MULTI_ADDRS: &str = "198.18.1.10-198.18.1.13/24";
const MULTI_FIRST: u8 = 10;
const MULTI_LAST: u8 = 13;

/// `xdptcp bench server` (kernel sockets, epoll) in the server namespace.
fn kernel_server(lab: &Lab, listen: &str) -> NsProcess {
    NsProcess::start(&lab.server_ns(), &["bench", "server", "--app", "echo", "--listen", listen])
}

/// The first integer value of `"key": N` in JSON text.
fn json_u64(text: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\": ");
    let rest = &text[text.find(&pat)? + pat.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Runs `xdptcp bench` in the client namespace with `--json` and returns (exit success, JSON text, stdout+stderr).
fn bench(lab: &Lab, args: &[&str]) -> (bool, String, String) {
    let json = std::env::temp_dir().join(format!("{}-{}.json", lab.name(), args.join("_").replace(['/', ':'], "-")));
    let out = Command::new("timeout")
        .args(["60", "ip", "netns", "exec", &lab.client_ns()])
        .arg(xdptcp_bin())
        .arg("bench")
        .args(args)
        .args(["--quiet", "--json"])
        .arg(&json)
        .output()
        .expect("running xdptcp bench");
    let text = std::fs::read_to_string(&json).unwrap_or_default();
    let _ = std::fs::remove_file(&json);
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text, log)
}

/// Every mode from both clients against one server; asserts work done and no errors.
fn every_mode(lab: &Lab, target: &str) {
    let gw = ROUTER_CLIENT_SIDE.to_string();
    let xdp_client = ["--iface", "xc0", "--addr", CLIENT_XDP_ADDR, "--gateway", gw.as_str()];
    for client in [&xdp_client[..], &["--kernel"][..]] {
        for (mode, extra) in [
            ("rps", &["--connections", "8", "--request-size", "200"][..]),
            // Bounded below the ephemeral port range: a fast client would otherwise run out of ports to TIME_WAIT.
            ("cps", &["--connections", "4", "--requests", "5000"][..]),
            ("stream", &["--connections", "2", "--request-size", "16384"][..]),
            ("hold", &["--connections", "200"][..]),
            // Several source addresses (the XDP client only): each must be answered for and routed.
            ("hold", &["--connections", "300", "--addr", MULTI_ADDRS][..]),
        ] {
            if client[0] == "--kernel" && extra.contains(&"--addr") {
                continue;
            }
            let mut args = vec!["--target", target, "--mode", mode, "--duration", "1"];
            let mut client = client.to_vec();
            if extra.contains(&"--addr") {
                // The run's own address range replaces the client's single address.
                let i = client.iter().position(|a| *a == "--addr").expect("the XDP client has an address");
                client.drain(i..i + 2);
            }
            args.extend_from_slice(&client);
            args.extend_from_slice(extra);
            let (ok, json, log) = bench(lab, &args);
            let what = format!("{mode} {} -> {target}", client[0]);
            assert!(ok, "{what}: bench failed\n{log}");
            assert_eq!(json_u64(&json, "data_errors"), Some(0), "{what}\n{log}");
            assert_eq!(json_u64(&json, "total"), Some(0), "{what}: errors\n{log}");
            match mode {
                "rps" | "cps" => assert!(json_u64(&json, "requests").unwrap_or(0) > 0, "{what}\n{log}"),
                "stream" => assert!(json_u64(&json, "bytes_sent").unwrap_or(0) > 0, "{what}\n{log}"),
                _ => {
                    // The memory block counts the connections held when memory was sampled.
                    let held = json.split("\"memory\"").nth(1).and_then(|m| json_u64(m, "connections"));
                    let want = if extra.contains(&"--addr") { 300 } else { 200 };
                    assert_eq!(held, Some(want), "{what}\n{log}");
                }
            }
        }
    }
}

#[test]
fn every_mode_against_xdptcp_and_the_kernel_then_a_syn_flood() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("bench"), None, xdptcp_bin()).expect("lab up");
    let mut xdp_server = serve(&lab, &["--app", "echo", "--listen", "7"]);
    {
        let _kernel_server = kernel_server(&lab, &format!("{SERVER_KERNEL_ADDR}:7"));
        every_mode(&lab, &format!("{SERVER_ADDR}:7"));
        every_mode(&lab, &format!("{SERVER_KERNEL_ADDR}:7"));
    }
    // Every source address of the range was resolved by the router (the client answered ARP for each).
    let neigh = Command::new("ip").args(["-n", &lab.router_ns(), "neigh", "show", "dev", "rc0"]).output().unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    for host in MULTI_FIRST..=MULTI_LAST {
        let ip = format!("198.18.1.{host} ");
        assert!(
            neigh.lines().any(|l| l.starts_with(&ip) && l.contains("lladdr")),
            "the router never resolved {ip}\n{neigh}"
        );
    }

    xdp_server.stop().expect("orderly stop");

    // 3000 spoofed SYNs in one second must all reach a fresh server's XDP program as TCP for its address.
    let mut xdp_server = serve(&lab, &["--app", "echo", "--listen", "7"]);
    let gw = ROUTER_CLIENT_SIDE.to_string();
    let target = format!("{SERVER_ADDR}:7");
    let (ok, json, log) = bench(
        &lab,
        &[
            "--mode",
            "synflood",
            "--target",
            &target,
            "--rate",
            "3000",
            "--duration",
            "1",
            "--iface",
            "xc0",
            "--addr",
            CLIENT_XDP_ADDR,
            "--gateway",
            &gw,
        ],
    );
    assert!(ok, "synflood: {log}");
    let sent = json_u64(&json, "sent").unwrap_or(0);
    assert!((2500..=3100).contains(&sent), "sent {sent} SYNs at 3000/s for 1 s\n{log}");
    let out = xdp_server.stop_output().expect("orderly stop");
    let steered: u64 = out
        .lines()
        .find(|l| l.starts_with("XdpSteer:"))
        .and_then(|l| l.split(" tcp ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(steered >= sent, "the server's XDP program saw {steered} TCP frames, fewer than {sent} SYNs\n{out}");

    // Ceiling: data frames of both sizes at a bounded rate reach the AF_XDP sink, counted with their size.
    for size in ["60", "1514"] {
        let sink_json = std::env::temp_dir().join(format!("{}-sink-{size}.json", lab.name()));
        let sink_path = sink_json.to_str().unwrap();
        let sink = NsProcess::start(
            &lab.server_ns(),
            &["bench", "sink", "--iface", "xs0", "--addr", "198.18.0.1/24", "--duration", "30", "--json", sink_path],
        );
        let (ok, json, log) = bench(
            &lab,
            &[
                "--mode",
                "ceiling",
                "--frame-size",
                size,
                "--target",
                "198.18.0.1:9",
                "--rate",
                "5000",
                "--duration",
                "1",
                "--iface",
                "xc0",
                "--addr",
                CLIENT_XDP_ADDR,
                "--gateway",
                &gw,
            ],
        );
        assert!(ok, "ceiling {size}: {log}");
        let sent = json_u64(&json, "sent").unwrap_or(0);
        assert!((4000..=5100).contains(&sent), "sent {sent} frames at 5000/s for 1 s\n{log}");
        std::thread::sleep(Duration::from_millis(200));
        sink.stop();
        let text = std::fs::read_to_string(&sink_json).unwrap_or_default();
        let _ = std::fs::remove_file(&sink_json);
        let frames = json_u64(&text, "frames").unwrap_or(0);
        let bytes = json_u64(&text, "bytes").unwrap_or(0);
        // A low rate, but both cores spin (sender and sink) while the router forwards in softirq: a few percent may
        // be dropped in the router's backlog (seen once: 92 %). Most arrive, none twice, each of the asked size.
        assert!(frames * 100 >= sent * 80 && frames <= sent, "sink counted {frames} of {sent}\n{text}");
        assert_eq!(bytes, frames * size.parse::<u64>().unwrap(), "{text}");
    }
}

#[test]
fn the_hold_script_writes_its_table() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let dir = std::env::temp_dir().join(unique_name("holdres"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/hold");
    let out = Command::new("timeout")
        .arg("120")
        .arg(script)
        .args(["--connections", "3000", "--linux-connections", "1000", "--bin"])
        .arg(xdptcp_bin())
        .arg("--results")
        .arg(&dir)
        .output()
        .expect("running bench/hold");
    let table = std::fs::read_to_string(dir.join("hold.md")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "bench/hold failed\n{log}");
    assert!(table.contains("| connections held | 3000 | 1000 "), "{table}");
    assert!(table.contains("| stack's own count of connections | engine: 3000 |"), "{table}");
    let per_conn = table
        .lines()
        .find(|l| l.starts_with("| server RSS growth per connection |"))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|c| c.trim().trim_end_matches(" B").parse::<i64>().ok());
    // Between nothing and the size of a Linux socket: the engine's control block and table entry.
    assert!(per_conn.is_some_and(|b| (100..8192).contains(&b)), "{table}");
}

#[test]
fn synflood_outside_a_lab_is_refused() {
    // No privileges needed: the gate runs before anything touches the network.
    let out = Command::new(xdptcp_bin())
        .args(["bench", "--mode", "synflood", "--target", "198.18.0.1:80", "--iface", "lo", "--addr", "198.18.9.9"])
        .args(["--duration", "1", "--quiet"])
        .output()
        .expect("running xdptcp bench");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("refusing to flood"), "{err}");
}
