//! The engine's configuration: one struct whose fields are named, typed and defaulted like the Linux sysctls they
//! mirror (`net.ipv4.tcp_*`, `net.core.somaxconn`), so an operator's tuning carries over unchanged.
//!
//! Knobs Linux does not have (MTU, MSL, timer tick) are named in the same style and say so in their doc.
//!
//! Every knob is declared once, in the `config!` invocation below, with its type, default, sysctl namespace,
//! allowed range and whether it may change while the engine runs. That one table generates the struct, its
//! `Default`, and the by-name interface: [`Config::set`] / [`Config::get`] with values written as `sysctl` prints
//! them, [`Config::from_toml_str`], [`Config::apply_overrides`] (`--set name=value`), [`Config::names`],
//! [`Config::describe`], [`Config::is_runtime_settable`] and [`Config::validate`].
//!
//! Names are accepted bare (`tcp_rmem`) or with their sysctl namespace, dotted or slashed (`net.ipv4.tcp_rmem`,
//! `net/core/somaxconn`). Knobs Linux lacks have no namespace and are only accepted bare.
//!
//! Runtime-settable knobs are limits, timeouts and per-connection options that the engine reads when it uses them
//! (new connections, the next timer, the next SYN). The others size structures built at start: `tcp_rmem` /
//! `tcp_wmem` (buffer pools and the window scale chosen at SYN time), `mtu` (UMEM frames, MSS), `timer_tick_us`
//! (the timer wheel), `max_connections` and `tcp_max_ooo_ranges` (preallocated tables), `ip_local_port_range`
//! (the ephemeral port allocator).

use std::fmt::Write as _;
use std::path::Path;

/// Largest window RFC 7323 §2.3 allows (2^30 bytes), hence the largest buffer worth having.
const MAX_BUFFER: u64 = 1 << 30;
/// Linux's `INT_MAX` bound for its plain integer sysctls.
const INT_MAX: u64 = i32::MAX as u64;
/// Congestion control algorithms the engine implements.
pub const CONGESTION_CONTROLS: &[&str] = &["reno"];

const IPV4: &str = "net.ipv4";
const CORE: &str = "net.core";
/// Knobs Linux lacks: no namespace.
const XDPTCP: &str = "";
const RUNTIME: bool = true;
const RESTART: bool = false;

/// Why a setting was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown setting `{name}`{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownName { name: String, suggestion: Option<String> },
    #[error("unknown setting `{name}`: {why}")]
    Removed { name: String, why: &'static str },
    #[error("{name}: cannot parse `{value}`: expected {expected}")]
    Parse { name: &'static str, value: String, expected: String },
    #[error("{name} = {value} is out of range (allowed: {allowed})")]
    OutOfRange { name: &'static str, value: String, allowed: String },
    #[error("{name} = {value} conflicts with {other} = {other_value}: {reason}")]
    Conflict { name: &'static str, value: String, other: &'static str, other_value: String, reason: &'static str },
    #[error("{name} cannot be changed while running; restart with the new value")]
    NotRuntimeSettable { name: &'static str },
    #[error("{name} is set twice")]
    Duplicate { name: &'static str },
    #[error("`--set` expects name=value, got `{0}`")]
    Override(String),
    #[error("invalid TOML: {0}")]
    Toml(String),
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
}

/// The values a knob accepts.
#[derive(Clone, Copy, Debug)]
enum Range {
    /// An integer in `min..=max`.
    Int(u64, u64),
    Bool,
    /// One of a fixed set of names.
    OneOf(&'static [&'static str]),
    /// Several integers, each in `min..=max`, in nondecreasing order (min <= default <= max, low <= high).
    Ordered(u64, u64),
}

impl core::fmt::Display for Range {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Range::Int(min, max) => write!(f, "{min}..={max}"),
            Range::Bool => f.write_str("0 or 1 (false or true)"),
            Range::OneOf(names) => write!(f, "one of {}", names.join(", ")),
            Range::Ordered(min, max) => write!(f, "each in {min}..={max}, in nondecreasing order"),
        }
    }
}

/// What was wrong with a value, before the knob's name is attached.
enum Problem {
    Syntax(String),
    OutOfRange,
}

/// A field type that can be read from and written as sysctl text.
trait Setting: Sized {
    /// Parses `text` (already trimmed and unquoted) and checks it against `range`.
    fn from_text(text: &str, range: &Range) -> Result<Self, Problem>;
    fn to_text(&self) -> String;
    fn to_toml(&self) -> toml::Value;
}

/// Decimal or `0x` hexadecimal; wide enough that `-1` or `99999999999` parse and then fail the range check with a
/// range error rather than a syntax error.
fn parse_int(text: &str) -> Option<i128> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => i128::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn int_in_range(text: &str, min: u64, max: u64) -> Result<u64, Problem> {
    let value = parse_int(text).ok_or_else(|| Problem::Syntax("an integer".into()))?;
    if value < min as i128 || value > max as i128 {
        return Err(Problem::OutOfRange);
    }
    Ok(value as u64)
}

macro_rules! int_setting {
    ($($ty:ty),*) => {$(
        impl Setting for $ty {
            fn from_text(text: &str, range: &Range) -> Result<Self, Problem> {
                let (min, max) = match *range {
                    Range::Int(min, max) | Range::Ordered(min, max) => (min, max),
                    _ => (0, <$ty>::MAX as u64),
                };
                <$ty>::try_from(int_in_range(text, min, max)?).map_err(|_| Problem::OutOfRange)
            }
            fn to_text(&self) -> String {
                self.to_string()
            }
            fn to_toml(&self) -> toml::Value {
                toml::Value::Integer(*self as i64)
            }
        }
    )*};
}
int_setting!(u8, u16, u32);

impl Setting for bool {
    fn from_text(text: &str, _: &Range) -> Result<Self, Problem> {
        match text.to_ascii_lowercase().as_str() {
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            _ => Err(Problem::Syntax("0, 1, true or false".into())),
        }
    }
    fn to_text(&self) -> String {
        (*self as u8).to_string()
    }
    fn to_toml(&self) -> toml::Value {
        toml::Value::Boolean(*self)
    }
}

impl Setting for String {
    fn from_text(text: &str, range: &Range) -> Result<Self, Problem> {
        match range {
            Range::OneOf(names) if !names.contains(&text) => Err(Problem::OutOfRange),
            _ => Ok(text.to_string()),
        }
    }
    fn to_text(&self) -> String {
        self.clone()
    }
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(self.clone())
    }
}

/// Triplets and pairs, written as sysctl prints them: integers separated by blanks.
impl<T: Setting + Copy + Default + PartialOrd, const N: usize> Setting for [T; N] {
    fn from_text(text: &str, range: &Range) -> Result<Self, Problem> {
        let syntax = || Problem::Syntax(format!("{N} integers separated by spaces"));
        let mut values = [T::default(); N];
        let mut words = text.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty());
        for value in values.iter_mut() {
            let word = words.next().ok_or_else(syntax)?;
            *value = T::from_text(word, range).map_err(|p| match p {
                Problem::Syntax(_) => syntax(),
                p => p,
            })?;
        }
        if words.next().is_some() {
            return Err(syntax());
        }
        if values.windows(2).any(|w| w[0] > w[1]) {
            return Err(Problem::OutOfRange);
        }
        Ok(values)
    }
    fn to_text(&self) -> String {
        self.iter().map(T::to_text).collect::<Vec<_>>().join(" ")
    }
    fn to_toml(&self) -> toml::Value {
        toml::Value::Array(self.iter().map(T::to_toml).collect())
    }
}

/// One row of the knob table.
struct Knob {
    name: &'static str,
    /// Sysctl namespace (`net.ipv4`), empty for knobs Linux lacks.
    namespace: &'static str,
    doc: &'static str,
    range: Range,
    runtime: bool,
    get: fn(&Config) -> String,
    get_toml: fn(&Config) -> toml::Value,
    set: fn(&mut Config, &str, &Range) -> Result<(), Problem>,
}

impl Knob {
    fn full_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.to_string()
        } else {
            format!("{}.{}", self.namespace, self.name)
        }
    }
}

/// Declares every knob once: doc, field, type, default, then (namespace, range, runtime-settable).
macro_rules! config {
    ($( $(#[doc = $doc:literal])+ $name:ident : $ty:ty = $default:expr => ($ns:expr, $range:expr, $runtime:expr), )+) => {
        /// Engine configuration. Field names are the sysctl names without the `net.ipv4.` / `net.core.` prefix.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $name: $default, )+ }
            }
        }

        static KNOBS: &[Knob] = &[ $(
            Knob {
                name: stringify!($name),
                namespace: $ns,
                doc: concat!($($doc),+),
                range: $range,
                runtime: $runtime,
                get: |c| Setting::to_text(&c.$name),
                get_toml: |c| Setting::to_toml(&c.$name),
                set: |c, text, range| {
                    c.$name = <$ty as Setting>::from_text(text, range)?;
                    Ok(())
                },
            },
        )+ ];

        static NAMES: &[&str] = &[ $( stringify!($name), )+ ];
    };
}

config! {
    /// Receive buffer bytes: min, default, max (default is what a new connection gets).
    tcp_rmem: [u32; 3] = [4096, 131072, 6291456] => (IPV4, Range::Ordered(4096, MAX_BUFFER), RESTART),
    /// Send buffer bytes: min, default, max.
    tcp_wmem: [u32; 3] = [4096, 16384, 4194304] => (IPV4, Range::Ordered(4096, MAX_BUFFER), RESTART),
    /// Receive- and send-buffer autotuning: a connection whose reader keeps up grows its buffers from the middle
    /// value of `tcp_rmem`/`tcp_wmem` towards the maximum (Linux's dynamic right-sizing).
    tcp_moderate_rcvbuf: bool = true => (IPV4, Range::Bool, RUNTIME),
    /// 0 off, 1 on (RFC 7323 timestamps with random per-connection offsets).
    tcp_timestamps: u8 = 1 => (IPV4, Range::Int(0, 1), RUNTIME),
    /// RFC 7323 window scaling.
    tcp_window_scaling: bool = true => (IPV4, Range::Bool, RUNTIME),
    /// RFC 2018 SACK.
    tcp_sack: bool = true => (IPV4, Range::Bool, RUNTIME),
    /// Seconds an orphaned connection may stay in FIN_WAIT_2.
    tcp_fin_timeout: u32 = 60 => (IPV4, Range::Int(1, 86_400), RUNTIME),
    // Keepalive bounds are Linux's MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL and MAX_TCP_KEEPCNT; SYN retries its
    // MAX_TCP_SYNCNT; plain integer limits its INT_MAX.
    /// Seconds of idleness before the first keepalive probe (only on connections with keepalive enabled).
    tcp_keepalive_time: u32 = 7200 => (IPV4, Range::Int(1, 32_767), RUNTIME),
    /// Seconds between keepalive probes.
    tcp_keepalive_intvl: u32 = 75 => (IPV4, Range::Int(1, 32_767), RUNTIME),
    /// Unanswered probes before the connection is dropped.
    tcp_keepalive_probes: u32 = 9 => (IPV4, Range::Int(1, 127), RUNTIME),
    /// SYN retransmissions for an active open before giving up (1-2-4-8... s backoff).
    tcp_syn_retries: u32 = 6 => (IPV4, Range::Int(1, 127), RUNTIME),
    /// SYN-ACK retransmissions for a passive open before the half-open entry is freed.
    tcp_synack_retries: u32 = 5 => (IPV4, Range::Int(0, 127), RUNTIME),
    /// Retransmissions of data before an established connection is dropped (RFC 1122 R2).
    tcp_retries2: u32 = 15 => (IPV4, Range::Int(1, 255), RUNTIME),
    /// Retransmissions of a FIN for an orphaned connection; 0 means 8, as in Linux.
    tcp_orphan_retries: u32 = 0 => (IPV4, Range::Int(0, 255), RUNTIME),
    /// Maximum orphaned (closed by the application, still closing on the wire) connections.
    tcp_max_orphans: u32 = 65536 => (IPV4, Range::Int(0, INT_MAX), RUNTIME),
    /// Maximum TIME_WAIT records; beyond it a closing connection skips TIME_WAIT (counted TCPTimeWaitOverflow).
    tcp_max_tw_buckets: u32 = 262144 => (IPV4, Range::Int(0, INT_MAX), RUNTIME),
    /// 0 never, 1 always, 2 loopback only (as Linux) reuse of a TIME_WAIT four-tuple by an active open.
    tcp_tw_reuse: u8 = 2 => (IPV4, Range::Int(0, 2), RUNTIME),
    /// Maximum half-open (SYN_RECV) entries per listener.
    tcp_max_syn_backlog: u32 = 4096 => (IPV4, Range::Int(1, INT_MAX), RUNTIME),
    /// Upper bound of any listener's accept queue.
    somaxconn: u32 = 4096 => (CORE, Range::Int(0, INT_MAX), RUNTIME),
    /// 0 never, 1 when the SYN queue is full, 2 always.
    tcp_syncookies: u8 = 1 => (IPV4, Range::Int(0, 2), RUNTIME),
    /// 1: answer a third ACK that finds the accept queue full with RST instead of dropping it.
    tcp_abort_on_overflow: bool = false => (IPV4, Range::Bool, RUNTIME),
    /// TCP Fast Open bits: 1 client, 2 server, 0x200 server without cookie... (as Linux).
    tcp_fastopen: u32 = 1 => (IPV4, Range::Int(0, 0x7ff), RUNTIME),
    /// Congestion control algorithm: "reno" (NewReno). "cubic" will follow.
    tcp_congestion_control: String = "reno".to_string() => (IPV4, Range::OneOf(CONGESTION_CONTROLS), RUNTIME),
    /// Initial congestion window in segments (Linux's route `initcwnd`, RFC 6928).
    tcp_init_cwnd: u32 = 10 => (XDPTCP, Range::Int(1, 256), RUNTIME),
    /// Minimum RTO in microseconds (RFC 6298 §2.4 says 1 s; Linux and we use 200 ms).
    tcp_rto_min_us: u32 = 200_000 => (IPV4, Range::Int(1, 120_000_000), RUNTIME),
    // Linux's net.ipv4.tcp_rto_max_ms accepts 1 s..=120 s (RFC 6298 §2.5 asks for at least 60 s; Linux allows less).
    /// Maximum RTO in milliseconds.
    tcp_rto_max_ms: u32 = 120_000 => (IPV4, Range::Int(1000, 120_000), RUNTIME),
    // RFC 9293 §3.8.6.3: the ACK delay MUST be less than 0.5 s.
    /// Delayed-ACK timeout in milliseconds (Linux's ATO minimum, 40 ms).
    tcp_delack_ms: u32 = 40 => (XDPTCP, Range::Int(1, 499), RUNTIME),
    /// RFC 5681 §4.1: collapse cwnd after an idle period longer than the RTO.
    tcp_slow_start_after_idle: bool = true => (IPV4, Range::Bool, RUNTIME),
    /// RFC 1337: a RST does not end TIME_WAIT. Linux defaults to 0; we default to 1 as the RFC asks.
    tcp_rfc1337: bool = true => (IPV4, Range::Bool, RUNTIME),
    /// Challenge ACKs (RFC 5961) allowed per second across the engine.
    tcp_challenge_ack_limit: u32 = 1000 => (IPV4, Range::Int(0, INT_MAX), RUNTIME),
    /// Ephemeral port range for active opens: low, high (inclusive).
    ip_local_port_range: [u16; 2] = [32768, 60999] => (IPV4, Range::Ordered(1, 65535), RESTART),
    /// Maximum segment lifetime in milliseconds; TIME_WAIT lasts 2*MSL (Linux hard-codes 60 s; this is FreeBSD's
    /// `net.inet.tcp.msl`).
    tcp_msl_ms: u32 = 30_000 => (XDPTCP, Range::Int(1, 600_000), RUNTIME),
    /// IP MTU of the link (bytes of IPv4 packet); our MSS is derived from it (MTU - 40).
    mtu: u32 = 1500 => (XDPTCP, Range::Int(576, 9216), RESTART),
    /// Hard cap on connections (all states except TIME_WAIT records) per engine; protects memory under floods.
    max_connections: u32 = 4_000_000 => (XDPTCP, Range::Int(1, INT_MAX), RESTART),
    /// Out-of-order ranges kept per connection before further out-of-order segments are dropped (bounds memory and
    /// CPU against adversarial reordering).
    tcp_max_ooo_ranges: u32 = 32 => (XDPTCP, Range::Int(0, 4096), RESTART),
    /// Granularity of the timer wheel in microseconds.
    timer_tick_us: u32 = 1000 => (XDPTCP, Range::Int(1, 100_000), RESTART),
    /// Verify IPv4 and TCP checksums on receive (a veth peer may hand us CHECKSUM_PARTIAL frames if offloads are on).
    verify_checksums: bool = true => (XDPTCP, Range::Bool, RUNTIME),
}

/// Constraints between knobs: (knob, other, holds, reason).
type Relation = (&'static str, &'static str, fn(&Config) -> bool, &'static str);
const RELATIONS: &[Relation] = &[
    (
        "tcp_rto_min_us",
        "tcp_rto_max_ms",
        |c| c.tcp_rto_min_us as u64 <= c.tcp_rto_max_ms as u64 * 1000,
        "the minimum RTO must not exceed the maximum RTO",
    ),
    (
        "timer_tick_us",
        "tcp_rto_min_us",
        |c| c.timer_tick_us <= c.tcp_rto_min_us,
        "the timer tick must not be coarser than the minimum RTO",
    ),
    (
        "timer_tick_us",
        "tcp_delack_ms",
        |c| c.timer_tick_us as u64 <= c.tcp_delack_ms as u64 * 1000,
        "the timer tick must not be coarser than the delayed-ACK timeout",
    ),
];

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

    /// Every knob's bare name, in declaration order (stable).
    pub fn names() -> &'static [&'static str] {
        NAMES
    }

    /// A knob's one-line documentation; empty for an unknown name.
    pub fn describe(name: &str) -> &'static str {
        knob(name).map_or("", |k| k.doc.trim())
    }

    /// The values a knob accepts, e.g. `0..=2`; `None` for an unknown name.
    pub fn allowed(name: &str) -> Option<String> {
        knob(name).ok().map(|k| k.range.to_string())
    }

    /// The full sysctl name (`net.ipv4.tcp_rmem`; bare for knobs Linux lacks); `None` for an unknown name.
    pub fn sysctl_name(name: &str) -> Option<String> {
        knob(name).ok().map(Knob::full_name)
    }

    /// Whether a knob may change while the engine runs (see the module documentation); false for unknown names.
    pub fn is_runtime_settable(name: &str) -> bool {
        knob(name).is_ok_and(|k| k.runtime)
    }

    /// A knob's value as `sysctl` prints it (`4096 131072 6291456`, `1`, `reno`); `None` for an unknown name.
    pub fn get(&self, name: &str) -> Option<String> {
        knob(name).ok().map(|k| (k.get)(self))
    }

    /// Sets a knob from sysctl text. Integers may be decimal or `0x` hex, booleans 0/1/true/false, lists
    /// blank- or comma-separated; one pair of surrounding quotes is ignored. The value must be in the knob's range
    /// and consistent with the other knobs; on error nothing changes.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let mut trial = self.clone();
        trial.set_field(knob(name)?, value)?;
        trial.check_relations()?;
        *self = trial;
        Ok(())
    }

    /// [`set`](Self::set) for a running engine: refuses knobs that are not runtime-settable.
    pub fn set_runtime(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let knob = knob(name)?;
        if !knob.runtime {
            return Err(ConfigError::NotRuntimeSettable { name: knob.name });
        }
        self.set(name, value)
    }

    /// Applies repeated `--set name=value` arguments. Relations between knobs are checked once all are applied, so
    /// their order does not matter; later settings of the same knob win. On error nothing changes.
    pub fn apply_overrides(&mut self, overrides: &[String]) -> Result<(), ConfigError> {
        let mut trial = self.clone();
        for text in overrides {
            let (name, value) = text.split_once('=').ok_or_else(|| ConfigError::Override(text.clone()))?;
            trial.set_field(knob(name)?, value)?;
        }
        trial.check_relations()?;
        *self = trial;
        Ok(())
    }

    /// A configuration from TOML whose keys are sysctl names (bare, dotted `net.ipv4.tcp_rmem`, or as nested
    /// tables) and whose values are integers, booleans, strings, or arrays of integers for the lists; sysctl-style
    /// strings (`"4096 131072 6291456"`) are accepted too. Unset knobs keep their defaults; unknown keys are errors.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string().trim().into()))?;
        let mut config = Config::default();
        let mut seen = Vec::new();
        config.apply_toml_table("", &table, &mut seen)?;
        config.check_relations()?;
        Ok(config)
    }

    /// [`from_toml_str`](Self::from_toml_str) on a file's contents.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Io { path: path.display().to_string(), reason: e.to_string() })?;
        Config::from_toml_str(&text)
    }

    /// The whole configuration as TOML that [`from_toml_str`](Self::from_toml_str) reads back, each knob preceded by
    /// its documentation.
    pub fn to_toml_string(&self) -> String {
        let mut out = String::new();
        for k in KNOBS {
            let _ = writeln!(out, "# {} Allowed: {}.\n{} = {}\n", k.doc.trim(), k.range, k.name, (k.get_toml)(self));
        }
        out
    }

    /// Every knob as `sysctl -a` prints it: `net.ipv4.tcp_rmem = 4096 131072 6291456`.
    pub fn to_sysctl_text(&self) -> String {
        KNOBS.iter().map(|k| format!("{} = {}\n", k.full_name(), (k.get)(self))).collect()
    }

    /// Checks every knob against its range and the relations between knobs (for configurations built by hand).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut scratch = self.clone();
        for k in KNOBS {
            scratch.set_field(k, &(k.get)(self))?;
        }
        self.check_relations()
    }

    fn set_field(&mut self, knob: &'static Knob, value: &str) -> Result<(), ConfigError> {
        let text = unquote(value.trim());
        (knob.set)(self, text, &knob.range).map_err(|problem| match problem {
            Problem::Syntax(expected) => ConfigError::Parse { name: knob.name, value: text.into(), expected },
            Problem::OutOfRange => {
                ConfigError::OutOfRange { name: knob.name, value: text.into(), allowed: knob.range.to_string() }
            }
        })
    }

    fn check_relations(&self) -> Result<(), ConfigError> {
        for &(name, other, holds, reason) in RELATIONS {
            if !holds(self) {
                let value_of = |n| self.get(n).unwrap_or_default();
                return Err(ConfigError::Conflict {
                    name,
                    value: value_of(name),
                    other,
                    other_value: value_of(other),
                    reason,
                });
            }
        }
        Ok(())
    }

    fn apply_toml_table(
        &mut self,
        prefix: &str,
        table: &toml::Table,
        seen: &mut Vec<&'static str>,
    ) -> Result<(), ConfigError> {
        for (key, value) in table {
            let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            if let toml::Value::Table(inner) = value {
                // Only namespaces nest: `[net.ipv4]` or dotted keys.
                if knob(&name).is_err() {
                    self.apply_toml_table(&name, inner, seen)?;
                    continue;
                }
            }
            let knob = knob(&name)?;
            if seen.contains(&knob.name) {
                return Err(ConfigError::Duplicate { name: knob.name });
            }
            seen.push(knob.name);
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) if items.iter().all(|v| v.is_integer()) => {
                    items.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" ")
                }
                other => {
                    return Err(ConfigError::Parse {
                        name: knob.name,
                        value: other.to_string(),
                        expected: format!("a value {}", knob.range),
                    })
                }
            };
            self.set_field(knob, &text)?;
        }
        Ok(())
    }
}

fn unquote(text: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
            return inner.trim();
        }
    }
    text
}

/// Settings Linux removed, and what to use instead (operators meet them in older tuning notes).
const REMOVED: &[(&str, &str)] = &[(
    "tcp_tw_recycle",
    "removed in Linux 4.12 because it broke clients behind NAT (PAWS timestamps compared per host, not per \
     connection); `tcp_tw_reuse` is the safe way to reuse TIME_WAIT tuples for active opens",
)];

/// Finds a knob by bare, dotted or slashed sysctl name; an unknown name gets the closest known one as suggestion.
fn knob(name: &str) -> Result<&'static Knob, ConfigError> {
    let normalized = name.trim().replace('/', ".");
    let (namespace, bare) = normalized.rsplit_once('.').unwrap_or(("", &normalized));
    let unknown = |suggestion| ConfigError::UnknownName { name: name.trim().to_string(), suggestion };
    if let Some((_, why)) = REMOVED.iter().find(|(removed, _)| *removed == bare) {
        return Err(ConfigError::Removed { name: name.trim().to_string(), why });
    }
    if let Some(k) = KNOBS.iter().find(|k| k.name == bare) {
        return if namespace.is_empty() || namespace == k.namespace {
            Ok(k)
        } else {
            // Right knob, wrong namespace (`net.core.tcp_rmem`, or a namespace on a knob Linux lacks).
            Err(unknown(Some(k.full_name())))
        };
    }
    let closest = KNOBS
        .iter()
        .map(|k| (edit_distance(bare, k.name), k))
        .filter(|(d, k)| {
            *d <= 2.max(k.name.len() / 3) || (bare.len() >= 4 && (k.name.contains(bare) || bare.contains(k.name)))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| if namespace.is_empty() { k.name.to_string() } else { k.full_name() });
    Err(unknown(closest))
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substituted = diagonal + (ca != cb) as usize;
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_table_is_consistent() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(Config::names().len(), KNOBS.len());
        let mut seen = std::collections::HashSet::new();
        for (&name, k) in Config::names().iter().zip(KNOBS) {
            assert_eq!(name, k.name);
            assert!(seen.insert(name), "duplicate {name}");
            assert!(!Config::describe(name).is_empty(), "{name} undocumented");
            // Each range's bounds are representable in the field's type: setting them round-trips.
            if let Range::Int(min, max) | Range::Ordered(min, max) = k.range {
                for bound in [min, max] {
                    let mut c = Config::default();
                    let text = vec![bound.to_string(); config.get(name).unwrap().split(' ').count()].join(" ");
                    c.set_field(k, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(c.get(name).unwrap(), text);
                }
            }
        }
        // The original defaults, unchanged.
        assert_eq!(config.tcp_rmem, [4096, 131072, 6291456]);
        assert_eq!(config.ip_local_port_range, [32768, 60999]);
        assert_eq!(config.tcp_congestion_control, "reno");
        assert_eq!(config.max_connections, 4_000_000);
        assert_eq!(config.mss(), 1460);
    }

    #[test]
    fn get_set_round_trips_in_every_form() {
        let mut c = Config::default();
        c.set("net.ipv4.tcp_rmem", "8192\t65536  1048576").unwrap();
        assert_eq!(c.tcp_rmem, [8192, 65536, 1048576]);
        assert_eq!(c.get("tcp_rmem").unwrap(), "8192 65536 1048576");
        c.set("tcp_wmem", "\"4096 8192 16384\"").unwrap();
        assert_eq!(c.tcp_wmem, [4096, 8192, 16384]);
        c.set("net/core/somaxconn", "128").unwrap();
        assert_eq!(c.get("net.core.somaxconn").unwrap(), "128");
        c.set("tcp_sack", "false").unwrap();
        assert_eq!(c.get("tcp_sack").unwrap(), "0");
        c.set("tcp_sack", "TRUE").unwrap();
        assert!(c.tcp_sack);
        c.set("tcp_fastopen", "0x203").unwrap();
        assert_eq!(c.get("tcp_fastopen").unwrap(), "515");
        c.set("ip_local_port_range", "1024,65535").unwrap();
        assert_eq!(c.ip_local_port_range, [1024, 65535]);
        c.set("mtu", " 9000 ").unwrap();
        assert_eq!(c.mss(), 8960);
        // get(set(x)) == x for every knob, with its current value.
        let defaults = Config::default();
        for name in Config::names() {
            let value = defaults.get(name).unwrap();
            c.set(name, &value).unwrap();
            assert_eq!(c.get(name).unwrap(), value);
            assert_eq!(Config::sysctl_name(name).unwrap().rsplit('.').next(), Some(*name));
        }
        assert_eq!(c, defaults);
        assert_eq!(c.get("no_such_knob"), None);
    }

    #[test]
    fn out_of_range_names_field_value_and_range() {
        let mut c = Config::default();
        let err = c.set("tcp_syncookies", "3").unwrap_err();
        assert_eq!(err, ConfigError::OutOfRange { name: "tcp_syncookies", value: "3".into(), allowed: "0..=2".into() });
        assert_eq!(err.to_string(), "tcp_syncookies = 3 is out of range (allowed: 0..=2)");
        assert!(matches!(c.set("tcp_keepalive_probes", "-1"), Err(ConfigError::OutOfRange { .. })));
        assert!(matches!(c.set("max_connections", "99999999999999999999"), Err(ConfigError::OutOfRange { .. })));
        // Triplets: each element, and their order.
        let err = c.set("tcp_rmem", "8192 4096 6291456").unwrap_err().to_string();
        assert!(
            err.contains("tcp_rmem") && err.contains("8192 4096 6291456") && err.contains("nondecreasing"),
            "{err}"
        );
        assert!(matches!(c.set("tcp_rmem", "1024 4096 8192"), Err(ConfigError::OutOfRange { .. })));
        assert!(matches!(c.set("ip_local_port_range", "0 100"), Err(ConfigError::OutOfRange { .. })));
        let err = c.set("tcp_congestion_control", "cubic").unwrap_err().to_string();
        assert_eq!(err, "tcp_congestion_control = cubic is out of range (allowed: one of reno)");
        assert_eq!(c, Config::default(), "failed sets change nothing");
    }

    #[test]
    fn parse_errors_say_what_was_expected() {
        let mut c = Config::default();
        let err = c.set("tcp_syncookies", "yes please").unwrap_err();
        assert_eq!(err.to_string(), "tcp_syncookies: cannot parse `yes please`: expected an integer");
        let err = c.set("tcp_sack", "2").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { name: "tcp_sack", .. }), "{err}");
        let err = c.set("tcp_rmem", "4096 131072").unwrap_err();
        assert!(err.to_string().contains("expected 3 integers"), "{err}");
        assert!(matches!(c.set("tcp_rmem", "4096 8192 16384 32768"), Err(ConfigError::Parse { .. })));
        assert!(matches!(c.set("tcp_rmem", "4096 x 16384"), Err(ConfigError::Parse { .. })));
        assert!(matches!(c.set("mtu", ""), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        let mut c = Config::default();
        let err = c.set("tcp_rmen", "1").unwrap_err();
        assert_eq!(err, ConfigError::UnknownName { name: "tcp_rmen".into(), suggestion: Some("tcp_rmem".into()) });
        assert_eq!(err.to_string(), "unknown setting `tcp_rmen`; did you mean `tcp_rmem`?");
        let err = c.set("net.ipv4.tcp_syncookie", "1").unwrap_err();
        assert!(err.to_string().contains("did you mean `net.ipv4.tcp_syncookies`?"), "{err}");
        // Right knob, wrong namespace.
        let err = c.set("net.core.tcp_rmem", "1").unwrap_err();
        assert!(err.to_string().contains("`net.ipv4.tcp_rmem`"), "{err}");
        let err = c.set("net.ipv4.mtu", "1500").unwrap_err();
        assert!(err.to_string().ends_with("did you mean `mtu`?"), "{err}");
        let err = c.set("keepalive_time", "1").unwrap_err();
        assert!(err.to_string().contains("tcp_keepalive_time"), "{err}");
        let err = c.set("completely_unrelated", "1").unwrap_err();
        assert_eq!(err.to_string(), "unknown setting `completely_unrelated`");
        // Removed from Linux: say so, rather than suggest the neighbour with the opposite safety record.
        let err = c.set("net.ipv4.tcp_tw_recycle", "1").unwrap_err();
        assert!(matches!(err, ConfigError::Removed { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("removed in Linux 4.12") && text.contains("NAT") && text.contains("tcp_tw_reuse"),
            "{text}"
        );
        assert_eq!(Config::describe("nope"), "");
        assert!(!Config::is_runtime_settable("nope"));
    }

    #[test]
    fn relations_between_knobs() {
        let mut c = Config::default();
        c.set("tcp_rto_max_ms", "1000").unwrap();
        let err = c.set("tcp_rto_min_us", "2000000").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tcp_rto_min_us = 2000000 conflicts with tcp_rto_max_ms = 1000: the minimum RTO must not exceed the \
             maximum RTO"
        );
        assert_eq!(c.tcp_rto_min_us, 200_000, "a conflicting set changes nothing");
        let err = c.set("timer_tick_us", "100000").unwrap_err();
        assert!(matches!(err, ConfigError::Conflict { name: "timer_tick_us", other: "tcp_delack_ms", .. }), "{err}");
        // Overrides are checked as a whole: order does not matter.
        c.apply_overrides(&["tcp_rto_min_us=2000000".into(), "tcp_rto_max_ms=3000".into()]).unwrap();
        assert_eq!((c.tcp_rto_min_us, c.tcp_rto_max_ms), (2_000_000, 3000));
        let mut hand_built = Config { tcp_rto_max_ms: 1000, ..Config::default() };
        hand_built.tcp_rto_min_us = 1_500_000;
        assert!(matches!(hand_built.validate(), Err(ConfigError::Conflict { .. })));
        hand_built.tcp_rto_min_us = 200_000;
        hand_built.tcp_syncookies = 7;
        assert!(matches!(hand_built.validate(), Err(ConfigError::OutOfRange { name: "tcp_syncookies", .. })));
    }

    #[test]
    fn overrides() {
        let mut c = Config::default();
        c.apply_overrides(&[
            "net.ipv4.tcp_syncookies=2".into(),
            "tcp_rmem = 4096 87380 6291456".into(),
            "tcp_syncookies=0".into(),
        ])
        .unwrap();
        assert_eq!(c.tcp_syncookies, 0);
        assert_eq!(c.tcp_rmem, [4096, 87380, 6291456]);
        let before = c.clone();
        let err = c.apply_overrides(&["tcp_sack=0".into(), "tcp_sack".into()]).unwrap_err();
        assert_eq!(err.to_string(), "`--set` expects name=value, got `tcp_sack`");
        assert!(matches!(c.apply_overrides(&["mtu=10".into()]), Err(ConfigError::OutOfRange { .. })));
        assert_eq!(c, before, "a failed batch changes nothing");
    }

    #[test]
    fn runtime_settable() {
        for name in ["tcp_fin_timeout", "tcp_syncookies", "tcp_max_syn_backlog", "somaxconn", "tcp_keepalive_time"] {
            assert!(Config::is_runtime_settable(name), "{name}");
        }
        for name in ["mtu", "timer_tick_us", "tcp_rmem", "net.ipv4.tcp_wmem", "max_connections"] {
            assert!(!Config::is_runtime_settable(name), "{name}");
        }
        let mut c = Config::default();
        assert_eq!(c.set_runtime("mtu", "9000"), Err(ConfigError::NotRuntimeSettable { name: "mtu" }));
        c.set_runtime("tcp_syncookies", "2").unwrap();
        assert_eq!(c.tcp_syncookies, 2);
    }

    #[test]
    fn toml_loading() {
        let c = Config::from_toml_str(
            r#"
            tcp_rmem = [8192, 131072, 8388608]
            tcp_wmem = "4096 65536 4194304"
            tcp_sack = false
            tcp_timestamps = 0
            tcp_congestion_control = "reno"
            net.core.somaxconn = 1024
            "net.ipv4.tcp_syncookies" = 2
            mtu = 9000

            [net.ipv4]
            tcp_fin_timeout = 30
            ip_local_port_range = [10000, 20000]
            "#,
        )
        .unwrap();
        assert_eq!(c.tcp_rmem, [8192, 131072, 8388608]);
        assert_eq!(c.tcp_wmem, [4096, 65536, 4194304]);
        assert!(!c.tcp_sack);
        assert_eq!(c.tcp_timestamps, 0);
        assert_eq!(c.somaxconn, 1024);
        assert_eq!(c.tcp_syncookies, 2);
        assert_eq!(c.mtu, 9000);
        assert_eq!(c.tcp_fin_timeout, 30);
        assert_eq!(c.ip_local_port_range, [10000, 20000]);
        assert_eq!(c.tcp_keepalive_time, 7200, "unset knobs keep defaults");
    }

    #[test]
    fn toml_errors() {
        let unknown = Config::from_toml_str("tcp_rmem_max = 1").unwrap_err();
        assert!(
            matches!(&unknown, ConfigError::UnknownName { suggestion: Some(s), .. } if s == "tcp_rmem"),
            "{unknown}"
        );
        assert!(matches!(Config::from_toml_str("[net.ipv6]\nfoo = 1"), Err(ConfigError::UnknownName { .. })));
        assert!(matches!(Config::from_toml_str("tcp_syncookies = 9"), Err(ConfigError::OutOfRange { .. })));
        assert!(matches!(Config::from_toml_str("tcp_sack = 1.5"), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml_str("tcp_rmem = [4096, \"x\", 1]"), Err(ConfigError::Parse { .. })));
        assert!(matches!(Config::from_toml_str("mtu = "), Err(ConfigError::Toml(_))));
        assert_eq!(
            Config::from_toml_str("tcp_sack = 1\nnet.ipv4.tcp_sack = 0"),
            Err(ConfigError::Duplicate { name: "tcp_sack" })
        );
        assert!(matches!(
            Config::from_toml_str("tcp_rto_max_ms = 1000\ntcp_rto_min_us = 2000000"),
            Err(ConfigError::Conflict { .. })
        ));
        let missing = Config::from_toml_file("/nonexistent/xdptcp.toml").unwrap_err();
        assert!(matches!(missing, ConfigError::Io { .. }), "{missing}");
    }

    #[test]
    fn toml_round_trip_through_a_file() {
        let mut c = Config::default();
        c.apply_overrides(&["tcp_rmem=8192 65536 1048576".into(), "tcp_sack=0".into(), "mtu=4000".into()]).unwrap();
        let text = c.to_toml_string();
        assert!(text.contains("tcp_rmem = [8192, 65536, 1048576]"), "{text}");
        assert!(text.contains("# Receive buffer bytes"), "{text}");
        assert_eq!(Config::from_toml_str(&text).unwrap(), c);
        let path = std::env::temp_dir().join(format!("xdptcp-config-test-{}.toml", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let loaded = Config::from_toml_file(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(loaded.unwrap(), c);
        let sysctl = c.to_sysctl_text();
        assert!(sysctl.contains("net.ipv4.tcp_rmem = 8192 65536 1048576\n"), "{sysctl}");
        assert!(sysctl.contains("net.core.somaxconn = 4096\n") && sysctl.contains("\nmtu = 4000\n"), "{sysctl}");
    }

    #[test]
    fn describe_and_allowed() {
        assert_eq!(Config::describe("net.ipv4.tcp_sack"), "RFC 2018 SACK.");
        assert!(Config::describe("tcp_msl_ms").ends_with("FreeBSD's `net.inet.tcp.msl`)."));
        assert_eq!(Config::allowed("tcp_tw_reuse").as_deref(), Some("0..=2"));
        assert_eq!(Config::sysctl_name("somaxconn").as_deref(), Some("net.core.somaxconn"));
        assert_eq!(Config::sysctl_name("mtu").as_deref(), Some("mtu"));
    }
}
