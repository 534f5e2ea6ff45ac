//! `xdptcp serve --app http` in the veth lab, driven by curl and by raw kernel sockets from the client namespace:
//! a GET, keep-alive, pipelined requests, a request split across segments, `Connection: close`.
//! Needs root; skipped with a message otherwise.

mod lab;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lab::{in_netns, is_root, serial, serve, unique_name, xdptcp_bin};
use xdptcp::app::http::BODY;
use xdptcp::lab::capture_in;
use xdptcp::lab::{LabGuard, SERVER_ADDR};
use xdptcp::tcp::Counter;

fn response_len() -> usize {
    let mut r = Vec::new();
    xdptcp::app::http::write_response(&mut r, 200, true, false);
    r.len()
}

#[test]
fn http_get_keep_alive_pipelining_and_split_requests() {
    if !is_root() {
        eprintln!("skipped: needs root for namespaces and XDP");
        return;
    }
    let _serial = serial();
    let lab = LabGuard::up(&unique_name("http"), None, xdptcp_bin()).expect("lab up");
    let mut server = serve(&lab, &["--app", "http", "--listen", "80,8080"]);
    let url = format!("http://{SERVER_ADDR}/");

    let body = capture_in(&lab.client_ns(), "curl", &["-sS", "-m", "10", &url]).expect("curl GET");
    assert_eq!(body.as_bytes(), BODY);

    let ka = capture_in(
        &lab.client_ns(),
        "curl",
        &["-sS", "-m", "10", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", &url, &url],
    )
    .expect("curl keep-alive");
    assert_eq!(ka.lines().collect::<Vec<_>>(), ["200 1", "200 0"], "the second request reuses the connection");

    let alt = capture_in(&lab.client_ns(), "curl", &["-sS", "-m", "10", &format!("http://{SERVER_ADDR}:8080/x")])
        .expect("second port");
    assert_eq!(alt.as_bytes(), BODY);

    let one = response_len();
    let (pipelined, split, closed) = in_netns(&lab.client_ns(), move || {
        let addr = SocketAddr::from((SERVER_ADDR, 80));
        // Three pipelined requests in one write (the second with a body): three responses, in order.
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /3 HTTP/1.1\r\n\r\n",
        )
        .unwrap();
        let mut buf = vec![0u8; 3 * one];
        s.read_exact(&mut buf).unwrap();
        let pipelined = String::from_utf8_lossy(&buf).matches("HTTP/1.1 200 OK").count();

        // One request dribbled out in small segments (TCP_NODELAY, pauses between writes).
        s.set_nodelay(true).unwrap();
        let req = b"GET /split HTTP/1.1\r\nHost: a\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        for chunk in req.chunks(7) {
            s.write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(15));
        }
        let mut buf = vec![0u8; one];
        s.read_exact(&mut buf).unwrap();
        let split = buf.ends_with(BODY);

        // Connection: close: the response, then EOF from the server.
        s.write_all(b"GET /bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        let closed = String::from_utf8_lossy(&rest).contains("Connection: close") && rest.ends_with(BODY);
        (pipelined, split, closed)
    });
    assert_eq!(pipelined, 3, "three pipelined responses");
    assert!(split, "a request split across segments is answered");
    assert!(closed, "Connection: close is honoured: response, then EOF");

    let counters = server.stop().expect("orderly stop");
    assert!(counters.get(Counter::PassiveOpens) >= 4, "{counters:?}");
    assert_eq!(counters.get(Counter::TxNoBuffer), 0, "{counters:?}");
}
