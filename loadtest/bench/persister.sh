#!/usr/bin/env bash
# Persister benchmarks against the local Redis and PostgreSQL services:
#  1. throughput: fill 200,000 events into 8 canvas logs, start the
#     persister, and time the drain (from its first progress);
#  2. durability lag: with the persister running, publish 5,000 events/s for
#     20 s and report the p50/p95/p99 from ingest to committed row.
#
#   loadtest/bench/persister.sh
#
# Uses Redis database 5 (flushed) and the PostgreSQL database easel_bench
# (dropped and recreated) on 127.0.0.1.
set -euo pipefail
# psql finds Easel's tables in their schema.
export PGOPTIONS="-c search_path=easel,public"
cd "$(dirname "$0")/../.."
REDIS=${REDIS:-redis://127.0.0.1:6379/5}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/easel_bench}
psql_admin() { psql -X -q -h 127.0.0.1 -U postgres -d postgres "$@"; }
cargo build --release -q -p persister -p loadtest
reset() {
  redis-cli -n 5 FLUSHDB >/dev/null
  psql_admin -c "DROP DATABASE IF EXISTS easel_bench" -c "CREATE DATABASE easel_bench"
}
start_persister() {
  ./target/release/persister --redis-url "$REDIS" --database-url "$PGURL" \
    --admin-listen 127.0.0.1:0 --consumer bench --discover-interval-ms 200 \
    --block-ms 100 "$@" 2>/tmp/easel-bench-persister.log &
  PID=$!
}
trap '[ -n "${PID:-}" ] && kill $PID 2>/dev/null; true' EXIT

echo "== throughput: drain a backlog of 200,000 events (8 canvases)"
reset
./target/release/loadtest persist-fill --redis-url "$REDIS" --events 200000 --canvases 8 --prefix tp
start_persister
./target/release/loadtest persist-wait --redis-url "$REDIS" --events 200000 --canvases 8 --prefix tp
kill $PID; wait $PID 2>/dev/null || true
psql -X -q -h 127.0.0.1 -U postgres -d easel_bench -t -c \
  "SELECT 'rows stored: ' || count(*) || ', distinct: ' || count(DISTINCT (canvas_id, seq)) FROM events"

echo "== durability lag at 5,000 events/s for 20 s"
reset
start_persister
./target/release/loadtest persist-fill --redis-url "$REDIS" --events 100000 --canvases 8 --prefix lag --rate 5000
./target/release/loadtest persist-wait --redis-url "$REDIS" --events 100000 --canvases 8 --prefix lag
kill $PID; wait $PID 2>/dev/null || true
psql -X -q -h 127.0.0.1 -U postgres -d easel_bench -t -c "
  WITH lag AS (SELECT extract(epoch FROM persisted_at) * 1000 - ingest_us / 1000.0 AS ms FROM events)
  SELECT 'ack-to-row lag ms: p50 ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1)
      || ', p95 ' || round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 1)
      || ', p99 ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1)
      || ', max ' || round(max(ms)::numeric, 1) || ' (' || count(*) || ' rows)'
  FROM lag"
