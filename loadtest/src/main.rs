//! `loadtest`: flags, then one scenario, then a report.

use clap::{Parser, Subcommand};
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
    /// Hold N idle, authenticated connections and measure the gateway's memory per connection.
    Idle(IdleOptions),
    /// Fill canvas logs through the durable publish script (at --rate, or flat out).
    PersistFill(PersistOptions),
    /// Wait for the persister to catch up and report its drain rate.
    PersistWait(PersistOptions),
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
    }
    Ok(())
}
