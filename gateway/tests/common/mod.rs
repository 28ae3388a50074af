//! Starting gateways for integration tests.

// Each test binary uses a different subset of these helpers, and a failed
// unwrap in test code is a failed test.
#![allow(dead_code, clippy::unwrap_used)]

pub mod raw;

use clap::Parser;
use gateway::{Config, GatewayError, Settings};
use shared::auth::{MintClaims, mint_hs256};
use shared::protocol::*;
use shared::{CanvasId, RequestId};
use std::net::SocketAddr;
use testkit::RedisServer;
use testkit::ws::{Connect, WsClient};
use tokio::io::AsyncBufReadExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

/// A gateway running in this process on loopback ports.
pub struct Gateway {
    /// Clients: `/ws` and the REST API.
    pub addr: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub admin: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<Result<(), GatewayError>>,
}

impl Gateway {
    /// Starts a gateway with `settings` on 127.0.0.1:0.
    pub async fn start(settings: Settings) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = admin_listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(gateway::run(
            settings,
            listener,
            admin_listener,
            shutdown.clone(),
        ));
        Gateway {
            addr,
            admin,
            shutdown,
            handle,
        }
    }

    /// Cancels and waits for `run` to return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }

    pub async fn client(&self, user: &str) -> WsClient {
        WsClient::connect_ok(self.addr, Connect::token(&token(user)))
            .await
            .0
    }
}

/// Settings from flags, as an operator would give them; with `redis` the
/// gateway joins that Redis, otherwise it runs standalone.
pub fn settings(node: &str, redis: Option<&RedisServer>, extra: &[&str]) -> Settings {
    settings_at(node, redis.map(RedisServer::url).as_deref(), extra)
}

/// [`settings`] with the Redis given by its URL (a single server's, or any
/// node of a Redis Cluster).
pub fn settings_at(node: &str, redis_url: Option<&str>, extra: &[&str]) -> Settings {
    let mut args = vec![
        "gateway".to_owned(),
        format!("--node-id={node}"),
        format!("--jwt-secret={SECRET}"),
        "--allowed-origins=https://app.example.com".to_owned(),
        "--canvas-width=100".to_owned(),
        "--canvas-height=100".to_owned(),
    ];
    if let Some(url) = redis_url {
        args.push(format!("--redis-url={url}"));
    }
    // Tests stop gateways at once unless they test the drain itself, send
    // as fast as they like unless they test the rate limits, and see no
    // user_joined/user_left among the events they count unless they test
    // presence.
    let unlimited = "pixels=1000000/s:1000000,chat=1000000/s:1000000,cursors=1000000/s:1000000,\
                     objects=1000000/s:1000000";
    for (flag, value) in [
        ("--drain-delay-ms", "0"),
        ("--drain-window-ms", "0"),
        ("--rate-limits", unlimited),
        ("--user-rate-limits", unlimited),
        ("--ip-connect-rate", "off"),
        ("--presence-events-max", "0"),
    ] {
        if !extra.iter().any(|e| e.starts_with(flag)) {
            args.push(format!("{flag}={value}"));
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Config::try_parse_from(args)
        .unwrap()
        .into_settings()
        .unwrap()
}

pub fn token(user: &str) -> String {
    let mut claims = MintClaims::for_user(user, 600);
    claims.name = Some(format!("{user} name"));
    mint_hs256(SECRET.as_bytes(), &claims).unwrap()
}

/// Subscribes to (`on`) or unsubscribes from a channel and awaits the ack.
pub async fn subscribe(c: &mut WsClient, id: u64, channel: &str, on: bool) {
    let req = ChannelRequest {
        id: Some(RequestId::Num(id)),
        channel: channel.into(),
    };
    c.send(&if on {
        ClientMessage::Subscribe(req)
    } else {
        ClientMessage::Unsubscribe(req)
    })
    .await;
    expect_ack(c, id).await;
}

/// A token with a `role` and per-canvas `roles`.
pub fn token_with(
    user: &str,
    role: Option<shared::auth::Role>,
    roles: &[(&str, shared::auth::Role)],
) -> String {
    let mut claims = MintClaims::for_user(user, 600);
    claims.role = role;
    claims.roles = roles.iter().map(|(c, r)| (c.to_string(), *r)).collect();
    mint_hs256(SECRET.as_bytes(), &claims).unwrap()
}

/// A token that may create, change and delete canvases.
pub fn admin_token(user: &str) -> String {
    let mut claims = MintClaims::for_user(user, 600);
    claims.admin = true;
    mint_hs256(SECRET.as_bytes(), &claims).unwrap()
}

pub fn canvas(id: &str) -> CanvasId {
    CanvasId::new(id).unwrap()
}

pub fn join(id: u64, c: &str, echo: bool) -> ClientMessage {
    ClientMessage::Join(Join {
        id: Some(RequestId::Num(id)),
        canvas: canvas(c),
        echo,
        since: None,
        epoch: None,
    })
}

/// A join that resumes after `since` in `epoch`.
pub fn resume(id: u64, c: &str, since: u64, epoch: &str) -> ClientMessage {
    ClientMessage::Join(Join {
        id: Some(RequestId::Num(id)),
        canvas: canvas(c),
        echo: false,
        since: Some(since),
        epoch: Some(epoch.to_owned()),
    })
}

/// Expects a join ack; returns what it says.
pub async fn expect_joined(client: &mut WsClient, id: u64) -> Joined {
    match expect_ack(client, id).await {
        Some(AckResult::Joined(j)) => j,
        other => panic!("expected a join result, got {other:?}"),
    }
}

pub fn leave(id: u64, c: &str) -> ClientMessage {
    ClientMessage::Leave(Leave {
        id: Some(RequestId::Num(id)),
        canvas: canvas(c),
    })
}

pub fn draw(id: u64, c: &str, x: i64, y: i64, color: i64) -> ClientMessage {
    ClientMessage::Draw(Draw {
        id: Some(RequestId::Num(id)),
        canvas: canvas(c),
        key: None,
        pixels: vec![PixelInput { x, y, color }],
    })
}

/// A `draw` of one pixel carrying an operation key.
pub fn keyed_draw(id: u64, c: &str, x: i64, key: &str) -> ClientMessage {
    ClientMessage::Draw(Draw {
        id: Some(RequestId::Num(id)),
        canvas: canvas(c),
        key: Some(key.into()),
        pixels: vec![PixelInput { x, y: 0, color: 3 }],
    })
}

pub fn chat(id: u64, c: &str, text: &str) -> ClientMessage {
    ClientMessage::Chat(ChatSend {
        id: Some(RequestId::Num(id)),
        canvas: canvas(c),
        key: None,
        text: text.into(),
    })
}

pub fn cursor(id: Option<u64>, c: &str, x: f64, y: f64) -> ClientMessage {
    ClientMessage::Cursor(CursorMove {
        id: id.map(RequestId::Num),
        canvas: canvas(c),
        x,
        y,
    })
}

/// Expects an ack for request `id`; returns its result.
pub async fn expect_ack(client: &mut WsClient, id: u64) -> Option<AckResult> {
    match client.recv().await {
        ServerMessage::Ack(a) if a.id == RequestId::Num(id) => a.result,
        other => panic!("expected ack {id}, got {other:?}"),
    }
}

/// Expects an error reply; returns it.
pub async fn expect_error(client: &mut WsClient) -> ErrorReply {
    match client.recv().await {
        ServerMessage::Error(e) => e,
        other => panic!("expected error, got {other:?}"),
    }
}

/// Joins and waits for the ack.
pub async fn join_ok(client: &mut WsClient, id: u64, c: &str, echo: bool) {
    client.send(&join(id, c, echo)).await;
    match expect_ack(client, id).await {
        Some(AckResult::Joined(j)) => assert_eq!(j.canvas.as_str(), c),
        other => panic!("join ack without result: {other:?}"),
    }
}

#[allow(unused_imports)] // not every test binary makes HTTP requests
pub use testkit::http::get as http_get;

/// A gateway as a child process on `127.0.0.1:port` (to be killed with
/// SIGKILL), joining `redis`, with a 2 s presence TTL and quick sweeps; and
/// its address.
pub fn spawn_gateway_process(
    node: &str,
    redis: &RedisServer,
    port: u16,
) -> (std::process::Child, SocketAddr) {
    use std::process::{Command, Stdio};
    let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("EASEL_NODE_ID", node)
        .env("EASEL_JWT_SECRET", SECRET)
        .env("EASEL_REDIS_URL", redis.url())
        .env("EASEL_LISTEN", format!("127.0.0.1:{port}"))
        .env("EASEL_ADMIN_LISTEN", "127.0.0.1:0")
        .env("EASEL_PRESENCE_TTL_SECS", "2")
        .env("EASEL_PRESENCE_SWEEP_MS", "100")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, format!("127.0.0.1:{port}").parse().unwrap())
}

/// A connection for a test's own commands: to the server at `url`, or to
/// the whole Redis Cluster that `url` is a node of.
pub async fn redis_conn(url: &str) -> store::managed::Managed {
    let client = redis::Client::open(url).unwrap();
    store::managed::connect(&client, None, std::time::Duration::from_secs(5))
        .await
        .unwrap()
}

/// Waits until a stream of `canvas`'s log holds fewer than `below` entries
/// (the persister trims what it stored).
pub async fn wait_trimmed(redis: &RedisServer, canvas: &CanvasId, below: u64) {
    let conn = redis_conn(&redis.url()).await;
    let key = shared::keys::canvas_log(canvas);
    testkit::eventually(std::time::Duration::from_secs(30), "stream trimmed", || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let len: u64 = redis::cmd("XLEN")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            len < below
        }
    })
    .await;
}

/// A gateway on `redis` with its catalogue and history in `pg` (canvases
/// created on first use, a persister's backlog limit), plus `extra` flags;
/// returned once ready.
pub async fn gateway_with_db(
    node: &str,
    redis: Option<&RedisServer>,
    pg: &testkit::PostgresServer,
    extra: &[&str],
) -> Gateway {
    gateway_with_db_at(node, redis.map(RedisServer::url).as_deref(), pg, extra).await
}

/// [`gateway_with_db`] with the Redis given by its URL.
pub async fn gateway_with_db_at(
    node: &str,
    redis_url: Option<&str>,
    pg: &testkit::PostgresServer,
    extra: &[&str],
) -> Gateway {
    let db = format!("--database-url={}", pg.url());
    let mut flags = vec![
        db.as_str(),
        "--auto-create-canvases",
        "--backlog-limit=100000",
    ];
    flags.extend_from_slice(extra);
    let g = Gateway::start(settings_at(node, redis_url, &flags)).await;
    ready(&g).await;
    g
}

/// Waits until the gateway reports ready (its bus connected to Redis).
pub async fn ready(g: &Gateway) {
    testkit::eventually(
        std::time::Duration::from_secs(15),
        "the gateway ready",
        || async { testkit::http::status(g.admin, "/readyz").await == Some(200) },
    )
    .await;
}

/// Events Postgres holds for `canvas` (0 before a persister made the table).
pub fn stored_events(pg: &testkit::PostgresServer, canvas: &str) -> u64 {
    if pg.psql("SELECT to_regclass('easel.events') IS NOT NULL") != "t" {
        return 0;
    }
    pg.psql(&format!(
        "SELECT count(*) FROM events WHERE canvas_id = '{canvas}'"
    ))
    .parse()
    .unwrap()
}

/// A persister running in this process.
pub struct RunningPersister {
    stop: CancellationToken,
    handle: JoinHandle<Result<(), persister::PersisterError>>,
}

impl RunningPersister {
    /// Starts a persister on `redis` and `pg` with quick discovery, plus `extra` flags.
    pub async fn start(redis: &RedisServer, pg: &testkit::PostgresServer, extra: &[&str]) -> Self {
        Self::start_at(&redis.url(), &pg.url(), extra).await
    }

    /// Starts a persister on the Redis and Postgres URLs given.
    pub async fn start_at(redis_url: &str, database_url: &str, extra: &[&str]) -> Self {
        use clap::Parser;
        let mut args = vec![
            "persister".to_owned(),
            format!("--redis-url={redis_url}"),
            format!("--database-url={database_url}"),
            "--discover-interval-ms=100".to_owned(),
            "--block-ms=100".to_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let settings = persister::Config::try_parse_from(args)
            .unwrap()
            .into_settings()
            .unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(persister::run(settings, admin, stop.clone()));
        RunningPersister { stop, handle }
    }

    /// Stops it and waits for it.
    pub async fn stop(self) {
        self.stop.cancel();
        self.handle.await.unwrap().unwrap();
    }

    /// Kills it mid-flight: no drain, nothing acknowledged after this.
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// A canvas's sequence number and cells as Redis holds them, read atomically
/// (5-bit cells, `side` x `side`).
pub async fn redis_cells(redis_url: &str, canvas: &CanvasId, side: u32) -> (Option<u64>, Vec<u8>) {
    let mut conn = redis_conn(redis_url).await;
    let (seq, packed): (Option<u64>, Option<Vec<u8>>) = redis::pipe()
        .atomic()
        .hget(shared::keys::canvas_meta(canvas), "seq")
        .get(shared::keys::canvas_pixels(canvas))
        .query_async(&mut conn)
        .await
        .unwrap();
    (
        seq,
        store::unpack_cells(&packed.unwrap_or_default(), 5, (side * side) as usize),
    )
}

/// One SSE message: its `event`, `id` and `data` fields.
#[derive(Debug, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<u64>,
    pub data: String,
}

pub struct SseClient {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>>,
}

impl SseClient {
    /// Opens the stream; `Err(status)` if the server refused it.
    pub async fn open(
        addr: SocketAddr,
        path: &str,
        last_event_id: Option<&str>,
    ) -> Result<SseClient, u16> {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let last = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{last}\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
            .await
            .unwrap();
        let mut lines = tokio::io::BufReader::new(s).lines();
        let status: u16 = lines
            .next_line()
            .await
            .unwrap()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        // The rest of the head.
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.is_empty() {
                break;
            }
        }
        if status != 200 {
            return Err(status);
        }
        Ok(SseClient { lines })
    }

    /// The next message, skipping keep-alive comments and chunk framing.
    pub async fn next(&mut self) -> SseEvent {
        let read = async {
            let mut ev = SseEvent::default();
            loop {
                let line = self.lines.next_line().await.unwrap().expect("stream ended");
                if let Some(v) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
                    ev.data.push_str(v);
                } else if let Some(v) = line.strip_prefix("event: ").or(line.strip_prefix("event:"))
                {
                    ev.event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("id: ").or(line.strip_prefix("id:")) {
                    ev.id = v.trim().parse().ok();
                } else if line.is_empty() && !ev.data.is_empty() {
                    return ev;
                }
                // Anything else: comments (keep-alive) and chunk sizes.
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("no SSE event within 10 s")
    }
}
