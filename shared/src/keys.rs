//! Redis key and channel names.
//!
//! Everything that belongs to one canvas shares the hash tag `{c:<id>}`, so a
//! script touching a canvas's keys is legal on Redis Cluster and the canvas
//! channel maps to the same slot for sharded pub/sub.

use crate::ids::CanvasId;

/// Prefix of every Easel key and channel.
pub const PREFIX: &str = "easel";

/// The hash tag shared by all keys of one canvas.
pub fn canvas_tag(canvas: &CanvasId) -> String {
    format!("{{c:{canvas}}}")
}

/// The pub/sub channel carrying a canvas's live events.
pub fn canvas_channel(canvas: &CanvasId) -> String {
    format!("{PREFIX}:{{c:{canvas}}}:live")
}

/// Hash with the canvas's `seq` (last sequence number) and `epoch`.
pub fn canvas_meta(canvas: &CanvasId) -> String {
    format!("{PREFIX}:{{c:{canvas}}}:meta")
}

/// The canvas's pixels: a BITFIELD of palette indexes, row-major.
pub fn canvas_pixels(canvas: &CanvasId) -> String {
    format!("{PREFIX}:{{c:{canvas}}}:pixels")
}

/// The canvas's event log: a stream whose entry ids are `<seq>-0`, each with
/// one field `p` holding the bus payload.
pub fn canvas_log(canvas: &CanvasId) -> String {
    format!("{PREFIX}:{{c:{canvas}}}:log")
}

/// The canvas's remembered operation keys: a hash from `<user>\x1f<key>`
/// to `<seq> <object id a create made>`.
pub fn canvas_op_keys(canvas: &CanvasId) -> String {
    format!("{PREFIX}:{{c:{canvas}}}:opkeys")
}

/// When each remembered operation key expires: a sorted set of
/// `<user>\x1f<key>` scored in ms since the Unix epoch.
pub fn canvas_op_expiry(canvas: &CanvasId) -> String {
    format!("{PREFIX}:{{c:{canvas}}}:opexpiry")
}

/// Who is on the canvas: a sorted set of `<user>\x1f<node>\x1f<conn>`
/// scored by the entry's expiry (ms since the Unix epoch). (`pres`, not
/// the `presence` of releases that kept no per-user counts: during a
/// rolling upgrade the two never mix.)
pub fn canvas_presence(canvas: &CanvasId) -> String {
    format!("{PREFIX}:{{c:{canvas}}}:pres")
}

/// The presence entries' details (name, role, since), by entry.
pub fn canvas_presence_info(canvas: &CanvasId) -> String {
    format!("{PREFIX}:{{c:{canvas}}}:pres-info")
}

/// How many entries each user has in the presence set (a hash), so an
/// arrival and a departure are found without reading the whole set.
pub fn canvas_presence_users(canvas: &CanvasId) -> String {
    format!("{PREFIX}:{{c:{canvas}}}:pres-users")
}

/// The ids of the canvas's objects (a set).
pub fn canvas_objects(canvas: &CanvasId) -> String {
    format!("{PREFIX}:{{c:{canvas}}}:objects")
}

/// Prefix of one object's hash (kind, x, y, w, h, owner, likes, and
/// `p:<name>` = JSON per property): the object id follows.
pub fn canvas_object_prefix(canvas: &CanvasId) -> String {
    format!("{PREFIX}:{{c:{canvas}}}:o:")
}

/// Prefix of one object's likers set: the object id follows.
pub fn canvas_likers_prefix(canvas: &CanvasId) -> String {
    format!("{PREFIX}:{{c:{canvas}}}:l:")
}

/// How many shards the online registry is spread over: each has its own
/// hash tag, so on a Redis Cluster the registry's load spreads over the
/// masters instead of resting on one slot.
pub const ONLINE_SHARDS: u32 = 16;

/// The registry shard a user belongs to (FNV-1a of the id: the same on
/// every gateway and across releases).
pub fn online_shard(user: &str) -> u32 {
    let hash = user.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % ONLINE_SHARDS
}

/// Who is online anywhere in the cluster, for one shard of the users: a
/// sorted set of user ids scored by the latest expiry among their
/// connections. A shard's keys share the hash tag `{o:<shard>}`, so the
/// scripts that touch several are legal on a Redis Cluster.
pub fn online_index(shard: u32) -> String {
    format!("{PREFIX}:{{o:{shard}}}:users")
}

/// One user's connections anywhere in the cluster: a sorted set of
/// `<user>\x1f<node>\x1f<conn>` scored by expiry; the user id follows this
/// prefix (of the user's shard).
pub fn online_user_prefix(shard: u32) -> String {
    format!("{PREFIX}:{{o:{shard}}}:u:")
}

/// [`online_user_prefix`] with the user id: the user's connection set.
pub fn online_user(user: &str) -> String {
    format!("{}{user}", online_user_prefix(online_shard(user)))
}

/// The webhook feed: a stream of the events gateways queue for the
/// persister's webhook (presence changes, refusals), one entry each with
/// the event's JSON in field `e`.
pub fn webhook_feed() -> String {
    format!("{PREFIX}:{{webhooks}}:feed")
}

/// The canvas a channel name belongs to, if it is a canvas channel.
pub fn canvas_from_channel(channel: &str) -> Option<CanvasId> {
    let inner = channel
        .strip_prefix(PREFIX)?
        .strip_prefix(":{c:")?
        .strip_suffix("}:live")?;
    CanvasId::from_key_part(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_shards_are_stable_and_spread() {
        // Fixed values: gateways of different releases must agree.
        assert_eq!(online_shard(""), 0x811c_9dc5 % ONLINE_SHARDS);
        assert_eq!(
            online_user("ada"),
            format!("easel:{{o:{}}}:u:ada", online_shard("ada"))
        );
        let used: std::collections::HashSet<u32> = (0..1000)
            .map(|i| online_shard(&format!("user-{i}")))
            .collect();
        assert_eq!(used.len(), ONLINE_SHARDS as usize);
    }

    #[test]
    fn channel_names_round_trip_and_carry_the_hash_tag() {
        let c = CanvasId::new("board-1.x_y").expect("valid");
        let ch = canvas_channel(&c);
        assert_eq!(ch, "easel:{c:board-1.x_y}:live");
        for channel in [
            CanvasId::global_channel(),
            CanvasId::online_channel(),
            CanvasId::user_channel("ada"),
        ] {
            assert_eq!(
                canvas_from_channel(&canvas_channel(&channel)),
                Some(channel)
            );
        }
        assert!(ch.contains(&canvas_tag(&c)));
        for key in [canvas_meta(&c), canvas_pixels(&c), canvas_log(&c)] {
            assert!(key.contains(&canvas_tag(&c)), "{key} lacks the hash tag");
        }
        assert_eq!(canvas_from_channel(&ch), Some(c));
        assert_eq!(canvas_from_channel("easel:{c:bad id}:live"), None);
        assert_eq!(canvas_from_channel("other:{c:a}:live"), None);
        assert_eq!(canvas_from_channel("easel:{c:a}:stream"), None);
    }
}
