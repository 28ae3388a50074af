#!/usr/bin/env bash
# Joins as a canvas grows: one gateway on a private Redis; for each SIZE,
# SIZE connections, each authenticating and joining one fresh canvas, so
# the canvas grows from 0 to SIZE members during the run. Reports the ramp,
# join p50/p99, and Redis's and the gateway's CPU per join (user + system
# time over the run). With presence in constant time Redis's CPU per join
# stays flat as SIZE grows; with a scan of the canvas it grows with SIZE.
# Sizes under 10,000 are repeated on fresh canvases up to 10,000 joins.
#
#   loadtest/bench/joins.sh [RATE] [GATEWAY_BINARY] [SIZES...]
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-2000}
GATEWAY=${2:-./target/release/gateway}
shift $(( $# > 2 ? 2 : $# ))
SIZES=${*:-1000 4000 10000}
export EASEL_JWT_SECRET=bench-secret-0123456789abcdef0123456789
PORT=18291 ADMIN=19291 REDIS=16491
cargo build -q --release -p loadtest
if [ "$GATEWAY" = ./target/release/gateway ]; then cargo build -q --release -p gateway; fi
dir=$(mktemp -d)
cleanup() {
  kill "${GW:-}" 2>/dev/null || true
  redis-cli -p $REDIS shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
redis-server --port $REDIS --save '' --appendonly no --dir "$dir" --daemonize yes \
  --pidfile "$dir/redis.pid" >/dev/null
until [ -s "$dir/redis.pid" ]; do sleep 0.05; done
"$GATEWAY" --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN --node-id joins \
  --redis-url redis://127.0.0.1:$REDIS --ip-connect-rate off --max-connections 100000 \
  --presence-events-max 0 2>"$dir/gateway.log" & GW=$!
until curl -sf http://127.0.0.1:$ADMIN/readyz >/dev/null; do sleep 0.1; done
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
RPID=$(cat "$dir/redis.pid")
for size in $SIZES; do
  # Small sizes are repeated on fresh canvases until 10,000 joins are
  # measured: CPU time is read in clock ticks (10 ms), too coarse for 100.
  reps=$(( size >= 10000 ? 1 : 10000 / size ))
  r0=$(cpu "$RPID"); g0=$(cpu $GW)
  rm -f "$dir"/report-*.json
  for rep in $(seq "$reps"); do
    ./target/release/loadtest --json idle --url ws://127.0.0.1:$PORT/ws --connections "$size" \
        --rate "$RATE" --concurrency 512 --hold-secs 0 --join "grow-$size-$rep-$RANDOM" >"$dir/report-$rep.json"
  done
  r1=$(cpu "$RPID"); g1=$(cpu $GW)
  python3 - "$dir" "$size" "$reps" "$r0" "$r1" "$g0" "$g1" <<'PY'
import glob, json, sys
runs = [json.load(open(f)) for f in glob.glob(sys.argv[1] + "/report-*.json")]
n, reps = int(sys.argv[2]), int(sys.argv[3])
r0, r1, g0, g1 = map(float, sys.argv[4:8])
joins = n * reps
ramp = sum(r["ramp_secs"] for r in runs)
failed = sum(r["failed"] for r in runs)
p50 = sorted(r["join_p50_ms"] for r in runs)[len(runs) // 2]
p99 = max(r["join_p99_ms"] for r in runs)
print("%6d members (x%d canvases): %.0f joins/s, join p50 %.2f ms p99 %.2f ms, Redis CPU %.0f us/join, gateway CPU %.0f us/join%s"
      % (n, reps, joins / ramp, p50, p99, (r1 - r0) * 1e6 / joins, (g1 - g0) * 1e6 / joins,
         ", %d failed" % failed if failed else ""))
PY
  # Let the closed connections' leaves and sweeps finish before the next size.
  sleep 3
done
