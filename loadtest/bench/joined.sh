#!/usr/bin/env bash
# Memory per joined member: one gateway on a private Redis; CONNECTIONS
# connections each authenticate and join one canvas, are held (answering
# pings), and the gateway's VmRSS is read before the first and after the
# last joined. Reports (RSS after - RSS before) / connections.
#
#   loadtest/bench/joined.sh [CONNECTIONS] [GATEWAY_BINARY] [extra gateway flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
connections=${1:-10000}
GATEWAY=${2:-./target/release/gateway}
shift $(( $# > 2 ? 2 : $# ))
export EASEL_JWT_SECRET=bench-secret-0123456789abcdef0123456789
cargo build -q --release -p loadtest
if [ "$GATEWAY" = ./target/release/gateway ]; then cargo build -q --release -p gateway; fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port) ADMIN=$(free_port) REDIS=$(free_port)
dir=$(mktemp -d)
cleanup() {
  kill "${GW:-}" 2>/dev/null || true
  redis-cli -p "$REDIS" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
redis-server --port "$REDIS" --save '' --appendonly no --dir "$dir" --daemonize yes \
  --pidfile "$dir/redis.pid" >/dev/null
until [ -s "$dir/redis.pid" ]; do sleep 0.05; done
"$GATEWAY" --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" --node-id joined \
  --redis-url "redis://127.0.0.1:$REDIS" --ip-connect-rate off \
  --max-connections $((connections + 100)) "$@" 2>"$dir/gateway.log" & GW=$!
until curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null; do sleep 0.1; done
./target/release/loadtest idle --url "ws://127.0.0.1:$PORT/ws" --connections "$connections" \
  --rate 2000 --concurrency 512 --hold-secs 5 --pid "$GW" $( [ -n "${NOJOIN:-}" ] || echo --join joined-$RANDOM ) ${LOADTEST_FLAGS:-}
