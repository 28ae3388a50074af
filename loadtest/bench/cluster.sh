#!/usr/bin/env bash
# Runs a load scenario against a private cluster: a fresh redis-server and
# GATEWAYS gateways (release builds) on free loopback ports.
#
#   loadtest/bench/cluster.sh GATEWAYS SCENARIO [loadtest flags...]
#   e.g. loadtest/bench/cluster.sh 2 fanout --members 1000 --rate 100
#
# The gateways' URLs and process ids are passed to the load tester (--url,
# --pid), so it reports their CPU time per delivery and memory. Extra
# gateway flags go in GATEWAY_FLAGS. Everything is stopped on exit.
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
# The load tester is one address sending as fast as asked: the gateways'
# rate limits would measure themselves, not the fan-out. GATEWAY_RATE_FLAGS
# replaces these (the flood benchmark sets real limits).
unlimited="pixels=1000000/s:1000000,chat=1000000/s:1000000,cursors=1000000/s:1000000"
rate_flags=${GATEWAY_RATE_FLAGS-"--ip-connect-rate off --rate-limits $unlimited --user-rate-limits $unlimited"}
urls=()
gw_pids=()
for i in $(seq "$gateways"); do
  port=$(free_port)
  admin=$(free_port)
  # shellcheck disable=SC2086
  ./target/release/gateway --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" --node-id "bench-$i" \
    --redis-url "redis://127.0.0.1:$redis_port" --max-connections 30000 \
    --canvas-width 256 --canvas-height 256 --log-format json \
    --drain-delay-ms 0 --drain-window-ms 0 $rate_flags ${GATEWAY_FLAGS:-} \
    2>"$state/gateway-$i.log" &
  pids+=($!)
  gw_pids+=($!)
  urls+=("ws://127.0.0.1:$port/ws")
  for _ in $(seq 100); do curl -fs "127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
done
join() { local IFS=,; echo "$*"; }
${LOADTEST_WRAPPER:-} ./target/release/loadtest "$@" --url "$(join "${urls[@]}")" --pid "$(join "${gw_pids[@]}")"
