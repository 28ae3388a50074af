//! Presence on Redis: entries of several canvases expired in one call
//! (a refresh, or leaves gathered together) each get their new expiry, an
//! entry that is not there is not added, and a sweep then finds those that
//! lapsed.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use shared::CanvasId;
use shared::auth::Role;
use std::time::Duration;
use store::presence::entry;
use store::{EntryInfo, PresenceStore, RedisPool};
use testkit::RedisServer;

fn info() -> EntryInfo {
    EntryInfo {
        name: None,
        role: Role::Player,
        since: 0,
        activity: None,
        gm_only: false,
    }
}

/// The entry's score, by `redis-cli -c` (which follows a cluster's
/// redirections to the node holding the key).
async fn score(redis: &RedisServer, key: &str, member: &str) -> Option<u64> {
    let out = std::process::Command::new("redis-cli")
        .args(["-c", "-p", &redis.port().to_string(), "ZSCORE", key, member])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let text = text.trim();
    (!text.is_empty()).then(|| text.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_several_canvases_expire_together_and_only_existing_ones() {
    let redis = RedisServer::start();
    let pool = RedisPool::connect(redis.url(), 2, Duration::from_secs(2))
        .await
        .unwrap();
    let store = PresenceStore::redis(pool);
    let (a, b) = (CanvasId::new("pa").unwrap(), CanvasId::new("pb").unwrap());
    let (a1, a2, b1) = (
        entry("u1", "n", 1),
        entry("u2", "n", 2),
        entry("u3", "n", 3),
    );
    let later = shared::now_ms() + 30_000;
    for (canvas, e) in [(&a, &a1), (&a, &a2), (&b, &b1)] {
        store.enter(canvas, e, &info(), later).await.unwrap();
    }
    // Interleaved canvases, and one entry nobody entered.
    let ghost = entry("u4", "n", 4);
    let soon = shared::now_ms() + 20_000;
    let batch = [
        (a.clone(), a1.clone()),
        (b.clone(), b1.clone()),
        (a.clone(), a2.clone()),
        (b.clone(), ghost.clone()),
    ];
    store.expire(&batch, soon).await.unwrap();
    let (pa, pb) = (
        shared::keys::canvas_presence(&a),
        shared::keys::canvas_presence(&b),
    );
    assert_eq!(score(&redis, &pa, &a1).await, Some(soon));
    assert_eq!(score(&redis, &pa, &a2).await, Some(soon));
    assert_eq!(score(&redis, &pb, &b1).await, Some(soon));
    assert_eq!(score(&redis, &pb, &ghost).await, None, "XX: not added");

    // Canvas a's entries lapse; a sweep finds both users gone, b's stays.
    let past = shared::now_ms() - 1;
    store
        .expire(&[(a.clone(), a1), (a.clone(), a2)], past)
        .await
        .unwrap();
    let (mut left, live) = store.sweep(&a).await.unwrap();
    left.sort();
    assert_eq!((left, live), (vec!["u1".to_owned(), "u2".to_owned()], 0));
    let (left, live) = store.sweep(&b).await.unwrap();
    assert_eq!((left, live), (Vec::<String>::new(), 1));
}
