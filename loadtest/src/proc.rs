//! Reading a local process's resident memory and CPU time from /proc.

use anyhow::Context;

/// Resident set size of `pid`, bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| {
        format!("reading /proc/{pid}/status (is the gateway running on this machine?)")
    })?;
    parse_vm_rss(&status).context("no VmRSS line in /proc/<pid>/status")
}

/// The summed resident memory of `pids`, bytes (`None` without pids).
pub fn total_rss(pids: &[u32]) -> anyhow::Result<Option<u64>> {
    if pids.is_empty() {
        return Ok(None);
    }
    let mut total = 0;
    for &pid in pids {
        total += rss_bytes(pid)?;
    }
    Ok(Some(total))
}

/// CPU time of a process (all its threads), seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    /// In its own code.
    pub user: f64,
    /// In the kernel on its behalf (on loopback that includes the receiving
    /// side of every TCP segment it sends).
    pub system: f64,
}

impl CpuTime {
    /// User plus system.
    pub fn total(&self) -> f64 {
        self.user + self.system
    }
}

impl std::ops::Add for CpuTime {
    type Output = CpuTime;
    fn add(self, o: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user + o.user,
            system: self.system + o.system,
        }
    }
}

impl std::ops::Sub for CpuTime {
    type Output = CpuTime;
    fn sub(self, o: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user - o.user,
            system: self.system - o.system,
        }
    }
}

/// CPU time of `pid` so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (is the gateway running here?)"))?;
    let (user, system) = parse_cpu_ticks(&stat).context("malformed /proc/<pid>/stat")?;
    Ok(CpuTime {
        user: user as f64 / CLOCK_TICKS_PER_SEC,
        system: system as f64 / CLOCK_TICKS_PER_SEC,
    })
}

/// CPU time of the calling thread so far.
pub fn thread_cpu_time() -> anyhow::Result<CpuTime> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")
        .context("reading /proc/thread-self/stat")?;
    let (user, system) = parse_cpu_ticks(&stat).context("malformed /proc/thread-self/stat")?;
    Ok(CpuTime {
        user: user as f64 / CLOCK_TICKS_PER_SEC,
        system: system as f64 / CLOCK_TICKS_PER_SEC,
    })
}

/// Linux reports CPU times in USER_HZ ticks, which is 100 on every
/// architecture's user-space ABI.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// (utime, stime) from a /proc/<pid>/stat line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after its
/// closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime, stime))
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
    fn parses_cpu_ticks_after_the_command_name() {
        let stat = "4242 (my (odd) gw) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some((250, 75)));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_our_own_cpu_time() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {}
        assert!(cpu_time(std::process::id()).expect("own cpu").total() > 0.0);
    }

    #[test]
    fn reads_our_own_rss() {
        assert!(rss_bytes(std::process::id()).expect("own rss") > 0);
    }
}
