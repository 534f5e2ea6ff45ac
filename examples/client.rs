//! A client embedding xdptcp: one worker runs a callback [`App`] that opens a connection with `Engine::connect`,
//! sends a line, half-closes, prints what comes back (say, from an echo server) and stops the worker.
//!
//! As root, in the veth lab (`xdptcp lab up`), against a kernel echo server on 198.18.0.2:
//! `ip netns exec xdplab-cli target/release/examples/client xc0 198.18.1.3/24 198.18.1.254 198.18.0.2:7`

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use xdptcp::app::App;
use xdptcp::host::HostBuilder;
use xdptcp::tcp::{ConnId, Engine, Event};
use xdptcp::time::Instant;

struct Hello {
    local: SocketAddrV4,
    remote: SocketAddrV4,
    conn: Option<ConnId>,
    /// The worker's stop flag: set once the exchange is over.
    stop: Arc<AtomicBool>,
}

impl App for Hello {
    fn on_tick(&mut self, engine: &mut Engine, now: Instant) {
        if self.conn.is_none() && !self.stop.load(Ordering::Relaxed) {
            // Local port 0: an ephemeral port from `ip_local_port_range`.
            match engine.connect(now, self.local, self.remote) {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    eprintln!("connect: {e}");
                    self.stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }
    fn on_event(&mut self, engine: &mut Engine, now: Instant, event: Event) {
        let mut buf = [0u8; 4096];
        match event {
            Event::Connected(c) => {
                // A fresh connection's send buffer takes a short line whole.
                let _ = engine.send(now, c, b"hello over AF_XDP\n");
                let _ = engine.shutdown_write(now, c);
            }
            Event::Readable(c) => {
                while let Ok(n @ 1..) = engine.recv(c, &mut buf) {
                    print!("{}", String::from_utf8_lossy(&buf[..n]));
                }
            }
            Event::Closed(c, reason) => {
                let _ = engine.close(now, c);
                self.conn = None;
                println!("closed: {reason:?}");
                self.stop.store(true, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    fn shutdown(&mut self, engine: &mut Engine, now: Instant) {
        if let Some(c) = self.conn.take() {
            let _ = engine.close(now, c);
        }
    }
    fn connections(&self) -> usize {
        usize::from(self.conn.is_some())
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, iface, addr, gateway, remote] = &args[..] else {
        anyhow::bail!("usage: client IFACE IP/PREFIX GATEWAY SERVER:PORT");
    };
    let (host, mut queues) = HostBuilder::new(iface, addr)?.gateway(Some(gateway.parse()?)).queues(vec![0]).build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let local = SocketAddrV4::new(host.addr(), 0);
    let app = Hello { local, remote: remote.parse()?, conn: None, stop: stop.clone() };
    // The worker runs on this thread until the app sets `stop`, then drains for up to a second.
    queues.remove(0).into_worker(Box::new(app)).run(&stop, Duration::from_secs(1));
    host.finish();
    Ok(())
}
