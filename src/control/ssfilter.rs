//! Socket selection for `xdptcp ss`: state sets (`--state established`, `-l`, `-a`) and the address/port filter
//! language of ss(8) (`dport = :80`, `src 198.18.0.1`, `( sport = :80 or sport = :443 ) and dst 198.18.0.0/15`).
//!
//! The worker applies both while it walks its tables, so a filtered listing of millions of connections sends only
//! what matches.
//!
//! ```text
//! expr     := and_expr (("or" | "|" | "||") and_expr)*
//! and_expr := unary (("and" | "&" | "&&")? unary)*           (juxtaposition means `and`, as in ss)
//! unary    := ("not" | "!") unary | "(" expr ")" | cond
//! cond     := ("sport" | "dport") OP PORT                    PORT: `:80` or `80`
//!           | ("src" | "dst") [ "=" | "==" | "!=" ] HOSTPORT  HOSTPORT: `198.18.0.1`, `198.18.0.0/15`,
//!                                                              `198.18.0.1:80`, `*:80`, `:80`, `*`
//! OP       := "=" | "==" | "eq" | "!=" | "ne" | "<" | "lt" | ">" | "gt" | "<=" | "le" | ">=" | "ge"
//! ```

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::tcp::State;

/// Every RFC 9293 state, in the order `ss` documents them.
pub const ALL_STATES: [State; 11] = [
    State::Established,
    State::SynSent,
    State::SynReceived,
    State::FinWait1,
    State::FinWait2,
    State::TimeWait,
    State::Closed,
    State::CloseWait,
    State::LastAck,
    State::Listen,
    State::Closing,
];

/// A set of states as a bit mask (bit = position in [`ALL_STATES`]).
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct StateSet(u16);

fn bit(s: State) -> u16 {
    1 << ALL_STATES.iter().position(|x| *x == s).unwrap_or(0)
}

impl StateSet {
    pub const EMPTY: StateSet = StateSet(0);

    pub fn all() -> StateSet {
        StateSet((1 << ALL_STATES.len()) - 1)
    }
    pub fn only(s: State) -> StateSet {
        StateSet(bit(s))
    }
    /// What `ss` shows without `-a` or `-l`: every state but LISTEN, CLOSED, TIME-WAIT and SYN-RECV (ss's
    /// `SS_CONN`).
    pub fn connected_default() -> StateSet {
        StateSet::all()
            .without(State::Listen)
            .without(State::Closed)
            .without(State::TimeWait)
            .without(State::SynReceived)
    }
    pub fn with(self, s: State) -> StateSet {
        StateSet(self.0 | bit(s))
    }
    pub fn without(self, s: State) -> StateSet {
        StateSet(self.0 & !bit(s))
    }
    pub fn union(self, o: StateSet) -> StateSet {
        StateSet(self.0 | o.0)
    }
    pub fn contains(self, s: State) -> bool {
        self.0 & bit(s) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn bits(self) -> u16 {
        self.0
    }
    pub fn from_bits(bits: u16) -> StateSet {
        StateSet(bits & StateSet::all().0)
    }

    /// A state name or group as `ss state ...` takes it: `established`, `syn-sent`, `syn-recv`, `fin-wait-1`,
    /// `fin-wait-2`, `time-wait`, `closed`, `close-wait`, `last-ack`, `listening`, `closing`, and the groups
    /// `all`, `connected`, `synchronized`, `bucket`, `big`. The `ss` column names (`ESTAB`, `SYN-RECV`) are
    /// accepted too.
    pub fn parse(name: &str) -> Option<StateSet> {
        let n = name.trim().to_ascii_lowercase().replace('_', "-");
        let one = |s| Some(StateSet::only(s));
        match n.as_str() {
            "established" | "estab" => one(State::Established),
            "syn-sent" => one(State::SynSent),
            "syn-recv" | "syn-received" => one(State::SynReceived),
            "fin-wait-1" => one(State::FinWait1),
            "fin-wait-2" => one(State::FinWait2),
            "time-wait" => one(State::TimeWait),
            "closed" | "unconn" => one(State::Closed),
            "close-wait" => one(State::CloseWait),
            "last-ack" => one(State::LastAck),
            "listening" | "listen" => one(State::Listen),
            "closing" => one(State::Closing),
            "all" => Some(StateSet::all()),
            // ss(8): connected = all but listening and closed; synchronized = connected but syn-sent;
            // bucket = kept as minisockets (syn-recv, time-wait); big = the opposite of bucket.
            "connected" => Some(StateSet::all().without(State::Listen).without(State::Closed)),
            "synchronized" => {
                Some(StateSet::all().without(State::Listen).without(State::Closed).without(State::SynSent))
            }
            "bucket" => Some(StateSet::only(State::SynReceived).with(State::TimeWait)),
            "big" => Some(StateSet::all().without(State::SynReceived).without(State::TimeWait)),
            _ => None,
        }
    }
}

/// Parses an `ss` column name (`ESTAB`, `TIME-WAIT`) back into a state.
pub fn state_from_ss_name(name: &str) -> Option<State> {
    ALL_STATES.iter().copied().find(|s| s.ss_name() == name)
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ss filter: {message} (at `{near}`)")]
pub struct SsFilterError {
    pub message: String,
    pub near: String,
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl Cmp {
    fn eval(self, a: u16, b: u16) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Gt => a > b,
            Cmp::Le => a <= b,
            Cmp::Ge => a >= b,
        }
    }
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Cond {
    /// Port comparison on the local (`sport`) or remote (`dport`) side.
    Port { remote: bool, cmp: Cmp, port: u16 },
    /// Address match on the local (`src`) or remote (`dst`) side; `port` 0 means any port.
    Addr { remote: bool, negate: bool, addr: u32, mask: u32, port: u16 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    Cond(Cond),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// A compiled ss filter; the empty filter matches every socket.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SsFilter {
    expr: Option<Expr>,
}

impl Cond {
    fn matches(&self, local: SocketAddrV4, remote: SocketAddrV4) -> bool {
        match *self {
            Cond::Port { remote: r, cmp, port } => cmp.eval(if r { remote.port() } else { local.port() }, port),
            Cond::Addr { remote: r, negate, addr, mask, port } => {
                let sa = if r { remote } else { local };
                let hit = (u32::from(*sa.ip()) & mask == addr) && (port == 0 || sa.port() == port);
                hit != negate
            }
        }
    }
}

impl Expr {
    fn matches(&self, local: SocketAddrV4, remote: SocketAddrV4) -> bool {
        match self {
            Expr::Cond(c) => c.matches(local, remote),
            Expr::Not(e) => !e.matches(local, remote),
            Expr::And(a, b) => a.matches(local, remote) && b.matches(local, remote),
            Expr::Or(a, b) => a.matches(local, remote) || b.matches(local, remote),
        }
    }
}

impl SsFilter {
    /// Compiles filter text; blank text matches everything.
    pub fn parse(text: &str) -> Result<SsFilter, SsFilterError> {
        let tokens = tokenize(text);
        if tokens.is_empty() {
            return Ok(SsFilter::default());
        }
        let mut p = Parser { tokens, pos: 0 };
        let e = p.expr(0)?;
        if p.pos < p.tokens.len() {
            return Err(p.error("unexpected token".into()));
        }
        Ok(SsFilter { expr: Some(e) })
    }

    pub fn is_empty(&self) -> bool {
        self.expr.is_none()
    }

    /// Does the socket `local` <-> `remote` pass? Listeners have remote `0.0.0.0:0`.
    pub fn matches(&self, local: SocketAddrV4, remote: SocketAddrV4) -> bool {
        self.expr.as_ref().is_none_or(|e| e.matches(local, remote))
    }
}

fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            '(' | ')' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
            }
            '=' | '<' | '>' | '!' | '&' | '|' => {
                flush(&mut cur, &mut out);
                let two = matches!(
                    (c, next),
                    ('=', Some('=')) | ('!' | '<' | '>', Some('=')) | ('&', Some('&')) | ('|', Some('|'))
                );
                if two {
                    out.push(format!("{c}{}", next.unwrap_or(' ')));
                    i += 1;
                } else {
                    out.push(c.to_string());
                }
            }
            _ => cur.push(c),
        }
        i += 1;
    }
    flush(&mut cur, &mut out);
    out
}

const MAX_DEPTH: usize = 64;

struct Parser {
    tokens: Vec<String>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }
    fn error(&self, message: String) -> SsFilterError {
        let near = self.tokens.get(self.pos.min(self.tokens.len().saturating_sub(1))).cloned().unwrap_or_default();
        SsFilterError { message, near }
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, SsFilterError> {
        let mut left = self.and_expr(depth)?;
        while matches!(self.peek(), Some("or" | "|" | "||")) {
            self.pos += 1;
            let right = self.and_expr(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self, depth: usize) -> Result<Expr, SsFilterError> {
        let mut left = self.unary(depth)?;
        loop {
            match self.peek() {
                Some("and" | "&" | "&&") => self.pos += 1,
                Some("or" | "|" | "||" | ")") | None => break,
                Some(_) => {} // juxtaposition
            }
            let right = self.unary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, SsFilterError> {
        if depth > MAX_DEPTH {
            return Err(self.error("expression nested too deeply".into()));
        }
        match self.peek() {
            Some("not" | "!") => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some("(") => {
                self.pos += 1;
                let e = self.expr(depth + 1)?;
                if self.peek() != Some(")") {
                    return Err(self.error("expected `)`".into()));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(_) => self.cond().map(Expr::Cond),
            None => Err(self.error("unexpected end of filter".into())),
        }
    }

    fn value(&mut self, what: &str) -> Result<String, SsFilterError> {
        match self.peek() {
            Some(t) if !matches!(t, "(" | ")" | "and" | "or" | "not" | "&" | "&&" | "|" | "||" | "!") => {
                let t = t.to_string();
                self.pos += 1;
                Ok(t)
            }
            _ => Err(self.error(format!("expected {what}"))),
        }
    }

    fn cond(&mut self) -> Result<Cond, SsFilterError> {
        let key = self.value("sport, dport, src or dst")?;
        match key.as_str() {
            "sport" | "dport" => {
                let op = self.value("a comparison like `=` or `>=`")?;
                let cmp = match op.as_str() {
                    "=" | "==" | "eq" => Cmp::Eq,
                    "!=" | "ne" | "neq" => Cmp::Ne,
                    "<" | "lt" => Cmp::Lt,
                    ">" | "gt" => Cmp::Gt,
                    "<=" | "le" => Cmp::Le,
                    ">=" | "ge" => Cmp::Ge,
                    _ => {
                        self.pos -= 1;
                        return Err(self.error(format!("unknown comparison `{op}`")));
                    }
                };
                let v = self.value("a port like :80")?;
                let port = v.strip_prefix(':').unwrap_or(&v).parse::<u16>().map_err(|_| {
                    self.pos -= 1;
                    self.error(format!("bad port `{v}`"))
                })?;
                Ok(Cond::Port { remote: key == "dport", cmp, port })
            }
            "src" | "dst" => {
                let mut negate = false;
                match self.peek() {
                    Some("=" | "==" | "eq") => self.pos += 1,
                    Some("!=" | "ne" | "neq") => {
                        self.pos += 1;
                        negate = true;
                    }
                    _ => {}
                }
                let v = self.value("an address like 198.18.0.1, 198.18.0.0/15 or 198.18.0.1:80")?;
                let (addr, mask, port) = host_port(&v).ok_or_else(|| {
                    self.pos -= 1;
                    self.error(format!("bad address `{v}`"))
                })?;
                Ok(Cond::Addr { remote: key == "dst", negate, addr, mask, port })
            }
            other => {
                self.pos -= 1;
                Err(self.error(format!("unknown selector `{other}` (expected sport, dport, src or dst)")))
            }
        }
    }
}

/// `a.b.c.d`, `a.b.c.d/len`, `a.b.c.d:port`, `a.b.c.d/len:port`, `*`, `*:port`, `:port` -> (addr, mask, port).
fn host_port(v: &str) -> Option<(u32, u32, u16)> {
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) => (h, if p == "*" { 0 } else { p.parse::<u16>().ok()? }),
        None => (v, 0),
    };
    if host.is_empty() || host == "*" {
        return Some((0, 0, port));
    }
    let (a, len) = match host.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().ok().filter(|l| *l <= 32)?),
        None => (host, 32),
    };
    let a: Ipv4Addr = a.parse().ok()?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len as u32) };
    Some((u32::from(a) & mask, mask, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    fn m(f: &str, l: &str, r: &str) -> bool {
        SsFilter::parse(f).unwrap_or_else(|e| panic!("{f}: {e}")).matches(sa(l), sa(r))
    }

    #[test]
    fn ports_and_addresses() {
        let (l, r) = ("198.18.0.1:80", "198.18.0.2:40000");
        assert!(m("", l, r));
        assert!(m("sport = :80", l, r));
        assert!(m("sport == 80", l, r));
        assert!(m("sport=:80", l, r));
        assert!(!m("dport = :80", l, r));
        assert!(m("dport > :1024", l, r));
        assert!(m("dport ge :40000 and dport le :40000", l, r));
        assert!(m("src 198.18.0.1", l, r));
        assert!(m("src 198.18.0.1:80", l, r));
        assert!(!m("src 198.18.0.1:81", l, r));
        assert!(m("dst 198.18.0.0/15", l, r));
        assert!(m("dst != 10.0.0.0/8", l, r));
        assert!(m("src *:80", l, r));
        assert!(m("src :80", l, r));
        assert!(m("( sport = :443 or sport = :80 ) and not dst 10.0.0.1", l, r));
        assert!(m("sport = :80 dport = :40000", l, r), "juxtaposition is `and`");
        assert!(!m("!(sport = :80)", l, r));
        assert!(m("sport = :443 || sport = :80", l, r));
    }

    #[test]
    fn errors() {
        for bad in ["dport", "dport ~ :80", "dport = :x", "src", "src 1.2.3", "foo 1", "(sport = :80", "sport = :80)"] {
            assert!(SsFilter::parse(bad).is_err(), "{bad} should not parse");
        }
        assert!(SsFilter::parse(&("(".repeat(100) + "sport = :1" + &")".repeat(100))).is_err());
    }

    #[test]
    fn state_sets() {
        assert!(StateSet::parse("time-wait").unwrap().contains(State::TimeWait));
        assert!(StateSet::parse("ESTAB").unwrap().contains(State::Established));
        let d = StateSet::connected_default();
        assert!(d.contains(State::Established) && d.contains(State::FinWait2));
        assert!(!d.contains(State::Listen) && !d.contains(State::TimeWait) && !d.contains(State::SynReceived));
        let b = StateSet::parse("bucket").unwrap();
        assert!(b.contains(State::SynReceived) && b.contains(State::TimeWait) && !b.contains(State::Established));
        assert!(StateSet::parse("nonsense").is_none());
        for s in ALL_STATES {
            assert_eq!(state_from_ss_name(s.ss_name()), Some(s));
            assert_eq!(StateSet::from_bits(StateSet::only(s).bits()), StateSet::only(s));
        }
    }
}
