//! Presence: who is on a canvas, across gateways; a user with several tabs
//! counts once and leaves with the last; a quick reconnect is no leave/join
//! pair; a gateway killed with SIGKILL leaves no ghost beyond the TTL.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::RequestId;
use shared::protocol::{
    AckResult, ActivityEvent, ActivitySend, ActivityState, ClientMessage, PresenceList,
    PresenceRequest, PresentUser, ServerMessage,
};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::RedisServer;
use testkit::ws::{Connect, WsClient};

const FAST: [&str; 4] = [
    "--presence-grace-ms=300",
    "--presence-sweep-ms=100",
    "--presence-ttl-secs=2",
    "--presence-events-max=500",
];

/// Joins `canvas` and returns the presence list from the ack.
async fn join_presence(c: &mut WsClient, id: u64, canvas: &str) -> Vec<PresentUser> {
    c.send(&join(id, canvas, false)).await;
    match expect_ack(c, id).await {
        Some(AckResult::Joined(j)) => j.presence,
        other => panic!("{other:?}"),
    }
}

fn ids(users: &[PresentUser]) -> Vec<(&str, u32)> {
    users
        .iter()
        .map(|u| (u.id.as_str(), u.connections))
        .collect()
}

async fn rest_presence(addr: SocketAddr, canvas: &str) -> PresenceList {
    let (status, _, body) = http_get(
        addr,
        &format!("/api/canvases/{canvas}/presence"),
        Some(&token("rest")),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_arrive_once_leave_with_their_last_connection_across_gateways() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("pr-a", Some(&redis), &FAST)).await;
    let b = Gateway::start(settings("pr-b", Some(&redis), &FAST)).await;
    presence_scenario(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_arrive_once_leave_with_their_last_connection_across_gateways_on_a_redis_cluster() {
    let cluster = testkit::RedisCluster::start();
    let url = Some(cluster.url());
    let a = Gateway::start(settings_at("pr-a-k", url.as_deref(), &FAST)).await;
    let b = Gateway::start(settings_at("pr-b-k", url.as_deref(), &FAST)).await;
    presence_scenario(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

async fn presence_scenario(a: &Gateway, b: &Gateway) {
    let mut ada = a.client("ada").await;
    assert_eq!(ids(&join_presence(&mut ada, 1, "p").await), [("ada", 1)]);

    let mut bob1 = b.client("bob").await;
    assert_eq!(
        ids(&join_presence(&mut bob1, 1, "p").await),
        [("ada", 1), ("bob", 1)]
    );
    match ada.recv().await {
        ServerMessage::UserJoined(j) => {
            assert_eq!(j.user.id, "bob");
            assert_eq!(j.user.name.as_deref(), Some("bob name"));
            assert_eq!(j.user.connections, 1);
        }
        other => panic!("{other:?}"),
    }
    // A second tab, on the other gateway: bob is there once, twice connected.
    let mut bob2 = a.client("bob").await;
    join_presence(&mut bob2, 1, "p").await;
    let listed = rest_presence(b.addr, "p").await;
    assert_eq!(ids(&listed.users), [("ada", 1), ("bob", 2)]);
    // On request over the socket too.
    ada.send(&ClientMessage::Presence(PresenceRequest {
        id: Some(RequestId::Num(5)),
        canvas: canvas("p"),
    }))
    .await;
    match expect_ack(&mut ada, 5).await {
        Some(AckResult::Presence(p)) => assert_eq!(ids(&p.users), [("ada", 1), ("bob", 2)]),
        other => panic!("{other:?}"),
    }

    // Closing one tab is no departure, even after the grace period.
    drop(bob1);
    testkit::eventually(Duration::from_secs(5), "bob down to one tab", || async {
        ids(&rest_presence(a.addr, "p").await.users) == [("ada", 1), ("bob", 1)]
    })
    .await;
    bob2.send(&chat(7, "p", "still here")).await;
    expect_ack(&mut bob2, 7).await;
    match ada.recv().await {
        ServerMessage::Chat(c) => assert_eq!(c.text, "still here"),
        other => panic!("no departure expected yet: {other:?}"),
    }

    // The last tab leaves: after the grace period, bob has left.
    let left_at = Instant::now();
    bob2.send(&leave(8, "p")).await;
    expect_ack(&mut bob2, 8).await;
    match ada.recv().await {
        ServerMessage::UserLeft(l) => assert_eq!(l.user, "bob"),
        other => panic!("{other:?}"),
    }
    assert!(
        left_at.elapsed() >= Duration::from_millis(300),
        "before the grace period"
    );
    assert_eq!(ids(&rest_presence(b.addr, "p").await.users), [("ada", 1)]);

    // A quick reconnect within the grace period is no leave/join pair.
    let mut carol = b.client("carol").await;
    join_presence(&mut carol, 1, "p").await;
    assert!(matches!(ada.recv().await, ServerMessage::UserJoined(j) if j.user.id == "carol"));
    drop(carol);
    let mut carol = a.client("carol").await;
    join_presence(&mut carol, 1, "p").await;
    testkit::eventually(
        Duration::from_secs(5),
        "the old tab's grace over",
        || async { ids(&rest_presence(a.addr, "p").await.users).contains(&("carol", 1)) },
    )
    .await;
    // Checking for an absence: give the sweeps (every 100 ms) time to
    // announce a departure if they were going to.
    tokio::time::sleep(Duration::from_millis(400)).await;
    carol.send(&chat(9, "p", "back")).await;
    expect_ack(&mut carol, 9).await;
    match ada.recv().await {
        ServerMessage::Chat(c) => assert_eq!(c.text, "back"),
        other => panic!("a quick reconnect produced {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateways_users_disappear_within_the_ttl() {
    let redis = RedisServer::start();
    let watcher_gw = Gateway::start(settings("pr-watch", Some(&redis), &FAST)).await;
    let (mut doomed, doomed_addr) =
        spawn_gateway_process("pr-doomed", &redis, testkit::free_port());
    let mut watcher = watcher_gw.client("watcher").await;
    join_presence(&mut watcher, 1, "k").await;

    // Until the doomed gateway listens (a deadline, polling).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut ghost = loop {
        match WsClient::connect(doomed_addr, Connect::token(&token("ghost"))).await {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "doomed gateway never up: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(matches!(ghost.recv().await, ServerMessage::Welcome(_)));
    join_presence(&mut ghost, 1, "k").await;
    assert!(matches!(watcher.recv().await, ServerMessage::UserJoined(j) if j.user.id == "ghost"));

    let killed = Instant::now();
    let _ = Command::new("kill")
        .args(["-9", &doomed.id().to_string()])
        .status();
    let _ = doomed.wait();
    match watcher.recv_within(Duration::from_secs(10)).await {
        Some(ServerMessage::UserLeft(l)) => assert_eq!(l.user, "ghost"),
        other => panic!("no departure for the dead gateway's user: {other:?}"),
    }
    // The bound: the TTL (2 s) plus a sweep interval, with slack.
    assert!(
        killed.elapsed() < Duration::from_millis(3500),
        "ghost lingered {:?}",
        killed.elapsed()
    );
    assert_eq!(
        ids(&rest_presence(watcher_gw.addr, "k").await.users),
        [("watcher", 1)]
    );
    drop(ghost);
    watcher_gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_works_the_same_standalone() {
    let g = Gateway::start(settings("pr-solo", None, &FAST)).await;
    let mut ada = g.client("ada").await;
    join_presence(&mut ada, 1, "s").await;
    let mut bob = g.client("bob").await;
    assert_eq!(
        ids(&join_presence(&mut bob, 1, "s").await),
        [("ada", 1), ("bob", 1)]
    );
    assert!(matches!(ada.recv().await, ServerMessage::UserJoined(j) if j.user.id == "bob"));
    drop(bob);
    match ada.recv().await {
        ServerMessage::UserLeft(l) => assert_eq!(l.user, "bob"),
        other => panic!("{other:?}"),
    }
    assert_eq!(ids(&rest_presence(g.addr, "s").await.users), [("ada", 1)]);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_limit_joins_get_a_count_and_no_events() {
    let g = Gateway::start(settings("pr-big", None, &["--presence-events-max=1"])).await;
    let mut ada = g.client("ada").await;
    ada.send(&join(1, "big", false)).await;
    match expect_ack(&mut ada, 1).await {
        Some(AckResult::Joined(j)) => {
            assert_eq!((ids(&j.presence), j.presence_count), (vec![("ada", 1)], 1))
        }
        other => panic!("{other:?}"),
    }
    let mut bob = g.client("bob").await;
    bob.send(&join(1, "big", false)).await;
    match expect_ack(&mut bob, 1).await {
        Some(AckResult::Joined(j)) => {
            assert!(j.presence.is_empty(), "list left out beyond the limit");
            assert_eq!(j.presence_count, 2);
        }
        other => panic!("{other:?}"),
    }
    // No user_joined either: ada's next message is bob's chat.
    bob.send(&chat(2, "big", "hi")).await;
    expect_ack(&mut bob, 2).await;
    assert!(matches!(ada.recv().await, ServerMessage::Chat(_)));
    // On request the list is whole.
    ada.send(&ClientMessage::Presence(PresenceRequest {
        id: Some(RequestId::Num(3)),
        canvas: canvas("big"),
    }))
    .await;
    match expect_ack(&mut ada, 3).await {
        Some(AckResult::Presence(p)) => assert_eq!(p.users.len(), 2),
        other => panic!("{other:?}"),
    }
    g.stop().await;
}

fn activity(
    id: u64,
    canvas: &str,
    state: ActivityState,
    at: Option<(f64, f64)>,
    object: Option<&str>,
) -> ClientMessage {
    ClientMessage::Activity(ActivitySend {
        id: Some(RequestId::Num(id)),
        canvas: shared::CanvasId::new(canvas).unwrap(),
        state,
        x: at.map(|p| p.0),
        y: at.map(|p| p.1),
        object: object.map(str::to_owned),
    })
}

/// The next `activity` event, passing over presence events.
async fn next_activity(c: &mut WsClient) -> ActivityEvent {
    loop {
        match c.recv().await {
            ServerMessage::Activity(e) => return e,
            ServerMessage::UserJoined(_) | ServerMessage::UserLeft(_) => {}
            other => panic!("expected activity, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_is_announced_and_listed_across_gateways() {
    let redis = RedisServer::start();
    // No user_joined/user_left here (events max 0): only activity.
    let a = Gateway::start(settings("act-a", Some(&redis), &FAST[..3])).await;
    let b = Gateway::start(settings("act-b", Some(&redis), &FAST[..3])).await;
    let mut ada = a.client("ada").await;
    join_presence(&mut ada, 1, "act").await;
    let mut bob = b.client("bob").await;
    join_presence(&mut bob, 1, "act").await;
    assert_eq!(
        rest_presence(b.addr, "act").await.users[0].activity,
        None,
        "no activity until one is said"
    );

    // Ada types on gateway a: bob on b hears it; the list says so.
    ada.send(&activity(2, "act", ActivityState::Typing, None, None))
        .await;
    expect_ack(&mut ada, 2).await;
    let e = next_activity(&mut bob).await;
    assert_eq!(
        (e.user.id.as_str(), e.activity.state),
        ("ada", ActivityState::Typing)
    );
    let listed = |list: &PresenceList| {
        list.users
            .iter()
            .find(|u| u.id == "ada")
            .and_then(|u| u.activity.clone())
    };
    assert_eq!(
        listed(&rest_presence(b.addr, "act").await).map(|a| a.state),
        Some(ActivityState::Typing)
    );

    // Editing at a position and an object, then idle from her second tab
    // (on b): the list shows the latest of her connections.
    ada.send(&activity(
        3,
        "act",
        ActivityState::Editing,
        Some((4.0, 5.5)),
        Some("tile-7"),
    ))
    .await;
    expect_ack(&mut ada, 3).await;
    let e = next_activity(&mut bob).await;
    assert_eq!(
        (e.activity.x, e.activity.y, e.activity.object.as_deref()),
        (Some(4.0), Some(5.5), Some("tile-7"))
    );
    let now = listed(&rest_presence(a.addr, "act").await).unwrap();
    assert_eq!((now.state, now.x), (ActivityState::Editing, Some(4.0)));
    let mut ada2 = b.client("ada").await;
    join_presence(&mut ada2, 1, "act").await;
    ada2.send(&activity(2, "act", ActivityState::Idle, None, None))
        .await;
    expect_ack(&mut ada2, 2).await;
    assert_eq!(
        next_activity(&mut bob).await.activity.state,
        ActivityState::Idle
    );
    // Her first tab hears it too: another connection of hers.
    assert_eq!(
        next_activity(&mut ada).await.activity.state,
        ActivityState::Idle
    );
    bob.send(&ClientMessage::Presence(PresenceRequest {
        id: Some(RequestId::Num(9)),
        canvas: shared::CanvasId::new("act").unwrap(),
    }))
    .await;
    match expect_ack(&mut bob, 9).await {
        Some(AckResult::Presence(list)) => {
            assert_eq!(listed(&list).map(|a| a.state), Some(ActivityState::Idle));
            let ada = list.users.iter().find(|u| u.id == "ada").unwrap();
            assert_eq!(ada.connections, 2, "still one user");
        }
        other => panic!("{other:?}"),
    }

    // Bad inputs: E007 or E010; nothing announced, the connection goes on.
    for (msg, code) in [
        (
            activity(10, "act", ActivityState::Editing, None, None),
            shared::ErrorCode::InvalidValue,
        ),
        (
            activity(11, "act", ActivityState::Typing, Some((1.0, 1.0)), None),
            shared::ErrorCode::InvalidValue,
        ),
        (
            activity(12, "act", ActivityState::Editing, Some((500.0, 1.0)), None),
            shared::ErrorCode::InvalidValue,
        ),
        (
            activity(13, "act", ActivityState::Editing, None, Some("bad id")),
            shared::ErrorCode::InvalidValue,
        ),
        (
            activity(14, "elsewhere", ActivityState::Typing, None, None),
            shared::ErrorCode::NotJoined,
        ),
    ] {
        ada.send(&msg).await;
        let e = expect_error(&mut ada).await;
        assert_eq!(e.code, code, "{msg:?}");
    }
    ada.send(&activity(15, "act", ActivityState::Active, None, None))
        .await;
    expect_ack(&mut ada, 15).await;
    assert_eq!(
        next_activity(&mut bob).await.activity.state,
        ActivityState::Active
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_disconnect_is_recorded_well_within_the_ttl() {
    // A 30 s TTL: a leave that was not recorded would linger that long.
    let g = Gateway::start(settings(
        "pr-storm",
        None,
        &[
            "--presence-grace-ms=300",
            "--presence-sweep-ms=100",
            "--presence-ttl-secs=30",
            "--redis-pool-size=2",
        ],
    ))
    .await;
    let mut watcher = g.client("watcher").await;
    join_presence(&mut watcher, 1, "storm").await;
    let mut members = Vec::new();
    for i in 0..200 {
        let mut c = g.client(&format!("m{i}")).await;
        c.send(&join(1, "storm", false)).await;
        assert!(matches!(
            expect_ack(&mut c, 1).await,
            Some(AckResult::Joined(_))
        ));
        members.push(c);
    }
    assert_eq!(rest_presence(g.addr, "storm").await.users.len(), 201);
    // Every member's socket closes at once.
    drop(members);
    let deadline = Duration::from_secs(8);
    testkit::eventually(deadline, "only the watcher is left", || async {
        ids(&rest_presence(g.addr, "storm").await.users) == [("watcher", 1)]
    })
    .await;
    let online = || async {
        let (status, _, body) = http_get(
            g.addr,
            "/api/users/online?ids=m0,m99,m199,watcher",
            Some(&token("rest")),
        )
        .await;
        assert_eq!(status, 200);
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["online"].clone()
    };
    testkit::eventually(deadline, "the members are offline", || async {
        online().await
            == serde_json::json!({"m0": false, "m99": false, "m199": false, "watcher": true})
    })
    .await;
    g.stop().await;
}
