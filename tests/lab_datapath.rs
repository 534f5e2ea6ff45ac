//! The AF_XDP datapath alone (no TCP engine) on the veth lab: the XDP program steers ARP and ping for the stack's
//! address to the socket, the datapath answers them, and a kernel client in another namespace sees the answers.
//! Run once per ring implementation (raw, the default, and xsk-rs). Needs root (CAP_BPF, CAP_NET_ADMIN); skipped
//! with a message otherwise.

mod lab;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lab::{enter_netns, is_root, serial, unique_name};
use xdptcp::lab::{LabGuard, PREFIX_LEN, ROUTER_SERVER_SIDE, SERVER_ADDR, SERVER_IF};
use xdptcp::tcp::{Counter, Counters};
use xdptcp::time::MonotonicClock;
use xdptcp::worker::{Datapath, NeighConfig, NetConfig};
use xdptcp::xdp::{AnyRings, Interface, RingConfig, RingsKind, XdpMode, XdpProgram, XskBind, XskRings};

#[test]
fn datapath_answers_arp_and_ping() {
    answers_arp_and_ping(RingsKind::Raw, XskBind::Auto);
}

#[test]
fn datapath_answers_arp_and_ping_on_xsk_rs_rings_in_copy_mode() {
    answers_arp_and_ping(RingsKind::XskRs, XskBind::Copy);
}

fn answers_arp_and_ping(kind: RingsKind, bind: XskBind) {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("dp"), None, lab::xdptcp_bin()).expect("lab up");
    let stop = Arc::new(AtomicBool::new(false));
    let ns = lab.server_ns();
    let stop2 = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || -> anyhow::Result<(Counters, Option<[u8; 6]>)> {
        enter_netns(&ns)?;
        let iface = Interface::lookup(SERVER_IF)?;
        let mut prog = XdpProgram::load()?;
        prog.add_local_addr(SERVER_ADDR, true)?;
        let cfg = RingConfig { frame_count: 4096, fill_size: 2048, comp_size: 2048, bind, ..Default::default() };
        let rings = AnyRings::create(kind, SERVER_IF, 0, &cfg)?;
        assert_eq!(rings.kind(), kind);
        let what = rings.describe();
        eprintln!("rings: {what}");
        // veth has no zero-copy support: auto falls back to copy, and copy was asked for in the other run.
        assert!(what.contains("copy mode") && !what.contains("zero-copy"), "{what}");
        prog.register_socket(0, rings.fd())?;
        let mode = prog.attach(iface.index, XdpMode::Auto)?;
        assert_eq!(mode, XdpMode::Native, "veth supports native XDP");
        let net = NetConfig {
            addr: SERVER_ADDR,
            prefix_len: PREFIX_LEN,
            gateway: Some(ROUTER_SERVER_SIDE),
            mac: iface.mac,
            mtu: 1500,
        };
        let mut dp = Datapath::new(rings, net, cfg.fill_size as usize, NeighConfig::default())?;
        let clock = MonotonicClock::new();
        dp.refill();
        dp.announce();
        dp.flush();
        ready_tx.send(()).ok();
        let mut counters = Counters::default();
        // Bounded: the test stops it, and it gives up by itself after 30 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !stop2.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
            let now = clock.now();
            dp.reclaim();
            dp.receive(now, &mut |_, _| {});
            dp.refill();
            dp.poll_neighbours(now);
            dp.flush();
            dp.rings_mut().poll_rx(1)?;
        }
        dp.take_counters(&mut counters);
        Ok((counters, dp.neighbour(ROUTER_SERVER_SIDE)))
    });
    if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
        stop.store(true, Ordering::Relaxed);
        panic!("datapath did not start: {:?}", server.join().map(|r| r.map(|_| ())));
    }
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.client_ns(), "ping", "-c", "5", "-i", "0.2", "-W", "2", &SERVER_ADDR.to_string()])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    // The XDP program must be attached while the datapath runs.
    let link = lab.server_link().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (counters, gw_mac) = server.join().expect("server thread").expect("server");
    assert!(out.status.success(), "ping failed: {text}");
    assert!(text.contains("5 received"), "{text}");
    assert!(link.contains("xdp"), "no XDP program on the interface: {link}");
    assert!(counters.get(Counter::InEchos) >= 5, "{counters:?}");
    assert!(counters.get(Counter::OutEchoReps) >= 5, "{counters:?}");
    assert!(counters.get(Counter::ArpRepliesOut) + counters.get(Counter::ArpRequestsOut) >= 1, "{counters:?}");
    assert!(gw_mac.is_some(), "the gateway was resolved");
    // The program went with the process's link: nothing left attached.
    let link = lab.server_link().unwrap();
    assert!(!link.contains("xdp"), "XDP program left attached: {link}");
    let _ = Ipv4Addr::UNSPECIFIED;
}
