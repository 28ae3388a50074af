#!/usr/bin/env bash
# Measures the gateway's resident memory per idle WebSocket connection.
#
#   loadtest/bench/idle.sh [CONNECTIONS] [extra gateway flags...]
#
# Builds release binaries, starts a standalone gateway on a free port,
# opens CONNECTIONS authenticated connections with `loadtest idle`, holds
# them, reads the gateway's VmRSS before and after, and stops the gateway.
set -euo pipefail
cd "$(dirname "$0")/../.."
connections=${1:-5000}
shift || true
cargo build --release -q -p gateway -p loadtest
export EASEL_JWT_SECRET=bench-secret-0123456789abcdef0123456789
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
admin=$(free_port)
log=$(mktemp)
./target/release/gateway --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" --node-id bench --drain-delay-ms 0 --drain-window-ms 0 --ip-connect-rate off --max-connections $((connections + 100)) "$@" 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do
  if curl -fs "127.0.0.1:$admin/healthz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
./target/release/loadtest idle --url "ws://127.0.0.1:$port/ws" --connections "$connections" \
  --rate 5000 --hold-secs 5 --pid "$pid" ${LOADTEST_FLAGS:-}
