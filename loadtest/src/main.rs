//! `loadtest`: flags, then one scenario, then a report.

use clap::Args;
use clap::{Parser, Subcommand};
use loadtest::engine::{self, Extra, Load, Report};
use loadtest::idle::{self, IdleOptions};
use loadtest::persist::{self, PersistOptions};

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Drive WebSocket load against Easel gateways"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Print the report as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// C canvases x M members, P publishers at a total rate R: delivery
    /// latency, throughput, and lost/duplicated/out-of-order counts.
    Fanout(Load),
    /// The fan-out load plus a steady rate of connect/join/leave/disconnect.
    Churn(ChurnArgs),
    /// The highest sustained rate of acked durable writes: publishers keep a
    /// window of writes in flight; reports acks per second and ack latency.
    Durable(DurableArgs),
    /// The fan-out load while members drop and resume with `since` on
    /// another gateway; checks that no sequence number goes missing.
    Resume(ResumeArgs),
    /// The fan-out load while abusive connections flood the first gateway
    /// with draws: the neighbours' latency beside the flooders' refusals.
    Flood(FloodArgs),
    /// Hold N idle, authenticated connections and measure the gateway's memory per connection.
    Idle(IdleOptions),
    /// Fill canvas logs through the durable publish script (at --rate, or flat out).
    PersistFill(PersistOptions),
    /// Wait for the persister to catch up and report its drain rate.
    PersistWait(PersistOptions),
    /// The floor without Easel: one write per member per broadcast to N
    /// loopback sockets, one writer thread per core; CPU per write and
    /// broadcast wall time.
    Floor(loadtest::floor::FloorOptions),
}

#[derive(Debug, Args)]
struct ChurnArgs {
    #[command(flatten)]
    load: Load,
    /// Connect/join/leave/disconnect cycles per second.
    #[arg(long, default_value_t = 50.0)]
    churn_rate: f64,
}

#[derive(Debug, Args)]
struct FloodArgs {
    #[command(flatten)]
    load: Load,
    /// Flooding connections (on the first --url).
    #[arg(long, default_value_t = 1)]
    flooders: usize,
    /// Draws per second each flooder sends (64 pixels each); 0: as fast as
    /// the socket takes them.
    #[arg(long, default_value_t = 0.0)]
    flood_rate: f64,
}

#[derive(Debug, Args)]
struct DurableArgs {
    #[command(flatten)]
    load: Load,
    /// Unanswered writes each publisher keeps in flight.
    #[arg(long, default_value_t = 16)]
    window: usize,
}

#[derive(Debug, Args)]
struct ResumeArgs {
    #[command(flatten)]
    load: Load,
    /// Members dropped (and resumed) per second.
    #[arg(long, default_value_t = 5.0)]
    resume_rate: f64,
}

/// Runs an engine scenario, prints its report, and fails the process when
/// the run was not clean (so scripts and CI can rely on the exit code).
fn run_load(
    runtime: &tokio::runtime::Runtime,
    name: &'static str,
    load: &Load,
    extra: Extra,
    json: bool,
) -> anyhow::Result<()> {
    let progress = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report: Report = runtime.block_on(engine::run(name, load, extra, progress))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    anyhow::ensure!(report.is_clean(), "the run was not clean (see the report)");
    Ok(())
}

fn print_persist(report: &persist::PersistReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", report.line());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Thousands of sockets need more than the usual 1024 descriptors.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.scenario {
        Scenario::Fanout(load) => run_load(&runtime, "fanout", &load, Extra::None, cli.json)?,
        Scenario::Churn(a) => run_load(
            &runtime,
            "churn",
            &a.load,
            Extra::Churn {
                per_sec: a.churn_rate,
            },
            cli.json,
        )?,
        Scenario::Durable(a) => run_load(
            &runtime,
            "durable",
            &a.load,
            Extra::ClosedLoop { window: a.window },
            cli.json,
        )?,
        Scenario::Resume(a) => run_load(
            &runtime,
            "resume",
            &a.load,
            Extra::Resume {
                per_sec: a.resume_rate,
            },
            cli.json,
        )?,
        Scenario::Flood(a) => run_load(
            &runtime,
            "flood",
            &a.load,
            Extra::Flood {
                connections: a.flooders,
                per_sec: a.flood_rate,
            },
            cli.json,
        )?,
        Scenario::Idle(opts) => {
            let report = runtime.block_on(idle::run(&opts))?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            anyhow::ensure!(report.failed == 0, "{} connections failed", report.failed);
        }
        Scenario::PersistFill(opts) => {
            let report = runtime.block_on(persist::fill(&opts))?;
            print_persist(&report, cli.json)?;
        }
        Scenario::PersistWait(opts) => {
            let report = runtime.block_on(persist::wait(&opts))?;
            print_persist(&report, cli.json)?;
        }
        Scenario::Floor(opts) => {
            let report = loadtest::floor::run(&opts)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
    }
    Ok(())
}
