//! Evicting a cold canvas from Redis (see `evict.lua`), for the persister,
//! which alone knows that everything up to the canvas's `seq` is in
//! Postgres and has stored its snapshot there first.

use shared::{CanvasId, keys};
use std::sync::LazyLock;

/// The eviction (see `evict.lua`).
static EVICT_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("evict.lua")));

/// Removes every Redis key of `canvas` if it is still at `seq`, all of it
/// persisted, with nobody on it; whether it did.
pub async fn evict_canvas<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    canvas: &CanvasId,
    seq: u64,
) -> redis::RedisResult<bool> {
    let mut call = EVICT_SCRIPT.prepare_invoke();
    call.key(keys::canvas_meta(canvas))
        .key(keys::canvas_pixels(canvas))
        .key(keys::canvas_log(canvas))
        .key(keys::canvas_objects(canvas))
        .key(keys::canvas_op_keys(canvas))
        .key(keys::canvas_op_expiry(canvas))
        .key(keys::canvas_presence(canvas))
        .key(keys::canvas_presence_info(canvas))
        .key(keys::canvas_presence_users(canvas))
        .arg(seq)
        .arg(keys::canvas_object_prefix(canvas))
        .arg(keys::canvas_likers_prefix(canvas));
    let evicted: i64 = call.invoke_async(conn).await?;
    Ok(evicted == 1)
}
