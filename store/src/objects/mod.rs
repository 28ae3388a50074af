//! A canvas's objects (tiles, tokens, shapes, fog regions) and the rules of
//! changing them, as one state machine: the in-memory bus runs it for every
//! operation, a rebuild from Postgres replays stored events through it, and
//! `log/publish.lua` applies the same rules inside Redis. One table of rule
//! cases (`tests/object_rules.rs`) runs against both, so they cannot drift.
//!
//! Rules (the caller has checked the role the operation itself needs):
//! - a fog object (`kind` `fog`) does not exist for anyone but a gm: every
//!   operation on it by others is "no such object", so its existence leaks
//!   through no error;
//! - only the object's owner or a gm may update or delete it;
//! - anyone who sees an object may move it (players) or like it (once per
//!   user; a repeated like changes nothing and publishes nothing);
//! - a canvas holds at most `max_objects` objects.

pub(crate) mod redis;

use shared::protocol::{ObjectState, Props, ServerMessage};
use std::collections::{BTreeMap, BTreeSet};

/// An object operation, as the event that records it describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectOp {
    Create(ObjectState),
    Update {
        object: String,
        props: Props,
    },
    Move {
        object: String,
        x: f64,
        y: f64,
        w: Option<f64>,
        h: Option<f64>,
    },
    Delete {
        object: String,
    },
    Like {
        object: String,
    },
}

impl ObjectOp {
    /// The operation an object event records, and its author.
    pub fn from_event(event: &ServerMessage) -> Option<(ObjectOp, &str)> {
        Some(match event {
            ServerMessage::ObjectCreated(e) => (ObjectOp::Create(e.object.clone()), &e.author.id),
            ServerMessage::ObjectUpdated(e) => (
                ObjectOp::Update {
                    object: e.object.clone(),
                    props: e.props.clone(),
                },
                &e.author.id,
            ),
            ServerMessage::ObjectMoved(e) => (
                ObjectOp::Move {
                    object: e.object.clone(),
                    x: e.x,
                    y: e.y,
                    w: e.w,
                    h: e.h,
                },
                &e.author.id,
            ),
            ServerMessage::ObjectDeleted(e) => (
                ObjectOp::Delete {
                    object: e.object.clone(),
                },
                &e.author.id,
            ),
            ServerMessage::ObjectLiked(e) => (
                ObjectOp::Like {
                    object: e.object.clone(),
                },
                &e.author.id,
            ),
            _ => return None,
        })
    }

    /// The object it is about.
    pub fn object(&self) -> &str {
        match self {
            ObjectOp::Create(o) => &o.id,
            ObjectOp::Update { object, .. }
            | ObjectOp::Move { object, .. }
            | ObjectOp::Delete { object }
            | ObjectOp::Like { object } => object,
        }
    }
}

/// An object operation with who does it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectChange {
    pub op: ObjectOp,
    /// The acting user.
    pub user: String,
    /// Whether the user is a gm on the canvas.
    pub gm: bool,
    /// The most objects the canvas may hold.
    pub max_objects: usize,
}

/// A durable operation's change to the canvas state.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Pixels(crate::PixelChange),
    Object(ObjectChange),
    /// Every pixel to 0 and every object gone.
    Clear,
}

/// Why an object operation was refused (nothing was applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no such object on this canvas")]
    NoObject,
    #[error("only the object's owner or a gm may do that")]
    NotOwner,
    #[error("the canvas holds as many objects as it may")]
    Full,
    #[error("an object with that id exists")]
    Exists,
}

impl Refusal {
    /// The error code the publish script answers with.
    pub(crate) fn from_script(code: &str) -> Option<Refusal> {
        Some(match code {
            "NOOBJ" => Refusal::NoObject,
            "NOTOWNER" => Refusal::NotOwner,
            "FULL" => Refusal::Full,
            "EXISTS" => Refusal::Exists,
            _ => return None,
        })
    }
}

/// What a permitted operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It changes the state and is published.
    Apply,
    /// It changes nothing (a repeated like): acknowledged, not published.
    Unchanged,
}

/// One object and who liked it.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    state: ObjectState,
    likers: BTreeSet<String>,
}

/// A canvas's objects. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Objects {
    map: BTreeMap<String, Entry>,
}

impl Objects {
    /// Whether `change` may be applied, and what it would do.
    pub fn check(&self, change: &ObjectChange) -> Result<Outcome, Refusal> {
        let visible = |id: &str| self.map.get(id).filter(|e| change.gm || !e.state.is_fog());
        match &change.op {
            ObjectOp::Create(o) => {
                if self.map.contains_key(&o.id) {
                    Err(Refusal::Exists)
                } else if self.map.len() >= change.max_objects {
                    Err(Refusal::Full)
                } else {
                    Ok(Outcome::Apply)
                }
            }
            ObjectOp::Update { object, .. } | ObjectOp::Delete { object } => {
                let entry = visible(object).ok_or(Refusal::NoObject)?;
                if change.gm || entry.state.owner == change.user {
                    Ok(Outcome::Apply)
                } else {
                    Err(Refusal::NotOwner)
                }
            }
            ObjectOp::Move { object, .. } => {
                visible(object).ok_or(Refusal::NoObject)?;
                Ok(Outcome::Apply)
            }
            ObjectOp::Like { object } => {
                let entry = visible(object).ok_or(Refusal::NoObject)?;
                if entry.likers.contains(&change.user) {
                    Ok(Outcome::Unchanged)
                } else {
                    Ok(Outcome::Apply)
                }
            }
        }
    }

    /// Applies an operation by `user` (already checked, or replayed from
    /// the log, where it was checked when it happened).
    pub fn apply(&mut self, op: &ObjectOp, user: &str) {
        match op {
            ObjectOp::Create(o) => {
                self.map.insert(
                    o.id.clone(),
                    Entry {
                        state: o.clone(),
                        likers: BTreeSet::new(),
                    },
                );
            }
            ObjectOp::Update { object, props } => {
                if let Some(e) = self.map.get_mut(object) {
                    for (name, value) in props {
                        if value.is_null() {
                            e.state.props.remove(name);
                        } else {
                            e.state.props.insert(name.clone(), value.clone());
                        }
                    }
                }
            }
            ObjectOp::Move { object, x, y, w, h } => {
                if let Some(e) = self.map.get_mut(object) {
                    e.state.x = *x;
                    e.state.y = *y;
                    if let Some(w) = w {
                        e.state.w = *w;
                    }
                    if let Some(h) = h {
                        e.state.h = *h;
                    }
                }
            }
            ObjectOp::Delete { object } => {
                self.map.remove(object);
            }
            ObjectOp::Like { object } => {
                if let Some(e) = self.map.get_mut(object)
                    && e.likers.insert(user.to_owned())
                {
                    e.state.likes += 1;
                }
            }
        }
    }

    /// Replays a stored event: object events and `cleared`; others are
    /// ignored.
    pub fn apply_event(&mut self, event: &ServerMessage) {
        if let ServerMessage::Cleared(_) = event {
            self.map.clear();
        } else if let Some((op, author)) = ObjectOp::from_event(event) {
            self.apply(&op, author);
        }
    }

    /// Whether `id` is a fog object.
    pub fn is_fog(&self, id: &str) -> bool {
        self.map.get(id).is_some_and(|e| e.state.is_fog())
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// The objects, in id order; fog regions only for a gm.
    pub fn visible(&self, gm: bool) -> Vec<ObjectState> {
        self.map
            .values()
            .filter(|e| gm || !e.state.is_fog())
            .map(|e| e.state.clone())
            .collect()
    }

    /// The objects after `after` in id order (fog regions only for a gm),
    /// ending before one that would take the page past `budget` bytes of
    /// JSON (one is always included), and the last id when more follow.
    pub fn page(
        &self,
        gm: bool,
        after: Option<&str>,
        budget: usize,
    ) -> (Vec<ObjectState>, Option<String>) {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
        let (mut page, mut used) = (Vec::new(), 0usize);
        for entry in self.map.range((start, Bound::Unbounded)).map(|(_, e)| e) {
            if !gm && entry.state.is_fog() {
                continue;
            }
            let size = serde_json::to_vec(&entry.state).map_or(0, |j| j.len());
            if used + size > budget && !page.is_empty() {
                let next = page.last().map(|o: &ObjectState| o.id.clone());
                return (page, next);
            }
            used += size;
            page.push(entry.state.clone());
        }
        (page, None)
    }

    /// Every object with the users who liked it (for a rebuild of Redis).
    pub fn records(&self) -> impl Iterator<Item = (&ObjectState, &BTreeSet<String>)> {
        self.map.values().map(|e| (&e.state, &e.likers))
    }

    /// Restores an object with its likers (reading Redis back).
    pub fn insert(&mut self, state: ObjectState, likers: BTreeSet<String>) {
        self.map.insert(state.id.clone(), Entry { state, likers });
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A new object id: 16 hex digits, unique enough per canvas.
pub fn new_object_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn change(op: ObjectOp, user: &str, gm: bool) -> ObjectChange {
        ObjectChange {
            op,
            user: user.into(),
            gm,
            max_objects: 2,
        }
    }

    fn run(objects: &mut Objects, c: ObjectChange) -> Result<Outcome, Refusal> {
        let outcome = objects.check(&c)?;
        if outcome == Outcome::Apply {
            objects.apply(&c.op, &c.user);
        }
        Ok(outcome)
    }

    #[test]
    fn owners_and_gms_change_objects_and_others_may_move_and_like_them() {
        let mut o = Objects::default();
        let create = |id: &str| ObjectOp::Create(object(id, "token", "ann"));
        assert_eq!(
            run(&mut o, change(create("a"), "ann", false)),
            Ok(Outcome::Apply)
        );
        assert_eq!(
            run(&mut o, change(create("a"), "ann", false)),
            Err(Refusal::Exists)
        );
        let props: Props = [("hp".to_owned(), serde_json::json!(7))].into();
        let update = ObjectOp::Update {
            object: "a".into(),
            props: props.clone(),
        };
        assert_eq!(
            run(&mut o, change(update.clone(), "bob", false)),
            Err(Refusal::NotOwner)
        );
        assert_eq!(
            run(&mut o, change(update.clone(), "gm", true)),
            Ok(Outcome::Apply)
        );
        let mv = ObjectOp::Move {
            object: "a".into(),
            x: 9.0,
            y: 8.0,
            w: None,
            h: Some(1.5),
        };
        assert_eq!(run(&mut o, change(mv, "bob", false)), Ok(Outcome::Apply));
        let like = ObjectOp::Like { object: "a".into() };
        assert_eq!(
            run(&mut o, change(like.clone(), "bob", false)),
            Ok(Outcome::Apply)
        );
        assert_eq!(
            run(&mut o, change(like.clone(), "bob", false)),
            Ok(Outcome::Unchanged)
        );
        assert_eq!(run(&mut o, change(like, "cat", false)), Ok(Outcome::Apply));
        let a = &o.visible(false)[0];
        assert_eq!((a.x, a.y, a.w, a.h, a.likes), (9.0, 8.0, 3.0, 1.5, 2));
        assert_eq!(a.props, props);
        // Per property: null removes, others stay.
        let unset = ObjectOp::Update {
            object: "a".into(),
            props: [("hp".to_owned(), serde_json::Value::Null)].into(),
        };
        assert_eq!(run(&mut o, change(unset, "ann", false)), Ok(Outcome::Apply));
        assert!(o.visible(false)[0].props.is_empty());
        assert_eq!(
            run(&mut o, change(create("b"), "ann", false)),
            Ok(Outcome::Apply)
        );
        assert_eq!(
            run(&mut o, change(create("c"), "ann", false)),
            Err(Refusal::Full)
        );
        let delete = ObjectOp::Delete { object: "a".into() };
        assert_eq!(
            run(&mut o, change(delete.clone(), "bob", false)),
            Err(Refusal::NotOwner)
        );
        assert_eq!(
            run(&mut o, change(delete.clone(), "ann", false)),
            Ok(Outcome::Apply)
        );
        assert_eq!(
            run(&mut o, change(delete, "ann", false)),
            Err(Refusal::NoObject)
        );
    }

    #[test]
    fn fog_does_not_exist_for_anyone_but_a_gm() {
        let mut o = Objects::default();
        let fog = ObjectOp::Create(object("f", "fog", "gm"));
        assert_eq!(run(&mut o, change(fog, "gm", true)), Ok(Outcome::Apply));
        for op in [
            ObjectOp::Like { object: "f".into() },
            ObjectOp::Delete { object: "f".into() },
            ObjectOp::Move {
                object: "f".into(),
                x: 0.0,
                y: 0.0,
                w: None,
                h: None,
            },
            ObjectOp::Update {
                object: "f".into(),
                props: Props::new(),
            },
        ] {
            assert_eq!(
                run(&mut o, change(op.clone(), "gm", false)),
                Err(Refusal::NoObject)
            );
            assert_eq!(o.check(&change(op, "gm", true)).map(|_| ()), Ok(()));
        }
        assert!(o.visible(false).is_empty());
        assert_eq!(o.visible(true).len(), 1);
    }
}
