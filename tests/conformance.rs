//! Runs every conformance script under `tests/scripts/` (packetdrill notation, see `xdptcp::sim::script`): one
//! engine against a scripted peer in virtual time. Scripts listed under "Not run" in `tests/scripts/README.md` are
//! skipped, each with its reason there; every other `.pkt` file must pass.

use std::path::{Path, PathBuf};

use xdptcp::sim::script;

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts")
}

/// `- name.pkt: reason` lines of the README's "Not run" section.
fn not_run() -> Vec<String> {
    let readme = std::fs::read_to_string(scripts_dir().join("README.md")).expect("tests/scripts/README.md");
    let section = readme.split("## Not run").nth(1).unwrap_or("");
    let section = section.split("\n## ").next().unwrap_or("");
    section
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().trim_matches('`').to_string()))
        .collect()
}

fn all_scripts() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walk(&scripts_dir());
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("scripts dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "pkt") {
            out.push(p);
        }
    }
    out
}

/// `XDPTCP_SCRIPT=a.pkt,b.pkt cargo test --release --test conformance -- --nocapture` runs just those files (any path),
/// not-run ones included, to work on a script.
#[test]
fn chosen_scripts() {
    let Ok(list) = std::env::var("XDPTCP_SCRIPT") else { return };
    for p in list.split(',') {
        match script::run_file(Path::new(p)) {
            Ok(o) => println!("{p}: ok ({} lines, {} in, {} out)", o.lines, o.inbound, o.outbound),
            Err(e) => println!("{e}\n"),
        }
    }
}

#[test]
fn every_script_passes() {
    let skip = not_run();
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in all_scripts() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if skip.contains(&name) {
            continue;
        }
        ran += 1;
        if let Err(e) = script::run_file(&path) {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "{} of {ran} scripts failed:\n\n{}", failures.len(), failures.join("\n\n"));
    assert!(ran >= 80, "only {ran} scripts ran");
}

#[test]
fn skipped_scripts_exist() {
    let all: Vec<String> =
        all_scripts().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for s in not_run() {
        assert!(all.contains(&s), "README lists {s}, which does not exist");
    }
}

/// The harness itself must fail a wrong script, with a readable diff naming the line.
#[test]
fn a_wrong_expectation_fails_with_a_diff() {
    let text = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
                +0 bind(3, ..., ...) = 0\n\
                +0 listen(3, 1) = 0\n\
                +0 < S 0:0(0) win 65535 <mss 1460>\n\
                +0 > S. 0:0(0) ack 2 <...>\n";
    let e = script::run(&script::parse("wrong.pkt", text).unwrap()).unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    assert!(e.message.contains("ack") && e.message.contains("actual"), "{e}");

    let missing = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 listen(3, 1) = 0\n+0 > S 0:0(0) <...>\n";
    let e = script::run(&script::parse("missing.pkt", missing).unwrap()).unwrap_err();
    assert!(e.message.contains("missing outbound"), "{e}");

    let unexpected = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 listen(3, 1) = 0\n\
                      +0 < S 0:0(0) win 65535 <mss 1460>\n+0.1 < . 1:1(0) ack 1 win 100\n";
    let e = script::run(&script::parse("unexpected.pkt", unexpected).unwrap()).unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("unexpected outbound") && e.message.contains("> S."), "{e}");
}
