//! Objects and fog: `objects` (the snapshot), the object commands
//! (`object_create`, `object_update`, `object_move`, `object_delete`,
//! `object_like`) and `clear`: the role each needs, and the event and
//! canvas state change a valid one makes. The rules that depend on the
//! canvas's state (ownership, fog, one like per user, the object cap) are
//! applied atomically with the publish, in `store::objects` and the
//! publish script.

use super::{Caller, OpError, Payer, access, publish};
use crate::limits::OpClass;
use crate::state::AppState;
use shared::CanvasId;
use shared::auth::Role;
use shared::protocol::{
    Author, Cleared, ClientMessage, ObjectCreated, ObjectEvent, ObjectMoved, ObjectState,
    ObjectUpdated, ObjectsPage, Published, ServerMessage,
};
use shared::validate::{self, CanvasGeometry, Invalid};
use store::{Change, ObjectChange, ObjectOp};

/// A page of the canvas's objects after `after`, in id order, within the
/// reply byte budget, and the `seq` they include (fog only for a gm).
pub(crate) async fn list(
    state: &AppState,
    canvas: &CanvasId,
    gm: bool,
    after: Option<&str>,
) -> Result<ObjectsPage, OpError> {
    if let Some(after) = after {
        validate::object_id(after).map_err(OpError::invalid)?;
    }
    let budget = super::history::page_bytes(state);
    let page = state
        .log
        .objects_page(canvas, gm, after, budget)
        .await
        .map_err(|e| OpError::unavailable("objects", &e))?;
    Ok(ObjectsPage {
        canvas: canvas.clone(),
        seq: page.position.seq,
        epoch: page.position.epoch,
        objects: page.objects,
        next_after: page.next,
    })
}

/// An object command or clear on `canvas`: role, validation, rate, then
/// the atomic publish that applies the canvas-state rules. The ack's
/// result: the sequence number and the id of an object it creates; `None`
/// when it changed nothing (a repeated like).
pub(crate) async fn apply(
    state: &AppState,
    caller: &Caller,
    payer: &mut dyn Payer,
    geometry: &CanvasGeometry,
    canvas: &CanvasId,
    cmd: ClientMessage,
) -> Result<Option<Published>, OpError> {
    access::require(caller.role, needed(&cmd), cmd.kind(), canvas)?;
    let key = publish::op_key(state, caller, cmd.op_key())?;
    let max = state.settings.max_objects_per_canvas;
    let p = prepare(cmd, geometry, &caller.author, caller.gm(), max).map_err(OpError::invalid)?;
    payer.pay(OpClass::Objects, 1)?;
    let written = publish::durable(
        state,
        caller,
        canvas,
        &p.event,
        Some(&p.change),
        key.as_ref(),
    );
    Ok(publish::published(written.await?, p.created))
}

/// A validated command, ready to publish.
struct Prepared {
    pub event: ServerMessage,
    pub change: Change,
    /// The object a create made (its id goes in the ack).
    pub created: Option<String>,
}

/// The least role the command needs (docs/PROTOCOL.md's table). Fog
/// regions need a gm to create; on other objects' fog the state decides.
fn needed(cmd: &ClientMessage) -> Role {
    match cmd {
        ClientMessage::ObjectCreate(c) if c.kind == shared::protocol::FOG_KIND => Role::Gm,
        ClientMessage::Clear(_) => Role::Gm,
        ClientMessage::ObjectLike(_) => Role::Spectator,
        _ => Role::Player,
    }
}

/// Validates an object command or clear and builds its event and change.
fn prepare(
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
            let id = store::objects::new_object_id();
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
