//! `xdptcp lab`: create, inspect or remove the veth lab ([`crate::lab`]).

use std::process::ExitCode;

use crate::lab::netem::{self, Impairment};
use crate::lab::{
    validate_name, Lab, PREFIX_LEN, ROUTER_CLIENT_IF, ROUTER_CLIENT_SIDE, ROUTER_SERVER_IF, ROUTER_SERVER_SIDE,
    SERVER_ADDR, SERVER_IF,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Create the namespaces, links, addresses, routes and impairments.
    Up {
        #[arg(long, default_value = "xdplab")]
        name: String,
        /// netem-style impairment applied on the router in both directions, e.g. "loss 2% delay 1ms reorder 1%".
        #[arg(long)]
        impair: Option<String>,
        /// Queues of the server-side veth pair (xdptcp serves each with its own worker).
        #[arg(long, default_value_t = 1)]
        queues: u32,
    },
    /// (internal) The impairing router, run inside the router namespace by `lab up --impair`.
    #[command(hide = true)]
    NetemRouter {
        #[arg(long)]
        name: String,
        #[arg(long)]
        spec: String,
    },
    /// Remove the namespaces (and with them every link in them).
    Down {
        #[arg(long, default_value = "xdplab")]
        name: String,
    },
    /// Show what exists of the lab: namespaces, addresses, XDP attachments, qdiscs.
    Status {
        #[arg(long, default_value = "xdplab")]
        name: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Up { name, impair, queues } => {
            let lab = Lab::up_with(&name, impair.as_deref(), &std::env::current_exe()?, queues)?;
            println!("lab {} is up", lab.name());
            println!("  server: ip netns exec {} xdptcp serve --iface {SERVER_IF} --addr {SERVER_ADDR}/{PREFIX_LEN} --gateway {ROUTER_SERVER_SIDE} --listen 80 --app http", lab.server_ns());
            println!("  client: ip netns exec {} curl http://{SERVER_ADDR}/", lab.client_ns());
            println!("  down:   xdptcp lab down --name {}", lab.name());
            Ok(ExitCode::SUCCESS)
        }
        Action::Down { name } => {
            validate_name(&name)?;
            Lab::existing(&name).down()?;
            println!("lab {name} is down");
            Ok(ExitCode::SUCCESS)
        }
        Action::NetemRouter { name, spec } => {
            validate_name(&name)?;
            let imp = Impairment::parse(&spec)?;
            let lab = Lab::existing(&name);
            let ports = [
                (ROUTER_SERVER_IF, ROUTER_SERVER_SIDE, PREFIX_LEN),
                (ROUTER_CLIENT_IF, ROUTER_CLIENT_SIDE, PREFIX_LEN),
            ];
            let mount = format!("/run/netns/{}", lab.router_ns());
            let ready = lab.router_file("ready");
            netem::run_router(ports, &imp, &mount, &|| {
                let _ = std::fs::write(&ready, b"ready\n");
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Status { name } => {
            validate_name(&name)?;
            let lab = Lab::existing(&name);
            print!("{}", lab.status()?);
            Ok(if lab.exists()? { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
