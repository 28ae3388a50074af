//! Every kind of bad input over a real socket gets its documented error code
//! or close code, and a healthy client on the same canvas keeps receiving.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::codec::Encoding;
use shared::protocol::*;
use shared::{ErrorCode, RequestId};
use std::net::SocketAddr;
use testkit::ws::{Connect, TokenIn, WsClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// A sender and a watcher on "board"; `check` proves the watcher still
/// receives, in order.
struct Healthy {
    sender: WsClient,
    watcher: WsClient,
    n: u64,
}

impl Healthy {
    async fn new(addr: SocketAddr) -> Healthy {
        let mut sender = WsClient::connect_ok(addr, Connect::token(&token("sam")))
            .await
            .0;
        let mut watcher = WsClient::connect_ok(
            addr,
            Connect::token(&token("wendy")).with_encoding(Encoding::Msgpack),
        )
        .await
        .0;
        join_ok(&mut sender, 1, "board", false).await;
        join_ok(&mut watcher, 1, "board", false).await;
        Healthy {
            sender,
            watcher,
            n: 0,
        }
    }

    async fn check(&mut self, after: &str) {
        self.n += 1;
        let text = format!("still here {}", self.n);
        self.sender.send(&chat(1000 + self.n, "board", &text)).await;
        expect_ack(&mut self.sender, 1000 + self.n).await;
        match self.watcher.recv().await {
            ServerMessage::Chat(c) => assert_eq!(c.text, text, "watcher out of step after {after}"),
            other => panic!("watcher got {other:?} after {after}"),
        }
    }
}

async fn raw_text(c: &mut WsClient, s: &str) {
    c.send_raw(Message::Text(s.to_owned().into())).await;
}

async fn expect_code(c: &mut WsClient, code: ErrorCode, id: Option<u64>, case: &str) -> ErrorReply {
    let e = match c.recv().await {
        ServerMessage::Error(e) => e,
        other => panic!("{case}: expected error {code}, got {other:?}"),
    };
    assert_eq!(e.code, code, "{case}: {}", e.message);
    assert_eq!(e.id, id.map(RequestId::Num), "{case}");
    assert!(!e.message.is_empty(), "{case}");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recoverable_errors_get_codes_and_keep_the_connection() {
    let g = Gateway::start(settings(
        "bad",
        None,
        &["--max-canvases-per-connection=2", "--max-pixels-per-draw=4"],
    ))
    .await;
    let mut healthy = Healthy::new(g.addr).await;
    let mut m = WsClient::connect_ok(g.addr, Connect::token(&token("mallory")))
        .await
        .0;
    join_ok(&mut m, 1, "mal", false).await;

    let json_cases: &[(&str, &str, ErrorCode, Option<u64>)] = &[
        (
            "malformed json",
            "{not json",
            ErrorCode::InvalidMessage,
            None,
        ),
        (
            "json array",
            r#"["join", 1]"#,
            ErrorCode::InvalidMessage,
            None,
        ),
        (
            "unknown type",
            r#"{"type":"explode","id":11}"#,
            ErrorCode::InvalidMessage,
            Some(11),
        ),
        (
            "missing field",
            r#"{"type":"draw","id":12,"canvas":"mal"}"#,
            ErrorCode::InvalidMessage,
            Some(12),
        ),
        (
            "unknown field",
            r#"{"type":"chat","id":13,"canvas":"mal","text":"x","html":true}"#,
            ErrorCode::InvalidMessage,
            Some(13),
        ),
        (
            "wrong field type",
            r#"{"type":"chat","id":14,"canvas":"mal","text":5}"#,
            ErrorCode::InvalidMessage,
            Some(14),
        ),
        (
            "bad canvas id",
            r#"{"type":"join","id":15,"canvas":"no spaces"}"#,
            ErrorCode::InvalidMessage,
            Some(15),
        ),
        (
            "out of bounds pixel",
            r#"{"type":"draw","id":16,"canvas":"mal","pixels":[{"x":100,"y":0,"color":1}]}"#,
            ErrorCode::InvalidValue,
            Some(16),
        ),
        (
            "negative pixel",
            r#"{"type":"draw","id":17,"canvas":"mal","pixels":[{"x":-1,"y":0,"color":1}]}"#,
            ErrorCode::InvalidValue,
            Some(17),
        ),
        (
            "colour outside palette",
            r#"{"type":"draw","id":18,"canvas":"mal","pixels":[{"x":1,"y":1,"color":32}]}"#,
            ErrorCode::InvalidValue,
            Some(18),
        ),
        (
            "empty batch",
            r#"{"type":"draw","id":19,"canvas":"mal","pixels":[]}"#,
            ErrorCode::InvalidValue,
            Some(19),
        ),
        (
            "batch too long",
            r#"{"type":"draw","id":20,"canvas":"mal","pixels":[{"x":1,"y":1,"color":1},{"x":1,"y":1,"color":1},{"x":1,"y":1,"color":1},{"x":1,"y":1,"color":1},{"x":1,"y":1,"color":1}]}"#,
            ErrorCode::InvalidValue,
            Some(20),
        ),
        (
            "cursor off canvas",
            r#"{"type":"cursor","id":21,"canvas":"mal","x":-5,"y":1}"#,
            ErrorCode::InvalidValue,
            Some(21),
        ),
        (
            "empty chat",
            r#"{"type":"chat","id":22,"canvas":"mal","text":"  "}"#,
            ErrorCode::InvalidValue,
            Some(22),
        ),
        (
            "not joined",
            r#"{"type":"draw","id":23,"canvas":"elsewhere","pixels":[{"x":1,"y":1,"color":1}]}"#,
            ErrorCode::NotJoined,
            Some(23),
        ),
        (
            "chat not joined",
            r#"{"type":"chat","id":24,"canvas":"elsewhere","text":"hi"}"#,
            ErrorCode::NotJoined,
            Some(24),
        ),
    ];
    for (case, frame, code, id) in json_cases {
        raw_text(&mut m, frame).await;
        expect_code(&mut m, *code, *id, case).await;
        healthy.check(case).await;
    }

    let long = "a".repeat(2001);
    m.send(&chat(30, "mal", &long)).await;
    let e = expect_code(&mut m, ErrorCode::InvalidValue, Some(30), "too-long chat").await;
    assert!(e.message.contains("2000"));
    healthy.check("too-long chat").await;

    m.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    expect_code(&mut m, ErrorCode::InvalidMessage, None, "binary on json").await;
    healthy.check("binary on json").await;

    join_ok(&mut m, 31, "second", false).await;
    m.send(&join(32, "third", false)).await;
    expect_code(
        &mut m,
        ErrorCode::LimitReached,
        Some(32),
        "too many canvases",
    )
    .await;
    healthy.check("too many canvases").await;

    // The connection still works for valid commands after all of that.
    m.send(&draw(40, "mal", 5, 5, 5)).await;
    expect_ack(&mut m, 40).await;
    healthy.check("valid draw").await;

    // MessagePack connection: garbage, JSON text, and the array form.
    let mut mp = WsClient::connect_ok(
        g.addr,
        Connect::token(&token("mp")).with_encoding(Encoding::Msgpack),
    )
    .await
    .0;
    for (case, frame) in [
        (
            "msgpack garbage",
            Message::Binary(vec![0xc1, 0xff, 0x00].into()),
        ),
        (
            "msgpack array",
            Message::Binary(vec![0x92, 0x01, 0x02].into()),
        ),
        (
            "text on msgpack",
            Message::Text(r#"{"type":"ping"}"#.into()),
        ),
    ] {
        mp.send_raw(frame).await;
        expect_code(&mut mp, ErrorCode::InvalidMessage, None, case).await;
        healthy.check(case).await;
    }
    let unknown = rmp_serde_named(&serde_json::json!({"type": "nope", "id": 5}));
    mp.send_raw(Message::Binary(unknown.into())).await;
    expect_code(
        &mut mp,
        ErrorCode::InvalidMessage,
        Some(5),
        "msgpack unknown type",
    )
    .await;
    mp.send(&ClientMessage::Ping(Ping {
        id: Some(RequestId::Num(6)),
        ts: None,
    }))
    .await;
    assert!(matches!(mp.recv().await, ServerMessage::Pong(_)));
    healthy.check("msgpack cases").await;
    g.stop().await;
}

fn rmp_serde_named(v: &serde_json::Value) -> Vec<u8> {
    shared::codec::encode(Encoding::Msgpack, v).unwrap()
}

/// Connects with `opts`, optionally sends frames, and returns the close code
/// and the error codes received before it.
async fn closes_with(
    addr: SocketAddr,
    opts: Connect,
    frames: Vec<Message>,
) -> (Option<u16>, Vec<ErrorCode>) {
    let mut c = WsClient::connect(addr, opts).await.unwrap();
    for f in frames {
        // The server may close before everything is written.
        if c.try_send_raw(f).await.is_err() {
            break;
        }
    }
    let closed = c.closed().await;
    let codes = closed
        .before
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Error(e) => Some(e.code),
            _ => None,
        })
        .collect();
    (closed.code, codes)
}

fn no_token() -> Connect {
    Connect {
        token: TokenIn::None,
        ..Connect::token("")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_errors_close_with_their_documented_codes() {
    let g = Gateway::start(settings("fatal", None, &["--handshake-timeout-ms=300"])).await;
    let mut healthy = Healthy::new(g.addr).await;

    let (code, errors) = closes_with(
        g.addr,
        Connect::token(&token("big")),
        vec![Message::Text("x".repeat(70_000).into())],
    )
    .await;
    assert_eq!(code, Some(1009), "oversize frame");
    assert_eq!(errors, vec![ErrorCode::MessageTooLarge]);
    healthy.check("oversize frame").await;

    let (code, errors) = closes_with(
        g.addr,
        no_token(),
        vec![Message::Text(
            r#"{"type":"join","id":1,"canvas":"board"}"#.into(),
        )],
    )
    .await;
    assert_eq!(code, Some(4005), "command before auth");
    assert_eq!(errors, vec![ErrorCode::InvalidSession]);
    healthy.check("command before auth").await;

    let (code, errors) = closes_with(g.addr, Connect::token("not.a.jwt"), vec![]).await;
    assert_eq!(code, Some(4001), "bad token");
    assert_eq!(errors, vec![ErrorCode::AuthFailed]);
    healthy.check("bad token").await;

    let mut expired = shared::auth::MintClaims::for_user("old", 0);
    expired.exp = shared::now_ms() / 1000 - 3600;
    let expired = shared::auth::mint_hs256(SECRET.as_bytes(), &expired).unwrap();
    let (code, errors) = closes_with(g.addr, Connect::token(&expired), vec![]).await;
    assert_eq!(code, Some(4001), "expired token");
    assert_eq!(errors, vec![ErrorCode::AuthFailed]);
    healthy.check("expired token").await;

    let wrong_key = shared::auth::mint_hs256(
        b"some-other-secret-some-other-secret",
        &shared::auth::MintClaims::for_user("x", 60),
    )
    .unwrap();
    let hs = serde_json::json!({"type": "handshake", "token": wrong_key}).to_string();
    let (code, errors) = closes_with(g.addr, no_token(), vec![Message::Text(hs.into())]).await;
    assert_eq!(code, Some(4001), "bad token in handshake");
    assert_eq!(errors, vec![ErrorCode::AuthFailed]);
    healthy.check("bad handshake token").await;

    let (code, errors) = closes_with(g.addr, no_token(), vec![]).await;
    assert_eq!(code, Some(4002), "no handshake within the deadline");
    assert_eq!(errors, vec![ErrorCode::AuthFailed]);
    healthy.check("handshake timeout").await;

    let bad_utf8 = Frame::message(vec![0xff, 0xfe, 0xfd], OpCode::Data(Data::Text), true);
    let (code, _) = closes_with(
        g.addr,
        Connect::token(&token("utf8")),
        vec![Message::Frame(bad_utf8)],
    )
    .await;
    assert_eq!(code, Some(1007), "invalid utf-8");
    healthy.check("invalid utf-8").await;

    g.stop().await;
}

/// The HTTP status and JSON error code of a refused upgrade.
async fn refused(addr: SocketAddr, opts: Connect) -> (u16, String) {
    match WsClient::connect(addr, opts).await {
        Ok(_) => panic!("upgrade was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body: serde_json::Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            (
                resp.status().as_u16(),
                body["code"].as_str().unwrap().to_owned(),
            )
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upgrades_get_a_status_and_code() {
    let g = Gateway::start(settings("http", None, &[])).await;
    let mut healthy = Healthy::new(g.addr).await;

    let mut evil = Connect::token(&token("o"));
    evil.origin = Some("https://evil.example.com".into());
    assert_eq!(refused(g.addr, evil).await, (403, "E008".into()));
    let mut good = Connect::token(&token("o"));
    good.origin = Some("https://app.example.com".into());
    WsClient::connect_ok(g.addr, good).await;

    let mut proto = Connect::token(&token("p"));
    proto.subprotocol = Some("graphql-ws".into());
    assert_eq!(refused(g.addr, proto).await, (400, "E006".into()));

    let mut basic = no_token();
    basic.token = TokenIn::None;
    let basic_req = {
        // Authorization with another scheme.
        let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Basic Zm9vOmJhcg==\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(basic_req.starts_with("HTTP/1.1 401"), "{basic_req}");
    assert!(basic_req.contains("E002"));

    let plain_get = {
        let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(plain_get.starts_with("HTTP/1.1 426"), "{plain_get}");
    healthy.check("refused upgrades").await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_refuses_with_503_and_frees_on_close() {
    let g = Gateway::start(settings("limit", None, &["--max-connections=2"])).await;
    let a = g.client("a").await;
    let _b = g.client("b").await;
    assert_eq!(
        refused(g.addr, Connect::token(&token("c"))).await,
        (503, "E001".into())
    );
    drop(a);
    testkit::eventually(
        std::time::Duration::from_secs(5),
        "a's slot is freed",
        || async {
            WsClient::connect(g.addr, Connect::token(&token("c")))
                .await
                .is_ok()
        },
    )
    .await;
    g.stop().await;
}
