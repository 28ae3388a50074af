#!/usr/bin/env bash
# The cost of webhooks in the persister: drain a backlog of EVENTS one-pixel
# draws (8 canvases) with no webhook and with a webhook for every draw (a
# minimal Node receiver answering 204), alternating; report the drain rate,
# the time until the receiver holds every event, and the persister's CPU
# per event.
#
#   loadtest/bench/webhooks.sh [EVENTS] [ROUNDS]
#
# Uses Redis database 6 (flushed) and the PostgreSQL database
# easel_bench_webhooks (dropped and recreated) on 127.0.0.1.
set -euo pipefail
# psql finds Easel's tables in their schema.
export PGOPTIONS="-c search_path=easel,public"
cd "$(dirname "$0")/../.."
EVENTS=${1:-50000}
ROUNDS=${2:-2}
REDIS=redis://127.0.0.1:6379/6
DB=easel_bench_webhooks
PGURL=postgres://postgres@127.0.0.1:5432/$DB
RECEIVER=18299
cargo build --release -q -p persister -p loadtest
node -e '
  let n = 0;
  require("http").createServer((q, s) => {
    if (q.method === "GET") return s.end(String(n));
    const parts = [];
    q.on("data", (c) => parts.push(c));
    q.on("end", () => { n += JSON.parse(Buffer.concat(parts)).events.length; s.statusCode = 204; s.end(); });
  }).listen('$RECEIVER', "127.0.0.1");' & NODE=$!
trap 'kill $NODE ${PID:-} 2>/dev/null; true' EXIT
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
received() { curl -sf http://127.0.0.1:$RECEIVER/; }
for round in $(seq "$ROUNDS"); do
  for mode in plain webhook; do
    redis-cli -n 6 FLUSHDB >/dev/null
    psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
    ./target/release/loadtest persist-fill --redis-url "$REDIS" --events "$EVENTS" --canvases 8 --prefix wh >/dev/null
    flags=()
    if [ $mode = webhook ]; then
      flags=(--webhook-url "http://127.0.0.1:$RECEIVER/" --webhook-secret bench-webhook-secret-0123
             --webhook-events draw --webhook-batch 1000)
    fi
    start_count=$(received)
    ./target/release/persister --redis-url "$REDIS" --database-url "$PGURL" --admin-listen 127.0.0.1:0 \
      --consumer bench --discover-interval-ms 200 --block-ms 100 "${flags[@]}" 2>/dev/null & PID=$!
    t0=$(date +%s.%N)
    drain=$(./target/release/loadtest persist-wait --redis-url "$REDIS" --events "$EVENTS" --canvases 8 --prefix wh \
      | grep -i 'events/s' | head -1 | tr -s ' ')
    if [ $mode = webhook ]; then
      until [ $(( $(received) - start_count )) -ge "$EVENTS" ]; do sleep 0.05; done
    fi
    t1=$(date +%s.%N)
    used=$(cpu $PID)
    kill $PID; wait $PID 2>/dev/null || true
    python3 -c "print('round $round %-8s drain: %s | all done in %.2f s | persister CPU %.1f us/event' % ('$mode', '$drain', $t1 - $t0, $used * 1e6 / $EVENTS))"
  done
done
