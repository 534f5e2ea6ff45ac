//! The stack as a neighbour on the wire: RST for ports nobody listens on, ping, the kernel still owning its own
//! traffic on the same interface, and no XDP program left behind when the server is SIGKILLed.
//! Needs root; skipped with a message otherwise.

mod lab;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use lab::{in_netns, is_root, serial, serve, unique_name, xdptcp_bin};
use xdptcp::lab::{LabGuard, SERVER_ADDR, SERVER_KERNEL_ADDR};
use xdptcp::tcp::Counter;

#[test]
fn refused_ping_and_kernel_traffic_coexist() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("misc"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &["--app", "http", "--listen", "80"]);

    // A port nobody listens on: the engine answers the SYN with RST (RFC 9293 §3.10.7.1).
    let refused = in_netns(&lab.client_ns(), || {
        TcpStream::connect_timeout(&SocketAddr::from((SERVER_ADDR, 81)), Duration::from_secs(5)).map(|_| ())
    });
    assert_eq!(refused.map_err(|e| e.kind()), Err(ErrorKind::ConnectionRefused));

    // Ping.
    let ping = Command::new("ip")
        .args(["netns", "exec", &lab.client_ns(), "ping", "-c", "3", "-i", "0.2", "-W", "2"])
        .arg(SERVER_ADDR.to_string())
        .output()
        .expect("ping");
    assert!(ping.status.success(), "{}", String::from_utf8_lossy(&ping.stdout));

    // A kernel listener on the interface's kernel address still works while XDP runs there.
    let srv_ns = lab.server_ns();
    let (tx, rx) = std::sync::mpsc::channel();
    let kernel = std::thread::spawn(move || {
        lab::enter_netns(&srv_ns).unwrap();
        let l = TcpListener::bind((SERVER_KERNEL_ADDR, 7000)).unwrap();
        tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        s.write_all(b"pong").unwrap();
        b
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let reply = in_netns(&lab.client_ns(), || {
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::from((SERVER_KERNEL_ADDR, 7000)), Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        b
    });
    assert_eq!(&kernel.join().unwrap(), b"ping");
    assert_eq!(&reply, b"pong");

    let counters = server.stop().expect("orderly stop");
    assert!(counters.get(Counter::OutRsts) >= 1, "{counters:?}");
    assert!(counters.get(Counter::OutEchoReps) >= 3, "{counters:?}");
}

#[test]
fn sigkill_leaves_no_xdp_program() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("kill"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7"]);
    assert!(lab.server_link().unwrap().contains("xdp"), "attached while serving");
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(5)).expect("killed");
    // The bpf_link dies with the process's file descriptors.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut link = lab.server_link().unwrap();
    while link.contains("xdp") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        link = lab.server_link().unwrap();
    }
    assert!(!link.contains("xdp"), "XDP program left attached after SIGKILL: {link}");
}

#[test]
fn sigterm_closes_connections_in_order() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("term"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &["--app", "echo", "--listen", "7"]);
    let (tx, rx) = std::sync::mpsc::channel();
    let client = {
        let ns = lab.client_ns();
        std::thread::spawn(move || {
            lab::enter_netns(&ns).unwrap();
            let mut s =
                TcpStream::connect_timeout(&SocketAddr::from((SERVER_ADDR, 7)), Duration::from_secs(5)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"hello").unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).unwrap();
            tx.send(()).unwrap();
            // The server's shutdown must end the stream with FIN (EOF here), not RST.
            let mut rest = Vec::new();
            let r = s.read_to_end(&mut rest).map(|_| rest);
            (b, r.map_err(|e| e.kind()))
        })
    };
    rx.recv_timeout(Duration::from_secs(10)).expect("echo before shutdown");
    let text = server.stop_output().expect("orderly exit after SIGTERM");
    let (echoed, eof) = client.join().unwrap();
    assert_eq!(&echoed, b"hello");
    assert_eq!(eof, Ok(Vec::new()), "EOF after the server's FIN");
    let counters = xdptcp::lab::parse_counters(&text);
    assert_eq!(counters.get(Counter::OutRsts), 0, "{text}");
}

#[test]
fn refuses_an_address_the_kernel_has() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let lab = LabGuard::up(&unique_name("dup"), None, xdptcp_bin()).expect("lab up");
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.server_ns()])
        .arg(xdptcp_bin())
        .args(["serve", "--iface", "xs0", "--addr", &format!("{SERVER_KERNEL_ADDR}/24"), "--listen", "80"])
        .args(["--app", "http"])
        .output()
        .expect("xdptcp serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is configured in the kernel on xs0"), "{err}");
    assert!(!lab.server_link().unwrap().contains("xdp"), "nothing attached");
}
