//! docs/openapi.json against the gateway: it lists exactly the routes of
//! the public port (`gateway::ROUTES`, which the router is built from),
//! every path parameter is declared, and a running gateway answers every
//! listed method on every path (not 405, not the router's "no such route"),
//! refuses the methods it does not list with 405, and refuses every server
//! API call without the key.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use clap::Parser;
use common::*;
use gateway::Config;
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn document() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

/// A parameter, following a `$ref` into `components`.
fn resolve<'a>(doc: &'a serde_json::Value, p: &'a serde_json::Value) -> &'a serde_json::Value {
    match p["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &doc["components"]["parameters"][name]
        }
        None => p,
    }
}

#[test]
fn the_document_lists_exactly_the_routes_with_their_path_parameters() {
    let doc = document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let routes: BTreeSet<(String, String)> = gateway::ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(
        routes.len(),
        gateway::ROUTES.len(),
        "a route is listed twice"
    );
    let listed = documented(&doc);
    let missing: Vec<_> = routes.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "docs/openapi.json lists routes the gateway has not: {extra:?}"
    );
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let wanted: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in ops.as_object().unwrap() {
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| resolve(&doc, p))
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, wanted, "{method} {path}: path parameters");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            for r in op["responses"].as_object().unwrap().values() {
                if let Some(name) = r["$ref"].as_str() {
                    let name = name.rsplit('/').next().unwrap();
                    assert!(doc["components"]["responses"][name].is_object(), "{name}");
                }
            }
        }
    }
}

/// A user's token from the dev gateway's `/dev/token`.
async fn gateway_dev_token(addr: std::net::SocketAddr) -> String {
    let (status, _, raw) = testkit::http::get(addr, "/dev/token?user=someone", None).await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_gateway_answers_every_listed_method_and_refuses_the_others() {
    // A --dev gateway with its own secret: /dev/token is routed too.
    let settings = Config::try_parse_from([
        "gateway",
        "--dev",
        "--api-keys=openapi-key-0123456789abcdef0123",
    ])
    .unwrap()
    .into_settings()
    .unwrap();
    let g = Gateway::start(settings).await;
    let mut paths: BTreeSet<&str> = BTreeSet::new();
    for r in gateway::ROUTES {
        paths.insert(r.path);
        let path = r.path.replace("{id}", "x").replace("{user}", "u");
        let (status, _, body) = testkit::http::request(g.addr, r.method, &path, None, None).await;
        assert_ne!(status, 405, "{} {}", r.method, r.path);
        // The router's own 404 has no body; every handler's refusal has one.
        assert!(
            status != 404 || !body.is_empty(),
            "{} {} is not routed",
            r.method,
            r.path
        );
    }
    // Every server API call refuses a caller without the key.
    let user = format!("Bearer {}", gateway_dev_token(g.addr).await);
    let bad = ["ApiKey wrong-key-0123456789abcdef0123", user.as_str()];
    for r in gateway::ROUTES
        .iter()
        .filter(|r| r.path.starts_with("/api/server/"))
    {
        let path = r.path.replace("{id}", "x").replace("{user}", "u");
        for auth in [None, Some(bad[0]), Some(bad[1])] {
            let body = Some(br#"{"data": 1, "text": "x", "role": "gm"}"#.as_slice());
            let (status, _, raw) =
                testkit::http::request(g.addr, r.method, &path, auth, body).await;
            let err: serde_json::Value = serde_json::from_slice(&raw).unwrap();
            assert_eq!(
                (status, err["code"].as_str()),
                (401, Some("E002")),
                "{} {} with {auth:?}",
                r.method,
                r.path
            );
        }
    }
    for path in paths {
        let listed: Vec<&str> = gateway::ROUTES
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.method)
            .collect();
        let concrete = path.replace("{id}", "x").replace("{user}", "u");
        for method in METHODS.iter().filter(|m| !listed.contains(m)) {
            let (status, _, _) =
                testkit::http::request(g.addr, method, &concrete, None, None).await;
            assert_eq!(
                status, 405,
                "{method} {path} answers though the table does not list it"
            );
        }
    }
    g.stop().await;
}
