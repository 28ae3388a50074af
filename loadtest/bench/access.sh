#!/usr/bin/env bash
# The cost of access control on the join path: N connections, each
# authenticating and joining one canvas, on a public canvas, a members
# canvas (every user has a membership row) and a hook canvas (the join hook,
# a minimal Node server, asked on every join: cache off), and on the public
# canvas through a second gateway that queues the webhook feed
# (EASEL_WEBHOOK_FEED: member_joined, canvas_occupied, member_left...);
# alternating runs.
#
#   loadtest/bench/access.sh [CONNECTIONS] [RATE] [ROUNDS]
#
# Needs: redis-server, node, and a Postgres at $PGURL_ADMIN where it may
# create the database easel_bench_access.
set -euo pipefail
# psql finds Easel's tables in their schema.
export PGOPTIONS="-c search_path=easel,public"
cd "$(dirname "$0")/../.."
N=${1:-5000}
RATE=${2:-2000}
ROUNDS=${3:-3}
PGURL_ADMIN=${PGURL_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
DB=easel_bench_access
export EASEL_JWT_SECRET=bench-secret-0123456789abcdef0123456789
KEY=bench-key-0123456789abcdef0123456789
PORT=18191 ADMIN=19191 FEED_PORT=18192 FEED_ADMIN=19192 HOOK=18199 REDIS=16391
cargo build -q --release -p gateway -p loadtest
dir=$(mktemp -d)
cleanup() { kill "${GW:-}" "${FEEDGW:-}" "${HOOKPID:-}" 2>/dev/null || true; redis-cli -p $REDIS shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
redis-server --port $REDIS --save '' --appendonly no --dir "$dir" --daemonize yes >/dev/null
psql "$PGURL_ADMIN" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
PGURL=${PGURL_ADMIN%/*}/$DB
node -e '
  require("http").createServer((q, s) => {
    q.resume();
    q.on("end", () => { s.setHeader("content-type", "application/json"); s.end("{\"allow\":true,\"role\":\"player\"}"); });
  }).listen('$HOOK', "127.0.0.1");' & HOOKPID=$!
./target/release/gateway --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN --node-id access \
    --redis-url redis://127.0.0.1:$REDIS --database-url "$PGURL" --api-keys $KEY \
    --join-hook-url http://127.0.0.1:$HOOK/ --join-hook-cache-secs 0 \
    --ip-connect-rate off --max-connections-per-user 4 2>"$dir/gateway.log" & GW=$!
./target/release/gateway --listen 127.0.0.1:$FEED_PORT --admin-listen 127.0.0.1:$FEED_ADMIN \
    --node-id access-feed --redis-url redis://127.0.0.1:$REDIS --database-url "$PGURL" \
    --webhook-feed --ip-connect-rate off --max-connections-per-user 4 2>"$dir/feed.log" & FEEDGW=$!
until curl -sf http://127.0.0.1:$ADMIN/readyz >/dev/null && curl -sf http://127.0.0.1:$FEED_ADMIN/readyz >/dev/null; do
  sleep 0.2
done
for v in public members hook; do
  curl -sf -X POST -H "Authorization: ApiKey $KEY" http://127.0.0.1:$PORT/api/canvases \
      -d "{\"id\": \"bench-$v\", \"width\": 64, \"height\": 64, \"visibility\": \"$v\"}" >/dev/null
done
psql "$PGURL" -qc "INSERT INTO canvas_members (canvas_id, user_id, role)
                   SELECT 'bench-members', 'load-' || n, 'player' FROM generate_series(0, $N - 1) n"
# CPU seconds (user + system) a process has used.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
for round in $(seq "$ROUNDS"); do
  for v in public members hook feed; do
    printf 'round %s %-8s ' "$round" "$v"
    gw=$GW port=$PORT canvas=bench-$v
    if [ "$v" = feed ]; then gw=$FEEDGW port=$FEED_PORT canvas=bench-public; fi
    before=$(cpu $gw)
    ./target/release/loadtest --json idle --url ws://127.0.0.1:$port/ws --connections "$N" \
        --rate "$RATE" --concurrency 256 --hold-secs 1 --join "$canvas" \
      | python3 -c 'import json,sys; r=json.load(sys.stdin); print("opened %(opened)d failed %(failed)d ramp %(ramp_secs).2f s  join p50 %(join_p50_ms).2f p99 %(join_p99_ms).2f ms" % r, end="")'
    # The connections closed when loadtest exited: their leave costs are in.
    after=$(cpu $gw)
    python3 -c "print('  gateway CPU per connection (connect, join, leave) %.0f us' % (($after - $before) * 1e6 / $N))"
  done
done
