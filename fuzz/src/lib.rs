//! Mutation fuzzing on the stable toolchain (cargo-fuzz needs nightly): the
//! code that reads untrusted bytes, fed corpus entries (`fuzz/corpus/`)
//! mutated by bit flips, byte edits, deletions, duplications, splices and
//! inserted "interesting" tokens (nesting bombs, huge numbers, control
//! characters, MessagePack markers). Each target must return, never panic
//! and never recurse past the stack: a panic is a finding, saved under
//! `fuzz/crashes/`.
//!
//! Targets:
//! - `client`: a client frame decoded as JSON and as MessagePack, then
//!   validated as the gateway would (geometry, limits, operation key) and
//!   encoded back;
//! - `bus`: a bus payload split and its event decoded, as a gateway does
//!   with what arrives from Redis;
//! - `token`: a JWT verified (HS256).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::auth::{AuthSettings, JwtAlgorithm, TokenVerifier, VerifyKey};
use shared::codec::{self, Encoding};
use shared::protocol::ClientMessage;
use shared::validate::{self, CanvasGeometry, CommandLimits};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What one target reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Client,
    Bus,
    Token,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Client, Target::Bus, Target::Token];

    pub fn name(self) -> &'static str {
        match self {
            Target::Client => "client",
            Target::Bus => "bus",
            Target::Token => "token",
        }
    }

    /// The corpus directory under `fuzz/corpus/`: the protocol's JSON
    /// examples (docs/PROTOCOL.md), from which the MessagePack and bus
    /// frame seeds are made at load time; tokens are minted.
    fn corpus_dir(self) -> &'static str {
        match self {
            Target::Client | Target::Token => "client",
            Target::Bus => "server",
        }
    }
}

/// The secret tokens are minted and verified with.
const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef0123456789";

/// Runs one input through `target`.
pub fn run_one(target: Target, input: &[u8], verifier: &TokenVerifier) {
    match target {
        Target::Client => client(input),
        Target::Bus => bus(input),
        Target::Token => {
            let _ = verifier.verify(&String::from_utf8_lossy(input));
        }
    }
}

fn client(input: &[u8]) {
    let geometry = CanvasGeometry {
        width: 100,
        height: 100,
        palette_size: 32,
    };
    let limits = CommandLimits {
        max_pixels_per_draw: 256,
    };
    for encoding in [Encoding::Json, Encoding::Msgpack] {
        let Ok(msg) = codec::decode_client(encoding, input) else {
            continue;
        };
        if let Some(key) = msg.op_key() {
            let _ = validate::op_key(key);
        }
        match &msg {
            ClientMessage::Draw(d) => drop(validate::draw(d, &geometry, &limits)),
            ClientMessage::Cursor(c) => drop(validate::cursor(c, &geometry)),
            ClientMessage::Chat(c) => drop(validate::chat(c)),
            ClientMessage::Highlight(h) => drop(validate::highlight(h, &geometry)),
            ClientMessage::ObjectCreate(o) => drop(validate::object_create(o, &geometry)),
            ClientMessage::ObjectUpdate(o) => drop(validate::object_update(o)),
            ClientMessage::ObjectMove(o) => drop(validate::object_move(o, &geometry)),
            ClientMessage::ObjectDelete(o) | ClientMessage::ObjectLike(o) => {
                drop(validate::object_id(&o.object))
            }
            ClientMessage::Activity(a) => drop(validate::activity(a, &geometry)),
            _ => {}
        }
        let _ = codec::encode(encoding, &msg);
    }
}

fn bus(input: &[u8]) {
    let payload = bytes::Bytes::copy_from_slice(input);
    if let Ok(parts) = shared::busframe::split(&payload) {
        let _ = codec::decode_server(Encoding::Msgpack, &parts.event);
    }
}

/// The verifier the `token` target uses.
pub fn verifier() -> TokenVerifier {
    let settings = AuthSettings {
        algorithm: JwtAlgorithm::Hs256,
        key: VerifyKey::Secret(SECRET.to_vec()),
        issuer: None,
        audience: None,
        leeway_secs: 0,
        max_lifetime_secs: Some(86_400),
    };
    TokenVerifier::new(&settings).expect("a valid fuzz verifier")
}

/// Tokens to mutate: valid ones with various claims.
pub fn token_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (user, ttl) in [
        ("alice", 600),
        ("b\u{1f}ob", 60),
        ("", 1),
        ("x".repeat(300).as_str(), 999_999),
    ] {
        let mut claims = shared::auth::MintClaims::for_user(user, ttl);
        claims.name = Some("Ada".into());
        if let Ok(token) = shared::auth::mint_hs256(SECRET, &claims) {
            seeds.push(token.into_bytes());
        }
    }
    seeds
}

/// Loads a target's corpus from `dir` (`fuzz/corpus`), with the seeds
/// derived from it: each client example also as MessagePack, each server
/// example as a bus frame.
pub fn corpus(target: Target, dir: &std::path::Path) -> Vec<Vec<u8>> {
    let examples: Vec<Vec<u8>> = std::fs::read_dir(dir.join(target.corpus_dir()))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    let mut seeds = examples.clone();
    for example in &examples {
        match target {
            Target::Client => {
                if let Ok(msg) = codec::decode_client(Encoding::Json, example)
                    && let Ok(packed) = codec::encode(Encoding::Msgpack, &msg)
                {
                    seeds.push(packed);
                }
            }
            Target::Bus => {
                if let Ok(event) = codec::decode_server(Encoding::Json, example)
                    && let Some(frame) = bus_frame(&event)
                {
                    seeds.push(frame);
                }
            }
            Target::Token => {}
        }
    }
    if target == Target::Token {
        seeds.extend(token_seeds());
    }
    if seeds.is_empty() {
        seeds.push(b"{}".to_vec());
    }
    seeds
}

/// An event framed as gateways publish it on the bus.
fn bus_frame(event: &shared::protocol::ServerMessage) -> Option<Vec<u8>> {
    let header = shared::busframe::BusHeader {
        node: "fuzz".into(),
        conn: 7,
        ingest_us: 1,
        gm_only: false,
        control: false,
    };
    let mut frame = shared::busframe::encode_header(&header).ok()?;
    frame.extend_from_slice(&shared::busframe::encode_seq(Some(42)));
    frame.extend_from_slice(&shared::busframe::encode_event(event).ok()?);
    Some(frame)
}

/// Tokens worth inserting: structure, extremes, separators, markers.
const INTERESTING: &[&[u8]] = &[
    b"[",
    b"{",
    b"]",
    b"}",
    b"\"",
    b":",
    b",",
    b"\\u0000",
    b"\\ud800",
    b"\x1f",
    b"\x00",
    b"99999999999999999999999",
    b"-1",
    b"1e309",
    b"-0",
    b"null",
    b"true",
    b"\"type\":\"draw\"",
    b"\xdc\xff\xff",
    b"\xde\xff\xff",
    b"\xdd\xff\xff\xff\xff",
    b"\xc1",
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x91",
    b"\x81",
    b"\xd9\xff",
    b"\xc4\x10",
    b".",
    b"=",
    b"%",
];

/// One mutated input from the corpus.
pub fn mutate(rng: &mut StdRng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = corpus[rng.random_range(0..corpus.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        let len = data.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] = rng.random();
            }
            2 if len > 0 => {
                let start = rng.random_range(0..len);
                let end = (start + rng.random_range(1..=16)).min(len);
                data.drain(start..end);
            }
            3 if len > 0 => {
                let start = rng.random_range(0..len);
                let end = (start + rng.random_range(1..=32)).min(len);
                let copy = data[start..end].to_vec();
                let at = rng.random_range(0..=data.len());
                data.splice(at..at, copy);
            }
            4 => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                let at = rng.random_range(0..=data.len());
                let from = rng.random_range(0..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            5 => {
                // A nesting bomb.
                let open: &[u8] = if rng.random() { b"[" } else { b"\x91" };
                let depth = rng.random_range(1..2000);
                let at = rng.random_range(0..=data.len());
                let bomb = open.repeat(depth);
                data.splice(at..at, bomb);
            }
            _ => {
                let token = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let at = rng.random_range(0..=data.len());
                data.splice(at..at, token.iter().copied());
            }
        }
    }
    data.truncate(1 << 16);
    data
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Findings {
    pub executions: u64,
    /// Inputs that panicked.
    pub crashes: Vec<Vec<u8>>,
}

/// Runs `executions` mutated inputs (and the corpus itself) through
/// `target`, seeded for reproducibility.
pub fn fuzz(target: Target, corpus: &[Vec<u8>], executions: u64, seed: u64) -> Findings {
    let verifier = verifier();
    fuzz_with(
        |input| run_one(target, input, &verifier),
        corpus,
        executions,
        seed,
    )
}

/// The harness: `check` on the corpus, then on `executions` mutations of
/// it; every input that panics is a finding.
pub fn fuzz_with(
    check: impl Fn(&[u8]),
    corpus: &[Vec<u8>],
    executions: u64,
    seed: u64,
) -> Findings {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut findings = Findings::default();
    // Panics are findings, not noise: keep their messages off stderr.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for input in corpus
        .iter()
        .cloned()
        .chain(std::iter::repeat_with(|| mutate(&mut rng, corpus)).take(executions as usize))
    {
        findings.executions += 1;
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            findings.crashes.push(input);
        }
    }
    std::panic::set_hook(hook);
    findings
}
