//! Objects on Redis: each object a hash (`kind`, `x`, `y`, `w`, `h`,
//! `owner`, `likes`, `p:<name>` = JSON) plus a set of its likers, all under
//! the canvas's hash tag. The rules run inside `log/publish.lua`; this
//! module passes them their arguments and reads objects back.

use super::{ObjectChange, ObjectOp};
use shared::protocol::ObjectState;
use std::sync::LazyLock;

/// Objects read (see `read.lua`).
pub(crate) static READ_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("read.lua")));

/// The publish script's arguments for an object operation (after the
/// pixel/object mode and key prefixes).
pub(crate) fn args(
    call: &mut redis::ScriptInvocation<'_>,
    change: &ObjectChange,
    gm_header: &[u8],
) {
    let op = match &change.op {
        ObjectOp::Create(_) => "create",
        ObjectOp::Update { .. } => "update",
        ObjectOp::Move { .. } => "move",
        ObjectOp::Delete { .. } => "delete",
        ObjectOp::Like { .. } => "like",
    };
    call.arg(op)
        .arg(change.op.object())
        .arg(&change.user)
        .arg(if change.gm { "1" } else { "" })
        .arg(gm_header)
        .arg(change.max_objects);
    let optional = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    match &change.op {
        ObjectOp::Create(o) => {
            call.arg(&o.kind)
                .arg(o.x.to_string())
                .arg(o.y.to_string())
                .arg(o.w.to_string())
                .arg(o.h.to_string())
                .arg(&o.owner);
            for (name, value) in &o.props {
                call.arg(name).arg(value.to_string());
            }
        }
        ObjectOp::Update { props, .. } => {
            for (name, value) in props {
                let json = if value.is_null() {
                    String::new()
                } else {
                    value.to_string()
                };
                call.arg(name).arg(json);
            }
        }
        ObjectOp::Move { x, y, w, h, .. } => {
            call.arg(x.to_string())
                .arg(y.to_string())
                .arg(optional(*w))
                .arg(optional(*h));
        }
        ObjectOp::Delete { .. } | ObjectOp::Like { .. } => {}
    }
}

/// An object as its Redis hash holds it: (field, value) pairs.
pub(crate) fn fields(o: &ObjectState) -> Vec<String> {
    let mut fields = vec![
        "kind".to_owned(),
        o.kind.clone(),
        "x".to_owned(),
        o.x.to_string(),
        "y".to_owned(),
        o.y.to_string(),
        "w".to_owned(),
        o.w.to_string(),
        "h".to_owned(),
        o.h.to_string(),
        "owner".to_owned(),
        o.owner.clone(),
        "likes".to_owned(),
        o.likes.to_string(),
    ];
    for (name, value) in &o.props {
        fields.push(format!("p:{name}"));
        fields.push(value.to_string());
    }
    fields
}

/// An object from `read.lua`'s `{id, field, value, ...}`; `None`
/// (logged) if a field is unreadable.
pub(crate) fn parse(entry: &[String]) -> Option<ObjectState> {
    let (id, pairs) = entry.split_first()?;
    let mut o = ObjectState {
        id: id.clone(),
        kind: String::new(),
        x: 0.0,
        y: 0.0,
        w: 0.0,
        h: 0.0,
        props: Default::default(),
        likes: 0,
        owner: String::new(),
    };
    for pair in pairs.chunks_exact(2) {
        let (field, value) = (pair[0].as_str(), &pair[1]);
        let ok = match field {
            "kind" => {
                o.kind = value.clone();
                true
            }
            "owner" => {
                o.owner = value.clone();
                true
            }
            "x" => value.parse().map(|v| o.x = v).is_ok(),
            "y" => value.parse().map(|v| o.y = v).is_ok(),
            "w" => value.parse().map(|v| o.w = v).is_ok(),
            "h" => value.parse().map(|v| o.h = v).is_ok(),
            "likes" => value.parse().map(|v| o.likes = v).is_ok(),
            _ => match field.strip_prefix("p:") {
                Some(name) => serde_json::from_str(value)
                    .map(|v| {
                        o.props.insert(name.to_owned(), v);
                    })
                    .is_ok(),
                None => true,
            },
        };
        if !ok {
            tracing::warn!(object = %o.id, field, "unreadable object field; object skipped");
            return None;
        }
    }
    (!o.kind.is_empty()).then_some(o)
}
