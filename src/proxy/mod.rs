//! `xdptcp proxy`: an L4 load balancer and TCP proxy on the engine's public API.
//!
//! Owns: the backend pools and their balancing ([`balance`], [`maglev`]), backend health ([`health`]), the proxy's
//! configuration ([`config`]) and the relay application ([`relay`]) that pairs each client connection with a backend
//! connection. The relay is an [`crate::app::App`] like echo or http, but it lives here rather than in `src/app/`
//! because it is the one app that needs a balancer, health checks and a configuration of its own: the product is one
//! folder. Must not touch: rings, the XDP program, packet bytes (the PROXY v2 layout is in `wire::proxy_v2`), or the
//! engine's internals — only its socket-like API.

pub mod balance;
pub mod config;
pub mod health;
pub mod maglev;
pub mod relay;

pub use balance::{Admin, Backend, BackendStats, Balance, Pool, PoolError};
pub use config::{BackendSpec, ConfigError, FrontendConfig, ProxyConfig, Timeouts};
pub use health::{CheckConfig, Health, HealthChange};
pub use relay::{Relay, RelayStats};
