//! Migrations against a private PostgreSQL.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use testkit::PostgresServer;

async fn client(pg: &PostgresServer) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_migrating_a_fresh_database_at_once_all_succeed() {
    let pg = PostgresServer::start();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut c = client(&pg).await;
        tasks.push(tokio::spawn(async move {
            schema::migrate(&mut c, "easel").await
        }));
    }
    let mut applied = 0;
    for t in tasks {
        applied += t.await.unwrap().unwrap();
    }
    let all = schema::migration_count();
    assert_eq!(applied, all, "each migration applied exactly once");
    assert_eq!(
        pg.psql("SELECT count(*) FROM schema_migrations"),
        all.to_string()
    );
    // Running again applies nothing.
    let mut c = client(&pg).await;
    assert_eq!(schema::migrate(&mut c, "easel").await.unwrap(), 0);
}
