//! The proxy's configuration: frontends (listen ports), each with its backend pool, weights and options, from a
//! TOML file or, for the one-pool case, from command-line flags. Every error names the line and what is allowed.
//!
//! ```toml
//! [defaults]                     # optional; every key may also be set per frontend
//! balance = "roundrobin"         # roundrobin | leastconn | maglev
//! retries = 3                    # connect attempts after the first (HAProxy's `retries`)
//! redispatch = true              # retry on another backend (HAProxy's `option redispatch`)
//! maxconn = 0                    # pairs per frontend per worker (0: no limit)
//! proxy_protocol = false         # send a PROXY v2 header to backends
//! timeout = { connect = "5s", client = "50s", server = "50s" }
//! check = { enabled = true, inter = "2s", rise = 2, fall = 3, error_limit = 10 }
//!
//! [[frontend]]
//! name = "web"
//! listen = [80, 8080]
//! balance = "maglev"
//! [[frontend.backend]]
//! addr = "198.18.0.10:80"
//! weight = 2                     # 0..=256, default 1
//! maxconn = 100                  # 0: no limit
//! ```

use std::net::SocketAddrV4;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::balance::{Balance, MAX_WEIGHT};
use super::health::CheckConfig;

/// HAProxy's `timeout connect/client/server`: how long a backend connect may take, and how long the client or the
/// backend side may stay silent (no byte received) while the pair is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub client: Duration,
    pub server: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(5), client: Duration::from_secs(50), server: Duration::from_secs(50) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSpec {
    pub addr: SocketAddrV4,
    pub weight: u32,
    pub maxconn: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontendConfig {
    pub name: String,
    pub listen: Vec<u16>,
    pub balance: Balance,
    pub backends: Vec<BackendSpec>,
    pub check: CheckConfig,
    pub timeouts: Timeouts,
    pub retries: u32,
    pub redispatch: bool,
    /// Pairs this frontend holds at most (per worker); beyond, connections wait in the listen backlog. 0: none.
    pub maxconn: u32,
    pub proxy_protocol: bool,
}

impl FrontendConfig {
    /// One frontend with HAProxy-like defaults, as the flags describe it.
    pub fn new(name: &str, listen: Vec<u16>, backends: &[SocketAddrV4], balance: Balance) -> FrontendConfig {
        FrontendConfig {
            name: name.to_string(),
            listen,
            balance,
            backends: backends.iter().map(|&addr| BackendSpec { addr, weight: 1, maxconn: 0 }).collect(),
            check: CheckConfig::default(),
            timeouts: Timeouts::default(),
            retries: 3,
            redispatch: true,
            maxconn: 0,
            proxy_protocol: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    pub frontends: Vec<FrontendConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A syntax error or an unknown key (the TOML parser's message names the line and the allowed keys).
    #[error("{0}")]
    Toml(String),
    #[error("line {line}: {message}")]
    At { line: usize, message: String },
    #[error("{0}")]
    Other(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect: Option<Spanned<String>>,
    client: Option<Spanned<String>>,
    server: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    enabled: Option<bool>,
    inter: Option<Spanned<String>>,
    rise: Option<Spanned<u32>>,
    fall: Option<Spanned<u32>>,
    error_limit: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    balance: Option<Spanned<String>>,
    retries: Option<Spanned<u32>>,
    redispatch: Option<bool>,
    maxconn: Option<u32>,
    proxy_protocol: Option<bool>,
    timeout: Option<RawTimeouts>,
    check: Option<RawCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    addr: Spanned<String>,
    weight: Option<Spanned<u32>>,
    maxconn: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrontend {
    name: Option<String>,
    listen: Spanned<Vec<Spanned<u32>>>,
    #[serde(default)]
    backend: Vec<RawBackend>,
    balance: Option<Spanned<String>>,
    retries: Option<Spanned<u32>>,
    redispatch: Option<bool>,
    maxconn: Option<u32>,
    proxy_protocol: Option<bool>,
    timeout: Option<RawTimeouts>,
    check: Option<RawCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawOptions,
    #[serde(default)]
    frontend: Vec<Spanned<RawFrontend>>,
}

/// Most retries accepted: each waits up to `timeout connect`.
const MAX_RETRIES: u32 = 100;

/// Parses "5s", "200ms", "1m", "1500us", or a bare number of milliseconds (HAProxy's default unit).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit {
        "" | "ms" => Duration::from_millis(n),
        "us" => Duration::from_micros(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    Some(d)
}

struct Ctx<'a> {
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())].matches('\n').count() + 1
    }

    fn err<T>(&self, span: std::ops::Range<usize>, message: String) -> Result<T, ConfigError> {
        Err(ConfigError::At { line: self.line(span), message })
    }

    fn duration(&self, v: &Spanned<String>, what: &str) -> Result<Duration, ConfigError> {
        match parse_duration(v.get_ref()) {
            Some(d) if !d.is_zero() => Ok(d),
            _ => self.err(
                v.span(),
                format!("{what} = {:?}: allowed: a positive duration like \"5s\", \"200ms\", \"1m\"", v.get_ref()),
            ),
        }
    }

    fn balance(&self, v: &Spanned<String>) -> Result<Balance, ConfigError> {
        Balance::parse(v.get_ref())
            .map_or_else(|| self.err(v.span(), format!("balance = {:?}: allowed: {}", v.get_ref(), Balance::NAMES)), Ok)
    }

    /// Applies one level of options (defaults, then a frontend's own) onto `f`.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        f: &mut FrontendConfig,
        balance: &Option<Spanned<String>>,
        retries: &Option<Spanned<u32>>,
        redispatch: Option<bool>,
        maxconn: Option<u32>,
        proxy_protocol: Option<bool>,
        timeout: &Option<RawTimeouts>,
        check: &Option<RawCheck>,
    ) -> Result<(), ConfigError> {
        if let Some(b) = balance {
            f.balance = self.balance(b)?;
        }
        if let Some(r) = retries {
            if *r.get_ref() > MAX_RETRIES {
                return self.err(r.span(), format!("retries = {}: allowed: 0..={MAX_RETRIES}", r.get_ref()));
            }
            f.retries = *r.get_ref();
        }
        if let Some(r) = redispatch {
            f.redispatch = r;
        }
        if let Some(m) = maxconn {
            f.maxconn = m;
        }
        if let Some(p) = proxy_protocol {
            f.proxy_protocol = p;
        }
        if let Some(t) = timeout {
            if let Some(v) = &t.connect {
                f.timeouts.connect = self.duration(v, "timeout.connect")?;
            }
            if let Some(v) = &t.client {
                f.timeouts.client = self.duration(v, "timeout.client")?;
            }
            if let Some(v) = &t.server {
                f.timeouts.server = self.duration(v, "timeout.server")?;
            }
        }
        if let Some(c) = check {
            if let Some(e) = c.enabled {
                f.check.enabled = e;
            }
            if let Some(v) = &c.inter {
                f.check.inter = self.duration(v, "check.inter")?;
            }
            for (v, slot, name) in [(&c.rise, &mut f.check.rise, "rise"), (&c.fall, &mut f.check.fall, "fall")] {
                if let Some(v) = v {
                    if !(1..=1000).contains(v.get_ref()) {
                        return self.err(v.span(), format!("check.{name} = {}: allowed: 1..=1000", v.get_ref()));
                    }
                    *slot = *v.get_ref();
                }
            }
            if let Some(e) = c.error_limit {
                f.check.error_limit = e;
            }
        }
        Ok(())
    }
}

impl ProxyConfig {
    /// The one-pool case of the command line: every listen port to the same backends.
    pub fn from_flags(listen: &[u16], backends: &[SocketAddrV4], balance: Balance) -> Result<ProxyConfig, ConfigError> {
        let c = ProxyConfig { frontends: vec![FrontendConfig::new("default", listen.to_vec(), backends, balance)] };
        c.validate()?;
        Ok(c)
    }

    pub fn from_file(path: &std::path::Path) -> Result<ProxyConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Other(format!("cannot read {}: {e}", path.display())))?;
        ProxyConfig::from_toml_str(&text)
    }

    pub fn from_toml_str(text: &str) -> Result<ProxyConfig, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string().trim().to_string()))?;
        let cx = Ctx { text };
        if raw.frontend.is_empty() {
            return Err(ConfigError::Other(
                "no [[frontend]]: at least one frontend with a listen port is needed".into(),
            ));
        }
        let d = &raw.defaults;
        let mut out = Vec::new();
        for (n, sf) in raw.frontend.iter().enumerate() {
            let span = sf.span();
            let rf = sf.get_ref();
            let mut f = FrontendConfig::new(
                &rf.name.clone().unwrap_or_else(|| format!("frontend{n}")),
                vec![],
                &[],
                Balance::default(),
            );
            cx.apply(&mut f, &d.balance, &d.retries, d.redispatch, d.maxconn, d.proxy_protocol, &d.timeout, &d.check)?;
            cx.apply(
                &mut f,
                &rf.balance,
                &rf.retries,
                rf.redispatch,
                rf.maxconn,
                rf.proxy_protocol,
                &rf.timeout,
                &rf.check,
            )?;
            for p in rf.listen.get_ref() {
                if !(1..=65535).contains(p.get_ref()) {
                    return cx.err(p.span(), format!("listen port {}: allowed: 1..=65535", p.get_ref()));
                }
                f.listen.push(*p.get_ref() as u16);
            }
            if f.listen.is_empty() {
                return cx.err(rf.listen.span(), format!("frontend {:?}: listen = []: at least one port", f.name));
            }
            for b in &rf.backend {
                let addr: SocketAddrV4 = match b.addr.get_ref().parse() {
                    Ok(a) => a,
                    Err(_) => {
                        return cx.err(
                            b.addr.span(),
                            format!(
                                "addr = {:?}: allowed: an IPv4 address and port, like \"198.18.0.10:80\"",
                                b.addr.get_ref()
                            ),
                        )
                    }
                };
                if addr.port() == 0
                    || addr.ip().is_unspecified()
                    || addr.ip().is_broadcast()
                    || addr.ip().is_multicast()
                {
                    return cx.err(
                        b.addr.span(),
                        format!("addr = {:?}: a unicast address and a non-zero port", b.addr.get_ref()),
                    );
                }
                let weight = match &b.weight {
                    Some(w) if *w.get_ref() > MAX_WEIGHT => {
                        return cx.err(w.span(), format!("weight = {}: allowed: 0..={MAX_WEIGHT}", w.get_ref()))
                    }
                    Some(w) => *w.get_ref(),
                    None => 1,
                };
                if f.backends.iter().any(|o| o.addr == addr) {
                    return cx.err(b.addr.span(), format!("backend {addr} listed twice in frontend {:?}", f.name));
                }
                f.backends.push(BackendSpec { addr, weight, maxconn: b.maxconn.unwrap_or(0) });
            }
            if f.backends.is_empty() {
                return cx.err(span, format!("frontend {:?} has no [[frontend.backend]]", f.name));
            }
            out.push(f);
        }
        let c = ProxyConfig { frontends: out };
        c.validate()?;
        Ok(c)
    }

    /// Checks that hold for flags and files alike.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut ports = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for f in &self.frontends {
            if !names.insert(f.name.as_str()) {
                return Err(ConfigError::Other(format!("two frontends are named {:?}", f.name)));
            }
            if f.listen.is_empty() || f.listen.contains(&0) {
                return Err(ConfigError::Other(format!("frontend {:?}: listen ports must be 1..=65535", f.name)));
            }
            if f.backends.is_empty() {
                return Err(ConfigError::Other(format!("frontend {:?}: no backend", f.name)));
            }
            for p in &f.listen {
                if !ports.insert(*p) {
                    return Err(ConfigError::Other(format!("port {p} is listened on twice")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[defaults]
balance = "leastconn"
retries = 2
timeout = { connect = "300ms", client = "1m" }
check = { inter = "500ms", rise = 3 }

[[frontend]]
name = "web"
listen = [80, 8080]
balance = "maglev"
proxy_protocol = true
[[frontend.backend]]
addr = "198.18.0.10:80"
weight = 2
[[frontend.backend]]
addr = "198.18.0.11:80"
maxconn = 100

[[frontend]]
name = "db"
listen = [5432]
redispatch = false
check = { enabled = false }
[[frontend.backend]]
addr = "198.18.0.12:5432"
"#;

    #[test]
    fn a_full_file() {
        let c = ProxyConfig::from_toml_str(FULL).unwrap();
        assert_eq!(c.frontends.len(), 2);
        let web = &c.frontends[0];
        assert_eq!(web.listen, vec![80, 8080]);
        assert_eq!(web.balance, Balance::Maglev);
        assert_eq!(web.retries, 2);
        assert!(web.proxy_protocol && web.redispatch);
        assert_eq!(web.timeouts.connect, Duration::from_millis(300));
        assert_eq!(web.timeouts.client, Duration::from_secs(60));
        assert_eq!(web.timeouts.server, Duration::from_secs(50), "unset: the default");
        assert_eq!(web.check.inter, Duration::from_millis(500));
        assert_eq!((web.check.rise, web.check.fall), (3, 3));
        assert_eq!(web.backends[0], BackendSpec { addr: "198.18.0.10:80".parse().unwrap(), weight: 2, maxconn: 0 });
        assert_eq!(web.backends[1].maxconn, 100);
        let db = &c.frontends[1];
        assert_eq!(db.balance, Balance::LeastConn, "from [defaults]");
        assert!(!db.redispatch && !db.check.enabled && !db.proxy_protocol);
    }

    fn err(text: &str) -> String {
        ProxyConfig::from_toml_str(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_line_and_what_is_allowed() {
        let base = "[[frontend]]\nlisten = [80]\n[[frontend.backend]]\naddr = \"198.18.0.10:80\"\n";
        let e = err(&format!("{base}weight = 300\n"));
        assert!(e.starts_with("line 5:") && e.contains("0..=256"), "{e}");
        let e =
            err("[[frontend]]\nlisten = [80]\nbalance = \"random\"\n[[frontend.backend]]\naddr = \"198.18.0.1:1\"\n");
        assert!(e.starts_with("line 3:") && e.contains("roundrobin, leastconn, maglev"), "{e}");
        let e = err("[[frontend]]\nlisten = [80]\n[[frontend.backend]]\naddr = \"198.18.0.10\"\n");
        assert!(e.starts_with("line 4:") && e.contains("like \"198.18.0.10:80\""), "{e}");
        let e = err("[[frontend]]\nlisten = [80]\n[[frontend.backend]]\naddr = \"198.18.0.1:1\"\nwieght = 2\n");
        assert!(e.contains("line 5") && e.contains("unknown field `wieght`") && e.contains("weight"), "{e}");
        let e = err("[defaults]\ntimeout = { connect = \"5 parsecs\" }\n[[frontend]]\nlisten = [80]\n");
        assert!(e.starts_with("line 2:") && e.contains("\"200ms\""), "{e}");
        let e = err("[[frontend]]\nlisten = [70000]\n[[frontend.backend]]\naddr = \"198.18.0.1:1\"\n");
        assert!(e.starts_with("line 2:") && e.contains("1..=65535"), "{e}");
        let e = err("[[frontend]]\nlisten = [80]\n");
        assert!(e.starts_with("line 1:") && e.contains("no [[frontend.backend]]"), "{e}");
        let e = err(&format!("{base}[[frontend.backend]]\naddr = \"198.18.0.10:80\"\n"));
        assert!(e.starts_with("line 6:") && e.contains("twice"), "{e}");
        let e = err(&format!("{base}[[frontend]]\nlisten = [80]\n[[frontend.backend]]\naddr = \"198.18.0.1:1\"\n"));
        assert!(e.contains("port 80 is listened on twice"), "{e}");
        let e = err("[defaults]\ncheck = { rise = 0 }\n[[frontend]]\nlisten = [80]\n");
        assert!(e.starts_with("line 2:") && e.contains("1..=1000"), "{e}");
        assert!(err("").contains("no [[frontend]]"));
        assert!(err("[[frontend]\n").contains("line 1"));
    }

    #[test]
    fn flags_make_one_pool() {
        let b: Vec<SocketAddrV4> = vec!["198.18.0.10:80".parse().unwrap(), "198.18.0.11:80".parse().unwrap()];
        let c = ProxyConfig::from_flags(&[80, 81], &b, Balance::Maglev).unwrap();
        assert_eq!(c.frontends[0].backends.len(), 2);
        assert_eq!(c.frontends[0].listen, vec![80, 81]);
        assert!(ProxyConfig::from_flags(&[80], &[], Balance::RoundRobin).is_err());
        assert!(ProxyConfig::from_flags(&[80, 80], &b, Balance::RoundRobin).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("3m"), Some(Duration::from_secs(180)));
        assert_eq!(parse_duration("10us"), Some(Duration::from_micros(10)));
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("1d"), None);
    }
}
