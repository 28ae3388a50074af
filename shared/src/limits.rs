//! The resources this process may use, so that memory and CPU alerts can
//! compare use with the limit the process runs under (a container's cgroup
//! limit, else the machine's size) without a separate exporter.

use std::path::Path;

/// The memory this process may use, bytes: the cgroup v2 `memory.max` or
/// v1 `memory.limit_in_bytes` when set, else the machine's memory.
pub fn memory_limit_bytes() -> Option<u64> {
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| read(p).and_then(|s| parse_memory_limit(&s)));
    let machine = read("/proc/meminfo").and_then(|s| parse_meminfo_total(&s));
    match (cgroup, machine) {
        // v1 reports "no limit" as a huge number: take the smaller.
        (Some(c), Some(m)) => Some(c.min(m)),
        (c, m) => c.or(m),
    }
}

/// The CPU this process may use, in cores: the standard library's view,
/// which honours a cgroup CPU quota and the affinity mask.
pub fn cpu_limit_cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// Registers the limits as constant gauges, `easel_process_memory_limit_bytes`
/// (when known) and `easel_process_cpu_limit_cores`.
#[cfg(feature = "prometheus")]
pub fn register(r: &prometheus::Registry) -> Result<(), prometheus::Error> {
    if let Some(bytes) = memory_limit_bytes() {
        let g = prometheus::Gauge::new(
            "easel_process_memory_limit_bytes",
            "Memory this process may use: its cgroup limit, else the machine's memory",
        )?;
        g.set(bytes as f64);
        r.register(Box::new(g))?;
    }
    let g = prometheus::Gauge::new(
        "easel_process_cpu_limit_cores",
        "Cores this process may use: its cgroup quota or affinity, else the machine's",
    )?;
    g.set(cpu_limit_cores());
    r.register(Box::new(g))
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `memory.max` holds a byte count or `max` (no limit).
fn parse_memory_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse().ok()
}

/// `MemTotal:  16318480 kB` from /proc/meminfo, in bytes.
fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_and_meminfo_values_parse() {
        assert_eq!(parse_memory_limit("536870912\n"), Some(536_870_912));
        assert_eq!(parse_memory_limit("max\n"), None);
        assert_eq!(parse_memory_limit("junk"), None);
        let meminfo = "MemTotal:       16318480 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_meminfo_total(meminfo), Some(16_318_480 * 1024));
        assert_eq!(parse_meminfo_total("MemFree: 1 kB"), None);
    }

    #[test]
    fn this_machine_reports_limits() {
        assert!(memory_limit_bytes().is_some_and(|b| b > 1 << 20));
        assert!(cpu_limit_cores() >= 1.0);
    }
}
