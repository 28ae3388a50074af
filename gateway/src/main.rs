//! `gateway`: parses configuration, sets up logging, binds, and runs.

use anyhow::Context;
use clap::Parser;
use gateway::{Command, Config, LogFormat};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if let Some(Command::Token {
        sub,
        name,
        ttl_secs,
        admin,
    }) = &config.command
    {
        let secret = config
            .jwt_secret
            .as_deref()
            .context("EASEL_JWT_SECRET (--jwt-secret) is required to mint a token")?;
        let mut claims = shared::auth::MintClaims::for_user(sub, *ttl_secs);
        claims.name = name.clone();
        claims.admin = *admin;
        println!("{}", shared::auth::mint_hs256(secret.as_bytes(), &claims)?);
        return Ok(());
    }
    if let Some(Command::SettingsTable) = &config.command {
        print!("{}", gateway::settings_table());
        return Ok(());
    }
    init_tracing(config.log_format);
    // Each connection is a descriptor; lift the soft limit to the hard one.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open file limit"),
        Err(err) => tracing::warn!(error = %err, "could not raise the open file limit"),
    }
    let settings = match config.clone().into_settings() {
        Ok(s) => s,
        Err(err) => {
            eprintln!("gateway: {err}");
            std::process::exit(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        builder.worker_threads(config.worker_threads);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = bind(config.listen)
            .with_context(|| format!("binding EASEL_LISTEN (--listen) {}", config.listen))?;
        let admin = tokio::net::TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| {
                format!(
                    "binding EASEL_ADMIN_LISTEN (--admin-listen) {}",
                    config.admin_listen
                )
            })?;
        let shutdown = CancellationToken::new();
        tokio::spawn(signal_shutdown(shutdown.clone()));
        gateway::run(settings, listener, admin, shutdown).await?;
        Ok(())
    })
}

/// Pending connections the kernel queues before accept; tokio's default
/// (1024) overflows during a reconnect wave, costing clients a 1 s SYN retry.
/// The kernel caps it at net.core.somaxconn.
const LISTEN_BACKLOG: u32 = 8192;

fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("EASEL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Cancels `shutdown` on SIGTERM or ctrl-c.
async fn signal_shutdown(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM; only ctrl-c stops the gateway");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
    shutdown.cancel();
}
