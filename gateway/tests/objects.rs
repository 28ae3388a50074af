//! Objects and tiles across gateways: create, per-property updates, move,
//! delete, likes (once per user), ownership, fog regions that only gms
//! see (everyone else gets `hidden` in their place), clear, the objects
//! snapshot, bad inputs, and a rebuild from Postgres after Redis lost them.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shared::auth::{MintClaims, Role, mint_hs256};
use shared::protocol::*;
use shared::{CanvasId, ErrorCode, RequestId};
use std::time::Duration;
use testkit::ws::{Connect, WsClient};
use testkit::{PostgresServer, RedisServer, eventually};

fn token_as(user: &str, role: Role) -> String {
    let mut claims = MintClaims::for_user(user, 600);
    claims.role = Some(role);
    mint_hs256(SECRET.as_bytes(), &claims).unwrap()
}

async fn client_as(g: &Gateway, user: &str, role: Role) -> WsClient {
    let (mut c, _) = WsClient::connect_ok(g.addr, Connect::token(&token_as(user, role))).await;
    join_ok(&mut c, 0, "t", false).await;
    c
}

fn c() -> CanvasId {
    canvas("t")
}

fn id(n: u64) -> Option<RequestId> {
    Some(RequestId::Num(n))
}

fn props(pairs: &[(&str, serde_json::Value)]) -> Props {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn create(n: u64, kind: &str, x: f64, p: Props) -> ClientMessage {
    ClientMessage::ObjectCreate(ObjectCreate {
        id: id(n),
        canvas: c(),
        key: None,
        kind: kind.into(),
        x,
        y: 5.0,
        w: 2.0,
        h: 2.0,
        props: p,
    })
}

fn update(n: u64, object: &str, p: Props) -> ClientMessage {
    ClientMessage::ObjectUpdate(ObjectUpdate {
        id: id(n),
        canvas: c(),
        key: None,
        object: object.into(),
        props: p,
    })
}

fn mv(n: u64, object: &str, x: f64, y: f64) -> ClientMessage {
    ClientMessage::ObjectMove(ObjectMove {
        id: id(n),
        canvas: c(),
        key: None,
        object: object.into(),
        x,
        y,
        w: Some(4.0),
        h: None,
    })
}

fn delete(n: u64, object: &str) -> ClientMessage {
    ClientMessage::ObjectDelete(ObjectRef {
        id: id(n),
        canvas: c(),
        key: None,
        object: object.into(),
    })
}

fn like(n: u64, object: &str) -> ClientMessage {
    ClientMessage::ObjectLike(ObjectRef {
        id: id(n),
        canvas: c(),
        key: None,
        object: object.into(),
    })
}

fn whole(n: u64, clear: bool) -> ClientMessage {
    if clear {
        ClientMessage::Clear(CanvasRequest {
            id: id(n),
            canvas: c(),
            key: None,
        })
    } else {
        ClientMessage::Objects(ObjectsRequest {
            id: id(n),
            canvas: c(),
            after: None,
        })
    }
}

/// Sends a command and returns its reply, passing over the events that
/// arrive first (actors here are also members of the canvas).
async fn reply(client: &mut WsClient, msg: &ClientMessage) -> ServerMessage {
    client.send(msg).await;
    loop {
        match client.recv().await {
            ServerMessage::Ack(a) if Some(&a.id) == msg.id() => return ServerMessage::Ack(a),
            ServerMessage::Error(e) if e.id.as_ref() == msg.id() => {
                return ServerMessage::Error(e);
            }
            ServerMessage::Ack(_) | ServerMessage::Error(_) => panic!("a reply to another command"),
            _ => {}
        }
    }
}

/// The ack's result, or the refusal.
async fn ack(client: &mut WsClient, msg: ClientMessage) -> Option<AckResult> {
    match reply(client, &msg).await {
        ServerMessage::Ack(a) => a.result,
        other => panic!("{}: {other:?}", msg.kind()),
    }
}

/// Sends a command expected to publish; returns (seq, created object id).
async fn published(client: &mut WsClient, msg: ClientMessage) -> (u64, Option<String>) {
    let kind = msg.kind();
    match ack(client, msg).await {
        Some(AckResult::Published(p)) => (p.seq, p.object),
        other => panic!("{kind} not published: {other:?}"),
    }
}

/// Sends a command expected to be refused with `code`.
async fn refused(client: &mut WsClient, msg: ClientMessage, code: ErrorCode) {
    match reply(client, &msg).await {
        ServerMessage::Error(e) => assert_eq!(e.code, code, "{}: {}", msg.kind(), e.message),
        other => panic!("{} not refused: {other:?}", msg.kind()),
    }
}

async fn objects_of(client: &mut WsClient, n: u64) -> ObjectsPage {
    match ack(client, whole(n, false)).await {
        Some(AckResult::Objects(page)) => page,
        other => panic!("{other:?}"),
    }
}

/// The next event's kind and seq.
async fn next_event(client: &mut WsClient) -> (String, Option<u64>, ServerMessage) {
    let msg = client.recv().await;
    let seq = match &msg {
        ServerMessage::ObjectCreated(e) => e.seq,
        ServerMessage::ObjectUpdated(e) => e.seq,
        ServerMessage::ObjectMoved(e) => e.seq,
        ServerMessage::ObjectDeleted(e) | ServerMessage::ObjectLiked(e) => e.seq,
        ServerMessage::Cleared(e) => e.seq,
        ServerMessage::Hidden(e) => e.seq,
        ServerMessage::Draw(e) => e.seq,
        other => panic!("unexpected {other:?}"),
    };
    (msg.kind().to_owned(), seq, msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_across_gateways_with_owners_likes_fog_and_clear() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings(
        "obj-a",
        Some(&redis),
        &["--max-objects-per-canvas=3"],
    ))
    .await;
    let b = Gateway::start(settings("obj-b", Some(&redis), &[])).await;
    let mut ann = client_as(&a, "ann", Role::Player).await;
    let mut bob = client_as(&b, "bob", Role::Player).await;
    let mut spec = client_as(&a, "spec", Role::Spectator).await;
    let mut gm = client_as(&b, "gm", Role::Gm).await;
    // Observers that never act, one per role and gateway mix.
    let mut eye_player = client_as(&a, "eye-p", Role::Player).await;
    let mut eye_spec = client_as(&b, "eye-s", Role::Spectator).await;
    let mut gm_eye = client_as(&a, "gm", Role::Gm).await;

    // Ann creates a token; everyone on both gateways sees it.
    let hp = props(&[("hp", 10.into()), ("name", "orc <b>".into())]);
    let (s1, obj) = published(&mut ann, create(1, "token", 10.0, hp.clone())).await;
    let obj = obj.unwrap();
    for watcher in [&mut eye_player, &mut eye_spec, &mut gm_eye] {
        match next_event(watcher).await {
            (_, Some(seq), ServerMessage::ObjectCreated(e)) => {
                assert_eq!(seq, s1);
                assert_eq!(
                    (e.object.id.as_str(), e.object.owner.as_str()),
                    (obj.as_str(), "ann")
                );
                assert_eq!(e.object.props, hp);
            }
            other => panic!("{other:?}"),
        }
    }

    // Others may move it, not change it; a gm may change it. Per property,
    // the later write wins and the others stay.
    refused(
        &mut bob,
        update(2, &obj, props(&[("hp", 1.into())])),
        ErrorCode::Forbidden,
    )
    .await;
    refused(&mut spec, mv(2, &obj, 1.0, 1.0), ErrorCode::Forbidden).await;
    let (s2, _) = published(&mut bob, mv(3, &obj, 20.0, 7.5)).await;
    let (s3, _) = published(&mut gm, update(4, &obj, props(&[("hp", 4.into())]))).await;
    let (s4, _) = published(
        &mut ann,
        update(
            5,
            &obj,
            props(&[("hp", 3.into()), ("name", serde_json::Value::Null)]),
        ),
    )
    .await;
    // Likes: once per user; the repeat is acknowledged and publishes nothing.
    let (s5, _) = published(&mut spec, like(6, &obj)).await;
    assert_eq!(
        ack(&mut spec, like(7, &obj)).await,
        None,
        "a repeated like changes nothing"
    );
    let (s6, _) = published(&mut bob, like(8, &obj)).await;
    assert_eq!(
        [s2, s3, s4, s5, s6],
        [s1 + 1, s1 + 2, s1 + 3, s1 + 4, s1 + 5]
    );

    // A fog region: gm only. Others get `hidden` holding its seq.
    refused(
        &mut ann,
        create(9, "fog", 0.0, Props::new()),
        ErrorCode::Forbidden,
    )
    .await;
    let (s7, fog) = published(
        &mut gm,
        create(10, "fog", 0.0, props(&[("shade", 0.5.into())])),
    )
    .await;
    let fog = fog.unwrap();
    // Fog does not exist for players: no error tells them it is there.
    refused(&mut ann, mv(11, &fog, 1.0, 1.0), ErrorCode::NotFound).await;
    refused(&mut bob, delete(12, &fog), ErrorCode::NotFound).await;
    refused(&mut spec, like(13, &fog), ErrorCode::NotFound).await;
    let (s8, _) = published(&mut gm, mv(14, &fog, 3.0, 3.0)).await;
    assert_eq!((s7, s8), (s6 + 1, s6 + 2));

    // What each saw of s2..=s8, gapless: players and spectators see the fog
    // events as `hidden`, gms see them.
    let expected_open = [
        "object_moved",
        "object_updated",
        "object_updated",
        "object_liked",
        "object_liked",
    ];
    for (who, watcher, sees_fog) in [
        ("player", &mut eye_player, false),
        ("spectator", &mut eye_spec, false),
        ("gm", &mut gm_eye, true),
    ] {
        let mut kinds = Vec::new();
        for expect_seq in s2..=s8 {
            let (kind, seq, _) = next_event(watcher).await;
            assert_eq!(seq, Some(expect_seq), "{who}");
            kinds.push(kind);
        }
        let fog_kinds = if sees_fog {
            vec!["object_created", "object_moved"]
        } else {
            vec!["hidden", "hidden"]
        };
        let mut expected: Vec<&str> = expected_open.to_vec();
        expected.extend(fog_kinds);
        let got: Vec<&str> = kinds.iter().map(String::as_str).collect();
        assert_eq!(got, expected, "{who}");
    }

    // The snapshot: the same state from every gateway; fog for gms only.
    let page = objects_of(&mut bob, 20).await;
    assert_eq!(page.seq, s8);
    assert_eq!(page.objects.len(), 1, "{page:?}");
    let o = &page.objects[0];
    assert_eq!((o.x, o.y, o.w, o.h, o.likes), (20.0, 7.5, 4.0, 2.0, 2));
    assert_eq!(o.props, props(&[("hp", 3.into())]));
    let gm_page = objects_of(&mut gm_eye, 21).await;
    assert_eq!(gm_page.objects.len(), 2);
    assert!(
        gm_page
            .objects
            .iter()
            .any(|o| o.id == fog && (o.x, o.y) == (3.0, 3.0))
    );
    let t = token_as("viewer", Role::Spectator);
    let (status, _, body) = http_get(a.addr, "/api/canvases/t/objects", Some(&t)).await;
    assert_eq!(status, 200);
    let rest: ObjectsPage = serde_json::from_slice(&body).unwrap();
    assert_eq!(rest.objects, page.objects);
    let t = token_as("boss", Role::Gm);
    let (_, _, body) = http_get(b.addr, "/api/canvases/t/objects", Some(&t)).await;
    let rest: ObjectsPage = serde_json::from_slice(&body).unwrap();
    assert_eq!(rest.objects, gm_page.objects);
    // History over REST hides fog from non-gms too.
    let t = token_as("viewer", Role::Spectator);
    let (_, _, body) = http_get(
        a.addr,
        &format!("/api/canvases/t/events?since={}", s6),
        Some(&t),
    )
    .await;
    let history: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["hidden", "hidden"]);
    assert!(
        !String::from_utf8_lossy(&body).contains("shade"),
        "no fog data"
    );

    // Bad inputs: refused with E007, nothing published.
    for bad in [
        create(30, "Bad Kind", 1.0, Props::new()),
        create(31, "token", 1000.0, Props::new()),
        create(32, "token", 1.0, props(&[("x", serde_json::Value::Null)])),
        update(33, &obj, Props::new()),
        update(34, "no/such", props(&[("a", 1.into())])),
        mv(35, &obj, -1.0, 0.0),
    ] {
        refused(&mut ann, bad, ErrorCode::InvalidValue).await;
    }
    refused(&mut ann, delete(36, "unknown-object"), ErrorCode::NotFound).await;
    refused(
        &mut spec,
        create(37, "token", 1.0, Props::new()),
        ErrorCode::Forbidden,
    )
    .await;
    // The cap (3 here, on gateway a): two exist, one more fits.
    published(&mut ann, create(38, "tile", 1.0, Props::new())).await;
    refused(
        &mut ann,
        create(39, "tile", 2.0, Props::new()),
        ErrorCode::LimitReached,
    )
    .await;

    // Deleting others' objects is for gms.
    refused(&mut bob, delete(40, &obj), ErrorCode::Forbidden).await;
    let (s9, _) = published(&mut gm, delete(41, &obj)).await;
    for watcher in [&mut eye_player, &mut gm_eye] {
        let (kind, _, _) = next_event(watcher).await;
        assert_eq!(kind, "object_created", "ann's tile");
        let (kind, seq, _) = next_event(watcher).await;
        assert_eq!((kind.as_str(), seq), ("object_deleted", Some(s9)));
    }

    // Clear is for gms: one durable event; no pixels, no objects after.
    published(&mut ann, draw(50, "t", 1, 1, 5)).await;
    refused(&mut ann, whole(51, true), ErrorCode::Forbidden).await;
    let (s10, _) = published(&mut gm, whole(52, true)).await;
    loop {
        match next_event(&mut eye_spec).await {
            (kind, seq, _) if kind == "cleared" => {
                assert_eq!(seq, Some(s10));
                break;
            }
            _ => {}
        }
    }
    assert!(objects_of(&mut gm_eye, 53).await.objects.is_empty());
    let (_, cells) = redis_cells(&redis.url(), &c(), 100).await;
    assert!(cells.iter().all(|c| *c == 0), "pixels cleared");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_rebuilt_from_postgres_after_redis_loses_them() {
    let mut redis = RedisServer::start();
    let pg = PostgresServer::start();
    let db = format!("--database-url={}", pg.url());
    let g = Gateway::start(settings(
        "obj-rb",
        Some(&redis),
        &["--backlog-limit=10000", "--auto-create-canvases", &db],
    ))
    .await;
    let persister = RunningPersister::start(&redis, &pg, &["--snapshot-every=5"]).await;
    let mut ann = client_as(&g, "ann", Role::Player).await;
    let mut gm = client_as(&g, "gm", Role::Gm).await;

    let (_, keep) = published(
        &mut ann,
        create(1, "token", 1.0, props(&[("hp", 9.into())])),
    )
    .await;
    let keep = keep.unwrap();
    let (_, gone) = published(&mut ann, create(2, "shape", 2.0, Props::new())).await;
    for i in 0..12 {
        published(&mut ann, draw(100 + i, "t", i as i64, 0, 3)).await;
    }
    published(
        &mut ann,
        update(3, &keep, props(&[("hp", 8.into()), ("tag", "boss".into())])),
    )
    .await;
    published(&mut ann, mv(4, &keep, 9.0, 9.0)).await;
    published(&mut ann, like(5, &keep)).await;
    published(&mut gm, like(6, &keep)).await;
    published(&mut ann, delete(7, &gone.unwrap())).await;
    published(
        &mut gm,
        create(8, "fog", 5.0, props(&[("shade", 1.into())])),
    )
    .await;
    let (last, _) = published(
        &mut ann,
        update(9, &keep, props(&[("tag", serde_json::Value::Null)])),
    )
    .await;
    let before = objects_of(&mut gm, 10).await;
    assert_eq!(before.objects.len(), 2);
    eventually(Duration::from_secs(30), "everything persisted", || async {
        pg.psql("SELECT count(*) FROM events WHERE canvas_id = 't'") == last.to_string()
    })
    .await;

    redis.kill();
    redis.restart();
    // Connected clients are told to resync once the bus is back.
    loop {
        match gm.recv_within(Duration::from_secs(15)).await {
            Some(ServerMessage::Resync(_)) => break,
            Some(_) => {}
            None => panic!("no resync after the redis restart"),
        }
    }
    let mut late = client_as(&g, "late", Role::Gm).await;
    let after = objects_of(&mut late, 1).await;
    assert_ne!(after.epoch, before.epoch, "rebuilt under a new epoch");
    assert_eq!(after.seq, before.seq);
    assert_eq!(after.objects, before.objects, "identical objects");
    // Likers came back too: a repeated like is still a no-op.
    let mut ann2 = client_as(&g, "ann", Role::Player).await;
    assert_eq!(ack(&mut ann2, like(2, &keep)).await, None);
    let (_, cells) = redis_cells(&redis.url(), &c(), 100).await;
    assert!((0..12).all(|x| cells[x] == 3), "pixels rebuilt as well");
    persister.stop().await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_objects_follow_the_same_rules() {
    let g = Gateway::start(settings("obj-solo", None, &[])).await;
    let mut ann = client_as(&g, "ann", Role::Player).await;
    let mut bob = client_as(&g, "bob", Role::Player).await;
    let mut gm = client_as(&g, "gm", Role::Gm).await;
    let mut eye = client_as(&g, "eye", Role::Player).await;
    let (_, obj) = published(&mut ann, create(1, "token", 1.0, Props::new())).await;
    let obj = obj.unwrap();
    refused(&mut bob, delete(2, &obj), ErrorCode::Forbidden).await;
    published(&mut bob, like(3, &obj)).await;
    assert_eq!(ack(&mut bob, like(4, &obj)).await, None);
    let (fog_seq, _) = published(&mut gm, create(5, "fog", 1.0, Props::new())).await;
    let mut hidden_seen = false;
    while !hidden_seen {
        match next_event(&mut eye).await {
            (kind, seq, _) if kind == "hidden" => {
                assert_eq!(seq, Some(fog_seq));
                hidden_seen = true;
            }
            _ => {}
        }
    }
    assert_eq!(objects_of(&mut ann, 6).await.objects.len(), 1);
    assert_eq!(objects_of(&mut gm, 7).await.objects.len(), 2);
    assert_eq!(objects_of(&mut ann, 8).await.objects[0].likes, 1);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_operations_pay_from_their_own_rate_limit() {
    let g = Gateway::start(settings("obj-rate", None, &["--rate-limits=objects=1/s:2"])).await;
    let mut ann = client_as(&g, "ann", Role::Player).await;
    let (_, obj) = published(&mut ann, create(1, "token", 1.0, Props::new())).await;
    published(&mut ann, mv(2, &obj.unwrap(), 2.0, 2.0)).await;
    match reply(&mut ann, &create(3, "token", 1.0, Props::new())).await {
        ServerMessage::Error(e) => {
            assert_eq!(e.code, ErrorCode::RateLimited);
            assert!(
                e.retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 1001),
                "{e:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Other classes are not affected.
    published(&mut ann, draw(4, "t", 1, 1, 1)).await;
    assert_eq!(
        objects_of(&mut ann, 5).await.objects.len(),
        1,
        "nothing applied"
    );
    g.stop().await;
}

fn editing(n: u64, object: Option<&str>, at: (f64, f64)) -> ClientMessage {
    ClientMessage::Activity(ActivitySend {
        id: id(n),
        canvas: c(),
        state: ActivityState::Editing,
        x: Some(at.0),
        y: Some(at.1),
        object: object.map(str::to_owned),
    })
}

/// The next `activity` event, passing over object events.
async fn next_activity(client: &mut WsClient) -> ActivityEvent {
    loop {
        match client.recv().await {
            ServerMessage::Activity(e) => return e,
            ServerMessage::ObjectCreated(_) | ServerMessage::Hidden(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A gm's user entry in a presence list read over REST with a token of `role`.
async fn gm_activity_as(g: &Gateway, role: Role) -> Option<Activity> {
    let path = format!("/api/canvases/{}/presence", c());
    let (status, _, body) =
        testkit::http::get(g.addr, &path, Some(&token_as("viewer", role))).await;
    assert_eq!(status, 200);
    let list: PresenceList = serde_json::from_slice(&body).unwrap();
    list.users.into_iter().find(|u| u.id == "gm")?.activity
}

/// A gm editing a fog region tells other gms where, and players nothing:
/// no live event, and no place in the presence list they read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_fog_reaches_gms_only_live_and_in_the_presence_list() {
    let redis = RedisServer::start();
    let a = Gateway::start(settings("fogact-a", Some(&redis), &[])).await;
    let b = Gateway::start(settings("fogact-b", Some(&redis), &[])).await;
    let mut gm = client_as(&a, "gm", Role::Gm).await;
    let mut gm2 = client_as(&b, "gm2", Role::Gm).await;
    let mut ann = client_as(&b, "ann", Role::Player).await;
    let (_, fog) = published(&mut gm, create(1, "fog", 7.0, Props::new())).await;
    let fog = fog.unwrap();
    let (_, token) = published(&mut gm, create(2, "token", 8.0, Props::new())).await;
    let token = token.unwrap();

    ack(&mut gm, editing(3, Some(&token), (8.0, 5.0))).await;
    ack(&mut gm, editing(4, Some(&fog), (7.0, 5.0))).await;
    // While the fog edit is the latest: gms see where, players only that
    // the gm is editing.
    let seen = gm_activity_as(&b, Role::Gm).await.unwrap();
    assert_eq!(
        (seen.object.as_deref(), seen.x),
        (Some(fog.as_str()), Some(7.0))
    );
    let seen = gm_activity_as(&b, Role::Player).await.unwrap();
    assert_eq!(seen.state, ActivityState::Editing);
    assert_eq!(
        (seen.object, seen.x, seen.y),
        (None, None, None),
        "fog place leaked"
    );
    ack(
        &mut gm,
        ClientMessage::Activity(ActivitySend {
            id: id(5),
            canvas: c(),
            state: ActivityState::Typing,
            x: None,
            y: None,
            object: None,
        }),
    )
    .await;

    // Live: the other gm gets all three, the player the token edit and the
    // typing, never the fog edit.
    let objects = |e: ActivityEvent| (e.activity.state, e.activity.object);
    assert_eq!(
        objects(next_activity(&mut gm2).await),
        (ActivityState::Editing, Some(token.clone()))
    );
    assert_eq!(
        objects(next_activity(&mut gm2).await),
        (ActivityState::Editing, Some(fog.clone()))
    );
    assert_eq!(
        objects(next_activity(&mut gm2).await),
        (ActivityState::Typing, None)
    );
    assert_eq!(
        objects(next_activity(&mut ann).await),
        (ActivityState::Editing, Some(token))
    );
    assert_eq!(
        objects(next_activity(&mut ann).await),
        (ActivityState::Typing, None),
        "fog edit leaked"
    );
    a.stop().await;
    b.stop().await;
}
