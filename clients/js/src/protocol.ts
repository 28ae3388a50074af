// Generated from shared/src/protocol by shared/tests/typescript.rs (ts-rs).
// Do not edit: change the Rust types and run
// EASEL_WRITE_TS=1 cargo test -p shared --test typescript

export type JsonValue = number | string | boolean | Array<JsonValue> | { [key in string]: JsonValue } | null;

export type CanvasId = string;

export type RequestId = number | string;

export type Role = "none" | "spectator" | "player" | "gm";

export type Encoding = "json" | "msgpack";

export type ErrorCode = "E001" | "E002" | "E003" | "E004" | "E005" | "E006" | "E007" | "E008" | "E009" | "E010" | "E011" | "E012" | "E013";

export type ClientMessage = { "type": "handshake" } & Handshake | { "type": "ping" } & Ping | { "type": "refresh" } & Handshake | { "type": "join" } & Join | { "type": "leave" } & Leave | { "type": "draw" } & Draw | { "type": "cursor" } & CursorMove | { "type": "chat" } & ChatSend | { "type": "history" } & HistoryRequest | { "type": "chat_history" } & ChatHistoryRequest | { "type": "highlight" } & HighlightSend | { "type": "presence" } & PresenceRequest | { "type": "object_create" } & ObjectCreate | { "type": "object_update" } & ObjectUpdate | { "type": "object_move" } & ObjectMove | { "type": "object_delete" } & ObjectRef | { "type": "object_like" } & ObjectRef | { "type": "objects" } & ObjectsRequest | { "type": "clear" } & CanvasRequest | { "type": "activity" } & ActivitySend | { "type": "subscribe" } & ChannelRequest | { "type": "unsubscribe" } & ChannelRequest;

export type Handshake = { id?: RequestId | null, 
/**
 * A JWT signed with the configured algorithm and key.
 */
token: string, };

export type Ping = { id?: RequestId | null, ts?: number | null, };

export type Join = { id?: RequestId | null, canvas: CanvasId, 
/**
 * Also deliver this connection's own draw/cursor/chat events back to it.
 */
echo: boolean, 
/**
 * Resume: the last sequence number this client has applied. The events
 * after it are replayed before live ones.
 */
since?: number | null, 
/**
 * The epoch `since` belongs to; a different current epoch means the
 * history was lost and the client must reload the snapshot.
 */
epoch?: string | null, };

export type Leave = { id?: RequestId | null, canvas: CanvasId, };

export type PixelInput = { x: number, y: number, 
/**
 * Palette index.
 */
color: number, };

export type Draw = { id?: RequestId | null, canvas: CanvasId, 
/**
 * Names this operation so a resend is not applied twice (see
 * docs/PROTOCOL.md, "Operation keys").
 */
key?: string | null, pixels: Array<PixelInput>, };

export type CursorMove = { id?: RequestId | null, canvas: CanvasId, x: number, y: number, };

export type ChatSend = { id?: RequestId | null, canvas: CanvasId, 
/**
 * Names this operation so a resend is not applied twice (see
 * docs/PROTOCOL.md, "Operation keys").
 */
key?: string | null, text: string, };

export type HistoryRequest = { id?: RequestId | null, canvas: CanvasId, since: number, limit?: number | null, };

export type ChatHistoryRequest = { id?: RequestId | null, canvas: CanvasId, before?: number | null, limit?: number | null, };

export type HighlightSend = { id?: RequestId | null, canvas: CanvasId, x?: number | null, y?: number | null, user?: string | null, duration_ms: number, };

export type PresenceRequest = { id?: RequestId | null, canvas: CanvasId, };

export type ObjectCreate = { id?: RequestId | null, canvas: CanvasId, 
/**
 * Names this operation so a resend is not applied twice (see
 * docs/PROTOCOL.md, "Operation keys").
 */
key?: string | null, kind: string, x: number, y: number, w: number, h: number, props?: { [key in string]: JsonValue }, };

export type ObjectUpdate = { id?: RequestId | null, canvas: CanvasId, 
/**
 * Names this operation so a resend is not applied twice (see
 * docs/PROTOCOL.md, "Operation keys").
 */
key?: string | null, object: string, props: { [key in string]: JsonValue }, };

export type ObjectMove = { id?: RequestId | null, canvas: CanvasId, 
/**
 * Names this operation so a resend is not applied twice (see
 * docs/PROTOCOL.md, "Operation keys").
 */
key?: string | null, object: string, x: number, y: number, w?: number | null, h?: number | null, };

export type ObjectRef = { id?: RequestId | null, canvas: CanvasId, 
/**
 * Names this operation so a resend is not applied twice (see
 * docs/PROTOCOL.md, "Operation keys").
 */
key?: string | null, object: string, };

export type ObjectsRequest = { id?: RequestId | null, canvas: CanvasId, 
/**
 * The previous page's `next_after`; absent for the first page.
 */
after?: string | null, };

export type CanvasRequest = { id?: RequestId | null, canvas: CanvasId, 
/**
 * Names this operation so a resend is not applied twice (see
 * docs/PROTOCOL.md, "Operation keys").
 */
key?: string | null, };

export type ActivitySend = { id?: RequestId | null, canvas: CanvasId, state: ActivityState, x?: number | null, y?: number | null, object?: string | null, };

export type ActivityState = "active" | "typing" | "editing" | "idle";

export type ChannelRequest = { id?: RequestId | null, channel: string, };

export type ServerMessage = { "type": "welcome" } & Welcome | { "type": "pong" } & Pong | { "type": "ack" } & Ack | { "type": "error" } & ErrorReply | { "type": "draw" } & DrawEvent | { "type": "cursor" } & CursorEvent | { "type": "chat" } & ChatEvent | { "type": "resync" } & Resync | { "type": "highlight" } & HighlightEvent | { "type": "user_joined" } & UserJoined | { "type": "user_left" } & UserLeft | { "type": "notification" } & Notification | { "type": "announcement" } & Announcement | { "type": "notice" } & Notice | { "type": "canvases_changed" } & CanvasesChanged | { "type": "access_changed" } & AccessChanged | { "type": "object_created" } & ObjectCreated | { "type": "object_updated" } & ObjectUpdated | { "type": "object_moved" } & ObjectMoved | { "type": "object_deleted" } & ObjectEvent | { "type": "object_liked" } & ObjectEvent | { "type": "cleared" } & Cleared | { "type": "hidden" } & Hidden | { "type": "activity" } & ActivityEvent | { "type": "user_online" } & UserOnline | { "type": "user_offline" } & UserOffline;

export type Welcome = { 
/**
 * Unique across the cluster: `<node>-<n>`.
 */
connection_id: string, user: UserInfo, 
/**
 * The gateway node serving this connection.
 */
node: string, 
/**
 * Server clock, milliseconds since the Unix epoch.
 */
server_time: number, encoding: Encoding, limits: AnnouncedLimits, };

export type UserInfo = { 
/**
 * The token's `sub`.
 */
id: string, 
/**
 * The token's `name`, if it had one.
 */
name?: string | null, };

export type AnnouncedLimits = { max_message_bytes: number, max_canvases: number, max_pixels_per_draw: number, max_chat_chars: number, ping_interval_ms: number, idle_timeout_ms: number, 
/**
 * This connection's buckets by operation class (`pixels`, `chat`,
 * `cursors`, `objects`).
 */
rate_limits: { [key in string]: AnnouncedRate }, 
/**
 * The user's buckets on this gateway, shared by its connections and
 * REST requests, by operation class.
 */
user_rate_limits: { [key in string]: AnnouncedRate }, 
/**
 * Cursor updates published per second per connection and canvas (0:
 * every update).
 */
cursor_hz: number, };

export type AnnouncedRate = { per_sec: number, burst: number, };

export type Pong = { id?: RequestId | null, 
/**
 * The `ts` of the `ping`, unchanged.
 */
ts?: number | null, server_time: number, };

export type Ack = { id: RequestId, result?: AckResult | null, };

export type AckResult = Joined | HistoryPage | ObjectsPage | Published | PresenceList | ChatPage;

export type Joined = { canvas: CanvasId, width: number, height: number, palette_size: number, echo: boolean, 
/**
 * The canvas's position at the join: every durable event after the
 * ack has a greater `seq`, starting at `seq + 1`, with no gap.
 */
seq: number, 
/**
 * Changes whenever the canvas's history in Redis is lost; sequence
 * numbers are only comparable within one epoch.
 */
epoch: string, 
/**
 * Present when the join asked to resume (`since`): what happened.
 */
resume?: ResumeOutcome | null, 
/**
 * This connection's role on the canvas: what it may do there.
 */
role: Role, 
/**
 * The users on the canvas, this one included; empty on canvases with
 * more connections than the gateway lists (ask with `presence`).
 */
presence: Array<PresentUser>, 
/**
 * Connections on the canvas, on every gateway.
 */
presence_count: number, };

export type ResumeOutcome = "replayed" | "epoch_changed" | "history_unavailable" | "ahead";

export type HistoryPage = { canvas: CanvasId, epoch: string, 
/**
 * The canvas's position when the page was read.
 */
seq: number, 
/**
 * False when events after `since` are no longer kept anywhere.
 */
complete: boolean, 
/**
 * The `since` to ask for the next page.
 */
next_since: number, events: Array<ServerMessage>, };

export type ChatPage = { canvas: CanvasId, 
/**
 * Each a `chat` event as it was delivered, with its `seq`.
 */
messages: Array<ChatEvent>, 
/**
 * The `before` to ask for older messages; absent when there are none.
 */
next_before?: number | null, };

export type ObjectsPage = { canvas: CanvasId, seq: number, epoch: string, objects: Array<ObjectState>, 
/**
 * The `after` for the next page; absent on the last page.
 */
next_after?: string | null, };

export type Published = { seq: number, 
/**
 * The new object's id (`object_create`).
 */
object?: string | null, };

export type PresenceList = { canvas: CanvasId, users: Array<PresentUser>, };

export type ErrorReply = { id?: RequestId | null, code: ErrorCode, 
/**
 * Human-readable detail; not stable, do not match on it.
 */
message: string, 
/**
 * With `E004`: how long to wait before retrying.
 */
retry_after_ms?: number | null, };

export type Author = { id: string, name?: string | null, };

export type Pixel = { x: number, y: number, 
/**
 * Palette index.
 */
color: number, };

export type DrawEvent = { canvas: CanvasId, 
/**
 * The canvas's sequence number of this event: gapless and increasing
 * per canvas. Always present on delivery; absent only inside the bus
 * frame, whose own sequence field is authoritative.
 */
seq?: number | null, author: Author, 
/**
 * Server time of ingest, milliseconds since the Unix epoch.
 */
ts: number, pixels: Array<Pixel>, };

export type CursorEvent = { canvas: CanvasId, author: Author, ts: number, x: number, y: number, };

export type ChatEvent = { canvas: CanvasId, 
/**
 * See [`DrawEvent::seq`].
 */
seq?: number | null, author: Author, ts: number, text: string, };

export type HighlightEvent = { canvas: CanvasId, author: Author, ts: number, x?: number | null, y?: number | null, user?: string | null, duration_ms: number, };

export type Resync = { canvas: CanvasId, reason: ResyncReason, };

export type ResyncReason = "bus_reconnected" | "history_unavailable";

export type UserJoined = { canvas: CanvasId, user: PresentUser, };

export type UserLeft = { canvas: CanvasId, user: string, };

export type PresentUser = { id: string, name?: string | null, role: Role, 
/**
 * When this user's earliest connection still on the canvas joined, ms
 * since the Unix epoch.
 */
since: number, 
/**
 * The user's connections on the canvas, across gateways.
 */
connections: number, 
/**
 * What the user last said it is doing here (its latest `activity`
 * on any of its connections), if anything.
 */
activity?: Activity | null, };

export type Activity = { state: ActivityState, x?: number | null, y?: number | null, object?: string | null, 
/**
 * When it was said, ms since the Unix epoch.
 */
ts: number, };

export type ActivityEvent = { canvas: CanvasId, user: Author, activity: Activity, };

export type Notification = { data: JsonValue, ts: number, };

export type Announcement = { text: string, ts: number, };

export type Notice = { canvas: CanvasId, 
/**
 * Set when the server API published it durably: it is numbered and
 * kept in the history like any durable event.
 */
seq?: number | null, data: JsonValue, ts: number, };

export type CanvasesChanged = { canvas: CanvasId, change: string, ts: number, };

export type AccessChanged = { canvas: CanvasId, role: Role, ts: number, };

export type ObjectState = { id: string, kind: string, x: number, y: number, w: number, h: number, props: { [key in string]: JsonValue }, 
/**
 * Users who liked it.
 */
likes: number, 
/**
 * The user who created it.
 */
owner: string, };

export type ObjectCreated = { canvas: CanvasId, 
/**
 * See [`DrawEvent::seq`].
 */
seq?: number | null, author: Author, ts: number, object: ObjectState, };

export type ObjectUpdated = { canvas: CanvasId, seq?: number | null, author: Author, ts: number, object: string, props: { [key in string]: JsonValue }, };

export type ObjectMoved = { canvas: CanvasId, seq?: number | null, author: Author, ts: number, object: string, x: number, y: number, w?: number | null, h?: number | null, };

export type ObjectEvent = { canvas: CanvasId, seq?: number | null, author: Author, ts: number, object: string, };

export type Cleared = { canvas: CanvasId, seq?: number | null, author: Author, ts: number, };

export type Hidden = { canvas: CanvasId, seq?: number | null, };

export type UserOnline = { user: Author, ts: number, };

export type UserOffline = { user: string, ts: number, };
