//! The script parser: one line at a time, every error naming its line.

use std::time::Duration;

use super::{Action, Expect, Field, Line, OptSpec, Script, ScriptError, SegSpec, When};
use crate::wire::TcpFlags;

/// Packetdrill's default timing tolerance.
const DEFAULT_TOLERANCE: Duration = Duration::from_millis(4);

/// Parses `text` (named `name` in errors).
pub fn parse(name: &str, text: &str) -> Result<Script, ScriptError> {
    let mut script =
        Script { name: name.to_string(), settings: Vec::new(), tolerance: DEFAULT_TOLERANCE, lines: Vec::new() };
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let err = |message: String| ScriptError { file: name.to_string(), line: number, message };
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("--") {
            if !script.lines.is_empty() {
                return Err(err("settings must come before the first timed line".into()));
            }
            if let Some(kv) = rest.strip_prefix("set ") {
                script.settings.push(kv.trim().to_string());
            } else if let Some(v) = rest.strip_prefix("tolerance_usecs=") {
                let us: u64 = v.trim().parse().map_err(|_| err(format!("bad tolerance `{v}`")))?;
                script.tolerance = Duration::from_micros(us);
            } else {
                return Err(err(format!(
                    "unknown directive `--{rest}` (known: --set NAME=VALUE, --tolerance_usecs=N)"
                )));
            }
            continue;
        }
        let (when, rest) = parse_when(line).map_err(&err)?;
        let action = parse_action(rest).map_err(&err)?;
        if when == When::Any && !matches!(action, Action::Outbound(_)) {
            return Err(err("`*` time is allowed only for outbound segments".into()));
        }
        if let Action::Inbound(s) = &action {
            check_concrete(s).map_err(&err)?;
        }
        script.lines.push(Line { number, when, action, text: line.to_string() });
    }
    Ok(script)
}

fn strip_comment(line: &str) -> &str {
    let cut = [line.find("//"), line.find('#')].into_iter().flatten().min();
    match cut {
        Some(i) => &line[..i],
        None => line,
    }
}

fn parse_when(line: &str) -> Result<(When, &str), String> {
    let (tok, rest) = line.split_once(char::is_whitespace).ok_or_else(|| format!("no action after `{line}`"))?;
    let when = if tok == "*" {
        When::Any
    } else if let Some(r) = tok.strip_prefix('+') {
        When::Relative(seconds(r)?)
    } else {
        When::Absolute(seconds(tok)?)
    };
    Ok((when, rest.trim()))
}

fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("bad time `{s}` (want seconds: 0.010, +0.2, +0)"))?;
    if !(0.0..1e6).contains(&v) {
        return Err(format!("time `{s}` out of range"));
    }
    // Whole microseconds: `0.1` is 100000 µs, not 99999.
    Ok(Duration::from_micros((v * 1e6).round() as u64))
}

fn parse_action(s: &str) -> Result<Action, String> {
    if let Some(seg) = s.strip_prefix('<') {
        return Ok(Action::Inbound(parse_segment(seg.trim())?));
    }
    if let Some(seg) = s.strip_prefix('>') {
        return Ok(Action::Outbound(parse_segment(seg.trim())?));
    }
    let open = s.find('(').ok_or_else(|| format!("expected `<`, `>` or a call, got `{s}`"))?;
    let close = s.rfind(')').ok_or_else(|| format!("missing `)` in `{s}`"))?;
    if close < open {
        return Err(format!("missing `)` in `{s}`"));
    }
    let name = s[..open].trim().to_string();
    let args: Vec<String> = s[open + 1..close].split(',').map(|a| a.trim().to_string()).collect();
    let tail = s[close + 1..].trim();
    match name.as_str() {
        "info" => {
            let fd = args.first().and_then(|a| a.parse().ok()).ok_or("info needs a file descriptor: info(4) ...")?;
            let mut checks = Vec::new();
            for kv in tail.split_whitespace() {
                let (k, v) = kv.split_once('=').ok_or_else(|| format!("info check `{kv}` is not key=value"))?;
                checks.push((k.to_string(), v.to_string()));
            }
            if checks.is_empty() {
                return Err("info(fd) needs at least one key=value check".into());
            }
            Ok(Action::Info { fd, checks })
        }
        "counter" => {
            let expect = tail.strip_prefix('=').ok_or("counter(NAME) = N")?.trim();
            let expect = expect.parse().map_err(|_| format!("bad counter value `{expect}`"))?;
            Ok(Action::Counter { name: args.join(","), expect })
        }
        _ => {
            let expect = tail.strip_prefix('=').ok_or_else(|| format!("`{name}(...)` needs `= result`"))?.trim();
            let expect = match expect.strip_prefix("-1") {
                Some(errno) if !errno.trim().is_empty() => Expect::Errno(errno.trim().to_string()),
                _ => Expect::Value(expect.parse().map_err(|_| format!("bad result `{expect}`"))?),
            };
            Ok(Action::Call { name, args, expect })
        }
    }
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<Field<T>, String> {
    if s == "*" {
        return Ok(Field::Any);
    }
    s.parse().map(Field::Is).map_err(|_| format!("bad {what} `{s}`"))
}

/// `S. 0:0(0) ack 1 win 65535 <mss 1460,...>`
fn parse_segment(s: &str) -> Result<SegSpec, String> {
    let (head, options) = match s.find('<') {
        Some(i) => {
            let end = s.rfind('>').filter(|&e| e > i).ok_or("options missing their closing `>`")?;
            if !s[end + 1..].trim().is_empty() {
                return Err(format!("text after the options: `{}`", &s[end + 1..]));
            }
            (&s[..i], Some(&s[i + 1..end]))
        }
        None => (s, None),
    };
    let mut words = head.split_whitespace();
    let flag_word = words.next().ok_or("empty segment")?;
    let mut flags = 0u8;
    for ch in flag_word.chars() {
        flags |= match ch {
            'S' => TcpFlags::SYN,
            'F' => TcpFlags::FIN,
            'R' => TcpFlags::RST,
            'P' => TcpFlags::PSH,
            'U' => TcpFlags::URG,
            'E' => TcpFlags::ECE,
            'W' => TcpFlags::CWR,
            '.' => TcpFlags::ACK,
            _ => return Err(format!("unknown flag `{ch}` in `{flag_word}` (flags: S F R P U E W .)")),
        };
    }
    let range = words.next().ok_or("missing start:end(len)")?;
    let (seq, len) = parse_range(range)?;
    let mut spec = SegSpec { flags, seq, len, ack: None, win: None, options: Some(Vec::new()), port: None };
    while let Some(w) = words.next() {
        let v = words.next().ok_or_else(|| format!("`{w}` needs a value"))?;
        match w {
            "ack" => spec.ack = Some(num(v, "ack")?),
            "win" => spec.win = Some(num(v, "window")?),
            "port" => spec.port = Some(v.parse().ok().filter(|&p| p != 0).ok_or_else(|| format!("bad port `{v}`"))?),
            _ => return Err(format!("unknown field `{w}` (fields: ack, win, port)")),
        }
    }
    if spec.ack.is_some() != (flags & TcpFlags::ACK != 0) {
        return Err("`ack N` goes with the `.` flag and only with it".into());
    }
    if let Some(o) = options {
        spec.options = if o.trim() == "..." { None } else { Some(parse_options(o)?) };
    }
    Ok(spec)
}

/// `1:1001(1000)`, or `*:*(*)`.
fn parse_range(s: &str) -> Result<(Field<u32>, Field<u32>), String> {
    let bad = || format!("bad range `{s}` (want start:end(len))");
    let (start, rest) = s.split_once(':').ok_or_else(bad)?;
    let (end, len) = rest.strip_suffix(')').and_then(|r| r.split_once('(')).ok_or_else(bad)?;
    let start = num::<u32>(start, "sequence number")?;
    let end = num::<u32>(end, "end sequence number")?;
    let len = num::<u32>(len, "length")?;
    if let (Field::Is(a), Field::Is(b), Field::Is(l)) = (start, end, len) {
        if b.wrapping_sub(a) != l {
            return Err(format!("`{s}`: end - start is not the length"));
        }
    }
    Ok((start, len))
}

fn parse_options(s: &str) -> Result<Vec<OptSpec>, String> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let words: Vec<&str> = item.split_whitespace().collect();
        let opt = match words.as_slice() {
            ["nop"] => OptSpec::Nop,
            ["eol"] => OptSpec::Eol,
            ["sackOK"] => OptSpec::SackOk,
            ["mss", v] => OptSpec::Mss(num(v, "mss")?),
            ["wscale", v] => OptSpec::WScale(num(v, "wscale")?),
            ["TS", "val", v, "ecr", e] => OptSpec::Ts { val: num(v, "TS val")?, ecr: num(e, "TS ecr")? },
            ["sack", blocks @ ..] if !blocks.is_empty() => {
                let mut bs = Vec::new();
                for b in blocks {
                    let (l, r) = b.split_once(':').ok_or_else(|| format!("bad SACK block `{b}` (want left:right)"))?;
                    let l = l.parse().map_err(|_| format!("bad SACK block `{b}`"))?;
                    let r = r.parse().map_err(|_| format!("bad SACK block `{b}`"))?;
                    bs.push((l, r));
                }
                if bs.len() > crate::wire::tcp::MAX_SACK_BLOCKS {
                    return Err("more than 4 SACK blocks".into());
                }
                OptSpec::Sack(bs)
            }
            ["FO"] => OptSpec::FastOpen(Some(Vec::new())),
            ["FO", "*"] => OptSpec::FastOpen(None),
            ["FO", hex] => OptSpec::FastOpen(Some(parse_hex(hex)?)),
            _ => return Err(format!("unknown option `{}`", item.trim())),
        };
        out.push(opt);
    }
    Ok(out)
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 || s.len() > 2 * crate::wire::tcp::MAX_TFO_COOKIE {
        return Err(format!("bad cookie `{s}` (even number of hex digits, at most 16 bytes)"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| format!("bad hex `{s}`")))
        .collect()
}

/// Inbound segments are built, so every field must be a value.
fn check_concrete(s: &SegSpec) -> Result<(), String> {
    let any = |f: &Field<u32>| *f == Field::Any;
    let opts_any = match &s.options {
        None => true,
        Some(v) => v.iter().any(|o| match o {
            OptSpec::Mss(Field::Any) | OptSpec::WScale(Field::Any) | OptSpec::FastOpen(None) => true,
            OptSpec::Ts { val, ecr } => any(val) || any(ecr),
            _ => false,
        }),
    };
    if any(&s.seq) || any(&s.len) || s.ack.as_ref().is_some_and(any) || s.win == Some(Field::Any) || opts_any {
        return Err("inbound segments cannot use wildcards (`*`, `<...>`)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_packetdrill_line() {
        let s = parse("t", "+0.010 < . 1:1001(1000) ack 1 win 257 <nop,nop,TS val 120 ecr 300>").unwrap();
        let l = &s.lines[0];
        assert_eq!(l.when, When::Relative(Duration::from_millis(10)));
        let Action::Inbound(seg) = &l.action else { panic!("inbound") };
        assert_eq!(seg.flags, TcpFlags::ACK);
        assert_eq!((seg.seq, seg.len), (Field::Is(1), Field::Is(1000)));
        assert_eq!(seg.ack, Some(Field::Is(1)));
        assert_eq!(seg.win, Some(Field::Is(257)));
        assert_eq!(
            seg.options,
            Some(vec![OptSpec::Nop, OptSpec::Nop, OptSpec::Ts { val: Field::Is(120), ecr: Field::Is(300) }])
        );
    }

    #[test]
    fn wildcards_and_calls() {
        let s = parse(
            "t",
            "--set tcp_sack=0\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n* > . *:*(*) ack * <...>\n\
             +0 read(4, ..., 10) = -1 EAGAIN\n+0 info(4) state=ESTAB rto_ms=200\n+0 counter(TCPTimeouts) = 2",
        )
        .unwrap();
        assert_eq!(s.settings, vec!["tcp_sack=0".to_string()]);
        assert!(matches!(&s.lines[0].action, Action::Call { name, expect: Expect::Value(3), .. } if name == "socket"));
        let Action::Outbound(seg) = &s.lines[1].action else { panic!("outbound") };
        assert_eq!((seg.seq, seg.ack, seg.options.clone()), (Field::Any, Some(Field::Any), None));
        assert!(matches!(&s.lines[2].action, Action::Call { expect: Expect::Errno(e), .. } if e == "EAGAIN"));
        assert!(matches!(&s.lines[3].action, Action::Info { fd: 4, checks } if checks.len() == 2));
        assert!(matches!(&s.lines[4].action, Action::Counter { expect: 2, .. }));
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, needle) in [
            ("0 < S 0:0(0) win 1\n+0 > X 0:0(0)", 2, "unknown flag"),
            ("0 < . 1:5(3) ack 1", 1, "not the length"),
            ("\n\n0 < S 0:0(0) <mss 1460", 3, "closing"),
            ("0 < . 1:1(0) ack *", 1, "wildcards"),
            ("0 < S 0:0(0) ack 1", 1, "`.` flag"),
            ("0 < S 0:0(0) <bogus 3>", 1, "unknown option"),
            ("0 read(4, ..., 10)", 1, "= result"),
            ("0 > . 1:1(0) ack 1\n--set x=1", 2, "before"),
            ("zero < S 0:0(0)", 1, "bad time"),
        ] {
            let e = parse("f.pkt", text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains(needle), "{text}: {e}");
            assert!(e.to_string().starts_with(&format!("f.pkt:{line}: ")));
        }
    }
}
