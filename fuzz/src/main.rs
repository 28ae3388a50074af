//! `cargo run --release -p fuzz -- [--target client|bus|token] [--executions N] [--seed S]`:
//! fuzzes every target (or one) from `fuzz/corpus/`, prints executions and
//! findings, saves each crashing input under `fuzz/crashes/`, and exits 1
//! if there was one.

use clap::Parser;
use fuzz::{Target, corpus, fuzz};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// One target (client, bus, token); all by default.
    #[arg(long)]
    target: Option<String>,
    /// Mutated inputs per target.
    #[arg(long, default_value_t = 1_000_000)]
    executions: u64,
    /// RNG seed (a run is reproducible from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus"))]
    corpus: PathBuf,
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/crashes"))]
    crashes: PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut failed = false;
    for target in Target::ALL {
        if args.target.as_deref().is_some_and(|t| t != target.name()) {
            continue;
        }
        let seeds = corpus(target, &args.corpus);
        let started = Instant::now();
        let found = fuzz(target, &seeds, args.executions, args.seed);
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{}: {} executions ({} corpus entries) in {secs:.1} s, {:.0}/s, {} crashes",
            target.name(),
            found.executions,
            seeds.len(),
            found.executions as f64 / secs,
            found.crashes.len()
        );
        for (i, input) in found.crashes.iter().enumerate() {
            failed = true;
            let _ = std::fs::create_dir_all(&args.crashes);
            let path = args
                .crashes
                .join(format!("{}-{}-{i}", target.name(), args.seed));
            if let Err(err) = std::fs::write(&path, input) {
                eprintln!("could not save {}: {err}", path.display());
            } else {
                println!("  crash saved to {}", path.display());
            }
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
