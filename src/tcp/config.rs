//! The engine's configuration: one struct whose fields are named, typed and defaulted like the Linux sysctls they
//! mirror (`net.ipv4.tcp_*`, `net.core.somaxconn`), so an operator's tuning carries over unchanged.
//!
//! Knobs Linux does not have (MTU, MSL, timer tick) are named in the same style and say so in their doc.
//! TODO(config helper): TOML loading, `set(name, value)`, `get(name)`, validation with ranges, listing.

/// Engine configuration. Field names are the sysctl names without the `net.ipv4.` / `net.core.` prefix.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Receive buffer bytes: min, default, max (default is what a new connection gets).
    pub tcp_rmem: [u32; 3],
    /// Send buffer bytes: min, default, max.
    pub tcp_wmem: [u32; 3],
    /// 0 off, 1 on (RFC 7323 timestamps with random per-connection offsets).
    pub tcp_timestamps: u8,
    /// RFC 7323 window scaling.
    pub tcp_window_scaling: bool,
    /// RFC 2018 SACK.
    pub tcp_sack: bool,
    /// Seconds an orphaned connection may stay in FIN_WAIT_2.
    pub tcp_fin_timeout: u32,
    /// Seconds of idleness before the first keepalive probe (only on connections with keepalive enabled).
    pub tcp_keepalive_time: u32,
    /// Seconds between keepalive probes.
    pub tcp_keepalive_intvl: u32,
    /// Unanswered probes before the connection is dropped.
    pub tcp_keepalive_probes: u32,
    /// SYN retransmissions for an active open before giving up (1-2-4-8... s backoff).
    pub tcp_syn_retries: u32,
    /// SYN-ACK retransmissions for a passive open before the half-open entry is freed.
    pub tcp_synack_retries: u32,
    /// Retransmissions of data before an established connection is dropped (RFC 1122 R2).
    pub tcp_retries2: u32,
    /// Retransmissions of a FIN for an orphaned connection; 0 means 8, as in Linux.
    pub tcp_orphan_retries: u32,
    /// Maximum orphaned (closed by the application, still closing on the wire) connections.
    pub tcp_max_orphans: u32,
    /// Maximum TIME_WAIT records; beyond it a closing connection skips TIME_WAIT (counted TCPTimeWaitOverflow).
    pub tcp_max_tw_buckets: u32,
    /// 0 never, 1 always, 2 loopback only (as Linux) reuse of a TIME_WAIT four-tuple by an active open.
    pub tcp_tw_reuse: u8,
    /// Maximum half-open (SYN_RECV) entries per listener.
    pub tcp_max_syn_backlog: u32,
    /// Upper bound of any listener's accept queue.
    pub somaxconn: u32,
    /// 0 never, 1 when the SYN queue is full, 2 always.
    pub tcp_syncookies: u8,
    /// 1: answer a third ACK that finds the accept queue full with RST instead of dropping it.
    pub tcp_abort_on_overflow: bool,
    /// TCP Fast Open bits: 1 client, 2 server, 0x200 server without cookie... (as Linux).
    pub tcp_fastopen: u32,
    /// Congestion control algorithm: "reno" (NewReno). "cubic" will follow.
    pub tcp_congestion_control: String,
    /// Initial congestion window in segments (Linux's route `initcwnd`, RFC 6928).
    pub tcp_init_cwnd: u32,
    /// Minimum RTO in microseconds (RFC 6298 §2.4 says 1 s; Linux and we use 200 ms).
    pub tcp_rto_min_us: u32,
    /// Maximum RTO in milliseconds.
    pub tcp_rto_max_ms: u32,
    /// Delayed-ACK timeout in milliseconds (Linux's ATO minimum, 40 ms).
    pub tcp_delack_ms: u32,
    /// RFC 5681 §4.1: collapse cwnd after an idle period longer than the RTO.
    pub tcp_slow_start_after_idle: bool,
    /// RFC 1337: a RST does not end TIME_WAIT. Linux defaults to 0; we default to 1 as the RFC asks.
    pub tcp_rfc1337: bool,
    /// Challenge ACKs (RFC 5961) allowed per second across the engine.
    pub tcp_challenge_ack_limit: u32,
    /// Ephemeral port range for active opens: low, high (inclusive).
    pub ip_local_port_range: [u16; 2],
    /// Maximum segment lifetime in milliseconds; TIME_WAIT lasts 2*MSL (Linux hard-codes 60 s; this is FreeBSD's
    /// `net.inet.tcp.msl`).
    pub tcp_msl_ms: u32,
    /// IP MTU of the link (bytes of IPv4 packet); our MSS is derived from it (MTU - 40).
    pub mtu: u32,
    /// Hard cap on connections (all states except TIME_WAIT records) per engine; protects memory under floods.
    pub max_connections: u32,
    /// Out-of-order ranges kept per connection before further out-of-order segments are dropped (bounds memory and
    /// CPU against adversarial reordering).
    pub tcp_max_ooo_ranges: u32,
    /// Granularity of the timer wheel in microseconds.
    pub timer_tick_us: u32,
    /// Verify IPv4 and TCP checksums on receive (a veth peer may hand us CHECKSUM_PARTIAL frames if offloads are on).
    pub verify_checksums: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tcp_rmem: [4096, 131072, 6291456],
            tcp_wmem: [4096, 16384, 4194304],
            tcp_timestamps: 1,
            tcp_window_scaling: true,
            tcp_sack: true,
            tcp_fin_timeout: 60,
            tcp_keepalive_time: 7200,
            tcp_keepalive_intvl: 75,
            tcp_keepalive_probes: 9,
            tcp_syn_retries: 6,
            tcp_synack_retries: 5,
            tcp_retries2: 15,
            tcp_orphan_retries: 0,
            tcp_max_orphans: 65536,
            tcp_max_tw_buckets: 262144,
            tcp_tw_reuse: 2,
            tcp_max_syn_backlog: 4096,
            somaxconn: 4096,
            tcp_syncookies: 1,
            tcp_abort_on_overflow: false,
            tcp_fastopen: 1,
            tcp_congestion_control: "reno".to_string(),
            tcp_init_cwnd: 10,
            tcp_rto_min_us: 200_000,
            tcp_rto_max_ms: 120_000,
            tcp_delack_ms: 40,
            tcp_slow_start_after_idle: true,
            tcp_rfc1337: true,
            tcp_challenge_ack_limit: 1000,
            ip_local_port_range: [32768, 60999],
            tcp_msl_ms: 30_000,
            mtu: 1500,
            max_connections: 4_000_000,
            tcp_max_ooo_ranges: 32,
            timer_tick_us: 1000,
            verify_checksums: true,
        }
    }
}

impl Config {
    /// MSS we advertise and the most we ever send: MTU minus 20 (IPv4) and 20 (TCP) header bytes.
    pub fn mss(&self) -> u16 {
        (self.mtu.clamp(576, 65535) - 40) as u16
    }
    /// TIME_WAIT length: 2*MSL.
    pub fn time_wait_len(&self) -> std::time::Duration {
        std::time::Duration::from_millis(2 * self.tcp_msl_ms as u64)
    }
    /// FIN retransmissions allowed for an orphan (Linux: 0 means 8).
    pub fn orphan_retries(&self) -> u32 {
        if self.tcp_orphan_retries == 0 {
            8
        } else {
            self.tcp_orphan_retries
        }
    }
}
