//! `persister`: parses configuration, sets up logging, binds the admin port, runs.

use anyhow::Context;
use clap::Parser;
use persister::Config;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_from_env("EASEL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    let admin_listen = config.admin_listen;
    let settings = match config.into_settings() {
        Ok(s) => s,
        Err(err) => {
            eprintln!("persister: {err}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let admin = tokio::net::TcpListener::bind(admin_listen)
            .await
            .with_context(|| {
                format!("binding EASEL_ADMIN_LISTEN (--admin-listen) {admin_listen}")
            })?;
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                if let Ok(mut term) = signal(SignalKind::terminate()) {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                } else {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutdown signal received; finishing the current batch");
            signal.cancel();
        });
        persister::run(settings, admin, shutdown).await?;
        Ok(())
    })
}
