#!/usr/bin/env bash
# Runs a load scenario against a private cluster: a fresh redis-server (or,
# with BENCH_REDIS=cluster, a Redis Cluster of 3 masters with a replica
# each) and GATEWAYS gateways (release builds) on free loopback ports.
#
#   loadtest/bench/cluster.sh GATEWAYS SCENARIO [loadtest flags...]
#   e.g. loadtest/bench/cluster.sh 2 fanout --members 1000 --rate 100
#        BENCH_REDIS=cluster loadtest/bench/cluster.sh 4 fanout --canvases 1000
#
# The gateways' URLs and process ids are passed to the load tester (--url,
# --pid), so it reports their CPU time per delivery and memory; the Redis
# processes' ids (--redis-pid) give Redis's CPU per delivery, the admin
# listeners (--admin) the frames per socket write. Extra gateway
# flags go in GATEWAY_FLAGS; GATEWAY_BIN runs another gateway binary (an
# earlier commit's, for an A/B comparison); METRICS_OUT=DIR keeps each
# gateway's /metrics after the run. Everything is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
gateways=${1:?usage: cluster.sh GATEWAYS SCENARIO [flags...]}
shift
cargo build --release -q -p gateway -p loadtest
export EASEL_JWT_SECRET=bench-secret-0123456789abcdef0123456789
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
state=$(mktemp -d)
pids=()
cleanup() {
  # Gateways first, then Redis (a gateway drains through Redis).
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  rm -rf "$state"
}
trap cleanup EXIT
redis_pids=()
start_redis() { # port [extra redis-server flags...]
  local port=$1
  shift
  mkdir -p "$state/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$state/redis-$port" --logfile "$state/redis-$port/redis.log" "$@" &
  pids+=($!)
  redis_pids+=($!)
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
}
redis_port=$(free_port)
if [ "${BENCH_REDIS:-single}" = cluster ]; then
  nodes=("$redis_port")
  for _ in 1 2 3 4 5; do nodes+=("$(free_port)"); done
  for port in "${nodes[@]}"; do
    start_redis "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 5000 --cluster-port "$(free_port)"
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${nodes[@]}") \
    --cluster-replicas 1 --cluster-yes >/dev/null
  for _ in $(seq 200); do
    redis-cli -p "$redis_port" cluster info | grep -q cluster_state:ok && break
    sleep 0.05
  done
else
  start_redis "$redis_port"
fi
# The load tester is one address sending as fast as asked: the gateways'
# rate limits would measure themselves, not the fan-out. GATEWAY_RATE_FLAGS
# replaces these (the flood benchmark sets real limits).
unlimited="pixels=1000000/s:1000000,chat=1000000/s:1000000,cursors=1000000/s:1000000"
rate_flags=${GATEWAY_RATE_FLAGS-"--ip-connect-rate off --rate-limits $unlimited --user-rate-limits $unlimited"}
urls=()
gw_pids=()
admins=()
for i in $(seq "$gateways"); do
  port=$(free_port)
  admin=$(free_port)
  # shellcheck disable=SC2086
  ${GATEWAY_BIN:-./target/release/gateway} --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" --node-id "bench-$i" \
    --redis-url "redis://127.0.0.1:$redis_port" --max-connections 30000 \
    --canvas-width 256 --canvas-height 256 --log-format json \
    --drain-delay-ms 0 --drain-window-ms 0 $rate_flags ${GATEWAY_FLAGS:-} \
    2>"$state/gateway-$i.log" &
  pids+=($!)
  gw_pids+=($!)
  urls+=("ws://127.0.0.1:$port/ws")
  admins+=("127.0.0.1:$admin")
  for _ in $(seq 100); do curl -fs "127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
done
join() { local IFS=,; echo "$*"; }
# The delivery scenarios also measure Redis (idle measures connections).
redis_flag=(--redis-pid "$(join "${redis_pids[@]}")" --admin "$(join "${admins[@]}")")
[ "$1" = idle ] && redis_flag=()
status=0
${LOADTEST_WRAPPER:-} ./target/release/loadtest "$@" --url "$(join "${urls[@]}")" \
  --pid "$(join "${gw_pids[@]}")" "${redis_flag[@]}" || status=$?
# METRICS_OUT=DIR keeps each gateway's /metrics after the run (for the
# gateway's own view of fan-out latency, easel_gateway_fanout_latency_seconds).
if [ -n "${METRICS_OUT:-}" ]; then
  mkdir -p "$METRICS_OUT"
  for i in "${!admins[@]}"; do curl -fs "${admins[$i]}/metrics" >"$METRICS_OUT/gateway-$((i + 1)).prom" || true; done
fi
exit $status
