//! An echo server embedding xdptcp: [`HostBuilder`] assembles the stack on an interface, each queue's worker hands
//! its connections to app threads, and the app is plain blocking code over `Listener` and `Connection`.
//!
//! As root, in the veth lab (`xdptcp lab up`), with the kernel client `ip netns exec xdplab-cli nc 198.18.0.1 7`:
//! `ip netns exec xdplab-srv target/release/examples/echo_server xs0 198.18.0.1/24 198.18.0.254 7`

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use xdptcp::app::threaded::{Hub, HubConfig};
use xdptcp::host::{spawn_pinned, HostBuilder};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, iface, addr, gateway, port] = &args[..] else {
        anyhow::bail!("usage: echo_server IFACE IP/PREFIX GATEWAY PORT");
    };
    let port: u16 = port.parse()?;
    // Ctrl-C: the workers close their connections (bounded drain), then `accept` below fails and we exit.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }

    let (host, queues) = HostBuilder::new(iface, addr)?.gateway(Some(gateway.parse()?)).listen(&[port]).build()?;
    let (hub, bridges) = Hub::new(queues.len(), HubConfig::default())?;
    let mut workers = Vec::new();
    for (queue, bridge) in queues.into_iter().zip(bridges) {
        let (core, name) = (queue.core, format!("echo-q{}", queue.queue));
        let mut worker = queue.into_worker(Box::new(bridge));
        worker.listen(port, 1024)?;
        let stop = stop.clone();
        workers.push(spawn_pinned(core, name, move || worker.run(&stop, Duration::from_secs(1)))?);
    }
    println!("echo on {}:{port}, ready", host.addr());

    let mut listener = hub.listener();
    while let Ok(mut conn) = listener.accept() {
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            // Ok(0) is the peer's FIN; an error is a reset or the stack shutting down.
            while let Ok(n @ 1..) = conn.read(&mut buf) {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            conn.close();
        });
    }
    for w in workers {
        let _ = w.join();
    }
    host.finish();
    Ok(())
}
