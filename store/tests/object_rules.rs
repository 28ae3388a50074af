//! The object rules, one table of cases run against both implementations:
//! the in-memory log (Rust, `store::objects`) and the Redis log (Lua,
//! `log/publish.lua`) on a real redis-server. A rule changed on one side
//! only makes this fail: every step's outcome and the objects after every
//! script must match the table on both.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use shared::CanvasId;
use shared::busframe::BusHeader;
use shared::protocol::{
    Author, ObjectCreated, ObjectEvent, ObjectMoved, ObjectState, ObjectUpdated, Props,
    ServerMessage,
};
use std::sync::Arc;
use std::time::Duration;
use store::{Change, Log, LogSettings, ObjectChange, ObjectOp, RedisPool, Refusal, StoreError};
use testkit::RedisServer;

/// What one step must give: applied (a new seq), unchanged (no seq), or
/// refused with a reason.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Applied,
    Unchanged,
    Refused(Refusal),
}

/// One operation by `user` (a gm or not).
struct Step {
    user: &'static str,
    gm: bool,
    op: ObjectOp,
    expect: Expect,
}

/// A script of steps on a fresh canvas, and the objects (as a gm sees
/// them: `(id, owner, likes, x, y, w, h, props)`) afterwards.
struct Case {
    name: &'static str,
    max_objects: usize,
    steps: Vec<Step>,
    after: Vec<Seen>,
}

type Seen = (&'static str, &'static str, u64, [f64; 4], Props);

fn object(id: &str, kind: &str, owner: &str) -> ObjectState {
    ObjectState {
        id: id.into(),
        kind: kind.into(),
        x: 1.0,
        y: 2.0,
        w: 3.0,
        h: 4.0,
        props: Props::new(),
        likes: 0,
        owner: owner.into(),
    }
}

fn props(pairs: &[(&str, serde_json::Value)]) -> Props {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn step(user: &'static str, gm: bool, op: ObjectOp, expect: Expect) -> Step {
    Step {
        user,
        gm,
        op,
        expect,
    }
}

fn create(id: &str, kind: &str, owner: &str) -> ObjectOp {
    ObjectOp::Create(object(id, kind, owner))
}

fn update(id: &str, p: Props) -> ObjectOp {
    ObjectOp::Update {
        object: id.into(),
        props: p,
    }
}

fn mv(id: &str, x: f64, y: f64, w: Option<f64>, h: Option<f64>) -> ObjectOp {
    ObjectOp::Move {
        object: id.into(),
        x,
        y,
        w,
        h,
    }
}

fn like(id: &str) -> ObjectOp {
    ObjectOp::Like { object: id.into() }
}

fn delete(id: &str) -> ObjectOp {
    ObjectOp::Delete { object: id.into() }
}

use Expect::{Applied, Refused, Unchanged};
use serde_json::json;

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "ownership: only the owner or a gm updates and deletes",
            max_objects: 10,
            steps: vec![
                step("ann", false, create("a", "token", "ann"), Applied),
                step(
                    "ann",
                    false,
                    create("a", "token", "ann"),
                    Refused(Refusal::Exists),
                ),
                step(
                    "bob",
                    false,
                    update("a", props(&[("hp", json!(1))])),
                    Refused(Refusal::NotOwner),
                ),
                step("bob", false, delete("a"), Refused(Refusal::NotOwner)),
                step("gm", true, update("a", props(&[("hp", json!(7))])), Applied),
                step(
                    "ann",
                    false,
                    update("a", props(&[("name", json!("Ann"))])),
                    Applied,
                ),
                step(
                    "bob",
                    false,
                    update("nope", props(&[])),
                    Refused(Refusal::NoObject),
                ),
                step("ann", false, create("b", "token", "ann"), Applied),
                step("gm", true, delete("b"), Applied),
                step("ann", false, delete("b"), Refused(Refusal::NoObject)),
            ],
            after: vec![(
                "a",
                "ann",
                0,
                [1.0, 2.0, 3.0, 4.0],
                props(&[("hp", json!(7)), ("name", json!("Ann"))]),
            )],
        },
        Case {
            name: "moves: anyone who sees the object; w and h only when given",
            max_objects: 10,
            steps: vec![
                step("ann", false, create("a", "token", "ann"), Applied),
                step("bob", false, mv("a", 9.5, 8.0, None, Some(1.5)), Applied),
                step("cat", false, mv("a", -2.0, 0.25, Some(6.0), None), Applied),
                step(
                    "bob",
                    false,
                    mv("zz", 0.0, 0.0, None, None),
                    Refused(Refusal::NoObject),
                ),
            ],
            after: vec![("a", "ann", 0, [-2.0, 0.25, 6.0, 1.5], Props::new())],
        },
        Case {
            name: "likes: once per user, a repeat changes nothing",
            max_objects: 10,
            steps: vec![
                step("ann", false, create("a", "token", "ann"), Applied),
                step("bob", false, like("a"), Applied),
                step("bob", false, like("a"), Unchanged),
                step("cat", false, like("a"), Applied),
                step("ann", false, like("a"), Applied),
                step("cat", false, like("a"), Unchanged),
                step("cat", false, like("b"), Refused(Refusal::NoObject)),
            ],
            after: vec![("a", "ann", 3, [1.0, 2.0, 3.0, 4.0], Props::new())],
        },
        Case {
            name: "the cap: at most max_objects, freed by a delete",
            max_objects: 2,
            steps: vec![
                step("ann", false, create("a", "token", "ann"), Applied),
                step("ann", false, create("b", "token", "ann"), Applied),
                step(
                    "ann",
                    false,
                    create("c", "token", "ann"),
                    Refused(Refusal::Full),
                ),
                step("gm", true, create("f", "fog", "gm"), Refused(Refusal::Full)),
                step("ann", false, delete("a"), Applied),
                step("ann", false, create("c", "token", "ann"), Applied),
            ],
            after: vec![
                ("b", "ann", 0, [1.0, 2.0, 3.0, 4.0], Props::new()),
                ("c", "ann", 0, [1.0, 2.0, 3.0, 4.0], Props::new()),
            ],
        },
        Case {
            name: "fog: no such object for anyone but a gm",
            max_objects: 10,
            steps: vec![
                step("gm", true, create("f", "fog", "gm"), Applied),
                step("bob", false, like("f"), Refused(Refusal::NoObject)),
                step(
                    "bob",
                    false,
                    mv("f", 0.0, 0.0, None, None),
                    Refused(Refusal::NoObject),
                ),
                step(
                    "bob",
                    false,
                    update("f", props(&[])),
                    Refused(Refusal::NoObject),
                ),
                step("bob", false, delete("f"), Refused(Refusal::NoObject)),
                // Owning it does not help a gm who is not one here.
                step("gm", false, delete("f"), Refused(Refusal::NoObject)),
                step(
                    "gm",
                    true,
                    mv("f", 5.0, 5.0, Some(10.0), Some(10.0)),
                    Applied,
                ),
                step(
                    "gm2",
                    true,
                    update("f", props(&[("dark", json!(true))])),
                    Applied,
                ),
                step("gm2", true, like("f"), Applied),
            ],
            after: vec![(
                "f",
                "gm",
                1,
                [5.0, 5.0, 10.0, 10.0],
                props(&[("dark", json!(true))]),
            )],
        },
        Case {
            name: "properties: per property, the later write wins and null removes",
            max_objects: 10,
            steps: vec![
                step("ann", false, create("a", "note", "ann"), Applied),
                step(
                    "ann",
                    false,
                    update("a", props(&[("t", json!("x")), ("c", json!(1))])),
                    Applied,
                ),
                step(
                    "gm",
                    true,
                    update("a", props(&[("c", json!({"deep": [1, 2]}))])),
                    Applied,
                ),
                step(
                    "ann",
                    false,
                    update("a", props(&[("t", serde_json::Value::Null)])),
                    Applied,
                ),
                step(
                    "ann",
                    false,
                    update("a", props(&[("n", json!(null)), ("s", json!("é\"q"))])),
                    Applied,
                ),
            ],
            after: vec![(
                "a",
                "ann",
                0,
                [1.0, 2.0, 3.0, 4.0],
                props(&[("c", json!({"deep": [1, 2]})), ("s", json!("é\"q"))]),
            )],
        },
    ]
}

/// The event an operation is recorded as.
fn event(canvas: &CanvasId, op: &ObjectOp, user: &str) -> ServerMessage {
    let author = Author {
        id: user.into(),
        name: None,
    };
    let (seq, ts) = (None, 1);
    match op.clone() {
        ObjectOp::Create(object) => ServerMessage::ObjectCreated(ObjectCreated {
            canvas: canvas.clone(),
            seq,
            author,
            ts,
            object,
        }),
        ObjectOp::Update { object, props } => ServerMessage::ObjectUpdated(ObjectUpdated {
            canvas: canvas.clone(),
            seq,
            author,
            ts,
            object,
            props,
        }),
        ObjectOp::Move { object, x, y, w, h } => ServerMessage::ObjectMoved(ObjectMoved {
            canvas: canvas.clone(),
            seq,
            author,
            ts,
            object,
            x,
            y,
            w,
            h,
        }),
        ObjectOp::Delete { object } => ServerMessage::ObjectDeleted(ObjectEvent {
            canvas: canvas.clone(),
            seq,
            author,
            ts,
            object,
        }),
        ObjectOp::Like { object } => ServerMessage::ObjectLiked(ObjectEvent {
            canvas: canvas.clone(),
            seq,
            author,
            ts,
            object,
        }),
    }
}

/// Runs every case on `log`, each on its own canvas; panics naming the
/// implementation, the case and the step that disagrees with the table.
async fn run_table(impl_name: &str, log: &Log) {
    for (n, case) in cases().into_iter().enumerate() {
        let canvas = CanvasId::new(&format!("rules-{n}")).unwrap();
        let header = BusHeader::now("rules", 0);
        for (i, s) in case.steps.iter().enumerate() {
            let change = Change::Object(ObjectChange {
                op: s.op.clone(),
                user: s.user.into(),
                gm: s.gm,
                max_objects: case.max_objects,
            });
            let got = log
                .publish_durable(
                    &canvas,
                    &header,
                    &event(&canvas, &s.op, s.user),
                    Some(&change),
                )
                .await;
            let got = match got {
                Ok(Some(_)) => Applied,
                Ok(None) => Unchanged,
                Err(StoreError::Refused(r)) => Refused(r),
                Err(other) => panic!("{impl_name}: {}: step {i}: {other}", case.name),
            };
            assert_eq!(got, s.expect, "{impl_name}: {}: step {i}", case.name);
        }
        let (_, objects) = log.objects(&canvas, true).await.unwrap();
        let seen: Vec<Seen> = objects
            .iter()
            .map(|o| {
                let (id, owner) = case
                    .after
                    .iter()
                    .find(|(id, ..)| *id == o.id)
                    .map(|(id, owner, ..)| (*id, *owner))
                    .unwrap_or(("?", "?"));
                let owner = if owner == o.owner { owner } else { "?" };
                (id, owner, o.likes, [o.x, o.y, o.w, o.h], o.props.clone())
            })
            .collect();
        assert_eq!(
            seen, case.after,
            "{impl_name}: {}: objects after",
            case.name
        );
        for o in &objects {
            let fog = log.is_fog(&canvas, &o.id).await.unwrap();
            assert_eq!(
                fog,
                o.is_fog(),
                "{impl_name}: {}: is_fog({})",
                case.name,
                o.id
            );
        }
        assert!(!log.is_fog(&canvas, "no-such-object").await.unwrap());
        // Players never see fog.
        let (_, visible) = log.objects(&canvas, false).await.unwrap();
        assert!(
            visible.iter().all(|o| !o.is_fog()),
            "{impl_name}: {}: fog shown to a player",
            case.name
        );
    }
}

#[tokio::test]
async fn the_memory_log_follows_the_table() {
    let log = Log::memory(1000, Arc::new(|_: &CanvasId, _: &bytes::Bytes| {}));
    run_table("memory", &log).await;
}

#[tokio::test]
async fn the_redis_script_follows_the_table() {
    let redis = RedisServer::start();
    let pool = RedisPool::connect(redis.url(), 2, Duration::from_secs(2))
        .await
        .unwrap();
    let settings = LogSettings {
        log_max_events: 1000,
        backlog_limit: 0,
        ack_replicas: 0,
    };
    run_table("redis", &Log::redis(pool, settings, None)).await;
}
