//! The `gateway` binary itself: configuration errors, standalone start,
//! SIGTERM.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::ws::{Connect, WsClient};

fn gateway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gateway"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    c
}

#[test]
fn bad_configuration_exits_non_zero_naming_the_setting() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "EASEL_JWT_SECRET"),
        (
            &[("EASEL_JWT_SECRET", SECRET), ("EASEL_MAX_CONNECTIONS", "0")],
            "EASEL_MAX_CONNECTIONS",
        ),
        (
            &[
                ("EASEL_JWT_SECRET", SECRET),
                ("EASEL_OUTBOUND_QUEUE", "lots"),
            ],
            "outbound-queue",
        ),
        (
            &[
                ("EASEL_JWT_SECRET", SECRET),
                ("EASEL_ALLOWED_ORIGINS", "example.com"),
            ],
            "EASEL_ALLOWED_ORIGINS",
        ),
        (&[("EASEL_JWT_SECRET", "short")], "EASEL_JWT_SECRET"),
    ];
    for (env, needle) in cases {
        let out = gateway().envs(env.iter().copied()).output().unwrap();
        assert!(!out.status.success(), "{env:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{env:?}: {stderr}");
    }
}

#[test]
fn token_subcommand_mints_a_token_the_gateway_accepts() {
    let out = gateway()
        .env("EASEL_JWT_SECRET", SECRET)
        .args(["token", "--sub", "ada", "--name", "Ada"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let settings = shared::auth::AuthSettings {
        algorithm: shared::auth::JwtAlgorithm::Hs256,
        key: shared::auth::VerifyKey::Secret(SECRET.as_bytes().to_vec()),
        issuer: None,
        audience: None,
        leeway_secs: 0,
        max_lifetime_secs: None,
    };
    let id = shared::auth::TokenVerifier::new(&settings)
        .unwrap()
        .verify(token.trim())
        .unwrap();
    assert_eq!(id.user_id, "ada");
    assert_eq!(id.name.as_deref(), Some("Ada"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_with_1012_and_exits_cleanly() {
    let port = testkit::free_port();
    let mut child = gateway()
        .env("EASEL_JWT_SECRET", SECRET)
        .env("EASEL_LISTEN", format!("127.0.0.1:{port}"))
        .env("EASEL_ADMIN_LISTEN", "127.0.0.1:0")
        .env("EASEL_SHUTDOWN_GRACE_SECS", "5")
        .env("EASEL_DRAIN_DELAY_MS", "0")
        .env("EASEL_DRAIN_WINDOW_MS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        match WsClient::connect(addr, Connect::token(&token("t"))).await {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "gateway never accepted: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(matches!(
        client.recv().await,
        shared::protocol::ServerMessage::Welcome(_)
    ));
    join_ok(&mut client, 0, "board", false).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    assert_eq!(client.closed().await.code, Some(1012));
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "gateway did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status {exit}");
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(log.contains("standalone"), "mode not logged: {log}");
    assert!(log.contains("shutdown signal received"), "{log}");
}
