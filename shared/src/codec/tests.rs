//! Tests of `codec`.

use super::*;
use crate::error::ErrorCode;
use crate::ids::CanvasId;
use crate::protocol::*;

fn canvas() -> CanvasId {
    CanvasId::new("lobby").expect("valid")
}

fn author() -> Author {
    Author {
        id: "u1".into(),
        name: Some("Ada".into()),
    }
}

fn all_client_messages() -> Vec<ClientMessage> {
    vec![
        ClientMessage::Handshake(Handshake {
            id: Some(RequestId::Num(1)),
            token: "t".into(),
        }),
        ClientMessage::Refresh(Handshake {
            id: Some(RequestId::Num(2)),
            token: "t2".into(),
        }),
        ClientMessage::Ping(Ping {
            id: None,
            ts: Some(-5),
        }),
        ClientMessage::Join(Join {
            id: Some(RequestId::Str("j".into())),
            canvas: canvas(),
            echo: true,
            since: Some(40),
            epoch: Some("e1".into()),
        }),
        ClientMessage::Leave(Leave {
            id: None,
            canvas: canvas(),
        }),
        ClientMessage::Draw(Draw {
            id: Some(RequestId::Num(9)),
            canvas: canvas(),
            key: None,
            pixels: vec![PixelInput {
                x: 1,
                y: 2,
                color: 3,
            }],
        }),
        ClientMessage::Cursor(CursorMove {
            id: None,
            canvas: canvas(),
            x: 1.5,
            y: 2.25,
        }),
        ClientMessage::Chat(ChatSend {
            id: Some(RequestId::Num(3)),
            canvas: canvas(),
            key: None,
            text: "héllo <b>".into(),
        }),
        ClientMessage::History(HistoryRequest {
            id: Some(RequestId::Num(4)),
            canvas: canvas(),
            since: 10,
            limit: Some(50),
        }),
        ClientMessage::ChatHistory(ChatHistoryRequest {
            id: Some(RequestId::Num(5)),
            canvas: canvas(),
            before: Some(90),
            limit: Some(20),
        }),
        ClientMessage::ObjectCreate(ObjectCreate {
            id: Some(RequestId::Num(20)),
            canvas: canvas(),
            key: None,
            kind: "token".into(),
            x: 1.5,
            y: 2.0,
            w: 1.0,
            h: 1.0,
            props: [(
                "label".to_owned(),
                serde_json::json!({"text": "orc", "hp": [3, 7.5]}),
            )]
            .into(),
        }),
        ClientMessage::ObjectUpdate(ObjectUpdate {
            id: Some(RequestId::Num(21)),
            canvas: canvas(),
            key: None,
            object: "9f2c".into(),
            props: [
                ("hp".to_owned(), serde_json::json!(2)),
                ("gone".to_owned(), serde_json::Value::Null),
            ]
            .into(),
        }),
        ClientMessage::ObjectMove(ObjectMove {
            id: Some(RequestId::Num(22)),
            canvas: canvas(),
            key: None,
            object: "9f2c".into(),
            x: 3.0,
            y: 4.0,
            w: None,
            h: Some(2.0),
        }),
        ClientMessage::ObjectDelete(ObjectRef {
            id: None,
            canvas: canvas(),
            key: None,
            object: "9f2c".into(),
        }),
        ClientMessage::ObjectLike(ObjectRef {
            id: Some(RequestId::Num(23)),
            canvas: canvas(),
            key: None,
            object: "9f2c".into(),
        }),
        ClientMessage::Objects(ObjectsRequest {
            id: Some(RequestId::Num(24)),
            canvas: canvas(),
            after: None,
        }),
        ClientMessage::Clear(CanvasRequest {
            id: Some(RequestId::Num(25)),
            canvas: canvas(),
            key: None,
        }),
        ClientMessage::Activity(ActivitySend {
            id: Some(RequestId::Num(26)),
            canvas: canvas(),
            state: ActivityState::Editing,
            x: Some(1.0),
            y: Some(2.0),
            object: None,
        }),
        ClientMessage::Presence(PresenceRequest {
            id: Some(RequestId::Num(6)),
            canvas: canvas(),
        }),
        ClientMessage::Subscribe(ChannelRequest {
            id: Some(RequestId::Num(7)),
            channel: "global".into(),
        }),
        ClientMessage::Unsubscribe(ChannelRequest {
            id: None,
            channel: "global".into(),
        }),
        ClientMessage::Highlight(HighlightSend {
            id: Some(RequestId::Num(5)),
            canvas: canvas(),
            x: None,
            y: None,
            user: Some("ada".into()),
            duration_ms: 3000,
        }),
    ]
}

fn all_server_messages() -> Vec<ServerMessage> {
    vec![
        ServerMessage::Welcome(Welcome {
            connection_id: "gw-1".into(),
            user: UserInfo {
                id: "u1".into(),
                name: None,
            },
            node: "gw".into(),
            server_time: 1,
            encoding: Encoding::Msgpack,
            limits: AnnouncedLimits {
                max_message_bytes: 65536,
                max_canvases: 8,
                max_pixels_per_draw: 256,
                max_chat_chars: 2000,
                ping_interval_ms: 25000,
                idle_timeout_ms: 60000,
                rate_limits: [(
                    "chat".to_string(),
                    AnnouncedRate {
                        per_sec: 0.5,
                        burst: 20.0,
                    },
                )]
                .into_iter()
                .collect(),
                user_rate_limits: Default::default(),
                cursor_hz: 30,
            },
        }),
        ServerMessage::Pong(Pong {
            id: Some(RequestId::Num(1)),
            ts: Some(7),
            server_time: 8,
        }),
        ServerMessage::Ack(Ack {
            id: RequestId::Num(2),
            result: None,
        }),
        ServerMessage::Ack(Ack {
            id: RequestId::Str("j".into()),
            result: Some(AckResult::Joined(Joined {
                canvas: canvas(),
                width: 10,
                height: 20,
                palette_size: 32,
                echo: false,
                seq: 41,
                epoch: "e1".into(),
                resume: Some(ResumeOutcome::Replayed),
                role: crate::auth::Role::Player,
                presence: vec![PresentUser {
                    id: "ada".into(),
                    name: Some("Ada".into()),
                    role: crate::auth::Role::Gm,
                    since: 1,
                    connections: 2,
                    activity: Some(Activity {
                        state: ActivityState::Editing,
                        x: Some(3.0),
                        y: Some(4.5),
                        object: Some("9f2c".into()),
                        ts: 9,
                    }),
                }],
                presence_count: 2,
            })),
        }),
        ServerMessage::Ack(Ack {
            id: RequestId::Num(3),
            result: Some(AckResult::Published(Published {
                seq: 42,
                object: Some("9f2c".into()),
            })),
        }),
        ServerMessage::Ack(Ack {
            id: RequestId::Num(4),
            result: Some(AckResult::History(HistoryPage {
                canvas: canvas(),
                epoch: "e1".into(),
                seq: 12,
                complete: true,
                next_since: 11,
                events: vec![ServerMessage::Chat(ChatEvent {
                    canvas: canvas(),
                    seq: Some(11),
                    author: author(),
                    ts: 5,
                    text: "old".into(),
                })],
            })),
        }),
        ServerMessage::Error(ErrorReply {
            id: None,
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            retry_after_ms: Some(250),
        }),
        ServerMessage::Draw(DrawEvent {
            canvas: canvas(),
            seq: Some(42),
            author: author(),
            ts: 5,
            pixels: vec![Pixel {
                x: 1,
                y: 2,
                color: 31,
            }],
        }),
        ServerMessage::Cursor(CursorEvent {
            canvas: canvas(),
            author: author(),
            ts: 5,
            x: 0.5,
            y: 3.0,
        }),
        ServerMessage::Chat(ChatEvent {
            canvas: canvas(),
            seq: Some(43),
            author: author(),
            ts: 5,
            text: "hi".into(),
        }),
        ServerMessage::Resync(Resync {
            canvas: canvas(),
            reason: ResyncReason::BusReconnected,
        }),
        ServerMessage::UserJoined(UserJoined {
            canvas: canvas(),
            user: PresentUser {
                id: "bob".into(),
                name: None,
                role: crate::auth::Role::Spectator,
                since: 7,
                connections: 1,
                activity: None,
            },
        }),
        ServerMessage::UserOnline(UserOnline {
            user: author(),
            ts: 12,
        }),
        ServerMessage::UserOffline(UserOffline {
            user: "bob".into(),
            ts: 13,
        }),
        ServerMessage::Activity(ActivityEvent {
            canvas: canvas(),
            user: author(),
            activity: Activity {
                state: ActivityState::Typing,
                x: None,
                y: None,
                object: None,
                ts: 10,
            },
        }),
        ServerMessage::UserLeft(UserLeft {
            canvas: canvas(),
            user: "bob".into(),
        }),
        ServerMessage::Notification(Notification {
            data: serde_json::json!({"kind": "invite", "n": [1, 2.5, null]}),
            ts: 8,
        }),
        ServerMessage::Announcement(Announcement {
            text: "maintenance <at> 5".into(),
            ts: 9,
        }),
        ServerMessage::Notice(Notice {
            canvas: canvas(),
            seq: Some(12),
            data: serde_json::json!("round 2"),
            ts: 10,
        }),
        ServerMessage::CanvasesChanged(CanvasesChanged {
            canvas: canvas(),
            change: "created".into(),
            ts: 11,
        }),
        ServerMessage::Ack(Ack {
            id: RequestId::Num(9),
            result: Some(AckResult::Presence(PresenceList {
                canvas: canvas(),
                users: Vec::new(),
            })),
        }),
        ServerMessage::ObjectCreated(ObjectCreated {
            canvas: canvas(),
            seq: Some(12),
            author: author(),
            ts: 7,
            object: ObjectState {
                id: "9f2c".into(),
                kind: "fog".into(),
                x: 0.0,
                y: 0.5,
                w: 10.0,
                h: 4.0,
                props: [("shade".to_owned(), serde_json::json!(0.75))].into(),
                likes: 0,
                owner: "u1".into(),
            },
        }),
        ServerMessage::ObjectUpdated(ObjectUpdated {
            canvas: canvas(),
            seq: Some(13),
            author: author(),
            ts: 8,
            object: "9f2c".into(),
            props: [("shade".to_owned(), serde_json::Value::Null)].into(),
        }),
        ServerMessage::ObjectMoved(ObjectMoved {
            canvas: canvas(),
            seq: Some(14),
            author: author(),
            ts: 9,
            object: "9f2c".into(),
            x: 1.0,
            y: 2.0,
            w: Some(3.0),
            h: None,
        }),
        ServerMessage::ObjectDeleted(ObjectEvent {
            canvas: canvas(),
            seq: Some(15),
            author: author(),
            ts: 10,
            object: "9f2c".into(),
        }),
        ServerMessage::ObjectLiked(ObjectEvent {
            canvas: canvas(),
            seq: Some(16),
            author: author(),
            ts: 11,
            object: "9f2c".into(),
        }),
        ServerMessage::Cleared(Cleared {
            canvas: canvas(),
            seq: Some(17),
            author: author(),
            ts: 12,
        }),
        ServerMessage::Hidden(Hidden {
            canvas: canvas(),
            seq: Some(18),
        }),
        ServerMessage::Ack(Ack {
            id: RequestId::Num(11),
            result: Some(AckResult::Objects(ObjectsPage {
                canvas: canvas(),
                seq: 18,
                epoch: "e".into(),
                objects: Vec::new(),
                next_after: None,
            })),
        }),
        ServerMessage::Ack(Ack {
            id: RequestId::Num(10),
            result: Some(AckResult::Chat(ChatPage {
                canvas: canvas(),
                messages: vec![ChatEvent {
                    canvas: canvas(),
                    seq: Some(7),
                    author: author(),
                    ts: 5,
                    text: "older".into(),
                }],
                next_before: Some(7),
            })),
        }),
        ServerMessage::Highlight(HighlightEvent {
            canvas: canvas(),
            author: author(),
            ts: 6,
            x: Some(3.5),
            y: Some(4.0),
            user: None,
            duration_ms: 1500,
        }),
    ]
}

#[test]
fn every_client_kind_is_listed() {
    let kinds: std::collections::BTreeSet<&str> = all_client_messages()
        .iter()
        .map(ClientMessage::kind)
        .collect();
    let listed: std::collections::BTreeSet<&str> = ClientMessage::KINDS.into_iter().collect();
    assert_eq!(kinds, listed);
}

#[test]
fn client_messages_round_trip_in_both_encodings() {
    for encoding in Encoding::ALL {
        for msg in all_client_messages() {
            let bytes = encode(encoding, &msg).expect("encodes");
            let back = decode_client(encoding, &bytes).expect("decodes");
            assert_eq!(back, msg, "{encoding:?}");
        }
    }
}

#[test]
fn server_messages_round_trip_in_both_encodings() {
    for encoding in Encoding::ALL {
        for msg in all_server_messages() {
            let bytes = encode(encoding, &msg).expect("encodes");
            let back = decode_server(encoding, &bytes).expect("decodes");
            assert_eq!(back, msg, "{encoding:?}");
        }
    }
}

#[test]
fn json_wire_form_is_flat_with_a_type_tag() {
    let msg = ClientMessage::Join(Join {
        id: Some(RequestId::Num(1)),
        canvas: canvas(),
        echo: false,
        since: None,
        epoch: None,
    });
    let json: serde_json::Value =
        serde_json::from_slice(&encode(Encoding::Json, &msg).expect("encodes")).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"type": "join", "id": 1, "canvas": "lobby", "echo": false})
    );
}

#[test]
fn msgpack_is_a_map_with_the_json_field_names() {
    let msg = ClientMessage::Leave(Leave {
        id: None,
        canvas: canvas(),
    });
    let bytes = encode(Encoding::Msgpack, &msg).expect("encodes");
    let value: serde_json::Value = rmp_serde::from_slice(&bytes).expect("generic decode");
    assert_eq!(
        value,
        serde_json::json!({"type": "leave", "canvas": "lobby"})
    );
}

fn json_err(s: &str) -> DecodeError {
    decode_client(Encoding::Json, s.as_bytes()).expect_err(s)
}

#[test]
fn malformed_and_unknown_input_is_rejected_with_the_id_when_readable() {
    assert_eq!(json_err("{not json").id, None);
    assert_eq!(json_err("[]").id, None);
    assert!(
        json_err(r#"["join", 1, "lobby", false]"#)
            .message
            .contains("object")
    );
    assert!(json_err(r#" "ping" "#).message.contains("object"));
    let unknown_type = json_err(r#"{"type":"explode","id":4}"#);
    assert_eq!(unknown_type.id, Some(RequestId::Num(4)));
    assert!(unknown_type.message.contains("explode"), "{unknown_type}");
    let missing = json_err(r#"{"type":"join","id":"a"}"#);
    assert_eq!(missing.id, Some(RequestId::Str("a".into())));
    assert!(missing.message.contains("canvas"), "{missing}");
    let unknown_field = json_err(r#"{"type":"leave","id":5,"canvas":"c","extra":1}"#);
    assert_eq!(unknown_field.id, Some(RequestId::Num(5)));
    assert!(unknown_field.message.contains("extra"), "{unknown_field}");
    let unknown_pixel_field =
        json_err(r#"{"type":"draw","canvas":"c","pixels":[{"x":1,"y":1,"color":1,"z":1}]}"#);
    assert!(unknown_pixel_field.message.contains('z'));
    assert!(
        json_err(r#"{"id":1,"canvas":"c"}"#)
            .message
            .contains("type")
    );
    assert!(
        json_err(r#"{"type":"join","canvas":"bad id"}"#)
            .message
            .contains("invalid canvas id")
    );
    assert!(
        json_err(r#"{"type":"chat","canvas":"c","text":5}"#)
            .message
            .contains("string")
    );
}

#[test]
fn msgpack_garbage_is_rejected() {
    for bad in [&[0xc1u8][..], &[0x92, 0x01, 0x02], &[], &[0x81, 0xa4, b't']] {
        assert!(decode_client(Encoding::Msgpack, bad).is_err(), "{bad:?}");
    }
    // A JSON payload on a MessagePack connection is not a MessagePack map.
    assert!(decode_client(Encoding::Msgpack, br#"{"type":"ping"}"#).is_err());
    // A well-formed map with an unknown type keeps its id.
    let bytes =
        rmp_serde::to_vec_named(&serde_json::json!({"type": "nope", "id": 3})).expect("encodes");
    let err = decode_client(Encoding::Msgpack, &bytes).expect_err("unknown type");
    assert_eq!(err.id, Some(RequestId::Num(3)));
}

#[test]
fn subprotocol_negotiation() {
    assert_eq!(Encoding::negotiate(None), Ok(None));
    assert_eq!(Encoding::negotiate(Some("")), Ok(None));
    assert_eq!(
        Encoding::negotiate(Some("easel.v1.msgpack, easel.v1.json")),
        Ok(Some(Encoding::Msgpack))
    );
    assert_eq!(
        Encoding::negotiate(Some("foo, easel.v1.json")),
        Ok(Some(Encoding::Json))
    );
    assert!(Encoding::negotiate(Some("graphql-ws")).is_err());
}

#[test]
fn long_error_messages_are_truncated_on_a_char_boundary() {
    let s = "é".repeat(300);
    let t = truncate(s);
    assert!(t.len() <= MAX_ERROR_MESSAGE);
    assert!(t.chars().all(|c| c == 'é'));
}
