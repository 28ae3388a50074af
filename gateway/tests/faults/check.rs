//! What a fault case asserts, read from Postgres after the run: every
//! acked write stored once, under the seq its ack named (no duplicate, no
//! reused number, nothing diverged), except writes acked within the loss
//! window before a crash that the Redis setting in use allows.

use crate::writer::Written;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use testkit::PostgresServer;

/// One row of the report.
#[derive(Debug)]
pub struct Outcome {
    pub acked: usize,
    /// Acked but not stored.
    pub lost: Vec<String>,
    /// Stored more than once.
    pub duplicates: Vec<String>,
    /// Stored under another seq than its ack named, or diverged rows.
    pub reused: usize,
    /// Whether every lost write was acked within the allowed window.
    pub within_window: bool,
}

/// The stored chat texts (the writer's keys) by seq.
pub async fn stored(pg: &PostgresServer, canvas: &str) -> Vec<(u64, String)> {
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT seq, payload FROM easel.events WHERE canvas_id = $1 AND kind = 'chat' ORDER BY seq",
            &[&canvas],
        )
        .await
        .unwrap();
    rows.into_iter()
        .filter_map(|r| {
            let seq: i64 = r.get(0);
            let payload: Vec<u8> = r.get(1);
            match fanout::visible_event(&bytes::Bytes::from(payload), false)? {
                shared::protocol::ServerMessage::Chat(c) => Some((seq as u64, c.text)),
                _ => None,
            }
        })
        .collect()
}

/// Waits until every acked write is stored, or nothing new was stored for
/// 3 s (what is missing then is lost).
pub async fn settle(pg: &PostgresServer, canvas: &str, written: &Written) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut since) = (usize::MAX, Instant::now());
    while Instant::now() < deadline {
        let rows = stored(pg, canvas).await;
        let keys: std::collections::HashSet<&str> = rows.iter().map(|(_, k)| k.as_str()).collect();
        if written
            .acked
            .iter()
            .all(|(k, _, _)| keys.contains(k.as_str()))
        {
            return;
        }
        if rows.len() != last {
            (last, since) = (rows.len(), Instant::now());
        } else if since.elapsed() > Duration::from_secs(3) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Compares what was acked with what is stored. `crash` and `window`: a
/// write acked at most `window` before `crash` may be lost.
pub async fn outcome(
    pg: &PostgresServer,
    canvas: &str,
    written: &Written,
    crash: Option<(Instant, Duration)>,
) -> Outcome {
    settle(pg, canvas, written).await;
    let rows = stored(pg, canvas).await;
    let mut by_key: HashMap<&str, Vec<u64>> = HashMap::new();
    for (seq, key) in &rows {
        by_key.entry(key.as_str()).or_default().push(*seq);
    }
    let diverged: usize = pg
        .psql("SELECT count(*) FROM diverged_events")
        .parse()
        .unwrap_or(0);
    let mut out = Outcome {
        acked: written.acked.len(),
        lost: Vec::new(),
        duplicates: Vec::new(),
        reused: diverged,
        within_window: true,
    };
    for (key, seq, at) in &written.acked {
        match by_key.get(key.as_str()).map(Vec::as_slice) {
            None | Some([]) => {
                out.lost.push(key.clone());
                let allowed = crash.is_some_and(|(t, w)| *at <= t && t.duration_since(*at) <= w);
                out.within_window &= allowed;
            }
            Some([stored]) => out.reused += usize::from(stored != seq),
            Some(_) => out.duplicates.push(key.clone()),
        }
    }
    out
}

/// Writes the case's row for the report (`make test-faults` prints them)
/// and asserts the guarantees.
pub fn report(case: &str, o: &Outcome, written: &Written) {
    let row = format!(
        "| {case} | {} | {} | {} | {} | {} | {} |\n",
        o.acked,
        o.lost.len(),
        o.duplicates.len(),
        o.reused,
        written.unavailable,
        if o.within_window { "yes" } else { "no" },
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{case}.md")), &row).unwrap();
    println!("{row}");
    assert!(o.acked > 20, "{case}: too few writes to judge: {o:?}");
    assert!(o.duplicates.is_empty(), "{case}: applied twice: {o:?}");
    assert_eq!(o.reused, 0, "{case}: a sequence number was reused: {o:?}");
    assert!(o.within_window, "{case}: lost beyond the window: {o:?}");
}
