//! Reading a local process's resident memory and CPU time from /proc.

use anyhow::Context;

/// Resident set size of `pid`, bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| {
        format!("reading /proc/{pid}/status (is the gateway running on this machine?)")
    })?;
    parse_vm_rss(&status).context("no VmRSS line in /proc/<pid>/status")
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tgateway\nVmPeak:\t  100 kB\nVmRSS:\t   2048 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn reads_our_own_rss() {
        assert!(rss_bytes(std::process::id()).expect("own rss") > 0);
    }
}
