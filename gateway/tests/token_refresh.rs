//! A live connection's token: `refresh` replaces it before it expires; a
//! connection whose token's `exp` passes without one is closed with 4003.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::auth::{MintClaims, mint_hs256};
use shared::protocol::*;
use shared::{ErrorCode, RequestId};
use std::time::Duration;
use testkit::ws::{Connect, WsClient};

/// A token for `user` that expires `ttl` seconds from now.
fn short_token(user: &str, ttl: u64) -> String {
    mint_hs256(SECRET.as_bytes(), &MintClaims::for_user(user, ttl)).unwrap()
}

fn refresh(id: u64, token: String) -> ClientMessage {
    ClientMessage::Refresh(Handshake {
        id: Some(RequestId::Num(id)),
        token,
    })
}

async fn standalone() -> Gateway {
    Gateway::start(settings("g1", None, &["--jwt-leeway-secs=0"])).await
}

#[tokio::test]
async fn an_expired_token_closes_the_connection_with_4003() {
    let g = standalone().await;
    let (mut c, _) = WsClient::connect_ok(g.addr, Connect::token(&short_token("ada", 2))).await;
    join_ok(&mut c, 1, "lobby", false).await;
    let closed = c.closed().await;
    assert_eq!(closed.code, Some(4003), "closed: {closed:?}");
    let expired = closed.before.iter().any(|m| {
        matches!(m, ServerMessage::Error(e) if e.code == ErrorCode::AuthFailed && e.message.contains("expired"))
    });
    assert!(
        expired,
        "an E002 saying why came first: {:?}",
        closed.before
    );
    g.stop().await;
}

#[tokio::test]
async fn a_refreshed_token_keeps_the_connection_past_the_old_exp() {
    let g = standalone().await;
    let (mut c, _) = WsClient::connect_ok(g.addr, Connect::token(&short_token("ada", 2))).await;
    join_ok(&mut c, 1, "lobby", false).await;
    c.send(&refresh(2, short_token("ada", 600))).await;
    expect_ack(&mut c, 2).await;
    // Well past the first token's exp the connection still answers.
    let quiet = c.recv_within(Duration::from_secs(4)).await;
    assert!(quiet.is_none(), "nothing arrives, no close: {quiet:?}");
    c.send(&draw(3, "lobby", 1, 1, 2)).await;
    expect_ack(&mut c, 3).await;
    g.stop().await;
}

#[tokio::test]
async fn a_refresh_for_another_user_or_a_bad_token_closes_with_4001() {
    let g = standalone().await;
    for bad in [short_token("bob", 600), "not.a.token".to_owned()] {
        let mut c = g.client("ada").await;
        c.send(&refresh(1, bad)).await;
        let closed = c.closed().await;
        assert_eq!(closed.code, Some(4001), "closed: {closed:?}");
        let refused = closed.before.iter().any(|m| {
            matches!(m, ServerMessage::Error(e) if e.code == ErrorCode::AuthFailed && e.id == Some(RequestId::Num(1)))
        });
        assert!(refused, "an E002 for the refresh: {:?}", closed.before);
    }
    g.stop().await;
}
