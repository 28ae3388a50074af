#!/usr/bin/env bash
# Joins as a canvas grows: one gateway on a private Redis; for each SIZE,
# SIZE connections, each authenticating and joining one fresh canvas, so
# the canvas grows from 0 to SIZE members during the run. Reports the ramp,
# join p50/p99, and Redis's and the gateway's CPU per join (user + system
# time over the run). With presence in constant time Redis's CPU per join
# stays flat as SIZE grows; with a scan of the canvas it grows with SIZE.
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
  r0=$(cpu "$RPID"); g0=$(cpu $GW)
  ./target/release/loadtest --json idle --url ws://127.0.0.1:$PORT/ws --connections "$size" \
      --rate "$RATE" --concurrency 512 --hold-secs 0 --join "grow-$size-$RANDOM" >"$dir/report.json"
  r1=$(cpu "$RPID"); g1=$(cpu $GW)
  python3 - "$dir/report.json" "$size" "$r0" "$r1" "$g0" "$g1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
r0, r1, g0, g1 = map(float, sys.argv[3:7])
print("%6d members: ramp %.2f s (%.0f joins/s), join p50 %.2f ms p99 %.2f ms, Redis CPU %.0f us/join, gateway CPU %.0f us/join"
      % (n, r["ramp_secs"], n / r["ramp_secs"], r["join_p50_ms"], r["join_p99_ms"], (r1 - r0) * 1e6 / n, (g1 - g0) * 1e6 / n))
PY
  # Let the closed connections' leaves and sweeps finish before the next size.
  sleep 3
done
