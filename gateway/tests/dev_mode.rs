//! Development mode: static files (the demo) at `/`, and `GET /dev/token`
//! minting tokens with the generated secret, which no gateway with a real
//! secret offers.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use clap::Parser;
use common::*;
use gateway::Config;
use shared::auth::Role;
use testkit::http::get;
use testkit::ws::{Connect, WsClient};

fn dev_settings(static_dir: &std::path::Path) -> gateway::Settings {
    Config::try_parse_from([
        "gateway".to_owned(),
        "--dev".to_owned(),
        format!("--static-dir={}", static_dir.display()),
    ])
    .unwrap()
    .into_settings()
    .unwrap()
}

#[tokio::test]
async fn a_dev_gateway_serves_the_static_files_and_mints_tokens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(dir.path().join("app.js"), "console.log(1)").unwrap();
    let g = Gateway::start(dev_settings(dir.path())).await;
    let (status, _, body) = get(g.addr, "/", None).await;
    assert_eq!(
        (status, body.as_slice()),
        (200, b"<h1>demo</h1>".as_slice())
    );
    let (status, _, body) = get(g.addr, "/app.js", None).await;
    assert_eq!(
        (status, body.as_slice()),
        (200, b"console.log(1)".as_slice())
    );
    assert_eq!(get(g.addr, "/missing.js", None).await.0, 404);

    let (status, _, body) = get(g.addr, "/dev/token?user=ann&name=Ann&role=gm", None).await;
    assert_eq!(status, 200);
    let token: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let (mut c, welcome) =
        WsClient::connect_ok(g.addr, Connect::token(token["token"].as_str().unwrap())).await;
    assert_eq!(
        (welcome.user.id.as_str(), welcome.user.name.as_deref()),
        ("ann", Some("Ann"))
    );
    c.send(&join(1, "lobby", false)).await;
    assert_eq!(expect_joined(&mut c, 1).await.role, Role::Gm);

    for bad in [
        "/dev/token",
        "/dev/token?user=",
        "/dev/token?user=a&role=king",
    ] {
        assert_eq!(get(g.addr, bad, None).await.0, 400, "{bad}");
    }
    g.stop().await;
}

#[tokio::test]
async fn a_gateway_with_a_real_secret_mints_nothing_and_serves_no_files() {
    let g = Gateway::start(settings("plain", None, &[])).await;
    assert_eq!(get(g.addr, "/dev/token?user=ann", None).await.0, 404);
    assert_eq!(get(g.addr, "/", None).await.0, 404);
    g.stop().await;
}

#[test]
fn a_static_dir_that_does_not_exist_is_refused_at_start() {
    let err = Config::try_parse_from(["gateway", "--dev", "--static-dir=/nonexistent/easel"])
        .unwrap()
        .into_settings()
        .unwrap_err();
    assert!(err.to_string().contains("EASEL_STATIC_DIR"), "{err}");
}
