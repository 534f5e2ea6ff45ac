//! What the benchmark reads from the system: memory and CPU time of processes (`/proc/<pid>/status`, `stat`),
//! busy time of the machine (`/proc/stat`), kernel slab memory (`/proc/meminfo`), TIME_WAIT sockets of this
//! network namespace (`/proc/net/sockstat`), and the file-descriptor limit. Parsers are pure and tested on
//! captured text; the readers just add the file.

use std::path::Path;

/// Resident set size in bytes from `/proc/<pid>/status` text (`VmRSS:   1234 kB`).
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// utime + stime in clock ticks from `/proc/<pid>/stat` text. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted after the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime is field 14, stime 15 (1-based over the whole line).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy and total ticks of all CPUs from the first line of `/proc/stat` (idle and iowait are not busy).
pub fn parse_proc_stat_busy(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is already inside user/nice).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// `Slab:` of `/proc/meminfo`, bytes.
pub fn parse_meminfo_slab(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("Slab:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// TIME_WAIT sockets (`tw`) from `/proc/net/sockstat` (the reader's network namespace).
pub fn parse_sockstat_tw(sockstat: &str) -> Option<u64> {
    let line = sockstat.lines().find(|l| l.starts_with("TCP:"))?;
    let mut it = line.split_whitespace();
    while let Some(k) = it.next() {
        if k == "tw" {
            return it.next()?.parse().ok();
        }
    }
    None
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn clock_ticks_per_second() -> f64 {
    crate::sys::clock_ticks_per_second().max(1) as f64
}

/// Resident set of a process (`None` if it is gone).
pub fn rss_of(pid: u32) -> Option<u64> {
    parse_vm_rss(&read(format!("/proc/{pid}/status"))?)
}

/// Our own resident set.
pub fn own_rss() -> Option<u64> {
    parse_vm_rss(&read("/proc/self/status")?)
}

/// CPU seconds (user + system, all threads) a process has used.
pub fn cpu_seconds_of(pid: u32) -> Option<f64> {
    Some(parse_stat_cpu_ticks(&read(format!("/proc/{pid}/stat"))?)? as f64 / clock_ticks_per_second())
}

/// Busy CPU seconds of the machine since boot, all cores.
pub fn system_busy_seconds() -> Option<f64> {
    Some(parse_proc_stat_busy(&read("/proc/stat")?)?.0 as f64 / clock_ticks_per_second())
}

pub fn slab_bytes() -> Option<u64> {
    parse_meminfo_slab(&read("/proc/meminfo")?)
}

/// TIME_WAIT sockets of the kernel in the caller's network namespace.
pub fn kernel_time_wait() -> Option<u64> {
    parse_sockstat_tw(&read("/proc/net/sockstat")?)
}

/// Raises the open-file limit to its hard maximum (thousands of sockets need thousands of descriptors).
pub fn raise_fd_limit() -> u64 {
    crate::sys::raise_nofile_limit()
}

/// CPU and memory samples of a set of processes, to diff over a window.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

/// Sums CPU seconds and RSS of `pids` (processes that are gone count zero).
pub fn usage_of(pids: &[u32]) -> Usage {
    let mut u = Usage::default();
    for &p in pids {
        u.cpu_seconds += cpu_seconds_of(p).unwrap_or(0.0);
        u.rss_bytes += rss_of(p).unwrap_or(0);
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status_and_stat() {
        let status = "Name:\tnginx\nVmPeak:\t  10000 kB\nVmRSS:\t    2048 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        // A command name with spaces and a parenthesis.
        let stat = "4242 (we ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 100 1000 500";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn parses_machine_wide_files() {
        let stat = "cpu  100 5 50 1000 20 3 7 0 0 0\ncpu0 50 2 25 500 10 1 3 0 0 0\n";
        assert_eq!(parse_proc_stat_busy(stat), Some((165, 1185)));
        assert_eq!(parse_meminfo_slab("MemTotal: 1 kB\nSlab:             123456 kB\n"), Some(123456 * 1024));
        let sockstat = "sockets: used 10\nTCP: inuse 3 orphan 0 tw 17 alloc 5 mem 1\nUDP: inuse 0 mem 0\n";
        assert_eq!(parse_sockstat_tw(sockstat), Some(17));
        assert_eq!(parse_sockstat_tw("TCP: inuse 3\n"), None);
    }

    #[test]
    fn reads_our_own_process() {
        assert!(own_rss().unwrap() > 0);
        let pid = std::process::id();
        assert!(cpu_seconds_of(pid).is_some());
        assert!(system_busy_seconds().unwrap() > 0.0);
        assert!(raise_fd_limit() > 0);
    }
}
