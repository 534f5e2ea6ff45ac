//! `deploy/rss.sh --dry-run`: the commands it would run, and its refusal of bad arguments (it cannot run on a real
//! NIC here).

use std::process::Command;

fn rss(args: &[&str]) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rss.sh");
    let out = Command::new("bash").arg(script).args(args).output().expect("bash");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn dry_run_prints_a_symmetric_key_equal_table_and_tcp4_hashing() {
    let (ok, out) = rss(&["--dry-run", "eth1", "4"]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let key = "6d:5a:".repeat(20);
    assert_eq!(lines[0], format!("ethtool -X eth1 hkey {} equal 4 hfunc toeplitz", &key[..key.len() - 1]));
    assert_eq!(lines[1], "ethtool -N eth1 rx-flow-hash tcp4 sdfn");
    assert!(lines[2].contains("--queues 0,1,2,3 --steering nic"), "{out}");
    // The key it prints is the one xdptcp's hash model uses.
    let bytes: Vec<u8> = key[..key.len() - 1].split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    assert_eq!(bytes[..], xdptcp::stack::rss::SYMMETRIC_KEY[..]);
    let (ok, out) = rss(&["--dry-run", "--key-bytes", "52", "eth1", "2"]);
    assert!(ok && out.lines().next().unwrap().matches("6d:5a").count() == 26, "{out}");
}

#[test]
fn bad_arguments_are_refused() {
    for args in [
        &["--dry-run", "eth1"][..],
        &["--dry-run", "eth1", "0"],
        &["--dry-run", "eth1", "x"],
        &["--dry-run", "eth1", "2000"],
        &["--dry-run", "eth1;reboot", "2"],
        &["--dry-run", "averyveryverylongname", "2"],
        &["--dry-run", "--key-bytes", "41", "eth1", "2"],
        &["--bogus", "eth1", "2"],
    ] {
        let (ok, out) = rss(args);
        assert!(!ok, "{args:?} accepted: {out}");
    }
}
