//! Object commands (`object_create`, `object_update`, `object_move`,
//! `object_delete`, `object_like`) and `clear`: the role each needs, and
//! the event and canvas state change a valid one makes. The rules that
//! depend on the canvas's state (ownership, fog, one like per user, the
//! object cap) are applied atomically with the publish, in
//! `fanout::objects` and the publish script.

use fanout::{Change, ObjectChange, ObjectOp};
use shared::auth::Role;
use shared::protocol::{
    Author, Cleared, ClientMessage, ObjectCreated, ObjectEvent, ObjectMoved, ObjectState,
    ObjectUpdated, ServerMessage,
};
use shared::validate::{self, CanvasGeometry, Invalid};
use shared::{CanvasId, RequestId};

/// A validated command, ready to publish.
pub(crate) struct Prepared {
    pub event: ServerMessage,
    pub change: Change,
    /// The object a create made (its id goes in the ack).
    pub created: Option<String>,
}

/// The command's id, canvas and name, if it is an object command or clear.
pub(crate) fn target(cmd: &ClientMessage) -> Option<(Option<RequestId>, &CanvasId, &'static str)> {
    Some(match cmd {
        ClientMessage::ObjectCreate(c) => (c.id.clone(), &c.canvas, cmd.kind()),
        ClientMessage::ObjectUpdate(c) => (c.id.clone(), &c.canvas, cmd.kind()),
        ClientMessage::ObjectMove(c) => (c.id.clone(), &c.canvas, cmd.kind()),
        ClientMessage::ObjectDelete(c) | ClientMessage::ObjectLike(c) => {
            (c.id.clone(), &c.canvas, cmd.kind())
        }
        ClientMessage::Clear(c) => (c.id.clone(), &c.canvas, cmd.kind()),
        _ => return None,
    })
}

/// The least role the command needs (docs/PROTOCOL.md's table). Fog
/// regions need a gm to create; on other objects' fog the state decides.
pub(crate) fn needed(cmd: &ClientMessage) -> Role {
    match cmd {
        ClientMessage::ObjectCreate(c) if c.kind == shared::protocol::FOG_KIND => Role::Gm,
        ClientMessage::Clear(_) => Role::Gm,
        ClientMessage::ObjectLike(_) => Role::Spectator,
        _ => Role::Player,
    }
}

/// Validates an object command or clear and builds its event and change.
pub(crate) fn prepare(
    cmd: ClientMessage,
    geometry: &CanvasGeometry,
    author: &Author,
    gm: bool,
    max_objects: usize,
) -> Result<Prepared, Invalid> {
    let ts = shared::now_ms();
    let mut created = None;
    let event = match cmd {
        ClientMessage::ObjectCreate(c) => {
            validate::object_create(&c, geometry)?;
            let id = fanout::objects::new_object_id();
            created = Some(id.clone());
            ServerMessage::ObjectCreated(ObjectCreated {
                canvas: c.canvas,
                seq: None,
                author: author.clone(),
                ts,
                object: ObjectState {
                    id,
                    kind: c.kind,
                    x: c.x,
                    y: c.y,
                    w: c.w,
                    h: c.h,
                    props: c.props,
                    likes: 0,
                    owner: author.id.clone(),
                },
            })
        }
        ClientMessage::ObjectUpdate(c) => {
            validate::object_update(&c)?;
            ServerMessage::ObjectUpdated(ObjectUpdated {
                canvas: c.canvas,
                seq: None,
                author: author.clone(),
                ts,
                object: c.object,
                props: c.props,
            })
        }
        ClientMessage::ObjectMove(c) => {
            validate::object_move(&c, geometry)?;
            ServerMessage::ObjectMoved(ObjectMoved {
                canvas: c.canvas,
                seq: None,
                author: author.clone(),
                ts,
                object: c.object,
                x: c.x,
                y: c.y,
                w: c.w,
                h: c.h,
            })
        }
        ClientMessage::ObjectDelete(c) => {
            validate::object_id(&c.object)?;
            ServerMessage::ObjectDeleted(object_event(c, author, ts))
        }
        ClientMessage::ObjectLike(c) => {
            validate::object_id(&c.object)?;
            ServerMessage::ObjectLiked(object_event(c, author, ts))
        }
        ClientMessage::Clear(c) => ServerMessage::Cleared(Cleared {
            canvas: c.canvas,
            seq: None,
            author: author.clone(),
            ts,
        }),
        other => {
            return Err(Invalid {
                code: shared::ErrorCode::InvalidMessage,
                message: format!("{} is not an object command", other.kind()),
            });
        }
    };
    let change = match ObjectOp::from_event(&event) {
        Some((op, _)) => Change::Object(ObjectChange {
            op,
            user: author.id.clone(),
            gm,
            max_objects,
        }),
        None => Change::Clear,
    };
    Ok(Prepared {
        event,
        change,
        created,
    })
}

fn object_event(c: shared::protocol::ObjectRef, author: &Author, ts: u64) -> ObjectEvent {
    ObjectEvent {
        canvas: c.canvas,
        seq: None,
        author: author.clone(),
        ts,
        object: c.object,
    }
}
