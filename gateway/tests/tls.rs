//! Managed services: a gateway and a persister reach a Redis and a
//! PostgreSQL that take TLS connections only, with a CA the test makes;
//! a certificate from another CA, or TLS left off, stops them at start
//! with an error that names the service. Easel's tables live in their own
//! schema.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::time::Duration;
use testkit::{PostgresServer, RedisServer, TestCerts};
use tokio_util::sync::CancellationToken;

/// `pg`'s URL asking for verified TLS against `ca`.
fn tls_url(pg: &PostgresServer, ca: &std::path::Path) -> String {
    format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url(),
        ca.display()
    )
}

/// What `gateway::run` answers with `flags` (expected to fail at start).
async fn start_error(flags: &[&str]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let run = gateway::run(
        settings("tls-bad", None, flags),
        listener,
        admin,
        CancellationToken::new(),
    );
    match tokio::time::timeout(Duration::from_secs(20), run).await {
        Ok(Err(err)) => format!("{err:#}"),
        Ok(Ok(())) => panic!("the gateway ran with {flags:?}"),
        Err(_) => panic!("the gateway neither started nor failed with {flags:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_and_a_persister_work_over_tls_to_redis_and_postgres() {
    let certs = TestCerts::new("Easel test CA");
    let (redis, rediss) = RedisServer::start_tls(&certs);
    let pg = PostgresServer::start_tls(&certs);
    let ca = certs.ca().display().to_string();
    let db = tls_url(&pg, &certs.ca());
    let ca_flag = format!("--redis-ca-file={ca}");
    let db_flag = format!("--database-url={db}");
    let g = Gateway::start(settings_at(
        "tls-a",
        Some(&rediss),
        &[
            &ca_flag,
            &db_flag,
            "--auto-create-canvases",
            "--backlog-limit=100000",
        ],
    ))
    .await;
    ready(&g).await;
    let persister = RunningPersister::start_at(&rediss, &db, &[&ca_flag]).await;

    let mut c = g.client("ann").await;
    join_ok(&mut c, 1, "tls-board", false).await;
    c.send(&draw(2, "tls-board", 1, 1, 3)).await;
    expect_ack(&mut c, 2).await;
    testkit::eventually(Duration::from_secs(15), "the draw stored", || async {
        stored_events(&pg, "tls-board") >= 1
    })
    .await;
    // The gateway's writes went through the TLS port: the plain port's
    // server is the same process, and its stream holds the draw.
    assert!(redis.ping());
    // The tables are in Easel's schema, not in public.
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'easel' AND tablename IN ('events', 'canvases', 'schema_migrations')"),
        "3"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
    // Every client connection to Postgres is encrypted.
    assert_eq!(
        pg.psql(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.backend_type = 'client backend' AND NOT s.ssl"
        ),
        "0"
    );
    persister.stop().await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_or_tls_left_off_stops_the_start() {
    let certs = TestCerts::new("Easel test CA");
    let other = TestCerts::new("Someone else's CA");
    let (_redis, rediss) = RedisServer::start_tls(&certs);
    let pg = PostgresServer::start_tls(&certs);

    // Redis: a CA that did not sign its certificate.
    let err = start_error(&[
        &format!("--redis-url={rediss}"),
        &format!("--redis-ca-file={}", other.ca().display()),
    ])
    .await;
    assert!(err.to_lowercase().contains("redis"), "{err}");

    // Postgres: the wrong CA, and no TLS against a server that requires it.
    let good_redis = RedisServer::start();
    let redis_flag = format!("--redis-url={}", good_redis.url());
    for db in [tls_url(&pg, &other.ca()), pg.url()] {
        let err = start_error(&[&redis_flag, &format!("--database-url={db}")]).await;
        assert!(err.contains("EASEL_DATABASE_URL"), "{db}: {err}");
    }
    // With the right CA the same server is reachable (the refusals above
    // were about trust, not about the server).
    let g = Gateway::start(settings(
        "tls-ok",
        Some(&good_redis),
        &[&format!("--database-url={}", tls_url(&pg, &certs.ca()))],
    ))
    .await;
    ready(&g).await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_an_older_easel_set_up_in_public_is_moved_into_the_schema() {
    let pg = PostgresServer::start();
    let redis = RedisServer::start();
    // An older Easel: every table in public (migrated with the schema set
    // to public), with a stored canvas.
    let old = Gateway::start(settings(
        "old",
        Some(&redis),
        &[
            &format!("--database-url={}", pg.url()),
            "--database-schema=public",
        ],
    ))
    .await;
    ready(&old).await;
    old.stop().await;
    pg.psql("INSERT INTO public.canvases (id, width, height, palette) VALUES ('kept', 8, 8, ARRAY['#000000', '#ffffff'])");
    let g = gateway_with_db("new", Some(&redis), &pg, &[]).await;
    assert_eq!(
        pg.psql("SELECT count(*) FROM easel.canvases WHERE id = 'kept'"),
        "1"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
    let (status, _, body) =
        testkit::http::get(g.addr, "/api/canvases/kept", Some(&admin_token("op"))).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    g.stop().await;
}
