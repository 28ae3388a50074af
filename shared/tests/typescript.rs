//! The SDK's protocol types (`clients/js/src/protocol.ts`) are generated
//! from the Rust types with ts-rs; this test fails when the file and the
//! types differ. Regenerate with
//! `EASEL_WRITE_TS=1 cargo test -p shared --test typescript`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use shared::protocol::*;
use shared::role::Role;
use shared::{CanvasId, Encoding, ErrorCode, RequestId};
use ts_rs::{Config, TS};

macro_rules! decls {
    ($cfg:expr, $($t:ty),* $(,)?) => {
        vec![$(<$t as TS>::decl($cfg)),*]
    };
}

fn generated() -> String {
    // JSON numbers are JavaScript numbers: sequence numbers, timestamps
    // and counts stay far below 2^53.
    let cfg = Config::new().with_large_int("number");
    let cfg = &cfg;
    let mut decls = vec![<serde_json::Value as TS>::decl(cfg)];
    decls.extend(decls!(
        cfg,
        CanvasId,
        RequestId,
        Role,
        Encoding,
        ErrorCode,
        // Commands
        ClientMessage,
        Handshake,
        Ping,
        Join,
        Leave,
        PixelInput,
        Draw,
        CursorMove,
        ChatSend,
        HistoryRequest,
        ChatHistoryRequest,
        HighlightSend,
        PresenceRequest,
        ObjectCreate,
        ObjectUpdate,
        ObjectMove,
        ObjectRef,
        ObjectsRequest,
        CanvasRequest,
        ActivitySend,
        ActivityState,
        ChannelRequest,
        // Replies
        ServerMessage,
        Welcome,
        UserInfo,
        AnnouncedLimits,
        AnnouncedRate,
        Pong,
        Ack,
        AckResult,
        Joined,
        ResumeOutcome,
        HistoryPage,
        ChatPage,
        ObjectsPage,
        Published,
        PresenceList,
        ErrorReply,
        // Events and the values they carry
        Author,
        Pixel,
        DrawEvent,
        CursorEvent,
        ChatEvent,
        HighlightEvent,
        Resync,
        ResyncReason,
        UserJoined,
        UserLeft,
        PresentUser,
        Activity,
        ActivityEvent,
        Notification,
        Announcement,
        Notice,
        CanvasesChanged,
        AccessChanged,
        ObjectState,
        ObjectCreated,
        ObjectUpdated,
        ObjectMoved,
        ObjectEvent,
        Cleared,
        Hidden,
        UserOnline,
        UserOffline,
    ));
    let mut out = String::from(
        "// Generated from shared/src/protocol by shared/tests/typescript.rs (ts-rs).\n\
         // Do not edit: change the Rust types and run\n\
         // EASEL_WRITE_TS=1 cargo test -p shared --test typescript\n\n",
    );
    for decl in decls {
        out.push_str("export ");
        out.push_str(decl.trim());
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[test]
fn the_sdk_protocol_types_match_the_rust_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../clients/js/src/protocol.ts");
    let want = generated();
    if std::env::var_os("EASEL_WRITE_TS").is_some() {
        std::fs::write(path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "{path} differs from the Rust protocol types: run \
         EASEL_WRITE_TS=1 cargo test -p shared --test typescript and commit it"
    );
}
