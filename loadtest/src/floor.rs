//! The floor: what one write per member per message costs on this machine
//! without Easel. N loopback TCP connections; writer threads (one per core
//! by default) each own a slice of the server ends and write one frame to
//! each per broadcast, one `write` per member, as a gateway must; one
//! reader thread drains the client ends (epoll, through tokio). Reported:
//! the writers' CPU per write (user and system: on loopback the system
//! time includes the receiving side's TCP processing, as it does for a
//! gateway) and each broadcast's wall time, from its start until the
//! reader has every member's frame. Easel's fan-out figures are stated as
//! ratios to these (docs/BENCHMARKS.md).

use crate::proc::{CpuTime, thread_cpu_time};
use anyhow::Context;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// What the floor run does.
#[derive(Debug, clap::Args)]
pub struct FloorOptions {
    /// Members: loopback connections each broadcast writes to.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Broadcasts measured (after a few unmeasured ones).
    #[arg(long, default_value_t = 300)]
    pub rounds: usize,
    /// Writer threads; 0: one per available core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Bytes per frame (80: a small event in a WebSocket frame).
    #[arg(long, default_value_t = 80)]
    pub frame_bytes: usize,
}

/// What it measured.
#[derive(Debug, serde::Serialize)]
pub struct FloorReport {
    pub members: usize,
    pub rounds: usize,
    pub threads: usize,
    pub frame_bytes: usize,
    /// Writes measured (members times rounds).
    pub writes: u64,
    /// The writer threads' CPU per write, user plus system, microseconds.
    pub cpu_us_per_write: f64,
    pub user_us_per_write: f64,
    pub system_us_per_write: f64,
    /// Broadcast wall time: start to the last member's frame read, ms.
    pub broadcast_ms_p50: f64,
    pub broadcast_ms_p99: f64,
    pub broadcast_ms_max: f64,
    /// Each member's frame, from the broadcast's start until the reader
    /// had it, ms: how a broadcast's deliveries spread over its wall time.
    pub member_ms_p50: f64,
    pub member_ms_p99: f64,
}

impl FloorReport {
    pub fn table(&self) -> String {
        format!(
            "floor: {} members, {} broadcasts of {} bytes, {} writer threads\n\
             CPU per write      {:.2} us (user {:.2}, system {:.2})\n\
             broadcast wall     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
             member's frame     p50 {:.2} ms, p99 {:.2} ms\n",
            self.members,
            self.rounds,
            self.frame_bytes,
            self.threads,
            self.cpu_us_per_write,
            self.user_us_per_write,
            self.system_us_per_write,
            self.broadcast_ms_p50,
            self.broadcast_ms_p99,
            self.broadcast_ms_max,
            self.member_ms_p50,
            self.member_ms_p99
        )
    }
}

/// Unmeasured broadcasts first (connections and caches warm up).
const WARMUP: usize = 5;

/// Runs the floor benchmark.
pub fn run(opts: &FloorOptions) -> anyhow::Result<FloorReport> {
    anyhow::ensure!(
        opts.members > 0 && opts.rounds > 0,
        "members and rounds must be > 0"
    );
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(opts.members);
    let (servers, clients) = connect(opts.members)?;
    let received = Arc::new(AtomicU64::new(0));
    let clock = Arc::new(RoundClock::default());
    let reader = spawn_reader(clients, received.clone(), clock.clone(), opts.frame_bytes)?;

    let mut slices: Vec<Vec<TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, s) in servers.into_iter().enumerate() {
        slices[i % threads].push(s);
    }
    let total = WARMUP + opts.rounds;
    let barrier = Arc::new(Barrier::new(threads + 1));
    let frame = vec![0x81u8; opts.frame_bytes];
    let writers: Vec<_> = slices
        .into_iter()
        .map(|socks| {
            let (barrier, frame) = (barrier.clone(), frame.clone());
            std::thread::spawn(move || write_rounds(socks, &barrier, &frame, total))
        })
        .collect();

    let per_round = (opts.members * opts.frame_bytes) as u64;
    let mut walls = Vec::with_capacity(opts.rounds);
    for round in 0..total {
        let start = Instant::now();
        clock.start(round >= WARMUP);
        barrier.wait(); // writers start
        barrier.wait(); // writers done
        let want = per_round * (round as u64 + 1);
        while received.load(Ordering::Acquire) < want {
            std::thread::sleep(Duration::from_micros(50));
        }
        if round >= WARMUP {
            walls.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let mut cpu = CpuTime::default();
    for w in writers {
        let used = w
            .join()
            .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        cpu = cpu + used;
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))?;
    walls.sort_by(f64::total_cmp);
    let mut members = std::mem::take(&mut *clock.member_ms.lock());
    members.sort_by(f64::total_cmp);
    let writes = (opts.members * opts.rounds) as u64;
    let per_write = |s: f64| s * 1e6 / writes as f64;
    Ok(FloorReport {
        members: opts.members,
        rounds: opts.rounds,
        threads,
        frame_bytes: opts.frame_bytes,
        writes,
        cpu_us_per_write: per_write(cpu.total()),
        user_us_per_write: per_write(cpu.user),
        system_us_per_write: per_write(cpu.system),
        broadcast_ms_p50: quantile(&walls, 0.5),
        broadcast_ms_p99: quantile(&walls, 0.99),
        broadcast_ms_max: walls.last().copied().unwrap_or(0.0),
        member_ms_p50: quantile(&members, 0.5),
        member_ms_p99: quantile(&members, 0.99),
    })
}

/// Most members [`before_run`] measures with (open files: both ends of
/// every connection are in this process, beside the run's own).
const BEFORE_RUN_MAX_MEMBERS: usize = 5000;

/// The floor's CPU per write with `members` members (at most
/// [`BEFORE_RUN_MAX_MEMBERS`]), on a blocking thread, with rounds enough
/// for 300,000 writes (CPU time comes in 10 ms ticks; at most 3,000
/// rounds, so small runs stay short): a load run with
/// `--floor` states its CPU per delivery as a ratio to it.
pub async fn before_run(members: usize) -> anyhow::Result<f64> {
    let members = members.clamp(1, BEFORE_RUN_MAX_MEMBERS);
    let opts = FloorOptions {
        members,
        rounds: (300_000 / members).clamp(100, 3000),
        threads: 0,
        frame_bytes: 80,
    };
    let report = tokio::task::spawn_blocking(move || run(&opts))
        .await
        .context("the floor's thread")??;
    Ok(report.cpu_us_per_write)
}

/// When the current broadcast started, for the reader's per-member times.
#[derive(Default)]
struct RoundClock {
    epoch: std::sync::OnceLock<Instant>,
    /// Nanoseconds from `epoch` to the round's start; 0: not measured.
    started_ns: AtomicU64,
    member_ms: parking_lot::Mutex<Vec<f64>>,
}

impl RoundClock {
    fn now_ns(&self) -> u64 {
        self.epoch.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
    }

    fn start(&self, measured: bool) {
        let at = if measured { self.now_ns() } else { 0 };
        self.started_ns.store(at, Ordering::Release);
    }

    /// `frames` frames arrived now.
    fn arrived(&self, frames: usize) {
        let start = self.started_ns.load(Ordering::Acquire);
        if start == 0 || frames == 0 {
            return;
        }
        let ms = self.now_ns().saturating_sub(start) as f64 / 1e6;
        self.member_ms
            .lock()
            .extend(std::iter::repeat_n(ms, frames));
    }
}

/// `members` loopback connections: (server ends, client ends).
fn connect(members: usize) -> anyhow::Result<(Vec<TcpStream>, Vec<TcpStream>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (mut servers, mut clients) = (Vec::new(), Vec::new());
    for _ in 0..members {
        let client = TcpStream::connect(addr).context("connect (raise ulimit -n?)")?;
        let (server, _) = listener.accept()?;
        server.set_nodelay(true)?;
        clients.push(client);
        servers.push(server);
    }
    Ok((servers, clients))
}

/// One thread draining every client end; counts the bytes read. It ends
/// when the server ends close (the writers return them dropped).
fn spawn_reader(
    clients: Vec<TcpStream>,
    received: Arc<AtomicU64>,
    clock: Arc<RoundClock>,
    frame_bytes: usize,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    for c in &clients {
        c.set_nonblocking(true)?;
    }
    Ok(std::thread::spawn(move || {
        runtime.block_on(async move {
            let mut tasks = Vec::new();
            for c in clients {
                let (received, clock) = (received.clone(), clock.clone());
                tasks.push(tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let Ok(mut c) = tokio::net::TcpStream::from_std(c) else {
                        return;
                    };
                    let mut buf = vec![0u8; 4096];
                    let mut partial = 0;
                    while let Ok(n @ 1..) = c.read(&mut buf).await {
                        // Whole frames completed by this read.
                        partial += n;
                        clock.arrived(partial / frame_bytes.max(1));
                        partial %= frame_bytes.max(1);
                        received.fetch_add(n as u64, Ordering::Release);
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        });
    }))
}

/// A writer thread: per round, one write of `frame` to each socket; its
/// CPU time over the measured rounds.
fn write_rounds(
    mut socks: Vec<TcpStream>,
    barrier: &Barrier,
    frame: &[u8],
    rounds: usize,
) -> anyhow::Result<CpuTime> {
    let mut start = None;
    for round in 0..rounds {
        if round == WARMUP {
            start = Some(thread_cpu_time()?);
        }
        barrier.wait();
        for s in &mut socks {
            s.write_all(frame)?;
        }
        barrier.wait();
    }
    let end = thread_cpu_time()?;
    Ok(end - start.unwrap_or_default())
}

/// The `q` quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_floor_run_writes_and_reads_every_frame() {
        let report = run(&FloorOptions {
            members: 20,
            rounds: 10,
            threads: 2,
            frame_bytes: 80,
        })
        .expect("floor run");
        assert_eq!(report.writes, 200);
        assert!(report.broadcast_ms_max >= report.broadcast_ms_p50);
        assert!(report.member_ms_p99 >= report.member_ms_p50);
        assert!(report.member_ms_p50 > 0.0);
        assert!(report.cpu_us_per_write >= 0.0);
    }

    #[test]
    fn quantiles_of_sorted_values() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
