//! The signature checks docs/PROTOCOL.md gives app developers (JavaScript
//! and Python, under "Webhooks") accept what the persister signs, and
//! refuse a changed body, another secret and an old timestamp: each is run
//! with the real `node` and `python3`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// The code block of `lang` in the "Webhooks" section.
fn snippet(lang: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let section = doc
        .split("### Webhooks")
        .nth(1)
        .expect("a Webhooks section");
    let start = section
        .find(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("a {lang} block"));
    let body = &section[start + lang.len() + 4..];
    body[..body.find("```").unwrap()].to_owned()
}

/// Runs `program` on `source` (with `call` appended), which prints the
/// verdicts; what it printed.
fn run(program: &str, args: &[&str], source: String) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(if program == "node" {
        "check.mjs"
    } else {
        "check.py"
    });
    std::fs::write(&file, source).unwrap();
    let out = Command::new(program)
        .args(args)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_documented_checks_accept_our_signatures_and_nothing_else() {
    let secret = "the-webhook-secret-0123";
    let body = r#"{"events":[{"id":"lobby:1","event":{"type":"chat"}}]}"#;
    let now = shared::now_ms() / 1000;
    let good = persister::webhooks::signature(secret.as_bytes(), now, body.as_bytes());
    let old = persister::webhooks::signature(secret.as_bytes(), now - 3600, body.as_bytes());
    let cases = [
        (body, good.as_str(), secret),
        (&body.replace("chat", "chat "), good.as_str(), secret),
        (body, good.as_str(), "another-secret-0123456"),
        (body, old.as_str(), secret),
    ];
    let js_calls: String = cases
        .iter()
        .map(|(b, h, s)| format!("console.log(verified(Buffer.from({b:?}), {h:?}, {s:?}));\n"))
        .collect();
    let py_calls: String = cases
        .iter()
        .map(|(b, h, s)| format!("print(verified({b:?}.encode(), {h:?}, {s:?}.encode()))\n"))
        .collect();
    let js = run("node", &[], snippet("js") + &js_calls);
    assert_eq!(
        js.split_whitespace().collect::<Vec<_>>(),
        ["true", "false", "false", "false"]
    );
    let py = run("python3", &[], snippet("python") + &py_calls);
    assert_eq!(
        py.split_whitespace().collect::<Vec<_>>(),
        ["True", "False", "False", "False"]
    );
}
