//! docs/PROTOCOL.md is checked against the code: every example decodes as
//! the message it claims to be, and every error and close code is documented.

use shared::codec::{Encoding, decode_client, decode_server};
use shared::protocol::ClientMessage;
use shared::{CloseCode, ErrorCode};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    std::fs::read_to_string(path).expect("docs/PROTOCOL.md is readable")
}

/// Code blocks whose info string is exactly `info`.
fn blocks(doc: &str, info: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match &mut current {
            None if line.trim() == format!("```{info}") => current = Some(String::new()),
            Some(body) if line.trim() == "```" => {
                out.push(std::mem::take(body));
                current = None;
            }
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn every_client_example_decodes() {
    let examples = blocks(&doc(), "json client");
    assert!(
        examples.len() >= 7,
        "expected an example per client message"
    );
    let mut kinds = std::collections::BTreeSet::new();
    for ex in examples {
        let msg = decode_client(Encoding::Json, ex.as_bytes())
            .unwrap_or_else(|e| panic!("client example does not decode ({e}):\n{ex}"));
        kinds.insert(msg.kind());
    }
    for kind in ClientMessage::KINDS {
        assert!(kinds.contains(kind), "no client example of {kind}");
    }
}

#[test]
fn every_server_example_decodes() {
    let examples = blocks(&doc(), "json server");
    let mut kinds = std::collections::BTreeSet::new();
    for ex in examples {
        let msg = decode_server(Encoding::Json, ex.as_bytes())
            .unwrap_or_else(|e| panic!("server example does not decode ({e}):\n{ex}"));
        kinds.insert(msg.kind());
    }
    for kind in [
        "welcome",
        "pong",
        "ack",
        "error",
        "draw",
        "cursor",
        "chat",
        "resync",
        "highlight",
        "user_joined",
        "user_left",
        "notification",
        "announcement",
        "notice",
        "canvases_changed",
        "object_created",
        "object_updated",
        "object_moved",
        "object_deleted",
        "object_liked",
        "cleared",
        "hidden",
        "activity",
        "user_online",
        "user_offline",
    ] {
        assert!(kinds.contains(kind), "no server example of {kind}");
    }
}

#[test]
fn every_error_and_close_code_is_documented() {
    let doc = doc();
    for code in ErrorCode::ALL {
        assert!(
            doc.contains(&format!("| `{}` |", code.as_str())),
            "{code} ({}) missing from the error code table",
            code.name()
        );
    }
    for code in CloseCode::ALL {
        assert!(
            doc.contains(&format!("| `{}` |", code.code())),
            "close code {} ({}) missing from the close code table",
            code.code(),
            code.name()
        );
    }
}
