//! Chat history by `before`: over REST and the socket, across gateways,
//! from the unpersisted tail in Redis and the persisted rest in Postgres,
//! with no message missing or repeated at the seam.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::ErrorCode;
use shared::RequestId;
use shared::protocol::*;
use testkit::{PostgresServer, RedisServer};

fn chat_history(id: u64, c: &str, before: Option<u64>, limit: Option<u32>) -> ClientMessage {
    ClientMessage::ChatHistory(ChatHistoryRequest {
        id: Some(RequestId::Num(id)),
        canvas: canvas(c),
        before,
        limit,
    })
}

/// Every page of `GET /api/canvases/{c}/chat` from the newest back, as
/// (seq, text), oldest first.
async fn all_pages(addr: std::net::SocketAddr, c: &str, limit: usize) -> Vec<(u64, String)> {
    let t = token("reader");
    let mut before: Option<u64> = None;
    let mut pages = Vec::new();
    loop {
        let path = match before {
            Some(b) => format!("/api/canvases/{c}/chat?before={b}&limit={limit}"),
            None => format!("/api/canvases/{c}/chat?limit={limit}"),
        };
        let (status, _, body) = http_get(addr, &path, Some(&t)).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let page: ChatPage = serde_json::from_slice(&body).unwrap();
        assert!(page.messages.len() <= limit);
        let got: Vec<(u64, String)> = page
            .messages
            .iter()
            .map(|m| (m.seq.unwrap(), m.text.clone()))
            .collect();
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "oldest first");
        pages.push(got);
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
        assert!(pages.len() < 1000, "paging does not end");
    }
    pages.into_iter().rev().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_pages_back_across_redis_and_postgres_on_two_gateways() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    let db = format!("--database-url={}", pg.url());
    let flags = ["--backlog-limit=10000", "--auto-create-canvases", &db];
    let a = Gateway::start(settings("a", Some(&redis), &flags)).await;
    let b = Gateway::start(settings("b", Some(&redis), &flags)).await;
    let persister = RunningPersister::start(&redis, &pg, &["--keep-events=20"]).await;

    // Chat among many draws, so pages must skip the draws.
    let mut w = a.client("writer").await;
    join_ok(&mut w, 0, "talk", false).await;
    let mut sent = Vec::new();
    let mut id = 0;
    for i in 0..240u64 {
        id += 1;
        if i % 4 == 0 {
            let text = format!("<b>message {i}</b> & \"quotes\"");
            w.send(&chat(id, "talk", &text)).await;
            match expect_ack(&mut w, id).await {
                Some(AckResult::Published(p)) => sent.push((p.seq, text)),
                other => panic!("{other:?}"),
            }
        } else {
            w.send(&draw(id, "talk", (i % 100) as i64, 1, 3)).await;
            expect_ack(&mut w, id).await;
        }
    }
    // Wait until Redis has trimmed what Postgres holds: the oldest chat is
    // then only in Postgres.
    wait_trimmed(&redis, &canvas("talk"), 100).await;
    // With the persister stopped, newer chat is only in Redis.
    persister.stop().await;
    let mut w2 = b.client("writer2").await;
    join_ok(&mut w2, 0, "talk", false).await;
    for i in 0..15u64 {
        let text = format!("late {i}");
        w2.send(&chat(i + 1, "talk", &text)).await;
        match expect_ack(&mut w2, i + 1).await {
            Some(AckResult::Published(p)) => sent.push((p.seq, text)),
            other => panic!("{other:?}"),
        }
        w2.send(&draw(100 + i, "talk", 1, 1, 1)).await;
        expect_ack(&mut w2, 100 + i).await;
    }

    // Paging from either gateway yields every message once, in order, as
    // the text it was sent (clients render it as text).
    for (g, limit) in [(&a, 7), (&b, 13), (&a, 1000)] {
        assert_eq!(
            all_pages(g.addr, "talk", limit).await,
            sent,
            "limit {limit}"
        );
    }

    // The socket: the newest 5 before a seam-crossing point.
    let mut r = b.client("reader").await;
    join_ok(&mut r, 0, "talk", false).await;
    let pivot = sent[sent.len() - 17].0;
    r.send(&chat_history(1, "talk", Some(pivot), Some(5))).await;
    let page = match expect_ack(&mut r, 1).await {
        Some(AckResult::Chat(page)) => page,
        other => panic!("{other:?}"),
    };
    let older: Vec<(u64, String)> = sent
        .iter()
        .filter(|(seq, _)| *seq < pivot)
        .cloned()
        .collect();
    let expected = older[older.len() - 5..].to_vec();
    let got: Vec<(u64, String)> = page
        .messages
        .iter()
        .map(|m| (m.seq.unwrap(), m.text.clone()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(page.next_before, Some(expected[0].0));
    assert_eq!(page.messages[0].author.id, "writer");

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_standalone_and_its_bad_inputs() {
    let g = Gateway::start(settings("chat-standalone", None, &[])).await;
    let mut c = g.client("solo").await;
    join_ok(&mut c, 0, "s", false).await;
    for i in 1..=4 {
        c.send(&chat(i, "s", &format!("m{i}"))).await;
        expect_ack(&mut c, i).await;
        c.send(&draw(10 + i, "s", 1, 1, 1)).await;
        expect_ack(&mut c, 10 + i).await;
    }
    let texts: Vec<String> = all_pages(g.addr, "s", 3)
        .await
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(texts, ["m1", "m2", "m3", "m4"]);

    // An empty canvas has an empty page and nothing older.
    let t = token("reader");
    let (status, _, body) = http_get(g.addr, "/api/canvases/empty/chat", Some(&t)).await;
    assert_eq!(status, 200);
    let page: ChatPage = serde_json::from_slice(&body).unwrap();
    assert!(page.messages.is_empty());
    assert_eq!(page.next_before, None);

    for (path, bearer, status, code) in [
        ("/api/canvases/s/chat", None, 401, "E002"),
        (
            "/api/canvases/s/chat?limit=0",
            Some(t.as_str()),
            400,
            "E007",
        ),
        (
            "/api/canvases/s/chat?limit=1001",
            Some(t.as_str()),
            400,
            "E007",
        ),
        ("/api/canvases/bad%20id/chat", Some(t.as_str()), 400, "E006"),
        // Malformed query strings get the API's JSON error, not plain text.
        (
            "/api/canvases/s/chat?before=abc",
            Some(t.as_str()),
            400,
            "E006",
        ),
        (
            "/api/canvases/s/chat?limit=-1",
            Some(t.as_str()),
            400,
            "E006",
        ),
        (
            "/api/canvases/s/events?since=x",
            Some(t.as_str()),
            400,
            "E006",
        ),
        ("/api/users/online", Some(t.as_str()), 400, "E006"),
    ] {
        let (got, _, body) = http_get(g.addr, path, bearer).await;
        assert_eq!(got, status, "{path}");
        let err: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(err["code"], code, "{path}");
    }

    // Over the socket: not joined, bad limit; the connection stays usable.
    c.send(&chat_history(20, "elsewhere", None, None)).await;
    let e = expect_error(&mut c).await;
    assert_eq!(
        (e.code, e.id),
        (ErrorCode::NotJoined, Some(RequestId::Num(20)))
    );
    c.send(&chat_history(21, "s", None, Some(0))).await;
    let e = expect_error(&mut c).await;
    assert_eq!(e.code, ErrorCode::InvalidValue);
    c.send(&chat_history(22, "s", Some(3), Some(10))).await;
    match expect_ack(&mut c, 22).await {
        Some(AckResult::Chat(page)) => {
            let texts: Vec<&str> = page.messages.iter().map(|m| m.text.as_str()).collect();
            assert_eq!(texts, ["m1"]);
            assert_eq!(page.next_before, None);
        }
        other => panic!("{other:?}"),
    }
    g.stop().await;
}
