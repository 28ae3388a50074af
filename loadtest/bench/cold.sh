#!/usr/bin/env bash
# Redis memory under join/leave churn on auto-created canvases: each churn
# cycle connects, joins a canvas nobody used before (created by that use),
# leaves and disconnects. Without eviction every canvas stays in Redis for
# good; with it, the persister evicts the ones cold for EVICT_IDLE_SECS.
#
#   loadtest/bench/cold.sh EVICT_IDLE_SECS [DURATION_SECS] [CHURN_RATE]
#   e.g. loadtest/bench/cold.sh 0 120 50; loadtest/bench/cold.sh 10 120 50
#
# A private redis-server (so its memory is Easel's alone), the local
# PostgreSQL's database easel_cold (dropped and recreated), one gateway and
# one persister (release builds). Prints Redis's keys and used memory every
# 10 s.
set -euo pipefail
# psql finds Easel's tables in their schema.
export PGOPTIONS="-c search_path=easel,public"
cd "$(dirname "$0")/../.."
evict=${1:?usage: cold.sh EVICT_IDLE_SECS [DURATION_SECS] [CHURN_RATE]}
duration=${2:-120}
rate=${3:-50}
cargo build --release -q -p gateway -p persister -p loadtest
export EASEL_JWT_SECRET=bench-secret-0123456789abcdef0123456789
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/easel_cold}
psql -X -q -h 127.0.0.1 -U postgres -d postgres \
  -c "DROP DATABASE IF EXISTS easel_cold" -c "CREATE DATABASE easel_cold"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
state=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$state"
}
trap cleanup EXIT
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$state" --logfile "$state/redis.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
port=$(free_port)
admin=$(free_port)
unlimited="pixels=1000000/s:1000000,chat=1000000/s:1000000,cursors=1000000/s:1000000"
./target/release/gateway --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
  --redis-url "redis://127.0.0.1:$redis_port" --database-url "$PGURL" \
  --auto-create-canvases --backlog-limit 100000 --canvas-width 64 --canvas-height 64 \
  --ip-connect-rate off --rate-limits "$unlimited" --user-rate-limits "$unlimited" \
  --drain-delay-ms 0 --drain-window-ms 0 --log-format json 2>"$state/gateway.log" &
pids+=($!)
for _ in $(seq 200); do curl -fs "127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
./target/release/persister --redis-url "redis://127.0.0.1:$redis_port" --database-url "$PGURL" \
  --admin-listen "127.0.0.1:$(free_port)" --evict-idle-secs "$evict" 2>"$state/persister.log" &
pids+=($!)
sample() {
  local t=0
  printf '%6s %8s %12s\n' "secs" "keys" "used_memory"
  while true; do
    keys=$(redis-cli -p "$redis_port" dbsize)
    mem=$(redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
    printf '%6d %8d %12d\n' "$t" "$keys" "$mem"
    sleep 10
    t=$((t + 10))
  done
}
sample &
sampler=$!
pids+=($sampler)
canvases=$(python3 -c "print(int($duration * $rate) + 100)")
./target/release/loadtest churn --url "ws://127.0.0.1:$port/ws" --canvases "$canvases" \
  --canvas-prefix cold --members 0 --publishers 1 --rate 1 --churn-rate "$rate" \
  --duration-secs "$duration" >"$state/loadtest.out" 2>&1 || { cat "$state/loadtest.out"; exit 1; }
sleep 10
grep -E "churn|cycles|failed" "$state/loadtest.out" | head -5 || true
